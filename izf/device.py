"""The one place where the compute device is chosen."""

import os
from pathlib import Path

import torch

__all__ = ["choose_device", "fast_bfloat16", "check_precision", "cpu_flags"]

# CPU features that run bfloat16 matmuls natively; without them PyTorch emulates bfloat16, and a 256x2048 @
# 2048x1024 matmul ran at 0.6 GFLOP/s against 64 in float32 on an AVX2-only Xeon (docs/benchmarks.md).
CPU_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


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


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags, from /proc/cpuinfo (or the text given); empty where there is none (macOS)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def fast_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices natively: a CUDA GPU that supports bfloat16 without
    emulation, or a CPU with AVX-512 BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(CPU_BFLOAT16_FLAGS & cpu_flags())
    return False


def check_precision(subnet_precision: str, device: torch.device) -> None:
    """Refuse bfloat16 subnets on hardware that would emulate them: every step ~100x slower, not faster.

    Refused rather than quietly run in float32, so that a run's logged config is what it trained with.
    """
    if subnet_precision != "bfloat16" or fast_bfloat16(device):
        return
    from izf.errors import ConfigError

    where = ("this GPU has no native bfloat16 (torch.cuda.is_bf16_supported is False)" if device.type == "cuda"
             else f"this CPU has neither {' nor '.join(sorted(CPU_BFLOAT16_FLAGS))}" if device.type == "cpu"
             else f"{device.type} devices are not known to have it")
    raise ConfigError(f"subnet_precision='bfloat16' needs native bfloat16 matmuls and {where}: they would run "
                      "about 100x slower than float32; use subnet_precision='float32'")
