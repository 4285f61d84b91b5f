"""The search record: `izf_search.json` in a search's own folder, its identity, settings, status and result.

A search is one `python search/run.py` and the `--resume` runs that continue it. Every search has an
id (`20261129-101502-7f3e`: its start time and 4 random hex digits) and its own folder
`<storage>/<name>/<id>/`, which is Ray's experiment folder and holds this record and the chosen
model. Searches of one name share `<storage>/<name>/` (and the Optuna study of that name). A campaign
(several datasets' searches in turn) keeps `izf_campaign.json` the same way.
"""

from __future__ import annotations

import json
import math
import secrets
import time
import warnings

from izf.errors import DataError
from record.storage import absolute, is_file, read_bytes, subfolders, write_bytes

__all__ = ["SearchRecord", "CampaignRecord", "searches_of", "campaigns_of", "search_folders", "finite_json",
           "new_search_id", "name_folder", "now", "SEARCH_FILE", "CAMPAIGN_FILE", "MODEL_FILE", "STATUSES"]

SEARCH_FILE, CAMPAIGN_FILE, MODEL_FILE = "izf_search.json", "izf_campaign.json", "izf_model.pt"
STATUSES = ("running", "interrupted", "failed", "finished")


def new_search_id() -> str:
    """A new search's (or campaign's) id: its start time and 4 random hex digits."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def name_folder(storage_uri: str, name: str) -> str:
    """Where the searches of one name keep their folders: <storage>/<name>."""
    return f"{storage_uri.rstrip('/')}/{name}"


def now() -> str:
    """The local time as the record writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def finite_json(value: object) -> object:
    """JSON has no NaN or Infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


class SearchRecord:
    """One search's izf_search.json: read, changed, written back whole.

    Keys: search_id, name, folder, status (one of STATUSES), started_at, resumed_at (a list),
    ended_at, options (every SearchOptions field), description (dataset, base config, data checksum,
    the space's source, ...), notes (the CLI's: where it records to), trials (per trial id: name,
    params as FitConfig fields, sampled values, device, last report, outcome), and once finished
    `final`: the chosen trial and config, its validation metrics, its test metrics and their spread,
    and the model's file name. What happened in between is in record.events' izf_events.jsonl.
    """

    FILE = SEARCH_FILE
    REQUIRED = "description"  # a record without it is not one

    def __init__(self, folder: str, data: dict) -> None:
        self.folder, self.data = folder.rstrip("/"), data

    @classmethod
    def load(cls, folder: str) -> SearchRecord | None:
        """The record of a search folder, None where there is none; DataError where it cannot be read."""
        path = f"{folder.rstrip('/')}/{cls.FILE}"
        raw = read_bytes(path)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            data, why = None, f"{type(e).__name__}: {e}"
        else:
            why = "not a JSON object" if not isinstance(data, dict) else f"no {cls.REQUIRED}"
        if not isinstance(data, dict) or cls.REQUIRED not in data:
            raise DataError(f"{path}: not a readable search record ({'an empty file' if not raw.strip() else why})")
        return cls(folder, data)

    def __getitem__(self, key: str) -> object:
        return self.data[key]

    def get(self, key: str, default: object = None) -> object:
        """A key of the record, `default` where it has none."""
        return self.data.get(key, default)

    @property
    def status(self) -> str:
        """One of STATUSES."""
        return self.data.get("status", "running")

    def save(self) -> None:
        """Write the whole record (readers never see half of it)."""
        self.data["updated_at"] = now()
        write_bytes(f"{self.folder}/{self.FILE}", json.dumps(finite_json(self.data), default=str, indent=1).encode())

    def mark(self, status: str, **fields: object) -> None:
        """Set the status (and e.g. the error or the signal) and write the record."""
        assert status in STATUSES, status
        self.data.update(status=status, **fields)
        if status != "running":
            self.data["ended_at"] = now()
        self.save()

    def save_model(self, model_file: bytes) -> None:
        """Keep the chosen model's file (izf.io's bytes) beside the record."""
        write_bytes(f"{self.folder}/{MODEL_FILE}", model_file)

    def model_file(self) -> bytes | None:
        """The chosen model's file, None before the search finished."""
        return read_bytes(f"{self.folder}/{MODEL_FILE}")


class CampaignRecord(SearchRecord):
    """A campaign's izf_campaign.json. Keys: campaign_id, name, folder, status (one of STATUSES), started_at,
    resumed_at, ended_at, datasets (in order), options (the SearchOptions every search starts with, dataset
    aside), and searches: per dataset, its search's name, id, folder and status, and once it ended its
    validation and test metrics and where MLflow holds it (or its error)."""

    FILE = CAMPAIGN_FILE
    REQUIRED = "datasets"


def searches_of(storage_uri: str, name: str, kind: type[SearchRecord] = SearchRecord) -> list[SearchRecord]:
    """The searches (with kind=CampaignRecord, the campaigns) of one name, oldest first (their ids begin with
    the start time); one whose record cannot be read is left out with a warning."""
    records, folder = [], name_folder(storage_uri, name)
    for child in subfolders(folder):
        try:
            record = kind.load(f"{folder}/{child}")
        except DataError as e:  # one unreadable sibling does not hide the others
            warnings.warn(f"{e}; it was cut while being written or edited by hand: move its folder away (its "
                          "searches' other files are intact); skipped", stacklevel=1)
            continue
        if record is not None:
            records.append(record)
    return records


def campaigns_of(storage_uri: str, name: str) -> list[CampaignRecord]:
    """The campaigns of one name, oldest first."""
    return searches_of(storage_uri, name, kind=CampaignRecord)


def search_folders(folder: str) -> list[str]:
    """A search's folder itself, or the search folders of a name's folder (oldest first); [] where neither."""
    folder = absolute(folder)
    if is_file(f"{folder}/{SEARCH_FILE}"):
        return [folder]
    return [f"{folder}/{child}" for child in subfolders(folder) if is_file(f"{folder}/{child}/{SEARCH_FILE}")]
