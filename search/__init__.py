"""Ray Tune + Optuna search over IZF hyperparameters, selected on validation classes only."""

from search.options import SearchOptions
from search.result import SearchResult
from search.tuner import run

__all__ = ["SearchOptions", "SearchResult", "run"]
