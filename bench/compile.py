"""Does torch.compile pay back its compile time within a trial? Eager vs compiled training steps.

Models from the same seed train on the same batches: one eager, two whose flow is wrapped in
torch.compile (the flow is where the step's time goes; the losses are a few small ops). The first
compiled model compiles into an empty inductor cache (a node's first trial); the second finds that
cache filled (every later trial of the same shapes on the node). Prints both compile times (the first
compiled steps minus as many eager steps), steps/s (eager and compiled timed in alternating rounds,
so a drifting machine hits both alike), and after how many steps compiling has paid back.

    python bench/compile.py                                   # synthetic-sun: SUN's shapes, FitConfig defaults
    python bench/compile.py --subnet-precision bfloat16 --steps 20

The last line is one JSON object.
"""

import argparse
import json
import os
import platform
import tempfile
import time

os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="izf-inductor-")  # before torch: a cold cache
import torch  # noqa: E402

from izf.data import load_dataset  # noqa: E402
from izf.device import check_precision, choose_device  # noqa: E402
from izf.errors import ConfigError  # noqa: E402
from izf.evaluate import DeviceSplit  # noqa: E402
from izf.training import FitConfig, Training  # noqa: E402


def trainer(config: FitConfig, data: DeviceSplit, device: torch.device, *, compiled: bool) -> "callable":
    training = Training(config, data, device)
    if compiled:
        training.model.flow = torch.compile(training.model.flow)

    def steps(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            terms = training.step()
        terms.tolist()  # waits for the device
        return time.perf_counter() - started

    return steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="synthetic-sun")
    p.add_argument("--subnet-precision", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--warmup", type=int, default=3, help="steps that include compiling (and eager warm-up)")
    p.add_argument("--steps", type=int, default=5, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=4, help="timed rounds, eager and compiled alternating")
    args = p.parse_args()
    device = choose_device(None)
    try:
        check_precision(args.subnet_precision, device)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    torch.set_num_threads(os.cpu_count())
    print(f"# {platform.node()}  {os.cpu_count()} CPUs  {device}  torch {torch.__version__}  "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
    split = load_dataset(args.dataset, protocol="val")
    config = FitConfig(subnet_precision=args.subnet_precision, device=str(device))
    data = DeviceSplit(split, device)
    eager = trainer(config, data, device, compiled=False)
    eager_warmup = eager(args.warmup)
    cold_warmup = trainer(config, data, device, compiled=True)(args.warmup)
    torch._dynamo.reset()  # forget the compiled code, keep inductor's cache on disk
    compiled = trainer(config, data, device, compiled=True)
    warm_warmup = compiled(args.warmup)
    eager_total = compiled_total = 0.0
    for _ in range(args.rounds):
        eager_total += eager(args.steps)
        compiled_total += compiled(args.steps)
    n = args.steps * args.rounds
    eager_s, compiled_s = eager_total / n, compiled_total / n
    compile_s, compile_warm_s = cold_warmup - eager_warmup, warm_warmup - eager_warmup
    saved_per_step = eager_s - compiled_s
    break_even = compile_s / saved_per_step if saved_per_step > 0 else float("inf")
    print(f"{args.dataset}, subnets {args.subnet_precision}: eager {1 / eager_s:.2f} steps/s, compiled "
          f"{1 / compiled_s:.2f} steps/s ({eager_s / compiled_s:.3f}x, {n} steps each)")
    print(f"  compiling cost {compile_s:.1f} s into an empty cache, {compile_warm_s:.1f} s with the cache filled")
    print(f"  pays back after {break_even:.0f} steps; a full trial is {config.steps} steps")
    print(json.dumps({"dataset": args.dataset, "device": str(device), "subnet_precision": args.subnet_precision,
                      "eager_steps_per_s": round(1 / eager_s, 3), "compiled_steps_per_s": round(1 / compiled_s, 3),
                      "speedup": round(eager_s / compiled_s, 3), "compile_s": round(compile_s, 1),
                      "compile_warm_cache_s": round(compile_warm_s, 1),
                      "break_even_steps": None if break_even == float("inf") else round(break_even),
                      "trial_steps": config.steps}))


if __name__ == "__main__":
    main()
