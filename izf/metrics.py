"""Zero-shot metrics: per-class mean top-1 accuracy, ZSL T1, and GZSL U, S and their harmonic mean H."""

import math
import statistics

import torch
from torch import Tensor

__all__ = ["per_class_accuracy", "harmonic_mean", "gzsl_scores", "over_seeds", "spread", "paired_difference"]


def per_class_accuracy(predicted: Tensor, true: Tensor) -> float:
    """Mean over the classes present in `true` of the fraction of their samples predicted right.

    Example:
        >>> per_class_accuracy(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]))
        0.75
    """
    if true.numel() == 0:
        raise ValueError("per_class_accuracy needs at least one sample")
    n = int(true.max()) + 1
    hits = torch.bincount(true, weights=(predicted == true).double(), minlength=n)
    counts = torch.bincount(true, minlength=n).double()
    present = counts > 0
    return float((hits[present] / counts[present]).mean())


def harmonic_mean(u: float, s: float) -> float:
    """H = 2us / (u + s), 0 when both are 0."""
    return 2 * u * s / (u + s) if u + s > 0 else 0.0


def gzsl_scores(seen_pred: Tensor, seen_true: Tensor, unseen_pred: Tensor, unseen_true: Tensor) -> dict[str, float]:
    """GZSL U (unseen test images), S (seen test images) and H, predictions over all classes."""
    u, s = per_class_accuracy(unseen_pred, unseen_true), per_class_accuracy(seen_pred, seen_true)
    return {"u": u, "s": s, "h": harmonic_mean(u, s)}


def spread(values: list[float]) -> float:
    """The sample standard deviation (n - 1 in the denominator), 0 for a single value: the one spread this project
    reports over seeds, in results and in benchmarks alike.

    Example:
        >>> round(spread([0.5, 0.7]), 4), spread([0.5])
        (0.1414, 0.0)
    """
    return statistics.stdev(values) if len(values) > 1 else 0.0


def paired_difference(a: list[float], b: list[float]) -> tuple[float, float]:
    """The mean of a[i] - b[i] over pairs measured alike (the same seed) and its standard error.

    Example:
        >>> [round(v, 4) for v in paired_difference([0.6, 0.7, 0.9], [0.5, 0.7, 0.6])]
        [0.1333, 0.0882]
    """
    differences = [x - y for x, y in zip(a, b, strict=True)]
    return statistics.fmean(differences), spread(differences) / math.sqrt(len(differences))


def over_seeds(runs: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """The mean and the spread (sample standard deviation) of each metric over runs that differ only in seed.

    Example:
        >>> mean, spread_ = over_seeds([{"h": 0.5}, {"h": 0.7}])
        >>> round(mean["h"], 4), round(spread_["h"], 4)
        (0.6, 0.1414)
    """
    return ({k: statistics.fmean(r[k] for r in runs) for k in runs[0]},
            {k: spread([r[k] for r in runs]) for k in runs[0]})
