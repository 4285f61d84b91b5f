"""The end of a search: the trial chosen on validation H, retrained on trainval and measured once on test."""

import hashlib
import json
import statistics

from izf.data import Split
from izf.training import FitConfig
from search.options import SearchOptions
from search.sampling import METRIC, MODE
from search.space import fit_fields

__all__ = ["choose", "measure_on_test", "final_key", "SHOWN"]

SHOWN = ["best_h", "softmax_u", "softmax_s", "softmax_h", "nbc_h", "step", "train_seconds"]


def choose(grid: "ResultGrid", base: dict) -> dict:  # noqa: F821
    """The trial with the best validation H, its config (trained for the steps where its H peaked) and its
    validation metrics there."""
    best = grid.get_best_result(metric=METRIC, mode=MODE, scope="all")
    history = best.metrics_dataframe
    best_row = history.loc[history["h"].idxmax()]
    config = {**base, **fit_fields(best.config)}
    config["steps"], config["eval_every"] = int(best_row["step"]), 0
    return {"chosen_trial": best.metrics["trial_id"], "best_config": config,
            "best_val": {k: float(best_row[k]) for k in SHOWN if k in best_row}}


def measure_on_test(options: SearchOptions, config: dict, test_split: Split) -> tuple[dict, bytes]:
    """Retrain `config` with --final-seeds seeds on the test protocol (trainval), each on Ray with a trial's
    resources; return the test metrics' mean and spread and the first seed's model (izf.io format)."""
    import ray

    fit_remotely = ray.remote(num_cpus=options.cpus_per_trial, num_gpus=options.gpus_per_trial)(_fit)
    split_ref = ray.put(test_split)
    refs = [fit_remotely.remote(split_ref, {**config, "seed": options.seed + i}, options.threads_per_trial)
            for i in range(options.final_seeds)]
    try:
        runs = ray.get(refs)
    except KeyboardInterrupt:  # Ctrl-C: stop the retraining too
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    keys = runs[0][0].keys()
    measured = {"test": {k: statistics.fmean(r[k] for r, _ in runs) for k in keys},
                "test_spread": {k: statistics.pstdev([r[k] for r, _ in runs]) for k in keys}}
    return measured, runs[0][1]


def final_key(chosen_trial: str, config: dict, final_seeds: int) -> str:
    """What a final result is, as a short key: the chosen trial, its config and the number of seeds."""
    text = json.dumps({"trial": chosen_trial, "config": config, "final_seeds": final_seeds}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fit(split: Split, config: dict, threads: int) -> tuple[dict, bytes]:
    import io

    from izf.io import save_model
    from izf.training import fit
    from search.trainable import worker_device

    result = fit(split, FitConfig.from_dict({**config, "device": worker_device(threads)}))
    result.model.cpu()
    result.classifier.linear.cpu()
    buffer = io.BytesIO()
    save_model(buffer, result, split)
    return dict(result.metrics), buffer.getvalue()
