"""Shared fixtures: the real xlsa17 split files in ../shared/data and res101.mat files written to match them."""

import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from izf.data import write_res101
from search.results import trial_reports

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def real_split_labels(name: str) -> np.ndarray:
    """Per-image labels (0-based) consistent with a real att_splits.mat: AWA2's real ones, else built
    from the class lists beside the file (test, validation and train classes, round robin)."""
    folder = SHARED_DATA / name
    if name == "AWA2":
        return np.load(folder / "recovered_labels" / "labels.npy").astype(np.int64) - 1
    mat = scipy.io.loadmat(folder / "att_splits.mat")
    names = [str(x[0][0]) for x in mat["allclasses_names"]]
    index = {n: i for i, n in enumerate(names)}

    def classes(file: str) -> np.ndarray:
        return np.array([index[n] for n in (folder / file).read_text().split()])

    def loc(key: str) -> np.ndarray:
        return mat[key].astype(np.int64).ravel() - 1

    n = sum(loc(k).size for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc"))
    labels = np.full(n, -1)
    for key, pool in (("test_unseen_loc", classes("testclasses.txt")), ("val_loc", classes("valclasses1.txt")),
                      ("train_loc", classes("trainclasses1.txt"))):
        idx = loc(key)
        labels[idx] = pool[np.arange(idx.size) % pool.size]
    assert (labels >= 0).all()
    return labels


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance for one test module, shut down after it."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "SUN" / "att_splits.mat").is_file():
        pytest.fail(f"the real xlsa17 split files are expected at {SHARED_DATA}")
    return SHARED_DATA


def make_real_layout(root: Path, name: str, feature_dim: int = 16, seed: int = 0) -> Path:
    """`root/<name>/` with the real att_splits.mat (linked, not copied) and a matching res101.mat."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in (SHARED_DATA / name).iterdir():
        if f.is_file():
            (folder / f.name).symlink_to(f)
    labels = real_split_labels(name)
    features = np.random.default_rng(seed).random((labels.size, feature_dim), dtype=np.float32)
    write_res101(folder / "res101.mat", features, labels)
    return folder


def trial_results(experiment: Path | str) -> dict[str, list[dict]]:
    """Each trial's reports, read from Ray's own result.json files: {trial_id: [row, ...]}."""
    return {rows[0]["trial_id"]: rows for _, rows in trial_reports(experiment)}


def newest_search(name_folder: Path) -> Path:
    """The folder of the newest search under <storage>/<name> (the name folder itself while there is none)."""
    found = sorted(p for p in Path(name_folder).glob("*/") if p.is_dir())
    return found[-1] if found else Path(name_folder)


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    """Poll url until it answers 200; fail if the process exits or the time runs out."""
    deadline = time.time() + timeout
    while True:
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                raise RuntimeError(f"{url} did not come up (process exit code {process.poll()})") from None
            time.sleep(0.5)
