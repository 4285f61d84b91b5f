"""TPE + ASHA against random search at an equal trial count: compute used and best validation H.

For each seed, `search/run.py --dataset synthetic` runs N trials twice: Optuna's TPE sampler with ASHA
early stopping (the platform's default) and Optuna's random sampler with every trial run to the end.
Neither starts from the dataset's base config (`--no-base-first`): with it, both searches' first trial
is the same point, and on `synthetic` that point is often the best of a random search. Both use the
same data split and trial seeds (--seed); the random search draws from another sampler stream
(--sampler-seed), or it would repeat TPE's random start-up trials.
Compute is counted in trial-steps (the steps every trial trained, stopped early or not). The
question is how much compute TPE + ASHA spends before its best-so-far validation H first reaches the
best H of the whole random search (reports replayed in the order they happened).

    python bench/sampler_efficiency.py --steps 400 --eval-every 50   # 3 seeds x 2 searches of 12 trials,
                                                                     # ~15 min on 2 cores

The last line is one JSON object.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ray.tune import ExperimentAnalysis

ROOT = Path(__file__).resolve().parents[1]
# TPE's random start-up trials draw the same points as a RandomSampler of the same seed; the random search
# gets its own stream (same data split, same trial seeds) so that it is not the TPE run's first trials.
RANDOM_STREAM = 1000


def search(folder: Path, name: str, sampler: str, scheduler: str, trials: int, seed: int, sampler_seed: int,
           steps: int, eval_every: int) -> list[dict]:
    """Run search/run.py without tracking; return every report of every trial, in the order they happened."""
    command = [sys.executable, str(ROOT / "search" / "run.py"), "--dataset", "synthetic", "--num-samples", str(trials),
               "--sampler", sampler, "--scheduler", scheduler, "--seed", str(seed), "--sampler-seed", str(sampler_seed),
               "--max-steps", str(steps),
               "--eval-every", str(eval_every), "--storage-path", str(folder), "--name", name, "--no-tracking",
               "--no-base-first", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"search/run.py failed ({out.returncode}):\n{out.stderr[-4000:]}")
    analysis = ExperimentAnalysis(json.loads(out.stdout)["folder"])
    reports = [row for table in analysis.trial_dataframes.values() for row in table.to_dict("records")]
    return sorted(reports, key=lambda r: r["timestamp"])  # Ray stamps reports to the second


def replay(reports: list[dict], eval_every: int) -> list[tuple[int, float]]:
    """(trial-steps used so far, best validation H so far) after each report."""
    used, best, curve = 0, -1.0, []
    for r in reports:
        used += eval_every
        best = max(best, r["h"])
        curve.append((used, best))
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=800, help="steps of a full trial")
    p.add_argument("--eval-every", type=int, default=100)
    args = p.parse_args()
    print(f"# {platform.node()}  {os.cpu_count()} CPUs  python {platform.python_version()}  "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"# synthetic, {args.trials} trials per search, {args.steps} steps per full trial, "
          f"a report every {args.eval_every} steps")
    rows = []
    with tempfile.TemporaryDirectory(prefix="izf-bench-") as tmp:
        for seed in args.seeds:
            random_curve = replay(search(Path(tmp), f"random{seed}", "random", "none", args.trials, seed,
                                         seed + RANDOM_STREAM, args.steps, args.eval_every), args.eval_every)
            tpe_curve = replay(search(Path(tmp), f"tpe{seed}", "tpe", "asha", args.trials, seed, seed, args.steps,
                                      args.eval_every), args.eval_every)
            target, random_compute = random_curve[-1][1], random_curve[-1][0]
            reached = next((used for used, best in tpe_curve if best >= target), None)
            row = {"seed": seed, "random_best_h": target, "random_trial_steps": random_compute,
                   "tpe_asha_best_h": tpe_curve[-1][1], "tpe_asha_trial_steps": tpe_curve[-1][0],
                   "tpe_asha_steps_to_random_best": reached,
                   "fraction_of_random_compute": None if reached is None else reached / random_compute}
            rows.append(row)
            fraction = "never" if reached is None else f"{reached} steps = {reached / random_compute:.0%}"
            print(f"seed {seed}: random best H {100 * target:.2f} with {random_compute} trial-steps | "
                  f"TPE+ASHA best H {100 * tpe_curve[-1][1]:.2f} with {tpe_curve[-1][0]} trial-steps; "
                  f"reached random's best after {fraction}", flush=True)
    fractions = [r["fraction_of_random_compute"] for r in rows]
    reached = [f for f in fractions if f is not None]
    summary = {
        "seeds": len(rows),
        "reached_random_best": f"{len(reached)}/{len(rows)}",
        "median_fraction_of_random_compute": statistics.median(reached) if reached else None,
        "total_compute_ratio": (sum(r["tpe_asha_trial_steps"] for r in rows)
                                / sum(r["random_trial_steps"] for r in rows)),
        "mean_best_h_random": statistics.fmean(r["random_best_h"] for r in rows),
        "mean_best_h_tpe_asha": statistics.fmean(r["tpe_asha_best_h"] for r in rows),
    }
    print(f"TPE+ASHA reached random search's best in {summary['reached_random_best']} seeds"
          + (f", median at {summary['median_fraction_of_random_compute']:.0%} of random's compute" if reached else "")
          + f"; its whole search used {summary['total_compute_ratio']:.0%} of random's compute")
    print(json.dumps({**summary, "per_seed": rows}))


if __name__ == "__main__":
    main()
