import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import has_real_labels, make_real_layout

from izf.data import load_benchmark, make_split, read_xlsa17, synthetic, toy, write_res101, write_xlsa17
from izf.errors import DataError

# The counts in ../shared/data/README.md.
README_COUNTS = {  # att dim, classes, seen (train + val), unseen, images, trainval, test_seen, test_unseen
    "SUN": (102, 717, 580, 65, 72, 14340, 10320, 2580, 1440),
    "AWA1": (85, 50, 27, 13, 10, 30475, 19832, 4958, 5685),
    "AWA2": (85, 50, 27, 13, 10, 37322, 23527, 5882, 7913),
}


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_real_split_files_give_the_published_counts(tmp_path, shared_data, name):
    make_real_layout(tmp_path, name)
    s = read_xlsa17(name.lower(), tmp_path).summary()
    # What att_splits.mat alone decides: the attributes and the sizes of the three splits.
    expected = README_COUNTS[name]
    got = (s["attribute_dim"], s["n_classes"], s["n_images"], s["n_trainval"], s["n_test_seen"], s["n_test_unseen"])
    assert got == (expected[0], expected[1], *expected[5:])
    assert s["release"] == "2018"
    if has_real_labels(name):  # the class counts follow from real labels (AWA2's, or a downloaded res101.mat)
        assert (s["n_val_seen_classes"], s["n_val_unseen_classes"], s["n_unseen_classes"]) == expected[2:5]
        assert s["val_classes_from"] == "official"


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_validation_protocol_never_uses_a_test_image(tmp_path, shared_data, name):
    folder = make_real_layout(tmp_path, name)
    b = read_xlsa17(name, tmp_path)
    mat = scipy.io.loadmat(folder / "att_splits.mat")
    test = np.concatenate([mat[k].astype(int).ravel() - 1 for k in ("test_seen_loc", "test_unseen_loc")])
    split = make_split(b, "val", features="none")
    # Features are random per image, so rows identify images.
    used = np.concatenate([split.train_x, split.seen_x, split.unseen_x])
    lookup = {row.tobytes(): i for i, row in enumerate(b.features)}
    images = np.array([lookup[row.tobytes()] for row in used])
    assert images.size == b.trainval.size and not np.isin(images, test).any()
    assert set(split.unseen_y) == set(range(split.n_seen, split.n_classes))
    assert set(split.seen_y) <= set(range(split.n_seen))


def test_inspect_prints_one_json_object(tmp_path, shared_data):
    make_real_layout(tmp_path, "SUN")
    command = [sys.executable, "-m", "izf.data", "inspect", "--dataset", "sun", "--data-root", str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert info["n_classes"] == 717 and info["n_val_unseen_classes"] == 65 and info["release"] == "2018"


@pytest.mark.parametrize("release", ["2018", "2019", "2020"])
def test_every_release_round_trips(tmp_path, release):
    b = synthetic(seed=3)
    write_xlsa17(b, tmp_path, release=release)
    back = read_xlsa17("synthetic", tmp_path)
    assert back.release == release
    assert np.array_equal(back.features, b.features) and np.array_equal(back.labels, b.labels)
    assert np.array_equal(back.trainval, b.trainval) and np.array_equal(back.test_unseen, b.test_unseen)
    if release == "2019":  # this release has no validation classes in the file: they are carved by seed
        assert back.val_classes is None
    else:  # the others write the classes the seed carves as the file's own, and read them back
        assert back.val_classes is not None
        assert make_split(back, "val").class_names == make_split(b, "val").class_names


def test_optional_keys_may_be_absent(tmp_path):
    folder = write_xlsa17(toy(), tmp_path, release="2019")
    mat = scipy.io.loadmat(folder / "att_splits.mat")
    optional = ("allclasses_names", "original_att")
    kept = {k: v for k, v in mat.items() if not k.startswith("__") and k not in optional}
    scipy.io.savemat(folder / "att_splits.mat", kept)
    assert read_xlsa17("toy", tmp_path).class_names[0] == "class_0"


def test_a_class_list_of_another_length_is_named_in_a_warning(tmp_path):
    folder = write_xlsa17(toy(), tmp_path, release="2019")
    mat = scipy.io.loadmat(folder / "att_splits.mat")
    scipy.io.savemat(folder / "att_splits.mat", {k: v for k, v in mat.items()
                                                 if not k.startswith("__") and k != "allclasses_names"})
    (folder / "allclasses.txt").write_text("one\ntwo\n")  # the toy has 4 classes
    with pytest.warns(UserWarning, match=r"allclasses.txt lists 2 classes but att_splits.mat has 4"):
        names = read_xlsa17("toy", tmp_path).class_names
    assert names[0] == "class_0"


@pytest.mark.parametrize("dropped", ["val_loc", "train_loc"])
def test_half_an_official_split_is_named_and_a_seeded_one_used(tmp_path, dropped):
    b = synthetic(seed=3)
    folder = write_xlsa17(b, tmp_path, release="2020")
    mat = scipy.io.loadmat(folder / "att_splits.mat")
    scipy.io.savemat(folder / "att_splits.mat", {k: v for k, v in mat.items()
                                                 if not k.startswith("__") and k != dropped})
    kept = "train_loc" if dropped == "val_loc" else "val_loc"
    with pytest.warns(UserWarning, match=rf"has {kept} but no {dropped}, so it holds no official train/val split"):
        back = read_xlsa17("synthetic", tmp_path)
    assert back.val_classes is None and back.release == "2019"
    write_xlsa17(b, tmp_path / "plain", release="2019")  # the same as a file with no train/val split at all
    plain = read_xlsa17("synthetic", tmp_path / "plain")
    assert make_split(back, "val").class_names == make_split(plain, "val").class_names


def test_matlab_v73_files_are_read(tmp_path):
    import h5py
    b = toy(n_train=20, n_test=5)
    folder = write_xlsa17(b, tmp_path, release="2019")
    for name in ("res101.mat", "att_splits.mat"):
        mat = {k: v for k, v in scipy.io.loadmat(folder / name).items() if not k.startswith("__")}
        (folder / name).unlink()
        with h5py.File(folder / name, "w", userblock_size=512) as f:
            for key, value in mat.items():
                if value.dtype == object:
                    refs = [f.create_dataset(f"#refs#/{key}{i}", data=np.array([ord(c) for c in str(v[0])], np.uint16))
                            for i, v in enumerate(value.ravel())]
                    f.create_dataset(key, data=np.array([r.ref for r in refs], dtype=h5py.ref_dtype)[None, :])
                else:
                    f.create_dataset(key, data=value.T)
        with open(folder / name, "r+b") as f:  # the header MATLAB writes into the user block
            f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Nov 27 12:00:00 2026 HDF5 schema 1.00 .")
    back = read_xlsa17("toy", tmp_path)
    assert np.allclose(back.features, b.features) and back.class_names == b.class_names


def test_load_benchmark_names_are_case_insensitive(tmp_path, shared_data):
    make_real_layout(tmp_path, "AWA2")
    assert load_benchmark("aWa2", root=tmp_path).name == "AWA2"


# --- bad input: each names the file and what to do ---------------------------------------------------------

def _toy_layout(tmp_path: Path) -> Path:
    return write_xlsa17(toy(n_train=30, n_test=10), tmp_path, release="2020")


def _edit(path: Path, **changes) -> None:
    mat = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    mat.update(changes)
    scipy.io.savemat(path, mat)


def test_missing_dataset_folder_says_how_to_download(tmp_path):
    with pytest.raises(DataError, match=r"python -m izf.data download sun"):
        load_benchmark("sun", root=tmp_path)


def test_missing_file(tmp_path):
    (_toy_layout(tmp_path) / "res101.mat").unlink()
    with pytest.raises(DataError, match=r"res101.mat is missing.*download"):
        read_xlsa17("toy", tmp_path)


def test_truncated_file(tmp_path):
    path = _toy_layout(tmp_path) / "att_splits.mat"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"att_splits.mat is truncated or corrupt"):
        read_xlsa17("toy", tmp_path)


