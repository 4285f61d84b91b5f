"""Exceptions raised by the IZF library, and the one line of an error a console shows."""

import re

__all__ = ["IZFError", "DataError", "ConfigError", "DivergenceError", "first_line", "error_line"]


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


def first_line(error: BaseException | str) -> str:
    """The first line of an error's message (its type's name where it has none): what one `error:` line shows."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_line(text: str, limit: int = 300) -> str:
    """The exception line of a traceback text (`DivergenceError: training diverged ...`), else its last line;
    a long message is cut after its first sentence (Ray's "actor died" messages run to a paragraph)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    found = lines[-1] if lines else "unknown error"
    for line in reversed(lines):
        match = re.match(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Interrupt|Exit)): (.+)$", line)
        if match:
            found = f"{match.group(1)}: {match.group(2)}"
            break
    if len(found) > limit and ". " in found:
        found = found[: found.index(". ") + 1]
    return found if len(found) <= limit else found[: limit - 1] + "…"
