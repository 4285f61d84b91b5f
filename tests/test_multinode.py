"""A real multi-node Ray cluster on this machine (Ray's own test helper, separate raylets): the search
CLI joins it with --address, trials spread over the nodes, and a worker node killed mid-search loses
no trial."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import newest_search, reports_on_disk, trial_results
from mlflow import MlflowClient
from ray.cluster_utils import Cluster

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = c.add_node(num_cpus=1)
    try:
        yield c, worker
    finally:
        c.shutdown()  # stops every node's processes by pid


def test_trials_run_on_both_nodes_and_survive_a_lost_node(tmp_path, cluster):
    c, worker = cluster
    name_folder = tmp_path / "rr" / "multi"
    command = [sys.executable, str(ROOT / "search" / "run.py"), "--address", c.address, "--num-samples", "4",
               "--max-concurrent", "2", "--scheduler", "none", "--storage-path", str(tmp_path / "rr"),
               "--name", "multi", "--max-steps", "400", "--eval-every", "100", "--max-failures", "3",
               "--experiment", "izf-multinode", "--fix", "depth=2", "--fix", "hidden_scale=0.25",
               "--fix", "synthetic_per_class=50", "--fix", "batch_size=128",
               "--set", "classifier_epochs=5"]
    driver = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = False
    try:
        deadline = time.time() + 300
        while not killed and driver.poll() is None and time.time() < deadline:
            seen = {r.get("node_id") for rows in reports_on_disk(newest_search(name_folder)).values() for r in rows}
            if worker.node_id in seen:
                c.remove_node(worker, allow_graceful=False)  # its raylet and workers, killed by pid
                killed = True
            time.sleep(0.5)
        output, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed, "no trial reported from the worker node"
    assert driver.returncode == 0, output[-3000:]
    rows = trial_results(newest_search(name_folder))
    assert len({r["node_id"] for trial in rows.values() for r in trial}) >= 2
    assert len(rows) == 4 and all(trial[-1]["step"] == 400 for trial in rows.values()), "a trial was lost"
    assert "(0 failed)" in output
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("izf-multinode").experiment_id])
    trial_ids = [r.data.tags["izf.trial_id"] for r in runs if "izf.trial_id" in r.data.tags]
    assert sorted(trial_ids) == sorted(rows)  # each trial exactly once
