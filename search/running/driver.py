"""`run`: load the data once, search on validation classes with Ray Tune + Optuna, then measure the choice on test.

Ray's own Optuna example in the shape of a search that can be interrupted, resumed and recorded: the
trainable with its resources, Optuna's sampler through OptunaSearch, ASHA, one Tuner; around it, the
search's record, its lock and its events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from izf.data import make_split
from izf.errors import error_line
from izf.presets import feature_scaling
from record import MODEL_FILE, EventLog, SearchRecord, now
from search.choosing.final import choose, final_key, measure_on_test, nothing_to_choose
from search.choosing.reevaluate import noise_aware_choice, reevaluate, top_trials
from search.choosing.result import SearchResult, finished_result, result_of
from search.options import SearchOptions
from search.preparing.cluster import check_address, check_resources, start_ray
from search.preparing.identity import OpenedSearch, check_s3, check_storage, open_search
from search.preparing.lease import name_lock
from search.preparing.prepared import Prepared, grace_steps, prepare, warn_if_code_changed
from search.preparing.sampling import METRIC, MODE, check_study_storage, make_sampler, make_searcher, study_has_trials
from search.preparing.space import space
from search.running.callbacks import DriverCallbacks
from search.running.console import (
    Progress,
    cut_by_time_budget,
    print_header,
    print_reevaluation_start,
    print_time_budget,
    quiet_console,
)
from search.running.interrupt import Interruption, SearchInterrupted
from search.running.keeper import Listeners, RecordKeeper
from search.running.trainable import izf_trial

if TYPE_CHECKING:
    from ray import tune

__all__ = ["run"]


def run(options: SearchOptions, *, space: Callable = space, points: list[dict] | None = None,
        listeners: list | None = None, callbacks: list | None = None, notes: dict | None = None,
        opened: OpenedSearch | None = None, trial: Callable[[Prepared, frozenset], object] = izf_trial,
        measure: Callable = measure_on_test) -> SearchResult:
    """Search, choose on validation H, retrain the choice on trainval and measure it once on test.

    Every search gets its own id and folder `<storage>/<name>/<id>/`; `options.resume` (True: the
    newest search of the name, or a search id) continues one with the settings it was started with.
    A second driver on the same name is refused while the first runs.

    Arguments:
        space: a define-by-run function `space(trial, dims)` (default `search.preparing.space.space`; see there).
        points: the first points to evaluate (default: options.warm_start_points fitted into `space`
            (search.preparing.warm), then the dataset's base config as a point of `space`).
        listeners: objects with methods named after the record's events (record.events: search_started,
            trial_started, trial_reported, trial_ended, search_ended), e.g. tracking's MLflowRecorder.
        callbacks: more Tune callbacks (tests use one to kill a trial's process).
        notes: plain values the caller keeps in a new search's record (the CLI: where it tracks to).
        opened: the search as `search.preparing.identity.open_search(options)` found it (the CLI opens it
            first, to check a resume's flags); default: opened here.
        trial: `trial(prepared, completed)` -> the function Tune runs for each trial, given the trials the record
            has as completed (default `izf_trial`: train IZF; bench/search_scale.py's stand-in measures the
            platform without training).
        measure: `measure(options, config, test_split)` -> (test metrics, model file) for the chosen config
            (default `measure_on_test`: retrain it with --final-seeds seeds on trainval).

    Raises:
        SearchInterrupted: SIGINT or SIGTERM stopped it; Tune's state is saved, nothing was chosen or
            tested, and the record says "interrupted" (resume it).
        SearchFailed: no trial produced a validation H (all failed, or the time budget ended first).
        IZFError: bad settings or data, before any trial.
    """
    make_sampler(options.sampler, options.sampler_stream, options.num_samples, {})  # its backend is installed
    check_address(options.address)
    check_study_storage(options.study_storage)
    if options.storage_path.startswith("s3://"):
        check_s3(options.storage_path)  # before its folders are read
    options, record = opened or open_search(options)
    finished = record is not None and record.status == "finished"
    prepared = None if finished else prepare(options, space, points)
    check_storage(options)
    lock = name_lock(options.name_folder)
    lock.acquire(options.search_id)
    try:
        with Interruption() as interruption:
            emit = Listeners(EventLog(options.experiment_path), listeners or []).emit
            if finished:
                emit("search_started", search=record.data)
                emit("search_ended", search=record.data)  # it only remains to record it (tracking)
                return finished_result(options, record)
            return _run(prepared, record, interruption, emit, callbacks or [], notes, trial, measure)
    finally:
        lock.release()


def _run(prepared: Prepared, record: SearchRecord | None, interruption: Interruption, emit: Callable,
         callbacks: list, notes: dict | None, trial: Callable, measure: Callable) -> SearchResult:
    """Start Ray, write the record, run the search; the record and the events say how it ended."""
    options = prepared.options
    quiet_console(options.verbose)
    start_ray(options.address, verbose=options.verbose)
    interruption.reinstall()
    check_resources(options.cpus_per_trial, options.gpus_per_trial)
    print_header(options, None if record is None else record.status)
    if record is None:
        record = SearchRecord(options.experiment_path, {
            "search_id": options.search_id, "name": options.experiment_name, "folder": options.experiment_path,
            "status": "running", "started_at": now(), "resumed_at": [], "options": options.to_record(),
            "description": prepared.describe(), "notes": notes or {}})
        record.save()
    else:
        record.data["resumed_at"] = [*record.get("resumed_at", []), now()]
        record.mark("running", signal=None, error=None)
        warn_if_code_changed(record["description"], prepared.code)
    emit("search_started", search=record.data)
    try:
        result = _search(prepared, record, interruption, emit, callbacks, trial, measure)
    except KeyboardInterrupt as e:
        record.mark("interrupted", signal=getattr(e, "signal_name", "SIGINT"))
        emit("search_ended", search=record.data)
        raise
    except Exception as e:
        record.mark("failed", error=error_line(f"{type(e).__name__}: {e}"))
        emit("search_ended", search=record.data)
        raise
    emit("search_ended", search=record.data)  # a signal from here on leaves the search finished
    return result


def _search(prepared: Prepared, record: SearchRecord, interruption: Interruption, emit: Callable,
            callbacks: list, trial: Callable, measure: Callable) -> SearchResult:
    """The trials (Tune), the choice on validation, and its one measurement on test."""
    from ray import tune

    options, base, val_split = prepared.options, prepared.base, prepared.val_split
    completed = frozenset(t for t, summary in record.get("trials", {}).items() if summary.get("outcome") == "completed")
    progress = [] if options.verbose else [Progress(options.num_samples, base["steps"], completed=completed)]
    keeper = RecordKeeper(record, emit, prepared.params_of, base["steps"], interrupted=lambda: interruption.requested)
    callbacks = DriverCallbacks(options.search_id, [*progress, keeper, *callbacks])
    trainable = tune.with_resources(trial(prepared, completed),
                                    {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})
    started = time.perf_counter()
    try:
        with interruption.tune_loop():
            grid = _tuner(prepared, trainable, callbacks).fit()
    finally:
        callbacks.release()
        # The trials' wall time over every driver of the search (a resumed one adds its own).
        record.data["trials_seconds"] = record.get("trials_seconds", 0.0) + time.perf_counter() - started
    if interruption.requested:
        raise SearchInterrupted(interruption.signal_name)
    print_time_budget(options, record.get("trials", {}))
    trials = grid.get_dataframe()
    if trials.empty or METRIC not in trials or trials[METRIC].isna().all():
        raise nothing_to_choose(options, grid, base)
    chosen = choose(grid, base)
    if options.reevaluate_top:
        top = top_trials(grid, base, options.reevaluate_top)
        print_reevaluation_start(options, top)
        started = time.perf_counter()
        chosen = noise_aware_choice(top, reevaluate(options, top, val_split, record, emit))
        chosen["reevaluation_seconds"] = time.perf_counter() - started
    test_split = make_split(prepared.bench, "test", features=feature_scaling(options.dataset), seed=options.seed)
    measured, model_file = measure(options, chosen["best_config"], test_split)
    record.save_model(model_file)
    record.mark("finished", final={
        **chosen, **measured, "final_key": final_key(chosen["chosen_trial"], chosen["best_config"],
                                                     options.final_seeds),
        "search_seconds": record["trials_seconds"], "n_trials": len(record.get("trials", {})),
        "n_errors": len(grid.errors), "cut_by_time_budget": cut_by_time_budget(record.get("trials", {})),
        "model_file": MODEL_FILE, "git_commit": prepared.code.commit, "git_dirty": prepared.code.dirty})
    return result_of(options, record, trials, model_file)


def _tuner(prepared: Prepared, trainable: object, callbacks: DriverCallbacks) -> tune.Tuner:
    """A new Tuner (Optuna's sampler through OptunaSearch, ASHA), or the saved one of the search to resume."""
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    options, base = prepared.options, prepared.base
    if options.resume and tune.Tuner.can_restore(options.experiment_path):
        return tune.Tuner.restore(options.experiment_path, trainable=trainable, resume_errored=True)
    # A new search, or a resumed one that was stopped before Tune saved any state: start Tune afresh.
    if options.scheduler == "asha":
        scheduler = AsyncHyperBandScheduler(time_attr="step", max_t=base["steps"],
                                            grace_period=grace_steps(options, base), reduction_factor=2)
    else:
        scheduler = FIFOScheduler()
    multi = options.objective == "multi"
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(options, prepared.space, prepared.points, study_has_trials(options)),
            scheduler=scheduler,
            num_samples=options.num_samples,
            max_concurrent_trials=options.max_concurrent,
            time_budget_s=options.time_budget_s,
            # A new trial actor costs ~4 s (process + import torch); train_izf keeps no state between trials.
            reuse_actors=True,
            metric=None if multi else METRIC,
            mode=None if multi else MODE,
        ),
        run_config=tune.RunConfig(
            name=options.search_id,
            storage_path=options.name_folder,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            callbacks=[callbacks],
            verbose=2 if options.verbose else 0,
        ),
    )
