"""The search record: `izf_search.json` in a search's own folder, its identity, settings, status and result.

A search is one `python search/run.py` and the `--resume` runs that continue it. Every search has an
id (`20261129-101502-7f3e`: its start time and 4 random hex digits) and its own folder
`<storage>/<name>/<id>/`, which is Ray's experiment folder and holds this record and the chosen
model. Searches of one name share `<storage>/<name>/` (and the Optuna study of that name).
"""

import json
import math
import secrets
import time
import warnings
from pathlib import Path

from izf.errors import DataError

__all__ = ["SearchRecord", "finite_json", "new_search_id", "searches_of", "name_folder", "read_text", "write_text",
           "SEARCH_FILE", "MODEL_FILE", "STATUSES", "now"]

SEARCH_FILE, MODEL_FILE = "izf_search.json", "izf_model.pt"
STATUSES = ("running", "interrupted", "failed", "finished")


def new_search_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def name_folder(storage_uri: str, name: str) -> str:
    return f"{storage_uri.rstrip('/')}/{name}"


def _fs(uri: str) -> tuple["pyarrow.fs.FileSystem", str]:  # noqa: F821
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def _read(uri: str) -> bytes | None:
    import pyarrow.fs

    fs, path = _fs(uri)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def read_text(uri: str) -> str | None:
    """A whole file (local or remote) as text, None when there is none."""
    raw = _read(uri)
    return None if raw is None else raw.decode()


def write_text(uri: str, text: str) -> None:
    _write(uri, text.encode())


def _write(uri: str, data: bytes) -> None:
    """Write a whole file; a reader never sees half of it (written aside, then moved into place)."""
    fs, path = _fs(uri)
    fs.create_dir(str(Path(path).parent), recursive=True)
    partial = f"{path}.{secrets.token_hex(4)}.part"
    with fs.open_output_stream(partial) as out:
        out.write(data)
    fs.move(partial, path)


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
    and the model's file name. What happened in between is in search.events' izf_events.jsonl.
    """

    FILE = SEARCH_FILE

    def __init__(self, folder: str, data: dict) -> None:
        self.folder, self.data = folder.rstrip("/"), data

    @classmethod
    def load(cls, folder: str) -> "SearchRecord | None":
        """The record of a search folder, None where there is none; DataError where it cannot be read."""
        path = f"{folder.rstrip('/')}/{cls.FILE}"
        raw = _read(path)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            data, why = None, f"{type(e).__name__}: {e}"
        else:
            why = "not a JSON object"
        if not isinstance(data, dict):
            what = "an empty file" if not raw.strip() else why
            raise DataError(f"{path}: not a readable search record ({what}); it was cut while being written or "
                            "edited by hand: move its folder away (its searches' other files are intact)")
        return cls(folder, data)

    def __getitem__(self, key: str) -> object:
        return self.data[key]

    def get(self, key: str, default: object = None) -> object:
        return self.data.get(key, default)

    @property
    def status(self) -> str:
        return self.data.get("status", "running")

    def save(self) -> None:
        self.data["updated_at"] = now()
        _write(f"{self.folder}/{self.FILE}", json.dumps(finite_json(self.data), default=str, indent=1).encode())

    def mark(self, status: str, **fields: object) -> None:
        """Set the status (and e.g. the error or the signal) and write the record."""
        assert status in STATUSES, status
        self.data.update(status=status, **fields)
        if status != "running":
            self.data["ended_at"] = now()
        self.save()

    def save_model(self, model_file: bytes) -> None:
        _write(f"{self.folder}/{MODEL_FILE}", model_file)

    def model_file(self) -> bytes | None:
        return _read(f"{self.folder}/{MODEL_FILE}")


def searches_of(storage_uri: str, name: str, kind: type[SearchRecord] = SearchRecord) -> list[SearchRecord]:
    """The searches (or, with kind=search.campaign.CampaignRecord, the campaigns) of one name, oldest first
    (their ids begin with the start time); one whose record cannot be read is left out with a warning."""
    import pyarrow.fs

    fs, path = _fs(name_folder(storage_uri, name))
    if fs.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return []
    records = []
    for info in sorted(fs.get_file_info(pyarrow.fs.FileSelector(path)), key=lambda i: i.base_name):
        if info.type == pyarrow.fs.FileType.Directory:
            try:
                record = kind.load(f"{name_folder(storage_uri, name)}/{info.base_name}")
            except DataError as e:  # one unreadable sibling does not hide the others
                warnings.warn(f"{e}; skipped", stacklevel=1)  # one line however often it is read
                continue
            if record is not None:
                records.append(record)
    return records


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
