"""Compiled vector operations on owned blocks (strided views of ghosted arrays).

numpy's ``vdot`` copies a non-contiguous view before it multiplies, and ``y += a * x``
makes a full-size temporary; on the owned block of a ghosted array both cost more than
the arithmetic. These loops read each operand once, in place (numba; numpy fallback).
Views of 1-3 axes are handled as 3-D views with leading axes of size 1.
"""

from __future__ import annotations

import numpy as np

from ..runtime import InputError

try:
    import numba

    _jit = numba.njit(cache=True, nogil=True, boundscheck=False)
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None
    _jit = None


def _dot3(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            ar, br = a[i, j], b[i, j]
            for k in range(ar.shape[0]):
                s += ar[k] * br[k]
    return s


def _axpby3(y, a, x, b):
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            yr, xr = y[i, j], x[i, j]
            for k in range(yr.shape[0]):
                yr[k] = a * xr[k] + b * yr[k]


def _cg_update3(x, r, p, q, alpha):
    s = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            xr, rr, pr, qr = x[i, j], r[i, j], p[i, j], q[i, j]
            for k in range(xr.shape[0]):
                xr[k] += alpha * pr[k]
                v = rr[k] - alpha * qr[k]
                rr[k] = v
                s += v * v
    return s


if _jit is not None:
    _DOT, _AXPBY, _CG_UPDATE = _jit(_dot3), _jit(_axpby3), _jit(_cg_update3)


def _same_shape(where, *views):
    # views of owned blocks pair element by element only when their shapes agree (numpy's
    # vdot flattens, its += broadcasts: both would pair the wrong points silently)
    if any(v.shape != views[0].shape for v in views):
        raise InputError(f"vector.{where}: the views have different shapes "
                         f"({', '.join(str(v.shape) for v in views)})")


def _as3(v):
    return v.reshape((1,) * (3 - v.ndim) + v.shape) if v.ndim <= 3 else None


def fast(*views) -> bool:
    """Local. Whether the compiled path applies: numba, float64, 1-3 axes, same shape."""
    v0 = views[0]
    return _jit is not None and v0.ndim <= 3 and all(
        v.dtype == np.float64 and v.shape == v0.shape for v in views)


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Local. ``sum(a * b)`` of two real views, without copying them."""
    if fast(a, b):  # (fast() already asks for one shape)
        return float(_DOT(_as3(a), _as3(b)))
    _same_shape("dot", a, b)
    return np.vdot(a, b)


def axpby(y: np.ndarray, a: float, x: np.ndarray, b: float) -> None:
    """Local. ``y = a x + b y`` in place, without a temporary."""
    if fast(y, x):
        _AXPBY(_as3(y), float(a), _as3(x), float(b))
    else:
        _same_shape("axpby", y, x)
        y *= b
        y += a * x


def cg_update(x: np.ndarray, r: np.ndarray, p: np.ndarray, q: np.ndarray, alpha: float) -> float:
    """Local. The conjugate-gradient update in one pass over the four views:
    ``x += alpha p``, ``r -= alpha q``, and the local ``r . r`` of the new ``r``."""
    if fast(x, r, p, q):
        return float(_CG_UPDATE(_as3(x), _as3(r), _as3(p), _as3(q), float(alpha)))
    _same_shape("cg_update", x, r, p, q)
    axpby(x, alpha, p, 1.0)
    axpby(r, -alpha, q, 1.0)
    return float(np.vdot(r, r).real)
