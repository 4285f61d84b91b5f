import torch

from izf.losses import centralizing, flow_nll, mmd


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
    prototypes = torch.tensor([[5.0, 5.0], [1.0, 1.0]])  # classes 1 and 3, in unique() order
    assert float(centralizing(prototypes, x, y)) == 0.0
    assert float(centralizing(prototypes + torch.tensor([3.0, 4.0]), x, y)) == 5.0


def test_flow_nll_is_per_dimension():
    s, z, ladj = torch.ones(8, 2), torch.ones(8, 6) * 2, torch.full((8,), 4.0)
    value = flow_nll(s, z, ladj, torch.zeros(8, 2), semantic_weight=10.0)
    assert torch.isclose(value, torch.tensor(10 * 1.0 + 4.0 / 2 - 4.0 / 8))
