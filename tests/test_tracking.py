"""Tracking against a real `mlflow server` started on 127.0.0.1 by the test and stopped by its pid."""

import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY_FIX, TINY_SET, trial_results, wait_for_http
from mlflow import MlflowClient
from ray.tune import Callback
from ray.tune.experiment import Trial
from services import BIN, MlflowServer, free_port

from izf.data import load_dataset
from izf.io import load_model
from record import read_events
from search import SearchOptions
from search.running.driver import run
from tracking import Tracker, sync
from tracking import promote as promote_cli
from tracking.champion import promote
from tracking.model import CHAMPION, register
from tracking.recorder import MLflowRecorder, record_final


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def mlflow_server_factory(tmp_path):
    servers = []

    def make():
        server = MlflowServer(tmp_path / f"mlflow{len(servers)}")
        server.root.mkdir()
        servers.append(server)
        server.start()
        return server.uri, server.stop, server.start

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def searched(tmp_path_factory, mlflow_server, local_ray):
    folder = tmp_path_factory.mktemp("search")
    options = SearchOptions(num_samples=4, storage_path=str(folder / "rr"), max_steps=300, eval_every=100,
                            grace_steps=100, fixed_params=TINY_FIX, fit_overrides=TINY_SET)
    tracker = Tracker(mlflow_server, "izf-synthetic")
    recorder = MLflowRecorder(tracker)
    result = run(options, listeners=[recorder])
    yield tracker, result, recorder.recorded


