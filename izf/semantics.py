"""The latent split: how class attributes become the prior means of the semantic latent factor."""

import numpy as np

__all__ = ["semantic_projection"]


def semantic_projection(attributes: np.ndarray, dim: int, *, seed: int = 0) -> np.ndarray:
    """The fixed matrix P (dim x A) with which class semantics P c_y sit in the first `dim` latents.

    - dim == A: the identity (the paper's choice, d_s = attribute dim);
    - dim < A: the top `dim` principal directions of the centred class-attribute matrix, as rows;
    - dim > A: an orthonormal lift (seeded), so distances between classes are kept exactly.

    Arguments:
        attributes: class attributes, shape (C, A).
        dim: the latent split d_s, 1 <= dim.

    Example:
        >>> att = np.eye(3)
        >>> semantic_projection(att, 3).shape, semantic_projection(att, 2).shape, semantic_projection(att, 5).shape
        ((3, 3), (2, 3), (5, 3))
    """
    a = attributes.shape[1]
    if dim < 1:
        raise ValueError(f"need latent split >= 1, got {dim}")
    if dim == a:
        return np.eye(a, dtype=np.float32)
    if dim < a:
        centred = attributes - attributes.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=True)
        return vt[:dim].astype(np.float32)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, a)))
    return q.astype(np.float32)
