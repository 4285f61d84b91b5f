"""The search's Optuna study, as its record names it (`description["study"]`: its storage URL and name).

Optuna logs "A new study created ..." and the like at INFO to the console; `quiet_optuna` keeps that off
for a block and restores what was set, for the search and for what reads its study alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

__all__ = ["quiet_optuna", "open_study"]


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

    with quiet_optuna():
        try:
            return optuna.load_study(study_name=study["name"], storage=study["storage"])
        except Exception:  # noqa: BLE001 - a missing file, a database error: callers fall back to the record
            return None
