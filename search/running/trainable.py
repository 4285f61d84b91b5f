"""The Tune function trainable: one IZF training run that reports at every evaluation, with a checkpoint at every
`checkpoint_every`-th report (a retried trial resumes from the last)."""

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import ray
import torch
from ray import tune

import izf
from izf.data import Split
from search.preparing.prepared import Prepared
from search.preparing.space import fit_fields
from search.running.worker import dataset_memory, worker_device

__all__ = ["train_izf", "izf_trial", "STATE_FILE", "staging_folder", "sweep_staging"]

STATE_FILE = "state.pt"
STAGING_PREFIX = "izf-ckpt-"  # then the owner's process id, "-", and tempfile's random part
STAGING = re.compile(rf"{STAGING_PREFIX}(\d+)-")


def staging_folder() -> tempfile.TemporaryDirectory:
    """A temporary folder to build one checkpoint in before tune.report copies it to the storage, named after
    this process's id so that sweep_staging can tell whether its owner is gone (the processes that share a node's
    temporary folder share its process ids: one machine, or one container)."""
    return tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-")


def sweep_staging(root: Path | None = None) -> list[Path]:
    """Remove the staging folders (in `root`, the temporary folder by default) whose process is gone, and return them.

    tune.report keeps the folder until the driver takes the result; a worker killed meanwhile (its driver killed
    with SIGKILL, its node lost) never removes it: one checkpoint each, ~360 MB at SUN's shapes."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*"):
        if (owner := STAGING.match(folder.name)) and not _alive(int(owner[1])):
            shutil.rmtree(folder, ignore_errors=True)  # another user's is not ours to remove
            if not folder.exists():
                removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def train_izf(config: dict, *, split: Split, base: dict, threads: int = 1, checkpoint_every: int = 1,
              completed: frozenset = frozenset()) -> None:
    """Train with the sampled `config` on top of `base` (FitConfig fields); `split` comes from the object store.

    A checkpoint is the full training state (~360 MB at SUN's shapes, docs/benchmarks.md), built only for the
    reports that keep one. A trial in `completed` (the search's record has it as completed) returns at once:
    after a driver was killed, Tune's last snapshot may have it still running, and would run its last steps again.
    """
    sweep_staging()
    if tune.get_context().get_trial_id() in completed:
        return
    device = worker_device(threads)
    resume = None
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            resume = torch.load(Path(folder) / STATE_FILE, map_location=device, weights_only=True)
        resume["config"]["device"] = device
    reports = len(resume["history"]) if resume else 0  # the trial's reports so far, counted from its start
    memory = {**dataset_memory(split), "node_id": ray.get_runtime_context().get_node_id()}

    def report(metrics: dict, state: Callable[[], dict]) -> None:
        nonlocal reports
        reports += 1
        if reports % checkpoint_every:
            tune.report({**metrics, **memory})
            return
        with staging_folder() as folder:
            torch.save(state(), Path(folder) / STATE_FILE)
            tune.report({**metrics, **memory}, checkpoint=tune.Checkpoint.from_directory(folder))

    fit_config = izf.FitConfig.from_dict({**base, **fit_fields(config), "device": device})
    izf.fit(split, fit_config, report=report, resume=resume)


def izf_trial(prepared: Prepared, completed: frozenset) -> Callable:
    """What Tune runs for each trial of a search: train_izf with the search's validation split (put once in Ray's
    object store, shared by the trials of a node), its base config, threads and checkpoints."""
    options = prepared.options
    return tune.with_parameters(train_izf, split=prepared.val_split, base=prepared.base,
                                threads=options.threads_per_trial, checkpoint_every=options.checkpoint_every,
                                completed=completed)
