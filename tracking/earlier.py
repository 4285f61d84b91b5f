"""The best trials of the searches an MLflow experiment holds: where a warm start can begin."""

from mlflow import MlflowClient

from tracking.tracker import ROLE_TAG

__all__ = ["best_trials"]

SAMPLED = "search."  # a trial run's sampled values are its params named search.<parameter> (tracking.recorder)


def best_trials(client: MlflowClient, experiment: str, top: int) -> list[dict]:
    """The sampled values of the `top` trial runs with the best validation H (metric best_h), best first, as
    MLflow keeps them (text: see search.warm.parse_param), each with `attribute_dim`, its search's attribute
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
