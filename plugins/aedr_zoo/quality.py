"""Quality gates of a zoo generator: do its samples look like its training data?

The gates judge the generator alone, never an attribution method's score (docs/zoo.md, "Quality
gates"). Gates 1-3 are computed on :data:`GATE_SAMPLES` generated images (seeds ``GATE_SEED`` ...):

1. **Latent statistics.** Per latent channel, the sampled latents' mean lies within
   :data:`MAX_MEAN_OFFSET` training standard deviations of the encoded training latents' mean, and
   their standard deviation within :data:`MAX_STD_RATIO_ERROR` of the training latents'. The training
   latents are what the denoiser learns: one seeded posterior sample per crop (KL), the quantised
   latent (VQ), the encoder output (tiny).
2. **Saturation.** The fraction of saturated pixel values (0 or 255 in a channel) of the samples is
   at most :data:`MAX_SATURATION_RATIO` times that of the training crops.
3. **Distribution distance.** The squared kernel MMD between the samples and the training crops, on
   per-image colour histograms and grey-level co-occurrence (GLCM) statistics, is at most the MMD
   between the held-out real crops (``zoo-real-eval``) and the training crops: a generator passes if
   its samples are no further from its training photographs than other real photographs are.

4. **Fidelity** (high-fidelity family only, :data:`aedr.models.HIGH_FIDELITY_FAMILIES`). PSNR on
   ``zoo-real-eval`` at least :data:`FIDELITY_MARGIN_DB` above the best 4-channel zoo model's, as
   SD3's and FLUX's autoencoders reconstruct several dB better than SD's. A property of the zoo, not
   of one model: recorded when the zoo's training ends (:func:`fidelity_gates`).

Reported without a gate: the fixed-point gap, the MSE of D(E(x)) against x for samples and for
reconstructions of real crops (an image the decoder produced is close to a fixed point of
decode-encode; AEDR relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from . import data
from .latents import latent_targets

GATE_SAMPLES = 256
GATE_SEED = 0
MAX_MEAN_OFFSET = 0.15
MAX_STD_RATIO_ERROR = 0.15
MAX_SATURATION_RATIO = 2.0
FIDELITY_MARGIN_DB = 5.0

HIST_BINS = 16
GLCM_LEVELS = 32
GLCM_DISTANCES = (1, 2)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "homogeneity", "energy", "correlation")
MMD_REFERENCE = 1024
"""Training crops the MMD compares against (a seeded subset of the 6,144, for speed)."""
MMD_REFERENCE_SEED = 16


# -- gate 1: latent statistics -----------------------------------------------------------------


@torch.no_grad()
def training_latents(model) -> torch.Tensor:
    """The encoded training crops as the denoiser saw them (see the module docstring)."""
    x = data.split_data("train").tensor()
    mean, std = latent_targets(model.spec, model.autoencoder().module, x)
    if std is None:
        return mean
    return mean + std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(model.spec.seed))


def channel_stats(z: torch.Tensor) -> dict[str, list[float]]:
    """Per-channel mean, standard deviation, minimum and maximum of NCHW latents."""
    z = z.double()
    return {
        "mean": [float(v) for v in z.mean(dim=(0, 2, 3))],
        "std": [float(v) for v in z.std(dim=(0, 2, 3))],
        "min": [float(v) for v in z.amin(dim=(0, 2, 3))],
        "max": [float(v) for v in z.amax(dim=(0, 2, 3))],
    }


def latent_gate(sampled: dict[str, list[float]], train: dict[str, list[float]]) -> dict[str, Any]:
    """Gate 1 from the per-channel statistics of sampled and training latents."""
    ms, ss = np.asarray(sampled["mean"]), np.asarray(sampled["std"])
    mt, st = np.asarray(train["mean"]), np.asarray(train["std"])
    offset = (ms - mt) / st
    ratio = ss / st
    worst_offset = float(np.abs(offset).max())
    worst_ratio_error = float(np.abs(ratio - 1).max())
    return {
        "mean_offset": [round(float(v), 4) for v in offset],
        "std_ratio": [round(float(v), 4) for v in ratio],
        "max_abs_mean_offset": round(worst_offset, 4),
        "max_std_ratio_error": round(worst_ratio_error, 4),
        "threshold_mean_offset": MAX_MEAN_OFFSET,
        "threshold_std_ratio_error": MAX_STD_RATIO_ERROR,
        "passed": bool(worst_offset <= MAX_MEAN_OFFSET and worst_ratio_error <= MAX_STD_RATIO_ERROR),
    }


# -- gate 2: saturation ------------------------------------------------------------------------


def saturated_fraction(images: np.ndarray) -> float:
    """Fraction of uint8 pixel values (every channel counted) that are 0 or 255."""
    images = np.asarray(images)
    return float(np.count_nonzero((images == 0) | (images == 255)) / images.size)


def saturation_gate(samples: np.ndarray, train: np.ndarray) -> dict[str, Any]:
    s, t = saturated_fraction(samples), saturated_fraction(train)
    return {
        "samples": round(s, 6),
        "train": round(t, 6),
        "ratio": round(s / t, 3) if t > 0 else (0.0 if s == 0 else float("inf")),
        "threshold_ratio": MAX_SATURATION_RATIO,
        "passed": bool(s <= MAX_SATURATION_RATIO * t),
    }


# -- gate 3: kernel MMD on colour histograms + GLCM statistics ----------------------------------


def colour_histograms(images: np.ndarray) -> np.ndarray:
    """Per image, a :data:`HIST_BINS`-bin histogram of each RGB channel (fractions): N x 3*bins."""
    images = np.asarray(images)
    n = len(images)
    bins = (images.reshape(n, -1, 3).astype(np.int64) * HIST_BINS) // 256  # N x P x 3 in [0, bins)
    out = np.zeros((n, 3, HIST_BINS))
    for c in range(3):
        idx = bins[:, :, c] + HIST_BINS * np.arange(n)[:, None]
        out[:, c] = np.bincount(idx.ravel(), minlength=n * HIST_BINS).reshape(n, HIST_BINS)
    return (out / bins.shape[1]).reshape(n, -1)


def glcm_features(images: np.ndarray) -> np.ndarray:
    """Per image, scikit-image's GLCM properties (:data:`GLCM_PROPS`) of the grey image quantised to
    :data:`GLCM_LEVELS` levels, per distance (:data:`GLCM_DISTANCES`), averaged over four angles."""
    from skimage.color import rgb2gray
    from skimage.feature import graycomatrix, graycoprops

    images = np.asarray(images)
    grey = (rgb2gray(images) * (GLCM_LEVELS - 1e-9)).astype(np.uint8)  # N x H x W in [0, levels)
    out = np.empty((len(images), len(GLCM_PROPS) * len(GLCM_DISTANCES)))
    for i, g in enumerate(grey):
        m = graycomatrix(g, GLCM_DISTANCES, GLCM_ANGLES, levels=GLCM_LEVELS, symmetric=True, normed=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            props = [graycoprops(m, p).mean(axis=1) for p in GLCM_PROPS]  # each: per distance
        out[i] = np.nan_to_num(np.concatenate(props), nan=1.0)  # correlation of a flat image: 1
    return out


def image_features(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return colour_histograms(images), glcm_features(images)


@dataclass(frozen=True)
class FeatureSpace:
    """Standardisation and RBF bandwidths fitted on the MMD's reference (training) crops."""

    hist_mean: np.ndarray
    hist_std: np.ndarray
    glcm_mean: np.ndarray
    glcm_std: np.ndarray
    hist_bandwidth: float
    glcm_bandwidth: float

    @classmethod
    def fit(cls, hist: np.ndarray, glcm: np.ndarray) -> "FeatureSpace":
        from scipy.spatial.distance import pdist

        hm, hs = hist.mean(0), hist.std(0) + 1e-6
        gm, gs = glcm.mean(0), glcm.std(0) + 1e-6
        hb = float(np.median(pdist((hist - hm) / hs)))  # median heuristic, one bandwidth per group
        gb = float(np.median(pdist((glcm - gm) / gs)))
        return cls(hm, hs, gm, gs, hb, gb)

    def transform(self, hist: np.ndarray, glcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (hist - self.hist_mean) / self.hist_std, (glcm - self.glcm_mean) / self.glcm_std


def _kernel(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], space: FeatureSpace) -> np.ndarray:
    """The mean of two Gaussian kernels, one on the histogram features and one on the GLCM ones."""
    from scipy.spatial.distance import cdist

    kh = np.exp(-cdist(a[0], b[0], "sqeuclidean") / (2 * space.hist_bandwidth**2))
    kg = np.exp(-cdist(a[1], b[1], "sqeuclidean") / (2 * space.glcm_bandwidth**2))
    return 0.5 * (kh + kg)


