"""Where a command's CPU goes, by kind of process: run it, read every process's CPU time from /proc every half
second, and sum the processes of each kind (Ray's trial workers, its own daemons, search drivers, MLflow servers...).

    python bench/suite_cpu.py -- bash .ci/run
    python bench/suite_cpu.py --interval 0.1 -- .venv/bin/python search/run.py --num-samples 1 --max-steps 40
    python bench/suite_cpu.py --by-test -- bash .ci/run

--by-test also sums the processes by the pytest test that started them: the first folder under pytest's basetemp
(`.../popen-gw0/test_x0`) that is the working directory of the process or of one of its parents, when it is first
seen (a Ray worker's parent is its raylet, whose parent is the driver a test started in its tmp_path). Processes of
an in-process search started from a test that did not change directory are not placed.

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


def processes() -> dict[tuple[str, str], tuple[float, str, str]]:
    """{(pid, start time): (CPU-seconds so far, command line, parent pid)} of every process now."""
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
        found[(pid, fields[19])] = ((int(fields[11]) + int(fields[12])) / HERTZ, command, fields[1])
    return found


def test_of(pid: str, parents: dict[str, str]) -> str:
    """The pytest tmp_path folder (its name) that is the working directory of `pid` or of its nearest parent."""
    for _ in range(8):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        parts = cwd.split("/")
        for i, part in enumerate(parts[:-1]):
            if part.startswith("popen-gw") or (part.startswith("pytest-") and not part.startswith("pytest-of-")
                                                and not parts[i + 1].startswith("popen-gw")):
                return parts[i + 1]
        if pid not in parents or parents[pid] in ("0", "1"):
            return "(not placed)"
        pid = parents[pid]
    return "(not placed)"


def busy_seconds() -> float:
    """The machine's CPU-seconds spent on anything but idling and waiting for I/O, since boot."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq = (int(x) for x in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / HERTZ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples (default 0.5)")
    parser.add_argument("--by-test", action="store_true", help="also sum by the pytest test that started them")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    before = set(processes())
    spent: dict[tuple[str, str], tuple[float, str]] = {}
    placed: dict[tuple[str, str], str] = {}
    machine, started = busy_seconds(), time.time()
    child = subprocess.Popen(command)
    while child.poll() is None:
        now = processes()
        parents = {pid: parent for (pid, _), (_, _, parent) in now.items()} if args.by_test else {}
        for key, (cpu, line, _) in now.items():
            if key not in before:
                # Ray renames its workers (ray::IDLE): keep the command line the process started with.
                spent[key] = (cpu, spent[key][1] if key in spent and spent[key][1].strip() else line)
                if args.by_test and key not in placed:
                    placed[key] = test_of(key[0], parents)
        time.sleep(args.interval)
    machine, wall = busy_seconds() - machine, time.time() - started
    kinds = {key: kind_of(line) for key, (_, line) in spent.items()}
    totals, counts = collections.Counter(), collections.Counter()
    for key, (cpu, _) in spent.items():
        totals[kinds[key]] += cpu
        counts[kinds[key]] += 1
    print(f"# {' '.join(command)}: exit code {child.returncode}, {wall:.0f} s, the machine busy "
          f"{machine:.0f} CPU-seconds, {sum(totals.values()):.0f} of them in the processes it started", file=sys.stderr)
    print("| kind | processes | CPU-seconds |\n|---|---|---|", file=sys.stderr)
    for kind, cpu in totals.most_common():
        print(f"| {kind} | {counts[kind]} | {cpu:.0f} |", file=sys.stderr)
    if args.by_test:
        by_test, workers = collections.Counter(), collections.Counter()
        for key, (cpu, _) in spent.items():
            if kinds[key] != "pytest-xdist worker":
                by_test[placed.get(key, "(not placed)")] += cpu
                workers[placed.get(key, "(not placed)")] += kinds[key] == "Ray worker"
        print("\n| test (its tmp_path) | CPU-seconds of the processes it started | Ray workers |\n|---|---|---|",
              file=sys.stderr)
        for test, cpu in by_test.most_common():
            print(f"| {test} | {cpu:.0f} | {workers[test]} |", file=sys.stderr)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
