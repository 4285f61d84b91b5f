"""`python -m tracking.reproduce`: a champion retrained from what MLflow holds gives the registered test numbers,
each seed's and the weights, bit for bit on the CPU; other data, other code, code that cannot be checked out and a
parent run without its metrics are refused with one error line. The code a search ran is the one it records."""

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from izf.data import synthetic, write_res101, write_xlsa17
from izf.provenance import code_version
from tracking import reproduce
from tracking.reproduce import compare_weights

ROOT = Path(__file__).resolve().parents[1]
BENCH = synthetic(n_classes=16, n_unseen=4, images_per_class=20, feature_dim=24, attribute_dim=8, seed=3)
SEARCH = ["--dataset", "apy", "--num-samples", "2", "--max-steps", "40", "--eval-every", "20"]


def _reproduce(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracking.reproduce", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def _clean_checkout() -> bool:
    here = code_version()
    return here.commit != "unknown" and not here.dirty


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_a_champion_is_reproduced_exactly_and_other_data_or_code_is_refused(tmp_path, capsys):
    folder = write_xlsa17(dataclasses.replace(BENCH, name="APY"), tmp_path / "data")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = subprocess.run(
        [sys.executable, str(ROOT / "search" / "run.py"), *SEARCH, "--data-root", str(tmp_path / "data"),
         "--final-seeds", "2", "--cpus-per-trial", "2", "--mlflow-uri", uri, "--storage-path", str(tmp_path / "rr")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    model = ["models:/izf-apy@champion", "--data-root", str(tmp_path / "data"), "--mlflow-uri", uri]

    if _clean_checkout():
        done = _reproduce(*model)
    else:  # a working tree with changes: the strict check refuses, as it must, and the flag retrains anyway
        refused = _reproduce(*model)
        assert refused.returncode == 1 and refused.stderr.startswith("error: "), refused.stderr
        done = _reproduce(*model, "--allow-code-change")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "retrained 2 seeds on the test protocol (cpu, 2 threads)" in done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith(("test ", "tag "))]
    names = {r[1] for r in rows}
    core = {f"{k}{s}" for k in ("softmax_u", "softmax_s", "softmax_h", "softmax_zsl_t1") for s in ("", "_std")}
    assert core | {f"seed{i}_softmax_h" for i in (0, 1)} | {"nbc_h", "test_u", "test_s", "test_h"} <= names
    assert all(r[2] == r[3] and float(r[4]) == 0 for r in rows), done.stdout  # identical, not merely close
    weights = int(done.stdout.split(" entries of the first seed's model file")[0].rsplit(" ", 1)[1])
    assert f"compared {len(rows)} metrics and version tags (16 core metrics required, all present)" in done.stdout
    assert weights >= 20 and done.stdout.rstrip().endswith("reproduced: identical")

    # A version whose parent run lost its metrics (MLflow failed after registering) has nothing to compare.
    client = MlflowClient(uri, uri)
    version = client.get_model_version_by_alias("izf-apy", "champion")
    parent = client.get_run(version.tags["parent_run_id"])
    bare = client.create_run(parent.info.experiment_id, tags={"mlflow.runName": "metrics lost"}).info.run_id
    for key, value in parent.data.params.items():
        client.log_param(bare, key, value)
    mlflow.set_tracking_uri(uri)  # the version's source, models:/m-..., resolves through the fluent API's store
    lost = client.create_model_version("izf-apy", version.source, tags={**version.tags, "parent_run_id": bare})
    # The refusals that retrain nothing run in this process, through the command's main().
    capsys.readouterr()
    assert reproduce.main([f"models:/izf-apy/{lost.version}", *model[1:], "--allow-code-change"]) == 1
    missing = capsys.readouterr()
    assert missing.out == ""
    assert missing.err.startswith(f"error: parent run {bare} lacks 16 of the 16 core test metrics (test_softmax_u")
    assert "tracking.sync" in missing.err and len(missing.err.strip().splitlines()) == 1

    write_res101(folder / "res101.mat", BENCH.features + 0.01, BENCH.labels)  # one feature file changed
    assert reproduce.main(model) == 1
    other_data = capsys.readouterr().err
    assert other_data.startswith("error: the data differ from the search's") and "--data-root" in other_data

    write_res101(folder / "res101.mat", BENCH.features, BENCH.labels)  # the search's data again
    if code_version().commit == "unknown":
        pytest.skip("the last check needs the project as a git checkout (git clone), to commit in a clone of it")
    # The same model, reproduced by code one commit further on.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    _git("commit", "-q", "--allow-empty", "-m", "later", cwd=clone)
    later = _reproduce(*model, cwd=clone, env={**os.environ, "PYTHONPATH": str(clone)})
    assert later.returncode == 1 and later.stdout == "", later.stdout + later.stderr
    why = "the code is at commit " if _clean_checkout() else "the model was trained from uncommitted changes"
    assert later.stderr.startswith(f"error: {why}") and "--allow-code-change" in later.stderr
    assert len(later.stderr.strip().splitlines()) == 1


def test_model_files_are_compared_entry_by_entry(tmp_path):
    state = {"config": {"seed": 0}, "model": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)},
             "calibration": 0.5}

    def saved(value: dict) -> bytes:
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return buffer.getvalue()

    assert compare_weights(saved(state), saved(state), 0.0) == (4, [])
    nudged = {**state, "model": {**state["model"], "w": state["model"]["w"] + 1e-6}}
    assert compare_weights(saved(state), saved(nudged), 0.0) == (4, ["model.w"])
    assert compare_weights(saved(state), saved(nudged), 0.01) == (4, [])  # within a GPU's tolerance
    assert compare_weights(saved(state), saved({**state, "calibration": 0.25}), 0.01)[1] == ["calibration"]


