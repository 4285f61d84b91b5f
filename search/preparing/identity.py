"""Which search a run is: a new one with a fresh folder, or the one `--resume` continues, with its settings."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import NamedTuple

from izf.errors import ConfigError
from record import SearchRecord, new_search_id, searches_of
from search.options import SearchOptions

__all__ = ["open_search", "resumed", "conflicting_options", "check_storage", "OpenedSearch", "RESUMABLE_WITH"]

# Settings a resumed search may take anew: where Ray runs and how much the console shows. Every other
# setting is the search's own, read from its record.
RESUMABLE_WITH = ("address", "verbose", "resume", "name", "storage_path")


class OpenedSearch(NamedTuple):
    """A search as a run finds it: its options (its id set) and its record (None: a new search)."""

    options: SearchOptions
    record: SearchRecord | None


def resumed(records: list[SearchRecord], resume: bool | str, id_key: str) -> SearchRecord | None:
    """Of records (oldest first), the one `--resume` names: the newest (resume True), or the one whose `id_key`
    is `resume`; None where there is none."""
    if resume is True:
        return records[-1] if records else None
    return next((r for r in records if r[id_key] == resume), None)


def open_search(options: SearchOptions) -> OpenedSearch:
    """A new search (a new id, no record yet), or the one to resume (its record and the options it was
    started with, the ones of RESUMABLE_WITH taken from `options`)."""
    if not options.resume:
        return OpenedSearch(dataclasses.replace(options, search_id=options.search_id or new_search_id()), None)
    searches = searches_of(options.storage_uri, options.experiment_name)
    if not searches:
        raise ConfigError(f"--resume: no search named {options.experiment_name!r} under {options.storage_uri}; "
                          "check --name and --storage-path, or start a new search without --resume")
    record = resumed(searches, options.resume, "search_id")
    if record is None:
        known = ", ".join(f"{r['search_id']} ({r.status})" for r in searches)
        raise ConfigError(f"--resume {options.resume}: no such search of {options.experiment_name!r}; "
                          f"its searches: {known}")
    stored = SearchOptions.from_record(record["options"])
    runtime = {k: getattr(options, k) for k in ("address", "verbose")}
    return OpenedSearch(dataclasses.replace(stored, **runtime, resume=record["search_id"],
                                            search_id=record["search_id"]), record)


def conflicting_options(stored: SearchOptions, given: dict) -> list[str]:
    """The flags given on a resume that differ from the search's own settings (they cannot change now)."""
    return sorted(f"--{k.replace('_', '-')} {v} (the search has {getattr(stored, k)})" for k, v in given.items()
                  if k not in RESUMABLE_WITH and hasattr(stored, k) and getattr(stored, k) != v)


def check_storage(options: SearchOptions) -> None:
    """A local --storage-path must be a folder this user can write into (remote storage is Ray's to check)."""
    if "://" in options.storage_path:
        return
    folder = Path(options.name_folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as e:
        raise ConfigError(f"--storage-path {options.storage_path}: cannot write to {folder} "
                          f"({e.strerror or e}); choose a folder you can write to") from None
