"""The one check of a ``device`` name, made before any model is loaded or image generated, and the
device to use when none is named."""

from __future__ import annotations

SUPPORTED = ("cpu", "cuda", "mps")
HINT = "use cpu, cuda, cuda:N or mps"


class DeviceError(ValueError):
    """A device name that is not one, or a device this machine does not have."""


def check_device(device: str) -> str:
    """``device`` if work can run there; otherwise :class:`DeviceError` saying why in one sentence."""
    import torch

    if not isinstance(device, str) or not device.strip():
        raise DeviceError(f"device must be a name such as cpu or cuda, got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceError(f"device {device!r} is not a device name; {HINT}") from None
    if dev.type not in SUPPORTED:
        raise DeviceError(f"device {device!r} is not supported; {HINT}")
    if dev.type == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise DeviceError(f"device {device!r}: this PyTorch build has no CUDA support (torch {torch.__version__}); use cpu")
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r}: no CUDA GPU is available on this machine; use cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(f"device {device!r}: this machine has {count} CUDA GPU(s), numbered 0..{count - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {device!r}: Apple's MPS backend is not available on this machine; use cpu")
    return device


def default_device() -> str:
    """cuda when there is a GPU, else Apple's mps, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
