"""What one of the tests' small trials costs in CPU, by batch size and classifier epochs: why the tests hold
batch_size at 128 and train an evaluation's classifiers for 5 epochs (tests/conftest.py, TINY_FIX and TINY_SET).

The tests' model (depth 2, 32 hidden units, 50 generated features per unseen class) on the built-in synthetic
data, in this process at 1 thread (a test trial's share of the cores), each run with seeds 0, 1, 2:

    python bench/test_trial_cost.py
    python bench/test_trial_cost.py --steps 300 --eval-every 100

It measures the tests' trials on this machine, not IZF at a benchmark's shapes. The last line is one JSON object.
"""

import argparse
import json
import platform
import statistics
import time

import torch

from izf.data import load_dataset
from izf.training import FitConfig, fit


def cost(data: object, config: FitConfig) -> tuple[float, float]:
    """CPU-seconds of one fit, and its last validation H."""
    reports: list[dict] = []
    start = time.process_time()
    fit(data, config, report=lambda row, state: reports.append(row))
    return time.process_time() - start, reports[-1]["h"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--eval-every", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("synthetic", protocol="val")
    small = {"depth": 2, "hidden": 32, "synthetic_per_class": 50}  # the tests' model (tests/conftest.py, TINY_FIX)
    fit(data, FitConfig(**small, steps=5, eval_every=0))  # first-call costs
    rows = []
    for batch_size in (128, 256, 512):
        for epochs in (20, 5):
            runs = [cost(data, FitConfig(**small, steps=args.steps, eval_every=args.eval_every, batch_size=batch_size,
                                         classifier_epochs=epochs, seed=seed)) for seed in range(3)]
            seconds, h = [r[0] for r in runs], [r[1] for r in runs]
            row = {"batch_size": batch_size, "classifier_epochs": epochs,
                   "cpu_s_mean": round(statistics.fmean(seconds), 2), "cpu_s_std": round(statistics.stdev(seconds), 2),
                   "val_h_mean": round(statistics.fmean(h), 3), "val_h_std": round(statistics.stdev(h), 3)}
            rows.append(row)
            print(f"batch {batch_size:3d}, classifier epochs {epochs:2d}: {row['cpu_s_mean']:.2f} ± "
                  f"{row['cpu_s_std']:.2f} CPU-s, val H {row['val_h_mean']:.3f} ± {row['val_h_std']:.3f}", flush=True)
    print(json.dumps({"steps": args.steps, "eval_every": args.eval_every, "machine": platform.machine(),
                      "torch": torch.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
