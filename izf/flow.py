"""The invertible flow: fixed permutations and GLOW affine couplings that update both halves."""

import math

import torch
from torch import Tensor, nn

__all__ = ["Coupling", "Flow", "Permutation", "soft_clamp"]


def soft_clamp(s: Tensor, clamp: float) -> Tensor:
    """Squash log-scales smoothly into (-clamp, clamp), as FrEIA's GLOW block does."""
    return (2 * clamp / math.pi) * torch.atan(s / clamp)


def _subnet(inputs: int, outputs: int, hidden: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))
    nn.init.zeros_(net[-1].weight)  # each block starts as the identity
    nn.init.zeros_(net[-1].bias)
    return net


class Permutation(nn.Module):
    """A fixed random permutation of the features (seeded, stored as a buffer)."""

    def __init__(self, features: int, seed: int) -> None:
        super().__init__()
        perm = torch.randperm(features, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x: Tensor) -> Tensor:
        return x[..., self.perm]

    def inverse(self, y: Tensor) -> Tensor:
        return y[..., self.inverse_perm]


class Coupling(nn.Module):
    """GLOW affine coupling: y1 = x1 exp(s1(x2)) + t1(x2), then y2 = x2 exp(s2(y1)) + t2(y1).

    Arguments:
        features: input size D (split D//2 and the rest).
        hidden: width of the one hidden layer of each subnet.
        clamp: bound of the soft-clamped log-scales.
    """

    def __init__(self, features: int, hidden: int, clamp: float) -> None:
        super().__init__()
        self.d1, d2 = features // 2, features - features // 2
        self.clamp = clamp
        self.net1 = _subnet(d2, 2 * self.d1, hidden)
        self.net2 = _subnet(self.d1, 2 * d2, hidden)

    def _affine(self, net: nn.Module, h: Tensor) -> tuple[Tensor, Tensor]:
        s, t = net(h).chunk(2, dim=-1)
        return soft_clamp(s, self.clamp), t

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return y and log|det dy/dx|, shape (N,)."""
        x1, x2 = x[..., : self.d1], x[..., self.d1 :]
        s1, t1 = self._affine(self.net1, x2)
        y1 = x1 * s1.exp() + t1
        s2, t2 = self._affine(self.net2, y1)
        y2 = x2 * s2.exp() + t2
        return torch.cat([y1, y2], dim=-1), s1.sum(-1) + s2.sum(-1)

    def inverse(self, y: Tensor) -> Tensor:
        y1, y2 = y[..., : self.d1], y[..., self.d1 :]
        s2, t2 = self._affine(self.net2, y1)
        x2 = (y2 - t2) * (-s2).exp()
        s1, t1 = self._affine(self.net1, x2)
        x1 = (y1 - t1) * (-s1).exp()
        return torch.cat([x1, x2], dim=-1)


class Flow(nn.Module):
    """f: R^D -> R^D, `depth` blocks of [fixed permutation -> GLOW coupling].

    Arguments:
        features: D.
        depth: number of blocks K.
        hidden: subnet width.
        clamp: log-scale bound of each coupling.
        seed: seeds the permutations (block k uses seed + k).

    References:
        Invertible Zero-Shot Recognition Flows (Shen et al., ECCV 2020), arXiv:2007.04873

    Example:
        >>> flow = Flow(6, depth=2, hidden=8)
        >>> x = torch.randn(3, 6)
        >>> z, ladj = flow(x)
        >>> torch.allclose(flow.inverse(z), x, atol=1e-6), ladj.shape
        (True, torch.Size([3]))
    """

    def __init__(self, features: int, depth: int = 5, hidden: int = 1024, clamp: float = 2.0, seed: int = 0) -> None:
        super().__init__()
        if features < 2 or depth < 1 or hidden < 1 or clamp <= 0:
            raise ValueError(f"need features >= 2, depth >= 1, hidden >= 1, clamp > 0; got "
                             f"{features=}, {depth=}, {hidden=}, {clamp=}")
        self.features = features
        self.permutations = nn.ModuleList(Permutation(features, seed + k) for k in range(depth))
        self.couplings = nn.ModuleList(Coupling(features, hidden, clamp) for _ in range(depth))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return z = f(x), shape (N, D), and log|det J_f(x)|, shape (N,)."""
        ladj = x.new_zeros(x.shape[:-1])
        for permutation, coupling in zip(self.permutations, self.couplings, strict=True):
            x, block_ladj = coupling(permutation(x))
            ladj = ladj + block_ladj
        return x, ladj

    def inverse(self, z: Tensor) -> Tensor:
        """Return x = f^{-1}(z)."""
        for permutation, coupling in zip(reversed(self.permutations), reversed(self.couplings), strict=True):
            z = permutation.inverse(coupling.inverse(z))
        return z
