"""What a search found, read from its record: the chosen config, its validation metrics, its test measurement."""

import math
from dataclasses import dataclass, field

import pandas as pd

from record.search import SearchRecord
from search.options import SearchOptions
from search.preparing.sampling import METRIC, MODE

__all__ = ["SearchResult", "result_of", "finished_result", "pareto_front"]


@dataclass
class SearchResult:
    """What a search found: the chosen config, its validation metrics, and its one test measurement."""

    experiment_path: str
    n_trials: int
    n_errors: int  # trials that raised (divergence included) after their retries
    trials: pd.DataFrame  # one row per trial that reported: config/* columns and its last metrics
    best_config: dict  # FitConfig fields of the chosen trial
    best_val: dict  # the chosen trial's best validation metrics
    test: dict  # test metrics of the chosen config retrained on trainval (mean over final seeds)
    test_spread: dict  # their standard deviation over final seeds (0 for one seed)
    data_checksum: str = ""
    model_file: bytes = b""  # the first final seed's model, in izf.io format
    feature_dim: int = 0
    pareto: pd.DataFrame | None = None  # multi-objective searches: the non-dominated trials
    search_seconds: float = 0.0  # wall time of the trials phase (Tuner.fit), without the final retrain
    search_id: str = ""
    dataset: str = ""
    final_seeds: int = 1
    chosen_trial: str = ""  # the trial id whose config was chosen
    final_key: str = ""  # identifies what the final result records: the chosen trial, config and seeds
    reevaluation: dict | None = None  # --reevaluate-top: per trial id, its new seeds' validation H, mean, spread
    single_seed_choice: str = ""  # the trial the single best validation H would have chosen
    cut_by_time_budget: list[str] = field(default_factory=list)  # trials --time-budget stopped before their end

    def outcome(self) -> dict:
        """The result as plain values (what `--json` prints and a campaign keeps)."""
        return {"chosen_trial": self.chosen_trial, "best_config": self.best_config, "val": self.best_val,
                "test": self.test, "test_spread": self.test_spread, "n_trials": self.n_trials,
                "n_errors": self.n_errors, "reevaluation": self.reevaluation,
                "single_seed_choice": self.single_seed_choice or None}


def result_of(options: SearchOptions, record: SearchRecord, trials: pd.DataFrame, model_file: bytes) -> SearchResult:
    """A finished search's result from its record, with Ray's table of its trials."""
    final, description = record["final"], record["description"]
    return SearchResult(
        experiment_path=options.experiment_path, n_trials=final["n_trials"], n_errors=final["n_errors"],
        trials=trials, best_config=final["best_config"], best_val=final["best_val"], test=final["test"],
        test_spread=final["test_spread"], data_checksum=description["data_checksum"], model_file=model_file,
        feature_dim=description["feature_dim"],
        pareto=pareto_front(trials, description["study"]) if options.objective == "multi" else None,
        search_seconds=final["search_seconds"], search_id=options.search_id, dataset=options.dataset,
        final_seeds=options.final_seeds, chosen_trial=final["chosen_trial"], final_key=final["final_key"],
        reevaluation=final.get("reevaluation"), single_seed_choice=final.get("single_seed_choice", ""),
        cut_by_time_budget=final.get("cut_by_time_budget", []))


def finished_result(options: SearchOptions, record: SearchRecord) -> SearchResult:
    """The result of a search that had finished, from its record and Ray's files (no trial runs again)."""
    from ray.tune import ExperimentAnalysis

    trials = ExperimentAnalysis(options.experiment_path, default_metric=METRIC, default_mode=MODE).dataframe()
    return result_of(options, record, trials, record.model_file() or b"")


def pareto_front(trials: pd.DataFrame, study: dict) -> pd.DataFrame:
    """The trials on the Pareto front of validation H (up) and training seconds (down), as Optuna's study of
    the search has them (`study.best_trials`), best H first."""
    import optuna

    from record.study import open_storage

    front = optuna.load_study(study_name=study["name"], storage=open_storage(study["storage"])).best_trials
    on_front = [i for i, row in trials.iterrows() if any(_same_point(row, t.params) for t in front)]
    return trials.loc[on_front].sort_values("best_h", ascending=False)


def _same_point(row: pd.Series, params: dict) -> bool:
    """Whether a trial's row (its config/* columns) is the point an Optuna trial sampled."""
    for name, value in params.items():
        mine = row.get(f"config/{name}")
        if isinstance(value, float) and isinstance(mine, float):
            if not math.isclose(mine, value, rel_tol=1e-12):
                return False
        elif mine != value:
            return False
    return True
