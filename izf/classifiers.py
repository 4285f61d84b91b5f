"""The two IZF classifiers: naive Bayes in the semantic factor, and a softmax on generated features."""

import torch
from torch import Tensor, nn

from izf.model import IZF

__all__ = ["Classifier", "NaiveBayes", "Softmax"]

# Small training sets (a few generated features per class) still get enough optimizer steps.
MIN_STEPS_PER_EPOCH = 20


class Classifier:
    """`fit(features, labels)`, then `scores(features)` over all C classes and `predict`.

    Calibrated stacking subtracts `calibration` from the scores of the first `n_seen` classes
    (Chao et al., ECCV 2016), trading seen for unseen accuracy in GZSL.
    """

    def __init__(self, n_seen: int, *, calibration: float = 0.0) -> None:
        self.n_seen, self.calibration = n_seen, calibration

    def fit(self, features: Tensor, labels: Tensor) -> "Classifier":
        return self

    def scores(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def predict(self, features: Tensor, candidates: Tensor | None = None) -> Tensor:
        """Class of each row of features (N, D), restricted to `candidates` (class indices) if given."""
        scores = self.scores(features)
        scores[:, : self.n_seen] -= self.calibration
        if candidates is None:
            return scores.argmax(dim=1)
        return candidates[scores[:, candidates].argmax(dim=1)]


class NaiveBayes(Classifier):
    """argmax_y log N(s(x); code_y, I): the nearest class code in the semantic factor. Needs no training."""

    def __init__(self, model: IZF, n_seen: int, *, calibration: float = 0.0, chunk: int = 4096) -> None:
        super().__init__(n_seen, calibration=calibration)
        self.model, self.chunk = model, chunk

    @torch.no_grad()
    def scores(self, features: Tensor) -> Tensor:
        out = []
        for x in features.split(self.chunk):
            semantic = self.model.encode(x)[0]
            out.append(-0.5 * torch.cdist(semantic, self.model.class_codes).square())
        return torch.cat(out)


class Softmax(Classifier):
    """A linear softmax classifier over C classes, trained with Adam on index batches on the device.

    Example:
        >>> x, y = torch.randn(64, 3), torch.arange(64) % 2
        >>> clf = Softmax(3, 2, n_seen=2, epochs=2).fit(x, y)
        >>> clf.predict(x).shape
        torch.Size([64])
    """

    def __init__(
        self,
        features: int,
        n_classes: int,
        *,
        n_seen: int,
        calibration: float = 0.0,
        lr: float = 1e-3,
        epochs: int = 20,
        batch_size: int = 256,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(n_seen, calibration=calibration)
        self.linear = nn.Linear(features, n_classes)
        self.lr, self.epochs, self.batch_size, self.generator = lr, epochs, batch_size, generator

    def fit(self, features: Tensor, labels: Tensor) -> "Softmax":
        """Train for `epochs` passes over the data, at least MIN_STEPS_PER_EPOCH batches each."""
        self.linear.to(features.device)
        if self.generator is not None:  # nn.Linear's own initialisation, from the given stream
            bound = 1 / self.linear.in_features**0.5
            with torch.no_grad():
                for parameter in self.linear.parameters():
                    parameter.uniform_(-bound, bound, generator=self.generator)
        optimizer = torch.optim.Adam(self.linear.parameters(), lr=self.lr, betas=(0.5, 0.999))
        n = features.shape[0]
        batch = min(self.batch_size, n)
        steps = self.epochs * max(-(-n // batch), MIN_STEPS_PER_EPOCH)
        stream = torch.cat([torch.randperm(n, device=features.device, generator=self.generator)
                            for _ in range(-(-steps * batch // n))])
        with torch.enable_grad():
            for idx in stream[: steps * batch].view(steps, batch):
                loss = nn.functional.cross_entropy(self.linear(features[idx]), labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return self

    @torch.no_grad()
    def scores(self, features: Tensor) -> Tensor:
        return torch.log_softmax(self.linear(features), dim=1)
