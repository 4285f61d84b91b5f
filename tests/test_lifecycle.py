"""A search's lifecycle as a user meets it: the CLI run twice, two at once, Ctrl-C and SIGTERM sent to the
driver by pid, --resume, every trial failing, bad options. Real Ray, real MLflow (a sqlite store in the
test's folder, the CLI's default), real signals."""

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import newest_search, reports_on_disk, trial_results
from mlflow import MlflowClient
from ray.tune import Callback
from ray.tune.experiment import Trial

from search.callbacks import DriverCallbacks
from search.lifecycle import SearchFailed
from search.lock import NameLock, SearchBusy
from search.options import SearchOptions
from search.tuner import run

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "search" / "run.py")]
# A small, fast trial: depth 2, 32 hidden units on the 128-d synthetic features.
TINY = ["--fix", "depth=2", "--fix", "hidden_scale=0.25", "--fix", "synthetic_per_class=50", "--scheduler", "none"]


def cli(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*RUN, *args], cwd=folder, capture_output=True, text=True, timeout=timeout)


def runs_of(folder: Path, experiment: str = "izf-synthetic", database: str = "mlflow.db") -> tuple[list, list]:
    """(parent runs, trial runs) of the CLI's default MLflow store in `folder` (`database`: its path from there,
    spelt otherwise where this process must not reuse MLflow's cached connection to an earlier file)."""
    client = MlflowClient(f"sqlite:///{folder}/{database}")
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    return ([r for r in runs if "mlflow.parentRunId" not in r.data.tags],
            [r for r in runs if "mlflow.parentRunId" in r.data.tags])


def versions_of(folder: Path, name: str = "izf-synthetic", database: str = "mlflow.db") -> list:
    client = MlflowClient(f"sqlite:///{folder}/{database}", f"sqlite:///{folder}/{database}")
    return client.search_model_versions(f"name = '{name}'")


def outcome(process: subprocess.CompletedProcess) -> dict:
    assert process.stdout.strip(), process.stderr[-3000:]
    return json.loads(process.stdout)


def test_the_main_command_twice_gives_two_searches_each_with_its_own_runs(tmp_path):
    first = cli(tmp_path, *TINY, "--num-samples", "2", "--max-steps", "80", "--eval-every", "40", "--json")
    second = cli(tmp_path, *TINY, "--num-samples", "1", "--max-steps", "40", "--eval-every", "40", "--json")
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-3000:]
    a, b = outcome(first), outcome(second)
    assert a["search_id"] != b["search_id"] and Path(a["folder"]).parent == Path(b["folder"]).parent
    parents, children = runs_of(tmp_path)
    assert sorted(p.data.tags["izf.search_id"] for p in parents) == sorted([a["search_id"], b["search_id"]])
    for search, trials in ((a, 2), (b, 1)):
        (parent,) = [p for p in parents if p.data.tags["izf.search_id"] == search["search_id"]]
        assert parent.info.status == "FINISHED" and parent.data.params["num_samples"] == str(trials)
        assert parent.data.metrics["test_softmax_h"] == pytest.approx(search["test"]["softmax_h"])
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == trials and all(c.data.tags["izf.search_id"] == search["search_id"] for c in mine)
        assert search["mlflow"]["parent_run_id"] == parent.info.run_id and search["mlflow"]["registered"]
    # Each search registered its own version, and says which.
    versions = {v.tags["parent_run_id"]: v.version for v in versions_of(tmp_path)}
    assert len(versions) == 2 and str(b["mlflow"]["version"]) == str(versions[b["mlflow"]["parent_run_id"]])
    assert f"  model izf-synthetic version {b['mlflow']['version']} registered\n" in second.stderr
    # ...and why the alias stayed or moved, in one line: both searches chose on split seed 0 by a single trial's H.
    assert "  version 1 is the champion: the first champion\n" in first.stderr
    decision = second.stderr.rstrip().splitlines()[-1]
    assert decision.startswith("  version 2 is the champion: version 2's val H") and decision.endswith(
        "(same split seed 0, measured alike)") or decision.startswith("  the champion stays: version 1's val H") \
        and decision.endswith("(its trial's own) is the best measured this way"), decision
    # The console: a start and an end line per trial, and none of Ray's boxes or tables.
    assert second.stderr.count(" started: ") == 1 and second.stderr.count(" completed: val H ") == 1
    assert "╭" not in first.stderr + second.stderr and "Trial status" not in first.stderr
    assert "Traceback" not in first.stderr + second.stderr and "Warning" not in first.stderr + second.stderr


