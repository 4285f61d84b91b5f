"""`python -m tracking.sync <ray experiment dir>`: write into MLflow whatever a search could not.

Reads Ray's own results (each trial's params.json, result.json, error.txt) and the search's
izf_search.json / izf_model.pt, and adds only what MLflow lacks: runs found by their tags, metric
steps already logged skipped, the model registered once. Running it twice changes nothing.
"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from search.results import trial_reports
from search.space import to_fit_options
from search.tuner import MODEL_FILE, SEARCH_FILE
from tracking.search_tracking import parent_params, record_final
from tracking.tracker import Tracker, default_tracking_uri

__all__ = ["sync"]


def sync(folder: Path | str, tracker: Tracker, *, promote_champion: bool = True) -> dict:
    """Bring MLflow up to date with one Ray experiment folder; return counts of what was added."""
    folder = Path(folder).resolve()
    record_path = folder / SEARCH_FILE
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    if record is None:
        raise SystemExit(f"error: {record_path} is missing; is {folder} an IZF search's Ray experiment folder?")
    if tracker.start(str(folder), parent_params(record), tags={"izf.dataset": record["dataset"]},
                     reopen=False) is None:
        raise SystemExit(f"error: MLflow at {tracker.uri} is still unreachable; nothing was written")
    added = {"trials": 0, "metric_steps": 0}
    trials = trial_reports(folder)
    for trial_dir, rows in trials:
        trial_id, config = rows[0]["trial_id"], rows[0]["config"]
        params = {**record["base"], **to_fit_options(config, feature_dim=record["feature_dim"],
                                                     attribute_dim=record["attribute_dim"])}
        known = tracker.trial_runs.get(trial_id) or tracker._find_run(**{"izf.trial_id": trial_id,
                                                                          "mlflow.parentRunId": tracker.parent_id})
        run_id = tracker.trial_run(trial_id, {**params, **{f"search.{k}": v for k, v in config.items()}},
                                   tags={"device": "unknown", "trial_name": trial_dir.name}, reopen=False)
        added["trials"] += known is None
        before = len(tracker.logged_steps.get(trial_id, ()))
        for row in rows:
            tracker.log_result(trial_id, row)  # steps the run already has are skipped
        added["metric_steps"] += len(tracker.logged_steps.get(trial_id, ())) - before
        failed = (trial_dir / "error.txt").is_file()
        outcome = "failed" if failed else "completed" if rows[-1].get("step", 0) >= record["max_steps"] else \
            "stopped_early"
        if tracker.client.get_run(run_id).info.status == "RUNNING":
            tracker.end_trial(trial_id, outcome)
    if "test" in record and (folder / MODEL_FILE).is_file():
        table = pd.DataFrame([{"trial_id": rows[-1]["trial_id"], **rows[-1],
                                **{f"config/{k}": v for k, v in rows[-1]["config"].items()}}
                               for _, rows in trials]).drop(columns=["config"], errors="ignore")
        record_final(tracker, record["dataset"], best_val=record["best_val"], test=record["test"],
                     test_spread=record["test_spread"] if record.get("final_seeds", 1) > 1 else {},
                     trials=table, model_file=(folder / MODEL_FILE).read_bytes(),
                     feature_dim=record["feature_dim"], data_checksum=record["data_checksum"],
                     promote_champion=promote_champion)
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.sync", description=__doc__)
    parser.add_argument("experiment_dir", help="e.g. ray_results/izf-sun")
    parser.add_argument("--mlflow-uri", default=None, help="default $MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    parser.add_argument("--experiment", default=None, help="MLflow experiment (default izf-<dataset>)")
    parser.add_argument("--no-promote", action="store_true")
    args = parser.parse_args(argv)
    folder = Path(args.experiment_dir)
    dataset = json.loads((folder / SEARCH_FILE).read_text())["dataset"] if (folder / SEARCH_FILE).is_file() else "?"
    tracker = Tracker(args.mlflow_uri or default_tracking_uri(), args.experiment or f"izf-{dataset.lower()}")
    added = sync(folder, tracker, promote_champion=not args.no_promote)
    print(f"added {added['trials']} trial runs and {added['metric_steps']} metric steps; "
          f"{tracker.failures} MLflow calls failed")
    return 1 if tracker.failures else 0


if __name__ == "__main__":
    sys.exit(main())
