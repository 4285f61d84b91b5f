"""A champion challenge's fits as Ray tasks: configs retrained on a validation split, all at once."""

from collections.abc import Callable

from izf.data import load_benchmark, make_split
from izf.presets import feature_scaling
from search.choosing.final import fit_on_ray
from search.options import SearchOptions
from search.preparing.cluster import start_ray

__all__ = ["ray_retrainer"]


def ray_retrainer(options: SearchOptions) -> Callable[[list[dict], int], list[float]]:
    """`retrain(configs, split_seed)` for tracking.champion: each FitConfig dict trained on the validation
    protocol of split `split_seed` of this search's data, each a Ray task with a trial's resources (in
    parallel as far as the cluster allows); a fit that raises (diverges) counts as H 0, as in re-evaluation.
    Ctrl-C cancels the fits still running."""

    def retrain(configs: list[dict], split_seed: int) -> list[float]:
        print(f"champion challenge: the new model's config and the champion's, {len(configs) // 2} fresh seeds "
              f"each ({len(configs)} fits on validation classes, split seed {split_seed})", flush=True)
        start_ray(options.address, verbose=options.verbose)  # a finished search recorded again has none yet
        bench = load_benchmark(options.dataset, root=options.data_root, seed=options.seed)
        split = make_split(bench, "val", features=feature_scaling(options.dataset), seed=split_seed)
        runs = fit_on_ray(options, split, configs, on_error=lambda index, error: None)
        return [0.0 if run is None else run[0]["h"] for run in runs]

    return retrain