def test_one_parent_and_a_child_run_per_trial(searched):
    tracker, result, recorded = searched
    client = tracker.client
    experiment = client.get_experiment_by_name("izf-synthetic").experiment_id
    runs = client.search_runs([experiment])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == recorded["parent_run_id"]]
    assert len(parents) == 1 and parents[0].info.run_id == recorded["parent_run_id"]
    assert len(children) == 4
    assert {c.data.tags["izf.trial_id"] for c in children} == set(result.trials["trial_id"])
    for child in children:
        assert child.info.status in ("FINISHED", "KILLED")
        assert child.data.tags["izf.outcome"] in ("completed", "stopped_early")
        assert {"depth", "lr", "mmd_weight", "latent_split", "hidden"} <= set(child.data.params)
        history = client.get_metric_history(child.info.run_id, "softmax_h")
        assert [m.step for m in history] == sorted(m.step for m in history) and history[0].step == 100
        expected = 3 if child.data.tags["izf.outcome"] == "completed" else len(history)
        assert len(history) == expected
    parent = client.get_run(recorded["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["data_checksum"] == result.data_checksum
    assert abs(parent.data.metrics["test_softmax_h"] - result.test["softmax_h"]) < 1e-9
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert {"comparison/trials.csv", "comparison/val_h_over_trials.png", "comparison/importances.png",
            "comparison/parallel_coordinates.png"} <= artifacts


def test_the_plots_are_drawn_from_the_searchs_own_optuna_study(searched, tmp_path):
    import matplotlib.image

    from record.study import open_study
    from tracking.plots import plot_trials
    from tracking.recorder import trials_table

    _, result, _ = searched
    record = json.loads((Path(result.experiment_path) / "izf_search.json").read_text())
    study = open_study(record["description"]["study"])
    assert study is not None and len(study.trials) == result.n_trials == 4
    # The real study's points are the trials' (its distributions are the space's, conditional ones included).
    assert sorted(t.params["lr"] for t in study.trials) == sorted(result.trials["config/lr"])
    assert {"use_mmd", "lr", "latent_split"} <= set(study.trials[0].distributions)
    table = trials_table(record["trials"])
    paths = {p.name: p for p in plot_trials(table, tmp_path, study=study)}
    varied = {n for t in study.trials for n in t.params if len({repr(u.params.get(n)) for u in study.trials}) > 1}
    width = matplotlib.image.imread(paths["parallel_coordinates.png"]).shape[1]
    assert len(varied) >= 8 and width >= 100 * len(varied)  # about 130 pixels an axis
    # The slice plot: a panel (3 inches, ~240 pixels once trimmed) for each numeric parameter that varied, none for
    # those that held one value (--fix).
    numeric = [c for c in table.columns if c.startswith("config/") and table[c].dtype.kind in "if"]
    held = [c for c in numeric if table[c].nunique() == 1]
    width = matplotlib.image.imread(paths["slice.png"]).shape[1]
    assert held and 200 * (len(numeric) - len(held)) <= width < 300 * (len(numeric) - len(held)), (width, held)


def test_champion_loads_and_predicts_like_the_in_process_model(searched):
    tracker, result, recorded = searched
    assert recorded["champion"] is True
    mlflow.set_tracking_uri(tracker.uri)
    served = mlflow.pyfunc.load_model("models:/izf-synthetic@champion")
    split = load_dataset("synthetic", protocol="test")
    raw = split.scaler.shift + split.unseen_x[:50] / split.scaler.scale  # undo the scaling: raw features
    predicted = served.predict(raw.astype(np.float32))
    assert len(predicted) == 50 and set(predicted.columns) == {"class", "score"}
    local = load_model(io.BytesIO(result.model_file))
    assert list(predicted["class"]) == [local.class_names[i] for i in local.predict(raw)]


def test_champion_moves_only_to_a_better_version_on_the_same_data(searched):
    tracker, result, recorded = searched
    client: MlflowClient = tracker.client
    name, first = "izf-synthetic", recorded["version"]
    base = {k: v for k, v in client.get_model_version(name, first).tags.items()}
    assert base["split_seed"] == "0" and base["data_checksum"] == result.data_checksum
    val_h = float(base["val_h"])
    worse = register(client, name, recorded["model_uri"], {**base, "val_h": val_h - 0.1})
    assert promote(client, name, worse).moved is False
    assert client.get_model_version_by_alias(name, CHAMPION).version == first
    other_data = register(client, name, recorded["model_uri"], {**base, "val_h": val_h + 0.5, "data_checksum": "x"})
    assert client.get_model_version_by_alias(name, CHAMPION).version == first  # registering alone moves nothing
    better = register(client, name, recorded["model_uri"], {**base, "val_h": val_h + 0.05})
    decision = promote(client, name, better)
    assert decision.moved and decision.champion == better and "measured alike" in decision.why
    assert client.get_model_version_by_alias(name, CHAMPION).version == better
    assert client.get_model_version(name, better).tags["champion_decision"] == decision.why
    # Promoting a version of other data (the data changed) gives that data's best version the alias, and says so...
    decision = promote(client, name, other_data)
    assert decision.champion == other_data and "the alias follows the newest data" in decision.why
    assert client.get_model_version_by_alias(name, CHAMPION).version == other_data
    # ...and promoting on the first data again compares only within it: `worse` loses to `better`.
    assert promote(client, name, worse).champion == better
    assert client.get_model_version_by_alias(name, CHAMPION).version == better


def test_the_final_record_is_keyed_by_what_it_records(searched, tmp_path):
    """The same result recorded again (a resumed search that had finished, a sync) adds nothing; another
    result (a stale one replaced) gets its own metrics and version, and the champion follows the rule."""
    _, result, _ = searched
    environment = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "izf-keyed")
    tracker.start("search-1", str(tmp_path / "search-1"), {"dataset": "keyed"})
    record = json.loads((Path(result.experiment_path) / "izf_search.json").read_text())

    def recorded(final_key: str, test: dict, best_h: float) -> dict:
        search = {**record, "description": {**record["description"], "dataset": "keyed"},
                  "final": {**record["final"], "final_key": final_key, "test": test,
                            "best_val": {**record["final"]["best_val"], "best_h": best_h}}}
        out = record_final(tracker, search, result.model_file)
        return {**out, "champion": promote(tracker.client, out["model_name"], out["version"]).champion}

    first = recorded("key-1", result.test, result.best_val["best_h"])
    again = recorded("key-1", result.test, result.best_val["best_h"])
    assert first["registered"] and first["champion"] == first["version"]
    assert not again["registered"] and again["version"] == first["version"]
    other = {**result.test, "softmax_h": 0.125}
    replaced = recorded("key-2", other, result.best_val["best_h"] - 0.1)
    assert replaced["registered"] and replaced["version"] != first["version"]
    assert replaced["champion"] == first["version"]  # a lower validation H on the same data: the champion stays
    parent = tracker.client.get_run(tracker.parent_id)
    assert parent.data.metrics["test_softmax_h"] == 0.125 and parent.data.tags["izf.final_key"] == "key-2"
    assert parent.info.status == "FINISHED" and parent.data.tags["izf.status"] == "finished"
    assert parent.data.tags["izf.champion_decision"].startswith("the champion stays")
    assert len(tracker.client.search_model_versions("name = 'izf-keyed'")) == 2
    assert tracker.failures == 0
    # MLflow's fluent API exports the store it last used to every later child process; none may leak.
    assert {k: os.environ.get(k) for k in environment} == environment


def test_promote_cli(searched, monkeypatch):
    tracker, _, _ = searched
    out = subprocess.run([sys.executable, "-m", "tracking.promote", "--dataset", "synthetic", "--mlflow-uri",
                          tracker.uri], capture_output=True, text=True, check=True).stdout
    assert "izf-synthetic@champion -> version" in out
    report = subprocess.run([sys.executable, "-m", "tracking.report", "--experiment", "izf-synthetic",
                             "--mlflow-uri", tracker.uri], capture_output=True, text=True, check=True).stdout
    assert "test_softmax_h" in report


def test_outage_then_sync_twice_equals_an_uninterrupted_search(tmp_path, mlflow_server_factory, local_ray, caplog):
    uri, stop, restart = mlflow_server_factory()
    options = SearchOptions(num_samples=2, max_concurrent=1, storage_path=str(tmp_path / "rr"), max_steps=200,
                            eval_every=100, scheduler="none", name="outage",
                            fixed_params=TINY_FIX, fit_overrides=TINY_SET)
    tracker = Tracker(uri, "izf-outage")
    recorder = MLflowRecorder(tracker)

    class ServerGoesAway:
        def search_started(self, search):
            stop()  # once the parent run exists

    result = run(options, listeners=[recorder, ServerGoesAway()])
    assert tracker.failures > 0 and recorder.recorded.get("version") is None
    # The warning names the command that repairs it, with this search's own folder.
    warned = [r.getMessage() for r in caplog.records if r.name == "tracking.tracker"]
    assert len(warned) == 1 and warned[0].endswith(f"python -m tracking.sync {result.experiment_path}")
    restart()
    snapshots = []
    for _ in range(2):  # the command's main(), in this process (test_reproduce runs `python -m tracking.sync`)
        assert sync.main([str(tmp_path / "rr" / "outage"), "--mlflow-uri", uri, "--experiment", "izf-outage"]) == 0
        snapshots.append(_snapshot(MlflowClient(uri, uri), "izf-outage"))
    assert snapshots[0] == snapshots[1]
    # The same search recorded with MLflow up all along, to another experiment on the same server (its events
    # handed to a recorder one by one, as the live search hands them): MLflow ends up holding the same things
    # (run ids and times aside).
    clean, (events, skipped) = Tracker(uri, "izf-clean"), read_events(result.experiment_path)
    live = MLflowRecorder(clean)
    for event in events:
        getattr(live, event["event"])(**event["args"])
    assert clean.failures == 0 and skipped == 0 and events[-1]["event"] == "search_ended"
    assert snapshots[0] == _snapshot(MlflowClient(uri, uri), "izf-clean")
    parent, children, version = snapshots[0]
    assert parent[0] == "FINISHED" and "test_softmax_h" in dict(parent[2]) and len(children) == 2
    assert all(status == "FINISHED" and steps == (100, 200) for status, _, steps, _ in children)
    assert version[0] == 1 and "izf.final_key" in version[1]


def _snapshot(client, experiment):
    """What MLflow holds of the one search in `experiment`, without what differs between two runs of it."""
    exp = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([exp])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    params = sorted(k for k in parent.data.params if k != "name")
    timed = ("seconds", "per_s")  # wall-clock measurements differ between any two runs
    metrics = {k: None if k.endswith(timed) else round(v, 6) for k, v in parent.data.metrics.items()}
    artifacts = tuple(sorted(a.path for a in client.list_artifacts(parent.info.run_id, "comparison")))
    children = sorted((r.info.status, r.data.tags.get("izf.outcome"),
                       tuple(m.step for m in client.get_metric_history(r.info.run_id, "h")),
                       tuple(sorted(r.data.params.items())))
                      for r in runs if "mlflow.parentRunId" in r.data.tags)
    versions = [v for v in client.search_model_versions("name = 'izf-synthetic'")
                if v.tags.get("parent_run_id") == parent.info.run_id]
    version = (len(versions), tuple(sorted(versions[0].tags)) if versions else ())
    return ((parent.info.status, parent.data.tags.get("izf.status"), tuple(sorted(metrics.items())), tuple(params),
             artifacts), children, version)


class KillOnce(Callback):
    """Kills the first trial's worker process by pid at its second report: a real crash, retried by Tune.

    (At the second report, the first report's checkpoint is registered with the driver for sure.)"""

    def __init__(self):
        self.killed = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.killed is None and result["step"] == 200:
            self.killed = trial.trial_id
            os.kill(result["pid"], signal.SIGKILL)


def test_a_retried_trial_keeps_its_one_run(tmp_path, mlflow_server, local_ray, capsys):
    killer = KillOnce()
    options = SearchOptions(num_samples=2, storage_path=str(tmp_path / "rr"), max_steps=300, eval_every=100,
                            scheduler="none", name="retry", max_failures=2,
                            fixed_params=TINY_FIX, fit_overrides=TINY_SET)
    tracker = Tracker(mlflow_server, "izf-retry")
    result = run(options, listeners=[MLflowRecorder(tracker)], callbacks=[killer])
    assert killer.killed is not None and result.n_errors == 0
    # The console says it in one line (Tune's own report of a failed trial is a traceback of ~30 lines).
    console = capsys.readouterr()
    retried = [line for line in console.out.splitlines() if f"{killer.killed} failed" in line]
    assert len(retried) == 1 and "retried from its last checkpoint (retry 1 of 2)" in retried[0], console.out
    assert "Traceback" not in console.out + console.err
    client = tracker.client
    runs = client.search_runs([client.get_experiment_by_name("izf-retry").experiment_id],
                              filter_string=f"tags.`izf.trial_id` = '{killer.killed}'")
    assert len(runs) == 1
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "h")]
    assert steps == [100, 200, 300] and runs[0].info.status == "FINISHED"
    rows = trial_results(result.experiment_path)[killer.killed]
    assert [r["step"] for r in rows].count(100) == 1  # resumed from the step-100 checkpoint, not restarted


