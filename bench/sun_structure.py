"""Centralizing centres, prototypes per step and MMD widths on a benchmark with SUN's class structure.

    python bench/sun_structure.py [--steps 1200] [--seeds 0 1 2] [--variants author training k64 median]
                                  [--temperature 0.2] [--temperatures 1 0.5 0.2 0.05]
    python bench/sun_structure.py --cost [--cost-steps 10]      # seconds per step at SUN's own 2048-d

Every variant trains FitConfig's defaults (the SUN settings: depth 5, width 1024, batch 256, lr 5e-4)
on `synthetic-sun-small` (717 classes, 645 seen / 72 unseen, ~20 images per class, 102 attributes,
256-d features), validation protocol (580 training classes, ~13 images each; 65 validation classes),
with the same data split for every seed. It reports validation H of both classifiers (the best over
the evaluations, as a search trial does, and at the last step) and training seconds per step (steps
only; evaluations are timed apart). Seeds are the fit's own seed. --temperatures evaluates each trained
model again at those generation temperatures (the model is the same; only the features the softmax is
trained on change). --cost times training steps of each variant on the 2048-d `synthetic-sun` instead
(no evaluation, no H): the cost side at SUN's real feature width. The last line is one JSON object.
"""

import argparse
import json
import platform
import statistics
import subprocess
import time

import torch

from izf.data import Split, load_dataset
from izf.evaluate import DeviceSplit, evaluate
from izf.losses import median_sq_distance
from izf.metrics import spread
from izf.training import FitConfig, Training, evaluation_generator, fit

VARIANTS = {
    "author": {},  # batch centres, one prototype per class in the batch, fixed widths: the author's code
    "training": {"centres": "training"},
    "k64": {"centres": "training", "prototypes_per_step": 64},
    "median": {"mmd_scale": "median"},
}
DATASET = "synthetic-sun-small"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, env={"LC_ALL": "C"}).stdout
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "")


def run(split: Split, variant: str, seed: int, steps: int, eval_every: int, temperature: float,
        temperatures: list[float]) -> dict:
    config = FitConfig(**VARIANTS[variant], steps=steps, eval_every=eval_every, seed=seed, temperature=temperature,
                       device="cpu")
    started = time.perf_counter()
    result = fit(split, config)
    last = result.history[-1]
    row = {"variant": variant, "seed": seed, "softmax_h_best": result.best["softmax_h"],
           "best_step": result.best["step"], "softmax_h_last": last["softmax_h"], "nbc_h_last": last["nbc_h"],
           "nbc_h_best": max(r["nbc_h"] for r in result.history),
           "s_per_step": last["train_seconds"] / steps, "eval_s": last["eval_seconds"],
           "wall_s": time.perf_counter() - started}
    data = DeviceSplit(split, torch.device("cpu"))
    for tau in temperatures:
        metrics, _ = evaluate(result.model, data, temperature=tau, synthetic_per_class=config.synthetic_per_class,
                              calibration=config.calibration, classifier_lr=config.classifier_lr,
                              classifier_epochs=config.classifier_epochs,
                              generator=evaluation_generator(seed, steps, torch.device("cpu")))
        row[f"softmax_h_at_{tau:g}"] = metrics["softmax_h"]
    return row


def cost(variants: list[str], steps: int, warmup: int = 2) -> dict:
    """Seconds per training step of each variant on synthetic-sun (2048-d), alternating variants per round."""
    data = DeviceSplit(load_dataset("synthetic-sun", protocol="val"), torch.device("cpu"))
    trainings = {v: Training(FitConfig(**VARIANTS[v], device="cpu"), data, torch.device("cpu")) for v in variants}
    for training in trainings.values():
        for _ in range(warmup):
            training.step()
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(steps):  # round-robin: a slow spell of the machine hits every variant alike
        for variant, training in trainings.items():
            started = time.perf_counter()
            training.step().tolist()
            seconds[variant].append(time.perf_counter() - started)
    return seconds


def mean_spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {spread(values):.4f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--temperature", type=float, default=FitConfig.temperature, help="generation temperature")
    p.add_argument("--temperatures", type=float, nargs="*", default=[], help="evaluate again at these")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cost", action="store_true", help="only seconds per step, on the 2048-d synthetic-sun")
    p.add_argument("--cost-steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.cost:
        print(f"# {cpu_model()}, {args.threads} threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}")
        seconds = cost(args.variants, args.cost_steps)
        for variant, values in seconds.items():
            print(f"synthetic-sun (2048-d) {variant:<9} {mean_spread(values)} s/step ({len(values)} steps)")
        print(json.dumps({"dataset": "synthetic-sun", "s_per_step": seconds}))
        return
    split = load_dataset(DATASET, protocol="val")
    scale = median_sq_distance(DeviceSplit(split, torch.device("cpu")).train_x,
                               generator=torch.Generator().manual_seed(0))
    print(f"# {cpu_model()}, {args.threads} threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# {DATASET} val: {split.n_seen} training classes, {split.train_x.shape[0]} images "
          f"({split.train_x.shape[0] / split.n_seen:.1f} per class), {split.n_classes - split.n_seen} validation "
          f"classes, {split.feature_dim}-d; median pairwise squared distance of the training features {scale:.1f}")
    rows = []
    for seed in args.seeds:  # seeds outermost: a slow drift of the machine spreads over every variant
        for variant in args.variants:
            rows.append(run(split, variant, seed, args.steps, args.eval_every, args.temperature, args.temperatures))
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    print(f"\n{'variant':<9} {'softmax H best':>17} {'softmax H last':>17} {'NBC H best':>17} {'NBC H last':>17} "
          f"{'s/step':>16}")
    for variant in args.variants:
        mine = [r for r in rows if r["variant"] == variant]
        summary[variant] = {k: [r[k] for r in mine] for k in ("softmax_h_best", "softmax_h_last", "nbc_h_best",
                                                                 "nbc_h_last", "s_per_step")}
        print(f"{variant:<9} " + " ".join(f"{mean_spread(v):>17}" for v in summary[variant].values()))
        for tau in args.temperatures:
            key = f"softmax_h_at_{tau:g}"
            summary[variant][key] = [r[key] for r in mine]
            print(f"{'':<9} softmax H evaluated at temperature {tau:g}: {mean_spread(summary[variant][key])}")
    print(json.dumps({"dataset": DATASET, "steps": args.steps, "temperature": args.temperature, "seeds": args.seeds,
                      "median_sq_distance": scale, "summary": summary}))


if __name__ == "__main__":
    main()
