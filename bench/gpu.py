"""GPU measurements for bench/gpu.sh: one SUN-shaped trial, and trials packed onto one GPU with Ray Tune.

    python bench/gpu.py trial [--steps N] [--tf32] # one trial in this process: seconds, peak GPU memory, val H
                                                   # (--tf32: float32 matmuls in TF32 on the tensor cores)
    python bench/gpu.py pack --per-gpu K [--steps N] [--trials T]
                                                   # T trials (default K) through Ray Tune, K at once on the
                                                   # one GPU (--gpus-per-trial 1/K): aggregate trials/hour

Each prints one JSON line. Data: the built-in `synthetic-sun` (SUN's shapes: 2048-d features,
717 classes, 102 attributes), protocol val; the trial is FitConfig's defaults (K=5, w=1024,
batch 256) with `--steps` steps and one evaluation at the end.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from izf import FitConfig, fit, load_dataset  # noqa: E402


def trial_config(steps: int, subnet_precision: str) -> dict:
    config = dataclasses.asdict(FitConfig(steps=steps, eval_every=0, subnet_precision=subnet_precision))
    config.pop("device")
    return config


def one_trial(args: argparse.Namespace) -> dict:
    split = load_dataset(args.dataset, protocol="val")
    torch.backends.cuda.matmul.fp32_precision = "tf32" if args.tf32 else "ieee"
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = fit(split, FitConfig.from_dict(trial_config(args.steps, args.subnet_precision)))
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    train_seconds = result.history[-1]["train_seconds"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"stage": "trial", "dataset": args.dataset, "device": device, "subnet_precision": args.subnet_precision,
            "matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
            "steps": args.steps, "seconds": round(seconds, 1), "train_seconds": round(train_seconds, 1),
            "steps_per_s": round(args.steps / train_seconds, 1),
            "peak_gpu_mb": None if peak is None else round(peak), "val_h": round(result.metrics["h"], 4)}


def packed(args: argparse.Namespace) -> dict:
    import ray
    from ray import tune

    from search.running.trainable import train_izf

    trials = args.trials or args.per_gpu
    gpus = 1.0 if torch.cuda.is_available() else 0.0
    cpus = max(1, (os.cpu_count() or 2) // args.per_gpu)
    ray.init(address="local", num_gpus=int(gpus), include_dashboard=False, log_to_driver=False)
    split = load_dataset(args.dataset, protocol="val")
    base = {**trial_config(args.steps, args.subnet_precision), "threads": cpus}
    trainable = tune.with_resources(tune.with_parameters(train_izf, split=split, base=base),
                                    {"cpu": cpus, "gpu": gpus / args.per_gpu})
    with tempfile.TemporaryDirectory(prefix="izf-gpu-") as folder:
        tuner = tune.Tuner(trainable, param_space={},
                           tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=args.per_gpu),
                           run_config=tune.RunConfig(storage_path=folder, name="pack", verbose=0))
        started = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - started
    ray.shutdown()
    finished = sum(1 for r in grid if r.error is None)
    return {"stage": "pack", "dataset": args.dataset, "per_gpu": args.per_gpu,
            "gpus_per_trial": round(gpus / args.per_gpu, 4), "cpus_per_trial": cpus, "steps": args.steps,
            "trials": trials, "finished": finished,
            "wall_s": round(wall, 1), "trials_per_hour": round(3600 * finished / wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="stage", required=True)
    t = sub.add_parser("trial")
    t.add_argument("--steps", type=int, default=FitConfig.steps)
    t.add_argument("--tf32", action="store_true", help="float32 matmuls in TF32 (H is reported: compare it)")
    k = sub.add_parser("pack")
    k.add_argument("--per-gpu", type=int, required=True)
    k.add_argument("--steps", type=int, default=2000)
    k.add_argument("--trials", type=int, default=0)
    for stage in (t, k):
        stage.add_argument("--dataset", default="synthetic-sun", help="a smaller one (synthetic) to try the plumbing")
        stage.add_argument("--subnet-precision", default="float32", choices=["float32", "bfloat16"])
    args = p.parse_args()
    print(json.dumps(one_trial(args) if args.stage == "trial" else packed(args)), flush=True)


if __name__ == "__main__":
    main()
