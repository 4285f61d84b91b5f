"""The best trials of the searches an MLflow experiment holds: where a warm start can begin."""

from collections.abc import Callable

from mlflow import MlflowClient

from izf.errors import ConfigError, IZFError, first_line
from tracking.tracker import ROLE_TAG, Tracker, require_store

__all__ = ["best_trials", "warm_start_reader"]

SAMPLED = "search."  # a trial run's sampled values are its params named search.<parameter> (tracking.recorder)


def best_trials(client: MlflowClient, experiment: str, top: int) -> list[dict]:
    """The sampled values of the `top` trial runs with the best validation H (metric best_h), best first, as
    MLflow keeps them (text: see search.preparing.warm.parse_param), each with `attribute_dim`, its search's attribute
    dimension, where its parent run holds it. Re-evaluation runs are not trials of the search."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'trial'",
                              order_by=["metrics.best_h DESC"], max_results=max(top * 4, 100))
    out: list[dict] = []
    seen: list[dict] = []
    parents: dict[str, str | None] = {}
    for run in runs:
        values = {k[len(SAMPLED):]: v for k, v in run.data.params.items() if k.startswith(SAMPLED)}
        if "best_h" not in run.data.metrics or not values or values in seen:
            continue
        seen.append(values)
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent not in parents:
            parents[parent] = client.get_run(parent).data.params.get("attribute_dim") if parent else None
        out.append(values if parents[parent] is None else {**values, "attribute_dim": parents[parent]})
        if len(out) == top:
            break
    return out


def warm_start_reader(mlflow_uri: str) -> Callable[[str, int], list[dict]]:
    """`read(experiment, top)`: best_trials of an experiment in the store at `mlflow_uri`, for --warm-start; a
    ConfigError (naming the flag) where the store or the experiment is not there."""

    def read(experiment: str, top: int) -> list[dict]:
        try:
            require_store(mlflow_uri)
        except ConfigError as e:
            raise ConfigError(f"--warm-start {experiment}: no such folder or file, and {e}") from None
        try:
            client = Tracker(mlflow_uri, experiment).client
            if client.get_experiment_by_name(experiment) is None:
                raise ConfigError(f"--warm-start {experiment}: no such folder or file, and no MLflow experiment of "
                                  f"that name at {mlflow_uri}; name a search folder, its optuna.journal, an Optuna "
                                  "storage URL or an MLflow experiment with trials")
            return best_trials(client, experiment, top)
        except IZFError:
            raise
        except Exception as e:  # noqa: BLE001 - MLflow's, SQLAlchemy's and requests' own errors
            raise ConfigError(f"--warm-start {experiment}: cannot read MLflow at {mlflow_uri} ({type(e).__name__}: "
                              f"{first_line(e)}); is --mlflow-uri right?") from None

    return read
