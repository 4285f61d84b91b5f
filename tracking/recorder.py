"""A search in MLflow, from its record's events: a parent run, a run per trial, the chosen model.

`MLflowRecorder` has one method per event of a search's record (search_started, trial_started,
trial_reported, trial_ended, search_ended), each taking the event's plain JSON arguments. A search
calls them as it goes; `python -m tracking.sync` calls the same methods with the same arguments read
back from the search's events file, so a synced search and a live one leave the same MLflow state.
This package knows a search only through the record contract (record/): it imports nothing from `search/`.
"""

import json
import tempfile
from pathlib import Path

import pandas as pd

from record.storage import read_bytes
from record.study import open_study
from tracking.campaign import CAMPAIGN_TAG
from tracking.champion import Retrain, promote
from tracking.model import log_model, model_name, register
from tracking.paging import every_version
from tracking.plots import plot_trials
from tracking.tracker import ROLE_TAG, Tracker

__all__ = ["MLflowRecorder", "record_final", "version_tags", "final_metrics", "parent_params", "trials_table",
           "print_recorded", "FINAL_KEY_TAG"]

FINAL_KEY_TAG = "izf.final_key"  # on the parent run and its model version: which final result they hold


def parent_params(description: dict) -> dict:
    """A search's description (the record's) as parent-run params; its git commit and dirty flag are the code's
    when the search started ("unknown" for a search that did not record them)."""
    # The study's storage URL may hold a database password: only its name is a param.
    params = {k: v for k, v in description.items() if k not in ("base", "study")}
    return {"git_commit": "unknown", **params, "base_config": json.dumps(description["base"], default=str),
            "study_name": (description.get("study") or {}).get("name")}


def trials_table(trials: dict) -> pd.DataFrame:
    """One row per trial of the record: its id, outcome, last report and sampled values (config/* columns)."""
    rows = [{"trial_id": trial_id, "outcome": t.get("outcome"), **t.get("last", {}),
             **{f"config/{k}": v for k, v in t.get("sampled", {}).items()}} for trial_id, t in trials.items()]
    return pd.DataFrame(rows)


class MLflowRecorder:
    """The listener of a search's events that writes them into MLflow through a Tracker.

    Arguments:
        tracker: where to record (its failures are counted, never raised).
        promote_champion: move the registry's `champion` alias by its rule when the search finishes.
        retrain, challenge_seeds: how a champion challenge retrains (tracking.champion), and with how many
            seeds (0 or no `retrain`: the rule alone).

    After `search_ended` of a finished search, `recorded` holds the parent run id, the model version,
    whether this recorder registered it, whether it is the champion, and why.
    """

    def __init__(self, tracker: Tracker, *, promote_champion: bool = True, retrain: Retrain | None = None,
                 challenge_seeds: int = 0) -> None:
        self.tracker, self.promote_champion = tracker, promote_champion
        self.retrain, self.challenge_seeds = retrain, challenge_seeds
        self.recorded: dict = {"parent_run_id": None, "version": None, "registered": False, "champion": None,
                               "decision": None}

    def search_started(self, search: dict) -> None:
        """The parent run, created or found again (a resume): params, tags, description."""
        description, campaign = search["description"], search.get("notes", {}).get("campaign")
        tags = {"izf.dataset": description["dataset"], "izf.name": search["name"]}
        if campaign:  # one of a campaign's searches (tracking.campaign)
            tags[CAMPAIGN_TAG] = campaign["campaign_id"]
        if "data_checksum" in description:  # the dataset input's digest
            self.tracker.use_dataset(description["dataset"], description["data_checksum"],
                                     description.get("data_source", description["dataset"]))
        self.tracker.start(search["search_id"], search["folder"], parent_params(description), tags=tags)
        self.recorded["parent_run_id"] = self.tracker.parent_id

    def trial_started(self, trial: dict) -> None:
        """A trial's run under the parent, with its params."""
        params = {**trial["params"], **{f"search.{k}": v for k, v in trial["sampled"].items()}}
        tags = {"device": trial["device"], "trial_name": trial["name"]}
        if trial.get("role") == "reevaluation":  # a top trial's config retrained with a new seed
            tags.update({ROLE_TAG: "reevaluation", "reevaluation": trial["reevaluation_of"]})
        self.tracker.trial_run(trial["trial_id"], params, tags=tags)

    def trial_reported(self, trial_id: str, report: dict) -> None:
        """One report's metrics at its step (a step already logged is skipped)."""
        self.tracker.log_result(trial_id, report)

    def trial_ended(self, trial_id: str, outcome: str) -> None:
        """The trial's run ended with its outcome."""
        self.tracker.end_trial(trial_id, outcome)

    def search_ended(self, search: dict) -> None:
        """The parent run ended; a finished search's model logged, registered and, by the rule, promoted."""
        if search["status"] != "finished":
            self.tracker.end(search["status"], search.get("error") or "")
            return
        model_file = read_bytes(f"{search['folder'].rstrip('/')}/{search['final']['model_file']}") or b""
        self.recorded = record_final(self.tracker, search, model_file)
        if self.recorded["version"] is None:
            return
        if not self.promote_champion:
            self.recorded["decision"] = "the champion alias was left where it is (--no-promote)"
            return
        # A challenge may take minutes: `recorded` already says what was registered if it is interrupted.
        decision = self.tracker.safe("promote", promote, self.tracker.client, self.recorded["model_name"],
                                     self.recorded["version"], retrain=self.retrain,
                                     challenge_seeds=self.challenge_seeds)
        if decision is not None:
            self.recorded.update(champion=decision.champion == self.recorded["version"], decision=decision.why)


