"""A stand-in for an IZF trial, to measure the search platform at scale: it trains nothing.

Each trial sleeps (no CPU) between reports and reports a learning curve computed from its config: seeded, smooth in
the searched parameters (a peak H that falls off quadratically, on log scales, away from a best point), so that TPE
and ASHA have something to learn. Its reports carry the keys a real trial's carry (read from one real report of
izf.fit), as many of them, with a checkpoint at every --checkpoint-every-th as a real trial, and a trial the record
has as completed returns at once, as train_izf does. Figures measured with it are the platform's (Ray Tune, Optuna,
MLflow, the search's record and console), never IZF's.

It lives in bench/ and the tests, never in the product's CLI. The module imports neither torch nor izf at the top:
Ray pickles the trial by value (`ray.cloudpickle.register_pickle_by_value`), so its workers stay small processes
that import only Ray.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["peak_h", "standin_trial", "standin_measure", "report_keys"]

# The stand-in's best point: where its H peaks, on the scale each parameter is searched on.
BEST = {"depth": 5, "lr": 1e-3, "mmd_weight": 0.05, "semantic_weight": 5.0, "temperature": 0.2,
        "centralizing_weight": 1.0, "synthetic_per_class": 300}
LOG_SCALE = {"lr", "mmd_weight", "semantic_weight", "temperature", "centralizing_weight", "synthetic_per_class"}
STATE = "standin.json"


def peak_h(config: dict) -> float:
    """The H a stand-in trial of this config approaches: 0.6 at BEST, less the further away."""
    loss = 0.0
    for name, best in BEST.items():
        value = config.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if name in LOG_SCALE:
            loss += 0.02 * (math.log10(max(value, 1e-9)) - math.log10(best)) ** 2 if value > 0 else 0.03
        else:
            loss += 0.004 * (value - best) ** 2
    return max(0.05, 0.6 - loss)


def _noise(config: dict, step: int) -> float:
    """A small seeded wobble, the same for the same config and step."""
    digest = hashlib.sha256(json.dumps([sorted((k, str(v)) for k, v in config.items()), step]).encode()).digest()
    return (int.from_bytes(digest[:4], "big") / 2**32 - 0.5) * 0.01


def _gather(folder: Path, trial_id: str, count: int, timeout: float = 240.0) -> None:
    """Wait until `count` trials have started (each leaves a file named by its id in `folder`), or `timeout` seconds:
    the first `count` trials then run at once. Later trials find the count reached and go on."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / trial_id).touch()
    deadline = time.monotonic() + timeout
    while sum(1 for _ in folder.iterdir()) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def _trial(config: dict, *, steps: int, eval_every: int, seconds: float, keys: list[str], checkpoint_every: int,
           completed: frozenset, gather: tuple[str, int] | None) -> None:
    """The Tune function trainable of the stand-in (see the module's docstring)."""
    import ray
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    if trial_id in completed:
        return
    if gather is not None:
        _gather(Path(gather[0]), trial_id, gather[1])
    start, best, best_step = 0, -1.0, 0
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            state = json.loads((Path(folder) / STATE).read_text())
        start, best, best_step = state["step"], state["best"], state["best_step"]
    peak = peak_h(config)
    reports = max(1, steps // eval_every)
    node = ray.get_runtime_context().get_node_id()
    for step in range(start + eval_every, steps + 1, eval_every):
        time.sleep(seconds / reports)
        h = min(1.0, max(0.0, peak * (1 - math.exp(-3 * step / steps)) + _noise(config, step)))
        if h > best:
            best, best_step = h, step
        row = {**dict.fromkeys(keys, 0.0), "step": step, "h": h, "best_h": best, "best_step": best_step,
               "softmax_h": h, "softmax_u": h, "softmax_s": h, "train_seconds": seconds * step / steps,
               "dataset_mb": 0.0, "dataset_shared": 1.0, "node_id": node}
        if (step // eval_every) % checkpoint_every:
            tune.report(row)
            continue
        with tempfile.TemporaryDirectory(prefix="standin-ckpt-") as folder:
            (Path(folder) / STATE).write_text(json.dumps({"step": step, "best": best, "best_step": best_step}))
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(folder))


def report_keys() -> list[str]:
    """The keys of a real trial's report: izf.fit's row for one evaluation of a tiny model."""
    from izf import FitConfig, fit, load_dataset

    keys: set[str] = set()
    split = load_dataset("synthetic", protocol="val")
    fit(split, FitConfig(depth=2, hidden=8, steps=1, eval_every=1, synthetic_per_class=5),
        report=lambda row, state: keys.update(row))
    return sorted(keys)


def standin_trial(seconds: float, keys: list[str], gather: tuple[str, int] | None = None) -> Callable:
    """For `search.running.driver.run(trial=...)`: each trial sleeps `seconds` in all over its reports.

    With `gather=(folder, n)` the first n trials wait for one another before their first report, so that n trials
    run at once however slowly the machine lets Tune start them (the folder must be one that every node sees)."""
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def trial(prepared: object, completed: frozenset) -> Callable:
        from ray import tune

        options, base = prepared.options, prepared.base
        return tune.with_parameters(_trial, steps=base["steps"], eval_every=base["eval_every"], seconds=seconds,
                                    keys=keys, checkpoint_every=options.checkpoint_every, completed=completed,
                                    gather=gather)

    return trial


def standin_measure(options: object, config: dict, test_split: object) -> tuple[dict, bytes]:
    """For `run(measure=...)`: no retraining of the choice; a one-step tiny model stands for it, so that the
    platform records, registers and promotes a real model file. Its test metrics are that model's."""
    from izf import FitConfig, fit
    from izf.io import model_bytes
    from izf.metrics import over_seeds

    result = fit(test_split, FitConfig(depth=2, hidden=8, steps=1, eval_every=0, synthetic_per_class=5,
                                       seed=options.seed))
    test, spread = over_seeds([dict(result.metrics)])
    return {"test": test, "test_spread": spread, "test_seeds": [dict(result.metrics)]}, model_bytes(result, test_split)
