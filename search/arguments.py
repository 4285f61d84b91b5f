"""Search IZF hyperparameters with Ray Tune and Optuna; choose on validation classes, report test once.

    python search/run.py --dataset synthetic              # local Ray, built-in data, ~3 min on 2 cores
    python search/run.py --dataset sun --address auto --gpus-per-trial 0.25 --num-samples 200
    python search/run.py --resume --name izf-sun          # continue the newest search of that name

Every search gets a folder of its own, <storage>/<name>/<search id>; Ctrl-C (or SIGTERM) stops it
with its state saved, and --resume continues it. Exit status: 0 done, 1 error, 130 interrupted.

(This module reads the flags into SearchOptions and the CLI's own; search.cli runs them.)
"""

from __future__ import annotations

import argparse
import json

from izf.data import DATASET_NAMES
from izf.errors import ConfigError
from search.options import OBJECTIVES, SAMPLERS, SCHEDULERS, SearchOptions

__all__ = ["parse", "TRACKING_FLAGS"]

TRACKING_FLAGS = ("mlflow_uri", "experiment", "no_promote", "challenge_seeds", "no_tracking", "json")


def _parser(defaults: bool = True) -> argparse.ArgumentParser:
    """The CLI; with defaults=False, parsing yields only the flags given (to tell them apart on --resume)."""
    def d(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    p = argparse.ArgumentParser(prog="python search/run.py", description=__doc__.split("\n(This module")[0],
                                allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                argument_default=None if defaults else argparse.SUPPRESS)
    p.add_argument("--dataset", default=d("synthetic"), help=f"one of {', '.join(DATASET_NAMES)} (default synthetic)")
    p.add_argument("--data-root", help="folder holding <NAME>/res101.mat and att_splits.mat ($IZF_DATA)")
    p.add_argument("--address", help="Ray cluster to join: 'auto' (after `ray up cluster.yaml`) or ray://host:10001; "
                                     "default: start a local Ray instance on this machine")
    p.add_argument("--num-samples", type=int, default=d(12), help="trials to run (default 12)")
    p.add_argument("--max-concurrent", type=int, default=d(2), help="trials running at once (default 2)")
    p.add_argument("--cpus-per-trial", type=float, default=d(1.0), help="CPUs (and torch threads) per trial")
    p.add_argument("--gpus-per-trial", type=float, default=d(0.0),
                   help="GPUs per trial; fractions pack trials onto one GPU (0.25: four per GPU)")
    p.add_argument("--sampler", choices=SAMPLERS, default=d("tpe"), help="Optuna sampler (default tpe)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=d("asha"),
                   help="asha: stop trials whose best validation H lags (default); none: run all to the end")
    p.add_argument("--objective", choices=OBJECTIVES, default=d("single"),
                   help="single: validation H; multi: validation H and training seconds (Pareto front; "
                        "needs --scheduler none)")
    p.add_argument("--max-steps", type=int, help="training steps of a full trial (default: the dataset preset)")
    p.add_argument("--grace-steps", type=int, help="ASHA: steps every trial gets before it may be stopped")
    p.add_argument("--eval-every", type=int, help="steps between validation evaluations (reports)")
    p.add_argument("--seed", type=int, default=d(0), help="seeds the sampler, the data split and the trials")
    p.add_argument("--name", help="the search's name (default izf-<dataset>): its folder <storage>/<name>/ holds "
                                  "one folder per search; also the Optuna study name")
    p.add_argument("--storage-path", default=d("ray_results"),
                   help="where Ray keeps results and checkpoints: a local folder (default ./ray_results), "
                        "a shared mount, or s3://bucket/path on a cluster")
    p.add_argument("--resume", nargs="?", const=True, default=d(False), metavar="SEARCH_ID",
                   help="continue the newest search of this --name (or the one with this id) where it stopped, "
                        "with the settings it was started with; a finished one is only recorded to MLflow again")
    p.add_argument("--study-storage", help="Optuna RDB URL (sqlite:////abs/optuna.db, postgresql://...): a later "
                                           "search with the same --name continues the same study")
    p.add_argument("--time-budget", type=float, dest="time_budget_s",
                   help="end the search after this many seconds (running trials are cut)")
    p.add_argument("--max-failures", type=int, default=d(2), help="retries of a failed trial from its checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=d(1), metavar="K",
                   help="a checkpoint with every K-th report (default 1); each is the model and Adam state, "
                        "~360 MB at SUN's shapes: a larger K writes less to --storage-path, a retry redoes more")
    p.add_argument("--final-seeds", type=int, default=d(1),
                   help="retrain the chosen config with N seeds and report mean and spread of test U/S/H")
    p.add_argument("--reevaluate-top", type=int, default=d(0), metavar="K",
                   help="noise-aware choice: retrain the K best trials' configs with --reevaluate-seeds new seeds "
                        "on validation classes and choose the best mean validation H (default 0: the single best)")
    p.add_argument("--reevaluate-seeds", type=int, default=d(3), metavar="N",
                   help="seeds per re-evaluated config (default 3)")
    p.add_argument("--warm-start", metavar="SOURCE",
                   help="evaluate an earlier search's best points first (fitted into this dataset's ranges) and let "
                        "the sampler learn from them: an MLflow experiment name (in --mlflow-uri's store), a "
                        "search's folder, its optuna.journal (or optuna.db) file, or an Optuna storage URL[#study]")
    p.add_argument("--warm-start-top", type=int, default=d(3), metavar="K",
                   help="how many of the earlier search's best points (default 3)")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///"
                                        "<cwd>/mlflow.db); http://host:5000 for a shared server")
    p.add_argument("--experiment", help="MLflow experiment (default izf-<dataset>)")
    p.add_argument("--no-promote", action="store_true", default=d(False),
                   help="register the chosen model but leave the 'champion' alias where it is")
    p.add_argument("--challenge-seeds", type=int, default=d(3), metavar="N",
                   help="where the new model and the champion were measured differently (another validation split, "
                        "or a single trial's H against a mean over new seeds), retrain both with N fresh seeds on one "
                        "split and move the alias only if the new one's mean is higher (default 3; 0: the rule "
                        "alone; docs/tracking.md)")
    p.add_argument("--no-tracking", action="store_true", default=d(False), help="do not log to MLflow at all")
    p.add_argument("--sampler-seed", type=int,
                   help="seed of the Optuna sampler alone (default: --seed); the split and trials keep --seed")
    p.add_argument("--no-base-first", action="store_false", dest="start_from_base", default=d(True),
                   help="do not evaluate the dataset's base config as the first trial (e.g. to compare samplers)")
    p.add_argument("--set", action="append", default=d([]), metavar="KEY=VALUE", dest="fit_overrides",
                   help="a fixed FitConfig value for every trial, e.g. --set subnet_precision=bfloat16 "
                        "--set mixing=lu (repeatable; VALUE is read as JSON, else as a string)")
    p.add_argument("--fix", action="append", default=d([]), metavar="NAME=VALUE", dest="fixed_params",
                   help="hold a parameter of the search space at one value, e.g. --fix depth=5 --fix hidden_scale=0.5 "
                        "(repeatable; VALUE is read as JSON; Optuna's PartialFixedSampler samples the rest)")
    p.add_argument("-v", "--verbose", action="store_true", default=d(False),
                   help="Ray's own progress tables and the trials' log lines instead of the compact progress")
    p.add_argument("--json", action="store_true", default=d(False),
                   help="print one JSON object of the outcome on stdout (everything else goes to stderr)")
    return p


