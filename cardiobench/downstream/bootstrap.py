"""Paired bootstrap of the difference between two systems scored on the same test slices.

Given per-slice scores ``a`` and ``b`` of two systems (e.g. the per-slice Dice of a segmenter trained on real
pairs and of one trained on real + synthetic pairs) on the same slices, the pairs where either score is NaN
are dropped, ``d = b - a`` is formed per slice, and ``n_boot`` resamples of the slices (with replacement,
``n`` of ``n``, seeded) give the bootstrap distribution of the mean difference. The interval is its percentile
interval at ``level`` (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13): resampling
slices, not pixels, and keeping each slice's two scores together (paired), so the variation between slices
that both systems share cancels.

Slices of one patient are correlated, so the interval is somewhat narrower than a patient-level bootstrap
would give; it is a statement about these test slices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cardiobench.errors import CardiobenchError

__all__ = ["paired_bootstrap"]

#: resamples drawn per chunk (bounds the memory of the index matrix to about CHUNK * n * 8 bytes)
_CHUNK = 256


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap CI of ``mean(b - a)`` over the slices where both are finite.

    Returns ``{"mean_diff", "lo", "hi", "n", "n_boot", "level", "se", "p_not_better"}``: ``mean_diff`` the
    observed mean difference, ``[lo, hi]`` the central ``level`` percentile interval of the resampled means,
    ``n`` the number of pairs used, ``se`` the standard deviation of the resampled means and ``p_not_better``
    the fraction of resampled means <= 0 (a one-sided bootstrap p-value for "b is better than a"). No pairs
    left: every value NaN and ``n`` 0.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise CardiobenchError(f"paired scores must be two 1-D arrays of the same length, got {x.shape} and {y.shape}")
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise CardiobenchError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < float(level) < 1.0:
        raise CardiobenchError(f"level must be in (0, 1), got {level!r}")
    keep = np.isfinite(x) & np.isfinite(y)
    d = (y - x)[keep]
    n = int(len(d))
    out: dict[str, Any] = {"mean_diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": n,
                           "n_boot": int(n_boot), "level": float(level), "se": float("nan"),
                           "p_not_better": float("nan")}
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    for s in range(0, n_boot, _CHUNK):
        k = min(_CHUNK, n_boot - s)
        means[s : s + k] = d[rng.integers(0, n, size=(k, n))].mean(axis=1)
    alpha = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    out.update(mean_diff=float(d.mean()), lo=float(lo), hi=float(hi), se=float(means.std()),
               p_not_better=float(np.mean(means <= 0.0)))
    return out
