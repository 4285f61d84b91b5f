"""Comparison plots of a search's trials (PNG files for the parent run)."""


from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from record.study import quiet_optuna

if TYPE_CHECKING:
    import matplotlib
    import optuna


__all__ = ["plot_trials"]


def plot_trials(trials: pd.DataFrame, folder: Path, *, study: optuna.Study | None = None) -> list[Path]:
    """Validation H per trial with the best so far, best H against each numeric hyperparameter that varied, and
    Optuna's hyperparameter importances and parallel coordinates (from 3 finished trials on).

    `study` is the search's own Optuna study (its real distributions, conditional parameters and all);
    without it (a study that cannot be opened) one is rebuilt from the trials table.
    """
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
    # Only the parameters that varied: one held by --fix (or one trial) would be a column of dots at one x.
    params = [c for c in done.columns if c.startswith("config/") and pd.api.types.is_numeric_dtype(done[c])
              and not pd.api.types.is_bool_dtype(done[c]) and done[c].nunique(dropna=True) > 1]
    if params:
        figure, axes = plt.subplots(1, len(params), figsize=(3 * len(params), 3), sharey=True, squeeze=False)
        for ax, column in zip(axes[0], params, strict=True):
            ax.scatter(done[column], done["best_h"], s=12)
            ax.set_xlabel(column.removeprefix("config/"))
        axes[0][0].set_ylabel("validation H")
        paths.append(folder / "slice.png")
        figure.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(figure)
    study = study if study is not None else trials_as_study(done)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(finished) >= 3 and finished[0].params:
        from optuna.visualization import matplotlib as optuna_plots

        # A multi-objective study's first objective is validation H.
        target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
        # Parameters held by --fix take one value: no importance, an axis for nothing.
        varied = sorted(name for name in {n for t in finished for n in t.params}
                        if len({repr(t.params.get(name)) for t in finished}) > 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            ax = optuna_plots.plot_param_importances(study, target=target, params=varied, target_name="validation H")
            paths.append(_save(ax.figure, folder / "importances.png"))
            ax = optuna_plots.plot_parallel_coordinate(study, target=target, params=varied,
                                                       target_name="validation H")
            ax.figure.set_size_inches(max(8.0, 1.3 * (len(varied) + 1)), 5.0)  # readable at a dozen axes
            paths.append(_save(ax.figure, folder / "parallel_coordinates.png"))
    return paths


def _save(figure: matplotlib.figure.Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def trials_as_study(trials: pd.DataFrame) -> optuna.Study:
    """An in-memory Optuna study of the trials' varying hyperparameters (config/* columns) and best H.

    Built from Ray's results, so it works for any search space, sampler or resumed search. Only the
    hyperparameters set in every trial and taking more than one value count (fANOVA needs both).
    """
    import optuna

    columns = [c for c in trials.columns if c.startswith("config/") and trials[c].notna().all()
               and trials[c].astype(str).nunique() > 1]
    distributions = {c.removeprefix("config/"): _distribution(trials[c]) for c in columns}
    with quiet_optuna():
        study = optuna.create_study(direction="maximize")
    for _, row in trials.iterrows():
        params = {c.removeprefix("config/"): _plain(row[c]) for c in columns}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=row["best_h"]))
    return study


def _distribution(values: pd.Series) -> optuna.distributions.BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return CategoricalDistribution(sorted({_plain(v) for v in values}, key=str))
    low, high = values.min(), values.max()
    log = bool(low > 0 and high / low >= 10)
    if pd.api.types.is_integer_dtype(values):
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
