"""A search stopped before its end: Ctrl-C and SIGTERM sent to the driver by pid and --resume, every trial
failing, a time budget no trial reports in, a hung trial cut by the budget. Real Ray, real MLflow (a sqlite store
in the test's folder, the CLI's default), real signals."""

import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import newest_search, reports_on_disk, trial_results
from mlflow import MlflowClient
from ray.tune import Callback
from ray.tune.experiment import Trial
from test_lifecycle import RUN, TINY, outcome, runs_of, versions_of

from search.choosing.final import SearchFailed
from search.cli import main
from search.options import SearchOptions
from search.running.driver import run


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


def test_ctrl_c_then_resume_finishes_the_same_search(tmp_path, monkeypatch, capsys):
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
    # Continued: Tune's rows of a trial are in order and keep those before the interruption. A step may be there
    # twice: Tune writes a result, then asks the trial for its checkpoint in a second round trip, and a Ctrl-C
    # between the two leaves the trial to resume from the checkpoint before (run 3 of docs/benchmarks.md, session
    # 13: [100, 200, 200, 300]). MLflow has each step once (below).
    for tid, n in reports_before.items():
        steps = [r["step"] for r in after[tid]]
        assert steps == sorted(steps) and len(steps) >= n and len(steps) - len(set(steps)) <= 1, steps
    (parent,), children = runs_of(tmp_path, database=new_store)
    assert parent.info.status == "FINISHED" and parent.data.tags["izf.status"] == "finished"
    assert parent.data.metrics["test_softmax_h"] == pytest.approx(done["test"]["softmax_h"])
    assert parent.data.tags["izf.final_key"] and len(children) == 3
    assert all(c.info.status == "FINISHED" for c in children)
    client = MlflowClient(f"sqlite:///{tmp_path}/{new_store}")
    for child in children:  # every report, those before the interruption included
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "step_logged")]
        assert sorted(steps) == sorted({r["step"] for r in after[child.data.tags["izf.trial_id"]]})  # each once
    (version,) = versions_of(tmp_path, database=new_store)
    assert version.tags["parent_run_id"] == parent.info.run_id and done["mlflow"]["registered"]
    assert done["mlflow"]["champion"] is True

    # Resuming the finished search records nothing new (and starts no Ray); changed settings are refused before any
    # work. In this process: what the command runs.
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code, again = main(["--resume", "--name", "ctrl-c", "--json"]), capsys.readouterr()
    assert code == 0 and json.loads(again.out)["mlflow"]["registered"] is False, again.err[-3000:]
    assert "had no record" not in again.err  # the store has it now: nothing replayed
    assert len(versions_of(tmp_path, database=new_store)) == 1 and len(runs_of(tmp_path, database=new_store)[0]) == 1
    for flags, message in ((["--num-samples", "9"], "cannot change: --num-samples 9 (the search has 3)"),
                           (["--mlflow-uri", f"sqlite:///{tmp_path / 'other.db'}"], "this search records to")):
        code, refused = main(["--resume", "--name", "ctrl-c", *flags]), capsys.readouterr().err
        assert code == 1 and message in refused and refused.startswith("error: "), refused[-2000:]


def test_sigterm_stops_a_search_as_ctrl_c_does(tmp_path):
    command = [*RUN, *TINY, "--num-samples", "2", "--max-concurrent", "1", "--max-steps", "2000", "--eval-every", "200",
               "--name", "term"]  # one trial at a time: one Ray worker (its imports) fewer
    driver, _, err = signalled_after_a_report(tmp_path, command, "term", signal.SIGTERM)
    assert driver.returncode == 130, err[-3000:]  # Ray's own SIGTERM handler aborted the driver (134)
    assert "interrupted (SIGTERM): continue with" in err
    (parent,), children = runs_of(tmp_path)
    assert parent.info.status == "KILLED" and all(c.info.status != "RUNNING" for c in children)


def test_a_search_whose_every_trial_fails_ends_with_one_error_line(tmp_path, local_ray, monkeypatch, capsys):
    # Noise of 1e30 on every input makes every loss NaN: each trial diverges, is retried once, diverges again.
    # The command's main() in this process, on the module's Ray (the CLI's own process: test_campaign's failing search).
    monkeypatch.chdir(tmp_path)
    code = main([*TINY, "--num-samples", "2", "--max-steps", "80", "--eval-every", "40", "--max-failures", "1",
                 "--set", "input_noise=1e30", "--set", "check_every=10"])
    stderr = capsys.readouterr().err
    assert code == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: all 2 trials failed (each after 1 retry)") and "DivergenceError" in last
    assert "error.txt" in last and "Traceback" not in stderr
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
    from search.choosing.summary import print_summary
    from tracking import Tracker
    from tracking.recorder import MLflowRecorder

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "izf-synthetic")
    options = SearchOptions(num_samples=200, storage_path=str(tmp_path), max_steps=40, eval_every=20,
                            time_budget_s=30, fixed_params={"depth": 2, "hidden_scale": 0.25}, scheduler="none")
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
    assert f"time budget reached (30 s): {result.n_trials} of 200 trials started; cut short: " in out and hung in out
    cut = ", ".join(result.cut_by_time_budget)
    assert f": {result.n_trials} trials (0 failed, {len(result.cut_by_time_budget)} cut by the time budget: {cut}) " \
        "in " in out and "top trials by validation H (*: cut by the time budget):" in out
    table = out.split("top trials by validation H")[1].splitlines()[2:]
    ids = set(result.trials["trial_id"])
    shown = [row.split()[0] for row in itertools.takewhile(lambda row: row.split()[:1] and
                                                             row.split()[0].rstrip("*") in ids, table)]
    assert shown and all(t.endswith("*") == (t.rstrip("*") in result.cut_by_time_budget) for t in shown)
    assert 0 <= result.test["softmax_h"] <= 1 and result.chosen_trial in set(result.trials["trial_id"])
    (parent,), children = runs_of(tmp_path)  # n_trials: the trials that started, each a run
    assert parent.info.status == "FINISHED" and len(children) == result.n_trials == len(record["trials"])
    assert all(c.info.status != "RUNNING" for c in children)
