"""Exceptions raised by the IZF library."""

__all__ = ["IZFError", "DataError", "ConfigError", "DivergenceError"]


class IZFError(Exception):
    """Base class of every error the library raises on purpose."""


class DataError(IZFError):
    """A dataset is missing, corrupt or inconsistent; the message names the file and the fix."""


class ConfigError(IZFError, ValueError):
    """An option has a value the library cannot use."""


class DivergenceError(IZFError, FloatingPointError):
    """Training produced a non-finite loss; the trial cannot continue."""

    def __init__(self, step: int, terms: dict[str, float]) -> None:
        self.step = step
        self.terms = terms
        shown = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
        super().__init__(
            f"training diverged at step {step} (non-finite loss: {shown}); "
            "lower lr, clamp or mmd_weight, or raise grad_clip"
        )

    def __reduce__(self) -> tuple:  # keep it picklable: Ray sends a trial's exception to the driver
        return type(self), (self.step, self.terms)
