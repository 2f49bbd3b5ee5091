"""AEROBLADE (Ricker et al., CVPR 2024) as aedr method plugins: the distance between an image and its
reconstruction by the target's autoencoder. ``aeroblade`` uses LPIPS layer 2 as the original;
``aeroblade-mse`` and ``aeroblade-ssim`` use the same reconstruction with a distance that needs no
weights."""

from .method import Aeroblade, AerobladeMSE, AerobladeOptions, AerobladeSSIM, ReconstructionOptions, quantize_8bit

__all__ = ["Aeroblade", "AerobladeMSE", "AerobladeOptions", "AerobladeSSIM", "ReconstructionOptions", "quantize_8bit"]
