"""A model plugin in one module. Its autoencoder needs no weights: the encoder averages 4x4 blocks,
the decoder repeats each latent pixel 4x4 times, so that the decoder's own images reconstruct almost
exactly, as a trained autoencoder's do. The generator decodes seeded random latents, so image i
depends only on ``seed + i``. Replace both with your model's own (see CONTRIBUTING.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

import aedr
from aedr.autoencoder import seeded_normal
from aedr.preprocess import tensor_to_uint8


class PoolAutoencoder(aedr.Autoencoder):
    latent_kind = "deterministic"
    size_policy = aedr.SizePolicy(multiple=4, min_side=4)

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype

    def encode(self, x: torch.Tensor) -> aedr.Posterior:
        return aedr.Posterior(F.avg_pool2d(self._input(x), 4))

    def decode(self, z: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        return F.interpolate(z.to(self.device, self.dtype), scale_factor=4, mode="nearest")


class PoolModel(aedr.ModelPlugin):
    name = "example-pool"
    family = "pool"
    description = "example plugin: 4x4 average-pooling encoder, nearest-neighbour decoder (no weights)"
    native_size = 32

    def load_autoencoder(self, device, dtype):
        return PoolAutoencoder(device, dtype or torch.float32)

    def generate(self, n, seed=0, prompts=None, device="cpu"):
        z = 0.5 * seeded_normal((n, 3, 8, 8), [seed + i for i in range(n)])
        pixels = tensor_to_uint8(self.autoencoder(device).decode(z))
        return [Image.fromarray(p, "RGB") for p in pixels]


@aedr.hookimpl
def register_models(register):
    register(PoolModel())