def _converted(args: dict) -> dict:
    if "fixed_params" in args:
        args["fixed_params"] = dict(_key_value(item, "--fix wants NAME=VALUE (a search-space parameter)")
                                    for item in args["fixed_params"])
    if "fit_overrides" in args:
        args["fit_overrides"] = dict(_key_value(item, "--set wants KEY=VALUE (a FitConfig field)")
                                     for item in args["fit_overrides"])
    return args


def parse(argv: list[str] | None) -> tuple[SearchOptions, dict, dict]:
    """(the search's options, the CLI's own flags, the flags given explicitly)."""
    args = _converted(vars(_parser().parse_args(argv)))
    given = _converted(vars(_parser(defaults=False).parse_args(argv)))
    if args["fit_overrides"]:
        _check_overrides(args["fit_overrides"])
    flags = {k: args.pop(k) for k in TRACKING_FLAGS}
    if flags["challenge_seeds"] < 0:
        raise ConfigError(f"--challenge-seeds must be >= 0 (0: no challenge, the rule alone), got "
                          f"{flags['challenge_seeds']}")
    return SearchOptions(**args), flags, given


def _check_overrides(overrides: dict) -> None:
    """Unknown keys, bad values and keys the search space samples (which would win) fail here, before any work."""
    from izf.training import FitConfig
    from search.preparing.space import Dims, searched_fields, space

    FitConfig.from_dict(overrides)
    searched = sorted(set(overrides) & searched_fields(space, Dims(features=2048, attributes=102)))
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
