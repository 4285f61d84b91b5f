"""IZF: a flow whose latent splits into a class-tied semantic factor and a free factor."""

import torch
from torch import Tensor, nn

from izf.flow import Flow

__all__ = ["IZF"]


class IZF(nn.Module):
    """The invertible zero-shot flow.

    f(x) = [s; z]: the first `semantic_dim` latents s have prior N(code_y, σ_s^2 I) for class y, the
    rest z have prior N(0, σ_z^2 I), with the widths the training loss sets (izf.losses.flow_nll:
    σ_s^2 = d_s / (2 w D), σ_z^2 = (D - d_s) / D). Generating for class y is f^{-1}([code_y; tau * z]),
    z ~ N(0, I): the semantic factor at its prior mean, the free one at temperature tau, where tau = σ_z
    draws from the prior (0.975 at SUN's shapes, so the author's tau = 1 is within 3% of it).

    Arguments:
        flow: the bijection f.
        class_codes: the semantic prior mean of every class, P c_y, shape (C, d_s).

    References:
        Invertible Zero-Shot Recognition Flows (Shen et al., ECCV 2020), arXiv:2007.04873

    Example:
        >>> model = IZF(Flow(6, depth=2, hidden=8), torch.eye(3, 2))
        >>> s, z, ladj = model.encode(torch.randn(4, 6))
        >>> s.shape, z.shape, model.generate(torch.tensor([0, 2])).shape
        (torch.Size([4, 2]), torch.Size([4, 4]), torch.Size([2, 6]))
    """

    def __init__(self, flow: Flow, class_codes: Tensor) -> None:
        super().__init__()
        if not 1 <= class_codes.shape[1] < flow.features:
            raise ValueError(f"need 1 <= latent split < {flow.features}, got {class_codes.shape[1]}")
        self.flow = flow
        self.register_buffer("class_codes", class_codes.float())

    @property
    def semantic_dim(self) -> int:
        return self.class_codes.shape[1]

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return the semantic factor (N, d_s), the free factor (N, D - d_s) and log|det J| (N,)."""
        latent, ladj = self.flow(x)
        return latent[:, : self.semantic_dim], latent[:, self.semantic_dim :], ladj

    def decode(self, semantic: Tensor, free: Tensor) -> Tensor:
        return self.flow.inverse(torch.cat([semantic, free], dim=1))

    @property
    def free_dim(self) -> int:
        return self.flow.features - self.semantic_dim

    def free_noise(self, n: int, *, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """temperature * z for n samples, z ~ N(0, I) of the free factor's size."""
        codes = self.class_codes
        return temperature * torch.randn(n, self.free_dim, device=codes.device, dtype=codes.dtype, generator=generator)

    def generate(self, labels: Tensor, *, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Features for classes `labels` (N,): f^{-1}([code_y; temperature * z]), z ~ N(0, I)."""
        free = self.free_noise(labels.shape[0], temperature=temperature, generator=generator)
        return self.decode(self.class_codes[labels], free)

