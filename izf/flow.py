"""The invertible flow: a mixing layer (fixed permutation, or a learned LU-parametrised linear map) and a
GLOW affine coupling that updates both halves, per block."""

import math

import torch
from torch import Tensor, nn

__all__ = ["Coupling", "Flow", "LULinear", "Permutation", "soft_clamp", "MIXINGS", "SUBNET_PRECISIONS"]

MIXINGS = ("permute", "lu")
SUBNET_PRECISIONS = ("float32", "bfloat16")


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

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[..., self.perm], x.new_zeros(())

    def inverse(self, y: Tensor) -> Tensor:
        return y[..., self.inverse_perm]


class LULinear(nn.Module):
    """A learned invertible linear map y = P L U x + b (Glow's LU form), starting as a fixed permutation P.

    L is unit lower triangular, U upper triangular with a positive diagonal exp(log_scale), so
    log|det| = sum(log_scale) and the inverse is two triangular solves. It lets the flow represent any
    affine map of the features exactly; the permutation-only flow must build one out of couplings.
    W is never formed: the forward pass is two (N, D) x (D, D) products.
    """

    def __init__(self, features: int, seed: int) -> None:
        super().__init__()
        self.permutation = Permutation(features, seed)
        self.lower = nn.Parameter(torch.zeros(features, features))
        self.upper = nn.Parameter(torch.zeros(features, features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("strictly_lower", torch.ones(features, features).tril(-1))

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.lower.shape[0], device=self.lower.device, dtype=self.lower.dtype)
        lower = self.lower * self.strictly_lower + eye
        upper = self.upper * self.strictly_lower.T + torch.diag(self.log_scale.exp())
        return lower, upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lower, upper = self._factors()
        y, _ = self.permutation(x @ upper.T @ lower.T)
        return y + self.bias, self.log_scale.sum()

    def inverse(self, y: Tensor) -> Tensor:
        lower, upper = self._factors()
        u = self.permutation.inverse(y - self.bias)
        w = torch.linalg.solve_triangular(lower.T, u, upper=True, left=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper.T, w, upper=False, left=False)


class Coupling(nn.Module):
    """GLOW affine coupling: y1 = x1 exp(s1(x2)) + t1(x2), then y2 = x2 exp(s2(y1)) + t2(y1).

    Arguments:
        features: input size D (split D//2 and the rest).
        hidden: width of the one hidden layer of each subnet.
        clamp: bound of the soft-clamped log-scales.
        subnet_precision: "float32", or "bfloat16": the subnets' matmuls run in bfloat16 (autocast) and
            their output returns to float32, so the affine update and log|det| stay in float32. The
            inverse then matches the forward pass to ~1e-3 rather than ~1e-6 (bfloat16 rounds the
            subnet inputs), which generation does not notice; about 2x the GEMM speed on CPUs with
            AVX-512 BF16 and on GPUs with bfloat16 tensor cores.
    """

    def __init__(self, features: int, hidden: int, clamp: float, subnet_precision: str = "float32") -> None:
        super().__init__()
        self.d1, d2 = features // 2, features - features // 2
        self.clamp = clamp
        self.low_precision = subnet_precision == "bfloat16"
        self.net1 = _subnet(d2, 2 * self.d1, hidden)
        self.net2 = _subnet(self.d1, 2 * d2, hidden)

    def _affine(self, net: nn.Module, h: Tensor) -> tuple[Tensor, Tensor]:
        if self.low_precision:
            with torch.autocast(h.device.type, dtype=torch.bfloat16):
                out = net(h)
            out = out.float()
        else:
            out = net(h)
        s, t = out.chunk(2, dim=-1)
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
    """f: R^D -> R^D, `depth` blocks of [mixing -> GLOW coupling].

    Arguments:
        features: D.
        depth: number of blocks K.
        hidden: subnet width.
        clamp: log-scale bound of each coupling.
        seed: seeds the permutations (block k uses seed + k).
        mixing: "permute" (a fixed random permutation per block, as in the IZF author's code) or "lu"
            (a learned LULinear per block, starting at that permutation).
        subnet_precision: "float32" or "bfloat16" (see Coupling).

    References:
        Invertible Zero-Shot Recognition Flows (Shen et al., ECCV 2020), arXiv:2007.04873

    Example:
        >>> flow = Flow(6, depth=2, hidden=8)
        >>> x = torch.randn(3, 6)
        >>> z, ladj = flow(x)
        >>> torch.allclose(flow.inverse(z), x, atol=1e-6), ladj.shape
        (True, torch.Size([3]))
    """

    def __init__(self, features: int, depth: int = 5, hidden: int = 1024, clamp: float = 2.0, seed: int = 0,
                 mixing: str = "permute", subnet_precision: str = "float32") -> None:
        super().__init__()
        if (features < 2 or depth < 1 or hidden < 1 or clamp <= 0 or mixing not in MIXINGS
                or subnet_precision not in SUBNET_PRECISIONS):
            raise ValueError(f"need features >= 2, depth >= 1, hidden >= 1, clamp > 0, mixing in {MIXINGS}, "
                             f"subnet_precision in {SUBNET_PRECISIONS}; got {features=}, {depth=}, {hidden=}, "
                             f"{clamp=}, {mixing=}, {subnet_precision=}")
        self.features = features
        mixer = Permutation if mixing == "permute" else LULinear
        self.mixings = nn.ModuleList(mixer(features, seed + k) for k in range(depth))
        self.couplings = nn.ModuleList(Coupling(features, hidden, clamp, subnet_precision) for _ in range(depth))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return z = f(x), shape (N, D), and log|det J_f(x)|, shape (N,)."""
        ladj = x.new_zeros(x.shape[:-1])
        for mixing, coupling in zip(self.mixings, self.couplings, strict=True):
            x, mixing_ladj = mixing(x)
            x, coupling_ladj = coupling(x)
            ladj = ladj + mixing_ladj + coupling_ladj
        return x, ladj

    def inverse(self, z: Tensor) -> Tensor:
        """Return x = f^{-1}(z)."""
        for mixing, coupling in zip(reversed(self.mixings), reversed(self.couplings), strict=True):
            z = mixing.inverse(coupling.inverse(z))
        return z
