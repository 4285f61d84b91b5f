"""What one trial checkpoint costs at a dataset's shapes, beside the training it protects.

A search trial checkpoints with its reports (search/running/trainable.py): fit copies its state (model,
Adam moments, generator, batch order), torch.save writes it to a temporary folder, and Tune copies
that folder into the experiment's storage. This times each part on the FitConfig a trial would use,
and the training steps between two reports (eval_every) on the same machine.

    python bench/checkpoint_cost.py                          # synthetic-sun: SUN's shapes, FitConfig defaults
    python bench/checkpoint_cost.py --dataset synthetic --hidden 128 --depth 4

The last line is one JSON object.
"""

import argparse
import copy
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from izf.data import load_dataset
from izf.device import choose_device
from izf.evaluate import DeviceSplit
from izf.training import FitConfig, Training


def seconds(fn: "callable", repeat: int) -> float:
    """Median wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="synthetic-sun")
    p.add_argument("--depth", type=int, default=FitConfig.depth)
    p.add_argument("--hidden", type=int, default=FitConfig.hidden)
    p.add_argument("--eval-every", type=int, default=FitConfig.eval_every)
    p.add_argument("--steps", type=int, default=5, help="training steps timed for the steps/s estimate")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    device = choose_device(None)
    torch.set_num_threads(os.cpu_count())
    print(f"# {platform.node()}  {os.cpu_count()} CPUs  {device}  torch {torch.__version__}  "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}")

    split = load_dataset(args.dataset, protocol="val")
    config = FitConfig(depth=args.depth, hidden=args.hidden, device=str(device))
    data = DeviceSplit(split, device)
    training = Training(config, data, device)
    model, optimizer = training.model, training.optimizer
    training.step()  # Adam's moments exist from here on

    def step() -> None:
        training.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step_s = seconds(step, args.steps)
    state = {}

    def snapshot() -> None:
        state["s"] = copy.deepcopy({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                    "generator": training.generator.get_state(),
                                    "order": training.batches.order})

    with tempfile.TemporaryDirectory(prefix="izf-ckpt-bench-") as tmp:
        folder, storage = Path(tmp) / "trial", Path(tmp) / "storage"
        folder.mkdir()
        copy_s = seconds(snapshot, args.repeat)
        save_s = seconds(lambda: torch.save(state["s"], folder / "state.pt"), args.repeat)
        mb = (folder / "state.pt").stat().st_size / 2**20

        def persist() -> None:
            shutil.rmtree(storage, ignore_errors=True)
            shutil.copytree(folder, storage)

        persist_s = seconds(persist, args.repeat)
        load_s = seconds(lambda: torch.load(storage / "state.pt", map_location=device, weights_only=True),
                         args.repeat)
    checkpoint_s = copy_s + save_s + persist_s
    between = step_s * args.eval_every
    print(f"{args.dataset}: depth {config.depth}, width {config.hidden}, batch {config.batch_size}: "
          f"one checkpoint {mb:.0f} MB")
    print(f"  copy state {copy_s:.3f} s + torch.save {save_s:.3f} s + copy into storage {persist_s:.3f} s "
          f"= {checkpoint_s:.3f} s; loading it back {load_s:.3f} s")
    print(f"  a training step {step_s * 1000:.1f} ms; {args.eval_every} steps between reports {between:.1f} s; "
          f"a checkpoint with every report adds {100 * checkpoint_s / between:.1f} %")
    print(json.dumps({"dataset": args.dataset, "device": str(device), "checkpoint_mb": round(mb, 1),
                      "checkpoint_s": round(checkpoint_s, 3), "copy_s": round(copy_s, 3), "save_s": round(save_s, 3),
                      "persist_s": round(persist_s, 3), "load_s": round(load_s, 3), "step_s": round(step_s, 4),
                      "steps_between_reports_s": round(between, 2),
                      "share_per_report": round(checkpoint_s / between, 4)}))


if __name__ == "__main__":
    main()
