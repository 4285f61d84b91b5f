"""`python -m tracking.reproduce models:/izf-<dataset>@champion` (or models:/NAME/VERSION, or a search's
parent run id): retrain a registered model from what MLflow holds and check it against what was registered.

It reads the model's training config (in the logged model file), the search's seed, split seed, final seeds,
threads per trial and data checksum, and the git commit and dirty flag of the code that trained the final
model (the version's tags; the parent run's params for older versions). It refuses, with one error line,
when the local data's checksum differs, the code is at another commit or has changes to tracked files, or
the model was trained from uncommitted changes (--allow-code-change retrains with this code anyway), and
when the parent run lacks any of the core test metrics (softmax U, S, H and ZSL T1: their mean, and with
several final seeds their spread and each seed's own), so that it never reports "identical" having
compared nothing. It retrains every final seed on the test protocol and compares, and prints, every test
metric the parent run holds, the version's own test tags, and the first seed's weights with the registered
model file. On the CPU, with the threads the search gave each trial, all are identical; on a GPU,
nondeterministic kernels allow GPU_TOLERANCE. Exit status: 0 reproduced, 1 not (or an error).
"""

import argparse
import sys
import time

import mlflow
import torch
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from izf.device import choose_device
from izf.errors import IZFError, first_line
from izf.io import model_state
from izf.provenance import UNKNOWN, CodeVersion, code_version
from tracking.model import model_file, model_name
from tracking.paging import every_version
from tracking.retrain import load_same_data, retrain_on_test
from tracking.tracker import default_tracking_uri, require_store

__all__ = ["main", "required_metrics", "recorded_code", "compare_weights", "GPU_TOLERANCE"]

GPU_TOLERANCE = 0.01  # absolute on metrics in [0, 1], relative to a tensor's largest |weight| on weights: stated,
# not measured (no GPU was lent to this project yet): cuBLAS/cuDNN reductions are not bitwise repeatable
CORE = ("softmax_u", "softmax_s", "softmax_h", "softmax_zsl_t1")
VERSION_TAGS = {"test_u": "softmax_u", "test_s": "softmax_s", "test_h": "softmax_h"}


class NotReproducible(Exception):
    """Why a model cannot be retrained or checked as it was: one line that says what to do."""


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
        mine = [v for v in every_version(client, f"name = '{model_name(dataset)}'")
                if v.tags.get("parent_run_id") == ref]
        if not mine:
            raise NotReproducible(f"run {ref} registered no model version (its search did not finish)")
        version = max(mine, key=lambda v: int(v.version))
    parent = version.tags.get("parent_run_id")
    if parent is None:
        raise NotReproducible(f"{version.name} version {version.version} was not registered by a search "
                              "(no parent_run_id tag): nothing records how it was trained")
    return version, parent


def required_metrics(final_seeds: int) -> list[str]:
    """The parent run's test metrics without which a reproduction proves nothing: the core metrics' mean, and
    with several final seeds their spread and each seed's own."""
    names = [f"test_{k}" for k in CORE]
    if final_seeds > 1:
        names += [f"test_{k}_std" for k in CORE]
        names += [f"test_seed{i}_{k}" for i in range(final_seeds) for k in CORE]
    return names


def recorded_code(version: ModelVersion, params: dict) -> CodeVersion:
    """The code that trained the final model: the version's tags, else (an older version) the search's start."""
    source = version.tags if "git_commit" in version.tags else params
    return CodeVersion(source.get("git_commit", UNKNOWN), source.get("git_dirty", "False") == "True")


def _code_differs(recorded: CodeVersion) -> str | None:
    here = code_version()
    if recorded.commit == UNKNOWN:
        return "the search recorded no git commit"
    if recorded.dirty:
        return (f"the model was trained from uncommitted changes to commit {recorded.commit[:12]}, which cannot be "
                "checked out again")
    if here.commit != recorded.commit:
        return f"the code is at commit {here.commit[:12]}, the model was trained at {recorded.commit[:12]} (`git " \
               f"checkout {recorded.commit[:12]}`)"
    if here.dirty:
        return f"the working tree changes tracked files of commit {here.commit[:12]}"
    return None


def compare_weights(registered: bytes, retrained: bytes, tolerance: float) -> tuple[int, list[str]]:
    """Compare two izf.io model files entry by entry: tensors bitwise (tolerance 0) or within `tolerance` of
    their largest |value|, plain values by equality. Returns how many entries were compared and those that
    differ."""
    a, b = model_state(registered), model_state(retrained)
    compared, differ = 0, []

    def walk(x: object, y: object, path: str) -> None:
        nonlocal compared
        if isinstance(x, dict) and isinstance(y, dict) and x.keys() == y.keys():
            for key in x:
                walk(x[key], y[key], f"{path}.{key}" if path else str(key))
            return
        compared += 1
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            same = x.shape == y.shape and x.dtype == y.dtype and (
                torch.equal(x, y) if tolerance == 0 else
                float((x.double() - y.double()).abs().max()) <= tolerance * max(float(x.double().abs().max()), 1e-12))
        else:
            same = x == y
        if not same:
            differ.append(path)

    walk(a, b, "")
    return compared, differ


