"""The search platform at cluster scale: N stand-in trials on a simulated multi-node cluster, through the whole
platform and through bare Ray Tune, in the same run. THE FIGURES MEASURE THE PLATFORM, NOT IZF: the trials are
bench/standin.py's, which sleep and report a curve computed from their config.

The cluster is Ray's own multi-node tooling on this machine (`ray.cluster_utils.Cluster`: a raylet per node),
by default 4 nodes that each declare 16 CPUs and 4 GPUs (logical resources: no GPU is used); trials ask for 1 CPU and
0.25 GPU, so that 64 run at once, as on a 16-GPU cluster packing four trials per GPU. Two drivers run on it in turn,
each in a process of its own:

  platform  search.running.driver.run as the CLI runs it: Optuna TPE through OptunaSearch on the search's study,
            ASHA, the search's record and events, the console, MLflow (a parent run, a run per trial, the final
            model registered and promoted); the final choice without the final IZF fit (a one-step model stands in)
  bare      ray.tune.Tuner with the same trainable, resources and ASHA, a random searcher (Tune's own), no
            callbacks, no MLflow

For each: wall time (Tuner and all around it, from the driver's start to its end), the driver's CPU seconds per
trial and its peak RSS; for the platform also Optuna's seconds per ask+tell as the study grows, MLflow's seconds per
trial (the recorder's share of the driver), the events file's size, and afterwards the time of `tracking.sync`,
`tracking.report`, the leaderboard and `--resume` of the finished search, and the child runs MLflow holds.

    python bench/search_scale.py --trials 100
    python bench/search_scale.py --trials 1000 --trial-seconds 40
    python bench/search_scale.py --trials 100 --mlflow server    # an `mlflow server` on 127.0.0.1

The last line is one JSON object: trials, slots, wall_platform_s, wall_bare_s, ratio (platform / bare),
mlflow_trial_runs, and the rest.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform as machine
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

STEPS, EVAL_EVERY, GRACE = 400, 100, 100  # 4 reports a trial; ASHA's first rung after the first


def _cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True, env={"LC_ALL": "C"}).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return machine.processor()


def _usage() -> dict:
    """This process's CPU seconds and peak RSS so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": own.ru_utime + own.ru_stime, "peak_rss_mb": own.ru_maxrss / 1024}


def _slept_seconds(rows: list[int], seconds: float) -> float:
    """The seconds the stand-in trials slept in all: each slept seconds * (its last step / STEPS)."""
    return sum(seconds * step / STEPS for step in rows)


class Timed:
    """A listener's methods timed: the seconds each event's handling took, summed by event."""

    def __init__(self, listener: object) -> None:
        self.listener, self.seconds, self.calls = listener, {}, {}

    def __getattr__(self, event: str) -> object:
        method = getattr(self.listener, event)

        def timed(**args: object) -> None:
            started = time.perf_counter()
            try:
                method(**args)
            finally:
                self.seconds[event] = self.seconds.get(event, 0.0) + time.perf_counter() - started
                self.calls[event] = self.calls.get(event, 0) + 1
        return timed


