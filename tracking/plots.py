"""Comparison plots of a search's trials (PNG files for the parent run)."""

from pathlib import Path

import pandas as pd

__all__ = ["plot_trials"]


def plot_trials(trials: pd.DataFrame, folder: Path) -> list[Path]:
    """Validation H per trial with the best so far, and best H against each numeric hyperparameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = trials.dropna(subset=["best_h"]).reset_index(drop=True)
    if done.empty:
        return []
    paths = []
    figure, ax = plt.subplots(figsize=(7, 4))
    ax.plot(done.index, done["best_h"], "o", label="trial")
    ax.plot(done.index, done["best_h"].cummax(), "-", label="best so far")
    ax.set_xlabel("trial (in report order)")
    ax.set_ylabel("validation H")
    ax.legend()
    paths.append(folder / "val_h_over_trials.png")
    figure.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(figure)
    params = [c for c in done.columns if c.startswith("config/") and pd.api.types.is_numeric_dtype(done[c])
              and not pd.api.types.is_bool_dtype(done[c])]
    if params:
        figure, axes = plt.subplots(1, len(params), figsize=(3 * len(params), 3), sharey=True, squeeze=False)
        for ax, column in zip(axes[0], params, strict=True):
            ax.scatter(done[column], done["best_h"], s=12)
            ax.set_xlabel(column.removeprefix("config/"))
        axes[0][0].set_ylabel("validation H")
        paths.append(folder / "slice.png")
        figure.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(figure)
    return paths
