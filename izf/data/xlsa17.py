"""Read and write the xlsa17 layout: `<root>/<NAME>/res101.mat` and `att_splits.mat`."""

import warnings
import zlib
from pathlib import Path

import numpy as np

from izf.data.benchmark import Benchmark, validate, validation_classes
from izf.errors import DataError

__all__ = ["find_dataset_dir", "read_xlsa17", "write_res101", "write_xlsa17", "XLSA17_NAMES"]

XLSA17_NAMES = ("APY", "AWA1", "AWA2", "CUB", "FLO", "SUN")
REQUIRED = {"res101.mat": ("features", "labels"), "att_splits.mat": ("att", *(
    f"{s}_loc" for s in ("trainval", "test_seen", "test_unseen")))}


def _fix(name: str) -> str:
    return f"run `python -m izf.data download {name}` or put res101.mat and att_splits.mat there by hand"


def find_dataset_dir(name: str, root: Path) -> Path:
    """Return `<root>/<NAME>`, matching the folder name case-insensitively."""
    root = Path(root)
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and child.name.lower() == name.lower():
                return child
    raise DataError(f"no folder for dataset {name!r} under {root}; {_fix(name)}")


def check_files(name: str, root: Path | str) -> Path:
    """The dataset's folder under `root`, or a DataError saying which file is missing and how to get it
    (without reading the files: a campaign checks all its datasets before the first search)."""
    folder = find_dataset_dir(name, Path(root))
    for file in REQUIRED:
        if not (folder / file).is_file():
            raise DataError(f"{folder / file} is missing; {_fix(name)}")
    return folder


def _load_mat(path: Path, name: str) -> dict:
    if not path.is_file():
        raise DataError(f"{path} is missing; {_fix(name)}")
    import scipy.io

    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes; an interrupted copy or download?); delete it and {_fix(name)}")
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        return _load_mat_v73(path)
    except (ValueError, OSError, TypeError, IndexError, zlib.error, scipy.io.matlab.MatReadError) as e:
        import h5py

        if h5py.is_hdf5(path):  # HDF5 without MATLAB's 512-byte header
            return _load_mat_v73(path)
        raise DataError(f"{path} is truncated or corrupt ({e}); delete it and {_fix(name)}") from e


def _load_mat_v73(path: Path) -> dict:
    import h5py

    def value(f: "h5py.File", item: "h5py.Dataset") -> np.ndarray:
        if item.dtype == h5py.ref_dtype:  # a cell array: each element points to a char array
            refs = np.asarray(item).T
            out = np.empty(refs.shape, dtype=object)
            for i, ref in np.ndenumerate(refs):
                chars = np.asarray(f[ref]).ravel()
                out[i] = np.array(["".join(map(chr, chars))])
            return out
        return np.asarray(item).T  # HDF5 stores MATLAB arrays transposed

    try:
        with h5py.File(path, "r") as f:
            return {k: value(f, f[k]) for k in f if isinstance(f[k], h5py.Dataset)}
    except OSError as e:
        raise DataError(f"{path} is truncated or corrupt ({e}); delete it and download it again") from e


def _strings(cell: np.ndarray) -> tuple[str, ...]:
    return tuple(str(np.asarray(x).ravel()[0]) if np.asarray(x).size else "" for x in cell.ravel())


def _locs(mat: dict, key: str, n: int, path: Path) -> np.ndarray:
    loc = np.asarray(mat[key]).astype(np.int64).ravel()
    if loc.size and loc.min() == 0:
        raise DataError(
            f"{path}: {key} contains index 0, but xlsa17 indices are 1-based (MATLAB); "
            "add 1 to every index if the file was written 0-based"
        )
    if loc.size and (loc.min() < 0 or loc.max() > n):
        raise DataError(f"{path}: {key} holds indices up to {loc.max()}, but res101.mat has {n} images")
    return loc - 1


def _class_names(mat: dict, folder: Path, n_classes: int) -> tuple[str, ...]:
    if "allclasses_names" in mat:
        return _strings(np.asarray(mat["allclasses_names"]))
    listed = folder / "allclasses.txt"
    if listed.is_file():
        names = tuple(listed.read_text().split())
        if len(names) == n_classes:
            return names
        warnings.warn(f"{listed} lists {len(names)} classes but att_splits.mat has {n_classes}; the class "
                      "names are not used (classes are named class_0, class_1, ...)", stacklevel=3)
    return tuple(f"class_{i}" for i in range(n_classes))


def _official_split_keys(att: dict, att_path: Path) -> tuple[str, ...]:
    """("train", "val") where the file has both locs; one without the other is no split: say so, use neither."""
    present = [k for k in ("train", "val") if f"{k}_loc" in att]
    if len(present) == 1:
        (have,) = present
        other = "val" if have == "train" else "train"
        warnings.warn(f"{att_path}: has {have}_loc but no {other}_loc, so it holds no official train/val split; "
                      "validation classes are carved out of trainval with the seed instead", stacklevel=3)
        return ()
    return tuple(present)


def _release(locs: dict[str, np.ndarray]) -> str:
    if "train" not in locs:
        return "2019"
    train_val = np.union1d(locs["train"], locs["val"])
    if np.array_equal(train_val, np.union1d(locs["trainval"], locs["test_seen"])):
        return "2018"
    if np.array_equal(train_val, np.unique(locs["trainval"])) and not np.intersect1d(
        locs["train"], locs["val"]
    ).size:
        return "2020"
    return "nonstandard"


