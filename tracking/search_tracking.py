"""Connect a search to MLflow: the parent run at start, trial runs through a callback, the model at the end."""

import json
import tempfile
from pathlib import Path

import pandas as pd

from search.tuner import SearchResult, SearchStart
from tracking.callback import MLflowCallback
from tracking.model import log_model, model_name, promote, register
from tracking.plots import plot_trials
from tracking.tracker import Tracker, git_commit

__all__ = ["start_hook", "record_result", "record_final", "parent_params", "comparison_table", "FINAL_KEY_TAG"]

FINAL_KEY_TAG = "izf.final_key"  # on the parent run and its model version: which final result they hold


def parent_params(description: dict) -> dict:
    """A search's description (SearchStart.describe) as parent-run params, with the code that ran it."""
    import inspect

    from search import space

    params = {k: v for k, v in description.items() if k not in ("base", "feature_dim", "attribute_dim")}
    return {**params, "base_config": json.dumps(description["base"], default=str), "git_commit": git_commit(),
            "space": inspect.getsource(space.space)}


def start_hook(tracker: Tracker) -> "callable":
    """`run(on_start=...)`: open the search's parent run (or reopen it on --resume), return the trial callback."""
    def on_start(start: SearchStart) -> list:
        o = start.options
        tracker.start(o.search_id, o.experiment_path, parent_params(start.describe()),
                      tags={"izf.dataset": o.dataset, "izf.name": o.experiment_name})
        return [MLflowCallback(tracker, start.params_of, start.base["steps"], interrupted=lambda: start.interrupted)]

    return on_start


def record_result(tracker: Tracker, result: SearchResult, *, promote_champion: bool) -> dict:
    """Final metrics, comparison artifacts, the chosen model, its registry version and the champion alias."""
    return record_final(tracker, result.dataset, final_key=result.final_key, best_val=result.best_val,
                        test=result.test, test_spread=result.test_spread if result.final_seeds > 1 else {},
                        trials=result.trials, model_file=result.model_file, feature_dim=result.feature_dim,
                        data_checksum=result.data_checksum, promote_champion=promote_champion)


def record_final(tracker: Tracker, dataset: str, *, final_key: str, best_val: dict, test: dict, test_spread: dict,
                 trials: pd.DataFrame, model_file: bytes, feature_dim: int, data_checksum: str,
                 promote_champion: bool) -> dict:
    """What `record_result` logs, from plain values, keyed by `final_key` (what the result is: the chosen
    trial and config): a parent run or model version that holds this key is not logged again, one that
    holds another key (a stale result) is replaced. Returns the parent run id, the version and whether
    this call registered it (`registered`), and whether it is the champion afterwards (None: not promoted).
    """
    out: dict = {"parent_run_id": tracker.parent_id, "version": None, "model_uri": None, "registered": False,
                 "champion": None}
    if tracker.parent_id is None:
        return out
    client, parent, failures = tracker.client, tracker.parent_id, tracker.failures
    run = tracker.safe("read parent", client.get_run, parent)
    if run is None:
        return out
    up_to_date = run.data.tags.get(FINAL_KEY_TAG) == final_key
    if not up_to_date:
        with tempfile.TemporaryDirectory() as folder:
            table = Path(folder) / "trials.csv"
            trials.to_csv(table, index=False)
            for path in [table, *plot_trials(trials, Path(folder))]:
                tracker.safe("artifacts", client.log_artifact, parent, str(path), "comparison")
    name = model_name(dataset)
    versions = tracker.safe("read registry", client.search_model_versions, f"name = '{name}'")
    if versions is None:
        return out
    mine = [v for v in versions if v.tags.get("parent_run_id") == parent and v.tags.get(FINAL_KEY_TAG) == final_key]
    if mine:
        out["version"], out["model_uri"] = mine[0].version, mine[0].source
    else:
        uri = out["model_uri"] = tracker.safe("log_model", log_model, client, parent, model_file, feature_dim)
        if uri is not None:
            tags = {"val_h": best_val["best_h"], "test_u": test["softmax_u"], "test_s": test["softmax_s"],
                    "test_h": test["softmax_h"], "protocol": "val->test", "data_checksum": data_checksum,
                    "parent_run_id": parent, FINAL_KEY_TAG: final_key}
            out["version"] = tracker.safe("register", register, client, name, uri, tags)
            out["registered"] = out["version"] is not None
    out["model_name"] = name
    if out["version"] is not None and promote_champion:
        out["champion"] = tracker.safe("promote", promote, client, name, out["version"])
    if not up_to_date:
        metrics = {f"val_{k}": v for k, v in best_val.items()}
        metrics.update({f"test_{k}": v for k, v in test.items()})
        metrics.update({f"test_{k}_std": v for k, v in test_spread.items()})
        tracker.log_metrics(metrics)
        if tracker.failures == failures:  # all of it reached MLflow: the parent now holds this result
            tracker.safe("final key", client.set_tag, parent, FINAL_KEY_TAG, final_key)
    tracker.end("finished")
    return out


def comparison_table(tracker: Tracker) -> pd.DataFrame:
    """The parent runs of the experiment with their final metrics (what `tracking.report` prints)."""
    runs = tracker.client.search_runs([tracker.experiment_id()], filter_string="tags.`izf.experiment_path` != ''")
    return pd.DataFrame([{"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
                          **{k: v for k, v in r.data.metrics.items() if k.startswith(("val_", "test_"))}}
                         for r in runs])
