"""`python -m tracking.promote --dataset NAME`: apply the champion rule to a registered version, by hand.

Use it after a search run with --no-promote, after `tracking.sync` (which applies the rule alone), or to
decide a challenge that a search could not run. The rule is the search's (docs/tracking.md, tracking.champion):
where the version and the champion were measured differently, --challenge-seeds N retrains both here, one
fit after another, on the data of --data-root.
"""

import argparse
import sys

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from izf.device import choose_device
from izf.errors import IZFError, first_line
from tracking.champion import Measure, promote
from tracking.model import CHAMPION, model_name
from tracking.paging import every_version
from tracking.retrain import load_same_data, local_retrainer
from tracking.tracker import default_tracking_uri, require_store

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run `python -m tracking.promote` with `argv`; return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m tracking.promote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--version", help="the version to consider (default: the newest)")
    parser.add_argument("--challenge-seeds", type=int, default=3, metavar="N",
                        help="fresh seeds of a challenge, where one is needed (default 3; 0: the rule alone)")
    parser.add_argument("--data-root", default=None, help="the xlsa17 folder a challenge trains on ($IZF_DATA or "
                                                          "the cache)")
    parser.add_argument("--mlflow-uri", default=None, help="default $MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    args = parser.parse_args(argv)
    if args.challenge_seeds < 0:
        print(f"error: --challenge-seeds must be >= 0 (0: the rule alone), got {args.challenge_seeds}",
              file=sys.stderr)
        return 1
    uri = args.mlflow_uri or default_tracking_uri()
    try:
        require_store(uri)
    except IZFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    client, name = MlflowClient(tracking_uri=uri, registry_uri=uri), model_name(args.dataset)
    try:
        versions = every_version(client, f"name = '{name}'")
        if not versions:
            print(f"error: no registered model {name!r} at {uri}; run a search first", file=sys.stderr)
            return 1
        number = args.version or max(versions, key=lambda v: int(v.version)).version
        version = client.get_model_version(name, number)
        measure = Measure.of(version)
        if measure is None:
            print(f"error: {name} version {number} has no val_h tag (it was not registered by a search), so the "
                  "champion rule cannot weigh it; give --version of a search's model", file=sys.stderr)
            return 1

        def retrain(configs: list[dict], split_seed: int) -> list[float]:
            params = client.get_run(version.tags["parent_run_id"]).data.params
            bench = load_same_data(args.dataset, args.data_root, int(params["seed"]), measure.checksum)
            print(f"challenge: {len(configs)} fits on the validation protocol, split seed {split_seed}, here",
                  flush=True)
            return local_retrainer(bench, max(1, int(float(params["cpus_per_trial"]))), choose_device())(
                configs, split_seed)

        decision = promote(client, name, number, retrain=retrain, challenge_seeds=args.challenge_seeds)
        print(decision.why)
        print(f"{name}@{CHAMPION} -> version {client.get_model_version_by_alias(name, CHAMPION).version}")
    except IZFError as e:
        print(f"error: a challenge needs the data its versions were trained on: {e}; give --data-root, or "
              "--challenge-seeds 0 for the rule alone", file=sys.stderr)
        return 1
    except MlflowException as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
