"""The three IZF loss terms, as pure tensor functions."""

import torch  # noqa: F401 - the examples below use it
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


def centralizing(prototypes: Tensor, prototype_labels: Tensor, x: Tensor, labels: Tensor, *,
                 num_classes: int) -> Tensor:
    """Mean over the classes in the batch of ||prototype_y - mean of the batch's x of class y||_2.

    Every shape here follows from the arguments' shapes, none from their values, so on a GPU the
    loss needs no host sync (torch.unique and torch.bincount would wait for the device).

    Arguments:
        prototypes: f^{-1}([code_c; 0]) for the classes `prototype_labels` (P,), in any order, repeats
            allowed, each class of `labels` among them: e.g. every class, or one row per sample.
        x: real features (N, D); labels: their classes (N,), in [0, num_classes).

    Example:
        >>> x, y = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]]), torch.tensor([1, 1, 2])
        >>> p = torch.tensor([[9.0, 9.0], [1.0, 0.0], [5.0, 5.0]])  # class 0 is not in the batch
        >>> float(centralizing(p, torch.arange(3), x, y, num_classes=3))
        0.0
        >>> float(centralizing(p[y] + torch.tensor([3.0, 4.0]), y, x, y, num_classes=3))
        5.0
    """
    counts = x.new_zeros(num_classes).index_add_(0, labels, x.new_ones(labels.shape[0]))
    means = x.new_zeros(num_classes, x.shape[1]).index_add_(0, labels, x) / counts.clamp_min(1)[:, None]
    distances = (prototypes - means[prototype_labels]).norm(dim=1)
    repeats = x.new_zeros(num_classes).index_add_(0, prototype_labels, x.new_ones(prototype_labels.shape[0]))
    weights = (counts[prototype_labels] > 0).to(x.dtype) / repeats[prototype_labels]
    return (distances * weights).sum() / (counts > 0).sum()


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
