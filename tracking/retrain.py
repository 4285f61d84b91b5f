"""A registered model's config retrained in this process with izf alone: on the test protocol (reproduce) and on
a validation split (a champion challenge decided by `python -m tracking.promote`)."""


from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from izf.data import Benchmark, load_benchmark, make_split
from izf.errors import DataError
from izf.io import model_bytes
from izf.metrics import over_seeds
from izf.presets import feature_scaling
from izf.training import FitConfig, fit

if TYPE_CHECKING:
    from tracking.champion import Retrain


__all__ = ["load_same_data", "retrain_on_test", "local_retrainer"]


def load_same_data(dataset: str, data_root: str | None, seed: int, checksum: str) -> Benchmark:
    """The dataset as the search loaded it (`seed` seeds the built-in generators), refused when its checksum
    is not the recorded one."""
    bench = load_benchmark(dataset, root=data_root, seed=seed)
    if bench.checksum() != checksum:
        raise DataError(f"the data differ from the search's (checksum {bench.checksum()[:12]}, logged "
                        f"{checksum[:12]}): give the same files (--data-root)")
    return bench


def retrain_on_test(bench: Benchmark, split_seed: int, config: dict, final_seeds: int, threads: int,
                    device: torch.device) -> tuple[dict, dict, list[dict], bytes]:
    """Every final seed retrained on the test protocol as the search did: the test metrics' mean and spread,
    each seed's own, and the first seed's model file (izf.io format)."""
    split = make_split(bench, "test", features=feature_scaling(bench.name), seed=split_seed)
    torch.set_num_threads(threads)
    first, runs, model_file = int(config["seed"]), [], b""
    for i in range(final_seeds):
        result = fit(split, FitConfig.from_dict({**config, "seed": first + i, "device": str(device)}))
        runs.append(dict(result.metrics))
        if i == 0:
            model_file = model_bytes(result, split)
    mean, spread = over_seeds(runs)
    return mean, spread, runs, model_file


def local_retrainer(bench: Benchmark, threads: int, device: torch.device) -> Retrain:
    """tracking.champion's `retrain(configs, split_seed)` with fits one after another in this process (a fit that
    diverges counts as H 0)."""
    from izf.errors import DivergenceError

    def retrain(configs: list[dict], split_seed: int) -> list[float]:
        split = make_split(bench, "val", features=feature_scaling(bench.name), seed=split_seed)
        torch.set_num_threads(threads)
        out = []
        for config in configs:
            try:
                out.append(fit(split, FitConfig.from_dict({**config, "device": str(device)})).metrics["h"])
            except DivergenceError:
                out.append(0.0)
        return out

    return retrain
