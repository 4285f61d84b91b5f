"""The Optuna side of a search: samplers, `--fix`, the study's storage, and Ray's OptunaSearch around them."""


from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from izf.errors import ConfigError, first_line
from record.study import JOURNAL, JOURNAL_FILE, database_url, open_storage, quiet_optuna
from search.options import SearchOptions

if TYPE_CHECKING:
    import optuna
    import sqlalchemy.engine

    from search.running.optuna_search import ResumableOptunaSearch


__all__ = ["make_sampler", "check_fixed", "check_study_storage", "study_storage", "study_has_trials", "make_searcher",
           "METRIC", "MODE"]

METRIC, MODE = "best_h", "max"


def make_sampler(name: str, seed: int, num_samples: int, fixed: dict) -> optuna.samplers.BaseSampler:
    """The Optuna sampler `name` (SAMPLERS), seeded; `fixed` parameters held by PartialFixedSampler."""
    import optuna

    if fixed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.PartialFixedSampler(fixed, make_sampler(name, seed, num_samples, {}))
    if name == "tpe":
        # Optuna's 10 random start-up trials would leave TPE almost nothing of a small budget (12 by default).
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, num_samples // 4)))
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401 - Optuna imports it only when the first CMA-ES step runs, mid-search
        except ImportError:
            raise ConfigError("--sampler cmaes needs the cmaes package: pip install cmaes") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def check_fixed(space: Callable, fixed: dict) -> None:
    """Raise ConfigError unless every fixed value is one `space` asks for in every trial, within its range."""
    import optuna

    if not fixed:
        return
    with quiet_optuna():  # not "A new study created in memory"
        study = optuna.create_study(sampler=make_sampler("random", 0, 1, fixed))
    asked: list[set] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(32):  # a random sampler reaches both sides of every condition in the space
            trial = study.ask()
            try:
                space(trial)
            except ValueError as e:  # a categorical value that is not one of the choices
                raise ConfigError(f"--fix: {str(e).rstrip('.')}; change the value or the choices in "
                                  "search/preparing/space.py") from None
            asked.append(set(trial.params))
    unknown = sorted(set(fixed) - set().union(*asked))
    if unknown:
        raise ConfigError(f"--fix {', '.join(unknown)}: not a parameter of the search space; its parameters are "
                          f"{sorted(set().union(*asked))} (--set fixes a FitConfig field the space does not sample)")
    conditional = sorted(name for name in fixed if not all(name in a for a in asked))
    if conditional:
        raise ConfigError(f"--fix {', '.join(conditional)}: the space asks for it only in some trials; fix the "
                          "parameter that decides that too (e.g. --fix use_mmd=true with --fix mmd_weight=...)")
    outside = [str(w.message) for w in caught if "out of range" in str(w.message)]
    if outside:
        raise ConfigError(f"--fix: {outside[0]} Change the value, or the range in search/preparing/space.py")


def check_study_storage(url: str | None) -> None:
    """--study-storage must be a database URL SQLAlchemy knows (a sqlite file's folder must exist)."""
    if url is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    usage = "use e.g. sqlite:////abs/path/optuna.db or postgresql://user@host/db"
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise ConfigError(f"--study-storage {url!r} is not a database URL ({e}); {usage}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).expanduser().resolve().parent
            if not folder.is_dir():
                raise ConfigError(f"--study-storage {url}: the folder {folder} does not exist; create it or {usage}")
        return
    _check_connection(url, parsed)


def _check_connection(url: str, parsed: sqlalchemy.engine.URL) -> None:
    """A database server (PostgreSQL, MySQL) must answer and let us in before any trial (10 s at most)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    shown = parsed.render_as_string(hide_password=True)
    timeout = {"connect_timeout": 10} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    try:
        engine = create_engine(database_url(url), connect_args=timeout, poolclass=NullPool)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except ModuleNotFoundError as e:
        raise ConfigError(f"--study-storage {shown}: its driver is not installed ({e}); install it, or use "
                          "postgresql://... (psycopg, installed with this project)") from None
    except (DBAPIError, NoSuchModuleError) as e:
        reason = first_line(getattr(e, "orig", None) or e)
        raise ConfigError(f"--study-storage {shown}: cannot open the database ({reason}); check the server, user, "
                          "password and database name") from None


def study_storage(options: SearchOptions) -> str:
    """Where the search's Optuna study lives: --study-storage (shared by the searches of a name), else a journal
    file of its own in the search's folder (`journal:///.../optuna.journal`, see record.study; in
    ~/.cache/izf/studies/ when that folder is remote storage; a search begun with a sqlite optuna.db there keeps
    it). The real study is what the importance plots and the Pareto front are read from."""
    if options.study_storage:
        return options.study_storage
    if "://" in options.storage_path:
        folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "izf" / "studies" / \
            options.experiment_name / options.search_id
    else:
        folder = Path(options.experiment_path)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "optuna.db").is_file():
        return f"sqlite:///{folder / 'optuna.db'}"
    return f"{JOURNAL}{folder.resolve() / JOURNAL_FILE}"


def study_has_trials(options: SearchOptions) -> bool:
    """Whether the study of this search's name already holds trials (then no base point is added)."""
    import optuna

    try:
        storage = open_storage(study_storage(options))
        return len(optuna.load_study(study_name=options.experiment_name, storage=storage).trials) > 0
    except KeyError:
        return False
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's and the database driver's own errors
        raise ConfigError(f"--study-storage {options.study_storage}: cannot open the study ({type(e).__name__}: "
                          f"{first_line(e)})") from None


def make_searcher(options: SearchOptions, space: Callable, points: list[dict],
                  study_exists: bool) -> ResumableOptunaSearch:
    """Ray's OptunaSearch over `space` on the search's own study, the first `points` enqueued unless the study
    already holds trials."""

    from search.running.optuna_search import ResumableOptunaSearch

    multi = options.objective == "multi"
    return ResumableOptunaSearch(
        space=space,
        metric=[METRIC, "train_seconds"] if multi else METRIC,
        mode=[MODE, "min"] if multi else MODE,
        points_to_evaluate=None if study_exists or not points else points,
        sampler=make_sampler(options.sampler, options.sampler_stream, options.num_samples, options.fixed_params),
        study_name=options.experiment_name,
        storage=open_storage(study_storage(options)),
    )
