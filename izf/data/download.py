"""Fetch the xlsa17 archives (resumable), extract the datasets asked for, and check what arrived."""

import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from izf.data.xlsa17 import XLSA17_NAMES, read_xlsa17
from izf.errors import DataError

__all__ = ["download", "fetch", "extract", "check_counts", "EXPECTED", "XLSA17_URL", "FLO_URL"]

XLSA17_URL = "http://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip"
FLO_URL = "http://datasets.d2.mpi-inf.mpg.de/xian/cvpr18xian.zip"
# (attribute_dim, n_classes, n_images, n_trainval, n_test_seen, n_test_unseen) of the proposed splits.
EXPECTED = {
    "APY": (64, 32, 15339, 5932, 1483, 7924),
    "AWA1": (85, 50, 30475, 19832, 4958, 5685),
    "AWA2": (85, 50, 37322, 23527, 5882, 7913),
    "CUB": (312, 200, 11788, 7057, 1764, 2967),
    "FLO": (1024, 102, 8189, 5631, 1403, 1155),
    "SUN": (102, 717, 14340, 10320, 2580, 1440),
}
CHUNK = 1 << 20


def _progress(done: int, total: int | None, label: str) -> None:
    if total:
        filled = int(30 * done / total)
        bar = f"[{'#' * filled}{'.' * (30 - filled)}] {100 * done / total:5.1f}%"
    else:
        bar = ""
    sys.stderr.write(f"\r{label} {bar} {done / 2**20:8.1f} MiB")
    sys.stderr.flush()


def fetch(url: str, dest: Path, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download url to dest; an interrupted download continues from `dest.part`."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = response.status == 206
            length = response.headers.get("Content-Length")
            total = (offset if resumed else 0) + int(length) if length else None
            done = offset if resumed else 0
            with open(part, "ab" if resumed else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        _progress(done, total, dest.name)
            if total is not None and done < total:
                raise OSError(f"connection closed after {done} of {total} bytes")
    except urllib.error.HTTPError as e:
        if e.code != 416:  # 416: the part file already holds the whole archive
            raise _unreachable(url, dest, e) from e
    except (urllib.error.URLError, OSError) as e:
        raise _unreachable(url, dest, e) from e
    finally:
        if progress:
            sys.stderr.write("\n")
    part.rename(dest)
    return dest


def _unreachable(url: str, dest: Path, error: Exception) -> DataError:
    return DataError(
        f"could not download {url} ({error}). What arrived so far is kept in {dest.name}.part and the "
        f"next try resumes it. Without network, fetch the archive elsewhere, put it at {dest} and run "
        f"the same command again, or unpack it so that {dest.parent}/<NAME>/res101.mat and "
        "att_splits.mat exist."
    )


def extract(archive: Path, names: list[str], root: Path) -> list[Path]:
    """Unpack `.../data/<NAME>/*` of each name from the archive into `<root>/<NAME>/`."""
    try:
        with zipfile.ZipFile(archive) as zf:
            folders = []
            for name in names:
                members = [m for m in zf.infolist() if _dataset_of(m.filename) == name.upper() and not m.is_dir()]
                if not members:
                    raise DataError(f"{archive} holds no data/{name.upper()}/ folder; is it the right archive?")
                folder = root / name.upper()
                folder.mkdir(parents=True, exist_ok=True)
                for m in members:
                    target = folder / Path(m.filename).name
                    with zf.open(m) as src, open(target, "wb") as dst:
                        while chunk := src.read(CHUNK):
                            dst.write(chunk)
                folders.append(folder)
            return folders
    except zipfile.BadZipFile as e:
        raise DataError(f"{archive} is not a complete zip archive ({e}); delete it and download again") from e


def _dataset_of(member: str) -> str | None:
    parts = Path(member).parts
    for i, part in enumerate(parts[:-2]):
        if part == "data":
            return parts[i + 1].upper()
    return None


def check_counts(name: str, root: Path) -> dict:
    """Load a dataset and compare its counts with the published ones; return its summary."""
    summary = read_xlsa17(name, root).summary()
    keys = ("attribute_dim", "n_classes", "n_images", "n_trainval", "n_test_seen", "n_test_unseen")
    got = tuple(summary[k] for k in keys)
    expected = EXPECTED.get(name.upper())
    if expected is not None and got != expected:
        wrong = {k: (g, e) for k, g, e in zip(keys, got, expected, strict=True) if g != e}
        raise DataError(f"{root / name.upper()}: counts differ from xlsa17's (got, expected): {wrong}")
    return summary


def download(
    names: list[str], root: Path | str, *, url: str = XLSA17_URL, flo_url: str = FLO_URL, progress: bool = True
) -> list[dict]:
    """Fetch, extract and check each named dataset under root; return their summaries."""
    root = Path(root)
    names = [n.upper() for n in names] or [n for n in XLSA17_NAMES if n != "FLO"]
    unknown = sorted(set(names) - set(XLSA17_NAMES))
    if unknown:
        raise DataError(f"unknown dataset(s) {unknown}; choose from {list(XLSA17_NAMES)}")
    groups = {url: [n for n in names if n != "FLO"], flo_url: [n for n in names if n == "FLO"]}
    for source, group in groups.items():
        if group:
            archive = fetch(source, root / Path(source).name, progress=progress)
            extract(archive, group, root)
    return [check_counts(n, root) for n in names]
