"""What a Ray worker that trains IZF knows of itself: the device Ray gave it, its threads, where its split lies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ray
import torch

from izf.data import Split

if TYPE_CHECKING:
    import numpy as np

__all__ = ["worker_device", "dataset_memory"]


def dataset_memory(split: Split) -> dict[str, float]:
    """Size of the split's arrays, and 1.0 if all of them lie in shared memory (Ray's object store).

    A trial that copied the split would hold its arrays in private (heap) memory instead; several
    trials on one node then hold one copy between them.
    """
    arrays = [split.train_x, split.train_y, split.seen_x, split.seen_y, split.unseen_x, split.unseen_y]
    return {"dataset_mb": sum(a.nbytes for a in arrays) / 2**20,
            "dataset_shared": float(all(_in_shared_mapping(a) for a in arrays))}


def _in_shared_mapping(a: np.ndarray) -> bool:
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