def test_the_end_of_a_search_closes_the_trials_it_left_open_and_a_replay_agrees(tmp_path):
    from record import EventLog
    from record.search import SearchRecord
    from search.running.keeper import Listeners, RecordKeeper
    from tracking.sync import sync

    folder = tmp_path / "s1"
    record = SearchRecord(str(folder), {"search_id": "s1", "name": "lost", "folder": str(folder), "status": "running",
                                        "description": {"dataset": "synthetic", "base": {}, "final_seeds": 1}})
    record.save()
    trials = {t: Trial("train_izf", trial_id=t, stub=True, config={"depth": 2}) for t in ("done", "cut", "lost")}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def driver():
        tracker = Tracker(uri, "izf-lost")
        emit = Listeners(EventLog(str(folder)), [MLflowRecorder(tracker)]).emit
        emit("search_started", search=record.data)
        return tracker, RecordKeeper(record, emit, params_of=dict, max_steps=300, interrupted=lambda: False)

    # A driver starts three trials, sees one finish, and is killed.
    _, keeper = driver()
    for trial in trials.values():
        keeper.on_trial_start(0, [], trial)
    trials["done"].update_last_result({"step": 300})
    keeper.on_trial_complete(0, [], trials["done"])
    # The resumed driver: Tune restored "done" and "cut" (the time budget then cut "cut" at step 100);
    # "lost" had started under the killed driver but never made it into Tune's saved state.
    tracker, keeper = driver()
    trials["cut"].update_last_result({"step": 100})
    trials["cut"].set_status("TERMINATED")
    keeper.on_experiment_end([trials["done"], trials["cut"]])

    def outcomes(client, experiment):
        runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                  filter_string="tags.`izf.role` = 'trial'")
        return {r.data.tags["izf.trial_id"]: (r.info.status, r.data.tags["izf.outcome"]) for r in runs}

    expected = {"done": ("FINISHED", "completed"), "cut": ("KILLED", "stopped_early"), "lost": ("KILLED", "lost")}
    assert outcomes(tracker.client, "izf-lost") == expected
    assert {t: record["trials"][t]["outcome"] for t in trials} == {t: o for t, (_, o) in expected.items()}
    assert tracker.open_trial_runs() == {} and tracker.failures == 0
    # The same events, replayed into another store by tracking.sync, leave the same runs.
    elsewhere = Tracker(f"sqlite:///{tmp_path / 'elsewhere.db'}", "izf-lost")
    assert sync(folder, elsewhere) == {"trials": 3, "metric_steps": 0, "skipped": 0}
    assert outcomes(elsewhere.client, "izf-lost") == expected


