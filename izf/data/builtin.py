"""Built-in datasets that need no download: the paper's toy problem and a seeded synthetic benchmark."""

import numpy as np

from izf.data.benchmark import Benchmark, validate
from izf.errors import ConfigError

__all__ = ["toy", "synthetic", "BUILTIN_NAMES"]

BUILTIN_NAMES = ("toy", "synthetic")
SUN_SHAPE = {"n_classes": 717, "n_unseen": 72, "attribute_dim": 102, "feature_dim": 2048, "images_per_class": 20}
# SUN's classes, splits and attributes at a feature width where one trial takes minutes on 2 CPU cores.
SUN_SMALL_FEATURES = 256


def _split_per_class(
    labels: np.ndarray, unseen: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """trainval / test_seen / test_unseen image indices: all unseen images are test_unseen."""
    trainval, test_seen = [], []
    for c in np.setdiff1d(np.unique(labels), unseen):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * members.size))
        test_seen.append(members[:k])
        trainval.append(members[k:])
    return (
        np.sort(np.concatenate(trainval)),
        np.sort(np.concatenate(test_seen)),
        np.flatnonzero(np.isin(labels, unseen)),
    )


def toy(*, n_train: int = 400, n_test: int = 100, seed: int = 0) -> Benchmark:
    """The toy problem of IZF (ECCV 2020): four 2-d Gaussian blobs, the one at (1, 1) unseen.

    Class attributes are (0, 1), (0, 0), (1, 0) (seen) and (1, 1) (unseen); x = 2c - 1 + N(0, (1/3)^2 I),
    zero-padded to 4-d so that the flow's output splits into a 2-d semantic and a 2-d free factor.

    Arguments:
        n_train: trainval images per seen class (test_seen gets n_test, the unseen class 3 * n_test).
    """
    att = np.array([[0, 1], [0, 0], [1, 0], [1, 1]], np.float32)
    counts = [n_train + n_test] * 3 + [3 * n_test]
    labels = np.repeat(np.arange(4), counts)
    rng = np.random.default_rng(seed)
    x2 = 2 * att[labels] - 1 + rng.normal(0, 1 / 3, (labels.size, 2))
    features = np.concatenate([x2, np.zeros_like(x2)], axis=1).astype(np.float32)
    trainval, test_seen, test_unseen = _split_per_class(labels, np.array([3]), n_test / (n_train + n_test), rng)
    return validate(
        Benchmark("TOY", features, labels, att, ("top_left", "bottom_left", "bottom_right", "top_right"),
                  trainval, test_seen, test_unseen, None, "builtin", "builtin dataset 'toy'")
    )


def synthetic(
    *,
    like: str | None = None,
    n_classes: int = 50,
    n_unseen: int = 10,
    attribute_dim: int = 24,
    feature_dim: int = 128,
    images_per_class: int = 60,
    test_seen_fraction: float = 0.2,
    noise: float = 0.8,
    seed: int = 0,
) -> Benchmark:
    """A generated zero-shot benchmark with the structure of the real ones.

    Each class has a sparse, L2-normalised attribute vector (as xlsa17's `att`). Class means are a
    fixed random nonlinear map of the attributes (two layers, softplus); each image adds a
    class-independent low-rank nuisance and noise, then a ReLU (features are non-negative, as pooled
    ResNet features). So unseen classes are reachable from their attributes alone, but not linearly.

    Arguments:
        like: "sun" for SUN's shapes (2048-d, 717 classes, 102 attributes, SUN's split sizes);
            "sun-small" for SUN's class structure and split sizes with 256-d features.
    """
    if like is not None:
        if like.lower() not in ("sun", "sun-small"):
            raise ConfigError(f"synthetic(like=...) knows 'sun' and 'sun-small', got {like!r}")
        n_classes, n_unseen, attribute_dim, feature_dim, images_per_class = SUN_SHAPE.values()
        if like.lower() == "sun-small":
            feature_dim = SUN_SMALL_FEATURES
    if not 0 < n_unseen < n_classes - 1:
        raise ConfigError(f"need 0 < n_unseen < n_classes - 1, got {n_unseen=}, {n_classes=}")
    rng = np.random.default_rng(seed)
    att = (rng.random((n_classes, attribute_dim)) < 0.3) * rng.uniform(0.5, 1.0, (n_classes, attribute_dim))
    att[att.sum(axis=1) == 0, 0] = 1.0
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    hidden = 2 * attribute_dim
    w1 = rng.normal(0, 3.0, (attribute_dim, hidden))
    w2 = rng.normal(0, 1 / np.sqrt(hidden), (hidden, feature_dim))
    means = np.logaddexp(0, np.tanh(att @ w1) @ w2 * 2.0)
    means += rng.normal(0, 0.1, means.shape)  # what attributes do not explain about a class
    labels = np.repeat(np.arange(n_classes), images_per_class)
    nuisance = rng.normal(0, 1, (labels.size, 8)) @ rng.normal(0, 0.25, (8, feature_dim))
    noise = rng.normal(0, noise, (labels.size, feature_dim))
    features = np.maximum(means[labels] + nuisance + noise, 0).astype(np.float32)
    unseen = np.sort(rng.choice(n_classes, n_unseen, replace=False))
    trainval, test_seen, test_unseen = _split_per_class(labels, unseen, test_seen_fraction, rng)
    names = tuple(f"class_{c:03d}" for c in range(n_classes))
    return validate(
        Benchmark("SYNTHETIC", features, labels, att.astype(np.float32), names, trainval, test_seen,
                  test_unseen, None, "builtin", f"builtin dataset 'synthetic' (seed {seed})")
    )
