"""Reconstruction quality of a zoo autoencoder on real crops."""

from __future__ import annotations

import numpy as np
import torch

import aedr
from aedr.preprocess import tensor_to_uint8


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB) between two uint8 N x H x W x 3 arrays."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


@torch.no_grad()
def reconstruct_uint8(autoencoder: aedr.Autoencoder, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """Reconstruct uint8 N x H x W x 3 images with the latent mean (no posterior noise), back to uint8."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i : i + batch].astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
        out.append(tensor_to_uint8(autoencoder.reconstruct(x, mode="mean")))
    return np.concatenate(out)


def reconstruction_psnr(autoencoder: aedr.Autoencoder, images: np.ndarray) -> float:
    """Mean per-image PSNR of 8-bit reconstructions (the number the zoo documents)."""
    return float(psnr_uint8(images, reconstruct_uint8(autoencoder, images)).mean())
