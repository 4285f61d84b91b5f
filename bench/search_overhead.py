"""What the platform adds on top of the trials: search/run.py's trials phase against the trials' own time.

1. Overhead: `search/run.py` (tracking on: a local MLflow sqlite store) runs N trials of
   --trial-steps steps each on `synthetic`, no early stopping. The parameters that set a trial's
   cost (depth, width, batch, synthetic samples, MMD and centralizing on) are held (`--fix`), so the trials
   are equally long and the ratio does not count slots left idle by unequal trials (the rest of the
   space is sampled; --vary-cost samples those too). The trials phase's wall time
   (Tuner.fit, `search_seconds` in izf_search.json) is compared with the trials' own time (Ray's
   time_total_s, measured inside each trial process: fit, reports, checkpoints) summed and divided by
   the concurrency. The ratio is what actor start-up, scheduling, Optuna and MLflow logging cost.
2. Memory: the same with 1 and then 2 concurrent trials on `synthetic-sun` (SUN's shapes), sampling
   the total proportional set size (PSS) of every process on the machine. A trial that copied the
   split would add the split's size per trial; the trials also report whether their split lies in
   shared memory (`dataset_shared`, from /proc/self/maps).

    python bench/search_overhead.py                     # ~21 minutes on 2 CPU cores
    python bench/search_overhead.py --trials 8 --trial-steps 1600

The last line is one JSON object.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ray.tune import ExperimentAnalysis

ROOT = Path(__file__).resolve().parents[1]


def total_pss_mb() -> float:
    """Sum of the proportional set size of every readable process (shared pages counted once overall)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total / 1024


class PeakMemory:
    """Samples total_pss_mb() every `interval` seconds in a thread; `peak` is the largest sample."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, total_pss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# The synthetic preset's depth 4, width 128 (= the 128-d features), batch 256, 100 synthetic samples per class;
# the MMD and centralizing terms on (each off skips a pass through the flow).
EQUAL_COST = [arg for fixed in ("depth=4", "hidden_scale=1.0", "batch_size=256", "synthetic_per_class=100",
                                "use_mmd=true", "use_centralizing=true") for arg in ("--fix", fixed)]


def search(folder: Path, name: str, dataset: str, trials: int, concurrent: int, steps: int,
           eval_every: int, extra: list[str] = ()) -> tuple[dict, list[dict], float]:
    """Run search/run.py; return its izf_search.json, each trial's last result row, and the peak PSS (MB)."""
    command = [sys.executable, str(ROOT / "search" / "run.py"), "--dataset", dataset, "--num-samples", str(trials),
               "--max-concurrent", str(concurrent), "--scheduler", "none", "--max-steps", str(steps),
               "--eval-every", str(eval_every), "--storage-path", str(folder / "ray"), "--name", name,
               "--mlflow-uri", f"sqlite:///{folder / 'mlflow.db'}", "--no-promote", "--json", *extra]
    with PeakMemory() as memory:
        out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"search/run.py failed ({out.returncode}):\n{out.stderr[-4000:]}")
    experiment = Path(json.loads(out.stdout)["folder"])
    record = json.loads((experiment / "izf_search.json").read_text())["final"]
    return record, [t.last_result for t in ExperimentAnalysis(str(experiment)).trials], memory.peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--concurrent", type=int, default=2)
    p.add_argument("--trial-steps", type=int, default=1000, help="steps per trial on synthetic (~30 s here)")
    p.add_argument("--memory-trials", type=int, default=2)
    p.add_argument("--memory-steps", type=int, default=20, help="steps per trial on synthetic-sun")
    p.add_argument("--skip-memory", action="store_true", help="only the overhead part (~5 minutes)")
    p.add_argument("--vary-cost", action="store_true", help="sample depth, width, batch too (unequal trials)")
    args = p.parse_args()
    print(f"# {platform.node()}  {os.cpu_count()} CPUs  python {platform.python_version()}  "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}")

    with tempfile.TemporaryDirectory(prefix="izf-bench-") as tmp:
        folder = Path(tmp)
        record, rows, _ = search(folder, "overhead", "synthetic", args.trials, args.concurrent, args.trial_steps,
                                 eval_every=args.trial_steps // 4, extra=[] if args.vary_cost else EQUAL_COST)
        trial_seconds = [r["time_total_s"] for r in rows]
        ideal = sum(trial_seconds) / args.concurrent
        ratio = record["search_seconds"] / ideal
        print(f"overhead: {len(rows)} trials, {args.concurrent} at once, trial times "
              f"{', '.join(f'{t:.1f}' for t in trial_seconds)} s")
        print(f"  trials phase {record['search_seconds']:.1f} s  vs  sum of trial times / concurrency {ideal:.1f} s"
              f"  ->  {ratio:.3f}x")
        steps, evals = (sum(r[k] for r in rows) / len(rows) for k in ("train_seconds", "eval_seconds"))
        inside = sum(trial_seconds) / len(rows) - steps - evals
        outside = (record["search_seconds"] * args.concurrent - sum(trial_seconds)) / len(rows)
        print(f"  where a trial's seconds go (mean): training steps {steps:.1f}, evaluations {evals:.1f}, "
              f"the rest inside the trial (setup, checkpoints, reports) {inside:.1f}, outside any trial "
              f"(actor start, scheduling, Optuna, MLflow, idle slots) {outside:.1f}")

        baseline = total_pss_mb()
        peaks, shared, dataset_mb = {}, [], 0.0
        for concurrent in () if args.skip_memory else (1, 2):
            _, rows, peak = search(folder, f"memory{concurrent}", "synthetic-sun", args.memory_trials, concurrent,
                                   args.memory_steps, eval_every=args.memory_steps)
            peaks[concurrent] = peak - baseline
            shared += [r["dataset_shared"] for r in rows]
            dataset_mb = rows[0]["dataset_mb"]
            print(f"memory: synthetic-sun, {concurrent} trial(s) at once: peak PSS above the idle machine "
                  f"{peaks[concurrent]:.0f} MB")
        if peaks:
            print(f"  split size {dataset_mb:.0f} MB; 2 at once - 1 at once = {peaks[2] - peaks[1]:.0f} MB; "
                  f"split in shared memory in {sum(shared):.0f}/{len(shared)} trials")

    summary = {"overhead_ratio": round(ratio, 3), "search_seconds": round(record["search_seconds"], 1),
               "trial_seconds_over_concurrency": round(ideal, 1), "trials": len(trial_seconds),
               "concurrent": args.concurrent, "mean_seconds": {"steps": round(steps, 2), "evaluations": round(evals, 2),
                                                               "rest_inside": round(inside, 2),
                                                               "outside": round(outside, 2)}}
    if peaks:
        summary.update(peak_pss_mb_1=round(peaks[1]), peak_pss_mb_2=round(peaks[2]), dataset_mb=round(dataset_mb),
                       dataset_shared_fraction=sum(shared) / len(shared))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
