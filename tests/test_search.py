"""The search with real Ray (a local instance on this machine) on the built-in synthetic data."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import ray
from conftest import TINY_FIX, TINY_SET, newest_search, reports_on_disk, trial_results
from mlflow import MlflowClient

from izf.data import load_dataset
from izf.errors import ConfigError
from record.study import open_storage
from search import SearchOptions
from search.preparing.identity import open_search
from search.preparing.prepared import prepare
from search.preparing.sampling import make_searcher, study_storage
from search.preparing.space import FIELDS, Dims, bind
from search.preparing.space import space as default_space
from search.running.driver import run
from search.running.trainable import staging_folder, sweep_staging
from search.running.worker import dataset_memory

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_DIMS = Dims(features=128, attributes=24)


def test_search_with_asha_and_a_persistent_study(tmp_path, local_ray):
    study = f"sqlite:///{tmp_path / 'optuna.db'}"
    cheap = {"synthetic_per_class": 50, "batch_size": 128}
    short = dict(max_steps=80, eval_every=20, max_concurrent=2)  # ASHA's rungs at 20 and 40 steps
    options = SearchOptions(num_samples=6, storage_path=str(tmp_path / "rr"), study_storage=study,
                            name="study-a", grace_steps=20, fixed_params=cheap, **short)
    result = run(options)
    trials = optuna.load_study(study_name="study-a", storage=study).trials
    assert result.n_trials == 6 and result.n_errors == 0 and len(trials) == 6
    assert all(t.value is not None for t in trials)
    steps = result.trials["step"]
    assert (steps < 80).any(), "ASHA stopped no trial early"
    # The default point reached Optuna as its first trial, and a Tune trial ran exactly that point.
    point = trials[0].params
    assert point["depth"] == 4 and point["use_mmd"] is True and point["mmd_weight"] == 0.01
    assert point["hidden_scale"] == 1.0 and point["latent_split"] == 24  # the preset's 128 hidden, d_s = A
    ran = [rows[0]["config"] for rows in trial_results(result.experiment_path).values()]
    assert any(point.items() <= config.items() for config in ran)  # a config also holds the fields it sets
    assert 0 <= result.test["softmax_h"] <= 1 and result.best_config["steps"] <= 80

    # A second search of the same name: a folder of its own beside the first, the same Optuna study. Its trial
    # removes the checkpoint staging folder of a worker that was killed inside tune.report (a driver killed with
    # SIGKILL leaves one per running trial).
    orphan = Path(tempfile.gettempdir()) / f"izf-ckpt-{_dead_pid()}-killed"
    orphan.mkdir()
    (orphan / "state.pt").write_bytes(b"checkpoint")
    again = run(SearchOptions(num_samples=1, storage_path=str(tmp_path / "rr"), study_storage=study,
                              name="study-a", fixed_params=TINY_FIX, fit_overrides=TINY_SET, scheduler="none",
                              max_steps=40, eval_every=40))
    assert again.n_trials == 1 and again.search_id != result.search_id
    assert Path(again.experiment_path).parent == Path(result.experiment_path).parent
    assert len(trial_results(result.experiment_path)) == 6 and len(trial_results(again.experiment_path)) == 1
    assert not orphan.exists(), "a dead worker's checkpoint staging folder is left"
    assert len(optuna.load_study(study_name="study-a", storage=study).trials) == 7


def faulty_space(trial, dims):
    """lr 1e30 diverges (DivergenceError); clamp -1 is rejected by FitConfig inside the trial (ConfigError). The
    rest is the tests' small model (TINY_FIX's depth, 32 hidden units)."""
    trial.suggest_categorical("lr", [1e-3, 1e30])
    trial.suggest_categorical("clamp", [2.0, -1.0])
    return {"check_every": 10, "depth": 2, "hidden": 32, "synthetic_per_class": 50}


def test_failing_and_diverging_trials_leave_the_search_intact(tmp_path, local_ray):
    options = SearchOptions(num_samples=4, storage_path=str(tmp_path / "rr"), max_failures=0, scheduler="none",
                            sampler="random", max_steps=100, eval_every=50, max_concurrent=2)
    points = [{"lr": 1e30, "clamp": 2.0}, {"lr": 1e-3, "clamp": -1.0}, {"lr": 1e-3, "clamp": 2.0}]
    result = run(options, space=faulty_space, points=points)
    assert result.n_trials == 4 and result.n_errors >= 2
    errored = list(Path(result.experiment_path).glob("*/error.txt"))
    messages = " ".join(p.read_text() for p in errored)
    assert "DivergenceError" in messages and "clamp must be > 0" in messages
    assert result.best_config["clamp"] == 2.0 and result.best_config["lr"] == 1e-3
    assert 0 <= result.test["softmax_h"] <= 1




@pytest.mark.parametrize("sampler", ["cmaes", "gp", "nsga2"])
def test_every_offered_sampler_proposes_through_tunes_searcher(tmp_path, sampler):
    """`--sampler cmaes` used to run its trials and then fail: Optuna's CMA-ES backend was not installed, and
    Optuna imports it at the first model-based proposal. The searcher a search hands to Tune (ResumableOptunaSearch
    on the search's study, the space bound to the data) is asked and told here as Tune does, past the start-up
    trials; tpe and random run whole searches in the other tests."""
    options, _ = open_search(SearchOptions(sampler=sampler, num_samples=12, storage_path=str(tmp_path),
                                           fixed_params=TINY_FIX, start_from_base=False))
    prepared = prepare(options, default_space, points=[])
    searcher = make_searcher(options, prepared.space, [], study_exists=False)
    proposed = []
    for i in range(12):  # GPSampler proposes by its model from the 11th
        config = searcher.suggest(f"t{i}")
        assert config["depth"] == TINY_FIX["depth"]  # --fix holds through PartialFixedSampler
        proposed.append(config["lr"])
        searcher.on_trial_complete(f"t{i}", {"best_h": 0.1 * i, "train_seconds": 1.0 + i})
    assert len(set(proposed)) == 12  # the sampler proposed twelve points
    trials = optuna.load_study(study_name=options.experiment_name, storage=open_storage(study_storage(options))).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 12


def wider(trial, dims):
    """The default space and one more dimension (Tune saves the space with its state: module level)."""
    fields = default_space(trial, dims)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)  # the one edit
    return fields


def test_a_dimension_added_in_one_place_is_sampled_logged_and_trained_with(tmp_path, local_ray):
    import torch
    from ray.tune import ExperimentAnalysis

    from search.running.trainable import STATE_FILE
    from tracking import Tracker
    from tracking.recorder import MLflowRecorder

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "izf-wider")
    result = run(SearchOptions(num_samples=3, max_concurrent=1, scheduler="none", max_steps=20, eval_every=20,
                               fixed_params=TINY_FIX, fit_overrides=TINY_SET, storage_path=str(tmp_path / "rr"),
                               start_from_base=False),
                 space=wider, listeners=[MLflowRecorder(tracker)])
    trials = ExperimentAnalysis(result.experiment_path).trials
    sampled = {t.trial_id: t.config["weight_decay"] for t in trials}
    assert len(set(sampled.values())) == 3 and all(1e-5 <= v <= 1e-3 for v in sampled.values())
    runs = tracker.client.search_runs([tracker.experiment_id()], filter_string="tags.`izf.role` = 'trial'")
    assert {r.data.tags["izf.trial_id"]: float(r.data.params["weight_decay"]) for r in runs} == sampled
    for t in trials:  # each trial's checkpoint holds the FitConfig it trained with
        (state,) = Path(t.path).glob(f"checkpoint_*/{STATE_FILE}")
        assert torch.load(state, weights_only=True)["config"]["weight_decay"] == sampled[t.trial_id]
    assert result.best_config["weight_decay"] == sampled[result.chosen_trial]


def test_multi_objective_search_reports_its_pareto_front(tmp_path, local_ray):
    result = run(SearchOptions(objective="multi", sampler="nsga2", scheduler="none", num_samples=4, max_concurrent=1,
                               max_steps=40, eval_every=20, storage_path=str(tmp_path),
                               fixed_params=TINY_FIX, fit_overrides=TINY_SET))
    front, trials = result.pareto, result.trials
    assert not front.empty and set(front["trial_id"]) <= set(trials["trial_id"])
    for _, r in trials.iterrows():  # a trial is on the front exactly when no trial dominates it
        dominated = ((trials["best_h"] >= r["best_h"]) & (trials["train_seconds"] <= r["train_seconds"])
                     & ((trials["best_h"] > r["best_h"]) | (trials["train_seconds"] < r["train_seconds"]))).any()
        assert (r["trial_id"] in set(front["trial_id"])) == (not dominated)


def test_gpus_requested_without_gpus_fails_at_once(tmp_path, local_ray):
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"has no GPU"):
        run(SearchOptions(gpus_per_trial=0.5, storage_path=str(tmp_path), num_samples=2))
    # "At once": a search left to wait for a GPU would never end; 120 s is generous on a busy 2-core machine.
    assert time.perf_counter() - started < 120


def test_multi_objective_with_asha_is_refused():
    with pytest.raises(ConfigError, match="needs --scheduler none"):
        SearchOptions(objective="multi", scheduler="asha")


def test_cli_set_fixes_fitconfig_values_for_every_trial():
    from search.arguments import parse
    from search.preparing.prepared import base_config

    options, _, _ = parse(["--set", "subnet_precision=bfloat16", "--set", "mixing=lu", "--set", "weight_decay=0.001"])
    assert options.fit_overrides == {"subnet_precision": "bfloat16", "mixing": "lu", "weight_decay": 0.001}
    base = base_config(options)
    assert (base["subnet_precision"], base["mixing"], base["weight_decay"]) == ("bfloat16", "lu", 0.001)
    for bad, message in ((["--set", "nosuch=1"], "unknown FitConfig option"),
                         (["--set", "subnet_precision=bf16"], "subnet_precision must be one of"),
                         (["--set", "lr=0.1"], "the search space samples it"),
                         (["--set", "novalue"], "KEY=VALUE")):
        with pytest.raises(ConfigError, match=message):
            parse(bad)


def test_cli_fix_holds_space_parameters_and_bad_ones_fail_before_any_work(tmp_path):
    from search.arguments import parse
    from search.preparing.sampling import check_fixed, make_sampler

    options, _, _ = parse(["--fix", "depth=3", "--fix", "hidden_scale=0.25", "--fix", "use_mmd=true"])
    assert options.fixed_params == {"depth": 3, "hidden_scale": 0.25, "use_mmd": True}
    study = optuna.create_study(sampler=make_sampler("tpe", 0, 12, options.fixed_params))
    for _ in range(5):
        trial = study.ask()
        default_space(trial, SYNTHETIC_DIMS)
        assert {k: trial.params[k] for k in options.fixed_params} == options.fixed_params
        study.tell(trial, trial.params["lr"])
    for fixed, message in (({"nosuch": 1}, "not a parameter of the search space"),
                           ({"mmd_weight": 0.1}, "only in some trials"),
                           ({"depth": 12}, "out of range"),
                           ({"latent_split": 100}, "out of range"),  # the range follows the data: A = 24
                           ({"hidden_scale": 0.75}, "not in")):
        with pytest.raises(ConfigError, match=message):
            check_fixed(bind(default_space, SYNTHETIC_DIMS), fixed)
        # run() checks once the data is loaded: before Ray starts, before anything is written
        with pytest.raises(ConfigError, match=message):
            run(SearchOptions(storage_path=str(tmp_path), fixed_params=fixed))
    assert not any(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse(["--fix", "depth"])


def test_checkpoint_with_every_kth_report(tmp_path, local_ray):
    options = SearchOptions(num_samples=1, scheduler="none", storage_path=str(tmp_path / "rr"), max_steps=60,
                            eval_every=10, checkpoint_every=4, name="every4",
                            fit_overrides=dict(hidden=16, synthetic_per_class=5, classifier_epochs=1))
    result = run(options, space=fixed_space, points=[])
    (rows,) = trial_results(result.experiment_path).values()
    assert [r["step"] for r in rows if r.get("checkpoint_dir_name")] == [40]
    with pytest.raises(ConfigError, match="checkpoint-every"):
        SearchOptions(checkpoint_every=0)


def test_cli_no_base_first():
    from search.arguments import parse

    assert parse([])[0].start_from_base is True
    assert parse(["--no-base-first"])[0].start_from_base is False


def test_resume_without_experiment(tmp_path, local_ray):
    with pytest.raises(ConfigError, match="no search named 'izf-synthetic'"):
        run(SearchOptions(resume=True, storage_path=str(tmp_path), num_samples=2))


def test_driver_killed_then_resumed_finishes_without_rerunning(tmp_path):
    name_folder = tmp_path / "rr" / "killed"
    command = [sys.executable, str(ROOT / "search" / "run.py"), "--num-samples", "4", "--max-steps", "100",
               "--eval-every", "50", "--scheduler", "none", "--storage-path", str(tmp_path / "rr"),
               "--name", "killed", "--max-concurrent", "2", "--fix", "depth=3", "--fix", "hidden_scale=0.25",
               "--fix", "synthetic_per_class=50", "--fix", "batch_size=128",
               "--set", "classifier_epochs=5"]
    driver = subprocess.Popen(command, cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # until the record holds two trials as completed
            experiment = newest_search(name_folder)
            record = experiment / "izf_search.json"
            trials = json.loads(record.read_text()).get("trials", {}) if record.is_file() else {}
            done = [tid for tid, t in trials.items() if t.get("outcome") == "completed"]
            if len(done) >= 2:
                break
            time.sleep(1)
        assert len(done) >= 2, "no trial finished before the kill"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    # What the record holds as completed is not run again, whatever Tune's last snapshot says (under load it can
    # hold such a trial as running, at an earlier checkpoint).
    before = {tid: len(rows) for tid, rows in reports_on_disk(experiment).items() if tid in done}
    resumed = subprocess.run([*command, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr and "Error handling checkpoint" not in resumed.stderr, resumed.stderr
    after = trial_results(experiment)
    assert len(after) == 4
    # The fixed parameters hold in every trial, the ones the resumed search started too.
    assert {(rows[-1]["config"]["depth"], rows[-1]["config"]["hidden_scale"]) for rows in after.values()} == {(3, 0.25)}
    for tid, n in before.items():
        assert len(after[tid]) == n, f"completed trial {tid} ran again"
    assert "test, measured once" in resumed.stdout
    # Tracking (on by default, ./mlflow.db): the resumed search reused its parent run; one run per trial.
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("izf-synthetic").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # A trial the killed driver had started but Tune had not yet saved is unknown to the resumed search:
    # its run is closed as lost, not left running.
    lost = [r for r in children if r.data.tags.get("izf.outcome") == "lost"]
    assert all(r.info.status == "KILLED" for r in lost)
    assert sorted(r.data.tags["izf.trial_id"] for r in children if r not in lost) == sorted(after)
    assert all(r.info.status != "RUNNING" for r in children)


def _dead_pid() -> int:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(gone.stdout)


def test_staging_folders_of_gone_processes_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with staging_folder() as mine:
        (Path(mine) / "state.pt").write_bytes(b"checkpoint")
        dead = tmp_path / f"izf-ckpt-{_dead_pid()}-abc"
        dead.mkdir()
        (dead / "state.pt").write_bytes(b"checkpoint")
        other = tmp_path / "izf-ckpt-bench-xyz"  # not a staging folder's name: left alone
        other.mkdir()
        assert sweep_staging() == [dead]
        assert not dead.exists() and Path(mine).is_dir() and other.is_dir()
    assert not Path(mine).exists()


def test_default_space_only_asks_for_values_deterministically():
    """Ray's OptunaSearch calls the space on the driver for every trial: it must ask the trial for values
    and do nothing else (no I/O, no randomness of its own), quickly."""
    class OnlyAsks:
        def __init__(self, trial):
            self.trial, self.asked = trial, []

        def __getattr__(self, name):
            assert name.startswith("suggest_"), f"the space used trial.{name}"
            self.asked.append(name)
            return getattr(self.trial, name)

    def points(seed):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        out = []
        for _ in range(50):
            trial = study.ask()
            assert set(default_space(OnlyAsks(trial), SYNTHETIC_DIMS)) <= FIELDS  # it returns fields only
            out.append(trial.params)
            study.tell(trial, 0.0)
        return out

    first = points(7)
    assert points(7) == first and points(8) != first


def fixed_space(trial, dims):
    trial.suggest_categorical("depth", [2])


def test_dataset_measure_tells_a_private_copy_from_shared_memory(local_ray):
    split = load_dataset("toy")
    assert dataset_memory(split)["dataset_shared"] == 0.0  # built in this process: private heap
    shared = ray.get(ray.remote(dataset_memory).remote(ray.put(split)))
    assert shared["dataset_shared"] == 1.0


def test_concurrent_trials_share_one_copy_of_the_dataset(tmp_path, local_ray):
    options = SearchOptions(dataset="synthetic-sun", num_samples=2, max_concurrent=2, scheduler="none",
                            storage_path=str(tmp_path / "rr"), max_steps=20, eval_every=20,
                            fit_overrides=dict(hidden=32, synthetic_per_class=5, classifier_epochs=1, batch_size=64))
    result = run(options, space=fixed_space, points=[])
    rows = list(trial_results(result.experiment_path).values())
    assert len(rows) == 2
    spans = [(r[0]["timestamp"] - r[0]["time_this_iter_s"], r[-1]["timestamp"]) for r in rows]
    assert max(s for s, _ in spans) < min(e for _, e in spans), "the two trials did not run at the same time"
    for r in rows:
        assert r[0]["dataset_mb"] > 50  # the SUN-shaped validation split
        assert r[0]["dataset_shared"] == 1.0  # every array lies in a shared-memory mapping
    assert result.n_errors == 0


def test_the_sun_scale_options_are_searched_and_every_point_is_a_valid_fitconfig():
    from dataclasses import asdict

    from izf.training import FitConfig
    from search.preparing.space import fit_fields

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        returned = default_space(trial, SYNTHETIC_DIMS)
        config = FitConfig.from_dict({**asdict(FitConfig()), **fit_fields({**trial.params, **returned})})
        seen.add((config.centres, config.prototypes_per_step, config.mmd_scale if config.mmd_weight else None))
        study.tell(trial, 0.0)
    assert {c for c, _, _ in seen} == {"batch", "training"} and {k for _, k, _ in seen} == {0, 64}
    assert {m for _, _, m in seen} == {"fixed", "median", None}
    assert ("batch", 64) not in {(c, k) for c, k, _ in seen}  # sampled prototypes only against training centres


def test_the_study_gets_each_trials_end_once_and_no_report_along_the_way(tmp_path):
    """A killed driver's restored searcher may report to a trial the study saw finish after Tune's last
    snapshot; Ray's OptunaSearch would raise UpdateFinishedTrialError and end the resumed search."""
    from search.running.optuna_search import ResumableOptunaSearch

    def tiny(trial):
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = ResumableOptunaSearch(space=tiny, metric="best_h", mode="max", study_name="s",
                                     storage=optuna.storages.RDBStorage(storage))
    assert searcher.suggest("t1") is not None
    study = optuna.load_study(study_name="s", storage=storage)
    study.tell(study.trials[0].number, 0.7)  # what the killed driver had told the database
    searcher.on_trial_result("t1", {"best_h": 0.5, "training_iteration": 3})
    searcher.on_trial_complete("t1", {"best_h": 0.6, "training_iteration": 4})
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.value == 0.7 and trial.state == optuna.trial.TrialState.COMPLETE
    # A running trial's reports are not written to the study (only Optuna's pruners would read them); its end is.
    assert searcher.suggest("t2") is not None
    searcher.on_trial_result("t2", {"best_h": 0.5, "training_iteration": 1})
    assert optuna.load_study(study_name="s", storage=storage).trials[1].intermediate_values == {}
    searcher.on_trial_complete("t2", {"best_h": 0.55, "training_iteration": 2})
    assert optuna.load_study(study_name="s", storage=storage).trials[1].value == 0.55


def test_tunes_traceback_for_a_checkpoint_already_gone_is_one_line():
    """After a killed driver, Tune logs a 20-line traceback for a checkpoint folder that is rightly gone."""
    import logging

    from search.running.console import quiet_console

    quiet_console(verbose=False)
    logger, seen = logging.getLogger("ray.tune.execution.tune_controller"), []
    handler = logging.Handler()
    handler.emit = seen.append
    logger.addHandler(handler)
    try:
        try:
            raise FileNotFoundError(2, "No such file or directory", "/rr/x/checkpoint_000001")
        except FileNotFoundError:
            logger.exception("Trial %s: Error handling checkpoint %s", "train_izf_1", "<checkpoint>")
    finally:
        logger.removeHandler(handler)
    (record,) = seen
    assert record.exc_info is None and "Error handling" not in record.getMessage()
    assert record.getMessage().startswith("Trial train_izf_1: an earlier checkpoint of this trial was already gone")
