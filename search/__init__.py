"""Ray Tune + Optuna search over IZF hyperparameters, selected on validation classes only.

`search.tuner.run(options)` runs a search. (It is not re-exported here as `search.run`: that name is the
CLI module `search/run.py`, and importing it would replace the function under every later importer.)
"""

from search.options import SearchOptions
from search.result import SearchResult

__all__ = ["SearchOptions", "SearchResult"]