def _official_val_classes(
    locs: dict, labels: np.ndarray, names: tuple[str, ...], folder: Path
) -> np.ndarray | None:
    if "val" in locs:
        val, train = np.unique(labels[locs["val"]]), np.unique(labels[locs["train"]])
        if val.size and not np.intersect1d(val, train).size:
            return val
    listed = folder / "valclasses1.txt"
    if listed.is_file():
        index = {n: i for i, n in enumerate(names)}
        wanted = listed.read_text().split()
        if wanted and all(n in index for n in wanted):
            return np.array(sorted(index[n] for n in wanted))
        warnings.warn(f"{listed}: class names do not match the .mat file; using a seeded split", stacklevel=3)
    return None


def read_xlsa17(name: str, root: Path | str) -> Benchmark:
    """Load one xlsa17 dataset (any release of att_splits.mat; MATLAB v5 or v7.3 files).

    Arguments:
        name: dataset name, case-insensitive ("sun", "AWA2", ...).
        root: the folder that holds one sub-folder per dataset.
    """
    folder = find_dataset_dir(name, Path(root))
    res_path, att_path = folder / "res101.mat", folder / "att_splits.mat"
    res, att = _load_mat(res_path, name), _load_mat(att_path, name)
    for (fname, keys), mat in zip(REQUIRED.items(), (res, att), strict=True):
        missing = [k for k in keys if k not in mat]
        if missing:
            raise DataError(f"{folder / fname}: no key {missing[0]!r}; the file is not from xlsa17, {_fix(name)}")
    features = np.asarray(res["features"], dtype=np.float32)
    raw_labels = np.asarray(res["labels"]).astype(np.int64).ravel()
    if features.ndim != 2 or features.shape[1] != raw_labels.size:
        raise DataError(
            f"{res_path}: features have shape {features.shape} (expected D x N) but there are "
            f"{raw_labels.size} labels; the file is damaged or not from xlsa17"
        )
    attributes = np.asarray(att["att"], dtype=np.float32)
    n, n_classes = raw_labels.size, attributes.shape[1]
    if raw_labels.min() == 0:
        raise DataError(f"{res_path}: labels contain 0, but xlsa17 labels are 1-based; add 1 to every label")
    if raw_labels.min() < 0 or raw_labels.max() > n_classes:
        raise DataError(
            f"{res_path}: labels span [{raw_labels.min()}, {raw_labels.max()}] but {att_path.name} "
            f"has {n_classes} classes (att is {attributes.shape}); the two files do not belong together"
        )
    keys = ("trainval", "test_seen", "test_unseen") + _official_split_keys(att, att_path)
    locs = {k: _locs(att, f"{k}_loc", n, att_path) for k in keys}
    labels = raw_labels - 1
    names = _class_names(att, folder, n_classes)
    return validate(
        Benchmark(
            name=folder.name.upper(),
            features=np.ascontiguousarray(features.T),
            labels=labels,
            attributes=np.ascontiguousarray(attributes.T),
            class_names=names,
            trainval=locs["trainval"],
            test_seen=locs["test_seen"],
            test_unseen=locs["test_unseen"],
            val_classes=_official_val_classes(locs, labels, names, folder),
            release=_release(locs),
            source=str(folder),
        )
    )


def _cell(strings: list[str] | tuple[str, ...]) -> np.ndarray:
    out = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        out[i, 0] = np.array([s])
    return out


def write_res101(
    path: Path | str, features: np.ndarray, labels: np.ndarray, image_files: list[str] | None = None
) -> None:
    """Write a res101.mat: features (N, D) stored as D x N, 0-based labels stored 1-based."""
    import scipy.io

    n = features.shape[0]
    files = image_files or [f"images/{i:06d}.jpg" for i in range(n)]
    scipy.io.savemat(
        path,
        {
            "features": np.asarray(features, dtype=np.float32).T,
            "labels": (np.asarray(labels, dtype=np.float64) + 1).reshape(n, 1),
            "image_files": _cell(files),
        },
        do_compression=False,
    )


def write_xlsa17(b: Benchmark, root: Path | str, *, release: str = "2020", seed: int = 0) -> Path:
    """Save a benchmark in the exact xlsa17 layout under `<root>/<NAME>/`; return that folder.

    Arguments:
        release: "2018" (train/val locs overlap test_seen), "2019" (none) or "2020" (they partition trainval).
    """
    import scipy.io

    if release not in ("2018", "2019", "2020"):
        raise ValueError(f"release must be '2018', '2019' or '2020', got {release!r}")
    folder = Path(root) / b.name.upper()
    folder.mkdir(parents=True, exist_ok=True)
    write_res101(folder / "res101.mat", b.features, b.labels)
    dtype = np.uint16 if b.labels.size < 2**16 else np.uint32

    def loc(idx: np.ndarray) -> np.ndarray:
        return (np.sort(idx) + 1).astype(dtype).reshape(-1, 1)

    mat = {
        "att": b.attributes.astype(np.float64).T,
        "original_att": b.attributes.astype(np.float64).T,
        "allclasses_names": _cell(b.class_names),
        "trainval_loc": loc(b.trainval),
        "test_seen_loc": loc(b.test_seen),
        "test_unseen_loc": loc(b.test_unseen),
    }
    if release != "2019":
        val_classes = validation_classes(b, seed=seed)
        pool = b.trainval if release == "2020" else np.concatenate([b.trainval, b.test_seen])
        in_val = np.isin(b.labels[pool], val_classes)
        mat["train_loc"], mat["val_loc"] = loc(pool[~in_val]), loc(pool[in_val])
    scipy.io.savemat(folder / "att_splits.mat", mat, do_compression=False)
    return folder
