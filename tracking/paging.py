"""MLflow's searches, every page: a search returns at most `max_results` runs (1,000 by default) or model versions
and a token for the next page; a search of 1,000 trials or a registry of many versions needs them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

__all__ = ["every_run", "every_version", "PAGE_SIZE"]

PAGE_SIZE = 1000  # runs or versions a call asks for (MLflow's own default page of runs)


def _every(search: Callable) -> list:
    found, token = [], None
    while True:
        page = search(max_results=PAGE_SIZE, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def every_run(client: MlflowClient, experiment_ids: list[str], filter_string: str = "",
              order_by: list[str] | None = None) -> list[Run]:
    """Every run of `experiment_ids` that `filter_string` finds, in `order_by`'s order, page after page."""
    return _every(lambda **page: client.search_runs(experiment_ids, filter_string, order_by=order_by, **page))


def every_version(client: MlflowClient, filter_string: str) -> list[ModelVersion]:
    """Every model version that `filter_string` finds (e.g. "name = 'izf-sun'"), page after page."""
    return _every(lambda **page: client.search_model_versions(filter_string, **page))
