"""Where a command's CPU goes, by kind of process: run it, read every process's CPU time from /proc every half
second, and sum the processes of each kind (Ray's trial workers, its own daemons, search drivers, MLflow servers...).

    python bench/suite_cpu.py -- bash .ci/run
    python bench/suite_cpu.py --interval 0.1 -- .venv/bin/python search/run.py --num-samples 1 --max-steps 40
    python bench/suite_cpu.py --by-test -- bash .ci/run

--by-test also sums the processes by the pytest test that started them. It loads bench/pytest_clock.py into pytest
(PYTHONPATH, PYTEST_ADDOPTS), which writes when each test starts in which pytest process; a process is placed by the
test its nearest pytest ancestor was running when the process was first seen (a Ray worker's parent is its raylet,
whose parent is the driver or the pytest process that started Ray), and a pytest process's own CPU by the test it
ran between two samples. A process with no pytest ancestor (the daemons of `ray start`, which leave their parent) is
placed by the first folder under pytest's basetemp (`.../popen-gw0/test_x0`) that is its working directory or its
nearest parent's.

A process is counted up to its last sample: one that lives less than the interval is missed, and each one loses
what it spent after its last sample (at most the interval). Linux only. It measures the machine, not IZF.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
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


def ancestors(pid: str, parents: dict[str, str]) -> list[str]:
    """`pid`'s parent, its parent's, and so on, up to (not including) init."""
    chain = []
    while pid in parents and parents[pid] not in ("0", "1") and len(chain) < 32:
        pid = parents[pid]
        chain.append(pid)
    return chain


def read_clock(path: str) -> dict[str, list[tuple[float, str]]]:
    """{pytest pid: [(time, nodeid) when each of its tests started, in order]} from bench/pytest_clock.py's file."""
    clock = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            when, pid, nodeid = line.rstrip("\n").split(" ", 2)
            clock[pid].append((float(when), nodeid))
    return clock


def running(clock: dict[str, list[tuple[float, str]]], pid: str, when: float) -> str:
    """The test the pytest process `pid` was running at `when`."""
    started = [nodeid for t, nodeid in clock[pid] if t <= when]
    return started[-1] if started else "(pytest before its first test)"


def folder_of(pid: str, parents: dict[str, str]) -> str:
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
    env = dict(os.environ)
    clock_file = None
    if args.by_test:
        clock_file = tempfile.NamedTemporaryFile(prefix="izf-test-clock-", suffix=".txt", delete=False).name
        bench = os.path.dirname(os.path.abspath(__file__))
        env["IZF_TEST_CLOCK"] = clock_file
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [bench, env.get("PYTHONPATH")]))
        env["PYTEST_ADDOPTS"] = " ".join(filter(None, [env.get("PYTEST_ADDOPTS"), "-p pytest_clock"]))
    before = set(processes())
    spent: dict[tuple[str, str], tuple[float, str]] = {}
    first_seen: dict[tuple[str, str], tuple[float, list[str], str]] = {}  # time, ancestors, tmp_path folder
    samples: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)  # pid: [(time, CPU-seconds)]
    machine, started = busy_seconds(), time.time()
    child = subprocess.Popen(command, env=env)
    while child.poll() is None:
        now, when = processes(), time.time()
        parents = {pid: parent for (pid, _), (_, _, parent) in now.items()} if args.by_test else {}
        for key, (cpu, line, _) in now.items():
            if key not in before:
                # Ray renames its workers (ray::IDLE): keep the command line the process started with.
                spent[key] = (cpu, spent[key][1] if key in spent and spent[key][1].strip() else line)
                if args.by_test:
                    samples[key[0]].append((when, cpu))
                    if key not in first_seen:
                        first_seen[key] = (when, ancestors(key[0], parents), folder_of(key[0], parents))
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
        print_by_test(spent, kinds, first_seen, samples, read_clock(clock_file))
        os.unlink(clock_file)
    return child.returncode


def print_by_test(spent: dict, kinds: dict, first_seen: dict, samples: dict, clock: dict) -> None:
    """The CPU of each test: of the processes it started and of its pytest process while it ran; then by file."""
    own, started, workers = collections.Counter(), collections.Counter(), collections.Counter()
    for key, (cpu, _) in spent.items():
        if key[0] in clock:  # a pytest process: its CPU between two samples goes to the test it was running
            points = samples[key[0]]
            for (t0, c0), (_, c1) in zip(points, points[1:], strict=False):
                own[running(clock, key[0], t0)] += c1 - c0
            continue
        when, chain, folder = first_seen[key]
        pytest_pid = next((pid for pid in chain if pid in clock), None)
        test = running(clock, pytest_pid, when) if pytest_pid else folder
        started[test] += cpu
        workers[test] += kinds[key] == "Ray worker"
    total = own + started
    print("\n| test | CPU-seconds | of them in processes it started | Ray workers |\n|---|---|---|---|",
          file=sys.stderr)
    for test, cpu in total.most_common():
        print(f"| {test} | {cpu:.0f} | {started[test]:.0f} | {workers[test]} |", file=sys.stderr)
    by_file = collections.Counter()
    for test, cpu in total.items():
        by_file[test.split("::")[0]] += cpu
    print("\n| test file | CPU-seconds |\n|---|---|", file=sys.stderr)
    for name, cpu in by_file.most_common():
        print(f"| {name} | {cpu:.0f} |", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