def test_sync_reads_what_it_can_and_closes_runs_by_the_records_status(tmp_path):
    """An events file cut mid-line (the driver killed while writing) and one line of the wrong shape: sync skips
    them, names how many, and ends the runs as the record says (interrupted), leaving none RUNNING. A sibling
    search whose record is empty is named in one error line; the others are synced. A later append starts a
    fresh line instead of gluing onto the cut one."""
    from record import EventLog

    name_folder = tmp_path / "rr" / "cut"
    folder = name_folder / "s1"
    folder.mkdir(parents=True)
    record = {"search_id": "s1", "name": "cut", "folder": str(folder), "status": "interrupted",
              "description": {"dataset": "synthetic", "base": {}, "final_seeds": 1}, "notes": {}}
    (folder / "izf_search.json").write_text(json.dumps(record))
    trial = {"trial_id": "t1", "name": "t1", "params": {"depth": 2}, "sampled": {"depth": 2}, "device": "cpu"}
    lines = [{"event": "search_started", "args": {"search": {**record, "status": "running"}}},
             {"event": "trial_started", "args": {"trial": trial}},
             {"event": "trial_reported", "args": {"trial_id": "t1"}},  # the wrong shape: no report
             {"event": "trial_reported", "args": {"trial_id": "t1", "report": {"step": 100, "h": 0.5}}}]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (folder / "izf_events.jsonl").write_text(text + '{"event": "trial_reported", "args": {"trial_id": "t1", "rep')
    (name_folder / "s0").mkdir()
    (name_folder / "s0" / "izf_search.json").write_text("")  # cut while written
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-m", "tracking.sync", str(name_folder), "--mlflow-uri", uri],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (f"error: {name_folder / 's0' / 'izf_search.json'}: not a readable search record "
                                   "(an empty file); the other searches are synced")
    assert done.stdout.strip() == "s1: added 1 trial runs and 1 metric steps; 0 MLflow calls failed; 2 unreadable " \
                                  "lines of izf_events.jsonl skipped"
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("izf-synthetic").experiment_id])
    assert sorted((r.data.tags["izf.role"], r.info.status) for r in runs) == [("search", "KILLED"), ("trial", "KILLED")]

    EventLog(str(folder)).append("trial_ended", {"trial_id": "t1", "outcome": "interrupted"})
    last = (folder / "izf_events.jsonl").read_text().splitlines()
    assert json.loads(last[-1]) == {"event": "trial_ended", "args": {"trial_id": "t1", "outcome": "interrupted"}}
    assert last[-2].endswith('"rep')  # the cut line stays cut, on its own


