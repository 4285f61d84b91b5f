"""`run`: load the data once, search on validation classes with Ray Tune + Optuna, then measure the choice on test."""

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from izf.data import load_benchmark, make_split
from izf.errors import ConfigError
from izf.presets import feature_scaling, preset
from izf.training import FitConfig
from search.options import SearchOptions
from search.space import default_point, space, to_fit_options

__all__ = ["SearchResult", "SearchStart", "run"]

METRIC, MODE = "best_h", "max"
SHOWN = ["best_h", "softmax_u", "softmax_s", "softmax_h", "nbc_h", "step", "train_seconds"]


@dataclass
class SearchStart:
    """What is known once the data is loaded, before any trial: handed to `run(on_start=...)`."""

    options: SearchOptions
    data_checksum: str
    base: dict  # FitConfig fields every trial starts from
    feature_dim: int
    attribute_dim: int

    def describe(self) -> dict:
        """The search's settings as plain values (the parent run's params; izf_search.json)."""
        o = self.options
        return {"dataset": o.dataset, "sampler": o.sampler, "scheduler": o.scheduler, "objective": o.objective,
                "num_samples": o.num_samples, "max_steps": self.base["steps"], "seed": o.seed,
                "final_seeds": o.final_seeds, "time_budget_s": o.time_budget_s, "start_from_base": o.start_from_base,
                "sampler_seed": o.sampler_stream, "fixed_params": o.fixed_params,
                "checkpoint_every": o.checkpoint_every,
                "data_checksum": self.data_checksum, "base": self.base, "feature_dim": self.feature_dim,
                "attribute_dim": self.attribute_dim}

    def params_of(self, sampled: dict) -> dict:
        """Every FitConfig value a trial with these sampled parameters trains with."""
        return {**self.base, **to_fit_options(sampled, feature_dim=self.feature_dim,
                                              attribute_dim=self.attribute_dim)}


@dataclass
class SearchResult:
    """What a search found: the chosen config, its validation metrics, and its one test measurement."""

    experiment_path: str
    n_trials: int
    n_errors: int  # trials that raised (divergence included) after their retries
    trials: pd.DataFrame  # one row per trial that reported: config/* columns and its last metrics
    best_config: dict  # FitConfig fields of the chosen trial
    best_val: dict  # the chosen trial's best validation metrics
    test: dict  # test metrics of the chosen config retrained on trainval (mean over final seeds)
    test_spread: dict  # their standard deviation over final seeds (0 for one seed)
    data_checksum: str = ""
    model_file: bytes = b""  # the first final seed's model, in izf.io format
    feature_dim: int = 0
    pareto: pd.DataFrame | None = None  # multi-objective searches: the non-dominated trials
    search_seconds: float = 0.0  # wall time of the trials phase (Tuner.fit), without the final retrain


def _sampler(name: str, seed: int, num_samples: int, fixed: dict) -> "optuna.samplers.BaseSampler":  # noqa: F821
    import warnings

    import optuna

    if fixed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.PartialFixedSampler(fixed, _sampler(name, seed, num_samples, {}))
    if name == "tpe":
        # Optuna's 10 random start-up trials would leave TPE almost nothing of a small budget (12 by default).
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, num_samples // 4)))
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _init_ray(options: SearchOptions) -> None:
    import ray

    if ray.is_initialized():
        return
    if options.address is None:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=True)
    else:
        ray.init(address=options.address)


AUTOSCALER_CONFIG = Path("~/ray_bootstrap_config.yaml").expanduser()  # written by `ray up` on the head node
GPU_INSTANCE_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p4de", "p5", "p5e")


def _autoscaler_can_add(resource: str) -> bool:
    """Whether the autoscaler of this cluster (after `ray up`) has a worker type that brings `resource`."""
    if not AUTOSCALER_CONFIG.is_file():
        return False
    import yaml

    node_types = (yaml.safe_load(AUTOSCALER_CONFIG.read_text()) or {}).get("available_node_types", {})
    for node in node_types.values():
        if node.get("max_workers", 0) <= 0:
            continue
        declared = (node.get("resources") or {}).get(resource)
        family = str(node.get("node_config", {}).get("InstanceType", "")).split(".")[0]
        if declared or (declared is None and (resource == "CPU" or family in GPU_INSTANCE_FAMILIES)):
            return True
    return False


def _check_resources(options: SearchOptions) -> None:
    import ray

    resources = ray.cluster_resources()
    if options.gpus_per_trial > 0 and resources.get("GPU", 0) == 0 and not _autoscaler_can_add("GPU"):
        raise ConfigError(
            f"--gpus-per-trial {options.gpus_per_trial} asked for, but the Ray cluster has no GPU and its "
            "autoscaler cannot add one (trials would wait forever); use --gpus-per-trial 0 or start GPU workers"
        )
    if options.cpus_per_trial > resources.get("CPU", 0) and not _autoscaler_can_add("CPU"):
        raise ConfigError(
            f"--cpus-per-trial {options.cpus_per_trial} exceeds the cluster's {resources.get('CPU', 0)} CPUs"
        )


