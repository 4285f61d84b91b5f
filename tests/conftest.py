"""Shared fixtures: the real xlsa17 split files and res101.mat files written to match them.

The split files are looked for in ../shared/data (beside the repository, as CI has it), then in the
user's data root ($IZF_DATA, else ~/.cache/izf/data, where `python -m izf.data download` puts them).
Without them the tests that need them are skipped, saying how to get them; IZF_REQUIRE_REAL_SPLITS=1
(set by .ci/run) makes that skip a failure, so CI always runs them.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io


def _share_the_cores() -> None:
    """The suite's processes (pytest-xdist's workers) share the machine's cores: each gets its part for torch, and
    the commands it starts inherit that. A torch left at every core spins its idle threads while the other worker
    needs them: a toy fit took 23.8 CPU-seconds for 12.5 s with 2 threads, 12.1 for 12.1 s with 1 (2 cores;
    bench/fit_threads.py, docs/benchmarks.md)."""
    threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    # A test that asks for more threads (a search's --cpus-per-trial 2) still shares the cores with the other workers'
    # tests; OpenMP's threads then spin while they wait for one descheduled. Three copies at once of the test that
    # reproduces a champion, every process at 2 threads, took 254 CPU-seconds and 130 s; 125 and 64 s with OpenMP's
    # waiting threads asleep (docs/benchmarks.md, session 16). The numbers computed do not change.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)


_share_the_cores()

# No idle Ray workers started ahead of need (a raylet starts one per CPU it declares when a driver connects): the
# suite's searches are small and start Ray anew each time; the two idle workers cost a one-trial CLI search 1.9 of its
# 22 CPU-seconds (21.98 and 22.99 s with them, 20.40 and 20.79 s without; /proc/stat around the command, 2 cores).
os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

from izf.data import default_root, write_res101  # noqa: E402 - after the threads are set

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_NAMES = ("SUN", "AWA1", "AWA2")


def real_data_root() -> Path | None:
    """The first folder holding the real att_splits.mat of SUN, AWA1 and AWA2, or None."""
    for root in (SHARED_DATA, default_root()):
        if all((root / name / "att_splits.mat").is_file() for name in REAL_NAMES):
            return root
    return None


def has_real_labels(name: str) -> bool:
    """Whether real per-image labels are at hand (a downloaded res101.mat, or AWA2's recovered labels);
    else real_split_labels builds them from the class lists, and counts derived from them prove nothing."""
    folder = real_data_root() / name
    return (folder / "res101.mat").is_file() or (folder / "recovered_labels" / "labels.npy").is_file()


def real_split_labels(name: str) -> np.ndarray:
    """Per-image labels (0-based) consistent with a real att_splits.mat: the real ones where they are at hand
    (a downloaded res101.mat, AWA2's recovered labels), else built from the class lists beside the file
    (test, validation and train classes, round robin)."""
    folder = real_data_root() / name
    if (folder / "res101.mat").is_file():
        return scipy.io.loadmat(folder / "res101.mat", variable_names=["labels"])["labels"].astype(np.int64).ravel() - 1
    if (folder / "recovered_labels" / "labels.npy").is_file():
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


# The test files that run whole searches, longest first (clean-clone durations, docs/benchmarks.md "The test suite").
# pytest-xdist's --dist loadfile hands whole files to its workers in collection order (with --no-loadscope-reorder,
# pyproject.toml; by default it orders them by their number of tests, which put the one-test files that run longest,
# `ray up` and the cluster-scale search, last), so the long ones start first and the short ones fill the end: both
# workers finish together instead of one running a long file alone.
LONGEST_FIRST = ("test_team", "test_search", "test_interrupts", "test_tracking", "test_ray_up", "test_warm_start",
                 "test_champion", "test_scale", "test_reproduce", "test_lifecycle", "test_campaign", "test_training",
                 "test_reevaluate", "test_multinode", "test_data")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (pyproject.toml): one worker more than the machine has cores. The tests wait much of their time (on
    the processes they start: Ray, servers, CLIs), and a third worker on 2 cores fills those waits: the suite took
    13 min 6 s, 13 min 34 s and 14 min 4 s of pytest with 3 workers against 14 min 12 s and 14 min 25 s with 2
    (docs/benchmarks.md, session 15).
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides where it is set (pytest-xdist's own rule)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collected tests ordered file by file as LONGEST_FIRST says, the rest after them; the order within a file and
    of the files not listed stays as collected."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.nodeid.split("::")[0]).stem, len(rank)))


# A small, fast trial on the built-in synthetic data (128-d features): depth 2, 32 hidden units, 50 generated
# features per unseen class, batches of 128 (the MMD loss compares every pair of a batch: a 300-step trial took 2.9
# CPU-seconds at 128, 4.4 at 256 and 9.4 at 512; bench/test_trial_cost.py, docs/benchmarks.md). Searches in tests
# hold these parameters fixed where their assertions allow.
TINY_FIX = {"depth": 2, "hidden_scale": 0.25, "synthetic_per_class": 50, "batch_size": 128}
# ...and an evaluation's softmax classifiers trained for 5 epochs, not 20 (fit_overrides, --set): an 80-step trial
# evaluated twice took 0.68 CPU-seconds against 1.19, and its validation H (0.20 ± 0.10 against 0.02 ± 0.02) ties
# at 0 less often.
TINY_SET = {"classifier_epochs": 5}

MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def no_mlflow_uri_from_outside():
    """Each test starts and ends without MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI: not the user's own
    (the CLI would record to their server), and not one a test set through mlflow.set_tracking_uri,
    which exports it to every process started later."""
    for name in MLFLOW_URI_VARIABLES:
        os.environ.pop(name, None)
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)
        sys.modules["mlflow"].set_registry_uri(None)
    for name in MLFLOW_URI_VARIABLES:
        os.environ.pop(name, None)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance for one test module, shut down after it."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of the real split files; the test is skipped without them (a failure in CI)."""
    root = real_data_root()
    if root is None:
        why = (f"needs the real xlsa17 att_splits.mat of {', '.join(REAL_NAMES)}: in {SHARED_DATA} (beside the "
               f"repository) or in {default_root()} (`python -m izf.data download {' '.join(REAL_NAMES)}`, "
               "or set $IZF_DATA)")
        if os.environ.get("IZF_REQUIRE_REAL_SPLITS") == "1":
            pytest.fail(f"IZF_REQUIRE_REAL_SPLITS=1: {why}")
        pytest.skip(why)
    return root


def make_real_layout(root: Path, name: str, feature_dim: int = 16, seed: int = 0) -> Path:
    """`root/<name>/` with the real att_splits.mat (linked, not copied) and a matching res101.mat."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in (real_data_root() / name).iterdir():
        if f.is_file() and f.name != "res101.mat":
            (folder / f.name).symlink_to(f)
    labels = real_split_labels(name)
    features = np.random.default_rng(seed).random((labels.size, feature_dim), dtype=np.float32)
    write_res101(folder / "res101.mat", features, labels)
    return folder


def trial_results(experiment: Path | str) -> dict[str, list[dict]]:
    """Each trial's reports of a search that has stopped, as Ray's ExperimentAnalysis reads them back:
    {trial_id: [row, ...]}, each row with the trial's config under "config" as in result.json."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(experiment))
    reports = analysis.trial_dataframes
    out = {}
    for trial in analysis.trials:
        table = reports.get(trial.trial_id)
        if table is not None and len(table):  # a value a report lacked (no checkpoint) is NaN in the table
            rows = table.astype(object).where(table.notna(), None).to_dict("records")
            out[trial.trial_id] = [{**{k: v for k, v in row.items() if not k.startswith("config/")},
                                    "config": trial.config} for row in rows]
    return out


def reports_on_disk(experiment: Path | str) -> dict[str, list[dict]]:
    """Each trial's reports as its result.json holds them now, read by hand: for a search that is still running
    or was killed, where Ray's ExperimentAnalysis sees only the trials of the last experiment-state snapshot."""
    out = {}
    for result in sorted(Path(experiment).glob("*/result.json")):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:
            out[rows[0]["trial_id"]] = rows
    return out


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