def _time_optuna() -> list:
    """Time every ask and tell Tune's OptunaSearch makes, with the number of finished trials at the time."""
    from search.running.optuna_search import ResumableOptunaSearch

    samples: list = []  # (finished trials, seconds, kind)
    finished = [0]
    for name in ("suggest", "on_trial_complete"):
        original = getattr(ResumableOptunaSearch, name)

        def timed(self: object, *args: object, _original=original, _name=name, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                samples.append((finished[0], time.perf_counter() - started, _name))
                finished[0] += _name == "on_trial_complete"
        setattr(ResumableOptunaSearch, name, timed)
    return samples


def _optuna_per_trial(samples: list, edges: tuple = (0, 100, 1000, 10_000, 100_000)) -> dict:
    """Mean seconds of one ask plus one tell, by how many trials the study had finished (e.g. "100-1000")."""
    out = {}
    for low, high in itertools.pairwise(edges):
        asks = [s for n, s, kind in samples if low <= n < high and kind == "suggest"]
        tells = [s for n, s, kind in samples if low <= n < high and kind == "on_trial_complete"]
        if asks and tells:
            out[f"{low}-{high}"] = round(sum(asks) / len(asks) + sum(tells) / len(tells), 5)
    return out


def platform_driver(args: argparse.Namespace) -> dict:
    """One search through the whole platform on the cluster at args.address."""
    from standin import report_keys, standin_measure, standin_trial

    from search.choosing.summary import print_summary
    from search.options import SearchOptions
    from search.running.driver import run
    from tracking import Tracker
    from tracking.recorder import MLflowRecorder, print_recorded

    started = time.perf_counter()
    samples = _time_optuna()
    tracker = Tracker(args.mlflow_uri, "izf-scale")
    tracker.connect()
    recorder = Timed(MLflowRecorder(tracker))
    options = SearchOptions(dataset="synthetic", address=args.address, num_samples=args.trials,
                            max_concurrent=args.slots, cpus_per_trial=1, gpus_per_trial=args.gpus_per_trial,
                            max_steps=STEPS, eval_every=EVAL_EVERY, grace_steps=GRACE, name="scale",
                            storage_path=str(args.folder / "rr"), max_failures=0, scheduler=args.scheduler)
    result = run(options, listeners=[recorder], trial=standin_trial(args.trial_seconds, report_keys()),
                 measure=standin_measure, notes={"tracking": {"mlflow_uri": tracker.uri, "experiment": "izf-scale",
                                                             "enabled": True}})
    print_summary(result)
    print_recorded(tracker, recorder.listener.recorded)
    wall = time.perf_counter() - started
    events = Path(result.experiment_path) / "izf_events.jsonl"
    return {"wall_s": wall, **_usage(), "trials_ran": int(result.n_trials),
            "slept_s": _slept_seconds(list(result.trials["step"]), args.trial_seconds),
            "mlflow_s": sum(recorder.seconds.values()), "mlflow_s_by_event": recorder.seconds,
            "mlflow_failed_calls": tracker.failures, "optuna_ask_tell_s": _optuna_per_trial(samples),
            "events_mb": events.stat().st_size / 2**20, "folder": result.experiment_path,
            "parent_run_id": recorder.listener.recorded.get("parent_run_id")}


def bare_driver(args: argparse.Namespace) -> dict:
    """The same trials through bare Ray Tune: Tuner, ASHA, a random searcher; nothing else."""
    import ray
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from standin import report_keys, standin_trial

    started = time.perf_counter()
    ray.init(address=args.address, log_to_driver=False)

    class Prepared:  # what standin_trial reads of a search
        options = argparse.Namespace(checkpoint_every=1)
        base = {"steps": STEPS, "eval_every": EVAL_EVERY}

    trainable = tune.with_resources(standin_trial(args.trial_seconds, report_keys())(Prepared, frozenset()),
                                    {"cpu": 1, "gpu": args.gpus_per_trial})
    space = {"depth": tune.randint(2, 11), "lr": tune.loguniform(1e-4, 3e-3),
             "mmd_weight": tune.loguniform(1e-3, 1.0), "semantic_weight": tune.loguniform(1.0, 30.0),
             "temperature": tune.loguniform(0.05, 1.0), "centralizing_weight": tune.loguniform(0.1, 10.0),
             "synthetic_per_class": tune.lograndint(50, 801)}
    grid = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=args.trials, max_concurrent_trials=args.slots, reuse_actors=True, metric="best_h",
            mode="max", scheduler=AsyncHyperBandScheduler(time_attr="step", max_t=STEPS, grace_period=GRACE,
                                                          reduction_factor=2) if args.scheduler == "asha" else None),
        run_config=tune.RunConfig(name="bare", storage_path=str(args.folder / "bare"), verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    ).fit()
    trials = grid.get_dataframe()
    ray.shutdown()
    return {"wall_s": time.perf_counter() - started, **_usage(), "trials_ran": len(trials),
            "slept_s": _slept_seconds(list(trials["step"]), args.trial_seconds), "errors": len(grid.errors)}