def mmd2(x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray], space: FeatureSpace) -> float:
    """Unbiased estimate of the squared MMD between feature sets ``x`` and ``y`` (each a pair:
    standardised histogram features, standardised GLCM features)."""
    kxx, kyy, kxy = _kernel(x, x, space), _kernel(y, y, space), _kernel(x, y, space)
    n, m = len(kxx), len(kyy)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )


@dataclass(frozen=True)
class Reference:
    """The training crops the MMD compares against, their feature space, and the threshold."""

    space: FeatureSpace
    features: tuple[np.ndarray, np.ndarray]
    threshold: float  # MMD^2 between zoo-real-eval and the reference crops
    train_images: np.ndarray


_REFERENCE: Reference | None = None


def reference() -> Reference:
    """Computed once per process: it depends on the bundled photographs only."""
    global _REFERENCE
    if _REFERENCE is None:
        train = data.split_data("train").images
        rng = np.random.default_rng(MMD_REFERENCE_SEED)
        ref = train[np.sort(rng.choice(len(train), MMD_REFERENCE, replace=False))]
        raw = image_features(ref)
        space = FeatureSpace.fit(*raw)
        feats = space.transform(*raw)
        held_out = space.transform(*image_features(data.split_data("eval").images))
        _REFERENCE = Reference(space, feats, mmd2(held_out, feats, space), train)
    return _REFERENCE


