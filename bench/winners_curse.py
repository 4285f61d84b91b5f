"""The winner's curse of a search, and what the noise-aware choice (--reevaluate-top K) buys at what cost.

For each search seed, `search/run.py --dataset DATASET --reevaluate-top K --reevaluate-seeds N` runs once.
From its record:
- the single-seed choice (the trial with the best validation H) and how far its own H sits above the mean
  H of its config over N new seeds (the bias of picking the maximum of noisy values);
- the noise-aware choice (best mean over N new seeds of the top K) and its test H, which the search measured;
- the single-seed choice's test H: its config retrained here on the test protocol exactly as the search's
  final fit would have (same steps, seeds, threads), unless both choices are the same trial;
- the compute: the search's trials phase, and the re-evaluation's wall time and fits.

    python bench/winners_curse.py --dataset synthetic --seeds 0 1 2 3 4 --top 3 --reevaluate-seeds 3

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

from izf.data import load_benchmark
from izf.metrics import paired_difference, spread
from tracking.retrain import retrain_on_test

ROOT = Path(__file__).resolve().parents[1]


def run_search(folder: Path, dataset: str, seed: int, args: argparse.Namespace) -> tuple[dict, dict, float]:
    command = [sys.executable, str(ROOT / "search" / "run.py"), "--dataset", dataset, "--seed", str(seed),
               "--num-samples", str(args.trials), "--reevaluate-top", str(args.top), "--reevaluate-seeds",
               str(args.reevaluate_seeds), "--final-seeds", str(args.final_seeds), "--storage-path", str(folder),
               "--no-tracking", "--json", *(["--max-steps", str(args.steps)] if args.steps else [])]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"search/run.py failed ({out.returncode}):\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout)
    record = json.loads((Path(result["folder"]) / "izf_search.json").read_text())
    return result, record, wall


def single_choice_test_h(dataset: str, seed: int, record: dict, trial_id: str, final_seeds: int) -> float:
    """The test H the search would have reported had it chosen `trial_id` (its config, at its best step)."""
    step = next(r["step"] for r in record["reevaluations"].values() if r["of"] == trial_id)
    config = {**record["trials"][trial_id]["params"], "steps": step, "eval_every": 0}
    threads = max(1, int(record["description"]["cpus_per_trial"]))
    bench = load_benchmark(dataset, seed=seed)
    test, *_ = retrain_on_test(bench, seed, config, final_seeds, threads, torch.device("cpu"))
    return test["softmax_h"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--reevaluate-seeds", type=int, default=3)
    p.add_argument("--final-seeds", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="--max-steps of the search (default: the preset)")
    args = p.parse_args()
    print(f"# {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            result, record, wall = run_search(Path(folder) / f"s{seed}", args.dataset, seed, args)
            again, single = result["reevaluation"], result["single_seed_choice"]
            own = again[single]["own_h"]
            chosen = result["chosen_trial"]
            noise_aware_test = result["test"]["softmax_h"]
            single_test = noise_aware_test if chosen == single else \
                single_choice_test_h(args.dataset, seed, record, single, args.final_seeds)
            row = {"seed": seed, "single_choice": single, "single_own_val_h": own,
                   "single_mean_val_h": again[single]["mean_h"], "curse": own - again[single]["mean_h"],
                   "noise_aware_choice": chosen, "same_choice": chosen == single,
                   "single_test_h": single_test, "noise_aware_test_h": noise_aware_test,
                   "search_seconds": record["final"]["search_seconds"],
                   "reevaluation_seconds": record["final"]["reevaluation_seconds"], "driver_wall_seconds": wall,
                   "reevaluation_fits": args.top * args.reevaluate_seeds}
            rows.append(row)
            print(f"seed {seed}: single-seed choice {single} val H {100 * own:.2f}, its mean over "
                  f"{args.reevaluate_seeds} new seeds {100 * again[single]['mean_h']:.2f} (curse "
                  f"{100 * row['curse']:+.2f}); noise-aware choice {chosen}{' (same)' if row['same_choice'] else ''}; "
                  f"test H single {100 * single_test:.2f} vs noise-aware {100 * noise_aware_test:.2f}; "
                  f"trials {row['search_seconds']:.0f} s, re-evaluation {row['reevaluation_seconds']:.0f} s, "
                  f"whole driver {wall:.0f} s", flush=True)

    def ms(key: str) -> str:
        values = [100 * r[key] for r in rows]
        return f"{statistics.fmean(values):.2f} ± {spread(values):.2f}"

    gain, standard_error = paired_difference([100 * r["noise_aware_test_h"] for r in rows],
                                             [100 * r["single_test_h"] for r in rows])
    print(f"over {len(rows)} seeds (mean ± sample std): curse (own val H - mean over new seeds) {ms('curse')}; test H "
          f"single-seed choice {ms('single_test_h')}, noise-aware {ms('noise_aware_test_h')}; paired, noise-aware "
          f"minus single {gain:+.2f} ± {standard_error:.2f} (standard error); choices differ in "
          f"{sum(not r['same_choice'] for r in rows)} of {len(rows)}")
    print(json.dumps({"dataset": args.dataset, "args": vars(args), "rows": rows}))


if __name__ == "__main__":
    main()
