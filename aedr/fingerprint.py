"""Fingerprints: short hashes of what produced a result, so that nothing cached is reused for other
weights.

A model's autoencoder fingerprint is computed from the tensors it computes with (every parameter and
buffer of every torch module it holds, by name, dtype, shape and bytes) and the settings that change
its output (class, latent kind, scale and shift, size policy, decoding rule). It is never typed by
hand: a retrained or re-downloaded model under the same name gets another fingerprint, and two
models built on the very same autoencoder weights get the same one. Cards, score stores, image
caches and provenance carry it (:meth:`aedr.ModelPlugin.autoencoder_fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

LENGTH = 16
"""Hex digits kept: 64 bits, ample to tell weights apart, short enough to read in a table."""


def digest(*parts: bytes | str) -> str:
    """The fingerprint of a sequence of parts (each length-prefixed, so parts cannot run together)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:LENGTH]


def combine(**named: str) -> str:
    """One fingerprint from several named ones (e.g. an autoencoder's and a generator's)."""
    return digest(json.dumps(named, sort_keys=True))


def modules_of(obj: Any) -> Iterator[tuple[str, "torch.nn.Module"]]:
    """The torch modules an object holds as attributes, by attribute name, in name order."""
    nn = torch.nn
    for name, value in sorted(vars(obj).items()):
        if isinstance(value, nn.Module):
            yield name, value


def tensors_fingerprint(named: Iterable[tuple[str, "torch.Tensor"]], *settings: str) -> str:
    """The fingerprint of named tensors (name, dtype, shape and bytes of each) and of ``settings``."""
    h = hashlib.sha256()
    for setting in settings:
        h.update(setting.encode() + b"\0")
    for name, tensor in named:
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:LENGTH]


def module_tensors(obj: Any) -> Iterator[tuple[str, "torch.Tensor"]]:
    """Every parameter and buffer of every torch module ``obj`` holds, named ``attribute.key``."""
    for attr, module in modules_of(obj):
        for key, tensor in module.state_dict().items():
            yield f"{attr}.{key}", tensor
