"""The search's Optuna study, as its record names it (`description["study"]`: its storage and name).

A search's own study is an Optuna journal file in its folder, named `journal:///abs/path/optuna.journal`: Optuna's
JournalStorage reads only what was appended since it last looked, where a sqlite database reads every running
trial again at each parameter a sampler draws (TPE's constant liar asks for them), ~50 ms a read with 64 trials
running; ask+tell at 1,000 trials: sqlite 0.225 s, journal 0.068 s (bench/study_storage.py,
docs/benchmarks.md). A shared study (--study-storage) is a database URL.

Optuna logs "A new study created ..." and the like at INFO to the console; `quiet_optuna` keeps that off
for a block and restores what was set, for the search and for what reads its study alike.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

__all__ = ["quiet_optuna", "open_study", "open_storage", "database_url", "journal_path", "JOURNAL", "JOURNAL_FILE"]

JOURNAL, JOURNAL_FILE = "journal://", "optuna.journal"


def journal_path(spec: str) -> str | None:
    """The file of a journal storage's spec (journal:///abs/path/optuna.journal), None for a database URL."""
    return spec.removeprefix(JOURNAL) if spec.startswith(JOURNAL) else None


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    """The Optuna storage a record or a user names: `journal:///<file>` (Optuna's JournalStorage on that file),
    else a database URL (RDBStorage: sqlite:///..., postgresql://...)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(spec)
    if path is not None:
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    return _rdb_storage(database_url(spec))


def _rdb_storage(url: str, attempts: int = 3) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage on `url`. Two drivers opening a new, empty database at once both create Optuna's tables
    and one of them loses the race (PostgreSQL: a unique violation on the catalog); the tables are there then, so
    opening again succeeds."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except (IntegrityError, ProgrammingError):
            time.sleep(0.5 * attempt)
    return optuna.storages.RDBStorage(url)


def database_url(url: str) -> str:
    """A database URL as SQLAlchemy opens it here: `postgresql://` (whose default driver, psycopg2, this project
    does not install) through psycopg, the PostgreSQL driver it does install; any other URL as it is."""
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None:
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's log at WARNING and above within the block, as it was after it."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def open_study(study: dict | None) -> optuna.Study | None:
    """The study the record names, or None where it cannot be opened (moved, deleted, unreachable)."""
    if not study:
        return None
    import optuna

    path = journal_path(study["storage"])
    if path is not None and not Path(path).is_file():
        return None  # reading creates nothing
    with quiet_optuna():
        try:
            return optuna.load_study(study_name=study["name"], storage=open_storage(study["storage"]))
        except Exception:  # noqa: BLE001 - a missing file, a database error: callers fall back to the record
            return None
