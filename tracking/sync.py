"""`python -m tracking.sync <search folder>`: write into MLflow whatever a search could not.

Replays the search's events (izf_events.jsonl, written by the search as it ran) through the same
MLflowRecorder methods the live search called: runs found by their tags, metric steps already logged
skipped, the model registered once. Running it twice changes nothing. The folder is one search's,
`<storage>/<name>/<search id>`; given `<storage>/<name>`, every search of that name is synced.
"""

import argparse
import json
import sys
from pathlib import Path

from izf.data import default_name
from tracking.recorder import EVENTS as EVENT_NAMES
from tracking.recorder import MLflowRecorder, read_bytes
from tracking.tracker import Tracker, default_tracking_uri

__all__ = ["sync", "search_folders"]

RECORD, EVENTS = "izf_search.json", "izf_events.jsonl"


def search_folders(folder: Path | str) -> list[Path]:
    """The search folder itself, or the search folders of a name folder (oldest first)."""
    folder = Path(folder).resolve()
    if (folder / RECORD).is_file():
        return [folder]
    found = sorted(p.parent for p in folder.glob(f"*/{RECORD}"))
    if not found:
        raise SystemExit(f"error: {folder} holds no search (no {RECORD}); give a search's folder, "
                         "<storage>/<name>/<search id>, as printed when it started")
    return found


def events_of(folder: Path | str) -> list[dict]:
    """A search's events in order; a line cut short by a crash is left out."""
    events = []
    for line in (read_bytes(f"{folder}/{EVENTS}") or b"").decode().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") in EVENT_NAMES:
            events.append(event)
    return events


def sync(folder: Path | str, tracker: Tracker, *, promote_champion: bool = True) -> dict:
    """Bring MLflow up to date with one search folder; return counts of what was added."""
    events = events_of(Path(folder).resolve())
    if not events:
        raise SystemExit(f"error: {folder} has no {EVENTS}: the search recorded no events there")
    recorder = MLflowRecorder(tracker, promote_champion=promote_champion)
    before = dict(tracker.added)
    for event in events:
        getattr(recorder, event["event"])(**event["args"])
        if event["event"] == "search_started" and tracker.parent_id is None:
            raise SystemExit(f"error: MLflow at {tracker.uri} is still unreachable; nothing was written")
    return {k: tracker.added[k] - before[k] for k in before}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a search's folder, e.g. ray_results/izf-sun/20261129-101502-7f3e")
    parser.add_argument("--mlflow-uri", default=None, help="default: the one the search recorded to, else "
                                                           "$MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    parser.add_argument("--experiment", default=None, help="MLflow experiment (default: the search's)")
    parser.add_argument("--no-promote", action="store_true")
    args = parser.parse_args(argv)
    code = 0
    for folder in search_folders(args.folder):
        record = json.loads((folder / RECORD).read_text())
        recorded = record.get("notes", {}).get("tracking", {})
        tracker = Tracker(args.mlflow_uri or recorded.get("mlflow_uri") or default_tracking_uri(),
                          args.experiment or recorded.get("experiment")
                          or default_name(record["description"]["dataset"]))
        added = sync(folder, tracker, promote_champion=not args.no_promote)
        note = "; the search is still running, or its driver was killed: `--resume` finishes it" \
            if record.get("status", "running") == "running" else ""
        print(f"{folder.name}: added {added['trials']} trial runs and {added['metric_steps']} metric steps; "
              f"{tracker.failures} MLflow calls failed{note}")
        code = code or (1 if tracker.failures else 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
