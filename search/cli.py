"""`python search/run.py`: one search or a campaign, recorded to MLflow; exit status 0 done, 1 error, 130 interrupted.

This module composes search/ and tracking/ (nothing else in search/ imports tracking) and turns how a run
ended into one line and an exit status; the flags are read in search.arguments.
"""

from __future__ import annotations

import json
import sys
import warnings

from izf.data import default_name
from izf.errors import ConfigError, IZFError
from record import SearchRecord, finite_json
from search.arguments import parse
from search.campaign import DEFAULT_NAME, campaign_datasets, is_campaign, print_campaign, run_campaign
from search.options import SearchOptions
from search.preparing.identity import OpenedSearch, check_s3, conflicting_options, open_search
from search.running.interrupt import signals_ignored

__all__ = ["main"]


def _tracking_of(record: SearchRecord | None, flags: dict, given: dict, dataset: str) -> dict:
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


def _resume_command(options: SearchOptions, name: str | None = None) -> str:
    """The command that continues an interrupted search (or, given the campaign's name, campaign)."""
    command = f"python search/run.py --resume --name {name or options.experiment_name}"
    if options.storage_path != "ray_results":
        command += f" --storage-path {options.storage_path}"
    if options.address:
        command += f" --address {options.address}"
    return command


def _one_line_warning(message: Warning | str, category: type, filename: str, lineno: int,
                      line: str | None = None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Run the command with `argv` (default: sys.argv's); return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    out, json_out = sys.stdout, "--json" in argv
    warnings.formatwarning = _one_line_warning  # what the library warns about (a data file, say), as one line
    options, campaign, outcome = None, None, {}
    try:
        options, flags, given = parse(argv)
        if json_out:
            sys.stdout = sys.stderr  # the JSON object alone on stdout
        if options.storage_path.startswith("s3://"):
            check_s3(options.storage_path)  # before its folders are read
        if is_campaign(options):
            campaign = options.name or DEFAULT_NAME
            outcome = _campaign(options, flags, given)
        else:
            opened = open_search(options)
            options = opened.options
            conflicts = conflicting_options(options, given) if opened.record is not None else []
            if conflicts:
                raise ConfigError(f"--resume continues search {options.search_id} with the settings it was "
                                  f"started with, so these cannot change: {'; '.join(conflicts)}; drop them, or "
                                  "start a new search without --resume")
            outcome = _one_search(opened, flags, given)
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


def _one_search(opened: OpenedSearch, flags: dict, given: dict, notes: dict | None = None) -> dict:
    """Run (or resume) one opened search, record it to MLflow, print its summary; the outcome as plain values.
    Whatever ends it, its MLflow runs are closed (interrupted, failed) before the exception goes on."""
    (options, record), tracker, listeners = opened, None, []
    try:
        tracking = _tracking_of(record, flags, given, options.dataset)
        if record is None and options.warm_start:
            from search.preparing.warm import warm_start_points
            from tracking.earlier import warm_start_reader

            options.warm_start_points = warm_start_points(options.warm_start, options.warm_start_top,
                                                           warm_start_reader(tracking["mlflow_uri"]))
        if tracking["enabled"]:
            from search.choosing.challenge import ray_retrainer
            from tracking import Tracker
            from tracking.recorder import MLflowRecorder
            from tracking.sync import replay_if_lost

            tracker = Tracker(tracking["mlflow_uri"], tracking["experiment"])
            tracker.connect()
            if record is not None:
                replay_if_lost(tracker, record.folder, record["search_id"])
            listeners.append(MLflowRecorder(tracker, promote_champion=not flags["no_promote"],
                                            retrain=ray_retrainer(options), challenge_seeds=flags["challenge_seeds"]))
        from search.choosing.summary import print_summary
        from search.running.driver import run

        result = run(options, opened=opened, listeners=listeners, notes={"tracking": tracking, **(notes or {})})
        print_summary(result)
        outcome = {"status": "finished", **result.outcome()}
        if tracker is not None:
            from tracking.recorder import print_recorded

            recorded = listeners[0].recorded
            print_recorded(tracker, recorded)
            outcome["mlflow"] = {"uri": tracker.uri, "experiment": tracker.experiment, **recorded,
                                 "failed_calls": tracker.failures}
        return outcome
    except KeyboardInterrupt as e:
        with signals_ignored():
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
        with signals_ignored():
            if tracker is not None:
                tracker.end("failed", str(e) if isinstance(e, IZFError) else f"{type(e).__name__}: {e}")
        raise


def _campaign(options: SearchOptions, flags: dict, given: dict) -> dict:
    """One search per dataset (search.campaign), each recorded as a lone search is, and the campaign's own
    MLflow run linking them; the outcome lists each dataset's."""
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

    def search(one: OpenedSearch, notes: dict) -> dict:
        print(f"\n=== campaign {options.name or 'izf-campaign'}: {one.options.dataset} ===")
        outcome = _one_search(one, flags, {}, notes)
        return {k: outcome[k] for k in ("val", "test", "test_spread", "chosen_trial", "mlflow") if k in outcome}

    campaign = run_campaign(options, datasets, given, search, emit)
    print_campaign(campaign.data)
    if campaign.status == "failed":
        print(f"error: campaign {campaign['campaign_id']} ended with failed searches: {campaign['error']}",
              file=sys.stderr)
    return {"status": campaign.status, "campaign_id": campaign["campaign_id"], "name": campaign["name"],
            "folder": campaign.folder, "searches": campaign["searches"],
            **({"error": campaign["error"]} if campaign.get("error") else {})}


def _has_record(options: SearchOptions) -> bool:
    return SearchRecord.load(options.experiment_path) is not None