def test_a_search_records_the_code_it_ran_not_the_code_that_syncs_it(tmp_path):
    """A search run from a working tree with uncommitted changes and no tracking, then synced to MLflow from a later
    commit: the parent run and the model version name the search's commit, marked dirty; reproduce refuses."""
    if code_version().commit == "unknown":
        pytest.skip("needs the project as a git checkout (git clone), to clone it and commit in the clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "PYTHONPATH": str(clone)}
    with open(clone / "izf" / "__init__.py", "a") as f:
        f.write("# an uncommitted change\n")
    searched_at = _git("rev-parse", "HEAD", cwd=clone)
    write_xlsa17(dataclasses.replace(BENCH, name="APY"), tmp_path / "data")
    search = subprocess.run(
        [sys.executable, str(clone / "search" / "run.py"), *SEARCH, "--num-samples", "1", "--data-root",
         str(tmp_path / "data"), "--no-tracking", "--storage-path", str(tmp_path / "rr"), "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert search.returncode == 0, search.stderr[-3000:]
    folder = json.loads(search.stdout)["folder"]
    record = json.loads((Path(folder) / "izf_search.json").read_text())
    assert (record["description"]["git_commit"], record["description"]["git_dirty"]) == (searched_at, True)
    assert (record["final"]["git_commit"], record["final"]["git_dirty"]) == (searched_at, True)

    _git("commit", "-q", "-am", "later", cwd=clone)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    synced = subprocess.run([sys.executable, "-m", "tracking.sync", folder, "--mlflow-uri", uri], cwd=clone,
                            capture_output=True, text=True, timeout=300, env=env)
    assert synced.returncode == 0, synced.stderr[-3000:]
    client = MlflowClient(uri, uri)
    version = client.get_model_version_by_alias("izf-apy", "champion")
    params = client.get_run(version.tags["parent_run_id"]).data.params
    assert (params["git_commit"], params["git_dirty"]) == (searched_at, "True")
    assert (version.tags["git_commit"], version.tags["git_dirty"], version.tags["split_seed"]) == \
        (searched_at, "True", "0")
    refused = _reproduce("models:/izf-apy@champion", "--data-root", str(tmp_path / "data"), "--mlflow-uri", uri,
                         cwd=clone, env=env)
    assert refused.returncode == 1 and refused.stderr.startswith(
        f"error: the model was trained from uncommitted changes to commit {searched_at[:12]}, which cannot be "
        "checked out again; or --allow-code-change")
