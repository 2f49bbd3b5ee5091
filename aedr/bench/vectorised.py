"""The pair metrics and the KDE threshold for many samples at once: the vectorised figures the
bootstrap (``aedr.bench.stats``) computes for every replicate, and the built-in metrics'
``replicates`` (``aedr.bench.metrics``).

Every function takes scores of shape (B, n) (one sample per row; NaN or infinite entries are
missing, so rows of unequal length can be NaN-padded) or of shape (n,) shared by every row, and
optional ``counts`` of shape (B, n): how many times each score is in row b's sample. Counts describe
a bootstrap resample without copying scores: a score with count k counts exactly as k copies of it
would. Each returns one figure per row, (B,).

Score convention, as everywhere in the bench: lower score = belongs to the target.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.special import ndtr

from ..calibration import GRID_POINTS, check_alpha

__all__ = ["accuracy", "auc", "kde_tail_probabilities", "kde_thresholds", "tpr_at_fpr"]

# As aedr.bench.metrics.tpr_at_fpr: a threshold qualifies when its FPR <= max_fpr + this.
_FPR_SLACK = 1e-12
_CHUNK = 4_000_000  # elements of the largest temporary array of the per-row metric paths



# -- inputs of the vectorised functions --------------------------------------------------------------
def _sample(values, counts, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores as (n,) when shared by every row else (B, n), with non-finite entries kept;
    counts as (B or 1, n) floats, 0 where the score is missing)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError(f"{what}: expected shape (n,) or (B, n), got {v.shape}")
    finite = np.isfinite(v)
    if counts is None:
        c = finite.astype(np.float64)
    else:
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim == 1:
            c = c[None, :]
        if c.ndim != 2 or c.shape[1] != v.shape[-1]:
            raise ValueError(f"{what} counts: expected shape (B, {v.shape[-1]}), got {c.shape}")
        if not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError(f"{what} counts must be finite and non-negative")
        c = np.where(finite, c, 0.0)
    if c.ndim == 1:
        c = c[None, :]
    return v, c


def _rows(*sizes: int) -> int:
    """The common number of rows of arrays with ``sizes`` rows (1 broadcasts)."""
    out = 1
    for s in sizes:
        if s != 1:
            if out not in (1, s):
                raise ValueError(f"inconsistent numbers of rows: {sorted(set(sizes))}")
            out = s
    return out


def _per_row(v: np.ndarray, rows: int) -> np.ndarray:
    return np.broadcast_to(v if v.ndim == 2 else v[None, :], (rows, v.shape[-1]))


# -- thresholds ----------------------------------------------------------------------------------------
def kde_thresholds(samples, alpha: float, *, counts=None) -> np.ndarray:
    """``aedr.calibration.kde_threshold(row, alpha)`` of every row of ``samples``, vectorised.

    ``samples``: (B, n), or (n,) shared by every row of ``counts`` (B, n). NaN and infinite entries
    are missing (``fit_threshold`` drops them before fitting). Returns (B,) thresholds; NaN for a row
    with fewer than 2 scores or whose scores are all equal (``kde_threshold`` raises for those).

    The estimator is the same: a Gaussian KDE with Scott's bandwidth sd * n^(-1/5) (sd with
    ddof=1), truncated to [min - sd, max + sd] and renormalised, and its 1 - alpha quantile. The
    reference evaluates the density on a 10,000-point grid and takes a normalised cumulative sum;
    that is the midpoint rule for the KDE's CDF on [lo - h/2, x + h/2] (h the grid step), so here
    the exact CDF (``scipy.special.ndtr``) is truncated to [lo - h/2, hi + h/2], the quantile is
    solved by safeguarded Newton steps (bisection where Newton leaves the bracket) and shifted by
    -h/2. Agreement with the grid is far within 1e-4 x (max - min + 2 sd).
    """
    q = 1.0 - check_alpha(alpha)
    v, c = _sample(samples, counts, "samples")
    rows = _rows(v.shape[0] if v.ndim == 2 else 1, c.shape[0])
    x = _per_row(v, rows)
    c = np.broadcast_to(c, x.shape)
    present = c > 0
    x = np.where(present, x, 0.0)
    n = c.sum(axis=1)
    out = np.full(rows, np.nan)
    lo_data = np.where(present, x, np.inf).min(axis=1, initial=np.inf)
    hi_data = np.where(present, x, -np.inf).max(axis=1, initial=-np.inf)
    ok = (n > 1) & (hi_data > lo_data)
    if not ok.any():
        return out
    x, c, n, lo_data, hi_data = x[ok], c[ok], n[ok], lo_data[ok], hi_data[ok]
    mean = (c * x).sum(axis=1) / n
    sd = np.sqrt((c * (x - mean[:, None]) ** 2).sum(axis=1) / (n - 1.0))
    bw = (sd * n ** -0.2)[:, None]
    lo, hi = lo_data - sd, hi_data + sd
    half = 0.5 * (hi - lo) / (GRID_POINTS - 1)
    left, right = lo - half, hi + half

    def cdf(t: np.ndarray) -> np.ndarray:
        return (c * ndtr((t[:, None] - x) / bw)).sum(axis=1) / n

    f_left = cdf(left)
    goal = f_left + q * (cdf(right) - f_left)
    a, b = left.copy(), right.copy()
    t = 0.5 * (a + b)
    scale = 1.0 / (n * bw[:, 0] * math.sqrt(2.0 * math.pi))
    tol = 1e-12 * (right - left)
    for _ in range(200):
        z = (t[:, None] - x) / bw
        g = (c * ndtr(z)).sum(axis=1) / n - goal
        dens = (c * np.exp(-0.5 * z * z)).sum(axis=1) * scale
        a = np.where(g < 0, t, a)
        b = np.where(g > 0, t, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = t - g / dens
        new = np.where((step > a) & (step < b), step, 0.5 * (a + b))
        new = np.where(g == 0, t, new)
        done = np.abs(new - t) <= tol
        t = new
        if done.all():
            break
    out[ok] = np.clip(t - half, lo, hi)
    return out


def kde_tail_probabilities(samples, values, *, counts=None) -> np.ndarray:
    """``aedr.calibration.kde_tail_probability(row, values)`` of every row of ``samples``: P(S >= v)
    under the Gaussian KDE (Scott's bandwidth, untruncated) of each row's calibration scores.

    ``samples``: (n,) shared by every row of ``counts`` (B, n), or (B, n); ``values`` (m,), the
    scores to evaluate (NaN stays NaN). Returns (B, m); a row with fewer than 2 scores, or whose
    scores are all equal, is NaN (``kde_tail_probability`` raises for those). A score with count k
    weighs as k copies of it would: the kernel of ``scipy.stats.gaussian_kde`` on the repeated
    sample."""
    v, c = _sample(samples, counts, "samples")
    rows = _rows(v.shape[0] if v.ndim == 2 else 1, c.shape[0])
    x = _per_row(v, rows)
    c = np.broadcast_to(c, x.shape)
    x = np.where(c > 0, x, 0.0)
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    n = c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (c * x).sum(axis=1) / n
        sd = np.sqrt((c * (x - mean[:, None]) ** 2).sum(axis=1) / (n - 1.0))
    bw = sd * n ** -0.2
    ok = (n > 1) & (bw > 0) & np.isfinite(bw)
    out = np.full((rows, vals.size), np.nan)
    for s in _chunks(rows, vals.size * x.shape[1]):
        z = (vals[None, :, None] - x[s, None, :]) / np.where(ok[s], bw[s], 1.0)[:, None, None]
        out[s] = (c[s, None, :] * (1.0 - ndtr(z))).sum(axis=2) / np.where(ok[s], n[s], 1.0)[:, None]  # as scipy's integral
    out[~ok] = np.nan
    out[:, ~np.isfinite(vals)] = np.nan
    return np.clip(out, 0.0, 1.0)


# -- metrics over replicates -----------------------------------------------------------------------------
def accuracy(belonging, other, tau, *, belonging_counts=None, other_counts=None) -> np.ndarray:
    """(TP + TN) / (N_T + N_S) of every row under its threshold ``tau`` (B,) or a scalar: TP counts
    belonging scores < tau, TN other scores >= tau. With no other scores (the target's own pair),
    TP / N_T. NaN where tau is NaN or a row has no scores. Returns (B,).
    As ``aedr.bench.metrics.accuracy``, row by row."""
    b, cb = _sample(belonging, belonging_counts, "belonging")
    o, co = _sample(other, other_counts, "other")
    t = np.asarray(tau, dtype=np.float64).reshape(-1)
    rows = _rows(b.shape[0] if b.ndim == 2 else 1, cb.shape[0], o.shape[0] if o.ndim == 2 else 1, co.shape[0], t.size)
    t = np.broadcast_to(t, (rows,))
    bb = b if b.ndim == 2 else b[None, :]
    oo = o if o.ndim == 2 else o[None, :]
    tp = (cb * (bb < t[:, None])).sum(axis=1)
    tn = (co * (oo >= t[:, None])).sum(axis=1)
    n = np.broadcast_to(cb.sum(axis=1) + co.sum(axis=1), (rows,))
    good = np.isfinite(t) & (n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.broadcast_to(tp + tn, (rows,)) / n
    return np.where(good, out, np.nan)


def _chunks(rows: int, per_row: int):
    step = max(1, _CHUNK // max(per_row, 1))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def _cumulative(v: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shared scores ``v`` (n,) and counts ``c`` (rows, n): (the finite scores sorted; (rows, k + 1)
    cumulative counts along them, starting at 0)."""
    keep = np.isfinite(v)
    order = np.argsort(v[keep], kind="stable")
    cum = np.zeros((c.shape[0], order.size + 1))
    np.cumsum(c[:, keep][:, order], axis=1, out=cum[:, 1:])
    return v[keep][order], cum


def auc(belonging, other, *, belonging_counts=None, other_counts=None) -> np.ndarray:
    """P(a belonging score < an other score) of every row, ties counted half (Mann-Whitney), as
    ``aedr.bench.metrics.roc_auc``. NaN for a row without belonging or without other scores.
    Returns (B,)."""
    b, cb = _sample(belonging, belonging_counts, "belonging")
    o, co = _sample(other, other_counts, "other")
    rows = _rows(b.shape[0] if b.ndim == 2 else 1, cb.shape[0], o.shape[0] if o.ndim == 2 else 1, co.shape[0])
    if b.ndim == 1 and o.ndim == 1:  # one set of scores, many resamples: cumulative counts
        bs, cum = _cumulative(b, cb)
        keep = np.isfinite(o)
        of = o[keep]
        below = 0.5 * (cum[:, np.searchsorted(bs, of, side="left")] + cum[:, np.searchsorted(bs, of, side="right")])
        num = np.broadcast_to((below * co[:, keep]).sum(axis=1), (rows,))
    else:
        bb, oo = _per_row(b, rows), _per_row(o, rows)
        cbb, coo = np.broadcast_to(cb, bb.shape), np.broadcast_to(co, oo.shape)
        num = np.empty(rows)
        for s in _chunks(rows, bb.shape[1] * oo.shape[1]):
            k = (bb[s, :, None] < oo[s, None, :]) + 0.5 * (bb[s, :, None] == oo[s, None, :])
            num[s] = np.einsum("ri,rij,rj->r", cbb[s], k, coo[s])
    den = np.broadcast_to(cb.sum(axis=1) * co.sum(axis=1), (rows,))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _tprs(belonging, other, max_fprs: Sequence[float], belonging_counts=None, other_counts=None) -> list[np.ndarray]:
    """``tpr_at_fpr`` at each of ``max_fprs``, from one ROC curve per row."""
    b, cb = _sample(belonging, belonging_counts, "belonging")
    o, co = _sample(other, other_counts, "other")
    rows = _rows(b.shape[0] if b.ndim == 2 else 1, cb.shape[0], o.shape[0] if o.ndim == 2 else 1, co.shape[0])
    nb = np.broadcast_to(cb.sum(axis=1), (rows,))
    no = np.broadcast_to(co.sum(axis=1), (rows,))
    limits = [float(f) + _FPR_SLACK for f in max_fprs]
    best = [np.zeros(rows) for _ in limits]

    def update(tpr: np.ndarray, fpr: np.ndarray, s=slice(None)) -> None:
        for out, limit in zip(best, limits):
            out[s] = np.where(fpr <= limit, tpr, 0.0).max(axis=1)

    with np.errstate(divide="ignore", invalid="ignore"):
        if b.ndim == 1 and o.ndim == 1:  # shared scores: cumulative counts
            _shared_tprs(b, cb, o, co, nb, no, limits, best)
        else:
            bb, oo = _per_row(b, rows), _per_row(o, rows)
            cbb, coo = np.broadcast_to(cb, bb.shape), np.broadcast_to(co, oo.shape)
            ts = np.concatenate([bb, oo], axis=1)  # missing entries are NaN: no score is <= them
            if ts.shape[1]:
                for s in _chunks(rows, ts.shape[1] * max(bb.shape[1], oo.shape[1], 1)):
                    t = ts[s]
                    wb = np.einsum("ri,rit->rt", cbb[s], (bb[s, :, None] <= t[:, None, :]).astype(np.float64))
                    wo = np.einsum("ri,rit->rt", coo[s], (oo[s, :, None] <= t[:, None, :]).astype(np.float64))
                    update(wb / nb[s, None], wo / no[s, None], s)
    good = (nb > 0) & (no > 0)
    return [np.where(good, x, np.nan) for x in best]


def _shared_tprs(b, cb, o, co, nb, no, limits: Sequence[float], best: list[np.ndarray]) -> None:
    """``_tprs`` for scores shared by every row. TPR and FPR grow with t, so the thresholds whose FPR
    is <= a limit are those below the first distinct other score whose FPR exceeds it, and the best
    of them counts every belonging score below that score (none: TPR 0, as at t = -inf)."""
    bs, cum_b = _cumulative(b, cb)
    os_, cum_o = _cumulative(o, co)
    rows = best[0].size
    distinct = np.unique(os_)
    fpr = cum_o[:, np.searchsorted(os_, distinct, side="right")] / no[:, None]  # at each distinct other score
    below_b = np.broadcast_to(cum_b, (rows, cum_b.shape[1]))
    for out, limit in zip(best, limits):
        over = fpr > limit
        first = np.where(over.any(axis=1), distinct[over.argmax(axis=1)], np.inf) if distinct.size else np.full(rows, np.inf)
        out[:] = below_b[np.arange(rows), np.searchsorted(bs, first, side="left")] / nb


def tpr_at_fpr(belonging, other, max_fpr: float, *, belonging_counts=None, other_counts=None) -> np.ndarray:
    """The highest true-positive rate of the rule "belonging iff score <= t" over every t whose
    false-positive rate is <= ``max_fpr`` (t = -inf, TPR 0, always qualifies), as
    ``aedr.bench.metrics.tpr_at_fpr``. NaN for a row without belonging or without other scores.
    Returns (B,)."""
    return _tprs(belonging, other, [max_fpr], belonging_counts, other_counts)[0]
