"""`python -m tracking.reproduce models:/izf-<dataset>@champion` (or models:/NAME/VERSION, or a search's
parent run id): retrain a registered model from what MLflow holds and measure it on test again.

It reads the model's training config (in the logged model file), the search's seed, final seeds, threads
per trial, data checksum and git commit (the parent run's params); refuses when the local data's checksum or
the code's commit differ (--allow-code-change retrains with this code anyway); retrains every final seed on
the test protocol and prints the test metrics beside the registered ones. On the CPU, with the threads the
search gave each trial, the numbers are identical; on a GPU, nondeterministic kernels allow a difference up
to GPU_TOLERANCE. Exit status: 0 reproduced, 1 not (or an error).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import torch
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from izf.data import load_benchmark, make_split
from izf.device import choose_device
from izf.errors import IZFError
from izf.metrics import over_seeds
from izf.presets import feature_scaling
from izf.training import FitConfig, fit
from tracking.model import model_name
from tracking.tracker import default_tracking_uri, git_commit

__all__ = ["main", "retrain", "GPU_TOLERANCE"]

GPU_TOLERANCE = 0.01  # absolute, on metrics in [0, 1]: cuBLAS/cuDNN reductions are not bitwise repeatable


class NotReproducible(Exception):
    """Why a model cannot be retrained as it was: one line that says what to do."""


def resolve(client: MlflowClient, ref: str) -> tuple[ModelVersion, str]:
    """The model version `ref` names (models:/NAME@ALIAS, models:/NAME/VERSION, or a parent run id) and its
    search's parent run id."""
    if ref.startswith("models:/"):
        name, at, alias = ref.removeprefix("models:/").partition("@")
        if at:
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = name.partition("/")
            version = client.get_model_version(name, number)
    else:
        run = client.get_run(ref)
        dataset = run.data.params.get("dataset")
        if dataset is None:
            raise NotReproducible(f"run {ref} is not a search's parent run (no dataset param)")
        mine = [v for v in client.search_model_versions(f"name = '{model_name(dataset)}'")
                if v.tags.get("parent_run_id") == ref]
        if not mine:
            raise NotReproducible(f"run {ref} registered no model version (its search did not finish)")
        version = max(mine, key=lambda v: int(v.version))
    parent = version.tags.get("parent_run_id")
    if parent is None:
        raise NotReproducible(f"{version.name} version {version.version} was not registered by a search "
                              "(no parent_run_id tag): nothing records how it was trained")
    return version, parent


def _trained_config(client: MlflowClient, version: ModelVersion) -> dict:
    """The FitConfig the model file was trained with (its first final seed)."""
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # not a bar of 40 files on the console
    with tempfile.TemporaryDirectory() as folder:
        local = Path(download_artifacts(artifact_uri=version.source, dst_path=folder))
        (model_file,) = local.rglob("model.pt")
        return torch.load(model_file, map_location="cpu", weights_only=True)["config"]


def _code_differs(recorded: str) -> str | None:
    here = git_commit()
    if recorded in ("", "unknown"):
        return "the search recorded no git commit"
    if here != recorded:
        return f"the code is at commit {here[:12]}, the model was trained at {recorded[:12]} (`git checkout " \
               f"{recorded[:12]}`)"
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    if changed:
        return f"the working tree changes tracked files of commit {here[:12]} ({len(changed.splitlines())} files)"
    return None


def retrain(dataset: str, data_root: str | None, seed: int, config: dict, final_seeds: int, threads: int,
            device: torch.device) -> tuple[dict, dict]:
    """Every final seed retrained on the test protocol as the search did; the test metrics' mean and spread."""
    bench = load_benchmark(dataset, root=data_root, seed=seed)
    split = make_split(bench, "test", features=feature_scaling(dataset), seed=seed)
    torch.set_num_threads(threads)
    first = int(config["seed"])
    return over_seeds([dict(fit(split, FitConfig.from_dict({**config, "seed": first + i, "device": str(device)}))
                            .metrics) for i in range(final_seeds)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracking.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="models:/izf-<dataset>@champion, models:/NAME/VERSION or a parent run id")
    parser.add_argument("--data-root", default=None, help="the xlsa17 folder ($IZF_DATA or the cache)")
    parser.add_argument("--allow-code-change", action="store_true",
                        help="retrain with this code even where its commit differs from the search's")
    parser.add_argument("--mlflow-uri", default=None, help="default $MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    args = parser.parse_args(argv)
    uri = args.mlflow_uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)  # a logged model's URI (models:/m-...) resolves through the fluent API's store
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        version, parent = resolve(client, args.model)
        run = client.get_run(parent)
        params, registered = run.data.params, run.data.metrics
        dataset, seed = params["dataset"], int(params["seed"])
        final_seeds, threads = int(params["final_seeds"]), max(1, int(float(params["cpus_per_trial"])))
        checksum = load_benchmark(dataset, root=args.data_root, seed=seed).checksum()
        if checksum != params["data_checksum"]:
            raise NotReproducible(f"the data differ from the search's (checksum {checksum[:12]}, logged "
                                  f"{params['data_checksum'][:12]}): give the same files (--data-root)")
        if (why := _code_differs(params.get("git_commit", ""))) and not args.allow_code_change:
            raise NotReproducible(f"{why}; or --allow-code-change to retrain with this code")
        config, device = _trained_config(client, version), choose_device()
    except (NotReproducible, IZFError, MlflowException, KeyError) as e:
        what = f"missing param {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
        print(f"error: {what}", file=sys.stderr)
        return 1
    print(f"{version.name} version {version.version}, parent run {parent}, commit "
          f"{params.get('git_commit', 'unknown')[:12]}, data {checksum[:12]}")
    started = time.perf_counter()
    test, spread = retrain(dataset, args.data_root, seed, config, final_seeds, threads, device)
    print(f"retrained {final_seeds} seed{'s' * (final_seeds > 1)} on the test protocol ({device.type}, "
          f"{threads} thread{'s' * (threads > 1)}) in {time.perf_counter() - started:.1f} s")
    tolerance = GPU_TOLERANCE if device.type == "cuda" else 0.0
    print(f"{'metric':<24}{'registered':>14}{'reproduced':>14}{'difference':>14}")
    worst = 0.0
    for key in sorted(test):
        if f"test_{key}" not in registered:
            continue
        difference = test[key] - registered[f"test_{key}"]
        worst = max(worst, abs(difference))
        print(f"{'test ' + key:<24}{registered[f'test_{key}']:>14.6f}{test[key]:>14.6f}{difference:>14.2g}")
        if final_seeds > 1 and f"test_{key}_std" in registered:
            print(f"{'  std':<24}{registered[f'test_{key}_std']:>14.6f}{spread[key]:>14.6f}")
    if worst > tolerance:
        print(f"not reproduced: differences up to {worst:.3g} (allowed {tolerance:g} on {device.type})")
        return 1
    print("reproduced: identical" if worst == 0 else f"reproduced within {tolerance:g} ({device.type})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
