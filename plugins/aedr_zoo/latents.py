"""The zoo's latents: what the denoiser learns (:func:`latent_targets`, shared by training and the
quality gates) and their normalisation, ``normalised = (z - latent_shift) * latent_scale``.

``zoo.json`` stores ``latent_shift`` and ``latent_scale`` either as one float (older weights) or as
one float per latent channel; :func:`channel_tensor` turns either into a tensor of shape
``(1, C, 1, 1)`` that broadcasts over a batch of latents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, Union

from aedr.lazy import lazy_import

if TYPE_CHECKING:
    import torch

    from .models import ZooSpec
else:
    torch = lazy_import("torch")

Norm = Union[float, Sequence[float]]


def channel_tensor(value: Norm, channels: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value`` (a float or one float per channel) as a ``(1, channels, 1, 1)`` tensor (float32 by default)."""
    t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(channels)
    if t.numel() != channels:
        raise ValueError(f"latent normalisation has {t.numel()} values for {channels} latent channels")
    return t.to(dtype or torch.float32).reshape(1, channels, 1, 1)


def normalise(z: torch.Tensor, shift: Norm, scale: Norm) -> torch.Tensor:
    """Autoencoder latents -> the denoiser's space."""
    c = z.shape[1]
    return (z - channel_tensor(shift, c, z.dtype).to(z.device)) * channel_tensor(scale, c, z.dtype).to(z.device)


def denormalise(n: torch.Tensor, shift: Norm, scale: Norm) -> torch.Tensor:
    """The denoiser's space -> autoencoder latents (``n / scale + shift``)."""
    c = n.shape[1]
    return n / channel_tensor(scale, c, n.dtype).to(n.device) + channel_tensor(shift, c, n.dtype).to(n.device)


def latent_targets(spec: ZooSpec, ae: torch.nn.Module, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the denoiser learns: (mean, std) of the posterior for KL, the quantised latent for VQ,
    the encoder output for the tiny autoencoder (``std`` is None for the last two)."""
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            if spec.ae.is_kl:
                dist = ae.encode(xb).latent_dist
                means.append(dist.mean)
                stds.append(dist.std)
            elif spec.ae.cls == "VQModel":
                means.append(ae.quantize(ae.encode(xb).latents)[0])
            else:
                means.append(ae.encode(xb).latents)
    return torch.cat(means), (torch.cat(stds) if stds else None)
