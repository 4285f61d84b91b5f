"""The Tune function trainable: one IZF training run that reports and checkpoints at every evaluation."""

import shutil
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

import izf
from izf.data import Split
from search.space import fit_fields

__all__ = ["train_izf", "worker_device", "dataset_memory", "STATE_FILE"]

STATE_FILE = "state.pt"


def dataset_memory(split: Split) -> dict[str, float]:
    """Size of the split's arrays, and 1.0 if all of them lie in shared memory (Ray's object store).

    A trial that copied the split would hold its arrays in private (heap) memory instead; several
    trials on one node then hold one copy between them.
    """
    arrays = [split.train_x, split.train_y, split.seen_x, split.seen_y, split.unseen_x, split.unseen_y]
    return {"dataset_mb": sum(a.nbytes for a in arrays) / 2**20,
            "dataset_shared": float(all(_in_shared_mapping(a) for a in arrays))}


def _in_shared_mapping(a: "np.ndarray") -> bool:  # noqa: F821
    """Whether the array's memory lies in a MAP_SHARED mapping (its permissions end in 's')."""
    address = a.__array_interface__["data"][0]
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                span, perms = line.split()[:2]
                start, end = (int(x, 16) for x in span.split("-"))
                if start <= address < end:
                    return perms.endswith("s")
    except OSError:
        pass
    return False


def worker_device(threads: int) -> str:
    """Give this Ray worker's torch `threads` threads; return the device Ray gave it. A worker given no GPU
    still sees every GPU on its node, so ask Ray, not CUDA."""
    torch.set_num_threads(threads)
    return "cuda" if ray.get_gpu_ids() else "cpu"


def train_izf(config: dict, *, split: Split, base: dict, threads: int = 1, checkpoint_every: int = 1,
              completed: frozenset = frozenset()) -> None:
    """Train with the sampled `config` on top of `base` (FitConfig fields); `split` comes from the object store.

    Every `checkpoint_every`-th report carries a checkpoint (the full training state; ~360 MB at SUN's
    shapes with FitConfig's defaults, docs/benchmarks.md); a retried trial resumes from the last one.
    A trial in `completed` (the search's record has it as completed) returns at once: after a driver was
    killed, Tune's last snapshot may have it still running, and would run its last steps again.
    """
    if tune.get_context().get_trial_id() in completed:
        return
    device = worker_device(threads)
    options = fit_fields(config)  # the trial's sampled FitConfig fields and those the space derived
    fit_config = izf.FitConfig.from_dict({**base, **options, "device": device})
    resume = None
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            resume = torch.load(Path(folder) / STATE_FILE, map_location=device, weights_only=True)
        resume["config"]["device"] = device
    pending: list[str | None] = []
    memory = {**dataset_memory(split), "node_id": ray.get_runtime_context().get_node_id()}

    def save(state: dict) -> None:
        if len(state["history"]) % checkpoint_every:  # the n-th report of the trial, counted from its start
            pending.append(None)
            return
        folder = tempfile.mkdtemp(prefix="izf-ckpt-")
        torch.save(state, Path(folder) / STATE_FILE)
        pending.append(folder)

    def report(metrics: dict) -> None:
        folder = pending.pop()
        try:
            tune.report({**metrics, **memory},
                        checkpoint=None if folder is None else tune.Checkpoint.from_directory(folder))
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    izf.fit(split, fit_config, report=report, checkpoint=save, resume=resume)
