"""Which search a run is: a new one with a fresh folder, or the one `--resume` continues, with its settings."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import NamedTuple

from izf.errors import ConfigError
from record import SearchRecord, new_search_id, searches_of
from search.options import SearchOptions

__all__ = ["open_search", "resumed", "conflicting_options", "check_storage", "check_s3", "OpenedSearch",
           "RESUMABLE_WITH"]

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
    """A local --storage-path must be a folder this user can write into (S3 storage: `check_s3`, which the driver
    calls before the search's folders are read; other remote storage is Ray's to check)."""
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


def check_s3(storage_path: str) -> None:
    """Refuse S3 storage that cannot work, before any trial: no credentials, an endpoint that does not answer, a
    bucket that does not exist or that these credentials may not use."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    from record.storage import s3_client, split_s3

    bucket, _, client_options = split_s3(storage_path)
    where = f"--storage-path {storage_path}"
    try:
        s3_client(client_options).head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise ConfigError(f"{where}: no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                          "AWS_PROFILE), and AWS_ENDPOINT_URL_S3 for MinIO or another S3-compatible server") from None
    except EndpointConnectionError as e:
        raise ConfigError(f"{where}: the S3 endpoint does not answer ({e}); check AWS_ENDPOINT_URL_S3") from None
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise ConfigError(f"{where}: the bucket {bucket} does not exist; create it (aws s3 mb s3://{bucket}) "
                              "or name one that does") from None
        if status in (401, 403):
            raise ConfigError(f"{where}: S3 refused these credentials for bucket {bucket} (HTTP {status}); check "
                              "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's policy") from None
        raise ConfigError(f"{where}: S3 answered {e}") from None
    except BotoCoreError as e:
        raise ConfigError(f"{where}: {e}") from None
