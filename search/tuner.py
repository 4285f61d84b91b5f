"""`run`: load the data once, search on validation classes with Ray Tune + Optuna, then measure the choice on test."""

import dataclasses
import inspect
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from izf.data import load_benchmark, make_split
from izf.presets import feature_scaling, preset
from izf.provenance import CodeVersion, code_version
from izf.training import FitConfig
from search.callbacks import DriverCallbacks
from search.cluster import check_address, check_resources, start_ray
from search.events import EventLog, Listeners, RecordKeeper
from search.final import choose, final_key, measure_on_test
from search.interrupt import Interruption, SearchInterrupted
from search.lifecycle import SearchFailed, check_storage, open_search
from search.lock import NameLock
from search.options import SearchOptions
from search.progress import (
    Progress,
    cut_by_time_budget,
    error_line,
    print_header,
    print_reevaluation_start,
    print_time_budget,
    quiet_console,
)
from search.record import MODEL_FILE, SearchRecord
from search.reevaluate import noise_aware_choice, reevaluate, top_trials
from search.result import SearchResult, finished_result, result_of
from search.sampling import (
    METRIC,
    MODE,
    check_fixed,
    check_study_storage,
    make_sampler,
    make_searcher,
    study_has_trials,
    study_storage,
)
from search.space import Dims, base_point, bind, fit_fields, searched_fields, space
from search.warm import fitted_points

__all__ = ["SearchResult", "SearchStart", "run"]


@dataclass
class SearchStart:
    """What is known once the data is loaded, before any trial."""

    options: SearchOptions
    data_checksum: str
    base: dict  # FitConfig fields every trial starts from
    feature_dim: int
    attribute_dim: int
    interruption: Interruption = field(default_factory=Interruption)
    resumed: bool = False  # a --resume of an earlier search
    space_source: str = ""  # the search space's code, as run
    code: CodeVersion = field(default_factory=code_version)  # the code this driver runs

    @property
    def interrupted(self) -> bool:
        """Whether SIGINT or SIGTERM has stopped the search (trials cut now are to be continued, not done)."""
        return self.interruption.requested

    def describe(self) -> dict:
        """The search's settings as plain values (the parent run's params; izf_search.json)."""
        o = self.options
        return {"dataset": o.dataset, "name": o.experiment_name, "sampler": o.sampler, "scheduler": o.scheduler,
                "objective": o.objective, "num_samples": o.num_samples, "max_concurrent": o.max_concurrent,
                "max_steps": self.base["steps"], "grace_steps": _grace_steps(o, self.base),
                "seed": o.seed, "final_seeds": o.final_seeds, "time_budget_s": o.time_budget_s,
                "reevaluate_top": o.reevaluate_top, "reevaluate_seeds": o.reevaluate_seeds,
                "start_from_base": o.start_from_base, "sampler_seed": o.sampler_stream,
                "warm_start": o.warm_start, "warm_start_points": len(o.warm_start_points),
                "fixed_params": o.fixed_params, "checkpoint_every": o.checkpoint_every,
                "cpus_per_trial": o.cpus_per_trial, "gpus_per_trial": o.gpus_per_trial, "max_failures": o.max_failures,
                "data_checksum": self.data_checksum, "git_commit": self.code.commit, "git_dirty": self.code.dirty,
                "base": self.base, "feature_dim": self.feature_dim,
                "attribute_dim": self.attribute_dim, "space": self.space_source,
                "study": {"storage": study_storage(o), "name": o.experiment_name}}

    def params_of(self, sampled: dict) -> dict:
        """Every FitConfig value a trial with these sampled parameters trains with."""
        return {**self.base, **fit_fields(sampled)}


