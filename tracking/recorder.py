"""A search in MLflow, from its record's events: a parent run, a run per trial, the chosen model.

`MLflowRecorder` has one method per event of a search's record (search_started, trial_started,
trial_reported, trial_ended, search_ended), each taking the event's plain JSON arguments. A search
calls them as it goes; `python -m tracking.sync` calls the same methods with the same arguments read
back from the search's events file, so a synced search and a live one leave the same MLflow state.
This package knows a search only through these arguments: it imports nothing from `search/`.
"""

import json
import tempfile
from pathlib import Path

import pandas as pd

from tracking.campaign import CAMPAIGN_TAG
from tracking.model import log_model, model_name, promote, register
from tracking.plots import plot_trials
from tracking.tracker import ROLE_TAG, Tracker, git_commit

__all__ = ["MLflowRecorder", "record_final", "parent_params", "trials_table", "read_bytes", "FINAL_KEY_TAG", "EVENTS"]

# The events of a search's record that the recorder takes, one method each (the search's side: search.events).
EVENTS = ("search_started", "trial_started", "trial_reported", "trial_ended", "search_ended")
FINAL_KEY_TAG = "izf.final_key"  # on the parent run and its model version: which final result they hold


def parent_params(description: dict) -> dict:
    """A search's description (the record's) as parent-run params, with the commit of the code that records it."""
    # The study's storage URL may hold a database password: only its name is a param.
    params = {k: v for k, v in description.items() if k not in ("base", "feature_dim", "attribute_dim", "study")}
    return {**params, "base_config": json.dumps(description["base"], default=str), "git_commit": git_commit(),
            "study_name": (description.get("study") or {}).get("name")}


def trials_table(trials: dict) -> pd.DataFrame:
    """One row per trial of the record: its id, outcome, last report and sampled values (config/* columns)."""
    rows = [{"trial_id": trial_id, "outcome": t.get("outcome"), **t.get("last", {}),
             **{f"config/{k}": v for k, v in t.get("sampled", {}).items()}} for trial_id, t in trials.items()]
    return pd.DataFrame(rows)


def load_study(study: dict | None) -> "optuna.Study | None":  # noqa: F821
    """The search's own Optuna study (for its plots), or None where it cannot be opened (moved, deleted)."""
    if not study:
        return None
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study["name"], storage=study["storage"])
    except Exception:  # noqa: BLE001 - a missing file, a database error: the plots fall back to the trials table
        return None
    finally:
        optuna.logging.set_verbosity(verbosity)


def read_bytes(uri: str) -> bytes | None:
    """A file of a search's folder, local or remote (s3://...)."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri if "://" in uri else str(Path(uri).resolve()))
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


class MLflowRecorder:
    """The listener of a search's events that writes them into MLflow through a Tracker.

    Arguments:
        tracker: where to record (its failures are counted, never raised).
        promote_champion: move the registry's `champion` alias by its rule when the search finishes.

    After `search_ended` of a finished search, `recorded` holds the parent run id, the model version,
    whether this recorder registered it, and whether it is the champion.
    """

    def __init__(self, tracker: Tracker, *, promote_champion: bool = True) -> None:
        self.tracker, self.promote_champion = tracker, promote_champion
        self.recorded: dict = {"parent_run_id": None, "version": None, "registered": False, "champion": None}

    def search_started(self, search: dict) -> None:
        description, campaign = search["description"], search.get("notes", {}).get("campaign")
        tags = {"izf.dataset": description["dataset"], "izf.name": search["name"]}
        if campaign:  # one of a campaign's searches (tracking.campaign)
            tags[CAMPAIGN_TAG] = campaign["campaign_id"]
        self.tracker.start(search["search_id"], search["folder"], parent_params(description), tags=tags)
        self.recorded["parent_run_id"] = self.tracker.parent_id

    def trial_started(self, trial: dict) -> None:
        params = {**trial["params"], **{f"search.{k}": v for k, v in trial["sampled"].items()}}
        tags = {"device": trial["device"], "trial_name": trial["name"]}
        if trial.get("role") == "reevaluation":  # a top trial's config retrained with a new seed
            tags.update({ROLE_TAG: "reevaluation", "reevaluation": trial["reevaluation_of"]})
        self.tracker.trial_run(trial["trial_id"], params, tags=tags)

    def trial_reported(self, trial_id: str, report: dict) -> None:
        self.tracker.log_result(trial_id, report)

    def trial_ended(self, trial_id: str, outcome: str) -> None:
        self.tracker.end_trial(trial_id, outcome)

    def search_ended(self, search: dict) -> None:
        if search["status"] != "finished":
            self.tracker.end(search["status"], search.get("error") or "")
            return
        final, description = search["final"], search["description"]
        model_file = read_bytes(f"{search['folder'].rstrip('/')}/{final['model_file']}") or b""
        self.recorded = record_final(
            self.tracker, description["dataset"], final_key=final["final_key"], best_val=final["best_val"],
            test=final["test"], test_spread=final["test_spread"] if description["final_seeds"] > 1 else {},
            trials=trials_table(search.get("trials", {})), model_file=model_file,
            feature_dim=description["feature_dim"], data_checksum=description["data_checksum"],
            promote_champion=self.promote_champion, study=load_study(description.get("study")))


def record_final(tracker: Tracker, dataset: str, *, final_key: str, best_val: dict, test: dict, test_spread: dict,
                 trials: pd.DataFrame, model_file: bytes, feature_dim: int, data_checksum: str,
                 promote_champion: bool, study: "optuna.Study | None" = None) -> dict:  # noqa: F821
    """A finished search's final metrics, comparison artifacts, model version and champion alias, keyed by
    `final_key` (what the result is: the chosen trial, config and seeds): a parent run or model version that
    holds this key is not logged again, one that holds another key (a stale result) is replaced. Returns the
    parent run id, the version, whether this call registered it (`registered`), and whether it is the champion
    afterwards (None: not promoted). Ends the parent run FINISHED. `study`: the search's Optuna study, which
    the importance and parallel-coordinates plots are drawn from.
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
            for path in [table, *plot_trials(trials, Path(folder), study=study)]:
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
            if "mean_h" in best_val:  # chosen by mean validation H over new seeds (--reevaluate-top)
                tags.update({"val_h_mean": best_val["mean_h"], "val_h_std": best_val["std_h"],
                             "val_h_seeds": best_val["n_seeds"]})
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
