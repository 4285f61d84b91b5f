"""`python -m izf.data download|inspect`: fetch the xlsa17 data, or print a dataset's counts as JSON."""

import argparse
import json
import sys

from izf.data import DATASET_NAMES, default_root, load_benchmark
from izf.data.download import FLO_URL, XLSA17_URL, download
from izf.errors import IZFError


def main(argv: list[str] | None = None) -> int:
    """Run `python -m izf.data` with `argv`; return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m izf.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("download", help="download, extract and check xlsa17 datasets")
    get.add_argument("names", nargs="*", metavar="NAME", help="APY AWA1 AWA2 CUB SUN FLO (default: all but FLO)")
    get.add_argument("--root", default=None, help=f"target folder (default: $IZF_DATA or {default_root()})")
    get.add_argument("--url", default=XLSA17_URL, help="xlsa17.zip address (a mirror)")
    get.add_argument("--flo-url", default=FLO_URL, help="archive holding data/FLO")
    show = commands.add_parser("inspect", help="print a dataset's counts as one JSON object")
    show.add_argument("--dataset", required=True, help=", ".join(DATASET_NAMES))
    show.add_argument("--data-root", default=None, help="xlsa17 folder (default: $IZF_DATA or the cache)")
    args = parser.parse_args(argv)
    try:
        if args.command == "download":
            root = args.root or default_root()
            for summary in download(args.names, root, url=args.url, flo_url=args.flo_url):
                print(json.dumps(summary))
        else:
            print(json.dumps(load_benchmark(args.dataset, root=args.data_root).summary()))
    except IZFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
