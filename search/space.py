"""The search space. Edit this file to change what a search explores.

`space(trial)` is an Optuna define-by-run function: it only asks the trial for values (no work
here). `to_fit_options` turns one sampled point into FitConfig fields. `default_point` is the
paper-informed starting point that every new search evaluates first.
"""

import optuna

__all__ = ["space", "default_point", "to_fit_options"]


def space(trial: optuna.Trial) -> None:
    trial.suggest_int("depth", 2, 10)
    trial.suggest_categorical("hidden_scale", [0.25, 0.5, 1.0])  # subnet width relative to the feature dim
    if trial.suggest_categorical("use_mmd", [True, False]):  # False reaches mmd_weight = 0 (the ablation)
        trial.suggest_float("mmd_weight", 1e-3, 1.0, log=True)
    trial.suggest_float("latent_split_ratio", 0.5, 2.0, log=True)  # d_s relative to the attribute dim
    trial.suggest_float("lr", 1e-4, 3e-3, log=True)
    trial.suggest_float("semantic_weight", 1.0, 30.0, log=True)
    if trial.suggest_categorical("use_centralizing", [True, False]):
        trial.suggest_float("centralizing_weight", 0.1, 10.0, log=True)
    trial.suggest_float("temperature", 0.5, 1.0)
    trial.suggest_categorical("batch_size", [128, 256, 512])
    trial.suggest_int("synthetic_per_class", 50, 800, log=True)


def default_point(base: dict, feature_dim: int) -> dict:
    """The base FitConfig (paper defaults or the dataset preset) as a point of `space`."""
    point = {
        "depth": base["depth"],
        "hidden_scale": min((0.25, 0.5, 1.0), key=lambda s: abs(s * feature_dim - base["hidden"])),
        "use_mmd": base["mmd_weight"] > 0,
        "latent_split_ratio": 1.0,
        "lr": base["lr"],
        "semantic_weight": base["semantic_weight"],
        "use_centralizing": base["centralizing_weight"] > 0,
        "temperature": base["temperature"],
        "batch_size": base["batch_size"],
        "synthetic_per_class": base["synthetic_per_class"],
    }
    if point["use_mmd"]:
        point["mmd_weight"] = base["mmd_weight"]
    if point["use_centralizing"]:
        point["centralizing_weight"] = base["centralizing_weight"]
    return point


def to_fit_options(params: dict, *, feature_dim: int, attribute_dim: int) -> dict:
    """FitConfig fields from a sampled point; keys the space does not know pass through unchanged."""
    p = dict(params)
    options = {}
    if "hidden_scale" in p:
        options["hidden"] = max(8, round(p.pop("hidden_scale") * feature_dim))
    if "use_mmd" in p:
        options["mmd_weight"] = p.pop("mmd_weight", 0.0) if p.pop("use_mmd") else 0.0
        p.pop("mmd_weight", None)
    if "use_centralizing" in p:
        options["centralizing_weight"] = p.pop("centralizing_weight", 0.0) if p.pop("use_centralizing") else 0.0
        p.pop("centralizing_weight", None)
    if "latent_split_ratio" in p:
        options["latent_split"] = min(max(1, round(p.pop("latent_split_ratio") * attribute_dim)), feature_dim - 1)
    return {**p, **options}
