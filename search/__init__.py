"""Ray Tune + Optuna search over IZF hyperparameters, selected on validation classes only.

The folders follow a search's phases: `preparing` (before Ray: the space and its first points, which search
a run is, its lock, the Optuna sampler and study, the Ray cluster), `running` (the driver, the trainable,
what records and shows the trials, interrupts), `choosing` (the final choice, re-evaluation, the test
measurement, the result). `campaign` runs one search per dataset; `cli` is `python search/run.py`.

    from search import SearchOptions, run
    result = run(SearchOptions(dataset="synthetic", num_samples=4))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.options import SearchOptions

if TYPE_CHECKING:
    from search.choosing.result import SearchResult
    from search.running.driver import run

__all__ = ["SearchOptions", "SearchResult", "run"]


def __getattr__(name: str) -> object:
    # Imported when asked for: `run` brings Ray in, SearchResult pandas. A Ray worker that runs a final fit imports
    # this package too, and needs neither.
    if name == "run":
        from search.running.driver import run

        return run
    if name == "SearchResult":
        from search.choosing.result import SearchResult

        return SearchResult
    raise AttributeError(f"module 'search' has no attribute {name!r}")
