"""IZF, the Invertible Zero-Shot Flow (Shen et al., ECCV 2020), as a plain PyTorch library."""

from izf.data import load_dataset
from izf.errors import ConfigError, DataError, DivergenceError, IZFError
from izf.flow import Flow
from izf.training import FitConfig, FitResult, fit

__all__ = ["fit", "FitConfig", "FitResult", "load_dataset", "Flow", "IZFError", "DataError", "ConfigError",
           "DivergenceError"]