def _grace_steps(options: SearchOptions, base: dict) -> int:
    return options.grace_steps or max(base["eval_every"], base["steps"] // 4)


def _base_config(options: SearchOptions, eval_every_default: int) -> dict:
    base = dataclasses.asdict(FitConfig.from_dict({**preset(options.dataset), **options.fit_overrides}))
    if options.max_steps is not None:
        base["steps"] = options.max_steps
    base["eval_every"] = options.eval_every or base["eval_every"] or eval_every_default
    base["eval_every"] = min(base["eval_every"], base["steps"])
    base["seed"] = options.seed
    base.pop("device")
    return base


def _tuner(options: SearchOptions, trainable: object, base: dict, space: Callable, points: list[dict],
           callbacks: DriverCallbacks) -> "tune.Tuner":  # noqa: F821
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    if options.resume and tune.Tuner.can_restore(options.experiment_path):
        return tune.Tuner.restore(options.experiment_path, trainable=trainable, resume_errored=True)
    # A new search, or a resumed one that was stopped before Tune saved any state: start Tune afresh.
    if options.scheduler == "asha":
        scheduler = AsyncHyperBandScheduler(time_attr="step", max_t=base["steps"],
                                            grace_period=_grace_steps(options, base), reduction_factor=2)
    else:
        scheduler = FIFOScheduler()
    multi = options.objective == "multi"
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(options, space, points, study_has_trials(options)),
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


def _quiet_ray(verbose: bool) -> None:
    # Every report carries a checkpoint (a retried trial resumes, not restarts); Tune warns about that.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's newer console prints its configuration box and a TensorBoard hint even at verbose=0; the
    # older one is silent there. Read by Tune at the start of every fit.
    if verbose:
        os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
    else:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"


def _nothing_to_choose(options: SearchOptions, grid: "ResultGrid", base: dict) -> SearchFailed:  # noqa: F821
    if grid.errors and len(grid.errors) == len(grid):
        first = error_line(str(grid.errors[0]))
        retries = f"{options.max_failures} {'retry' if options.max_failures == 1 else 'retries'}"
        if len(grid) == 1:
            return SearchFailed(f"its only trial failed (after {retries}); its error is in "
                                f"{options.experiment_path}/*/error.txt: {first}")
        return SearchFailed(f"all {len(grid)} trials failed (each after {retries}); their "
                            f"errors are in {options.experiment_path}/*/error.txt; the first: {first}")
    budget = f" within --time-budget {options.time_budget_s:g} s" if options.time_budget_s else ""
    return SearchFailed(f"no trial reported a validation H{budget} (a trial's first report comes after "
                        f"{base['eval_every']} steps); raise --time-budget or lower --eval-every")


def run(options: SearchOptions, *, space: Callable = space, points: list[dict] | None = None,
        listeners: list | None = None, callbacks: list | None = None, notes: dict | None = None) -> SearchResult:
    """Search, choose on validation H, retrain the choice on trainval and measure it once on test.

    Every search gets its own id and folder `<storage>/<name>/<id>/`; `options.resume` (True: the
    newest search of the name, or a search id) continues one with the settings it was started with.
    A second driver on the same name is refused while the first runs.

    Arguments:
        space: a define-by-run function `space(trial, dims)` (default `search.space.space`; see there).
        points: the first points to evaluate (default: options.warm_start_points fitted into `space`
            (search.warm), then the dataset's base config as a point of `space`).
        listeners: objects with methods named after the record's events (search.events: search_started,
            trial_started, trial_reported, trial_ended, search_ended), e.g. tracking's MLflowRecorder.
        callbacks: more Tune callbacks (tests use one to kill a trial's process).
        notes: plain values the caller keeps in a new search's record (the CLI: where it tracks to).

    Raises:
        SearchInterrupted: SIGINT or SIGTERM stopped it; Tune's state is saved, nothing was chosen or
            tested, and the record says "interrupted" (resume it).
        SearchFailed: no trial produced a validation H (all failed, or the time budget ended first).
        IZFError: bad settings or data, before any trial.
    """
    make_sampler(options.sampler, options.sampler_stream, options.num_samples, {})  # its backend is installed
    check_address(options.address)
    check_study_storage(options.study_storage)
    options, record = open_search(options)
    finished = record is not None and record.status == "finished"
    prepared = None if finished else _prepare(options, space, points)
    check_storage(options)
    lock = NameLock(options.name_folder)
    lock.acquire(options.search_id)
    try:
        with Interruption() as interruption:
            emit = Listeners(EventLog(options.experiment_path), listeners or []).emit
            if finished:
                emit("search_started", search=record.data)
                emit("search_ended", search=record.data)  # it only remains to record it (tracking)
                return finished_result(options, record)
            return _run(options, record, interruption, prepared, emit, callbacks or [], notes)
    finally:
        lock.release()


@dataclass
class _Prepared:
    """The data and the checked space of a search, before anything is written or Ray started."""

    bench: "Benchmark"  # noqa: F821
    val_split: "Split"  # noqa: F821
    base: dict
    space: Callable  # the space bound to the data's dims: what OptunaSearch calls
    points: list[dict]
    space_source: str

def _prepare(options: SearchOptions, space_fn: Callable, points: list[dict] | None) -> _Prepared:
    bench = load_benchmark(options.dataset, root=options.data_root, seed=options.seed)
    val_split = make_split(bench, "val", features=feature_scaling(options.dataset), seed=options.seed)
    base = _base_config(options, eval_every_default=500)
    options.check_steps(base["steps"])
    dims = Dims(val_split.feature_dim, val_split.attribute_dim)
    searched_fields(space_fn, dims)  # what it returns are FitConfig fields
    bound = bind(space_fn, dims)
    check_fixed(bound, options.fixed_params)
    if points is None:
        base_pt = base_point(space_fn, dims, base, fixed=options.fixed_params)
        points = fitted_points(space_fn, dims, options.warm_start_points, base_pt, options.fixed_params)
        if options.start_from_base and base_pt not in points:
            points.append(base_pt)
    try:
        source = inspect.getsource(space_fn)
    except (OSError, TypeError):  # defined where its source cannot be read (an interactive session)
        source = repr(space_fn)
    return _Prepared(bench, val_split, base, bound, points, source)


def _run(options: SearchOptions, record: SearchRecord | None, interruption: Interruption, prepared: _Prepared,
         emit: Callable, callbacks: list, notes: dict | None) -> SearchResult:
    base, val_split = prepared.base, prepared.val_split
    _quiet_ray(options.verbose)
    quiet_console(options.verbose)
    start_ray(options.address, verbose=options.verbose)
    interruption.reinstall()
    check_resources(options.cpus_per_trial, options.gpus_per_trial)
    start = SearchStart(options, prepared.bench.checksum(), base, val_split.feature_dim, val_split.attribute_dim,
                        interruption, resumed=record is not None, space_source=prepared.space_source)
    print_header(options, None if record is None else record.status)
    if record is None:
        record = SearchRecord(options.experiment_path, {
            "search_id": options.search_id, "name": options.experiment_name, "folder": options.experiment_path,
            "status": "running",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_at": [], "options": options.to_record(),
            "description": start.describe(), "notes": notes or {}})
        record.save()
    else:
        record.data["resumed_at"] = [*record.get("resumed_at", []), time.strftime("%Y-%m-%dT%H:%M:%S%z")]
        record.mark("running", signal=None, error=None)
        _warn_if_code_changed(record["description"], start.code)
    emit("search_started", search=record.data)
    try:
        result = _search(options, record, start, prepared, emit, callbacks)
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


def _warn_if_code_changed(description: dict, code: CodeVersion) -> None:
    started = CodeVersion(description.get("git_commit", "unknown"), description.get("git_dirty", False))
    if started != code:
        print(f"warning: the code is {code.describe()}, the search started at {started.describe()}; the trials "
              "from here on and the final model run this code (the model records it)", file=sys.stderr, flush=True)


def _search(options: SearchOptions, record: SearchRecord, start: SearchStart, prepared: _Prepared,
            emit: Callable, callbacks: list) -> SearchResult:
    from ray import tune

    from search.trainable import train_izf

    base, val_split = start.base, prepared.val_split
    completed = frozenset(t for t, summary in record.get("trials", {}).items() if summary.get("outcome") == "completed")
    progress = [] if options.verbose else [Progress(options.num_samples, base["steps"], completed=completed)]
    keeper = RecordKeeper(record, emit, start.params_of, base["steps"], interrupted=lambda: start.interrupted)
    callbacks = DriverCallbacks(options.search_id, [*progress, keeper, *callbacks])
    trainable = tune.with_resources(
        tune.with_parameters(train_izf, split=val_split, base=base, threads=options.threads_per_trial,
                             checkpoint_every=options.checkpoint_every, completed=completed),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    started = time.perf_counter()
    try:
        with start.interruption.tune_loop():
            grid = _tuner(options, trainable, base, prepared.space, prepared.points, callbacks).fit()
    finally:
        callbacks.release()
        # The trials' wall time over every driver of the search (a resumed one adds its own).
        record.data["trials_seconds"] = record.get("trials_seconds", 0.0) + time.perf_counter() - started
    if start.interrupted:
        raise SearchInterrupted(start.interruption.signal_name)
    print_time_budget(options, record.get("trials", {}))
    trials = grid.get_dataframe()
    if trials.empty or METRIC not in trials or trials[METRIC].isna().all():
        raise _nothing_to_choose(options, grid, base)
    chosen = choose(grid, base)
    if options.reevaluate_top:
        top = top_trials(grid, base, options.reevaluate_top)
        print_reevaluation_start(options, top)
        started = time.perf_counter()
        chosen = noise_aware_choice(top, reevaluate(options, top, val_split, record, emit))
        chosen["reevaluation_seconds"] = time.perf_counter() - started
    test_split = make_split(prepared.bench, "test", features=feature_scaling(options.dataset), seed=options.seed)
    measured, model_file = measure_on_test(options, chosen["best_config"], test_split)
    record.save_model(model_file)
    record.mark("finished", final={
        **chosen, **measured, "final_key": final_key(chosen["chosen_trial"], chosen["best_config"],
                                                     options.final_seeds),
        "search_seconds": record["trials_seconds"], "n_trials": len(record.get("trials", {})),
        "n_errors": len(grid.errors), "cut_by_time_budget": cut_by_time_budget(record.get("trials", {})),
        "model_file": MODEL_FILE, "git_commit": start.code.commit, "git_dirty": start.code.dirty})
    return result_of(options, record, trials, model_file)
