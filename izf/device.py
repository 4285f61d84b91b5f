"""The one place where the compute device is chosen."""

import os

import torch

__all__ = ["choose_device"]


def choose_device(preference: str | None = None) -> torch.device:
    """Return the device to train on.

    Arguments:
        preference: "cpu", "cuda", "cuda:N", or None for the default: the environment variable
            IZF_DEVICE if set, else the first visible CUDA device when there is one, else the CPU.
            Under Ray a trial that was given no GPU still sees every GPU, so the search passes
            "cpu" explicitly there.
    """
    name = preference or os.environ.get("IZF_DEVICE")
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from izf.errors import ConfigError

        raise ConfigError(f"device {name!r} asked for, but no CUDA device is visible; use device='cpu'")
    return device
