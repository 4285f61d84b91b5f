"""`python -m tracking.sync <search folder>`: write into MLflow whatever a search could not.

Replays the search's events (izf_events.jsonl, written by the search as it ran) through the same
MLflowRecorder methods the live search called: runs found by their tags, metric steps already logged
skipped, the model registered once. Running it twice changes nothing. A line the search's crash cut short,
or one of the wrong shape, is skipped and counted; where the events end before the search's end that its
record holds (the line was cut), the record's end is recorded, so no run stays RUNNING. The folder is one
search's, `<storage>/<name>/<search id>`; given `<storage>/<name>`, every search of that name is synced,
and one that cannot be read is named and skipped. The champion rule is applied alone (no challenge: decide
one with `python -m tracking.promote`).
"""

import argparse
import sys

from izf.data import default_name
from izf.errors import DataError
from record import EVENTS_FILE, SEARCH_FILE, SearchRecord, read_events, search_folders
from record.storage import absolute
from tracking.recorder import MLflowRecorder
from tracking.tracker import Tracker, default_tracking_uri

__all__ = ["sync", "replay_if_lost"]


def sync(folder: str, tracker: Tracker, *, promote_champion: bool = True, record: dict | None = None) -> dict:
    """Bring MLflow up to date with one search folder; return counts of what was added (and `skipped`: lines of
    the events file that could not be read). Where the events stop before the end `record` holds, the record's
    end is recorded."""
    folder = absolute(str(folder))
    events, skipped = read_events(folder)
    if not events:
        raise SystemExit(f"error: {folder} has no readable {EVENTS_FILE}: the search recorded no events there")
    recorder = MLflowRecorder(tracker, promote_champion=promote_champion)
    before = dict(tracker.added)
    for event in events:
        getattr(recorder, event["event"])(**event["args"])
        if event["event"] == "search_started":
            if tracker.parent_id is None:
                raise SystemExit(f"error: MLflow at {tracker.uri} is still unreachable; nothing was written")
            tracker.read_trial_runs()
    last_end = next((e["args"]["search"].get("status") for e in reversed(events) if e["event"] == "search_ended"),
                    None)
    ended = record is not None and record.get("status", "running") != "running"
    if ended and (last_end != record["status"] or events[-1]["event"] != "search_ended"):
        recorder.search_ended(record)  # the events were cut before the end the record holds
    return {**{k: tracker.added[k] - before[k] for k in before}, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    """Run `python -m tracking.sync` with `argv`; return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m tracking.sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a search's folder, e.g. ray_results/izf-sun/20261129-101502-7f3e")
    parser.add_argument("--mlflow-uri", default=None, help="default: the one the search recorded to, else "
                                                           "$MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    parser.add_argument("--experiment", default=None, help="MLflow experiment (default: the search's)")
    parser.add_argument("--no-promote", action="store_true")
    args = parser.parse_args(argv)
    code = 0
    folders = search_folders(args.folder)
    if not folders:
        print(f"error: {absolute(args.folder)} holds no search (no {SEARCH_FILE}); give a search's folder, "
              "<storage>/<name>/<search id>, as printed when it started", file=sys.stderr)
        return 1
    for folder in folders:
        name = folder.rsplit("/", 1)[-1]
        try:
            record = SearchRecord.load(folder).data
        except DataError as e:
            print(f"error: {e}; the other searches are synced", file=sys.stderr)
            code = 1
            continue
        recorded = record.get("notes", {}).get("tracking", {})
        tracker = Tracker(args.mlflow_uri or recorded.get("mlflow_uri") or default_tracking_uri(),
                          args.experiment or recorded.get("experiment")
                          or default_name(record["description"]["dataset"]))
        added = sync(folder, tracker, promote_champion=not args.no_promote, record=record)
        note = "; the search is still running, or its driver was killed: `--resume` finishes it" \
            if record.get("status", "running") == "running" else ""
        skipped = f"; {added['skipped']} unreadable lines of {EVENTS_FILE} skipped" if added["skipped"] else ""
        print(f"{name}: added {added['trials']} trial runs and {added['metric_steps']} metric steps; "
              f"{tracker.failures} MLflow calls failed{skipped}{note}")
        code = code or (1 if tracker.failures else 0)
    return code



def replay_if_lost(tracker: Tracker, folder: str, search_id: str) -> None:
    """A resumed search whose MLflow store has lost it (replaced, moved away): its events so far are written there
    first, as `tracking.sync` would, so that the store holds the whole search and not only what comes next."""
    if tracker.safe("find the search", tracker.knows_search, search_id) is not False:
        return  # the store has it, or cannot be reached (the outage is warned about and synced later)
    if not read_events(folder)[0]:
        return
    added = sync(folder, tracker, promote_champion=False)
    print(f"MLflow at {tracker.uri} had no record of search {search_id}: its events were written there "
          f"first ({added['trials']} trial runs, {added['metric_steps']} metric steps)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