def distance_gate(samples: np.ndarray) -> dict[str, Any]:
    ref = reference()
    value = mmd2(ref.space.transform(*image_features(samples)), ref.features, ref.space)
    return {
        "mmd2": round(value, 5),
        "threshold": round(ref.threshold, 5),
        "threshold_from": "mmd2 between zoo-real-eval (256 crops of 2 held-out photographs) and the same training crops",
        "passed": bool(value <= ref.threshold),
    }


# -- ungated: the fixed-point gap --------------------------------------------------------------


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)


def fixed_point_gap(autoencoder, images: np.ndarray) -> float:
    """Mean squared error (pixel values scaled to [0, 1]) between the uint8 images and their 8-bit
    reconstructions D(E(x)) (latent mean, no posterior noise)."""
    from .evaluate import reconstruct_uint8

    rec = reconstruct_uint8(autoencoder, images)
    return float(((rec.astype(np.float64) - images.astype(np.float64)) / 255.0).__pow__(2).mean())


# -- all gates of one model --------------------------------------------------------------------


@torch.no_grad()
def gate_samples(model, n: int = GATE_SAMPLES, seed: int = GATE_SEED) -> tuple[torch.Tensor, np.ndarray]:
    """The gates' ``n`` samples of a zoo model: their latents and their 8-bit images (seeds
    ``seed``..), made exactly as :meth:`ZooModel.generate_tensor` makes them."""
    from aedr.preprocess import tensor_to_uint8

    from .zoo import GENERATION_CHUNK

    if n % GENERATION_CHUNK:
        raise ValueError(f"n must be a multiple of {GENERATION_CHUNK}")
    ae = model.autoencoder()
    latents, images = [], []
    for start in range(seed, seed + n, GENERATION_CHUNK):
        z = model.sample_latents(list(range(start, start + GENERATION_CHUNK)))
        latents.append(z)
        images.append(tensor_to_uint8(ae.decode(z).float().cpu()))
    return torch.cat(latents), np.concatenate(images)


