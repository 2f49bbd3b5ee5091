"""HFI (Choi et al., arXiv 2412.20704) as aedr method plugins: how much of an image's reconstruction
distance comes from its high frequencies. ``hfi`` measures the distance with LPIPS (VGG16, all five
layers) as the original; ``hfi-mse`` with a per-image MSE that needs no weights."""

from .method import BELONGING_SIGN, HFI, HFIMSE, HFIOptions, gaussian_blur, gaussian_kernel1d

__all__ = ["BELONGING_SIGN", "HFI", "HFIMSE", "HFIOptions", "gaussian_blur", "gaussian_kernel1d"]
