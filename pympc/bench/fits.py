"""The fits of ``pympc bench``: ``T(h) = g*h + l`` by the Theil-Sen estimator (the
median of pairwise slopes: robust to the outliers a shared machine produces), with
diagnostics (least-squares fit, R², residuals, outliers)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .workloads import words


def fit_method(method: str, hs, times) -> dict:
    """Local. :func:`fit` of ``times`` against the words ``method`` moves for each ``h``
    (:func:`words`)."""
    return fit([words(method, h) for h in hs], times)


def fit(hs, times) -> dict:
    """Local. Fit ``T(h) = g*h + l``: Theil-Sen (``g`` the median pairwise slope, its
    95% interval, ``l`` the median of ``T - g*h``) and, for comparison, least squares (``g_ls``, ``l_ls``, ``r2``); residuals of the
    robust fit relative to ``T`` (``max_rel_residual``) and the ``outliers`` (h values
    whose residual exceeds 3 scaled median absolute deviations); ``h_min`` and ``h_max``,
    the range of ``h`` fitted (a line fitted over a curve that bends upwards, as a strided
    halo pattern's, holds there and not at ``h = 0``: its ``l`` may be negative)."""
    from scipy import stats

    h = np.asarray(hs, float)
    t = np.asarray(times, float)
    if h.size < 3 or len(set(h.tolist())) < 2:
        raise InputError("a fit of T(h) needs 3 or more points with 2 or more h values")
    g, l, lo, hi = stats.theilslopes(t, h, method="joint")
    res = t - (g * h + l)
    mad = 1.4826 * np.median(np.abs(res - np.median(res)))
    out = h[np.abs(res) > max(3 * mad, 1e-6 * float(np.median(np.abs(t))))]
    ls = stats.linregress(h, t)
    return {"g": float(g), "l": float(l), "g_low": float(lo), "g_high": float(hi),
            "g_ls": float(ls.slope), "l_ls": float(ls.intercept), "r2": float(ls.rvalue ** 2),
            "max_rel_residual": float(np.max(np.abs(res) / t)), "outliers": out.astype(int).tolist(),
            "h_min": float(h.min()), "h_max": float(h.max())}