def test_two_searches_of_one_name_at_once_on_a_new_store(tmp_path):
    command = [*RUN, *TINY, "--num-samples", "2", "--max-steps", "80", "--eval-every", "40", "--name", "same"]
    drivers = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = [(d.wait(timeout=300), *d.communicate()) for d in drivers]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], [err[-2000:] for _, _, err in results]
    refused = next(err for code, _, err in results if code == 1)
    assert refused.strip().splitlines()[-1].startswith("error: ") and "is in use" in refused
    assert "Traceback" not in refused
    parents, children = runs_of(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 2
    assert len(versions_of(tmp_path)) == 1


RACE = """
import sys, time
sys.path.insert(0, {root!r})
from tracking import Tracker
while time.time() < {start}:
    time.sleep(0.001)
Tracker({uri!r}, "izf-race").connect()
"""


def test_a_new_sqlite_store_created_by_four_drivers_at_once(tmp_path):
    """Without the creation lock, 18 of 20 such processes crashed in alembic's migrations (measured)."""
    for attempt in range(3):
        uri = f"sqlite:///{tmp_path / f'race{attempt}.db'}"
        code = RACE.format(root=str(ROOT), start=time.time() + 5, uri=uri)
        procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert all(p.returncode == 0 for p in procs), "\n".join(e[-1500:] for e in errors)


def signalled_after_a_report(tmp_path: Path, command: list[str], name: str,
                             signum: int) -> tuple[subprocess.Popen, str, str]:
    """Start a driver, send `signum` to it alone (by pid) once one of its trials has reported; it and its output."""
    driver = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not reports_on_disk(newest_search(tmp_path / "ray_results" / name)):
            time.sleep(0.5)
        os.kill(driver.pid, signum)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    return driver, out, err


def test_ctrl_c_then_resume_finishes_the_same_search(tmp_path):
    command = [*RUN, *TINY, "--num-samples", "3", "--max-concurrent", "1", "--max-steps", "300", "--eval-every", "100",
               "--name", "ctrl-c"]
    driver, out, err = signalled_after_a_report(tmp_path, command, "ctrl-c", signal.SIGINT)
    assert driver.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == ("interrupted (SIGINT): continue with python search/run.py --resume "
                                            "--name ctrl-c")
    assert "test, measured once" not in out and "registered" not in out
    folder = newest_search(tmp_path / "ray_results" / "ctrl-c")
    record = json.loads((folder / "izf_search.json").read_text())
    assert record["status"] == "interrupted" and record["signal"] == "SIGINT" and "final" not in record
    (parent,), children = runs_of(tmp_path)
    assert parent.info.status == "KILLED" and parent.data.tags["izf.status"] == "interrupted"
    assert not any(k.startswith("test_") for k in parent.data.metrics)
    assert children and all(c.info.status != "RUNNING" for c in children)
    assert versions_of(tmp_path) == []
    reports_before = {tid: len(rows) for tid, rows in trial_results(folder).items()}
    first_driver_seconds = record["trials_seconds"]
    assert first_driver_seconds > 0
    # The MLflow store is lost meanwhile (moved away): the resumed search writes what came before into the new one.
    (tmp_path / "mlflow.db").rename(tmp_path / "mlflow-before.db")

    resumed = subprocess.run([*RUN, "--resume", "--name", "ctrl-c", "--json"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"had no record of search {record['search_id']}: its events were written there first (" in resumed.stderr
    new_store = "./mlflow.db"  # not the moved file, which this process's MLflow still holds open as mlflow.db
    done = outcome(resumed)
    assert done["search_id"] == record["search_id"] and done["folder"] == str(folder)
    # The summary's time is the trials' over both drivers, not the resumed one's alone.
    final = json.loads((folder / "izf_search.json").read_text())["final"]
    assert final["search_seconds"] > first_driver_seconds
    after = trial_results(folder)
    assert len(after) == 3 and all(rows[-1]["step"] == 300 for rows in after.values())
    for tid, n in reports_before.items():  # continued from checkpoints: no report made twice
        assert [r["step"] for r in after[tid]] == sorted({r["step"] for r in after[tid]}) and len(after[tid]) >= n
    (parent,), children = runs_of(tmp_path, database=new_store)
    assert parent.info.status == "FINISHED" and parent.data.tags["izf.status"] == "finished"
    assert parent.data.metrics["test_softmax_h"] == pytest.approx(done["test"]["softmax_h"])
    assert parent.data.tags["izf.final_key"] and len(children) == 3
    assert all(c.info.status == "FINISHED" for c in children)
    client = MlflowClient(f"sqlite:///{tmp_path}/{new_store}")
    for child in children:  # every report, those before the interruption included
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "step_logged")]
        assert sorted(steps) == [r["step"] for r in after[child.data.tags["izf.trial_id"]]]
    (version,) = versions_of(tmp_path, database=new_store)
    assert version.tags["parent_run_id"] == parent.info.run_id and done["mlflow"]["registered"]
    assert done["mlflow"]["champion"] is True

    # Resuming the finished search records nothing new; changed settings are refused before any work.
    again = cli(tmp_path, "--resume", "--name", "ctrl-c", "--json")
    assert again.returncode == 0 and outcome(again)["mlflow"]["registered"] is False
    assert "had no record" not in again.stderr  # the store has it now: nothing replayed
    assert len(versions_of(tmp_path, database=new_store)) == 1 and len(runs_of(tmp_path, database=new_store)[0]) == 1
    for flags, message in ((["--num-samples", "9"], "cannot change: --num-samples 9 (the search has 3)"),
                           (["--mlflow-uri", f"sqlite:///{tmp_path / 'other.db'}"], "this search records to")):
        refused = cli(tmp_path, "--resume", "--name", "ctrl-c", *flags)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr[-2000:]


def test_sigterm_stops_a_search_as_ctrl_c_does(tmp_path):
    command = [*RUN, *TINY, "--num-samples", "2", "--max-steps", "2000", "--eval-every", "200", "--name", "term"]
    driver, _, err = signalled_after_a_report(tmp_path, command, "term", signal.SIGTERM)
    assert driver.returncode == 130, err[-3000:]  # Ray's own SIGTERM handler aborted the driver (134)
    assert "interrupted (SIGTERM): continue with" in err
    (parent,), children = runs_of(tmp_path)
    assert parent.info.status == "KILLED" and all(c.info.status != "RUNNING" for c in children)


def test_a_search_whose_every_trial_fails_ends_with_one_error_line(tmp_path):
    # Noise of 1e30 on every input makes every loss NaN: each trial diverges, is retried once, diverges again.
    failing = cli(tmp_path, *TINY, "--num-samples", "2", "--max-steps", "80", "--eval-every", "40",
                  "--max-failures", "1", "--set", "input_noise=1e30", "--set", "check_every=10")
    assert failing.returncode == 1
    last = failing.stderr.strip().splitlines()[-1]
    assert last.startswith("error: all 2 trials failed (each after 1 retry)") and "DivergenceError" in last
    assert "error.txt" in last and "Traceback" not in failing.stderr
    (parent,), children = runs_of(tmp_path)
    assert parent.info.status == "FAILED" and parent.data.tags["izf.status"] == "failed"
    assert [c.info.status for c in children] == ["FAILED", "FAILED"]


def test_a_time_budget_no_trial_can_report_in(tmp_path, local_ray):
    options = SearchOptions(num_samples=2, storage_path=str(tmp_path), max_steps=4000, eval_every=2000,
                            time_budget_s=2, fixed_params={"depth": 2, "hidden_scale": 0.25}, scheduler="none")
    with pytest.raises(SearchFailed, match=r"no trial reported a validation H within --time-budget 2 s"):
        run(options)
    (record,) = (tmp_path / "izf-synthetic").glob("*/izf_search.json")
    assert json.loads(record.read_text())["status"] == "failed"


class _HangsTheFirstToReport(Callback):
    """Stops (SIGSTOP) the process of the first trial to report: a worker that hangs, as on a wedged GPU."""

    def __init__(self) -> None:
        self.hung: tuple[str, int] | None = None

    def on_trial_result(self, iteration: int, trials: list, trial: "Trial", result: dict, **info) -> None:
        if self.hung is None:
            self.hung = (trial.trial_id, result["pid"])
            os.kill(result["pid"], signal.SIGSTOP)


def test_a_time_budget_cuts_a_hung_trial_and_the_search_still_measures_its_choice(tmp_path, local_ray, capfd):
    """One trial hangs after its first report; the others run; the budget ends the search (its length is far
    more than a trial needs, so that a busy machine still gets reports in: the test asserts what happened, not how
    fast). The hung trial ends "stopped_early" and is named as cut, the console and the summary say so, and the
    choice is measured on test as usual."""
    from search.summary import print_summary
    from tracking import Tracker
    from tracking.recorder import MLflowRecorder

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "izf-synthetic")
    options = SearchOptions(num_samples=200, storage_path=str(tmp_path), max_steps=40, eval_every=20,
                            time_budget_s=45, fixed_params={"depth": 2, "hidden_scale": 0.25}, scheduler="none")
    hang = _HangsTheFirstToReport()
    try:
        result = run(options, listeners=[MLflowRecorder(tracker)], callbacks=[hang])
    finally:
        if hang.hung is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hang.hung[1], signal.SIGKILL)
    print_summary(result)
    out, err = capfd.readouterr()
    assert "Failed to fetch metrics" not in err  # a trial queued when time ran out never ran
    hung = hang.hung[0]
    assert 2 <= result.n_trials < 200 and hung in result.cut_by_time_budget
    record = json.loads((Path(result.experiment_path) / "izf_search.json").read_text())
    assert record["status"] == "finished" and record["trials"][hung]["outcome"] == "stopped_early"
    assert record["trials"][hung]["cut_by"] == "time budget"
    assert all(t["outcome"] in ("completed", "stopped_early") for t in record["trials"].values())
    assert f"time budget reached (45 s): {result.n_trials} of 200 trials started; cut short: " in out and hung in out
    cut = ", ".join(result.cut_by_time_budget)
    assert f": {result.n_trials} trials (0 failed, {len(result.cut_by_time_budget)} cut by the time budget: {cut}) " \
        "in " in out and "top trials by validation H (*: cut by the time budget):" in out
    shown = [line.split()[0] for line in out.split("top trials by validation H")[1].splitlines()[2:7]]
    assert all(t.endswith("*") == (t.rstrip("*") in result.cut_by_time_budget) for t in shown)
    assert 0 <= result.test["softmax_h"] <= 1 and result.chosen_trial in set(result.trials["trial_id"])
    (parent,), children = runs_of(tmp_path)  # n_trials: the trials that started, each a run
    assert parent.info.status == "FINISHED" and len(children) == result.n_trials == len(record["trials"])
    assert all(c.info.status != "RUNNING" for c in children)


