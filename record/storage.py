"""Whole files and folders of a search, on a local disk or remote storage (s3://...), through pyarrow."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["absolute", "is_file", "read_bytes", "read_text", "write_bytes", "write_text", "subfolders"]


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
    """A whole file, None when there is none."""
    fs, path = _fs(uri)
    if not _is_file(fs, path):
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


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


def subfolders(uri: str) -> list[str]:
    """The names of a folder's subfolders, sorted; none where the folder does not exist."""
    import pyarrow.fs

    fs, path = _fs(uri)
    if fs.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return []
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path))
    return sorted(i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory)
