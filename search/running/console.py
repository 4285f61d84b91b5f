"""The search's console: one line per trial start and end, a status line every minute, the best so far."""


from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ray.tune import Callback

from izf.errors import error_line
from search.preparing.space import fit_fields

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from search.options import SearchOptions


__all__ = ["Progress", "print_header", "quiet_console", "print_time_budget", "cut_by_time_budget",
           "plural"]

STATUS_EVERY_S = 60.0
STATUS_STEPS_UP_TO = 8  # the status line names each running trial's step while no more than this many run
# Tune's log lines that this console says better: a failed trial (one line, with its retry), an interruption
# (with the command that resumes it; Tune's own advice names Tuner.restore), the state it saved.
# "Failed to fetch metrics": a trial created but never started when --time-budget ran out has no results.
TUNE_NOISE = ("Stop signal received", "Experiment has been interrupted", "Trials did not complete",
              "Trial task failed for trial", "Wrote the latest version", "Failed to fetch metrics for")
TUNE_LOGGERS = ("ray.tune.tune", "ray.tune.execution.tune_controller", "ray.tune.analysis.experiment_analysis")


class _DropTuneNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Error handling checkpoint" in message and record.exc_info and \
                isinstance(record.exc_info[1], FileNotFoundError):
            # After a killed driver, Tune may look for a checkpoint folder it had already removed: a 20-line
            # traceback for a file that is rightly gone. One line says it.
            record.msg, record.args = f"{message.split(': Error')[0]}: an earlier checkpoint of this trial was " \
                f"already gone ({record.exc_info[1]}); it goes on from its newest", ()
            record.exc_info = record.exc_text = None
        return not message.startswith(TUNE_NOISE)


def quiet_console(verbose: bool) -> None:
    """Leave on the console only what a user can act on (`verbose`: everything Ray and Optuna say)."""
    import optuna

    # Every report carries a checkpoint (a retried trial resumes, not restarts); Tune warns about that.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's newer console prints its configuration box and a TensorBoard hint even at verbose=0; the
    # older one is silent there. Read by Tune at the start of every fit.
    if verbose:
        os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
    else:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    if not verbose:  # a trial retried from its checkpoint reports its steps again; Optuna keeps the first
        warnings.filterwarnings("ignore", message="The reported value is ignored because this `step", module="optuna")
    for name in TUNE_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _DropTuneNoise)]:
            logger.removeFilter(old)
        if not verbose:
            logger.addFilter(_DropTuneNoise())


def plural(n: int, word: str) -> str:
    """`1 trial`, `2 trials`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def cut_by_time_budget(trials: dict) -> list[str]:
    """The trials of a record that --time-budget stopped before their end (search.running.keeper.RecordKeeper)."""
    return [trial_id for trial_id, t in trials.items() if t.get("cut_by") == "time budget"]


def print_time_budget(options: SearchOptions, trials: dict) -> None:
    """Where --time-budget ended the trials: after how many, and which it cut short."""
    cut = cut_by_time_budget(trials)
    if options.time_budget_s is None or not cut and len(trials) >= options.num_samples:
        return
    cut_text = f"; cut short: {', '.join(cut[:10])}{f' and {len(cut) - 10} more' if len(cut) > 10 else ''}" \
        if cut else ""
    print(f"time budget reached ({options.time_budget_s:g} s): {len(trials)} of "
          f"{plural(options.num_samples, 'trial')} started{cut_text}", flush=True)


def print_header(options: SearchOptions, resumed_from: str | None) -> None:
    """What the search is and where its files go, before the first trial."""
    o = options
    what = f"resuming search {o.search_id} ({resumed_from})" if resumed_from else f"search {o.search_id}"
    stopping = "ASHA early stopping" if o.scheduler == "asha" else "no early stopping"
    ray = f"Ray cluster {o.address}" if o.address else "local Ray"
    print(f"{what} of {o.experiment_name}: {plural(o.num_samples, 'trial')} on {o.dataset}, {o.max_concurrent} at "
          f"a time, {o.sampler} sampler, {stopping}, {ray}\n"
          f"  folder {o.experiment_path}", flush=True)
    if o.warm_start:
        n = len(o.warm_start_points)
        print(f"  warm start: the {n} best point{'s' if n != 1 else ''} of {o.warm_start} first", flush=True)


def _number(trial: Trial) -> int:
    """The trial's number in the search, 1 for the first (Tune's experiment tag begins with it)."""
    head = str(trial.experiment_tag).split("_")[0]
    return int(head) if head.isdigit() else 0


def _best(trials: list, *, ending: Trial | None = None) -> str:
    """The best validation H reported so far, and whose: by any trial, running ones included; with `ending` (a
    trial at its end), by the trials that have ended and that one, not another's intermediate report."""
    scored = [((t.last_result or {}).get("best_h"), _number(t)) for t in trials
              if ending is None or t is ending or t.status in ("TERMINATED", "ERROR")]
    scored = [(h, n) for h, n in scored if isinstance(h, float)]
    if not scored:
        return "-"
    h, n = max(scored)
    return f"{100 * h:.2f} (trial {n})"


