"""A search of a few hundred trials on a 3-node Ray cluster (Ray's own test helper: a raylet per node) with 24
slots, through the whole platform: Optuna, ASHA, the record, MLflow. The trials are bench/standin.py's stand-ins
(they sleep and report a curve from their config): this measures the platform's bookkeeping, not IZF."""

import json
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from ray.cluster_utils import Cluster

from search.options import SearchOptions
from search.running.driver import run
from tracking import Tracker
from tracking.model import CHAMPION
from tracking.paging import every_run, every_version
from tracking.recorder import MLflowRecorder
from tracking.tracker import OUTCOMES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from standin import report_keys, standin_measure, standin_trial  # noqa: E402 - bench/ is not a package

NODES, CPUS, GPUS = 3, 8, 2  # 8 slots a node: 1 CPU and 0.25 GPU (logical) a trial
TRIALS = 200


@pytest.fixture
def cluster():
    import ray

    # (tests/conftest.py turns Ray's idle workers started ahead off: 24 processes here that no trial asked for)
    node = {"num_cpus": CPUS, "num_gpus": GPUS}
    c = Cluster(initialize_head=True, connect=False, head_node_args=node)
    try:
        for _ in range(NODES - 1):
            c.add_node(**node)
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        c.shutdown()  # stops every node's processes by pid


def test_hundreds_of_trials_on_three_nodes_are_each_recorded_once(tmp_path, cluster):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "izf-scale")
    recorder = MLflowRecorder(tracker)
    options = SearchOptions(address=cluster.address, num_samples=TRIALS, max_concurrent=NODES * CPUS,
                            cpus_per_trial=1, gpus_per_trial=0.25, max_steps=40, eval_every=20, grace_steps=20,
                            storage_path=str(tmp_path / "rr"), name="scale", max_failures=0)
    # The first 24 trials wait for one another: every slot busy at once, so Ray must place trials on all three nodes.
    # Ray does not spread trials evenly, and a busy machine lets Tune keep only a few running at once: in one CI run
    # without the wait, no trial of the 200 ran on the third node.
    trial = standin_trial(0.5, report_keys(), gather=(str(tmp_path / "started"), NODES * CPUS))
    result = run(options, listeners=[recorder], trial=trial, measure=standin_measure)

    record = json.loads((Path(result.experiment_path) / "izf_search.json").read_text())
    assert result.n_trials == TRIALS and len(record["trials"]) == TRIALS and result.n_errors == 0
    assert all(t["outcome"] in ("completed", "stopped_early") for t in record["trials"].values())
    assert any(t["outcome"] == "stopped_early" for t in record["trials"].values()), "ASHA stopped no trial"
    nodes = {t["last"]["node_id"] for t in record["trials"].values()}
    assert len(nodes) == NODES, f"the trials ran on {len(nodes)} of the {NODES} nodes"
    client = MlflowClient(uri, uri)
    runs = every_run(client, [tracker.experiment_id()])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r.data.tags["izf.trial_id"] for r in runs if r.data.tags.get("mlflow.parentRunId") ==
                parent.info.run_id]
    assert sorted(children) == sorted(record["trials"])  # every trial once, and only the search's trials
    assert parent.info.status == "FINISHED"  # and each trial's run ended as its trial did: none left RUNNING
    assert all(r.info.status == OUTCOMES[record["trials"][r.data.tags["izf.trial_id"]]["outcome"]]
               for r in runs if r is not parent)
    (version,) = every_version(client, "name = 'izf-synthetic'")
    assert str(client.get_model_version_by_alias("izf-synthetic", CHAMPION).version) == str(version.version)