def main(argv: list[str] | None = None) -> int:
    """Run `python -m tracking.reproduce` with `argv`; return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m tracking.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="models:/izf-<dataset>@champion, models:/NAME/VERSION or a parent run id")
    parser.add_argument("--data-root", default=None, help="the xlsa17 folder ($IZF_DATA or the cache)")
    parser.add_argument("--allow-code-change", action="store_true",
                        help="retrain with this code even where it is not the code that trained the model")
    parser.add_argument("--mlflow-uri", default=None, help="default $MLFLOW_TRACKING_URI or sqlite:///<cwd>/mlflow.db")
    args = parser.parse_args(argv)
    uri = args.mlflow_uri or default_tracking_uri()
    try:
        require_store(uri)
    except IZFError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    mlflow.set_tracking_uri(uri)  # a logged model's URI (models:/m-...) resolves through the fluent API's store
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        version, parent = resolve(client, args.model)
        run = client.get_run(parent)
        params, registered = run.data.params, run.data.metrics
        dataset, seed = params["dataset"], int(params["seed"])
        split_seed = int(version.tags.get("split_seed", seed))
        final_seeds, threads = int(params["final_seeds"]), max(1, int(float(params["cpus_per_trial"])))
        missing = [k for k in required_metrics(final_seeds) if k not in registered]
        if missing:
            raise NotReproducible(
                f"parent run {parent} lacks {len(missing)} of the {len(required_metrics(final_seeds))} core test "
                f"metrics ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}), so there is too little "
                f"to compare: MLflow did not receive them (an outage?); `python -m tracking.sync <the search's "
                f"folder>` logs them")
        bench = load_same_data(dataset, args.data_root, seed, params["data_checksum"])
        code = recorded_code(version, params)
        if (why := _code_differs(code)) and not args.allow_code_change:
            raise NotReproducible(f"{why}; or --allow-code-change to retrain with this code")
        file = model_file(client, version)
        config, device = model_state(file)["config"], choose_device()
    except (NotReproducible, IZFError, MlflowException, KeyError) as e:
        what = f"missing param {e}" if isinstance(e, KeyError) else first_line(e)
        print(f"error: {what}", file=sys.stderr)
        return 1
    print(f"{version.name} version {version.version}, parent run {parent}, trained at commit {code.describe()}, "
          f"data {params['data_checksum'][:12]}, split seed {split_seed}")
    started = time.perf_counter()
    test, spread, seeds, retrained = retrain_on_test(bench, split_seed, config, final_seeds, threads, device)
    print(f"retrained {final_seeds} seed{'s' * (final_seeds > 1)} on the test protocol ({device.type}, "
          f"{threads} thread{'s' * (threads > 1)}) in {time.perf_counter() - started:.1f} s")
    tolerance = GPU_TOLERANCE if device.type == "cuda" else 0.0
    reproduced = {f"test_{k}": v for k, v in test.items()}
    if final_seeds > 1:
        reproduced.update({f"test_{k}_std": v for k, v in spread.items()})
        reproduced.update({f"test_seed{i}_{k}": v for i, run in enumerate(seeds) for k, v in run.items()})
    pairs = [(name, registered[name], value) for name, value in reproduced.items() if name in registered]
    pairs += [(f"tag {tag}", float(version.tags[tag]), test[key]) for tag, key in VERSION_TAGS.items()
              if tag in version.tags]
    print(f"{'metric':<34}{'registered':>14}{'reproduced':>14}{'difference':>14}")
    worst = 0.0
    for name, was, now in pairs:
        worst = max(worst, abs(now - was))
        print(f"{name if name.startswith('tag ') else 'test ' + name.removeprefix('test_'):<34}{was:>14.6f}"
              f"{now:>14.6f}{now - was:>14.2g}")
    n_weights, differ = compare_weights(file, retrained, tolerance)
    print(f"compared {len(pairs)} metrics and version tags ({len(required_metrics(final_seeds))} core metrics "
          f"required, all present) and {n_weights} entries of the first seed's model file")
    if worst > tolerance or differ:
        weights = f"; model file entries differ: {', '.join(differ[:5])}" if differ else ""
        print(f"not reproduced: differences up to {worst:.3g} (allowed {tolerance:g} on {device.type}){weights}")
        return 1
    print("reproduced: identical" if tolerance == 0 else f"reproduced within {tolerance:g} ({device.type})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
