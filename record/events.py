"""A search's events: what happened, in order, in `izf_events.jsonl` beside its record.

Five events make up a search's history, each with plain JSON arguments:

    search_started(search)              the record (id, name, folder, settings, description); again on resume
    trial_started(trial)                trial_id, name, params (every FitConfig value), sampled, device
    trial_reported(trial_id, report)    one evaluation: step and metrics
    trial_ended(trial_id, outcome)      completed, stopped_early, failed, interrupted or lost
    search_ended(search)                the record again, with its status and, when finished, its result

They are appended to the file as `{"event": name, "args": {...}}` lines before listeners get them (a
listener has one method per event, e.g. tracking's MLflowRecorder), so a listener that missed them (MLflow
during an outage) is brought up to date by replaying the file through the same methods (`python -m
tracking.sync`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from record.search import finite_json
from record.storage import read_text, write_text

__all__ = ["EventLog", "read_events", "EVENTS", "EVENTS_FILE"]

EVENTS_FILE = "izf_events.jsonl"
EVENTS = {"search_started": ("search",), "trial_started": ("trial",), "trial_reported": ("trial_id", "report"),
          "trial_ended": ("trial_id", "outcome"), "search_ended": ("search",)}  # each event's argument names
REMOTE_FLUSH_EVERY_S = 30.0


class EventLog:
    """The search's events file: appended line by line on a local folder; on remote storage (s3://...) kept
    in memory and written whole, at most every 30 s and at the end."""

    def __init__(self, folder: str) -> None:
        self.path = f"{folder.rstrip('/')}/{EVENTS_FILE}"
        self.remote = "://" in folder
        self.lines: list[str] = (read_text(self.path) or "").splitlines(keepends=True) if self.remote else []
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += "\n"  # a line cut by a crash stays on its own line, unreadable, and alone
        self.cut = not self.remote and _ends_cut(Path(self.path))
        self.flushed = time.monotonic()

    def append(self, event: str, args: dict) -> None:
        """Add one event (an event of EVENTS with its arguments by name)."""
        assert tuple(args) == EVENTS[event], (event, tuple(args))
        line = json.dumps({"event": event, "args": finite_json(args)}, default=str) + "\n"
        if not self.remote:
            with open(self.path, "a") as out:
                out.write("\n" * self.cut + line)  # after a cut line, a fresh one: not glued onto it
            self.cut = False
            return
        self.lines.append(line)
        if event != "trial_reported" or time.monotonic() - self.flushed > REMOTE_FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write what remote storage has not got yet (nothing to do on a local folder)."""
        if self.remote:
            write_text(self.path, "".join(self.lines))
            self.flushed = time.monotonic()


def _ends_cut(path: Path) -> bool:
    """Whether a local events file ends inside a line (its writer was killed mid-line)."""
    try:
        with open(path, "rb") as f:
            f.seek(-1, 2)
            return f.read(1) != b"\n"
    except OSError:  # no file yet, or an empty one
        return False


def read_events(folder: str) -> tuple[list[dict], int]:
    """A search's events in order, and how many lines were skipped: cut short by a crash, or not an event of
    EVENTS with its arguments."""
    events, skipped = [], 0
    for line in (read_text(f"{folder.rstrip('/')}/{EVENTS_FILE}") or "").splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        name = event.get("event") if isinstance(event, dict) else None
        args = event.get("args") if isinstance(event, dict) else None
        if name not in EVENTS or not isinstance(args, dict) or tuple(args) != EVENTS[name]:
            skipped += 1
            continue
        events.append(event)
    return events, skipped
