"""Print what a search found: top trials, the chosen config, its test U/S/H."""

from search.tuner import SHOWN, SearchResult

__all__ = ["print_summary", "top_trials"]

PARAMS_SHOWN = 10


def top_trials(result: SearchResult, n: int = 5) -> "pd.DataFrame":  # noqa: F821
    df = result.trials.sort_values("best_h", ascending=False).head(n)
    params = [c for c in df.columns if c.startswith("config/")][:PARAMS_SHOWN]
    metrics = [c for c in SHOWN if c in df.columns]
    out = df[["trial_id", *params, *metrics]].copy()
    out.columns = [c.removeprefix("config/") for c in out.columns]
    return out


def print_summary(result: SearchResult) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 4):
        print(f"\n=== {result.n_trials} trials ({result.n_errors} errored) in {result.experiment_path} ===")
        print("top trials by best validation H:")
        print(top_trials(result).to_string(index=False))
        if result.pareto is not None:
            print("\nPareto front (validation H vs training seconds):")
            print(result.pareto[["trial_id", "best_h", "train_seconds"]].to_string(index=False))
    print("\nchosen config (FitConfig):")
    for k, v in result.best_config.items():
        print(f"  {k} = {v}")
    val = result.best_val
    print(f"\nvalidation (chosen trial): H {100 * val['best_h']:.2f}  at step {int(val.get('step', 0))}")
    seeds = "" if not any(result.test_spread.values()) else " (mean ± std over final seeds)"
    print(f"test, measured once{seeds}:")
    for name in ("softmax", "nbc"):
        cells = [f"{k.upper() if k != 'zsl_t1' else 'T1'} {100 * result.test[f'{name}_{k}']:.2f}"
                 + (f" ± {100 * result.test_spread[f'{name}_{k}']:.2f}" if seeds else "")
                 for k in ("u", "s", "h", "zsl_t1")]
        print(f"  {name:<8} " + "  ".join(cells))