def _timed_command(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def _child_runs(uri: str, parent_run_id: str) -> int:
    """The trial runs MLflow holds under the search's parent run, every page of them."""
    from mlflow import MlflowClient

    from tracking.paging import every_run

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("izf-scale").experiment_id
    return len(every_run(client, [experiment], f"tags.`mlflow.parentRunId` = '{parent_run_id}'"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_server(folder: Path) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
                               "--artifacts-destination", str(folder / "server-artifacts")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import urllib.request

    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return f"http://127.0.0.1:{port}", server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("error: the mlflow server did not come up in 2 minutes")


def _child(role: str, args: argparse.Namespace) -> dict:
    """Run one driver in a process of its own; its JSON result (its console goes to ours)."""
    command = [sys.executable, __file__, "--role", role, "--address", args.address, "--folder", str(args.folder),
               "--trials", str(args.trials), "--slots", str(args.slots), "--gpus-per-trial", str(args.gpus_per_trial),
               "--trial-seconds", str(args.trial_seconds), "--mlflow-uri", args.mlflow_uri, "--scheduler",
               args.scheduler]
    out = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    lines = out.stdout.strip().splitlines()
    results = [i for i, line in enumerate(lines) if line.startswith('{"wall_s"')]
    if out.returncode != 0 or not results:
        raise SystemExit(f"error: the {role} driver exited {out.returncode}")
    print("\n".join(lines[:results[-1]][-40:]), flush=True)  # the platform's console, the end of it
    return json.loads(lines[results[-1]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--trial-seconds", type=float, default=20.0, help="a full stand-in trial's sleep")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--cpus-per-node", type=int, default=16)
    parser.add_argument("--gpus-per-node", type=int, default=4)
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    parser.add_argument("--mlflow", choices=("sqlite", "server"), default="sqlite")
    parser.add_argument("--scheduler", choices=("asha", "none"), default="asha",
                        help="none: every trial runs to its end in both drivers, so both do the same work")
    parser.add_argument("--role", choices=("platform", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--slots", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mlflow-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        result = platform_driver(args) if args.role == "platform" else bare_driver(args)
        print(json.dumps(result, default=str))
        return

    from ray.cluster_utils import Cluster

    args.slots = args.nodes * min(args.cpus_per_node, int(args.gpus_per_node / args.gpus_per_trial))
    args.folder = Path(tempfile.mkdtemp(prefix="search-scale-"))
    server = None
    if args.mlflow == "server":
        args.mlflow_uri, server = _mlflow_server(args.folder)
    else:
        args.mlflow_uri = f"sqlite:///{args.folder / 'mlflow.db'}"
    node = {"num_cpus": args.cpus_per_node, "num_gpus": args.gpus_per_node}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=node)
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        args.address = cluster.address
        print(f"{args.trials} stand-in trials (the platform is measured, not IZF), {args.slots} slots on "
              f"{args.nodes} nodes, {args.trial_seconds:g} s a full trial; {_cpu_model()}, {os.cpu_count()} cores",
              flush=True)
        platform = _child("platform", args)
        bare = _child("bare", args)
        name_folder = str(Path(platform["folder"]).parent)
        cli = [sys.executable, str(ROOT / "search" / "run.py")]
        after = {
            "sync_s": _timed_command([sys.executable, "-m", "tracking.sync", platform["folder"], "--mlflow-uri",
                                      args.mlflow_uri, "--experiment", "izf-scale"], ROOT),
            "report_s": _timed_command([sys.executable, "-m", "tracking.report", "--experiment", "izf-scale",
                                        "--mlflow-uri", args.mlflow_uri], ROOT),
            "leaderboard_s": _timed_command([sys.executable, "-m", "tracking.report", "--leaderboard", "--mlflow-uri",
                                             args.mlflow_uri, "--out", str(args.folder / "board")], ROOT),
            "resume_finished_s": _timed_command([*cli, "--resume", "--name", "scale", "--storage-path",
                                                 str(Path(name_folder).parent), "--address", args.address,
                                                 "--mlflow-uri", args.mlflow_uri, "--experiment", "izf-scale"], ROOT),
        }
        runs = _child_runs(args.mlflow_uri, platform["parent_run_id"])
    finally:
        cluster.shutdown()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    record = json.loads((Path(platform["folder"]) / "izf_search.json").read_text())
    floor = args.trials * args.trial_seconds / args.slots
    out = {"trials": args.trials, "slots": args.slots, "trial_seconds": args.trial_seconds, "mlflow": args.mlflow,
           "scheduler": args.scheduler,
           "wall_platform_s": round(platform["wall_s"], 1), "wall_bare_s": round(bare["wall_s"], 1),
           "ratio": round(platform["wall_s"] / bare["wall_s"], 3),
           # Each wall against the trials' own sleep spread over the slots: with ASHA, TPE's better configs run
           # longer than random ones (more work, by design); this ratio compares what each adds to its work.
           "ratio_to_own_floor": round((platform["wall_s"] / platform["slept_s"]) / (bare["wall_s"] / bare["slept_s"]),
                                       3),
           "floor_full_trials_s": round(floor, 1),
           "floor_platform_s": round(platform["slept_s"] / args.slots, 1),
           "floor_bare_s": round(bare["slept_s"] / args.slots, 1),
           "driver_cpu_s_per_trial_platform": round(platform["cpu_s"] / args.trials, 4),
           "driver_cpu_s_per_trial_bare": round(bare["cpu_s"] / args.trials, 4),
           "driver_peak_rss_mb_platform": round(platform["peak_rss_mb"]),
           "driver_peak_rss_mb_bare": round(bare["peak_rss_mb"]),
           "mlflow_s_per_trial": round(platform["mlflow_s"] / args.trials, 4),
           "mlflow_s_by_event": {k: round(v, 2) for k, v in platform["mlflow_s_by_event"].items()},
           "mlflow_failed_calls": platform["mlflow_failed_calls"],
           "optuna_ask_tell_s": platform["optuna_ask_tell_s"], "events_mb": round(platform["events_mb"], 2),
           **{k: round(v, 1) for k, v in after.items()},
           "mlflow_trial_runs": runs, "record_trials": len(record["trials"]),
           "trials_ran_platform": platform["trials_ran"], "trials_ran_bare": bare["trials_ran"],
           "cpu": _cpu_model(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    shutil.rmtree(args.folder, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
