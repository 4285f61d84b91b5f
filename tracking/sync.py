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
import inspect
import json
import sys
from pathlib import Path

from izf.data import default_name
from izf.errors import DataError
from tracking.recorder import EVENTS as EVENT_NAMES
from tracking.recorder import MLflowRecorder, read_bytes
from tracking.tracker import Tracker, default_tracking_uri

__all__ = ["sync", "search_folders", "events_of", "read_record"]

RECORD, EVENTS = "izf_search.json", "izf_events.jsonl"
ARGUMENTS = {name: tuple(inspect.signature(getattr(MLflowRecorder, name)).parameters)[1:] for name in EVENT_NAMES}


def _folder(folder: str) -> str:
    """A local folder as an absolute path; a remote one (s3://...) as it is."""
    return folder.rstrip("/") if "://" in folder else str(Path(folder).resolve())


def search_folders(folder: str) -> list[str]:
    """The search folder itself, or the search folders of a name folder (oldest first)."""
    import pyarrow.fs

    folder = _folder(folder)
    if read_bytes(f"{folder}/{RECORD}") is not None:
        return [folder]
    fs, path = pyarrow.fs.FileSystem.from_uri(folder if "://" in folder else f"file://{folder}")
    found = []
    if fs.get_file_info(path).type == pyarrow.fs.FileType.Directory:
        for info in sorted(fs.get_file_info(pyarrow.fs.FileSelector(path)), key=lambda i: i.base_name):
            child = f"{folder}/{info.base_name}"
            if info.type == pyarrow.fs.FileType.Directory and read_bytes(f"{child}/{RECORD}") is not None:
                found.append(child)
    if not found:
        raise SystemExit(f"error: {folder} holds no search (no {RECORD}); give a search's folder, "
                         "<storage>/<name>/<search id>, as printed when it started")
    return found


def read_record(folder: str) -> dict:
    """A search folder's record; DataError naming the file where it cannot be read."""
    path = f"{folder}/{RECORD}"
    raw = read_bytes(path) or b""
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        record, why = None, f"{type(e).__name__}: {e}"
    else:
        why = "not a JSON object"
    if not isinstance(record, dict) or "description" not in record:
        what = "an empty file" if not raw.strip() else why if record is None or not isinstance(record, dict) \
            else "no description"
        raise DataError(f"{path}: not a readable search record ({what})")
    return record


def events_of(folder: str) -> tuple[list[dict], int]:
    """A search's events in order, and how many lines were skipped: cut short by a crash, or of another shape
    than the recorder's methods take."""
    events, skipped = [], 0
    for line in (read_bytes(f"{folder}/{EVENTS}") or b"").decode(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        name = event.get("event") if isinstance(event, dict) else None
        args = event.get("args") if isinstance(event, dict) else None
        if name not in ARGUMENTS or not isinstance(args, dict) or tuple(args) != ARGUMENTS[name]:
            skipped += 1
            continue
        events.append(event)
    return events, skipped


def sync(folder: str, tracker: Tracker, *, promote_champion: bool = True, record: dict | None = None) -> dict:
    """Bring MLflow up to date with one search folder; return counts of what was added (and `skipped`: lines of
    the events file that could not be read). Where the events stop before the end `record` holds, the record's
    end is recorded."""
    folder = _folder(str(folder))
    events, skipped = events_of(folder)
    if not events:
        raise SystemExit(f"error: {folder} has no readable {EVENTS}: the search recorded no events there")
    recorder = MLflowRecorder(tracker, promote_champion=promote_champion)
    before = dict(tracker.added)
    for event in events:
        getattr(recorder, event["event"])(**event["args"])
        if event["event"] == "search_started" and tracker.parent_id is None:
            raise SystemExit(f"error: MLflow at {tracker.uri} is still unreachable; nothing was written")
    last_end = next((e["args"]["search"].get("status") for e in reversed(events) if e["event"] == "search_ended"),
                    None)
    ended = record is not None and record.get("status", "running") != "running"
    if ended and (last_end != record["status"] or events[-1]["event"] != "search_ended"):
        recorder.search_ended(record)  # the events were cut before the end the record holds
    return {**{k: tracker.added[k] - before[k] for k in before}, "skipped": skipped}


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
        name = folder.rsplit("/", 1)[-1]
        try:
            record = read_record(folder)
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
        skipped = f"; {added['skipped']} unreadable lines of {EVENTS} skipped" if added["skipped"] else ""
        print(f"{name}: added {added['trials']} trial runs and {added['metric_steps']} metric steps; "
              f"{tracker.failures} MLflow calls failed{skipped}{note}")
        code = code or (1 if tracker.failures else 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
