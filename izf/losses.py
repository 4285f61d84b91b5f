"""The three IZF loss terms, as pure tensor functions."""

import torch
from torch import Tensor

__all__ = ["flow_nll", "centralizing", "mmd", "MMD_WIDTHS"]

# The multiscale inverse-multiquadric widths of the IZF author's code (those of the FrEIA/INN papers).
MMD_WIDTHS = (0.1, 0.2, 1.5, 3.0, 5.0, 10.0)


def flow_nll(semantic: Tensor, free: Tensor, ladj: Tensor, codes: Tensor, *, semantic_weight: float) -> Tensor:
    """Per-dimension negative log-likelihood of the factorised prior.

    `semantic_weight * mean((s - code_y)^2) + mean(z^2) / 2 - mean(ladj) / D`, means over elements,
    so the value does not grow with D or the batch size.

    Arguments:
        semantic: s, shape (N, d_s); free: z, shape (N, D - d_s); ladj: log|det J|, shape (N,);
        codes: each sample's class code, shape (N, d_s).
    """
    d = semantic.shape[1] + free.shape[1]
    return (
        semantic_weight * (semantic - codes).square().mean()
        + free.square().mean() / 2
        - ladj.mean() / d
    )


def centralizing(prototypes: Tensor, x: Tensor, labels: Tensor) -> Tensor:
    """Mean over the classes in the batch of ||prototype_y - mean of the batch's x of class y||_2.

    Arguments:
        prototypes: f^{-1}([code_y; 0]) of each class present, shape (K, D), in `labels.unique()` order.
        x: real features (N, D); labels: their classes (N,).
    """
    classes, index = labels.unique(return_inverse=True)
    sums = torch.zeros(classes.shape[0], x.shape[1], device=x.device, dtype=x.dtype).index_add_(0, index, x)
    counts = torch.bincount(index, minlength=classes.shape[0]).to(x.dtype)
    return (prototypes - sums / counts[:, None]).norm(dim=1).mean()


def _imq(a: Tensor, b: Tensor, widths: tuple[float, ...]) -> Tensor:
    # ||a - b||^2 from one matmul; cdist would take a square root only to square it again.
    sq_dist = (a.square().sum(1)[:, None] + b.square().sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)
    return sum(c / (c + sq_dist) for c in widths)


def mmd(x: Tensor, y: Tensor, *, widths: tuple[float, ...] = MMD_WIDTHS) -> Tensor:
    """Squared MMD between samples x (N, D) and y (M, D) with a multiscale inverse-multiquadric kernel.

    Unbiased within-sample terms (diagonals left out), biased cross term, as in the IZF author's code.
    The kernel is bounded, so -MMD^2 used as a loss cannot run away.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g)
        >>> bool(mmd(a, b) < 0.05 < mmd(a, b + 2))
        True
    """
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _imq(x, x, widths), _imq(y, y, widths), _imq(x, y, widths)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2 * kxy.mean()