def zero_byte_data(tmp_path: Path) -> str:
    folder = tmp_path / "data" / "SUN"
    folder.mkdir(parents=True)
    (folder / "res101.mat").touch()
    (folder / "att_splits.mat").touch()
    return str(tmp_path / "data")


BAD = [
    (["--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers there"),
    (["--max-failures", "-1"], "--max-failures must be >= 0"),
    (["--set", "calibration=NaN"], "calibration must be a finite number, got nan"),
    (["--set", "input_noise=NaN"], "input_noise must be a finite number, got nan"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--set", "lr=abc"], "lr must be a number, got 'abc'"),
    (["--set", "classifier_epochs=1.5"], "classifier_epochs must be a whole number, got 1.5"),
    (["--set", "latent_split=0"], "latent_split must be >= 1"),
    (["--study-storage", "notaurl"], "--study-storage 'notaurl' is not a database URL"),
    (["--mlflow-uri", "foo://bar"], "--mlflow-uri foo://bar: not a tracking store"),
    (["--storage-path", "{tmp}/a-file/below"], "--storage-path {tmp}/a-file/below: cannot write"),
    (["--eval-every", "900", "--max-steps", "800"], "--eval-every 900 is more than a trial's 800 steps"),
    (["--grace-steps", "900"], "--grace-steps 900 is more than a trial's 800 steps"),
    (["--grace-steps", "0"], "--grace-steps must be >= 1"),
    (["--time-budget", "nan"], "--time-budget must be a finite number"),
    (["--dataset", "sun", "--data-root", "{data}"], "res101.mat is empty (0 bytes"),
    (["--resume"], "--resume: no search named 'izf-synthetic'"),
    (["--name", "../up"], "--name must be a plain folder name"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_options_fail_at_once_with_one_error_line(tmp_path, monkeypatch, capsys, args, message):
    import search.tuner
    from search.run import main

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started before the bad option was found")

    monkeypatch.setattr(search.tuner, "start_ray", no_ray)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").touch()
    fill = {"tmp": str(tmp_path), "data": zero_byte_data(tmp_path)}
    started = time.perf_counter()
    code = main([a.format(**fill) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and message.format(**fill) in err[0], err
    assert time.perf_counter() - started < 20
    assert not list(tmp_path.glob("ray_results/*/*/izf_search.json"))  # no search was begun


def test_an_address_where_something_else_answers_fails_at_once(tmp_path):
    """Ray's own connect loop would retry for minutes there, in C++ where Ctrl-C cannot stop it."""
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.perf_counter()
        refused = cli(tmp_path, "--address", f"127.0.0.1:{server.server_port}", "--no-tracking", timeout=60)
    finally:
        server.shutdown()
    assert refused.returncode == 1 and time.perf_counter() - started < 30
    assert refused.stderr.strip() == (
        f"error: --address 127.0.0.1:{server.server_port}: something answers there, but not a Ray cluster (no gRPC "
        "server); start it (`ray up cluster.yaml`, or `ray start --head` on that host) or check the address; "
        "without --address the search starts a local Ray")


# A Ray head started as cluster.yaml starts it (token auth), by Ray's own test helper in a process of its own (Ray
# reads RAY_AUTH_MODE once per process); it prints the address, and stops the head's processes by pid at EOF.
TOKEN_HEAD = """
import sys
from ray.cluster_utils import Cluster
c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
print(c.address, flush=True)
sys.stdin.read()
c.shutdown()
"""


def test_a_driver_without_the_clusters_token_fails_at_once_with_one_error_line(tmp_path, monkeypatch):
    token = "7" * 64
    head = subprocess.Popen([sys.executable, "-c", TOKEN_HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    try:
        address = head.stdout.readline().strip()
        assert address, "the token-auth head did not start"
        for mode, token_given, says in (("token", "0" * 64, "refused this driver's token"),
                                        ("disabled", token, "requires Ray's token authentication")):
            monkeypatch.setenv("RAY_AUTH_MODE", mode)
            monkeypatch.setenv("RAY_AUTH_TOKEN", token_given)
            started = time.perf_counter()
            refused = cli(tmp_path, "--address", address, "--no-tracking", timeout=120)
            assert refused.returncode == 1 and time.perf_counter() - started < 15, refused.stderr[-2000:]
            assert refused.stderr.strip().splitlines() == [refused.stderr.strip()] and says in refused.stderr
            assert refused.stderr.startswith(f"error: --address {address}: the cluster at ")
    finally:
        head.communicate(timeout=60)
    assert head.returncode == 0


def test_a_warning_about_the_data_is_one_line_that_names_the_file(tmp_path):
    import dataclasses

    import scipy.io

    from izf.data import write_xlsa17
    from izf.data.builtin import toy

    folder = write_xlsa17(dataclasses.replace(toy(), name="SUN"), tmp_path / "data", release="2019")
    mat = scipy.io.loadmat(folder / "att_splits.mat")
    scipy.io.savemat(folder / "att_splits.mat", {k: v for k, v in mat.items()
                                                 if not k.startswith("__") and k != "allclasses_names"})
    (folder / "allclasses.txt").write_text("one\ntwo\n")
    # --eval-every beyond the steps stops the search right after the data is read, before Ray starts.
    stopped = cli(tmp_path, "--dataset", "sun", "--data-root", str(tmp_path / "data"), "--eval-every", "20000",
                  "--no-tracking")
    err = stopped.stderr.strip().splitlines()
    assert stopped.returncode == 1, stopped.stderr
    assert err[0] == (f"warning: {folder / 'allclasses.txt'} lists 2 classes but att_splits.mat has 4; the class "
                      "names are not used (classes are named class_0, class_1, ...)")
    assert len(err) == 2 and err[1].startswith("error: --eval-every 20000 is more than a trial's 11000 steps")


def test_a_name_lock_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
    first, second = NameLock(str(tmp_path / "name")), NameLock(str(tmp_path / "name"))
    first.acquire("search-a")
    with pytest.raises(SearchBusy, match=r"search search-a \(driver pid \d+"):
        second.acquire("search-b")
    first.release()
    second.acquire("search-b")
    second.release()
    # A driver killed by SIGKILL leaves no stale lock: the kernel drops it with the process.
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from search.lock import NameLock; "
            f"lock = NameLock({str(tmp_path / 'name')!r}); lock.acquire('held'); print('held', flush=True); "
            "time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert first.is_held()
    holder.kill()
    holder.wait()
    assert not first.is_held()


def test_tunes_pickled_callbacks_come_back_as_the_live_ones():
    live = DriverCallbacks("search-live", [])
    assert pickle.loads(pickle.dumps(live)) is live
    # In a process where that search is not running (Tune restoring elsewhere), an empty list comes back.
    elsewhere = subprocess.run([sys.executable, "-c", "import pickle, sys; sys.path.insert(0, sys.argv[1]); "
                                "print(type(pickle.loads(sys.stdin.buffer.read())).__name__)", str(ROOT)],
                               input=pickle.dumps(live), capture_output=True, timeout=120)
    assert elsewhere.stdout.decode().strip() == "CallbackList", elsewhere.stderr.decode()[-2000:]


def test_an_unreadable_record_is_named_in_one_line_not_a_traceback(tmp_path):
    """A search folder whose izf_search.json was cut while written: --resume names the file and goes on to what
    it can read (here nothing, so one error line too)."""
    folder = tmp_path / "ray_results" / "cut" / "20261205-000000-0000"
    folder.mkdir(parents=True)
    (folder / "izf_search.json").write_text('{"search_id": "20261205-0000')
    refused = cli(tmp_path, "--resume", "--name", "cut")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert lines[0].startswith(f"warning: {folder}/izf_search.json: not a readable search record (JSONDecodeError")
    assert lines[1].startswith("error: --resume: no search named 'cut'") and len(lines) == 2


def test_best_so_far_at_a_trials_end_counts_only_trials_that_ended(capsys):
    """A trial ending at H 0 used to quote another trial's intermediate report as "best so far"."""
    from search.progress import Progress

    trials = [Trial("train_izf", trial_id=t, stub=True, config={}, experiment_tag=f"{n}_x") for n, t in
              ((1, "running"), (2, "ended"), (3, "ending"))]
    for trial, h, status in zip(trials, (0.9, 0.5, 0.0), ("RUNNING", "TERMINATED", "RUNNING"), strict=True):
        trial.update_last_result({"step": 100, "best_h": h})
        trial.set_status(status)
    Progress(3, 100).on_trial_complete(0, trials, trials[2])
    assert capsys.readouterr().out.rstrip().endswith("trial  3 ending completed: val H 0.00, best so far 50.00 "
                                                     "(trial 2)")

