import pytest
import torch

from izf.losses import (
    MMD_WIDTHS,
    centralizing,
    centralizing_to_centres,
    class_centres,
    flow_nll,
    median_sq_distance,
    mmd,
)


@pytest.mark.parametrize(("n", "m", "d"), [(2, 3, 1), (5, 5, 4), (7, 3, 16), (20, 11, 64)])
def test_mmd_equals_the_estimator_written_pair_by_pair(n, m, d):
    """The vectorised kernel (norms expanded, one matmul, clamped) against the definition, pair by pair:
    within-sample means over i != j, the cross mean over all pairs (together the unbiased MMD^2_u),
    k(a, b) = sum_c c / (c + ||a - b||^2)."""
    g = torch.Generator().manual_seed(100 * n + d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64) + 0.3

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        return sum(c / (c + float(((a - b) ** 2).sum())) for c in MMD_WIDTHS)

    within_x = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    within_y = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    cross = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    assert float(mmd(x, y)) == pytest.approx(within_x + within_y - 2 * cross, rel=1e-9, abs=1e-12)


def test_mmd_near_zero_within_one_distribution_and_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 4, generator=g), torch.randn(300, 4, generator=g)
    values = [float(mmd(a, b + shift)) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert abs(values[0]) < 0.02
    assert values == sorted(values) and values[-1] > 10 * abs(values[0])


def test_mmd_is_bounded_so_the_negative_term_cannot_run_away():
    a = torch.randn(50, 3)
    assert float(mmd(a, a + 1e6)) <= 2 * 6 + 1e-6  # 6 widths, each kernel value <= 1


def test_centralizing_is_zero_when_prototypes_are_the_class_means():
    x = torch.tensor([[0.0, 0.0], [2.0, 2.0], [5.0, 5.0]])
    y = torch.tensor([3, 3, 1])
    classes = torch.tensor([1, 3])
    prototypes = torch.tensor([[5.0, 5.0], [1.0, 1.0]])
    assert float(centralizing(prototypes, classes, x, y, num_classes=4)) == 0.0
    assert float(centralizing(prototypes + torch.tensor([3.0, 4.0]), classes, x, y, num_classes=4)) == 5.0


def test_centralizing_is_the_same_loss_for_every_choice_of_prototype_rows():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 30, (64,), generator=g)  # some classes absent
    embedding, weight = torch.randn(40, 3, generator=g), torch.randn(3, 5, generator=g)

    def loss_and_grad(rows: torch.Tensor) -> tuple[float, torch.Tensor]:
        w = weight.clone().requires_grad_()
        loss = centralizing(embedding[rows] @ w, rows, x, y, num_classes=40)
        loss.backward()
        return float(loss.detach()), w.grad

    by_unique, per_sample, every_class = (loss_and_grad(r) for r in (y.unique(), y, torch.arange(40)))
    for value, grad in (per_sample, every_class):
        assert abs(value - by_unique[0]) < 1e-5 and torch.allclose(grad, by_unique[1], atol=1e-5)
    means = torch.stack([x[y == c].mean(0) for c in y.unique()])
    direct = (embedding[y.unique()] @ weight - means).norm(dim=1).mean()
    assert abs(by_unique[0] - float(direct)) < 1e-5


def test_flow_nll_is_per_dimension():
    s, z, ladj = torch.ones(8, 2), torch.ones(8, 6) * 2, torch.full((8,), 4.0)
    value = flow_nll(s, z, ladj, torch.zeros(8, 2), semantic_weight=10.0)
    assert torch.isclose(value, torch.tensor(10 * 1.0 + 4.0 / 2 - 4.0 / 8))


@pytest.mark.parametrize("n, d_s, d, w", [(5, 2, 4, 9.0), (7, 102, 2048, 10.0), (3, 24, 128, 1.0)])
def test_flow_nll_is_the_nll_of_the_gaussian_prior_its_docstring_names(n, d_s, d, w):
    g = torch.Generator().manual_seed(d)
    s, z, codes, ladj = (torch.randn(*shape, generator=g, dtype=torch.float64)
                         for shape in ((n, d_s), (n, d - d_s), (n, d_s), (n,)))
    var_s, var_z = (torch.tensor(v, dtype=torch.float64) for v in (d_s / (2 * w * d), (d - d_s) / d))
    prior = torch.distributions.Normal  # log-densities with their constants, then the constants taken off
    nll = -(prior(codes, var_s.sqrt()).log_prob(s).sum() + prior(0.0, var_z.sqrt()).log_prob(z).sum() + ladj.sum())
    constants = n * (d_s * torch.log(2 * torch.pi * var_s) + (d - d_s) * torch.log(2 * torch.pi * var_z)) / 2
    assert torch.isclose(n * d * flow_nll(s, z, ladj, codes, semantic_weight=w), nll - constants, rtol=1e-10)


@pytest.mark.parametrize(("classes", "rows", "d"), [(3, 1, 2), (5, 9, 3), (40, 25, 16)])
def test_centralizing_to_centres_is_the_mean_over_distinct_classes_written_out(classes, rows, d):
    g = torch.Generator().manual_seed(classes + rows)
    centres = torch.randn(classes, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (rows,), generator=g)
    prototypes = torch.randn(rows, d, generator=g, dtype=torch.float64)
    prototypes = torch.stack([prototypes[labels.tolist().index(y)] for y in labels.tolist()])  # a class's rows agree
    per_class = {y: float(((prototypes[i] - centres[y]) ** 2).sum() ** 0.5) for i, y in enumerate(labels.tolist())}
    expected = sum(per_class.values()) / len(per_class)
    assert float(centralizing_to_centres(prototypes, labels, centres)) == pytest.approx(expected, rel=1e-12)


def test_class_centres_and_the_median_distance_against_numpy():
    import numpy as np
    from scipy.spatial.distance import pdist

    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(60, 7, generator=g, dtype=torch.float64), torch.randint(0, 6, (60,), generator=g)
    y[y == 4] = 5  # class 4 has no samples: zeros
    expected = np.stack([x[y == c].mean(0).numpy() if (y == c).any() else np.zeros(7) for c in range(6)])
    assert np.allclose(class_centres(x, y, 6).numpy(), expected, rtol=1e-12)
    squared = pdist(x.numpy(), "sqeuclidean")  # 1770 pairs: torch's median is the lower middle value
    assert median_sq_distance(x) == pytest.approx(np.sort(squared)[(squared.size - 1) // 2], rel=1e-9)
    a = median_sq_distance(x, sample=20, generator=torch.Generator().manual_seed(1))
    b = median_sq_distance(x, sample=20, generator=torch.Generator().manual_seed(1))
    assert a == b and 0.5 * np.median(squared) < a < 2 * np.median(squared)
