"""IZF training steps per second on SUN shapes, against the GEMM ceiling and a FrEIA-built flow.

    pip install FrEIA==0.2        # benchmark-only dependency (the library the IZF author's code used)
    python bench/train_step.py [--depth 5 --hidden 1024 --batch 256 --steps 20 --threads 2]

Both flows run the same IZF loss (flow NLL + centralizing + negative MMD) on the same SUN-shaped
synthetic batches, one after the other in the same process. The ceiling is torch's FLOP/s on the
step's own GEMM shapes; FLOPs per step come from torch's FlopCounterMode. Last line: one JSON object.
"""

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from izf.data import load_dataset
from izf.device import check_precision
from izf.errors import ConfigError
from izf.evaluate import DeviceSplit
from izf.model import IZF
from izf.training import FitConfig, Training, build_model


class FrEIAFlow(torch.nn.Module):
    """FrEIA's SequenceINN of [PermuteRandom -> GLOWCouplingBlock] with our Flow's interface."""

    def __init__(self, features: int, depth: int, hidden: int, clamp: float) -> None:
        super().__init__()
        import FrEIA.framework as ff
        import FrEIA.modules as fm

        def subnet(c_in: int, c_out: int) -> torch.nn.Module:
            net = torch.nn.Sequential(torch.nn.Linear(c_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, c_out))
            torch.nn.init.zeros_(net[-1].weight)
            torch.nn.init.zeros_(net[-1].bias)
            return net

        self.features = features
        self.inn = ff.SequenceINN(features)
        for k in range(depth):
            self.inn.append(fm.PermuteRandom, seed=k)
            self.inn.append(fm.GLOWCouplingBlock, subnet_constructor=subnet, clamp=clamp)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inn(x)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.inn(z, rev=True)[0]


def time_steps(model: IZF, data: DeviceSplit, config: FitConfig, steps: int, warmup: int) -> tuple[float, float]:
    """(steps per second, FLOPs per step)."""
    training = Training(config, data, torch.device("cpu"))  # its batches, stream and losses, for `model`
    training.model, training.optimizer = model, torch.optim.Adam(model.parameters(), lr=config.lr)
    step = training.step

    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - started), float(counter.get_total_flops())


def gemm_ceiling(batch: int, features: int, hidden: int, repeats: int = 20) -> float:
    """FLOP/s of the step's GEMM shapes: subnet layers (B x D/2 -> H -> D) and the MMD Gram (B x D x B)."""
    shapes = [(batch, features // 2, hidden), (batch, hidden, features), (batch, features, batch)]
    operands = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    for a, b in operands:
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        for a, b in operands:
            a @ b
    seconds = time.perf_counter() - started
    return repeats * sum(2 * m * k * n for m, k, n in shapes) / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--clamp", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--subnet-precision", default="float32", choices=["float32", "bfloat16"],
                   help="ours only; FrEIA runs float32 as the author's code did")
    args = p.parse_args()
    try:
        check_precision(args.subnet_precision, torch.device("cpu"))
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    torch.set_num_threads(args.threads)
    from importlib.metadata import version

    freia_version = version("FrEIA")
    split = load_dataset("synthetic-sun")
    data = DeviceSplit(split, torch.device("cpu"))
    config = FitConfig(depth=args.depth, hidden=args.hidden, batch_size=args.batch, clamp=args.clamp, device="cpu",
                       subnet_precision=args.subnet_precision)
    ours = build_model(config, data.attributes, split.feature_dim)
    freia = IZF(FrEIAFlow(split.feature_dim, args.depth, args.hidden, args.clamp), ours.class_codes.clone())
    ceiling = gemm_ceiling(args.batch, split.feature_dim, args.hidden)
    ours_rate, flops = time_steps(ours, data, config, args.steps, args.warmup)
    freia_rate, freia_flops = time_steps(freia, data, config, args.steps, args.warmup)
    print(f"machine: {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"shapes: D={split.feature_dim} A={split.attribute_dim} K={args.depth} w={args.hidden} B={args.batch}"
          f"  ours: subnets in {args.subnet_precision}")
    print(f"GEMM ceiling           {ceiling / 1e9:8.1f} GFLOP/s")
    print(f"ours   {ours_rate:6.2f} steps/s  {flops / 1e9:6.1f} GFLOP/step  {ours_rate * flops / 1e9:8.1f} GFLOP/s")
    print(f"FrEIA  {freia_rate:6.2f} steps/s  {freia_flops / 1e9:6.1f} GFLOP/step  "
          f"{freia_rate * freia_flops / 1e9:8.1f} GFLOP/s  (FrEIA {freia_version})")
    print(json.dumps({"steps_per_s": ours_rate, "vs_gemm": ours_rate * flops / ceiling,
                      "vs_freia": ours_rate / freia_rate, "freia_version": freia_version}))


if __name__ == "__main__":
    main()
