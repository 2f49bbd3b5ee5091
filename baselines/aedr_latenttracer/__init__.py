"""LatentTracer (Wang et al., ICML 2024) as an aedr method plugin: encoder-initialised latent inversion
through the target's decoder, batched."""

from .method import LatentTracer, LatentTracerOptions

__all__ = ["LatentTracer", "LatentTracerOptions"]
