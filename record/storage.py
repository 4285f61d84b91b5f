"""Whole files and folders of a search, on a local disk or remote storage (s3://...), through pyarrow (boto3 for
reading S3 objects whole, and for the S3 lease's conditional writes)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["absolute", "is_file", "read_bytes", "read_text", "write_bytes", "write_text", "subfolders", "split_s3",
           "s3_client"]


def absolute(folder: str) -> str:
    """A local folder as an absolute path; a remote one (s3://...) as it is, without a trailing '/'."""
    return folder.rstrip("/") if "://" in folder else str(Path(folder).expanduser().resolve())


def _fs(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(absolute(uri))


def _is_file(fs: pyarrow.fs.FileSystem, path: str) -> bool:
    import pyarrow.fs

    return fs.get_file_info(path).type == pyarrow.fs.FileType.File


def is_file(uri: str) -> bool:
    """Whether there is a file at `uri` (it is not read)."""
    return _is_file(*_fs(uri))


def read_bytes(uri: str) -> bytes | None:
    """A whole file, None when there is none. On S3 the version read is one version whole, even while a writer
    replaces it: pyarrow asks an object's size, then reads that many bytes, which gave the first bytes of a longer
    version written in between (a record cut short, found by test_team's Ctrl-C test); one GET of the whole object
    cannot mix two versions."""
    if uri.startswith("s3://"):
        return _read_s3(uri)
    fs, path = _fs(uri)
    if not _is_file(fs, path):
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def _read_s3(uri: str) -> bytes | None:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key, options = split_s3(uri)
    client = s3_client(options)
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    except (BotoCoreError, ClientError) as e:  # as pyarrow raises them, for the callers' handling
        raise OSError(f"{uri}: {e}") from e


def read_text(uri: str) -> str | None:
    """A whole file as text, None when there is none."""
    raw = read_bytes(uri)
    return None if raw is None else raw.decode(errors="replace")


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file; a reader never sees half of it (written aside, then moved into place)."""
    fs, path = _fs(uri)
    fs.create_dir(str(Path(path).parent), recursive=True)
    partial = f"{path}.{secrets.token_hex(4)}.part"
    with fs.open_output_stream(partial) as out:
        out.write(data)
    fs.move(partial, path)


def write_text(uri: str, text: str) -> None:
    """Write a whole text file (see write_bytes)."""
    write_bytes(uri, text.encode())


def split_s3(uri: str) -> tuple[str, str, dict]:
    """(bucket, key, boto3 client options) of `s3://bucket/key[?endpoint_override=host:port&scheme=http]` (the query
    as pyarrow and Ray read it; without one, boto3 reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL as pyarrow does)."""
    parts = urlsplit(uri)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    options = {}
    if "endpoint_override" in query:
        endpoint = query["endpoint_override"]
        options["endpoint_url"] = endpoint if "://" in endpoint else f"{query.get('scheme', 'https')}://{endpoint}"
    if "region" in query:
        options["region_name"] = query["region"]
    return parts.netloc, parts.path.strip("/"), options


def s3_client(options: dict):  # noqa: ANN201 - a boto3 client (its type is generated at run time)
    """A boto3 S3 client with its credentials, region and endpoint from the environment as it is now, as pyarrow finds
    them (a session of its own: boto3's default one keeps the credentials it found first)."""
    import boto3

    return boto3.session.Session().client("s3", **options)


def subfolders(uri: str) -> list[str]:
    """The names of a folder's subfolders, sorted; none where the folder does not exist."""
    import pyarrow.fs

    fs, path = _fs(uri)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return []
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path))
    return sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory)
