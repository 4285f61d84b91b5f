"""The paper's toy figure: real seen samples and generated seen/unseen samples, without and with the MMD term."""

from dataclasses import replace
from pathlib import Path

import torch

from izf.data.split import Split
from izf.training import FitConfig, fit

__all__ = ["plot_toy"]


def plot_toy(path: Path | str, split: Split, config: FitConfig, *, samples: int = 300) -> dict[float, torch.Tensor]:
    """Train the toy twice (mmd_weight 0 and config.mmd_weight, or 0.03 if that is 0), draw both side by side.

    Returns the generated unseen samples of each run, keyed by mmd_weight.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # matplotlib arrives with mlflow; the core library does not need it otherwise
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from e
    weights = (0.0, config.mmd_weight or 0.03)
    figure, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    generated = {}
    g = torch.Generator().manual_seed(config.seed)
    for ax, weight in zip(axes, weights, strict=True):
        result = fit(split, replace(config, mmd_weight=weight, eval_every=0))
        ax.scatter(*split.train_x[:, :2].T, s=3, c="lightgray", label="real seen")
        with torch.no_grad():
            for label in range(split.n_classes):
                x = result.model.generate(torch.full((samples,), label), generator=g)[:, :2]
                unseen = label >= split.n_seen
                ax.scatter(*x.T, s=4, marker="x" if unseen else ".",
                           label=f"generated {'unseen' if unseen else 'seen'} {split.class_names[label]}")
                if unseen:
                    generated[weight] = x
        h = result.metrics["softmax_h"]
        ax.set_title(f"mmd_weight = {weight:g}   (softmax GZSL H = {100 * h:.1f})")
    axes[0].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return generated
