"""The search space. Edit `space` to change what a search explores: one edit per dimension.

`space(trial, dims)` is an Optuna define-by-run function that only asks the trial for values. A
parameter named after a FitConfig field is that field: `trial.suggest_float("weight_decay", 1e-6,
1e-2, log=True)` is all it takes to search weight decay; it is then sampled, logged to MLflow and
trained with. Other parameters (switches such as `use_mmd`, scales such as `hidden_scale`) must be
categorical, and the dict the function returns gives the FitConfig fields they decide. Ray's
OptunaSearch adds that dict to each trial's config, so a trial's config holds every searched
FitConfig value it trains with.

The dataset's base config is evaluated first, as the point of the space nearest to it (`base_point`).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields

import optuna

from izf.errors import ConfigError
from izf.training import FitConfig
from record.study import quiet_optuna
from search.preparing.answering import AnsweringTrial

__all__ = ["space", "Dims", "fit_fields", "base_point", "bind", "searched_fields"]

FIELDS = frozenset(f.name for f in fields(FitConfig))


@dataclass(frozen=True)
class Dims:
    """The shapes the space may depend on: feature dim D and attribute dim A."""

    features: int
    attributes: int


def space(trial: optuna.Trial, dims: Dims) -> dict:
    """The search space: asks `trial` for each parameter; returns the FitConfig fields its switches decide."""
    trial.suggest_int("depth", 2, 10)
    hidden_scale = trial.suggest_categorical("hidden_scale", [0.25, 0.5, 1.0])  # subnet width / feature dim
    use_mmd = trial.suggest_categorical("use_mmd", [True, False])  # False: mmd_weight = 0 (the ablation)
    mmd_weight = trial.suggest_float("mmd_weight", 1e-3, 1.0, log=True) if use_mmd else 0.0
    if use_mmd:  # the author's fixed IMQ widths, or scaled to the features (docs/benchmarks.md)
        trial.suggest_categorical("mmd_scale", ["fixed", "median"])
    trial.suggest_int("latent_split", max(1, dims.attributes // 2), min(2 * dims.attributes, dims.features - 1),
                      log=True)  # d_s, around the attribute dim
    trial.suggest_float("lr", 1e-4, 3e-3, log=True)
    trial.suggest_float("semantic_weight", 1.0, 30.0, log=True)
    use_centralizing = trial.suggest_categorical("use_centralizing", [True, False])
    centralizing_weight = trial.suggest_float("centralizing_weight", 0.1, 10.0, log=True) if use_centralizing else 0.0
    if use_centralizing:  # the batch's class means (the author's) or the training part's, K sampled classes a step
        if trial.suggest_categorical("centres", ["batch", "training"]) == "training":
            trial.suggest_categorical("prototypes_per_step", [0, 64])
    # Down to 0.05: on SUN-structured data the softmax needed a cold generation (docs/benchmarks.md, "SUN's class
    # structure": softmax val H 0.00 at 1.0, 0.06 at 0.5, 0.88 at 0.2, 0.95 at 0.05; 3 seeds).
    trial.suggest_float("temperature", 0.05, 1.0, log=True)
    trial.suggest_categorical("batch_size", [128, 256, 512])
    trial.suggest_int("synthetic_per_class", 50, 800, log=True)
    return {"hidden": max(8, round(hidden_scale * dims.features)), "mmd_weight": mmd_weight,
            "centralizing_weight": centralizing_weight}


def bind(space_fn: Callable, dims: Dims) -> Callable[[optuna.Trial], dict | None]:
    """The one-argument function Ray's OptunaSearch calls."""
    return functools.partial(space_fn, dims=dims)


def fit_fields(config: dict) -> dict:
    """The FitConfig fields of a trial's config (its sampled values and what the space returned)."""
    return {k: v for k, v in config.items() if k in FIELDS}


def searched_fields(space_fn: Callable, dims: Dims) -> set[str]:
    """The FitConfig fields the space sets, and a ConfigError for a returned key that is not one."""
    with quiet_optuna():  # not "A new study created in memory"
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    found: set[str] = set()
    for _ in range(16):  # enough random points to pass both sides of every switch
        trial = study.ask()
        returned = space_fn(trial, dims) or {}
        unknown = sorted(set(returned) - FIELDS)
        if unknown:
            raise ConfigError(f"the search space returns {unknown}, which are not FitConfig fields; "
                              f"return only fields ({', '.join(sorted(FIELDS))})")
        found |= set(returned) | (set(trial.params) & FIELDS)
        study.tell(trial, 0.0)
    return found


def base_point(space_fn: Callable, dims: Dims, base: dict, *, fixed: dict | None = None) -> dict:
    """The point of the space that trains the base config: fields take their base values (fitted into their
    ranges), and each categorical that is not a field (a switch, a scale) the choice whose returned fields are
    nearest the base. `fixed` parameters (--fix) keep their values."""
    fixed = fixed or {}
    base = {**base, "latent_split": base.get("latent_split") or dims.attributes,
            **{k: v for k, v in fixed.items() if k in FIELDS}}
    choices = {k: v for k, v in fixed.items() if k not in FIELDS}
    while True:
        trial = _answered(space_fn, dims, base, choices)[0]
        undecided = [name for name in trial.open if name not in FIELDS and name not in choices]
        if not undecided:
            return trial.params
        name = undecided[0]
        choices[name] = min(trial.open[name], key=lambda c: _distance(space_fn, dims, base, {**choices, name: c}))


def _answered(space_fn: Callable, dims: Dims, base: dict, choices: dict) -> tuple[AnsweringTrial, dict]:
    """The space asked by a trial answering from the base config and these choices, and what it returned."""
    trial = AnsweringTrial({**base, **choices})
    returned = space_fn(trial, dims) or {}
    numeric = sorted(set(trial.guessed) - FIELDS)
    if numeric:
        raise ConfigError(f"search space parameter {numeric[0]!r} is numeric but not a FitConfig field; the base "
                          "config cannot be placed in the space (make it categorical, or name it after "
                          "the field it sets)")
    return trial, returned


def _distance(space_fn: Callable, dims: Dims, base: dict, choices: dict) -> float:
    """How far the fields set by the point with these choices are from the base config (0 when equal)."""
    trial, returned = _answered(space_fn, dims, base, choices)
    fields = {**fit_fields(trial.params), **returned}
    total = 0.0
    for key, value in fields.items():
        target = base.get(key)
        if isinstance(value, int | float) and isinstance(target, int | float):
            total += abs(value - target) / max(abs(value), abs(target), 1e-12)
        else:
            total += value != target
    return total
