"""The search's record as it happens: Tune's trial events into izf_search.json and the record's events.

`RecordKeeper` (a Tune callback) keeps the record's trials and emits the events of record.events through
`Listeners`, which append each to the search's events file before handing it to every listener.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ray.tune import Callback

from record import EventLog, SearchRecord

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["RecordKeeper", "Listeners", "trial_outcome"]

# While trials run, the record (every trial's summary, rewritten whole) is written at most this often: twice a trial
# would make the writes quadratic in the trials (a write grows with them: 33 ms on average over a 120-trial search,
# cProfile). The events file has each event at once; the record catches up within this time, and is written at
# once when the trials end.
SAVE_EVERY_S = 5.0

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


class Listeners:
    """Record each event, then hand it to every listener that has the event's method."""

    def __init__(self, log: EventLog, listeners: list) -> None:
        self.log, self.listeners = log, listeners

    def emit(self, event: str, **args: object) -> None:
        """Append the event to the file, then call each listener's method of that name."""
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
        self.saved, self.unsaved = time.monotonic(), False

    def _save(self, *, now: bool = False) -> None:
        """Write the record if it changed and SAVE_EVERY_S have passed since the last write (or `now`)."""
        self.unsaved = True
        self._save_if_due(now=now)

    def _save_if_due(self, *, now: bool = False) -> None:
        if self.unsaved and (now or time.monotonic() - self.saved >= SAVE_EVERY_S):
            self.record.save()
            self.saved, self.unsaved = time.monotonic(), False

    def on_step_end(self, iteration: int, trials: list, **info: object) -> None:
        self._save_if_due()

    def _completed(self, trial: Trial) -> bool:
        """Whether the record has the trial as completed (Tune may restore it as running after a kill; its
        trainable then returns at once, and the record keeps what it had)."""
        return self.trials.get(trial.trial_id, {}).get("outcome") == "completed"

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: object) -> None:
        if self._completed(trial):
            return
        resources = trial.placement_group_factory  # None until Tune has placed the trial
        device = "cuda" if resources is not None and resources.required_resources.get("GPU", 0) else "cpu"
        started = {"trial_id": trial.trial_id, "name": str(trial), "params": self.params_of(trial.config),
                   "sampled": dict(trial.config), "device": device}
        self.trials[trial.trial_id] = {**self.trials.get(trial.trial_id, {}), **started, "outcome": None}
        self._save()
        self.emit("trial_started", trial=started)

    on_trial_restore = on_trial_start

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict,
                        **info: object) -> None:
        if self._completed(trial):
            return
        if trial.trial_id not in self.trials:  # a trial of an earlier driver, reporting again after a resume
            self.on_trial_start(iteration, trials, trial)
        report = {k: v for k, v in result.items() if k not in NOT_REPORTED
                  and (not isinstance(v, float) or math.isfinite(v))}
        self.trials[trial.trial_id]["last"] = report
        self.emit("trial_reported", trial_id=trial.trial_id, report=report)

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: object) -> None:
        if self._completed(trial):
            return
        self._end(trial.trial_id, trial_outcome("TERMINATED", self._step(trial), self.max_steps, interrupted=False))

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: object) -> None:
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
        self._save(now=True)

    def _end(self, trial_id: str, outcome: str) -> None:
        if trial_id in self.trials:
            self.trials[trial_id]["outcome"] = outcome
        self._save()
        self.emit("trial_ended", trial_id=trial_id, outcome=outcome)

    @staticmethod
    def _step(trial: Trial) -> int:
        return (trial.last_result or {}).get("step", 0)