def _base_config(options: SearchOptions, eval_every_default: int) -> dict:
    base = dataclasses.asdict(FitConfig.from_dict({**preset(options.dataset), **options.fit_overrides}))
    if options.max_steps is not None:
        base["steps"] = options.max_steps
    base["eval_every"] = options.eval_every or base["eval_every"] or eval_every_default
    base["seed"] = options.seed
    base.pop("device")
    return base


def _searcher(options: SearchOptions, space: Callable, points: list[dict], study_exists: bool) -> "OptunaSearch":  # noqa: F821
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    multi = options.objective == "multi"
    storage = optuna.storages.RDBStorage(options.study_storage) if options.study_storage else None
    return OptunaSearch(
        space=space,
        metric=[METRIC, "train_seconds"] if multi else METRIC,
        mode=[MODE, "min"] if multi else MODE,
        points_to_evaluate=None if study_exists or not points else points,
        sampler=_sampler(options.sampler, options.sampler_stream, options.num_samples, options.fixed_params),
        study_name=options.experiment_name if storage else None,
        storage=storage,
    )


def check_fixed(space: Callable, fixed: dict) -> None:
    """Raise ConfigError unless every fixed value is one `space` asks for in every trial, within its range."""
    import warnings

    import optuna

    if not fixed:
        return
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    try:
        study = optuna.create_study(sampler=_sampler("random", 0, 1, fixed))
    finally:
        optuna.logging.set_verbosity(verbosity)
    asked: list[set] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(32):  # a random sampler reaches both sides of every condition in the space
            trial = study.ask()
            try:
                space(trial)
            except ValueError as e:  # a categorical value that is not one of the choices
                raise ConfigError(f"--fix: {str(e).rstrip('.')}; change the value or the choices in "
                                  "search/space.py") from None
            asked.append(set(trial.params))
    unknown = sorted(set(fixed) - set().union(*asked))
    if unknown:
        raise ConfigError(f"--fix {', '.join(unknown)}: not a parameter of the search space; its parameters are "
                          f"{sorted(set().union(*asked))} (--set fixes a FitConfig field the space does not sample)")
    conditional = sorted(name for name in fixed if not all(name in a for a in asked))
    if conditional:
        raise ConfigError(f"--fix {', '.join(conditional)}: the space asks for it only in some trials; fix the "
                          "parameter that decides that too (e.g. --fix use_mmd=true with --fix mmd_weight=...)")
    outside = [str(w.message) for w in caught if "out of range" in str(w.message)]
    if outside:
        raise ConfigError(f"--fix: {outside[0]} Change the value, or the range in search/space.py")


def _study_has_trials(options: SearchOptions) -> bool:
    if not options.study_storage:
        return False
    import optuna

    try:
        return len(optuna.load_study(study_name=options.experiment_name, storage=options.study_storage).trials) > 0
    except KeyError:
        return False


def _tuner(options: SearchOptions, trainable: object, base: dict, space: Callable, points: list[dict],
           callbacks: list) -> "tune.Tuner":  # noqa: F821
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    if options.resume:
        if not tune.Tuner.can_restore(options.experiment_path):
            raise ConfigError(f"--resume: no experiment to resume at {options.experiment_path}; "
                              "check --name and --storage-path, or start a new search without --resume")
        return tune.Tuner.restore(options.experiment_path, trainable=trainable, resume_errored=True)
    if options.scheduler == "asha":
        grace = options.grace_steps or max(base["eval_every"], base["steps"] // 4)
        scheduler = AsyncHyperBandScheduler(time_attr="step", max_t=base["steps"], grace_period=grace,
                                            reduction_factor=2)
    else:
        scheduler = FIFOScheduler()
    multi = options.objective == "multi"
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=_searcher(options, space, points, _study_has_trials(options)),
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
            name=options.experiment_name,
            storage_path=options.storage_uri,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            callbacks=callbacks,
            verbose=1,
        ),
    )


def _final_fit(split: "Split", config: dict) -> tuple[dict, bytes]:  # noqa: F821
    import io

    import ray
    import torch

    from izf.io import save_model
    from izf.training import fit

    torch.set_num_threads(max(1, int(config.pop("threads", 1))))
    config["device"] = "cuda" if ray.get_gpu_ids() else "cpu"
    result = fit(split, FitConfig.from_dict(config))
    result.model.cpu()
    result.classifier.linear.cpu()
    buffer = io.BytesIO()
    save_model(buffer, result, split)
    return dict(result.metrics), buffer.getvalue()


