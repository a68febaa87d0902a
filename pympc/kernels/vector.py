"""Compiled vector operations on owned blocks (strided views of ghosted arrays).

numpy's ``vdot`` copies a non-contiguous view before it multiplies, and ``y += a * x``
makes a full-size temporary; on the owned block of a ghosted array both cost more than
the arithmetic. These loops read each operand once, in place. The compiled path takes
float64 views of 1-3 axes of one shape (seen as 3-D views); anything else, and
``backend="numpy"`` (or ``PYMPC_KERNELS=numpy``), runs the numpy reference: the same
pointwise results bit for bit, sums in numpy's pairwise order.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .backend import Kernel, as3d, resolve


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


# numpy references: any shape, any dtype numpy takes
def _dot_numpy(a, b):
    return np.vdot(a, b)


def _axpby_numpy(y, a, x, b):
    y *= b  # b y, then + a x: the loop's ``a x + b y`` (addition commutes exactly)
    y += a * x


def _cg_update_numpy(x, r, p, q, alpha):
    _axpby_numpy(x, alpha, p, 1.0)
    _axpby_numpy(r, -alpha, q, 1.0)  # r - alpha q, as the loop (negation is exact)
    return float(np.vdot(r, r).real)


DOT = Kernel(_dot3, _dot_numpy)
AXPBY = Kernel(_axpby3, _axpby_numpy)
CG_UPDATE = Kernel(_cg_update3, _cg_update_numpy)


def _same_shape(where, *views):
    # views of owned blocks pair element by element only when their shapes agree (numpy's
    # vdot flattens, its += broadcasts: both would pair the wrong points silently)
    if any(v.shape != views[0].shape for v in views):
        raise InputError(f"vector.{where}: the views have different shapes "
                         f"({', '.join(str(v.shape) for v in views)})")


_F64 = np.dtype(np.float64)  # (comparing with the type np.float64 converts it: ~1 us a call)


def fast(*views, backend: str | None = None) -> bool:
    """Local. Whether the compiled path applies: the backend resolves to numba, and the
    views are float64, of 1-3 axes, of one shape."""
    v0 = views[0]
    return v0.ndim <= 3 and all(v.dtype == _F64 and v.shape == v0.shape for v in views) \
        and resolve(backend) == "numba"


def dot(a: np.ndarray, b: np.ndarray, backend: str | None = None):
    """Local. ``sum(a * b)`` of two real views, without copying them (numpy's ``vdot``
    where the compiled path does not apply)."""
    if fast(a, b, backend=backend):  # (fast() already asks for one shape)
        return float(DOT.compiled()(as3d(a), as3d(b)))
    _same_shape("dot", a, b)
    return _dot_numpy(a, b)


def axpby(y: np.ndarray, a: float, x: np.ndarray, b: float, backend: str | None = None) -> None:
    """Local. ``y = a x + b y`` in place, without a temporary."""
    if fast(y, x, backend=backend):
        AXPBY.compiled()(as3d(y), float(a), as3d(x), float(b))
    else:
        _same_shape("axpby", y, x)
        _axpby_numpy(y, a, x, b)


def cg_update(x: np.ndarray, r: np.ndarray, p: np.ndarray, q: np.ndarray, alpha: float,
              backend: str | None = None) -> float:
    """Local. The conjugate-gradient update in one pass over the four views:
    ``x += alpha p``, ``r -= alpha q``, and the local ``r . r`` of the new ``r``."""
    if fast(x, r, p, q, backend=backend):
        return float(CG_UPDATE.compiled()(as3d(x), as3d(r), as3d(p), as3d(q), float(alpha)))
    _same_shape("cg_update", x, r, p, q)
    return _cg_update_numpy(x, r, p, q, alpha)
