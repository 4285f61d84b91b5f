"""A search's lifecycle as a user meets it: the CLI run twice, two at once, bad options, a busy name, an
unreadable record (Ctrl-C, SIGTERM, failing and hung trials: test_interrupts.py). Real Ray, real MLflow (a sqlite
store in the test's folder, the CLI's default)."""

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from ray.tune.experiment import Trial

from search.preparing.lock import NameLock, SearchBusy
from search.running.callbacks import DriverCallbacks

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "search" / "run.py")]
# A small, fast trial: depth 2, 32 hidden units on the 128-d synthetic features, batches of 128, classifiers of 5
# epochs (conftest.TINY_FIX, TINY_SET).
TINY = ["--fix", "depth=2", "--fix", "hidden_scale=0.25", "--fix", "synthetic_per_class=50", "--fix", "batch_size=128",
        "--set", "classifier_epochs=5", "--scheduler", "none"]


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
    """Started twice at once on a new store, one driver runs and the other is refused (one driver per name); then
    the command again: two searches, each with its own folder, runs and model version."""
    command = [*RUN, *TINY, "--num-samples", "2", "--max-steps", "80", "--eval-every", "40", "--json"]
    drivers = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = [subprocess.CompletedProcess(command, d.wait(timeout=300), *d.communicate()) for d in drivers]
    assert sorted(r.returncode for r in results) == [0, 1], [r.stderr[-2000:] for r in results]
    first, refused = sorted(results, key=lambda r: r.returncode)
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ") and "is in use" in refused.stderr
    assert "Traceback" not in refused.stderr and outcome(refused)["status"] == "failed"
    parents, children = runs_of(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 2
    assert len(versions_of(tmp_path)) == 1

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



RACE = """
import os, sys, time
sys.path.insert(0, {root!r})
from tracking import Tracker
print("ready", flush=True)
while not os.path.exists({go!r}):
    time.sleep(0.001)
Tracker({uri!r}, "izf-race").connect()
"""


def test_a_new_sqlite_store_created_by_four_drivers_at_once(tmp_path):
    """Without the creation lock, 18 of 20 such processes crashed in alembic's migrations (measured), so one round
    of four fails without it all but surely. The four create the store at once: each waits, its imports done, for
    a file the test writes when all are ready."""
    uri, go = f"sqlite:///{tmp_path / 'race.db'}", tmp_path / "go"
    code = RACE.format(root=str(ROOT), go=str(go), uri=uri)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 4
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(e[-1500:] for e in errors)


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
    import search.running.driver
    from search.cli import main

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started before the bad option was found")

    monkeypatch.setattr(search.running.driver, "start_ray", no_ray)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").touch()
    fill = {"tmp": str(tmp_path), "data": zero_byte_data(tmp_path)}
    started = time.perf_counter()
    code = main([a.format(**fill) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and message.format(**fill) in err[0], err
    assert time.perf_counter() - started < 120  # "at once": no search began; generous on a busy machine
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
    # Ray's loop retries for minutes; 120 s is generous for "at once" on a busy 2-core machine.
    assert refused.returncode == 1 and time.perf_counter() - started < 120
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
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from search.preparing.lock import NameLock; "
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
    from search.running.console import Progress

    trials = [Trial("train_izf", trial_id=t, stub=True, config={}, experiment_tag=f"{n}_x") for n, t in
              ((1, "running"), (2, "ended"), (3, "ending"))]
    for trial, h, status in zip(trials, (0.9, 0.5, 0.0), ("RUNNING", "TERMINATED", "RUNNING"), strict=True):
        trial.update_last_result({"step": 100, "best_h": h})
        trial.set_status(status)
    Progress(3, 100).on_trial_complete(0, trials, trials[2])
    assert capsys.readouterr().out.rstrip().endswith("trial  3 ending completed: val H 0.00, best so far 50.00 "
                                                     "(trial 2)")

