"""The three IZF loss terms, as pure tensor functions."""

import torch  # noqa: F401 - the examples below use it
from torch import Tensor

__all__ = ["flow_nll", "centralizing", "centralizing_to_centres", "class_centres", "median_sq_distance", "mmd",
           "MMD_WIDTHS"]

# The multiscale inverse-multiquadric widths of the IZF author's code (those of the FrEIA/INN papers).
MMD_WIDTHS = (0.1, 0.2, 1.5, 3.0, 5.0, 10.0)


def flow_nll(semantic: Tensor, free: Tensor, ladj: Tensor, codes: Tensor, *, semantic_weight: float) -> Tensor:
    """Per-dimension negative log-likelihood of the factorised prior (the IZF author's normalisation).

    `semantic_weight * mean((s - code_y)^2) + mean(z^2) / 2 - mean(ladj) / D`, means over elements,
    so the value does not grow with D or the batch size.

    The prior it is the likelihood of: times N·D it is, exactly, sum over samples of
    `||s - code_y||^2 / (2 σ_s^2) + ||z||^2 / (2 σ_z^2) - ladj`, the NLL (up to a constant) of
    s ~ N(code_y, σ_s^2 I) and z ~ N(0, σ_z^2 I) with
        σ_s^2 = d_s / (2 · semantic_weight · D)     (SUN, w = 10: σ_s = 0.050; the toy preset: 0.167)
        σ_z^2 = (D - d_s) / D                       (SUN: σ_z = 0.975; the toy: 0.707)
    where d_s = s's width. So the prior is not N(code_y, I) x N(0, I): the semantic factor is held ~20x
    tighter on SUN, and generating with temperature τ draws z at τ / σ_z times the prior's spread.

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
    sums, counts = _class_sums(x, labels, num_classes)
    means = sums / counts.clamp_min(1)[:, None]
    distances = (prototypes - means[prototype_labels]).norm(dim=1)
    repeats = x.new_zeros(num_classes).index_add_(0, prototype_labels, x.new_ones(prototype_labels.shape[0]))
    weights = (counts[prototype_labels] > 0).to(x.dtype) / repeats[prototype_labels]
    return (distances * weights).sum() / (counts > 0).sum()


def centralizing_to_centres(prototypes: Tensor, prototype_labels: Tensor, centres: Tensor) -> Tensor:
    """Mean over the distinct classes among `prototype_labels` of ||prototype_y - centre_y||_2.

    The centralizing loss against fixed class centres (e.g. those of the whole training part, see
    `class_centres`) instead of the batch's own means: at SUN's ~1.2 images per class in a batch the batch
    "mean" is mostly one image. Repeated labels count once, as in `centralizing`.

    Example:
        >>> centres = torch.tensor([[0.0, 0.0], [1.0, 1.0], [9.0, 9.0]])
        >>> p, labels = torch.tensor([[3.0, 4.0], [3.0, 4.0], [1.0, 2.0]]), torch.tensor([0, 0, 1])
        >>> float(centralizing_to_centres(p, labels, centres))  # class 0 at 5, class 1 at 1
        3.0
    """
    ones = prototypes.new_ones(prototype_labels.shape[0])
    repeats = prototypes.new_zeros(centres.shape[0]).index_add_(0, prototype_labels, ones)
    distances = (prototypes - centres[prototype_labels]).norm(dim=1)
    return (distances / repeats[prototype_labels]).sum() / (repeats > 0).sum()


def class_centres(x: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """The mean feature of each class (num_classes, D); a class without samples gets zeros."""
    sums, counts = _class_sums(x, labels, num_classes)
    return sums / counts.clamp_min(1)[:, None]


def _class_sums(x: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Each class's sum of features (num_classes, D) and number of samples (num_classes,)."""
    counts = x.new_zeros(num_classes).index_add_(0, labels, x.new_ones(labels.shape[0]))
    return x.new_zeros(num_classes, x.shape[1]).index_add_(0, labels, x), counts


def median_sq_distance(x: Tensor, *, sample: int = 2048, generator: torch.Generator | None = None) -> float:
    """The median squared Euclidean distance between two distinct rows of x, over at most `sample` rows
    drawn at random (the median heuristic's kernel scale).

    Example:
        >>> median_sq_distance(torch.tensor([[0.0], [1.0], [3.0]]))  # pairs at 1, 9 and 4
        4.0
    """
    if x.shape[0] > sample:
        x = x[torch.randperm(x.shape[0], generator=generator, device=generator.device if generator else "cpu")
              [:sample].to(x.device)]
    sq = (x.square().sum(1)[:, None] + x.square().sum(1)[None, :] - 2 * x @ x.T).clamp_min(0)
    upper = torch.triu_indices(x.shape[0], x.shape[0], offset=1, device=x.device)
    return float(sq[upper[0], upper[1]].median())


def _imq(a: Tensor, b: Tensor, widths: tuple[float, ...]) -> Tensor:
    # ||a - b||^2 from one matmul; cdist would take a square root only to square it again.
    sq_dist = (a.square().sum(1)[:, None] + b.square().sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)
    return sum(c / (c + sq_dist) for c in widths)


def mmd(x: Tensor, y: Tensor, *, widths: tuple[float, ...] = MMD_WIDTHS) -> Tensor:
    """Squared MMD between samples x (N, D) and y (M, D) with a multiscale inverse-multiquadric kernel.

    The unbiased estimator (the U-statistic MMD^2_u of Gretton et al., JMLR 2012): the within-sample terms
    leave their diagonals out, and the cross term averages all N*M pairs, which is already unbiased for two
    independent samples. As in the IZF author's code.
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
