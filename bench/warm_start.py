"""What a warm start (--warm-start) saves: compute to reach the cold search's best validation H, warm vs cold.

One source search (--source-dataset, --source-seed) runs first. Then for each seed, on --dataset: a cold
search, and a warm one that starts from the source search's --top best points (its Optuna study, fitted into
this dataset's ranges). Both run the same settings; the seed changes the built-in data, the split, the
sampler and the trials. From each search's trial reports, in the order they were made:
- trial-steps: the training steps all trials had taken (an ASHA-stopped trial counts the steps it ran) when
  the search's best validation H first reached the cold search's final best; wall seconds likewise;
- the search's final best validation H.

    python bench/warm_start.py --dataset synthetic --seeds 1 2 3
    python bench/warm_start.py --dataset synthetic-sun-small --seeds 1 2 3 --steps 400 --eval-every 100

The last line is one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from sun_structure import cpu_model  # the bench next door: lscpu's model name

from izf.metrics import spread

ROOT = Path(__file__).resolve().parents[1]


def search(folder: Path, dataset: str, seed: int, args: argparse.Namespace, *extra: str) -> Path:
    budget = [*(["--max-steps", str(args.steps)] if args.steps else []),
              *(["--eval-every", str(args.eval_every)] if args.eval_every else [])]
    command = [sys.executable, str(ROOT / "search" / "run.py"), "--dataset", dataset, "--seed", str(seed),
               "--num-samples", str(args.trials), "--storage-path", str(folder), "--no-tracking", "--json",
               *budget, *extra]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"search/run.py failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return Path(json.loads(out.stdout)["folder"])


def timeline(folder: Path) -> list[tuple[int, float, float]]:
    """(trial-steps so far, seconds since the search's first trial began, best H so far) after each report."""
    reports = []
    for result in folder.glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        reports += [(r["timestamp"], r["trial_id"], r["step"], r["h"], r["time_total_s"]) for r in rows]
    reports.sort()
    start = min(t - total for t, _, _, _, total in reports)
    done: dict[str, int] = {}
    out, best = [], float("-inf")
    for timestamp, trial_id, step, h, _ in reports:
        done[trial_id] = step
        best = max(best, h)
        out.append((sum(done.values()), timestamp - start, best))
    return out


def reached(line: list[tuple[int, float, float]], target: float) -> tuple[int | None, float | None]:
    return next(((steps, seconds) for steps, seconds, best in line if best >= target - 1e-12), (None, None))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--source-dataset", default="synthetic")
    p.add_argument("--source-seed", type=int, default=0)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--steps", type=int, help="--max-steps of every search (default: the preset's)")
    p.add_argument("--eval-every", type=int)
    args = p.parse_args()
    print(f"# {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        source = search(Path(folder) / "source", args.source_dataset, args.source_seed, args)
        for seed in args.seeds:
            cold = timeline(search(Path(folder) / f"cold{seed}", args.dataset, seed, args))
            warm = timeline(search(Path(folder) / f"warm{seed}", args.dataset, seed, args, "--warm-start",
                                   str(source), "--warm-start-top", str(args.top)))
            target = cold[-1][2]
            (cold_steps, cold_s), (warm_steps, warm_s) = reached(cold, target), reached(warm, target)
            row = {"seed": seed, "cold_best_h": target, "warm_best_h": warm[-1][2], "cold_steps": cold_steps,
                   "warm_steps": warm_steps, "cold_seconds": cold_s, "warm_seconds": warm_s,
                   "cold_total_steps": cold[-1][0], "warm_total_steps": warm[-1][0],
                   "warm_first_report_h": warm[0][2], "cold_first_report_h": cold[0][2]}
            rows.append(row)
            warm_text = f"{warm_steps} steps, {warm_s:.0f} s" if warm_steps is not None else "not reached"
            print(f"seed {seed}: cold best val H {100 * target:.2f} reached at {cold_steps} trial-steps, "
                  f"{cold_s:.0f} s (of {cold[-1][0]} steps); warm: {warm_text} (of {warm[-1][0]}), its best "
                  f"{100 * warm[-1][2]:.2f}", flush=True)

    def ms(values: list[float]) -> str:
        return f"{statistics.fmean(values):.2f} ± {spread(values):.2f}"

    hit = [r for r in rows if r["warm_steps"] is not None]
    ratios = [r["warm_steps"] / r["cold_steps"] for r in hit]
    print(f"over {len(rows)} seeds: warm reached the cold best in {len(hit)}; trial-steps warm/cold "
          f"{ms(ratios) if ratios else '-'}; best val H cold {ms([100 * r['cold_best_h'] for r in rows])}, warm "
          f"{ms([100 * r['warm_best_h'] for r in rows])}")
    print(json.dumps({"dataset": args.dataset, "args": vars(args), "rows": rows}))


if __name__ == "__main__":
    main()
