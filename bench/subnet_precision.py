"""Validation and test H with the coupling subnets in float32 and in bfloat16, over seeds, paired.

    python bench/subnet_precision.py [--dataset synthetic] [--seeds 0 1 2]

Each seed trains the dataset preset twice, `subnet_precision` float32 and bfloat16, the same seed, on the
validation protocol and on the test protocol (one evaluation at the end), and reports softmax H and NBC H of
each: mean ± sample std over seeds, and bfloat16 minus float32 paired by seed (mean ± its standard error).
bfloat16 needs native bfloat16 matmuls (AVX-512 BF16 or AMX on a CPU, or a GPU); elsewhere izf refuses it.
The last line is one JSON object.
"""

import argparse
import json
import statistics
import time

import torch
from sun_structure import cpu_model  # the bench next door: lscpu's model name

from izf.data import load_dataset
from izf.metrics import paired_difference, spread
from izf.presets import preset
from izf.training import FitConfig, fit

PRECISIONS = ("float32", "bfloat16")
SHOWN = ("softmax_h", "nbc_h")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    print(f"# {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    rows = []
    for seed in args.seeds:
        for protocol in ("val", "test"):
            split = load_dataset(args.dataset, protocol=protocol)
            for precision in PRECISIONS:
                config = FitConfig.from_dict({**preset(args.dataset), "eval_every": 0, "seed": seed,
                                              "subnet_precision": precision, "device": "cpu"})
                started = time.perf_counter()
                metrics = fit(split, config).metrics
                row = {"seed": seed, "protocol": protocol, "precision": precision,
                       **{k: metrics[k] for k in SHOWN}, "seconds": time.perf_counter() - started}
                rows.append(row)
                print(json.dumps(row), flush=True)
    for protocol in ("val", "test"):
        for key in SHOWN:
            values = {precision: [r[key] for r in rows if r["protocol"] == protocol and r["precision"] == precision]
                      for precision in PRECISIONS}
            difference, standard_error = paired_difference(values["bfloat16"], values["float32"])
            cells = "  ".join(f"{precision} {statistics.fmean(v):.4f} ± {spread(v):.4f}"
                              for precision, v in values.items())
            print(f"{protocol:<4} {key:<9} {cells}  bfloat16 - float32 {difference:+.4f} ± {standard_error:.4f}")
    print(json.dumps({"dataset": args.dataset, "seeds": args.seeds, "rows": rows}))


if __name__ == "__main__":
    main()
