"""`python -m tracking.report --experiment NAME`: print the searches of an MLflow experiment side by side."""

import argparse
import sys

import pandas as pd

from tracking.tracker import Tracker, default_tracking_uri


def comparison_table(tracker: Tracker) -> pd.DataFrame:
    """The parent runs of the experiment with their final metrics."""
    runs = tracker.client.search_runs([tracker.experiment_id()], filter_string="tags.`izf.role` = 'search'")
    return pd.DataFrame([{"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
                          **{k: v for k, v in r.data.metrics.items() if k.startswith(("val_", "test_"))}}
                         for r in runs])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.report", description=__doc__)
    parser.add_argument("--experiment", required=True, help="e.g. izf-sun")
    parser.add_argument("--mlflow-uri", default=None, help="default $MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    args = parser.parse_args(argv)
    tracker = Tracker(args.mlflow_uri or default_tracking_uri(), args.experiment)
    if tracker.client.get_experiment_by_name(args.experiment) is None:
        print(f"error: no experiment {args.experiment!r} at {tracker.uri}", file=sys.stderr)
        return 1
    table = comparison_table(tracker)
    with pd.option_context("display.width", 200, "display.max_columns", 40, "display.precision", 4):
        print(table.to_string(index=False) if not table.empty else "no searches recorded yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
