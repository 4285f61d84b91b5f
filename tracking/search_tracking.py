"""Connect a search to MLflow: the parent run at start, trial runs through a callback, the model at the end."""

import json
import tempfile
from pathlib import Path

import pandas as pd

from search.options import SearchOptions
from search.tuner import SearchResult, SearchStart
from tracking.callback import MLflowCallback
from tracking.model import log_model, model_name, promote, register
from tracking.plots import plot_trials
from tracking.tracker import Tracker, git_commit

__all__ = ["start_hook", "record_result", "parent_params", "comparison_table"]


def parent_params(description: dict) -> dict:
    """A search's description (SearchStart.describe) as parent-run params, with the code that ran it."""
    import inspect

    from search import space

    params = {k: v for k, v in description.items() if k not in ("base", "feature_dim", "attribute_dim")}
    return {**params, "base_config": json.dumps(description["base"], default=str), "git_commit": git_commit(),
            "space": inspect.getsource(space.space)}


def start_hook(tracker: Tracker, options: SearchOptions) -> "callable":
    """`run(on_start=...)`: open the parent run (or reopen it on --resume), return the trial callback."""
    def on_start(start: SearchStart) -> list:
        tracker.start(options.experiment_path, parent_params(start.describe()), tags={"izf.dataset": options.dataset})
        return [MLflowCallback(tracker, start.params_of, start.base["steps"])]

    return on_start


def record_result(tracker: Tracker, options: SearchOptions, result: SearchResult, *, promote_champion: bool) -> dict:
    """Final metrics, comparison artifacts, the chosen model, its registry version and the champion alias."""
    return record_final(tracker, options.dataset, best_val=result.best_val, test=result.test,
                        test_spread=result.test_spread if options.final_seeds > 1 else {}, trials=result.trials,
                        model_file=result.model_file, feature_dim=result.feature_dim,
                        data_checksum=result.data_checksum, promote_champion=promote_champion)


def record_final(tracker: Tracker, dataset: str, *, best_val: dict, test: dict, test_spread: dict,
                 trials: pd.DataFrame, model_file: bytes, feature_dim: int, data_checksum: str,
                 promote_champion: bool) -> dict:
    """What `record_result` logs, from plain values; parts already in MLflow are not logged again."""
    out: dict = {"parent_run_id": tracker.parent_id}
    if tracker.parent_id is None:
        return out
    client, parent = tracker.client, tracker.parent_id
    logged = tracker._safe("read parent", lambda: client.get_run(parent).data.metrics)
    if logged is not None and "test_softmax_h" not in logged:
        with tempfile.TemporaryDirectory() as folder:
            table = Path(folder) / "trials.csv"
            trials.to_csv(table, index=False)
            for path in [table, *plot_trials(trials, Path(folder))]:
                tracker._safe("artifacts", client.log_artifact, parent, str(path), "comparison")
    name = model_name(dataset)
    versions = tracker._safe("read registry", client.search_model_versions, f"name = '{name}'") or []
    mine = [v for v in versions if v.tags.get("parent_run_id") == parent]
    version, uri = (mine[0].version, mine[0].source) if mine else (None, None)
    if version is None:
        uri = tracker._safe("log_model", log_model, client, parent, model_file, feature_dim)
        if uri is not None:
            tags = {"val_h": best_val["best_h"], "test_u": test["softmax_u"], "test_s": test["softmax_s"],
                    "test_h": test["softmax_h"], "protocol": "val->test", "data_checksum": data_checksum,
                    "parent_run_id": parent}
            version = tracker._safe("register", register, client, name, uri, tags)
    out.update(model_uri=uri, model_name=name, version=version)
    if version is not None and promote_champion:
        out["champion"] = tracker._safe("promote", promote, client, name, version)
    metrics = {f"val_{k}": v for k, v in best_val.items()}
    metrics.update({f"test_{k}": v for k, v in test.items()})
    metrics.update({f"test_{k}_std": v for k, v in test_spread.items()})
    if logged is not None and "test_softmax_h" not in logged:
        tracker.finish(metrics)
    return out


def comparison_table(tracker: Tracker) -> pd.DataFrame:
    """The parent runs of the experiment with their final metrics (what `tracking.report` prints)."""
    runs = tracker.client.search_runs([tracker._experiment_id()], filter_string="tags.`izf.experiment_path` != ''")
    return pd.DataFrame([{"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
                          **{k: v for k, v in r.data.metrics.items() if k.startswith(("val_", "test_"))}}
                         for r in runs])
