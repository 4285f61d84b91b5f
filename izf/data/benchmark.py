"""A zero-shot benchmark as the xlsa17 files describe it, and the checks every source must pass."""

from dataclasses import dataclass

import numpy as np

from izf.errors import DataError

# Official train/validation class counts of the proposed splits (seen = train + val).
OFFICIAL_VAL_CLASSES = {"AWA1": 13, "AWA2": 13, "CUB": 50, "SUN": 65, "APY": 5, "FLO": 20}

__all__ = ["Benchmark", "validate", "validation_classes"]


@dataclass(frozen=True, eq=False)
class Benchmark:
    """Images, labels, class semantics and the proposed-split indices of one dataset.

    Arguments:
        name: dataset name, e.g. "SUN".
        features: image features, shape (N, D), float32.
        labels: 0-based class of each image, shape (N,).
        attributes: class semantics, one row per class, shape (C, A), float32.
        class_names: C names.
        trainval, test_seen, test_unseen: 0-based image indices of the proposed splits.
        val_classes: the official validation classes (0-based), or None where the source gives none.
        release: "2018", "2019" or "2020" (see docs/protocol.md), or "builtin".
        source: where the data came from, for error messages.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    attributes: np.ndarray
    class_names: tuple[str, ...]
    trainval: np.ndarray
    test_seen: np.ndarray
    test_unseen: np.ndarray
    val_classes: np.ndarray | None
    release: str
    source: str

    @property
    def seen_classes(self) -> np.ndarray:
        """The classes of the trainval images, sorted."""
        return np.unique(self.labels[self.trainval])

    @property
    def unseen_classes(self) -> np.ndarray:
        """The classes of the test-unseen images, sorted."""
        return np.unique(self.labels[self.test_unseen])

    def checksum(self) -> str:
        """SHA-256 of everything a result depends on: features, labels, attributes and the splits."""
        import hashlib

        h = hashlib.sha256()
        for a in (self.features, self.labels, self.attributes, self.trainval, self.test_seen, self.test_unseen):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr(None if self.val_classes is None else self.val_classes.tolist()).encode())
        return h.hexdigest()

    def summary(self) -> dict:
        """Counts a user checks a download against (the `inspect` command prints them)."""
        val = validation_classes(self)
        return {
            "dataset": self.name,
            "feature_dim": int(self.features.shape[1]),
            "attribute_dim": int(self.attributes.shape[1]),
            "n_classes": int(self.attributes.shape[0]),
            "n_images": int(self.features.shape[0]),
            "n_seen_classes": int(self.seen_classes.size),
            "n_unseen_classes": int(self.unseen_classes.size),
            "n_trainval": int(self.trainval.size),
            "n_test_seen": int(self.test_seen.size),
            "n_test_unseen": int(self.test_unseen.size),
            "n_val_seen_classes": int(self.seen_classes.size - val.size),
            "n_val_unseen_classes": int(val.size),
            "val_classes_from": "official" if self.val_classes is not None else "seeded",
            "release": self.release,
        }


def validate(b: Benchmark) -> Benchmark:
    """Check the invariants every later step relies on; raise DataError naming the source and the fix."""
    where = b.source
    n, c = b.features.shape[0], b.attributes.shape[0]
    if b.features.ndim != 2 or b.labels.shape != (n,):
        raise DataError(f"{where}: features {b.features.shape} and labels {b.labels.shape} disagree on N")
    if b.attributes.ndim != 2 or len(b.class_names) != c:
        raise DataError(f"{where}: {c} attribute rows but {len(b.class_names)} class names")
    bad = ~np.isfinite(b.features)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"{where}: {rows.size} images have NaN/Inf features (first image index {rows[0]}); "
            "re-extract or re-download the features"
        )
    if not np.isfinite(b.attributes).all():
        raise DataError(f"{where}: the attribute matrix holds NaN/Inf")
    if b.labels.min() < 0 or b.labels.max() >= c:
        raise DataError(f"{where}: labels span [{b.labels.min()}, {b.labels.max()}] but there are {c} classes")
    splits = {"trainval": b.trainval, "test_seen": b.test_seen, "test_unseen": b.test_unseen}
    for split, idx in splits.items():
        if idx.size == 0:
            raise DataError(f"{where}: split {split} is empty")
        if idx.min() < 0 or idx.max() >= n:
            raise DataError(f"{where}: {split} indexes images up to {idx.max()} but there are {n}")
    names = list(splits)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            common = np.intersect1d(splits[first], splits[second])
            if common.size:
                raise DataError(f"{where}: {common.size} images are in both {first} and {second}")
    seen, unseen = b.seen_classes, b.unseen_classes
    leaked = np.intersect1d(seen, unseen)
    if leaked.size:
        raise DataError(
            f"{where}: test_unseen images carry seen classes {b.class_names[leaked[0]]!r} "
            f"({leaked.size} classes); the labels do not match this split file"
        )
    if not np.isin(b.labels[b.test_seen], seen).all():
        raise DataError(f"{where}: test_seen holds images of classes that are not in trainval")
    if b.val_classes is not None and not np.isin(b.val_classes, seen).all():
        raise DataError(f"{where}: validation classes must be seen classes")
    return b


def validation_classes(b: Benchmark, *, seed: int = 0) -> np.ndarray:
    """The seen classes held out as validation-unseen: the official ones, else a seeded choice.

    The seeded choice keeps the official count where the dataset is known, else the test split's
    unseen-to-all ratio applied to the seen classes.
    """
    if b.val_classes is not None:
        return np.sort(b.val_classes)
    seen = b.seen_classes
    n_val = OFFICIAL_VAL_CLASSES.get(b.name.upper())
    if n_val is None or n_val >= seen.size:
        ratio = b.unseen_classes.size / (seen.size + b.unseen_classes.size)
        n_val = int(np.clip(round(seen.size * ratio), 1, seen.size - 1))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(seen, size=n_val, replace=False))
