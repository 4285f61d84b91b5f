"""Ray Tune + Optuna search over IZF hyperparameters, selected on validation classes only."""

from search.options import SearchOptions
from search.tuner import SearchResult, run

__all__ = ["SearchOptions", "SearchResult", "run"]
