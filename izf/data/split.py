"""Evaluation protocols (validation or test) and the preprocessing fitted on their training part."""

from dataclasses import dataclass

import numpy as np

from izf.data.benchmark import Benchmark, validation_classes
from izf.errors import ConfigError, DataError

__all__ = ["FeatureScaler", "Split", "make_split", "PROTOCOLS"]

PROTOCOLS = ("val", "test")
FEATURE_SCALINGS = ("minmax", "l2", "none")
ATTRIBUTE_SCALINGS = ("minmax", "none")


@dataclass(frozen=True)
class FeatureScaler:
    """Feature preprocessing fitted on training features only: `(x - shift) * scale`, then L2 if asked."""

    method: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, method: str, x: np.ndarray) -> "FeatureScaler":
        if method not in FEATURE_SCALINGS:
            raise ConfigError(f"feature scaling must be one of {FEATURE_SCALINGS}, got {method!r}")
        d = x.shape[1]
        shift, scale = np.zeros(d, np.float32), np.ones(d, np.float32)
        if method == "minmax":
            low, high = x.min(axis=0), x.max(axis=0)
            shift = low.astype(np.float32)
            scale = np.where(high > low, 1.0 / np.maximum(high - low, 1e-12), 1.0).astype(np.float32)
        return cls(method, shift, scale)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = ((x - self.shift) * self.scale).astype(np.float32)
        if self.method == "l2":
            y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        return y


@dataclass(frozen=True, eq=False)
class Split:
    """What one protocol trains and evaluates on, preprocessed, in a local label space.

    Local classes are ordered seen first, then unseen: labels `< n_seen` are seen classes.
    Under protocol "val" the seen classes are the train classes and the unseen ones the validation
    classes carved out of the seen classes; no test image is in it.
    """

    dataset: str
    protocol: str
    class_names: tuple[str, ...]
    attributes: np.ndarray  # (C, A)
    n_seen: int
    train_x: np.ndarray
    train_y: np.ndarray
    seen_x: np.ndarray
    seen_y: np.ndarray
    unseen_x: np.ndarray
    unseen_y: np.ndarray
    scaler: FeatureScaler

    @property
    def n_classes(self) -> int:
        """Classes of the split's evaluation (seen and unseen)."""
        return self.attributes.shape[0]

    @property
    def feature_dim(self) -> int:
        """Feature dimension D."""
        return self.train_x.shape[1]

    @property
    def attribute_dim(self) -> int:
        """Attribute dimension A."""
        return self.attributes.shape[1]


def _hold_out_per_class(idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, per-class `fraction` of idx (at least one image of each class with two or more)."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels[idx]):
        members = idx[labels[idx] == c]
        k = int(round(fraction * members.size))
        k = min(max(k, 1), members.size - 1) if members.size > 1 else 0
        held.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(held))


def _scale_attributes(att: np.ndarray, method: str) -> np.ndarray:
    if method not in ATTRIBUTE_SCALINGS:
        raise ConfigError(f"attribute scaling must be one of {ATTRIBUTE_SCALINGS}, got {method!r}")
    if method == "minmax":  # one global min and max, as the IZF author's code does
        low, high = att.min(), att.max()
        att = (att - low) / max(high - low, 1e-12)
    return att.astype(np.float32)


def make_split(
    b: Benchmark,
    protocol: str = "val",
    *,
    features: str = "minmax",
    attributes: str = "minmax",
    seed: int = 0,
    val_seen_fraction: float = 0.2,
) -> Split:
    """Build the training and evaluation sets of one protocol.

    Arguments:
        protocol: "val" (model selection: trainval only, validation classes carved out of the seen
            classes, a held-out `val_seen_fraction` of the train classes' images as val-seen) or
            "test" (train on trainval, evaluate on test_seen / test_unseen).
        features: "minmax" (fitted on the training part), "l2" or "none".
        attributes: "minmax" (global min/max of the split's classes to [0, 1]) or "none".
        seed: seeds the held-out images and, where the data has no official one, the class split.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if not 0 < val_seen_fraction < 1:
        raise ConfigError(f"need 0 < val_seen_fraction < 1, got {val_seen_fraction=}")
    if protocol == "test":
        seen, unseen = b.seen_classes, b.unseen_classes
        train, seen_eval, unseen_eval = b.trainval, b.test_seen, b.test_unseen
    else:
        unseen = validation_classes(b, seed=seed)
        seen = np.setdiff1d(b.seen_classes, unseen)
        in_val = np.isin(b.labels[b.trainval], unseen)
        unseen_eval, pool = b.trainval[in_val], b.trainval[~in_val]
        seen_eval = _hold_out_per_class(pool, b.labels, val_seen_fraction, seed)
        train = np.setdiff1d(pool, seen_eval)
    for part, idx in (("training", train), ("seen evaluation", seen_eval), ("unseen evaluation", unseen_eval)):
        if idx.size == 0:
            raise DataError(f"{b.source}: the {part} part of protocol {protocol!r} has no images")
    classes = np.concatenate([seen, unseen])
    local = np.full(b.attributes.shape[0], -1, np.int64)
    local[classes] = np.arange(classes.size)
    scaler = FeatureScaler.fit(features, b.features[train])
    return Split(
        dataset=b.name,
        protocol=protocol,
        class_names=tuple(b.class_names[c] for c in classes),
        attributes=_scale_attributes(b.attributes[classes], attributes),
        n_seen=int(seen.size),
        train_x=scaler(b.features[train]),
        train_y=local[b.labels[train]],
        seen_x=scaler(b.features[seen_eval]),
        seen_y=local[b.labels[seen_eval]],
        unseen_x=scaler(b.features[unseen_eval]),
        unseen_y=local[b.labels[unseen_eval]],
        scaler=scaler,
    )