def _pareto(trials: pd.DataFrame) -> pd.DataFrame:
    rows = trials.dropna(subset=["best_h", "train_seconds"])
    keep = [i for i, r in rows.iterrows()
            if not ((rows["best_h"] >= r["best_h"]) & (rows["train_seconds"] <= r["train_seconds"])
                    & ((rows["best_h"] > r["best_h"]) | (rows["train_seconds"] < r["train_seconds"]))).any()]
    return rows.loc[keep].sort_values("best_h", ascending=False)


SEARCH_FILE, MODEL_FILE = "izf_search.json", "izf_model.pt"


def _write_beside_results(options: SearchOptions, name: str, data: bytes) -> None:
    """Keep a file in the Ray experiment folder (local or s3://...), where `tracking.sync` finds it."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(options.experiment_path)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{name}") as out:
        out.write(data)


def _record(options: SearchOptions, start: SearchStart, result: SearchResult | None = None) -> None:
    import json

    record = start.describe()
    if result is not None:
        record.update(best_config=result.best_config, best_val=result.best_val, test=result.test,
                      test_spread=result.test_spread, search_seconds=result.search_seconds)
        _write_beside_results(options, MODEL_FILE, result.model_file)
    _write_beside_results(options, SEARCH_FILE, json.dumps(record, default=str, indent=1).encode())


def _quiet_ray() -> None:
    # Every report carries a checkpoint (a retried trial resumes, not restarts); Tune warns about that.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def run(options: SearchOptions, *, space: Callable = space, points: list[dict] | None = None,
        on_start: Callable[[SearchStart], list] | None = None) -> SearchResult:
    """Search, choose on validation H, retrain the choice on trainval and measure it once on test.

    Arguments:
        space: an Optuna define-by-run function (default `search.space.space`).
        points: the first points to evaluate (default: the dataset's base config as a point of `space`).
        on_start: called once the data is loaded, before any trial; returns Tune callbacks (tracking).
    """
    import ray
    from ray import tune

    from search.trainable import train_izf

    check_fixed(space, options.fixed_params)
    bench = load_benchmark(options.dataset, root=options.data_root, seed=options.seed)
    scaling = feature_scaling(options.dataset)
    val_split = make_split(bench, "val", features=scaling, seed=options.seed)
    test_split = make_split(bench, "test", features=scaling, seed=options.seed)
    base = _base_config(options, eval_every_default=500)
    if points is None:
        points = [{**default_point(base, val_split.feature_dim), **options.fixed_params}] \
            if options.start_from_base else []
    _quiet_ray()
    _init_ray(options)
    _check_resources(options)
    start = SearchStart(options, bench.checksum(), base, val_split.feature_dim, val_split.attribute_dim)
    if not options.resume:
        _record(options, start)
    callbacks = on_start(start) if on_start is not None else []
    threads = max(1, int(options.cpus_per_trial))
    trainable = tune.with_resources(
        tune.with_parameters(train_izf, split=val_split, base={**base, "threads": threads},
                             checkpoint_every=options.checkpoint_every),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    started = time.perf_counter()
    grid = _tuner(options, trainable, base, space, points, callbacks).fit()
    search_seconds = time.perf_counter() - started
    trials = grid.get_dataframe()
    best = grid.get_best_result(metric=METRIC, mode=MODE, scope="all")
    history = best.metrics_dataframe
    best_row = history.loc[history["h"].idxmax()]
    chosen = {**base, **to_fit_options(best.config, feature_dim=val_split.feature_dim,
                                       attribute_dim=val_split.attribute_dim)}
    chosen["steps"], chosen["eval_every"] = int(best_row["step"]), 0
    final = ray.remote(num_cpus=options.cpus_per_trial, num_gpus=options.gpus_per_trial)(_final_fit)
    split_ref = ray.put(test_split)
    runs = ray.get([final.remote(split_ref, {**chosen, "seed": options.seed + i, "threads": threads})
                    for i in range(options.final_seeds)])
    keys = runs[0][0].keys()
    test = {k: statistics.fmean(r[k] for r, _ in runs) for k in keys}
    spread = {k: statistics.pstdev([r[k] for r, _ in runs]) for k in keys}
    result = SearchResult(
        experiment_path=options.experiment_path,
        n_trials=len(grid),
        n_errors=len(grid.errors),
        trials=trials,
        best_config=chosen,
        best_val={k: float(best_row[k]) for k in SHOWN if k in best_row},
        test=test,
        test_spread=spread,
        data_checksum=start.data_checksum,
        model_file=runs[0][1],
        feature_dim=test_split.feature_dim,
        pareto=_pareto(trials) if options.objective == "multi" else None,
        search_seconds=search_seconds,
    )
    _record(options, start, result)
    return result