def test_empty_file(tmp_path):
    path = _toy_layout(tmp_path) / "res101.mat"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"res101.mat is empty \(0 bytes.*delete it and run `python -m izf.data"):
        read_xlsa17("toy", tmp_path)


def test_feature_label_shape_mismatch(tmp_path):
    path = _toy_layout(tmp_path) / "res101.mat"
    mat = scipy.io.loadmat(path)
    _edit(path, labels=mat["labels"][:-3])
    with pytest.raises(DataError, match=r"features have shape .* but there are \d+ labels"):
        read_xlsa17("toy", tmp_path)


def test_attribute_matrix_of_another_dataset(tmp_path):
    folder = _toy_layout(tmp_path)
    _edit(folder / "att_splits.mat", att=np.ones((2, 3)))
    with pytest.raises(DataError, match=r"do not belong together"):
        read_xlsa17("toy", tmp_path)


def test_zero_based_locs(tmp_path):
    path = _toy_layout(tmp_path) / "att_splits.mat"
    _edit(path, trainval_loc=scipy.io.loadmat(path)["trainval_loc"].astype(int) - 1)
    with pytest.raises(DataError, match=r"trainval_loc contains index 0.*1-based"):
        read_xlsa17("toy", tmp_path)


def test_loc_out_of_range(tmp_path):
    path = _toy_layout(tmp_path) / "att_splits.mat"
    _edit(path, test_seen_loc=np.array([[1], [99999]]))
    with pytest.raises(DataError, match=r"test_seen_loc holds indices up to 99999"):
        read_xlsa17("toy", tmp_path)


def test_zero_based_labels(tmp_path):
    path = _toy_layout(tmp_path) / "res101.mat"
    _edit(path, labels=scipy.io.loadmat(path)["labels"] - 1)
    with pytest.raises(DataError, match=r"labels contain 0"):
        read_xlsa17("toy", tmp_path)


def test_nan_features(tmp_path):
    b = toy(n_train=30, n_test=10)
    folder = _toy_layout(tmp_path)
    features = b.features.copy()
    features[7, 1] = np.nan
    write_res101(folder / "res101.mat", features, b.labels)
    with pytest.raises(DataError, match=r"1 images have NaN/Inf features \(first image index 7\)"):
        read_xlsa17("toy", tmp_path)


def test_unseen_test_image_with_a_seen_label(tmp_path):
    b = toy(n_train=30, n_test=10)
    folder = _toy_layout(tmp_path)
    labels = b.labels.copy()
    labels[b.test_unseen[0]] = 0
    write_res101(folder / "res101.mat", b.features, labels)
    with pytest.raises(DataError, match=r"test_unseen images carry seen classes 'top_left'"):
        read_xlsa17("toy", tmp_path)


def test_empty_split(tmp_path):
    path = _toy_layout(tmp_path) / "att_splits.mat"
    _edit(path, test_seen_loc=np.zeros((0, 1), np.uint16))
    with pytest.raises(DataError, match=r"split test_seen is empty"):
        read_xlsa17("toy", tmp_path)


def test_shared_data_is_not_copied_into_the_project():
    project = Path(__file__).resolve().parents[1]
    copies = [p for p in project.rglob("att_splits.mat") if ".venv" not in p.parts]
    assert not copies, "the real split files must stay outside the project (../shared/data or the data root)"
