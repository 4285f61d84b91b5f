"""Save a trained IZF with what prediction needs, and load it back (torch.load(weights_only=True))."""

import io
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from izf.classifiers import Softmax
from izf.data.split import FeatureScaler, Split
from izf.errors import DataError
from izf.model import IZF
from izf.training import FitConfig, FitResult, build_model

__all__ = ["TrainedIZF", "save_model", "load_model", "model_bytes", "model_state"]


class TrainedIZF:
    """A trained flow and its GZSL softmax head, with the feature scaling and class names of its split."""

    def __init__(self, model: IZF, classifier: Softmax, scaler: FeatureScaler, class_names: tuple[str, ...],
                 config: FitConfig) -> None:
        self.model, self.classifier, self.scaler = model.eval(), classifier, scaler
        self.class_names, self.config = class_names, config

    @torch.no_grad()
    def scores(self, features: np.ndarray) -> np.ndarray:
        """Calibrated class scores of raw (unscaled) features (N, D), shape (N, C)."""
        x = torch.as_tensor(self.scaler(np.asarray(features, np.float32)))
        x = x.to(self.classifier.linear.weight.device)
        scores = self.classifier.scores(x)
        scores[:, : self.classifier.n_seen] -= self.classifier.calibration
        return scores.cpu().numpy()

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted class index of each row of raw features (N, D)."""
        return self.scores(features).argmax(axis=1)


def save_model(path: Path | str, result: FitResult, split: Split) -> None:
    """Write everything `load_model` needs into one file of tensors and plain values."""
    torch.save(
        {
            "config": asdict(result.config),
            "feature_dim": split.feature_dim,
            "attributes": torch.as_tensor(split.attributes),
            "model": result.model.state_dict(),
            "classifier": result.classifier.linear.state_dict(),
            "n_seen": split.n_seen,
            "calibration": result.classifier.calibration,
            "class_names": list(split.class_names),
            "scaler": {"method": split.scaler.method, "shift": torch.as_tensor(split.scaler.shift),
                       "scale": torch.as_tensor(split.scaler.scale)},
        },
        path,
    )


def model_bytes(result: FitResult, split: Split) -> bytes:
    """`save_model`'s file as bytes, written from the CPU (the result's model and classifier are moved there), so
    that it loads anywhere and two files of the same training compare equal."""
    result.model.cpu()
    result.classifier.linear.cpu()
    buffer = io.BytesIO()
    save_model(buffer, result, split)
    return buffer.getvalue()


def model_state(data: bytes) -> dict:
    """The plain dict a model file holds (its config, weights, scaling, class names), on the CPU."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_model(path: Path | str, *, device: str = "cpu") -> TrainedIZF:
    """Load a file written by `save_model`."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError) as e:
        raise DataError(f"{path}: not a readable IZF model file ({e})") from e
    config = FitConfig.from_dict(state["config"])
    model = build_model(config, state["attributes"], state["feature_dim"])
    model.load_state_dict(state["model"])
    n_classes = len(state["class_names"])
    classifier = Softmax(state["feature_dim"], n_classes, n_seen=state["n_seen"], calibration=state["calibration"])
    classifier.linear.load_state_dict(state["classifier"])
    s = state["scaler"]
    scaler = FeatureScaler(s["method"], s["shift"].numpy(), s["scale"].numpy())
    classifier.linear.to(device)
    return TrainedIZF(model.to(device), classifier, scaler, tuple(state["class_names"]), config)
