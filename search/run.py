"""Search IZF hyperparameters with Ray Tune and Optuna; choose on validation classes, report test once.

    python search/run.py --dataset synthetic              # local Ray, built-in data, ~5 min on 2 cores
    python search/run.py --dataset sun --address auto --gpus-per-trial 0.25 --num-samples 200
"""

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python search/run.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from izf.data import DATASET_NAMES  # noqa: E402
from izf.errors import ConfigError, IZFError  # noqa: E402
from search.options import OBJECTIVES, SAMPLERS, SCHEDULERS, SearchOptions  # noqa: E402


def parse(argv: list[str] | None) -> tuple[SearchOptions, dict]:
    p = argparse.ArgumentParser(prog="python search/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic", help=f"one of {', '.join(DATASET_NAMES)} (default synthetic)")
    p.add_argument("--data-root", help="folder holding <NAME>/res101.mat and att_splits.mat ($IZF_DATA)")
    p.add_argument("--address", help="Ray cluster to join: 'auto' (after `ray up cluster.yaml`) or ray://host:10001; "
                                     "default: start a local Ray instance on this machine")
    p.add_argument("--num-samples", type=int, default=12, help="trials to run (default 12)")
    p.add_argument("--max-concurrent", type=int, default=2, help="trials running at once (default 2)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs (and torch threads) per trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPUs per trial; fractions pack trials onto one GPU (0.25: four per GPU)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default tpe)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="asha",
                   help="asha: stop trials whose best validation H lags (default); none: run all to the end")
    p.add_argument("--objective", choices=OBJECTIVES, default="single",
                   help="single: validation H; multi: validation H and training seconds (Pareto front; "
                        "needs --scheduler none)")
    p.add_argument("--max-steps", type=int, help="training steps of a full trial (default: the dataset preset)")
    p.add_argument("--grace-steps", type=int, help="ASHA: steps every trial gets before it may be stopped")
    p.add_argument("--eval-every", type=int, help="steps between validation evaluations (reports)")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler, the data split and the trials")
    p.add_argument("--name", help="experiment name (default izf-<dataset>); also the Optuna study name")
    p.add_argument("--storage-path", default="ray_results",
                   help="where Ray keeps results and checkpoints: a local folder (default ./ray_results), "
                        "a shared mount, or s3://bucket/path on a cluster")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment of this --name")
    p.add_argument("--study-storage", help="Optuna RDB URL (sqlite:////abs/optuna.db, postgresql://...): a later "
                                           "search with the same --name continues the same study")
    p.add_argument("--time-budget", type=float, dest="time_budget_s",
                   help="stop starting trials after this many seconds")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial from its checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="K",
                   help="a checkpoint with every K-th report (default 1); each is the model and Adam state, "
                        "~360 MB at SUN's shapes: a larger K writes less to --storage-path, a retry redoes more")
    p.add_argument("--final-seeds", type=int, default=1,
                   help="retrain the chosen config with N seeds and report mean and spread of test U/S/H")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///"
                                        "<cwd>/mlflow.db); http://host:5000 for a shared server")
    p.add_argument("--experiment", help="MLflow experiment (default izf-<dataset>)")
    p.add_argument("--no-promote", action="store_true",
                   help="register the chosen model but leave the 'champion' alias where it is")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow at all")
    p.add_argument("--sampler-seed", type=int,
                   help="seed of the Optuna sampler alone (default: --seed); the split and trials keep --seed")
    p.add_argument("--no-base-first", action="store_false", dest="start_from_base",
                   help="do not evaluate the dataset's base config as the first trial (e.g. to compare samplers)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="fit_overrides",
                   help="a fixed FitConfig value for every trial, e.g. --set subnet_precision=bfloat16 "
                        "--set mixing=lu (repeatable; VALUE is read as JSON, else as a string)")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE", dest="fixed_params",
                   help="hold a parameter of the search space at one value, e.g. --fix depth=5 --fix hidden_scale=0.5 "
                        "(repeatable; VALUE is read as JSON; Optuna's PartialFixedSampler samples the rest)")
    args = vars(p.parse_args(argv))
    args["fixed_params"] = dict(_key_value(item, "--fix wants NAME=VALUE (a search-space parameter)")
                                for item in args["fixed_params"])
    args["fit_overrides"] = dict(_key_value(item, "--set wants KEY=VALUE (a FitConfig field)")
                                 for item in args["fit_overrides"])
    if args["fit_overrides"]:
        _check_overrides(args["fit_overrides"])
    tracking = {k: args.pop(k) for k in ("mlflow_uri", "experiment", "no_promote", "no_tracking")}
    return SearchOptions(**args), tracking


def _check_overrides(overrides: dict) -> None:
    """Unknown keys, bad values and keys the search space samples (which would win) fail here, before any work."""
    import dataclasses

    from izf.training import FitConfig
    from search.space import default_point, to_fit_options

    FitConfig.from_dict(overrides)
    base = dataclasses.asdict(FitConfig())
    searched = sorted(set(overrides) & set(to_fit_options(default_point(base, 2048), feature_dim=2048,
                                                          attribute_dim=102)))
    if searched:
        raise ConfigError(f"--set {', '.join(searched)}: the search space samples it, so a fixed value would be "
                          "overridden; hold the space's parameter instead, e.g. --fix depth=5 --fix hidden_scale=0.5")


def _key_value(item: str, usage: str) -> tuple[str, object]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"{usage}, got {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    try:
        options, flags = parse(argv)
        from search.summary import print_summary
        from search.tuner import run

        if flags["no_tracking"]:
            print_summary(run(options))
            return 0
        from tracking import Tracker, default_tracking_uri
        from tracking.search_tracking import record_result, start_hook

        tracker = Tracker(flags["mlflow_uri"] or default_tracking_uri(),
                          flags["experiment"] or f"izf-{options.dataset.lower()}")
        result = run(options, on_start=start_hook(tracker, options))
        print_summary(result)
        recorded = record_result(tracker, options, result, promote_champion=not flags["no_promote"])
        print_tracking(tracker, recorded)
    except IZFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def print_tracking(tracker: "Tracker", recorded: dict) -> None:  # noqa: F821
    print(f"\nMLflow ({tracker.uri}): experiment {tracker.experiment!r}, parent run {recorded.get('parent_run_id')}")
    if "version" in recorded:
        state = {True: "now the champion", False: "the champion stays", None: "not promoted"}[recorded.get("champion")]
        print(f"  model {recorded['model_name']} version {recorded['version']}: {state}")
    if tracker.failures:
        print(f"  {tracker.failures} MLflow calls failed; run `python -m tracking.sync <ray experiment dir>`")


if __name__ == "__main__":
    sys.exit(main())
