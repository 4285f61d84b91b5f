"""`python -m tracking.promote --dataset NAME`: move `champion` to the best registered version, by hand.

Use it after a search run with --no-promote. The rule is the automatic one: the alias moves only to
a version whose validation H beats the current champion's on the same data checksum.
"""

import argparse
import sys

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tracking.model import CHAMPION, model_name, promote
from tracking.tracker import default_tracking_uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.promote", description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--version", help="the version to consider (default: the newest)")
    parser.add_argument("--mlflow-uri", default=None, help="default $MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    args = parser.parse_args(argv)
    uri = args.mlflow_uri or default_tracking_uri()
    client, name = MlflowClient(tracking_uri=uri, registry_uri=uri), model_name(args.dataset)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            print(f"error: no registered model {name!r} at {uri}; run a search first", file=sys.stderr)
            return 1
        version = args.version or max(versions, key=lambda v: int(v.version)).version
        if "val_h" not in client.get_model_version(name, version).tags:
            print(f"error: {name} version {version} has no val_h tag (it was not registered by a search), so the "
                  "champion rule cannot weigh it; give --version of a search's model", file=sys.stderr)
            return 1
        promote(client, name, version)
        print(f"{name}@{CHAMPION} -> version {client.get_model_version_by_alias(name, CHAMPION).version}")
    except MlflowException as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
