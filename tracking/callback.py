"""A Tune callback that mirrors every trial into MLflow from the driver."""

from collections.abc import Callable

from ray.tune import Callback

from tracking.tracker import Tracker

__all__ = ["MLflowCallback"]


class MLflowCallback(Callback):
    """Trial start, results and end become a child run of the search's parent run.

    Arguments:
        tracker: the search's Tracker (its parent run already started).
        params_of: a trial's sampled config -> every hyperparameter it trains with (logged as params).
        max_steps: a trial that ends before this step was stopped early by the scheduler.
        interrupted: whether the search was stopped by a signal (its unfinished trials are then
            "interrupted", to be continued by a resume, not "stopped_early").
    """

    def __init__(self, tracker: Tracker, params_of: Callable[[dict], dict], max_steps: int,
                 interrupted: Callable[[], bool] = lambda: False) -> None:
        self.tracker, self.params_of, self.max_steps, self.interrupted = tracker, params_of, max_steps, interrupted

    def on_trial_start(self, iteration: int, trials: list, trial: "Trial", **info: object) -> None:  # noqa: F821
        device = "cuda" if trial.placement_group_factory.required_resources.get("GPU", 0) else "cpu"
        self.tracker.trial_run(trial.trial_id, {**self.params_of(trial.config), **{f"search.{k}": v for k, v in
                                                                                   trial.config.items()}},
                               tags={"device": device, "trial_name": str(trial)})

    on_trial_restore = on_trial_start

    def on_trial_result(self, iteration: int, trials: list, trial: "Trial", result: dict,  # noqa: F821
                        **info: object) -> None:
        if trial.trial_id not in self.tracker.trial_runs:
            self.on_trial_start(iteration, trials, trial)
        self.tracker.log_result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: "Trial", **info: object) -> None:  # noqa: F821
        self.tracker.end_trial(trial.trial_id, self._outcome(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: "Trial", **info: object) -> None:  # noqa: F821
        self.tracker.end_trial(trial.trial_id, "failed")

    def on_experiment_end(self, trials: list, **info: object) -> None:
        """Close every trial run still open: trials the time budget cut short or a signal stopped, and runs
        of trials that a killed driver had started but Tune never saved (a resumed search does not know them)."""
        known = {trial.trial_id: trial for trial in trials}
        for trial_id in self.tracker.open_trial_runs():
            trial = known.get(trial_id)
            self.tracker.end_trial(trial_id, "lost" if trial is None else "failed" if trial.status == "ERROR"
                                   else "interrupted" if self.interrupted() else self._outcome(trial))

    def _outcome(self, trial: "Trial") -> str:  # noqa: F821
        step = (trial.last_result or {}).get("step", 0)
        return "completed" if step >= self.max_steps else "stopped_early"