def test_final_seeds_reach_mlflow_as_mean_and_spread(tmp_path, mlflow_server, local_ray):
    options = SearchOptions(num_samples=1, storage_path=str(tmp_path / "rr"), max_steps=40, eval_every=20,
                            scheduler="none", final_seeds=2, name="seeds",
                            fixed_params=TINY_FIX, fit_overrides=TINY_SET)
    tracker = Tracker(mlflow_server, "izf-seeds")
    result = run(options, listeners=[MLflowRecorder(tracker, promote_champion=False)])
    metrics = tracker.client.get_run(tracker.parent_id).data.metrics
    assert result.final_seeds == 2 and result.test_spread["softmax_h"] > 0  # two seeds, two different models
    assert metrics["test_softmax_h"] == pytest.approx(result.test["softmax_h"])
    assert metrics["test_softmax_h_std"] == pytest.approx(result.test_spread["softmax_h"])


def test_a_version_without_val_h_is_never_made_champion(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = Tracker(uri, "izf-hand").client
    client.create_registered_model("izf-hand")
    client.create_model_version("izf-hand", source=(tmp_path / "model").as_uri(), tags={"data_checksum": "x"})
    assert promote(client, "izf-hand", "1").champion is None  # used to raise: max() of no versions with a val_h
    # The command's main() in this process (test_promote_cli runs `python -m tracking.promote` itself).
    assert promote_cli.main(["--dataset", "hand", "--mlflow-uri", uri]) == 1
    assert capsys.readouterr().err.startswith("error: izf-hand version 1 has no val_h tag")


def test_tracking_survives_an_outage_but_not_a_bug(tmp_path):
    from mlflow.exceptions import MlflowException

    def outage():
        raise MlflowException("API request to http://127.0.0.1:5000 failed: connection refused")

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "izf-bugs")
    with pytest.raises(TypeError):
        tracker.safe("a bug", lambda: 1 + "1")
    assert tracker.failures == 0
    assert tracker.safe("an outage", outage) is None and tracker.failures == 1
    assert tracker.safe("while offline", lambda: 1) is None and tracker.failures == 2  # no call for a minute


def test_champion_is_served_over_rest(searched):
    tracker, result, _ = searched
    port = free_port()
    # The scoring server is started as `uvicorn`, looked up on PATH: the venv's bin must be on it.
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracker.uri, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/izf-synthetic@champion",
                               "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
                              env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=90)
        split = load_dataset("synthetic", protocol="test")
        raw = (split.scaler.shift + split.seen_x[:5] / split.scaler.scale).astype(np.float32)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         data=json.dumps({"inputs": raw.tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())["predictions"]
        local = load_model(io.BytesIO(result.model_file))
        assert [row["class"] for row in answer] == [local.class_names[i] for i in local.predict(raw)]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


