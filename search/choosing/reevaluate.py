"""Noise-aware choice (--reevaluate-top K --reevaluate-seeds N): the K best trials' configs retrained with N
further seeds on the validation protocol, and the config with the best mean validation H chosen.

The highest of many noisy validation H values is biased upward (the winner's curse), and the trial behind it
is often not the best config. Each retraining runs as a Ray task with a trial's resources, all at once as far
as the cluster allows, trained to the step where its trial's H peaked (as the final fit is) and measured at
the end; each is a trial of the search's events (`role` "reevaluation", `reevaluation_of` its trial), so
tracking gives it a child run of its own. Finished retrainings are kept in the record: a resumed search
runs only the missing ones.
"""


from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING

from izf.data import Split
from izf.errors import error_line
from izf.metrics import spread
from record.search import SearchRecord
from search.choosing.final import at_best_report, fit_on_ray
from search.options import SearchOptions

if TYPE_CHECKING:
    from ray.tune import ResultGrid


__all__ = ["top_trials", "reevaluate", "noise_aware_choice"]


def top_trials(grid: ResultGrid, base: dict, k: int) -> list[dict]:
    """The k trials with the best validation H (each at its best report, `at_best_report`), best first: the
    order `choose` uses."""
    rows = [at_best_report(result, base) for result in grid if result.error is None
            and result.metrics_dataframe is not None and "h" in result.metrics_dataframe
            and not result.metrics_dataframe["h"].isna().all()]
    return sorted(rows, key=lambda row: -row["val"]["best_h"])[:k]


def reevaluate(options: SearchOptions, top: list[dict], split: Split, record: SearchRecord,
               emit: Callable) -> dict[str, dict]:
    """Retrain each of `top` (`top_trials`) with seeds seed+1 .. seed+N on the validation `split`; return, per
    trial id, its own validation H, its new seeds' values, their mean and spread."""
    done = record.data.setdefault("reevaluations", {})
    jobs = []
    for trial in top:
        config = trial["config"]
        for seed in range(options.seed + 1, options.seed + 1 + options.reevaluate_seeds):
            key = f"{trial['trial_id']}-seed{seed}"
            if key not in done:
                jobs.append((key, trial["trial_id"], {**config, "seed": seed}))
    sampled = {trial["trial_id"]: trial["sampled"] for trial in top}
    started = {key: {"trial_id": key, "name": f"reevaluate {of} seed {c['seed']}", "params": c, "sampled": sampled[of],
                     "device": "cuda" if options.gpus_per_trial else "cpu", "role": "reevaluation",
                     "reevaluation_of": of} for key, of, c in jobs}
    for key in started:
        emit("trial_started", trial=started[key])

    def finished(index: int, metrics: dict) -> None:
        key, of, config = jobs[index]
        done[key] = {"of": of, "seed": config["seed"], "step": config["steps"], **metrics}
        record.save()
        emit("trial_reported", trial_id=key, report={"step": config["steps"], "best_h": metrics["h"], **metrics})
        emit("trial_ended", trial_id=key, outcome="completed")

    def failed(index: int, error: Exception) -> None:  # a seed that diverges counts as H 0 for its config
        key, of, config = jobs[index]
        done[key] = {"of": of, "seed": config["seed"], "step": config["steps"], "h": 0.0,
                     "error": error_line(str(error))}
        record.save()
        emit("trial_ended", trial_id=key, outcome="failed")

    try:
        fit_on_ray(options, split, [config for _, _, config in jobs], on_result=finished, on_error=failed)
    except BaseException:  # Ctrl-C, or Ray gone: the retrainings it cut end "interrupted" (a resume reruns them)
        for key in started:
            if key not in done:
                emit("trial_ended", trial_id=key, outcome="interrupted")
        raise
    out = {}
    for trial in top:
        values = [r["h"] for r in done.values() if r["of"] == trial["trial_id"]]
        out[trial["trial_id"]] = {"own_h": trial["val"]["best_h"], "h": values, "mean_h": statistics.fmean(values),
                                  "std_h": spread(values), "n_seeds": len(values)}
    return out


def noise_aware_choice(top: list[dict], reevaluated: dict[str, dict]) -> dict:
    """The trial of `top` with the best mean validation H over its new seeds (ties: the better single H),
    shaped as `search.choosing.final.choose` returns it, plus what the single-seed choice would have been."""
    best = max(top, key=lambda t: (reevaluated[t["trial_id"]]["mean_h"], t["val"]["best_h"]))
    again = reevaluated[best["trial_id"]]
    return {"chosen_trial": best["trial_id"], "best_config": best["config"],
            "best_val": {**best["val"], "mean_h": again["mean_h"], "std_h": again["std_h"],
                         "n_seeds": again["n_seeds"]},
            "single_seed_choice": top[0]["trial_id"], "reevaluation": reevaluated}
