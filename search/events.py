"""A search's record as it happens: its events, kept beside the record and handed to listeners.

Five events make up a search's history, each a method of a listener with plain JSON arguments:

    search_started(search)              the record (id, name, folder, settings, description); again on resume
    trial_started(trial)                trial_id, name, params (every FitConfig value), sampled, device
    trial_reported(trial_id, report)    one evaluation: step and metrics
    trial_ended(trial_id, outcome)      completed, stopped_early, failed, interrupted or lost
    search_ended(search)                the record again, with its status and, when finished, its result

They are appended to `izf_events.jsonl` in the search's folder as `{"event": name, "args": {...}}`
lines before listeners get them, so a listener that missed them (MLflow during an outage) is brought
up to date by replaying the file through the same methods (`python -m tracking.sync`).
"""

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from ray.tune import Callback

from search.record import SearchRecord, finite_json, read_text, write_text

__all__ = ["EventLog", "RecordKeeper", "Listeners", "trial_outcome", "EVENTS_FILE", "EVENTS"]

EVENTS_FILE = "izf_events.jsonl"
EVENTS = {"search_started": ("search",), "trial_started": ("trial",), "trial_reported": ("trial_id", "report"),
          "trial_ended": ("trial_id", "outcome"), "search_ended": ("search",)}  # each event's argument names
REMOTE_FLUSH_EVERY_S = 30.0
# Tune's bookkeeping in a result that is not the trial's report.
NOT_REPORTED = {"config", "done", "should_checkpoint", "checkpoint_dir_name", "experiment_tag", "date", "hostname",
                "time_since_restore", "iterations_since_restore"}


def trial_outcome(status: str, step: int, max_steps: int, *, interrupted: bool) -> str:
    """How a trial ended, from Tune's status: the one rule the live search and its files share."""
    if status == "ERROR":
        return "failed"
    if step >= max_steps:
        return "completed"
    return "interrupted" if interrupted else "stopped_early"


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
        if self.remote:
            write_text(self.path, "".join(self.lines))
            self.flushed = time.monotonic()

    @staticmethod
    def read(folder: str | Path) -> list[dict]:
        """The events of a search folder, in order (a line cut short by a crash is left out)."""
        events = []
        for line in (read_text(f"{str(folder).rstrip('/')}/{EVENTS_FILE}") or "").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


def _ends_cut(path: Path) -> bool:
    """Whether a local events file ends inside a line (its writer was killed mid-line)."""
    try:
        with open(path, "rb") as f:
            f.seek(-1, 2)
            return f.read(1) != b"\n"
    except OSError:  # no file yet, or an empty one
        return False


class Listeners:
    """Record each event, then hand it to every listener that has the event's method."""

    def __init__(self, log: EventLog, listeners: list) -> None:
        self.log, self.listeners = log, listeners

    def emit(self, event: str, **args: object) -> None:
        assert tuple(args) == EVENTS[event], (event, tuple(args))
        self.log.append(event, args)
        for listener in self.listeners:
            method = getattr(listener, event, None)
            if method is not None:
                method(**args)


class RecordKeeper(Callback):
    """Turns Tune's trial events into the record's: trials in izf_search.json, events to the listeners.

    Arguments:
        record: the search's record (its `trials` kept up to date here).
        emit: Listeners.emit.
        params_of: a trial's config -> every FitConfig value it trains with.
        max_steps: a trial's full length.
        interrupted: whether a signal stopped the search (unfinished trials then end "interrupted").
    """

    def __init__(self, record: SearchRecord, emit: Callable, params_of: Callable[[dict], dict], max_steps: int,
                 interrupted: Callable[[], bool]) -> None:
        self.record, self.emit, self.params_of, self.max_steps = record, emit, params_of, max_steps
        self.interrupted = interrupted
        self.trials: dict[str, dict] = record.data.setdefault("trials", {})

    def _completed(self, trial: "Trial") -> bool:  # noqa: F821
        """Whether the record has the trial as completed (Tune may restore it as running after a kill; its
        trainable then returns at once, and the record keeps what it had)."""
        return self.trials.get(trial.trial_id, {}).get("outcome") == "completed"

    def on_trial_start(self, iteration: int, trials: list, trial: "Trial", **info: object) -> None:  # noqa: F821
        if self._completed(trial):
            return
        resources = trial.placement_group_factory  # None until Tune has placed the trial
        device = "cuda" if resources is not None and resources.required_resources.get("GPU", 0) else "cpu"
        started = {"trial_id": trial.trial_id, "name": str(trial), "params": self.params_of(trial.config),
                   "sampled": dict(trial.config), "device": device}
        self.trials[trial.trial_id] = {**self.trials.get(trial.trial_id, {}), **started, "outcome": None}
        self.record.save()
        self.emit("trial_started", trial=started)

    on_trial_restore = on_trial_start

    def on_trial_result(self, iteration: int, trials: list, trial: "Trial", result: dict,  # noqa: F821
                        **info: object) -> None:
        if self._completed(trial):
            return
        if trial.trial_id not in self.trials:  # a trial of an earlier driver, reporting again after a resume
            self.on_trial_start(iteration, trials, trial)
        report = {k: v for k, v in result.items() if k not in NOT_REPORTED
                  and (not isinstance(v, float) or math.isfinite(v))}
        self.trials[trial.trial_id]["last"] = report
        self.emit("trial_reported", trial_id=trial.trial_id, report=report)

    def on_trial_complete(self, iteration: int, trials: list, trial: "Trial", **info: object) -> None:  # noqa: F821
        if self._completed(trial):
            return
        self._end(trial.trial_id, trial_outcome("TERMINATED", self._step(trial), self.max_steps, interrupted=False))

    def on_trial_error(self, iteration: int, trials: list, trial: "Trial", **info: object) -> None:  # noqa: F821
        self._end(trial.trial_id, "failed")

    def on_experiment_end(self, trials: list, **info: object) -> None:
        """End every trial still open: those the time budget cut (marked `cut_by` "time budget") or a signal
        stopped, and those a killed driver had started but Tune never saved (a resumed search does not know
        them: "lost")."""
        known = {trial.trial_id: trial for trial in trials}
        for trial_id in [t for t, summary in self.trials.items() if summary.get("outcome") is None]:
            trial = known.get(trial_id)
            if trial is not None and not self.interrupted():  # every other trial ended before the experiment did
                self.trials[trial_id]["cut_by"] = "time budget"
            self._end(trial_id, "lost" if trial is None else trial_outcome(
                trial.status, self._step(trial), self.max_steps, interrupted=self.interrupted()))

    def _end(self, trial_id: str, outcome: str) -> None:
        if trial_id in self.trials:
            self.trials[trial_id]["outcome"] = outcome
        self.record.save()
        self.emit("trial_ended", trial_id=trial_id, outcome=outcome)

    @staticmethod
    def _step(trial: "Trial") -> int:  # noqa: F821
        return (trial.last_result or {}).get("step", 0)
