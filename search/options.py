"""Options of one search, checked before any trial starts."""

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from izf.data import default_name
from izf.errors import ConfigError
from record import name_folder

__all__ = ["SearchOptions", "SAMPLERS", "SCHEDULERS", "OBJECTIVES"]

SAMPLERS = ("tpe", "cmaes", "gp", "random", "nsga2")
WARM_START_SEED_OFFSET = 1_000_003
SCHEDULERS = ("asha", "none")
OBJECTIVES = ("single", "multi")


@dataclass
class SearchOptions:
    """Everything `search.run` needs besides the search space. Defaults suit the built-in synthetic data."""

    dataset: str = "synthetic"
    data_root: str | None = None
    address: str | None = None  # None: a local Ray instance; "auto" or "ray://...": a running cluster
    num_samples: int = 12
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    sampler: str = "tpe"
    scheduler: str = "asha"
    objective: str = "single"
    max_steps: int | None = None  # None: the dataset preset's (or FitConfig's) steps
    grace_steps: int | None = None  # None: a quarter of max_steps
    eval_every: int | None = None
    seed: int = 0
    name: str | None = None  # None: izf-<dataset>
    storage_path: str = "ray_results"
    resume: bool | str = False  # True: the newest search of this name; a search id: that one
    search_id: str | None = None  # set by `run`: a new id, or the resumed search's
    study_storage: str | None = None  # an Optuna RDB URL, e.g. sqlite:////abs/path/optuna.db
    time_budget_s: float | None = None
    max_failures: int = 2
    checkpoint_every: int = 1  # a checkpoint with every k-th report (a retried trial resumes from the last)
    final_seeds: int = 1
    reevaluate_top: int = 0  # 0: choose the single best trial; K: the best mean H of the top K over new seeds
    reevaluate_seeds: int = 3
    fit_overrides: dict = field(default_factory=dict)  # fixed FitConfig values for every trial
    fixed_params: dict = field(default_factory=dict)  # parameters of the search space held at one value
    warm_start: str | None = None  # where warm_start_points came from (an Optuna study, an MLflow experiment)
    warm_start_top: int = 3
    warm_start_points: list = field(default_factory=list)  # an earlier search's best sampled values, best first
    start_from_base: bool = True  # evaluate the dataset's base config first (False: the sampler alone)
    sampler_seed: int | None = None  # None: seed; another value draws other points on the same split
    verbose: bool = False  # Ray's own progress tables and the trials' logs on the console

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"--scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"--objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.objective == "multi" and self.scheduler == "asha":
            raise ConfigError("ASHA stops trials on one metric; a multi-objective search needs --scheduler none")
        if self.objective == "multi" and self.sampler not in ("tpe", "nsga2", "random"):
            raise ConfigError(
                f"--sampler {self.sampler} is single-objective; use nsga2, tpe or random with --objective multi"
            )
        for name in ("cpus_per_trial", "gpus_per_trial", "time_budget_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
                raise ConfigError(f"{_flag(name)} must be a finite number, got {value!r}")
        for name in ("num_samples", "max_concurrent", "final_seeds", "checkpoint_every", "max_steps", "grace_steps",
                     "eval_every", "reevaluate_seeds", "warm_start_top"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{_flag(name)} must be >= 1, got {getattr(self, name)}")
        for name, why in (("seed", ""), ("sampler_seed", ""), ("reevaluate_top", " (0: no re-evaluation)"),
                          ("max_failures", " (the retries of a failed trial; there is no 'forever')")):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{_flag(name)} must be >= 0{why}, got {getattr(self, name)}")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ConfigError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ConfigError(f"--gpus-per-trial above 1 must be whole, got {self.gpus_per_trial}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"--time-budget must be > 0 seconds, got {self.time_budget_s}")
        if self.max_steps is not None:
            self.check_steps(self.max_steps)
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ConfigError(f"--name must be a plain folder name (no '/', not starting with '.'), got {self.name!r}")

    def check_steps(self, max_steps: int) -> None:
        """--eval-every and --grace-steps must fit in a trial of `max_steps` steps."""
        for name in ("eval_every", "grace_steps"):
            if getattr(self, name) is not None and getattr(self, name) > max_steps:
                raise ConfigError(f"{_flag(name)} {getattr(self, name)} is more than a trial's {max_steps} steps "
                                  "(--max-steps, else the dataset preset's); lower it or raise --max-steps")

    def to_record(self) -> dict:
        """Every setting as plain values (the record's `options`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, values: dict) -> "SearchOptions":
        """The options a record holds (settings this code no longer knows are left out)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def sampler_stream(self) -> int:
        """The seed the Optuna sampler gets: sampler_seed, else seed, moved by WARM_START_SEED_OFFSET for a warm
        start (whose source most likely had the same seed: its sampler would draw the source's random start-up
        points again, one of which is often among the warm points themselves)."""
        if self.sampler_seed is not None:
            return self.sampler_seed
        return self.seed + (WARM_START_SEED_OFFSET if self.warm_start_points else 0)

    @property
    def experiment_name(self) -> str:
        """The search's name: --name, else izf-<dataset>."""
        return self.name or default_name(self.dataset)

    @property
    def threads_per_trial(self) -> int:
        """Torch threads in each trial and final fit: the whole CPUs it is given, at least one."""
        return max(1, int(self.cpus_per_trial))

    @property
    def storage_uri(self) -> str:
        """Ray wants an absolute path or a URI."""
        if "://" in self.storage_path:
            return self.storage_path
        return str(Path(self.storage_path).expanduser().resolve())

    @property
    def name_folder(self) -> str:
        """Where the searches of this name keep their folders: <storage>/<name>."""
        return name_folder(self.storage_uri, self.experiment_name)

    @property
    def experiment_path(self) -> str:
        """This search's own folder (Ray's experiment folder): <storage>/<name>/<search id>."""
        if self.search_id is None:
            raise ValueError("the search has no id yet: search.run assigns it")
        return f"{self.name_folder}/{self.search_id}"


def _flag(name: str) -> str:
    return "--" + {"time_budget_s": "time_budget"}.get(name, name).replace("_", "-")
