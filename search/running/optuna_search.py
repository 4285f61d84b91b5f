"""Ray's OptunaSearch, made safe for a resumed driver that was killed, and without the reports Optuna's pruners
would read (the search's early stopping is Tune's ASHA)."""

import optuna
from ray.tune.search.optuna import OptunaSearch

__all__ = ["ResumableOptunaSearch"]


class ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch that leaves alone a trial the study already holds as finished.

    When the driver is killed, Tune restores its searcher from its last snapshot, while the study (a
    database) may have seen a trial finish after that snapshot. Tune then continues that trial from its
    checkpoint and completes it again, and Optuna refuses to update a finished trial
    (UpdateFinishedTrialError), which would end the resumed search. The study keeps the trial's final value."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.finished_in_study: set[str] = set()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Nothing: OptunaSearch would store every report as the Optuna trial's intermediate value, which only
        Optuna's pruners read; each is a write to the study's storage (4 a trial at bench/search_scale.py's
        settings) and more for every later ask to read. The study gets each trial's final value at its end."""

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
