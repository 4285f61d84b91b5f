"""The chosen model as an MLflow pyfunc model, its registration, and the `champion` alias."""

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec

import izf
import tracking
from izf.data import default_name
from izf.io import model_state

__all__ = ["IZFPyfunc", "log_model", "register", "trained_config", "model_name", "CHAMPION"]

CHAMPION = "champion"
ARTIFACT = "izf"


def model_name(dataset: str) -> str:
    """The registered model's name for a dataset: izf-<dataset>."""
    return default_name(dataset)


class IZFPyfunc(mlflow.pyfunc.PythonModel):
    """Raw image features (float32, [n, feature_dim]) in; one predicted class name and its score out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from izf.io import load_model

        self.model = load_model(context.artifacts[ARTIFACT])

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: np.ndarray,
                params: dict | None = None) -> pd.DataFrame:
        # np.ndarray: MLflow infers no schema from this hint and checks inputs against the logged signature.
        x = np.asarray(model_input.to_numpy() if isinstance(model_input, pd.DataFrame) else model_input, np.float32)
        if x.ndim != 2 or x.shape[1] != self.model.scaler.shift.shape[0]:
            raise ValueError(f"expected features of shape [n, {self.model.scaler.shift.shape[0]}], got {x.shape}")
        scores = self.model.scores(x)
        best = scores.argmax(axis=1)
        names = np.asarray(self.model.class_names)
        return pd.DataFrame({"class": names[best], "score": scores[np.arange(len(best)), best].astype(np.float64)})


def log_model(client: MlflowClient, run_id: str, model_file: bytes, feature_dim: int) -> str:
    """Log the saved IZF (izf.io format) as a pyfunc model under `run_id`; return its model URI."""
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, feature_dim))]),
                               outputs=Schema([ColSpec("string", "class"), ColSpec("double", "score")]))
    code = [str(Path(izf.__file__).parent), str(Path(tracking.__file__).parent)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        path.write_bytes(model_file)
        with _fluent_uris(client.tracking_uri), mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).with_name("pyfunc_code.py")),
                                           artifacts={ARTIFACT: str(path)},
                                           signature=signature, code_paths=code,
                                           input_example=np.zeros((2, feature_dim), np.float32),
                                           pip_requirements=["torch==2.13.0", "numpy", "pandas", "scipy", "mlflow"])
    return info.model_uri


def register(client: MlflowClient, name: str, model_uri: str, tags: dict) -> str:
    """Register a new version of `name`; return the version."""
    # MLflow prints "Successfully registered ..."; the CLI says what it registered itself.
    with _fluent_uris(client.tracking_uri), contextlib.redirect_stderr(io.StringIO()):
        version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return str(version.version)


@contextlib.contextmanager
def _fluent_uris(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (log_model, register_model) at `uri` for one call, then back.

    Its setters are process-wide and also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI to every
    child process started later (a scoring server, the next search's trials), so they are undone here.
    """
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {k: os.environ.get(k) for k in names}
    tracking = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    registry = mlflow.get_registry_uri()
    follows = saved_env["MLFLOW_REGISTRY_URI"] is None and registry == mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # the Tracker's registry is its tracking store
    try:
        yield
    finally:
        mlflow.set_tracking_uri(tracking)  # None: unset again, MLflow's default
        mlflow.set_registry_uri(None if follows else registry)  # None: the registry follows the tracking URI
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def model_file(client: MlflowClient, version: ModelVersion) -> bytes:
    """The IZF model file (izf.io format) inside a registered version's pyfunc model."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # not a bar of 40 files on the console
    with _fluent_uris(client.tracking_uri), tempfile.TemporaryDirectory() as folder:
        local = Path(download_artifacts(artifact_uri=version.source, dst_path=folder))
        (path,) = local.rglob("model.pt")
        return path.read_bytes()


def trained_config(client: MlflowClient, version: ModelVersion) -> dict:
    """The FitConfig (as a dict) a registered version's model was trained with: its first final seed's."""
    return model_state(model_file(client, version))["config"]
