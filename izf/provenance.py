"""Which code is running: the git commit of this package's checkout, and whether tracked files differ from it."""

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CodeVersion", "code_version", "UNKNOWN"]

UNKNOWN = "unknown"  # the commit outside a git checkout (an installed wheel, a copied folder)


@dataclass(frozen=True)
class CodeVersion:
    """A git commit, and whether the working tree changed tracked files of it (`dirty`: the code that ran is
    not the commit's, and cannot be checked out again)."""

    commit: str
    dirty: bool

    def describe(self) -> str:
        """`3f2a9c1e0b7d` or `3f2a9c1e0b7d + uncommitted changes`."""
        return self.commit[:12] + (" + uncommitted changes" if self.dirty else "")


def code_version() -> CodeVersion:
    """The commit of the checkout this package is imported from (UNKNOWN outside one) and its dirty flag.

    Untracked files do not count: a results folder or a data file beside the code changes no code.
    """
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=here)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return CodeVersion(UNKNOWN, False)
    return CodeVersion(commit, bool(git("status", "--porcelain", "--untracked-files=no")))
