"""RONAN (Wang et al., NeurIPS 2023) as an aedr method plugin: random-init latent inversion through the
target's decoder, batched."""

from .method import RONAN, RonanOptions, png_complexity

__all__ = ["RONAN", "RonanOptions", "png_complexity"]
