"""What a search knows before Ray starts: its data, the base config every trial starts from, the space bound to
the data's shapes with its first points, the code it runs; and its description (the record's, the parent run's)."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from izf.data import load_benchmark, make_split
from izf.presets import feature_scaling, preset
from izf.provenance import CodeVersion, code_version
from izf.training import FitConfig
from search.options import SearchOptions
from search.preparing.sampling import check_fixed, study_storage
from search.preparing.space import Dims, base_point, bind, fit_fields, searched_fields
from search.preparing.warm import fitted_points

if TYPE_CHECKING:
    from izf.data import Benchmark, Split

__all__ = ["Prepared", "prepare", "base_config", "grace_steps", "warn_if_code_changed"]

EVAL_EVERY_DEFAULT = 500  # steps between reports where neither --eval-every nor the preset says


@dataclass
class Prepared:
    """The data and the checked space of a search, before anything is written or Ray started."""

    options: SearchOptions
    bench: Benchmark
    val_split: Split
    base: dict  # FitConfig fields every trial starts from
    space: Callable  # the space bound to the data's dims: what OptunaSearch calls
    points: list[dict]  # the first points to evaluate
    space_source: str  # the search space's code, as run
    code: CodeVersion = field(default_factory=code_version)  # the code this driver runs

    def describe(self) -> dict:
        """The search's settings as plain values (the parent run's params; izf_search.json)."""
        o = self.options
        return {"dataset": o.dataset, "name": o.experiment_name, "sampler": o.sampler, "scheduler": o.scheduler,
                "objective": o.objective, "num_samples": o.num_samples, "max_concurrent": o.max_concurrent,
                "max_steps": self.base["steps"], "grace_steps": grace_steps(o, self.base),
                "seed": o.seed, "final_seeds": o.final_seeds, "time_budget_s": o.time_budget_s,
                "reevaluate_top": o.reevaluate_top, "reevaluate_seeds": o.reevaluate_seeds,
                "start_from_base": o.start_from_base, "sampler_seed": o.sampler_stream,
                "warm_start": o.warm_start, "warm_start_points": len(o.warm_start_points),
                "fixed_params": o.fixed_params, "checkpoint_every": o.checkpoint_every,
                "cpus_per_trial": o.cpus_per_trial, "gpus_per_trial": o.gpus_per_trial, "max_failures": o.max_failures,
                "data_checksum": self.bench.checksum(), "data_source": self.bench.source,
                "git_commit": self.code.commit, "git_dirty": self.code.dirty,
                "base": self.base, "feature_dim": self.val_split.feature_dim,
                "attribute_dim": self.val_split.attribute_dim, "space": self.space_source,
                "study": {"storage": study_storage(o), "name": o.experiment_name}}

    def params_of(self, sampled: dict) -> dict:
        """Every FitConfig value a trial with these sampled parameters trains with."""
        return {**self.base, **fit_fields(sampled)}


def prepare(options: SearchOptions, space_fn: Callable, points: list[dict] | None) -> Prepared:
    """Load the data, check the space against it and place the first points (see search.running.driver.run)."""
    bench = load_benchmark(options.dataset, root=options.data_root, seed=options.seed)
    val_split = make_split(bench, "val", features=feature_scaling(options.dataset), seed=options.seed)
    base = base_config(options)
    options.check_steps(base["steps"])
    dims = Dims(val_split.feature_dim, val_split.attribute_dim)
    searched_fields(space_fn, dims)  # what it returns are FitConfig fields
    bound = bind(space_fn, dims)
    check_fixed(bound, options.fixed_params)
    if points is None:
        base_pt = base_point(space_fn, dims, base, fixed=options.fixed_params)
        points = fitted_points(space_fn, dims, options.warm_start_points, base_pt, options.fixed_params)
        if options.start_from_base and base_pt not in points:
            points.append(base_pt)
    try:
        source = inspect.getsource(space_fn)
    except (OSError, TypeError):  # defined where its source cannot be read (an interactive session)
        source = repr(space_fn)
    return Prepared(options, bench, val_split, base, bound, points, source)


def base_config(options: SearchOptions) -> dict:
    """The FitConfig fields every trial starts from: the dataset's preset, --set, --max-steps, --eval-every, --seed."""
    base = dataclasses.asdict(FitConfig.from_dict({**preset(options.dataset), **options.fit_overrides}))
    if options.max_steps is not None:
        base["steps"] = options.max_steps
    base["eval_every"] = options.eval_every or base["eval_every"] or EVAL_EVERY_DEFAULT
    base["eval_every"] = min(base["eval_every"], base["steps"])
    base["seed"] = options.seed
    base.pop("device")
    return base


def grace_steps(options: SearchOptions, base: dict) -> int:
    """ASHA's grace period: --grace-steps, else a quarter of a trial (at least one report)."""
    return options.grace_steps or max(base["eval_every"], base["steps"] // 4)


def warn_if_code_changed(description: dict, code: CodeVersion) -> None:
    """A resumed search whose code is not the code it started with says so (the model records which it ran)."""
    started = CodeVersion(description.get("git_commit", "unknown"), description.get("git_dirty", False))
    if started != code:
        print(f"warning: the code is {code.describe()}, the search started at {started.describe()}; the trials "
              "from here on and the final model run this code (the model records it)", file=sys.stderr, flush=True)
