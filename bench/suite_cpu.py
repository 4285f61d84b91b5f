"""Where a command's CPU goes, by kind of process: run it, read every process's CPU time from /proc every half
second, and sum the processes of each kind (Ray's trial workers, its own daemons, search drivers, MLflow servers...).

    python bench/suite_cpu.py -- bash .ci/run
    python bench/suite_cpu.py --interval 0.1 -- .venv/bin/python search/run.py --num-samples 1 --max-steps 40

A process is counted up to its last sample: one that lives less than the interval is missed, and each one loses
what it spent after its last sample (at most the interval). Linux only. It measures the machine, not IZF.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time

HERTZ = os.sysconf("SC_CLK_TCK")

# The first rule whose text is in a process's command line names its kind.
KINDS = [("setup_worker", "Ray worker"), ("default_worker", "Ray worker"), ("ray::", "Ray worker"),
         ("gcs_server", "Ray GCS"), ("raylet", "Ray raylet"), ("dashboard/agent.py", "Ray dashboard agent"),
         ("dashboard.py", "Ray dashboard"), ("runtime_env/agent", "Ray runtime-env agent"),
         ("log_monitor", "Ray log monitor"), ("monitor.py", "Ray autoscaler monitor"),
         ("search/run.py", "search CLI driver"), ("-m tracking", "tracking CLI"), ("-m izf", "izf CLI"),
         ("exec(eval(sys.stdin.readline()))", "pytest-xdist worker"), ("mlflow", "mlflow server"),
         ("postgres", "PostgreSQL"), ("moto", "moto S3 server"), ("chrom", "Chromium"), ("pip", "pip"),
         ("python", "other Python")]


def kind_of(command: str) -> str:
    return next((kind for text, kind in KINDS if text in command), "other")


def processes() -> dict[tuple[str, str], tuple[float, str]]:
    """{(pid, start time): (CPU-seconds so far, command line)} of every process now."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        found[(pid, fields[19])] = ((int(fields[11]) + int(fields[12])) / HERTZ, command)
    return found


def busy_seconds() -> float:
    """The machine's CPU-seconds spent on anything but idling and waiting for I/O, since boot."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq = (int(x) for x in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / HERTZ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples (default 0.5)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    before = set(processes())
    spent: dict[tuple[str, str], tuple[float, str]] = {}
    machine, started = busy_seconds(), time.time()
    child = subprocess.Popen(command)
    while child.poll() is None:
        for key, (cpu, line) in processes().items():
            if key not in before:
                # Ray renames its workers (ray::IDLE): keep the command line the process started with.
                spent[key] = (cpu, spent[key][1] if key in spent and spent[key][1].strip() else line)
        time.sleep(args.interval)
    machine, wall = busy_seconds() - machine, time.time() - started
    totals, counts = collections.Counter(), collections.Counter()
    for cpu, line in spent.values():
        totals[kind_of(line)] += cpu
        counts[kind_of(line)] += 1
    print(f"# {' '.join(command)}: exit code {child.returncode}, {wall:.0f} s, the machine busy "
          f"{machine:.0f} CPU-seconds, {sum(totals.values()):.0f} of them in the processes it started", file=sys.stderr)
    print("| kind | processes | CPU-seconds |\n|---|---|---|", file=sys.stderr)
    for kind, cpu in totals.most_common():
        print(f"| {kind} | {counts[kind]} | {cpu:.0f} |", file=sys.stderr)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
