"""Print what a search found: top trials, the chosen config, its test U/S/H."""


from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from search.choosing.result import SearchResult
from search.preparing.space import FIELDS
from search.running.console import plural

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["print_summary", "top_trials", "COLLAPSED_TEMPERATURE"]

PARAMS_SHOWN = 12
COLLAPSED_TEMPERATURE = 0.1  # at or below it, the generated unseen features nearly collapse onto their prototype
WIDTH = 110


def top_trials(result: SearchResult, n: int = 5) -> pd.DataFrame:
    """The n best trials: their validation H, U, S, last step and the FitConfig values the trials varied."""
    df = result.trials.sort_values("best_h", ascending=False).head(n)
    varied = [c for c in df.columns if c.startswith("config/") and c.removeprefix("config/") in FIELDS
              and result.trials[c].astype(str).nunique() > 1][:PARAMS_SHOWN]
    metrics = [c for c in ("best_h", "softmax_u", "softmax_s", "step") if c in df.columns]
    out = df[["trial_id", *metrics, *varied]].copy()
    out["trial_id"] = [f"{t}*" if t in result.cut_by_time_budget else t for t in out["trial_id"]]
    out.columns = [c.removeprefix("config/") for c in out.columns]
    return out.rename(columns={"best_h": "val_H", "softmax_u": "U", "softmax_s": "S"})


def print_summary(result: SearchResult) -> None:
    """Print what a search found: its trials (the top ones), the choice, its validation and test metrics."""
    import pandas as pd

    minutes, seconds = divmod(int(result.search_seconds), 60)
    ids = result.cut_by_time_budget
    cut = f", {len(ids)} cut by the time budget: {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''}" if ids else ""
    print(f"\n=== search {result.search_id}: {plural(result.n_trials, 'trial')} ({result.n_errors} failed{cut}) in "
          f"{minutes} min {seconds:02d} s ===\n{result.experiment_path}")
    with pd.option_context("display.max_columns", 30, "display.precision", 3):
        print("top trials by validation H" + (" (*: cut by the time budget)" if cut else "") + ":")
        print(top_trials(result).to_string(index=False, line_width=WIDTH))
        if result.pareto is not None:
            print("\nPareto front (validation H vs training seconds):")
            print(result.pareto[["trial_id", "best_h", "train_seconds"]].to_string(index=False))
    if result.reevaluation:
        print("re-evaluated on validation classes with new seeds (mean ± std of H):")
        for trial_id, again in result.reevaluation.items():
            marks = [m for m, t in (("chosen", result.chosen_trial), ("single-seed choice", result.single_seed_choice))
                     if t == trial_id]
            print(f"  {trial_id}  {100 * again['mean_h']:.2f} ± {100 * again['std_h']:.2f} over {again['n_seeds']} "
                  f"seeds (its own: {100 * again['own_h']:.2f})"
                  + (f"  <- {', '.join(marks)}" if marks else ""))
    config = " ".join(f"{k}={v}" for k, v in result.best_config.items())
    print(textwrap.fill(config, WIDTH, initial_indent=f"chosen: trial {result.chosen_trial}: ",
                        subsequent_indent="    "))
    val = result.best_val
    cells = "  ".join(f"{k.removeprefix('softmax_').upper()} {100 * val[k]:.2f}" for k in ("softmax_u", "softmax_s")
                      if k in val)
    again = f"; {100 * val['mean_h']:.2f} ± {100 * val['std_h']:.2f} over {val['n_seeds']} new seeds" \
        if "mean_h" in val else ""
    print(f"validation (chosen trial): H {100 * val['best_h']:.2f} at step {int(val.get('step', 0))}  ({cells}){again}")
    temperature = result.best_config.get("temperature")
    if temperature is not None and temperature <= COLLAPSED_TEMPERATURE:
        print(f"note: the chosen temperature {temperature:.3g} draws each unseen class's generated features from a "
              f"latent spread of {temperature:.2g} (the flow's own: 1), nearly one point per class: a prototype "
              "classifier more than IZF's generative one (docs/protocol.md, \"Generation temperature\")")
    seeds = "" if result.final_seeds < 2 else f" (mean ± std over {result.final_seeds} seeds)"
    print(f"test, measured once{seeds}:")
    for name in ("softmax", "nbc"):
        cells = [f"{k.upper() if k != 'zsl_t1' else 'T1'} {100 * result.test[f'{name}_{k}']:.2f}"
                 + (f" ± {100 * result.test_spread[f'{name}_{k}']:.2f}" if seeds else "")
                 for k in ("u", "s", "h", "zsl_t1")]
        print(f"  {name:<8} " + "  ".join(cells))

