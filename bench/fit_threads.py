"""Wall and CPU seconds of one small fit at 1..N torch threads: what a fit costs the other processes of a machine.

    python bench/fit_threads.py [--dataset toy --steps 700]

A fit's extra threads on a small model spin between its short parallel regions: they buy little wall time and
cost a whole core, which a second process (the other pytest-xdist worker, another search) then lacks. Each thread
count runs in a fresh process, one after the other. Last line: one JSON object.
"""

import argparse
import json
import os
import subprocess
import sys

ONE_FIT = """
import json, time, torch
torch.set_num_threads({threads})
from izf.data import load_dataset
from izf.presets import preset
from izf.training import FitConfig, fit
split = load_dataset({dataset!r}, protocol="test")
config = FitConfig.from_dict({{**preset({dataset!r}), "eval_every": 0, "steps": {steps}}})
wall, cpu = time.perf_counter(), time.process_time()
fit(split, config)
print(json.dumps({{"threads": {threads}, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="toy")
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--max-threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    for threads in range(1, args.max_threads + 1):
        code = ONE_FIT.format(threads=threads, dataset=args.dataset, steps=args.steps)
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{threads} thread(s): wall {row['wall_s']:.1f} s, CPU {row['cpu_s']:.1f} s")
    print(json.dumps({"dataset": args.dataset, "steps": args.steps, "cpus": os.cpu_count(), "rows": rows}))


if __name__ == "__main__":
    main()
