"""The tiny autoencoder architecture of the TAESD family, written from its published description, with
the low-resolution ``pool`` branch that TAEF2 (the FLUX.2 tiny autoencoder) adds.

Module indices follow the published state dicts (``taef2_encoder.pth`` / ``taef2_decoder.pth``), so
those load with ``strict=True``. The modules work on images in [0, 1]; :class:`TinyAutoencoder`
converts from and to the [-1, 1] range every aedr method uses.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

from aedr import Autoencoder, Posterior, SizePolicy
from aedr.weights import WeightsUnavailableError

from .files import TAEF2_WEIGHTS, TinyAEWeights  # noqa: F401 (re-exported: they lived here)

WIDTH = 64


def conv(n_in: int, n_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """Soft clamp of the latent to (-3, 3): ``tanh(x / 3) * 3``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Residual block: ``relu(conv(x) + skip(x))``, preceded by ``x = x + pool(x)`` when ``pool``."""

    def __init__(self, n_in: int, n_out: int, *, pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in, n_out), nn.ReLU(), conv(n_out, n_out), nn.ReLU(), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.pool = (
            nn.Sequential(
                nn.Conv2d(n_in, 4 * n_in, 1, bias=False),
                nn.GroupNorm(4, 4 * n_in),
                nn.ReLU(),
                nn.Conv2d(4 * n_in, n_in, 1, bias=False),
            )
            if pool
            else None
        )
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def encoder(latent_channels: int, *, pool: bool) -> nn.Sequential:
    """[0, 1] image -> latent at 1/8 resolution. ``pool``: the three lowest-resolution blocks have it."""
    layers: list[nn.Module] = [conv(3, WIDTH), Block(WIDTH, WIDTH)]
    for level in range(3):
        low = pool and level == 2
        layers += [conv(WIDTH, WIDTH, stride=2, bias=False)] + [Block(WIDTH, WIDTH, pool=low) for _ in range(3)]
    layers.append(conv(WIDTH, latent_channels))
    return nn.Sequential(*layers)


def decoder(latent_channels: int, *, pool: bool) -> nn.Sequential:
    """Latent -> [0, 1] image (not clamped) at 8x resolution. ``pool``: the first three blocks have it."""
    layers: list[nn.Module] = [Clamp(), conv(latent_channels, WIDTH), nn.ReLU()]
    layers += [Block(WIDTH, WIDTH, pool=pool) for _ in range(3)]
    for blocks in (3, 3, 1):
        layers += [nn.Upsample(scale_factor=2), conv(WIDTH, WIDTH, bias=False)]
        layers += [Block(WIDTH, WIDTH) for _ in range(blocks)]
    layers.append(conv(WIDTH, 3))
    return nn.Sequential(*layers)


REPLACE_HINT = "replace it with the published file"


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A plain tensor state dict, loaded without executing pickled code (``weights_only=True``).

    Anything else raises :class:`~aedr.weights.WeightsUnavailableError` with one sentence of ours: torch's own
    text is never shown, since it suggests loading with ``weights_only=False``, which would run
    whatever code the file holds.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsUnavailableError(f"{path}: weight file not found") from None
    except OSError as exc:
        raise WeightsUnavailableError(f"{path}: weight file cannot be read ({exc.strerror or type(exc).__name__})") from None
    except pickle.UnpicklingError:
        raise WeightsUnavailableError(
            f"{path}: not a plain tensor state dict (corrupt, or holding pickled objects, which are never "
            f"loaded); {REPLACE_HINT}"
        ) from None
    except Exception:  # torch's zip reader and unpickler raise RuntimeError, EOFError, ValueError ...
        raise WeightsUnavailableError(f"{path}: not a readable PyTorch weight file (truncated or corrupt); {REPLACE_HINT}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsUnavailableError(f"{path}: not a state dict of tensors; {REPLACE_HINT}")
    return state


def load_into(module: nn.Module, path: Path, what: str) -> None:
    """Load the state dict at ``path`` into ``module`` strictly (every key, every shape), or raise
    :class:`~aedr.weights.WeightsUnavailableError` naming the file and the first keys that do not fit."""
    state = load_state_dict(path)
    expected = module.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in state.items() if k in expected and v.shape != expected[k].shape
    ]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise WeightsUnavailableError(f"{path}: does not fit the {what} ({'; '.join(problems[:3])}{more}); {REPLACE_HINT}")
    module.load_state_dict(state, strict=True)


class TinyAutoencoder(Autoencoder):
    """An encoder/decoder pair of the TAESD architecture as an aedr autoencoder.

    The modules take and give [0, 1]; ``encode`` and ``decode`` convert, so methods see [-1, 1].
    Latents are deterministic and raw (scale factor 1). Convolutions run channels-last, which is
    markedly faster for these 64-channel full-resolution layers on CPUs (and no slower on GPUs).
    """

    latent_kind = "deterministic"

    def __init__(self, enc: nn.Module, dec: nn.Module, *, size_policy: SizePolicy = SizePolicy()):
        self.encoder = enc.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.decoder = dec.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.size_policy = size_policy
        p = next(self.encoder.parameters())
        self.device, self.dtype = p.device, p.dtype

    @classmethod
    def from_files(
        cls,
        weights: TinyAEWeights,
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> "TinyAutoencoder":
        """Build the architecture and load the published state dicts strictly (every key, every shape)."""
        enc_path, dec_path = weights.paths(folder)
        enc = encoder(weights.latent_channels, pool=weights.pool)
        dec = decoder(weights.latent_channels, pool=weights.pool)
        load_into(enc, enc_path, f"encoder ({weights.latent_channels} latent channels)")
        load_into(dec, dec_path, f"decoder ({weights.latent_channels} latent channels)")
        return cls(enc.to(device, dtype), dec.to(device, dtype))

    def encode(self, x: torch.Tensor) -> Posterior:
        x = (self._input(x) * 0.5 + 0.5).contiguous(memory_format=torch.channels_last)
        return Posterior(self.encoder(x).contiguous())

    def decode(self, z: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        z = z.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
        return (self.decoder(z) * 2.0 - 1.0).contiguous()
