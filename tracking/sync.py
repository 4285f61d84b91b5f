"""`python -m tracking.sync <search folder>`: write into MLflow whatever a search could not.

Reads Ray's own results (each trial's params.json, result.json, error.txt) and the search's record
(izf_search.json) and model (izf_model.pt), and adds only what MLflow lacks: runs found by their tags,
metric steps already logged skipped, the model registered once. Running it twice changes nothing.
The folder is one search's, `<storage>/<name>/<search id>`; given `<storage>/<name>`, every search of
that name is synced.
"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from search.results import trial_reports
from search.space import fit_fields
from tracking.search_tracking import parent_params, record_final
from tracking.tracker import Tracker, default_tracking_uri

__all__ = ["sync", "search_folders"]

RECORD = "izf_search.json"
MODEL = "izf_model.pt"


def search_folders(folder: Path | str) -> list[Path]:
    """The search folder itself, or the search folders of a name folder (oldest first)."""
    folder = Path(folder).resolve()
    if (folder / RECORD).is_file():
        return [folder]
    found = sorted(p.parent for p in folder.glob(f"*/{RECORD}"))
    if not found:
        raise SystemExit(f"error: {folder} holds no search (no {RECORD}); give a search's folder, "
                         "<storage>/<name>/<search id>, as printed when it started")
    return found


def sync(folder: Path | str, tracker: Tracker, *, promote_champion: bool = True) -> dict:
    """Bring MLflow up to date with one search folder; return counts of what was added."""
    folder = Path(folder).resolve()
    record = json.loads((folder / RECORD).read_text())
    status, description = record.get("status", "running"), record["description"]
    if tracker.start(record["search_id"], str(folder), parent_params(description),
                     tags={"izf.dataset": description["dataset"], "izf.name": record["name"]}, reopen=False) is None:
        raise SystemExit(f"error: MLflow at {tracker.uri} is still unreachable; nothing was written")
    added = {"trials": 0, "metric_steps": 0}
    trials = trial_reports(folder)
    for trial_dir, rows in trials:
        trial_id, config = rows[0]["trial_id"], rows[0]["config"]
        params = {**description["base"], **fit_fields(config)}
        known = tracker.trial_runs.get(trial_id) or tracker.find_run(**{"izf.trial_id": trial_id,
                                                                         "mlflow.parentRunId": tracker.parent_id})
        run_id = tracker.trial_run(trial_id, {**params, **{f"search.{k}": v for k, v in config.items()}},
                                   tags={"device": "unknown", "trial_name": trial_dir.name}, reopen=False)
        added["trials"] += known is None
        before = len(tracker.logged_steps.get(trial_id, ()))
        for row in rows:
            tracker.log_result(trial_id, row)  # steps the run already has are skipped
        added["metric_steps"] += len(tracker.logged_steps.get(trial_id, ())) - before
        reached_end = rows[-1].get("step", 0) >= description["max_steps"]
        outcome = "failed" if (trial_dir / "error.txt").is_file() else "completed" if reached_end else \
            "stopped_early" if status == "finished" else "interrupted"
        if status != "running" and tracker.client.get_run(run_id).info.status == "RUNNING":
            tracker.end_trial(trial_id, outcome)
    final = record.get("final")
    if status == "finished" and final and (folder / MODEL).is_file():
        table = pd.DataFrame([{"trial_id": rows[-1]["trial_id"], **rows[-1],
                               **{f"config/{k}": v for k, v in rows[-1]["config"].items()}}
                              for _, rows in trials]).drop(columns=["config"], errors="ignore")
        record_final(tracker, description["dataset"], final_key=final["final_key"], best_val=final["best_val"],
                     test=final["test"], test_spread=final["test_spread"] if description["final_seeds"] > 1 else {},
                     trials=table, model_file=(folder / MODEL).read_bytes(), feature_dim=description["feature_dim"],
                     data_checksum=description["data_checksum"], promote_champion=promote_champion)
    elif status in ("interrupted", "failed"):
        tracker.end(status, record.get("error") or "")
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.sync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a search's folder, e.g. ray_results/izf-sun/20261129-101502-7f3e")
    parser.add_argument("--mlflow-uri", default=None, help="default: the one the search recorded to, else "
                                                           "$MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    parser.add_argument("--experiment", default=None, help="MLflow experiment (default: the search's)")
    parser.add_argument("--no-promote", action="store_true")
    args = parser.parse_args(argv)
    code = 0
    for folder in search_folders(args.folder):
        record = json.loads((folder / RECORD).read_text())
        recorded = record.get("notes", {}).get("tracking", {})
        tracker = Tracker(args.mlflow_uri or recorded.get("mlflow_uri") or default_tracking_uri(),
                          args.experiment or recorded.get("experiment")
                          or f"izf-{record['description']['dataset'].lower()}")
        added = sync(folder, tracker, promote_champion=not args.no_promote)
        note = "; the search is still running, or its driver was killed: `--resume` finishes it" \
            if record.get("status", "running") == "running" else ""
        print(f"{folder.name}: added {added['trials']} trial runs and {added['metric_steps']} metric steps; "
              f"{tracker.failures} MLflow calls failed{note}")
        code = code or (1 if tracker.failures else 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
