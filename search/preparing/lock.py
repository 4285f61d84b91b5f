"""One search at a time per name: an exclusive lock that the driver holds while its search runs."""

import fcntl
import hashlib
import os
import socket
from pathlib import Path

from izf.errors import ConfigError

__all__ = ["NameLock", "SearchBusy"]


class SearchBusy(ConfigError):
    """Another driver is running a search of this name."""


class NameLock:
    """`flock` on `<storage>/<name>/.lock`, so the kernel drops it when the driver dies, even by SIGKILL:
    no stale lock is ever left behind. The file names the holder (pid, host, search id) for the message
    of a driver that is refused.

    With remote storage other than S3 (gs://...) the lock file lies in `~/.cache/izf/locks/` instead: it keeps
    two drivers on this machine apart, not drivers on two machines. S3 storage has a lease instead
    (search.preparing.lease.name_lock).
    """

    def __init__(self, name_folder: str) -> None:
        self.name_folder = name_folder
        if "://" in name_folder:
            digest = hashlib.sha256(name_folder.encode()).hexdigest()[:16]
            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            self.path = cache / "izf" / "locks" / f"{digest}.lock"
        else:
            self.path = Path(name_folder) / ".lock"
        self._file = None

    def acquire(self, search_id: str) -> None:
        """Take the lock for `search_id`, or raise SearchBusy naming the search that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another driver"
            handle.close()
            raise SearchBusy(f"{self.name_folder} is in use: {holder} is running; wait for it to end, or start "
                             "this search under another --name") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"search {search_id} (driver pid {os.getpid()} on {socket.gethostname()})\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let the lock go (a no-op where it is not held)."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def is_held(self) -> bool:
        """Whether some driver holds the lock now (it is tried, and let go at once)."""
        if self._file is not None:
            return True
        if not self.path.is_file():
            return False
        with open(self.path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False
