"""aedr's embedded model zoo: small latent diffusion models trained by aedr and shipped with it."""
