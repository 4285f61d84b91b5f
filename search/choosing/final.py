"""The end of a search: the trial chosen on validation H, retrained on trainval and measured once on test."""


from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from izf.data import Split
from izf.errors import IZFError, error_line
from izf.metrics import over_seeds
from izf.training import FitConfig
from search.options import SearchOptions
from search.preparing.sampling import METRIC, MODE
from search.preparing.space import fit_fields

if TYPE_CHECKING:
    from ray.tune import Result, ResultGrid


__all__ = ["SearchFailed", "nothing_to_choose", "choose", "at_best_report", "measure_on_test", "fit_on_ray",
           "final_key", "SHOWN"]

SHOWN = ["best_h", "softmax_u", "softmax_s", "softmax_h", "nbc_h", "step", "train_seconds"]


class SearchFailed(IZFError):
    """The search ran but produced nothing to choose from (every trial failed, or none reported in time)."""


def nothing_to_choose(options: SearchOptions, grid: ResultGrid, base: dict) -> SearchFailed:
    """Why a search whose trials reported no validation H has nothing to choose from, and what to do."""
    if grid.errors and len(grid.errors) == len(grid):
        first = error_line(str(grid.errors[0]))
        retries = f"{options.max_failures} {'retry' if options.max_failures == 1 else 'retries'}"
        if len(grid) == 1:
            return SearchFailed(f"its only trial failed (after {retries}); its error is in "
                                f"{options.experiment_path}/*/error.txt: {first}")
        return SearchFailed(f"all {len(grid)} trials failed (each after {retries}); their "
                            f"errors are in {options.experiment_path}/*/error.txt; the first: {first}")
    budget = f" within --time-budget {options.time_budget_s:g} s" if options.time_budget_s else ""
    return SearchFailed(f"no trial reported a validation H{budget} (a trial's first report comes after "
                        f"{base['eval_every']} steps); raise --time-budget or lower --eval-every")


def choose(grid: ResultGrid, base: dict) -> dict:
    """The trial with the best validation H, its config (trained for the steps where its H peaked) and its
    validation metrics there."""
    best = at_best_report(grid.get_best_result(metric=METRIC, mode=MODE, scope="all"), base)
    return {"chosen_trial": best["trial_id"], "best_config": best["config"], "best_val": best["val"]}


def at_best_report(result: Result, base: dict) -> dict:
    """A trial at its best validation H: its id, sampled values, that report's step and metrics (SHOWN), and the
    config that retrains it to that step (evaluated once, at the end)."""
    history = result.metrics_dataframe
    row = history.loc[history["h"].idxmax()]
    step = int(row["step"])
    return {"trial_id": result.metrics["trial_id"], "sampled": dict(result.config), "step": step,
            "val": {k: float(row[k]) for k in SHOWN if k in row},
            "config": {**base, **fit_fields(result.config), "steps": step, "eval_every": 0}}


def measure_on_test(options: SearchOptions, config: dict, test_split: Split) -> tuple[dict, bytes]:
    """Retrain `config` with --final-seeds seeds on the test protocol (trainval), each on Ray with a trial's
    resources; return the test metrics' mean and spread, each seed's own (`test_seeds`), and the first seed's
    model (izf.io format)."""
    configs = [{**config, "seed": options.seed + i} for i in range(options.final_seeds)]
    runs = fit_on_ray(options, test_split, configs, keep_models=True)
    test, spread = over_seeds([metrics for metrics, _ in runs])
    return {"test": test, "test_spread": spread, "test_seeds": [metrics for metrics, _ in runs]}, runs[0][1]


def fit_on_ray(options: SearchOptions, split: Split, configs: list[dict], *,
               on_result: Callable[[int, dict], None] | None = None,
               on_error: Callable[[int, Exception], None] | None = None,
               keep_models: bool = False) -> list[tuple[dict, bytes | None] | None]:
    """Train each FitConfig dict on `split` as a Ray task with a trial's resources, all submitted at once; return
    each one's final metrics (and saved model, with keep_models) in the order of `configs`. `on_result(index,
    metrics)` is called as each finishes; a fit that raises is handed to `on_error(index, error)` (its entry
    stays None), or raises without one. Ctrl-C cancels the ones still running."""
    import ray

    fit_remotely = ray.remote(num_cpus=options.cpus_per_trial, num_gpus=options.gpus_per_trial)(_fit)
    split_ref = ray.put(split)
    refs = [fit_remotely.remote(split_ref, config, options.threads_per_trial, keep_models) for config in configs]
    index = {ref: i for i, ref in enumerate(refs)}
    out: list = [None] * len(refs)
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = index[ready[0]]
            try:
                out[i] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                if on_error is None:
                    raise
                on_error(i, e)
                continue
            if on_result is not None:
                on_result(i, out[i][0])
    except KeyboardInterrupt:  # Ctrl-C: stop the retraining too
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return out


def final_key(chosen_trial: str, config: dict, final_seeds: int) -> str:
    """What a final result is, as a short key: the chosen trial, its config and the number of seeds."""
    text = json.dumps({"trial": chosen_trial, "config": config, "final_seeds": final_seeds}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fit(split: Split, config: dict, threads: int, keep_model: bool) -> tuple[dict, bytes | None]:
    from izf.io import model_bytes
    from izf.training import fit
    from search.running.worker import worker_device

    result = fit(split, FitConfig.from_dict({**config, "device": worker_device(threads)}))
    return dict(result.metrics), model_bytes(result, split) if keep_model else None