def sample_distances(models, advance: Callable[[int], None] | None = None) -> dict[str, dict[str, float]]:
    """Gate 3's MMD² between every two models' gate samples, in the feature space fitted on the
    training crops: how alike two models' generated images are, measured without any attribution
    method. The bench's hard pairs are the third of model pairs with the smallest ones. ``advance(1)``
    is called as each model's samples are made."""
    from itertools import combinations

    ref = reference()
    features = {}
    for m in models:
        features[m.name] = ref.space.transform(*image_features(gate_samples(m)[1]))
        if advance is not None:
            advance(1)
    out: dict[str, dict[str, float]] = {name: {} for name in features}
    for a, b in combinations(features, 2):
        out[a][b] = out[b][a] = round(mmd2(features[a], features[b], ref.space), 5)
    return out


def model_gates(model, n: int = GATE_SAMPLES, seed: int = GATE_SEED) -> dict[str, Any]:
    """Gates 1-3 and the fixed-point gap of one zoo model, as stored in its ``zoo.json``."""
    from .evaluate import reconstruct_uint8

    ae = model.autoencoder()
    sampled, images = gate_samples(model, n, seed)
    train_stats = channel_stats(training_latents(model))
    sample_stats = channel_stats(sampled)
    ref = reference()
    real_rec = reconstruct_uint8(ae, data.split_data("eval").images)
    return {
        "protocol": (
            f"{n} samples (seeds {seed}..{seed + n - 1}, DDIM {model.meta['sampling_steps']} steps) against the "
            f"{len(ref.train_images)} training crops; see aedr_zoo/quality.py"
        ),
        "latents": {"train": _rounded(train_stats), "sampled": _rounded(sample_stats), **latent_gate(sample_stats, train_stats)},
        "saturation": saturation_gate(images, ref.train_images),
        "distance": distance_gate(images),
        "fixed_point_gap": {
            "samples": round(fixed_point_gap(ae, images), 6),
            "real_reconstructions": round(fixed_point_gap(ae, real_rec), 6),
            "real_reconstructions_from": "zoo-real-eval crops reconstructed once, then again",
        },
    }


# -- gate 4: fidelity of the high-fidelity family ----------------------------------------------


def fidelity_gate(psnr: float, four_channel: dict[str, float]) -> dict[str, Any]:
    """Gate 4 for a model of PSNR ``psnr``, against the 4-channel models' PSNRs (by name)."""
    best = max(four_channel, key=lambda name: four_channel[name])
    threshold = four_channel[best] + FIDELITY_MARGIN_DB
    return {
        "psnr": round(psnr, 2),
        "best_4_channel": best,
        "best_4_channel_psnr": round(four_channel[best], 2),
        "margin_db": FIDELITY_MARGIN_DB,
        "threshold": round(threshold, 2),
        "passed": bool(psnr >= threshold),
    }


def fidelity_gates(metas: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Gate 4 of every high-fidelity model among ``metas`` (``zoo.json`` records by model name),
    against the 4-channel models among them."""
    from aedr.models import HIGH_FIDELITY_FAMILIES

    four = {name: m["psnr_eval"] for name, m in metas.items() if m["latent_shape"][0] == 4 and "psnr_eval" in m}
    if not four:
        return {}
    return {name: fidelity_gate(m["psnr_eval"], four) for name, m in metas.items()
            if m["family"] in HIGH_FIDELITY_FAMILIES and "psnr_eval" in m}


def _rounded(stats: dict[str, list[float]]) -> dict[str, list[float]]:
    return {k: [round(v, 4) for v in vs] for k, vs in stats.items()}


GATES = {"latents": "latent statistics", "saturation": "saturation", "distance": "distance", "fidelity": "fidelity"}
"""The gates a ``zoo.json`` records (``fidelity`` for the high-fidelity family only), with their names."""


def failed_gates(gates: dict[str, Any]) -> list[str]:
    """The names of the gates ``gates`` (one model's record) failed."""
    return [label for key, label in GATES.items() if key in gates and not gates[key]["passed"]]


def passed(gates: dict[str, Any]) -> bool:
    return not failed_gates(gates)
