"""`python -m izf.train`: train one IZF model and print U, S, H and ZSL T1 for both classifiers."""

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, fields

from izf.data import DATASET_NAMES, load_dataset
from izf.errors import IZFError
from izf.presets import feature_scaling, preset
from izf.training import FitConfig, fit


def _table(result: dict) -> str:
    lines = [f"{'classifier':<10} {'ZSL T1':>7} {'U':>7} {'S':>7} {'H':>7}"]
    for name in ("nbc", "softmax"):
        m = result[name]
        lines.append(f"{name:<10} " + " ".join(f"{100 * m[k]:7.2f}" for k in ("zsl_t1", "u", "s", "h")))
    return "\n".join(lines)


def _progress(protocol: str) -> Callable[[dict, Callable[[], dict]], None]:
    """The line printed at each evaluation: validation H and the best so far, or the one test measurement."""
    def show(row: dict, state: Callable[[], dict]) -> None:
        if protocol == "val":
            print(f"step {row['step']:>6}  loss {row['loss']:+.4f}  val H {100 * row['h']:.2f}  "
                  f"best {100 * row['best_h']:.2f}", file=sys.stderr)
        else:
            print(f"step {row['step']:>6}  loss {row['loss']:+.4f}  test H {100 * row['h']:.2f}", file=sys.stderr)
    return show


def main(argv: list[str] | None = None) -> int:
    """Run `python -m izf.train` with `argv`; return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m izf.train", description=__doc__)
    parser.add_argument("--dataset", required=True, help=", ".join(DATASET_NAMES))
    parser.add_argument("--data-root", default=None, help="xlsa17 folder (default: $IZF_DATA or the cache)")
    parser.add_argument("--protocol", choices=("val", "test"), default="val",
                        help="val: validation classes carved out of the seen ones (for choosing "
                             "hyperparameters); test: train on trainval, measure once on the test splits")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="toy only: draw the paper's toy figure (mmd_weight 0 vs > 0) to this file")
    parser.add_argument("--save", default=None, metavar="PT", help="save the trained model to this file")
    for f in fields(FitConfig):
        if f.name in ("mmd_widths", "device", "latent_split"):
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=None)
    parser.add_argument("--latent-split", type=int, default=None, help="d_s (default: the attribute dim)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(FitConfig)
                 if getattr(args, f.name, None) is not None}
    if args.protocol == "test":
        if overrides.get("eval_every"):
            print("error: --eval-every: the test protocol measures once, after the last step; evaluate along the "
                  "way with --protocol val", file=sys.stderr)
            return 1
        overrides["eval_every"] = 0
    try:
        config = FitConfig.from_dict({**preset(args.dataset), **overrides})
        split = load_dataset(args.dataset, root=args.data_root, protocol=args.protocol,
                             features=feature_scaling(args.dataset), seed=config.seed)
        if args.plot:
            from izf.plot import plot_toy

            plot_toy(args.plot, split, config)
        result = fit(split, config, report=_progress(args.protocol))
        if args.save:
            from izf.io import save_model

            save_model(args.save, result, split)
    except IZFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = {"dataset": args.dataset, "protocol": args.protocol, "config": asdict(config)}
    for name in ("nbc", "softmax"):
        out[name] = {k: result.metrics[f"{name}_{k}"] for k in ("zsl_t1", "u", "s", "h")}
    print(f"{args.dataset} ({args.protocol} protocol)\n{_table(out)}")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
