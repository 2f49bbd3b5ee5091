"""Thresholds: the original's KDE threshold, the automatic choice of alpha, and tail probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_ALPHA = 0.05
GRID_POINTS = 10_000
# The alphas searched when alpha is chosen automatically (covers the paper's 0.003 ... 0.085).
ALPHA_GRID = tuple(np.round(np.concatenate([np.arange(0.001, 0.01, 0.001), np.arange(0.01, 0.2001, 0.005)]), 6))


AUTO = "auto"


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float if it is a number strictly between 0 and 1 (NaN is not), else ValueError."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)) or not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def parse_alpha(value: float | str) -> float | str:
    """A fixed alpha (a number in (0, 1), or text for one) or ``"auto"``; ValueError otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"alpha must be a number in (0, 1) or 'auto', got {value!r}") from None
        if not 0.0 < number < 1.0:
            raise ValueError(f"alpha must be a number in (0, 1) or 'auto', got {value!r}")
        return number
    try:
        return check_alpha(value)
    except ValueError:
        raise ValueError(f"alpha must be a number in (0, 1) or 'auto', got {value!r}") from None


# The sample-size rule of a KDE quantile threshold.
CALIBRATION_TOO_SMALL = (
    "alpha x n_cal < 5: fewer than 5 calibration scores are expected above the 1 - alpha quantile, "
    "so the KDE threshold lies in the kernel's tail beyond the data it was fitted on"
)


def calibration_too_small(n: int, alpha: float) -> bool:
    """True when ``n`` calibration scores are too few for a KDE threshold at ``alpha``:
    alpha * n < 5 (see ``CALIBRATION_TOO_SMALL``)."""
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return check_alpha(alpha) * int(n) < 5.0


def finite_scores(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, int]:
    """(the finite values, flattened, as float64, in their order; how many NaN or infinite values
    were dropped)."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = np.isfinite(a)
    return a[keep], int(a.size - keep.sum())


def _clean(scores: Sequence[float], what: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size < 2:
        raise ValueError(f"need at least 2 {what} to fit a threshold, got {s.size}")
    s, dropped = finite_scores(s)
    if dropped:
        raise ValueError(f"{what} contain {dropped} NaN or infinite values")
    if np.ptp(s) == 0:
        raise ValueError(f"all {what} are equal ({s[0]!r}); a KDE cannot be fitted")
    return s


def _kde_cdf(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import gaussian_kde  # scipy only when a threshold is computed

    kde = gaussian_kde(scores)  # Scott's rule, as the original
    sd = np.std(scores, ddof=1)
    grid = np.linspace(scores.min() - sd, scores.max() + sd, GRID_POINTS)
    cdf = np.cumsum(kde(grid))
    return grid, cdf / cdf[-1]


def kde_threshold(scores: Sequence[float], alpha: float = DEFAULT_ALPHA) -> float:
    """The original AEDR threshold: the 1 - alpha quantile of a Gaussian KDE of belonging scores.

    scipy ``gaussian_kde`` (Scott bandwidth) evaluated on 10,000 points over [min - sd, max + sd]
    (sd with ddof=1); the cumulative sum normalised by its last value; ``np.interp(1 - alpha, cdf, grid)``.
    An image belongs iff its score < threshold.
    """
    alpha = check_alpha(alpha)
    grid, cdf = _kde_cdf(_clean(scores))
    return float(np.interp(1.0 - alpha, cdf, grid))


def kde_tail_probability(calibration_scores: Sequence[float], scores: Sequence[float] | float) -> np.ndarray:
    """P(S >= s) under the KDE of the calibration scores: small means "unlike the model's own images".

    Comparable across models, whatever the scale of their scores.
    """
    from scipy.stats import gaussian_kde

    kde = gaussian_kde(_clean(calibration_scores))
    s = np.atleast_1d(np.asarray(scores, dtype=np.float64))
    out = np.array([kde.integrate_box_1d(v, np.inf) if np.isfinite(v) else np.nan for v in s])
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True)
class AlphaChoice:
    alpha: float
    threshold: float
    accuracy: float


def choose_alpha(
    belonging: Sequence[float],
    non_belonging: Sequence[float],
    alphas: Sequence[float] = ALPHA_GRID,
) -> AlphaChoice:
    """The alpha whose threshold (fitted on ``belonging``) maximises accuracy on the estimation split,
    as the paper's Table 7 chooses it. Ties go to the alpha closest to the default 0.05."""
    b = _clean(belonging, "belonging scores")
    nb, dropped = finite_scores(non_belonging)
    if nb.size == 0 or dropped:
        raise ValueError("non-belonging estimation scores must be a non-empty set of finite values")
    grid, cdf = _kde_cdf(b)
    best: AlphaChoice | None = None
    for alpha in alphas:
        t = float(np.interp(1.0 - alpha, cdf, grid))
        acc = (np.sum(b < t) + np.sum(nb >= t)) / (b.size + nb.size)
        better = best is None or acc > best.accuracy or (
            acc == best.accuracy and abs(alpha - DEFAULT_ALPHA) < abs(best.alpha - DEFAULT_ALPHA)
        )
        if better:
            best = AlphaChoice(float(alpha), t, float(acc))
    assert best is not None
    return best


def typicality_order(tail_probabilities, accepted=None) -> np.ndarray:
    """The order in which attribution names candidate models: along the last axis, the candidates'
    indices sorted by tail probability, highest (most typical) first; equal tail probabilities keep
    the candidates' order (the order of the cards given, the bench's model order); NaN last. With
    ``accepted`` (a boolean array of the same shape), the accepted candidates come first, in that
    order, and the others after them. ``aedr attribute`` (``Attribution.attributed_to``) and the
    bench's open-set figures (``aedr.bench.openset``) both order candidates with this function."""
    t = np.asarray(tail_probabilities, dtype=np.float64)
    key = np.where(np.isnan(t), np.inf, -t)
    if accepted is not None:
        key = np.where(np.asarray(accepted, dtype=bool), key, np.inf)
    return np.argsort(key, axis=-1, kind="stable")


def belongs(scores: Sequence[float] | np.ndarray, threshold: float) -> np.ndarray:
    """Belonging iff score < threshold (strict, as the original)."""
    return np.asarray(scores, dtype=np.float64) < threshold