def _short(config: dict) -> str:
    """The FitConfig values a trial trains with, in one line (floats to 3 digits)."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in fit_fields(config).items())


class Progress(Callback):
    """Compact progress of one search, printed by the driver (Ray's own tables are for `-v`).

    Arguments:
        total: trials the search will run.
        max_steps: a trial's full length (a shorter one was stopped early).
        out: where to print (stdout).
    """

    def __init__(self, total: int, max_steps: int, out: TextIO | None = None,
                 completed: frozenset = frozenset()) -> None:
        self.total, self.max_steps, self.out = total, max_steps, out or sys.stdout
        self.completed = completed  # trials the record has as completed (a resumed search does not run them)
        self.started = time.monotonic()
        self.last_status = self.started

    def say(self, text: str) -> None:
        """Print one line of the console."""
        seconds = int(time.monotonic() - self.started)
        clock = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
            else f"{seconds // 60:02d}:{seconds % 60:02d}"
        print(f"[{clock}] {text}", file=self.out, flush=True)

    def _name(self, trials: list, trial: Trial) -> str:
        return f"trial {_number(trial):>2} {trial.trial_id}"

    def on_trial_start(self, iteration: int, trials: list, trial: Trial, **info: object) -> None:
        step = (trial.last_result or {}).get("step")
        if trial.trial_id in self.completed:
            self.say(f"{self._name(trials, trial)} had completed before the search stopped: not run again")
        elif step:  # a resumed search's trial, back from its last checkpoint
            self.say(f"{self._name(trials, trial)} continues from its checkpoint at step {step}")
        else:
            self.say(f"{self._name(trials, trial)} started: {_short(trial.config)}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **info: object) -> None:
        if trial.trial_id in self.completed:
            return
        result = trial.last_result or {}
        step, h = result.get("step", 0), result.get("best_h")
        how = "completed" if step >= self.max_steps else f"stopped at step {step}"
        val = f"val H {100 * h:.2f}" if isinstance(h, float) else "no validation H"
        self.say(f"{self._name(trials, trial)} {how}: {val}, best so far {_best(trials, ending=trial)}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Trial, **info: object) -> None:
        self.say(f"{self._name(trials, trial)} failed ({self._error(trial)}); retried from its last checkpoint "
                 f"(retry {trial.num_failures} of {trial.max_failures})")

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **info: object) -> None:
        retries = f" after {trial.max_failures} {'retry' if trial.max_failures == 1 else 'retries'}" \
            if trial.max_failures else ""
        self.say(f"{self._name(trials, trial)} failed{retries}: {self._error(trial)} (traceback: "
                 f"{trial.path}/error.txt)")

    def on_step_end(self, iteration: int, trials: list, **info: object) -> None:
        if time.monotonic() - self.last_status < STATUS_EVERY_S:
            return
        self.last_status = time.monotonic()
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        running = [t for t in trials if t.status == "RUNNING"]
        steps = ""
        if running and len(running) <= STATUS_STEPS_UP_TO:
            steps = " ({})".format(", ".join(f"{_number(t)} at step {(t.last_result or {}).get('step', 0)}"
                                             for t in running))
        self.say(f"{done} of {self.total} trials ended, {len(running)} running{steps}, "
                 f"{max(0, self.total - done - len(running))} pending; best val H {_best(trials)}")

    @staticmethod
    def _error(trial: Trial) -> str:
        """The trial's latest error, from the error file Tune has just written beside the driver."""
        try:
            text = Path(trial.error_file).read_text()
        except (OSError, TypeError):  # no error file (yet)
            return "the trial's process died"
        return error_line(text.rsplit("Failure # ", 1)[-1])


def print_reevaluation_start(options: SearchOptions, top: list[dict]) -> None:
    """The noise-aware phase: which trials are retrained, and how many fits that is."""
    trials = ", ".join(f"{t['trial_id']} (H {100 * t['val']['best_h']:.2f})" for t in top)
    print(f"re-evaluating the top {len(top)} with {options.reevaluate_seeds} new seeds each "
          f"({len(top) * options.reevaluate_seeds} fits on validation classes): {trials}", flush=True)
