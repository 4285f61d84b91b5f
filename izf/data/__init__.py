"""Datasets: the real xlsa17 benchmarks, built-in toy and synthetic data, and evaluation protocols."""

import os
from pathlib import Path

from izf.data.benchmark import Benchmark, validate, validation_classes
from izf.data.builtin import BUILTIN_NAMES, synthetic, toy
from izf.data.split import FeatureScaler, Split, make_split
from izf.data.xlsa17 import XLSA17_NAMES, check_files, read_xlsa17, write_res101, write_xlsa17
from izf.errors import DataError

__all__ = [
    "Benchmark",
    "FeatureScaler",
    "Split",
    "available",
    "check_available",
    "default_name",
    "default_root",
    "load_benchmark",
    "load_dataset",
    "make_split",
    "read_xlsa17",
    "synthetic",
    "toy",
    "validate",
    "validation_classes",
    "write_res101",
    "write_xlsa17",
    "DATASET_NAMES",
    "GZSL_BENCHMARKS",
]

DATASET_NAMES = (*BUILTIN_NAMES, "synthetic-sun", "synthetic-sun-small", *(n.lower() for n in XLSA17_NAMES))
GZSL_BENCHMARKS = ("awa1", "awa2", "cub", "sun", "apy")  # the five of the GZSL literature's tables (xlsa17)


def default_name(dataset: str) -> str:
    """The name `izf-<dataset>`: what a dataset's searches, MLflow experiment and registered model are called unless
    named otherwise."""
    return f"izf-{dataset.lower()}"


def default_root() -> Path:
    """Where datasets live: $IZF_DATA, else `$XDG_CACHE_HOME/izf/data` (default `~/.cache/izf/data`)."""
    if "IZF_DATA" in os.environ:
        return Path(os.environ["IZF_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "izf" / "data"


def check_available(name: str, *, root: Path | str | None = None) -> None:
    """A DataError unless `name` is a dataset whose files are there (built-in ones always are)."""
    key = name.lower()
    if key not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")
    if key.upper() in XLSA17_NAMES:
        check_files(key, root if root is not None else default_root())


def available(names: tuple[str, ...], *, root: Path | str | None = None) -> list[str]:
    """Those of `names` whose files are there."""
    out = []
    for name in names:
        try:
            check_available(name, root=root)
        except DataError:
            continue
        out.append(name)
    return out


def load_benchmark(name: str, *, root: Path | str | None = None, seed: int = 0) -> Benchmark:
    """Load a dataset by name: "toy", "synthetic", "synthetic-sun", "synthetic-sun-small" or an xlsa17 name
    (case-insensitive).

    Arguments:
        root: the xlsa17 folder; default `default_root()`.
        seed: seeds the built-in generators (ignored for real data).
    """
    key = name.lower()
    if key == "toy":
        return toy(seed=seed)
    if key in ("synthetic", "synthetic-sun", "synthetic-sun-small"):
        return synthetic(like=key.partition("-")[2] or None, seed=seed)
    if key.upper() not in XLSA17_NAMES:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")
    return read_xlsa17(key, root if root is not None else default_root())


def load_dataset(
    name: str,
    *,
    root: Path | str | None = None,
    protocol: str = "val",
    features: str = "minmax",
    attributes: str = "minmax",
    seed: int = 0,
) -> Split:
    """Load a dataset and build one protocol's split (see `make_split`).

    Example:
        >>> split = load_dataset("toy", protocol="test")
        >>> split.n_seen, split.n_classes, split.feature_dim
        (3, 4, 4)
    """
    bench = load_benchmark(name, root=root, seed=seed)
    return make_split(bench, protocol, features=features, attributes=attributes, seed=seed)
