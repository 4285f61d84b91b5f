"""Ray's OptunaSearch, made safe for a resumed driver that was killed."""

import optuna
from ray.tune.search.optuna import OptunaSearch

__all__ = ["ResumableOptunaSearch"]


class ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch that leaves alone a trial the study already holds as finished.

    When the driver is killed, Tune restores its searcher from its last snapshot, while the study (a
    database) may have seen a trial finish after that snapshot. Tune then continues that trial from its
    checkpoint and reports to it again, and Optuna refuses to update a finished trial
    (UpdateFinishedTrialError), which would end the resumed search. The study keeps the trial's final value;
    the repeated reports are not needed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.finished_in_study: set[str] = set()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.finished_in_study:
            return
        try:
            super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.finished_in_study.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.finished_in_study:
            return
        try:
            super().on_trial_complete(trial_id, result, error)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as e:
            # A trial the record had as completed (not run again after a kill): the study has its value already.
            if isinstance(e, ValueError) and not str(e).startswith("Cannot tell a "):
                raise
            self.finished_in_study.add(trial_id)