def record_final(tracker: Tracker, search: dict, model_file: bytes) -> dict:
    """A finished search's final metrics, comparison artifacts and model version, from its record (`search`:
    izf_search.json's contents) and its model file, keyed by its `final_key` (what the result is: the chosen
    trial, config and seeds): a parent run or model version that holds this key is not logged again, one that
    holds another key (a stale result) is replaced. Ends the parent run FINISHED.

    Returns the parent run id, the model name and version, and whether this call registered it (`registered`);
    `champion` and `decision` are None (the champion rule is applied after, by the recorder).
    """
    out: dict = {"parent_run_id": tracker.parent_id, "version": None, "model_uri": None, "registered": False,
                 "champion": None, "decision": None}
    if tracker.parent_id is None:
        return out
    final, description = search["final"], search["description"]
    final_key, dataset = final["final_key"], description["dataset"]
    client, parent, failures = tracker.client, tracker.parent_id, tracker.failures
    run = tracker.safe("read parent", client.get_run, parent)
    if run is None:
        return out
    up_to_date = run.data.tags.get(FINAL_KEY_TAG) == final_key
    if not up_to_date:
        with tempfile.TemporaryDirectory() as folder:
            trials = trials_table(search.get("trials", {}))
            table = Path(folder) / "trials.csv"
            trials.to_csv(table, index=False)
            for path in [table, *plot_trials(trials, Path(folder), study=open_study(description.get("study")))]:
                tracker.safe("artifacts", client.log_artifact, parent, str(path), "comparison")
    name = model_name(dataset)
    versions = tracker.safe("read registry", every_version, client, f"name = '{name}'")
    if versions is None:
        return out
    mine = [v for v in versions if v.tags.get("parent_run_id") == parent and v.tags.get(FINAL_KEY_TAG) == final_key]
    if mine:
        out["version"], out["model_uri"] = str(mine[0].version), mine[0].source
    else:
        uri = out["model_uri"] = tracker.safe("log_model", log_model, client, parent, model_file,
                                              description["feature_dim"])
        if uri is not None:
            out["version"] = tracker.safe("register", register, client, name, uri, version_tags(search, parent))
            out["registered"] = out["version"] is not None
    out["model_name"] = name
    if not up_to_date:
        tracker.log_metrics(final_metrics(final, description["final_seeds"]))
        if tracker.failures == failures:  # all of it reached MLflow: the parent now holds this result
            tracker.safe("final key", client.set_tag, parent, FINAL_KEY_TAG, final_key)
    tracker.end("finished")
    return out


def version_tags(search: dict, parent: str) -> dict:
    """A search's model version's tags: how its validation H was measured (the champion rule's input), its test
    U/S/H, and where it comes from (the data, the validation split, the code when the final model was trained)."""
    final, description = search["final"], search["description"]
    best_val, test = final["best_val"], final["test"]
    tags = {"val_h": best_val["best_h"], "test_u": test["softmax_u"], "test_s": test["softmax_s"],
            "test_h": test["softmax_h"], "protocol": "val->test", "data_checksum": description["data_checksum"],
            "split_seed": description["seed"], "parent_run_id": parent, FINAL_KEY_TAG: final["final_key"]}
    if "git_commit" in final:  # recorded with the final model (a search before that left it out)
        tags.update({"git_commit": final["git_commit"], "git_dirty": final["git_dirty"]})
    if "mean_h" in best_val:  # chosen by mean validation H over new seeds (--reevaluate-top)
        tags.update({"val_h_mean": best_val["mean_h"], "val_h_std": best_val["std_h"],
                     "val_h_seeds": best_val["n_seeds"]})
    return tags


def final_metrics(final: dict, final_seeds: int) -> dict[str, float]:
    """The parent run's final metrics: the chosen trial's validation metrics (`val_*`), the test metrics' mean
    over the final seeds (`test_*`), and with several seeds their spread (`test_*_std`) and each seed's own
    (`test_seed<i>_*`)."""
    metrics = {f"val_{k}": v for k, v in final["best_val"].items()}
    metrics.update({f"test_{k}": v for k, v in final["test"].items()})
    if final_seeds > 1:
        metrics.update({f"test_{k}_std": v for k, v in final["test_spread"].items()})
        for i, seed in enumerate(final.get("test_seeds", [])):
            metrics.update({f"test_seed{i}_{k}": v for k, v in seed.items()})
    return metrics


def print_recorded(tracker: Tracker, recorded: dict) -> None:
    """What a search left in MLflow (its parent run, the model version, the champion decision), for the console."""
    print(f"\nMLflow ({tracker.uri}): experiment {tracker.experiment!r}, parent run {recorded.get('parent_run_id')}")
    if recorded.get("version") is not None:
        how = "registered" if recorded["registered"] else "registered earlier by this search"
        print(f"  model {recorded['model_name']} version {recorded['version']} {how}")
        print(f"  {recorded.get('decision') or 'the champion alias was not considered: MLflow failed (below)'}")
    else:
        print("  no model version registered")
    if tracker.failures:
        print(f"  {tracker.failures} MLflow calls failed; once MLflow is back: python -m tracking.sync "
              f"{tracker.sync_target}")
