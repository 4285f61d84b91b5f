"""Compare what MLflow holds.

    python -m tracking.report --experiment izf-sun      # the searches of one experiment side by side
    python -m tracking.report --leaderboard             # every dataset's champion beside the published numbers
    python -m tracking.report --leaderboard --datasets awa2,cub,sun --out docs/leaderboard --ui-url http://head:5000

--leaderboard writes <out>.md and <out>.html (default ./leaderboard.*) and prints the Markdown.
"""


from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from izf.errors import IZFError
from tracking.leaderboard import champions, leaderboard_rows, published, to_html, to_markdown
from tracking.paging import every_run
from tracking.tracker import Tracker, default_tracking_uri, require_store

if TYPE_CHECKING:
    from mlflow import MlflowClient



def comparison_table(tracker: Tracker) -> pd.DataFrame:
    """The parent runs of the experiment with their final metrics."""
    runs = every_run(tracker.client, [tracker.experiment_id()], "tags.`izf.role` = 'search'")
    return pd.DataFrame([{"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
                          **{k: v for k, v in r.data.metrics.items() if k.startswith(("val_", "test_"))}}
                         for r in runs])


def write_leaderboard(client: MlflowClient, out: Path, datasets: list[str] | None = None,
                      ui_url: str | None = None) -> tuple[str, list[Path]]:
    """The leaderboard of the champions found (see tracking.leaderboard) as Markdown, written to out.md and
    out.html: (the Markdown, the files); ("", []) and nothing written when there is no champion."""
    numbers = published()
    rows = leaderboard_rows(champions(client, datasets), numbers, ui_url)
    if not rows:
        return "", []
    markdown = to_markdown(rows, numbers)
    files = [out.with_name(out.name + ".md"), out.with_name(out.name + ".html")]
    out.parent.mkdir(parents=True, exist_ok=True)
    files[0].write_text(markdown)
    files[1].write_text(to_html(rows, numbers))
    return markdown, files


def main(argv: list[str] | None = None) -> int:
    """Run `python -m tracking.report` with `argv`; return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m tracking.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--experiment", help="print the searches of this experiment, e.g. izf-sun")
    what.add_argument("--leaderboard", action="store_true", help="every dataset's champion (registry alias "
                                                                 "'champion') beside the published IZF numbers")
    parser.add_argument("--datasets", help="--leaderboard: these datasets, in this order (default: every dataset "
                                           "with a champion)")
    parser.add_argument("--out", default="leaderboard", help="--leaderboard: write OUT.md and OUT.html (a folder: "
                                                             "OUT/leaderboard.md and .html)")
    parser.add_argument("--ui-url", help="--leaderboard: the MLflow UI's address, to link each run")
    parser.add_argument("--mlflow-uri", default=None, help="default $MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    args = parser.parse_args(argv)
    uri = args.mlflow_uri or default_tracking_uri()
    require_store(uri)
    if args.leaderboard:
        datasets = [d.strip().lower() for d in args.datasets.split(",")] if args.datasets else None
        out = Path(args.out)
        if args.out.endswith("/") or out.is_dir():  # a folder: its leaderboard.md and .html
            out = out / "leaderboard"
        markdown, files = write_leaderboard(Tracker(uri, "").client, out, datasets, args.ui_url)
        if not files:
            print(f"error: no champion in the registry at {uri}{' for ' + args.datasets if datasets else ''}; "
                  "run a search first (python search/run.py)", file=sys.stderr)
            return 1
        print(markdown)
        print(f"written: {', '.join(str(f) for f in files)}", file=sys.stderr)
        return 0
    tracker = Tracker(uri, args.experiment)
    if tracker.client.get_experiment_by_name(args.experiment) is None:
        print(f"error: no experiment {args.experiment!r} at {tracker.uri}", file=sys.stderr)
        return 1
    table = comparison_table(tracker)
    with pd.option_context("display.width", 200, "display.max_columns", 40, "display.precision", 4):
        print(table.to_string(index=False) if not table.empty else "no searches recorded yet")
    return 0


def _main(argv: list[str] | None = None) -> int:
    try:
        return main(argv)
    except IZFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main())
