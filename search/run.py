"""Search IZF hyperparameters with Ray Tune and Optuna; choose on validation classes, report test once.

    python search/run.py --dataset synthetic              # local Ray, built-in data, ~3 min on 2 cores
    python search/run.py --dataset sun --address auto --gpus-per-trial 0.25 --num-samples 200
    python search/run.py --resume --name izf-sun          # continue the newest search of that name

Every search gets a folder of its own, <storage>/<name>/<search id>; Ctrl-C (or SIGTERM) stops it
with its state saved, and --resume continues it. Exit status: 0 done, 1 error, 130 interrupted.
"""

import argparse
import contextlib
import json
import signal
import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as `python search/run.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from izf.data import DATASET_NAMES, default_name  # noqa: E402
from izf.errors import ConfigError, IZFError  # noqa: E402
from search.options import OBJECTIVES, SAMPLERS, SCHEDULERS, SearchOptions  # noqa: E402
from search.record import finite_json  # noqa: E402

TRACKING_FLAGS = ("mlflow_uri", "experiment", "no_promote", "challenge_seeds", "no_tracking", "json")


def _parser(defaults: bool = True) -> argparse.ArgumentParser:
    """The CLI; with defaults=False, parsing yields only the flags given (to tell them apart on --resume)."""
    def d(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    p = argparse.ArgumentParser(prog="python search/run.py", description=__doc__, allow_abbrev=False,
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
                        "search's folder, an optuna.db file, or an Optuna storage URL[#study]")
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
    from search.space import Dims, searched_fields, space

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


def _tracking_of(record: "SearchRecord | None", flags: dict, given: dict, dataset: str) -> dict:  # noqa: F821
    """Where to record: a resumed search keeps what it recorded to (a different --mlflow-uri is refused)."""
    from tracking import default_tracking_uri

    new = {"mlflow_uri": flags["mlflow_uri"] or default_tracking_uri(),
           "experiment": flags["experiment"] or default_name(dataset), "enabled": not flags["no_tracking"]}
    if record is None:
        return new
    old = record.get("notes", {}).get("tracking") or new
    for key, flag in (("mlflow_uri", "mlflow-uri"), ("experiment", "experiment")):
        if key in given and given[key] != old[key]:
            raise ConfigError(f"--{flag} {given[key]}: this search records to {old[key]}; resume it with the same "
                              f"--{flag} (or none), or copy it there afterwards with python -m tracking.sync")
    return {**old, "enabled": old["enabled"] and not flags["no_tracking"]}


def warm_start_points(source: str, top: int, mlflow_uri: str) -> list[dict]:
    """The best points of the earlier search `source` names (see --warm-start), best first."""
    from search.warm import SOURCE_ATTRIBUTES, parse_param, study_points

    path, attributes = Path(source).expanduser(), None
    if path.is_dir() and (path / "optuna.db").is_file():
        source, attributes = f"sqlite:///{(path / 'optuna.db').resolve()}", _attribute_dim(path)
    elif path.is_file():
        source, attributes = f"sqlite:///{path.resolve()}", _attribute_dim(path.parent)
    elif path.is_dir():
        raise ConfigError(f"--warm-start {source}: no optuna.db in that folder; name a search's folder "
                          "(<storage>/<name>/<search id>) or its optuna.db")
    elif "/" in source and "://" not in source:
        raise ConfigError(f"--warm-start {source}: no such folder or file")
    if "://" in source:
        points = [{**p, SOURCE_ATTRIBUTES: attributes} if attributes else p for p in study_points(source, top)]
        where = f"the Optuna study at {source}"
    else:
        from tracking import Tracker
        from tracking.earlier import best_trials
        from tracking.tracker import require_store

        try:
            require_store(mlflow_uri)
        except ConfigError as e:
            raise ConfigError(f"--warm-start {source}: no such folder or file, and {e}") from None
        try:
            client = Tracker(mlflow_uri, source).client
            if client.get_experiment_by_name(source) is None:
                raise ConfigError(f"--warm-start {source}: no such folder or file, and no MLflow experiment of that "
                                  f"name at {mlflow_uri}; name a search folder, an optuna.db, an Optuna storage URL "
                                  "or an MLflow experiment with trials")
            points = [{k: parse_param(v) for k, v in p.items()} for p in best_trials(client, source, top)]
            points = [{**{k: v for k, v in p.items() if k != "attribute_dim"}, SOURCE_ATTRIBUTES: p["attribute_dim"]}
                      if "attribute_dim" in p else p for p in points]
        except IZFError:
            raise
        except Exception as e:  # noqa: BLE001 - MLflow's, SQLAlchemy's and requests' own errors
            raise ConfigError(f"--warm-start {source}: cannot read MLflow at {mlflow_uri} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}); is --mlflow-uri right?") from None
        where = f"MLflow experiment {source!r} at {mlflow_uri}"
    if not points:
        raise ConfigError(f"--warm-start {source}: {where} has no finished trials to start from; name a search "
                          "folder, an optuna.db, an Optuna storage URL or an MLflow experiment with trials")
    return points


def _attribute_dim(folder: Path) -> int | None:
    """The attribute dimension a search folder's record names (None: no record, or an older one)."""
    from search.record import SearchRecord

    try:
        record = SearchRecord.load(str(folder.resolve()))
    except IZFError:
        return None
    return None if record is None else record["description"].get("attribute_dim")


def _resume_command(options: SearchOptions, name: str | None = None) -> str:
    command = f"python search/run.py --resume --name {name or options.experiment_name}"
    if options.storage_path != "ray_results":
        command += f" --storage-path {options.storage_path}"
    if options.address:
        command += f" --address {options.address}"
    return command


@contextlib.contextmanager
def _signals_ignored() -> "Iterator[None]":  # noqa: F821
    """While the driver closes its MLflow runs, a second Ctrl-C must not leave them half closed."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _one_line_warning(message: Warning | str, category: type, filename: str, lineno: int,
                      line: str | None = None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out, json_out = sys.stdout, "--json" in argv
    warnings.formatwarning = _one_line_warning  # what the library warns about (a data file, say), as one line
    options, campaign, outcome = None, None, {}
    try:
        options, flags, given = parse(argv)
        if json_out:
            sys.stdout = sys.stderr  # the JSON object alone on stdout
        from search.lifecycle import conflicting_options, open_search

        if _is_campaign(options):
            from search.campaign import DEFAULT_NAME

            campaign = options.name or DEFAULT_NAME
            outcome = _campaign(options, flags, given)
        else:
            options, record = open_search(options)
            if record is not None:
                conflicts = conflicting_options(options, given)
                if conflicts:
                    raise ConfigError(f"--resume continues search {options.search_id} with the settings it was "
                                      f"started with, so these cannot change: {'; '.join(conflicts)}; drop them, or "
                                      "start a new search without --resume")
            outcome = _one_search(options, record, flags, given)
        code = 1 if outcome.get("status") == "failed" else 0
    except KeyboardInterrupt as e:  # SearchInterrupted, or a Ctrl-C before the search caught signals
        signal_name = getattr(e, "signal_name", "SIGINT")
        outcome = {"status": "interrupted", "signal": signal_name}
        note = getattr(e, "note", None)  # the search had finished: only its champion was left undecided
        if note:
            outcome["note"] = note
            print(f"interrupted ({signal_name}): {note}", file=sys.stderr)
        if campaign is not None:
            outcome["resume"] = _resume_command(options, campaign)
            print(f"interrupted ({signal_name}): continue the campaign with {outcome['resume']}", file=sys.stderr)
        elif note is None and options is not None and options.search_id is not None and _has_record(options):
            outcome["resume"] = _resume_command(options)
            print(f"interrupted ({signal_name}): continue with {outcome['resume']}", file=sys.stderr)
        elif note is None:
            print(f"interrupted ({signal_name}) before the search began; nothing to resume", file=sys.stderr)
        code = 130
    except IZFError as e:
        outcome = {"status": "failed", "error": str(e)}
        print(f"error: {e}", file=sys.stderr)
        code = 1
    finally:
        sys.stdout = out
    if json_out:
        if campaign is None and options is not None and options.search_id is not None:
            outcome = {"search_id": options.search_id, "name": options.experiment_name,
                       "folder": options.experiment_path, **outcome}
        print(json.dumps(finite_json(outcome), allow_nan=False, default=str))
    return code


def _is_campaign(options: SearchOptions) -> bool:
    """--dataset a,b,c or all; or --resume of a name that holds campaigns (not searches)."""
    from search.campaign import campaigns_of, is_campaign
    from search.record import searches_of

    if is_campaign(options.dataset):
        return True
    name = options.name
    return bool(options.resume and name) and not searches_of(options.storage_uri, name) and \
        bool(campaigns_of(options.storage_uri, name))


def _one_search(options: SearchOptions, record: "SearchRecord | None", flags: dict, given: dict,  # noqa: F821
                notes: dict | None = None) -> dict:
    """Run (or resume) one opened search, record it to MLflow, print its summary; the outcome as plain values.
    Whatever ends it, its MLflow runs are closed (interrupted, failed) before the exception goes on."""
    tracker, listeners = None, []
    try:
        tracking = _tracking_of(record, flags, given, options.dataset)
        if record is None and options.warm_start:
            options.warm_start_points = warm_start_points(options.warm_start, options.warm_start_top,
                                                           tracking["mlflow_uri"])
        if tracking["enabled"]:
            from tracking import Tracker
            from tracking.recorder import MLflowRecorder

            tracker = Tracker(tracking["mlflow_uri"], tracking["experiment"])
            tracker.connect()
            if record is not None:
                _replay_if_lost(tracker, record)
            from search.challenge import ray_retrainer

            listeners.append(MLflowRecorder(tracker, promote_champion=not flags["no_promote"],
                                            retrain=ray_retrainer(options), challenge_seeds=flags["challenge_seeds"]))
        from search.summary import print_summary
        from search.tuner import run

        result = run(options, listeners=listeners, notes={"tracking": tracking, **(notes or {})})
        print_summary(result)
        outcome = {"status": "finished", **_result_json(result)}
        if tracker is not None:
            recorded = listeners[0].recorded
            print_tracking(tracker, recorded)
            outcome["mlflow"] = {"uri": tracker.uri, "experiment": tracker.experiment, **recorded,
                                 "failed_calls": tracker.failures}
        return outcome
    except KeyboardInterrupt as e:
        with _signals_ignored():
            if tracker is not None:
                tracker.end("interrupted")  # a no-op where the search had finished
        recorded = listeners[0].recorded if listeners else {}
        if recorded.get("version") is not None and recorded.get("decision") is None:
            e.note = (f"the search had finished and {recorded['model_name']} version {recorded['version']} is "
                      "registered, but the champion was not decided (the alias stays where it was); decide it with "
                      f"python -m tracking.promote --dataset {options.dataset} --version {recorded['version']} "
                      f"--mlflow-uri {tracker.uri}")
        raise
    except BaseException as e:
        with _signals_ignored():
            if tracker is not None:
                tracker.end("failed", str(e) if isinstance(e, IZFError) else f"{type(e).__name__}: {e}")
        raise


def _replay_if_lost(tracker: "Tracker", record: "SearchRecord") -> None:  # noqa: F821
    """A resumed search whose MLflow store has lost it (replaced, moved away): its events so far are written there
    first, as `tracking.sync` would, so that the store holds the whole search and not only what comes next."""
    from tracking.sync import events_of, sync

    if tracker.safe("find the search", tracker.knows_search, record["search_id"]) is not False:
        return  # the store has it, or cannot be reached (the outage is warned about and synced later)
    if not events_of(record.folder)[0]:
        return
    added = sync(record.folder, tracker, promote_champion=False)
    print(f"MLflow at {tracker.uri} had no record of search {record['search_id']}: its events were written there "
          f"first ({added['trials']} trial runs, {added['metric_steps']} metric steps)", flush=True)


def _campaign(options: SearchOptions, flags: dict, given: dict) -> dict:
    """One search per dataset (search.campaign), each recorded as a lone search is, and the campaign's own
    MLflow run linking them; the outcome lists each dataset's."""
    from search.campaign import DEFAULT_NAME, campaign_datasets, run_campaign

    if flags["experiment"]:
        raise ConfigError("--experiment: each search of a campaign records to its own experiment izf-<dataset>; "
                          "the campaign's run goes to the experiment named after the campaign (--name)")
    datasets = None if options.resume else campaign_datasets(options.dataset, options.data_root)
    listeners = []
    if not flags["no_tracking"]:
        from tracking import Tracker, default_tracking_uri
        from tracking.campaign import CampaignRecorder

        uri = flags["mlflow_uri"] or default_tracking_uri()
        listeners.append(CampaignRecorder(Tracker(uri, options.name or DEFAULT_NAME)))

    def emit(event: str, **arguments: object) -> None:
        for listener in listeners:
            getattr(listener, event)(**arguments)

    def search(one: SearchOptions, record: "SearchRecord | None", notes: dict) -> dict:  # noqa: F821
        print(f"\n=== campaign {options.name or 'izf-campaign'}: {one.dataset} ===")
        outcome = _one_search(one, record, flags, {}, notes)
        return {k: outcome[k] for k in ("val", "test", "test_spread", "chosen_trial", "mlflow") if k in outcome}

    campaign = run_campaign(options, datasets, given, search, emit)
    print_campaign(campaign.data)
    if campaign.status == "failed":
        print(f"error: campaign {campaign['campaign_id']} ended with failed searches: {campaign['error']}",
              file=sys.stderr)
    return {"status": campaign.status, "campaign_id": campaign["campaign_id"], "name": campaign["name"],
            "folder": campaign.folder, "searches": campaign["searches"],
            **({"error": campaign["error"]} if campaign.get("error") else {})}


def print_campaign(campaign: dict) -> None:
    print(f"\n=== campaign {campaign['campaign_id']} ({campaign['name']}): {campaign['status']} ===")
    for dataset in campaign["datasets"]:
        entry = campaign["searches"].get(dataset, {"status": "not started"})
        if entry["status"] == "finished":
            test, val = entry["test"], entry["val"]
            print(f"  {dataset:<20} val H {100 * val['best_h']:.2f}   test U {100 * test['softmax_u']:.2f}  "
                  f"S {100 * test['softmax_s']:.2f}  H {100 * test['softmax_h']:.2f}   "
                  f"({entry['name']}/{entry['search_id']})")
        else:
            print(f"  {dataset:<20} {entry['status']}{': ' + entry['error'] if entry.get('error') else ''}")


def _has_record(options: SearchOptions) -> bool:
    from search.record import SearchRecord

    return SearchRecord.load(options.experiment_path) is not None


def _result_json(result: "SearchResult") -> dict:  # noqa: F821
    return {"chosen_trial": result.chosen_trial, "best_config": result.best_config, "val": result.best_val,
            "test": result.test, "test_spread": result.test_spread, "n_trials": result.n_trials,
            "n_errors": result.n_errors, "reevaluation": result.reevaluation,
            "single_seed_choice": result.single_seed_choice or None}


def print_tracking(tracker: "Tracker", recorded: dict) -> None:  # noqa: F821
    print(f"\nMLflow ({tracker.uri}): experiment {tracker.experiment!r}, parent run {recorded.get('parent_run_id')}")
    if recorded.get("version") is not None:
        how = "registered" if recorded["registered"] else "registered earlier by this search"
        print(f"  model {recorded['model_name']} version {recorded['version']} {how}")
        print(f"  {recorded.get('decision') or 'the champion alias was not considered: MLflow failed (below)'}")
    else:
        print("  no model version registered")
    if tracker.failures:
        print(f"  {tracker.failures} MLflow calls failed; once MLflow is back: python -m tracking.sync "
              f"{tracker.sync_target}")


if __name__ == "__main__":
    sys.exit(main())
