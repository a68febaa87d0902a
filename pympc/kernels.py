"""The fast kernel path: stencil updates on DistArray blocks as compiled loops.

A numpy slicing update (``u[1:-1] + r*(u[:-2] - 2*u[1:-1] + u[2:])``) builds several
full-size temporaries per step and runs at about a tenth of the memory-bandwidth
roofline; one compiled loop reads each input once and writes the output once. pympc
compiles its loops with numba (``njit``, no fastmath: the arithmetic is IEEE in source
order, so results are bit-identical to the numpy reference below and independent of the
decomposition). Without numba, or with ``PYMPC_KERNELS=numpy``, the numpy versions run
(same results, slower); both are tested.

Every kernel takes an optional ``region``: per axis ``(lo, hi)`` in owned-block
coordinates (0 = first owned point), so a solver can update the interior while a halo
exchange is in flight and the border strips after (:func:`split_regions`).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from .array import DistArray
from .runtime import InputError

try:
    if os.environ.get("PYMPC_KERNELS", "numba") == "numpy":
        raise ImportError("PYMPC_KERNELS=numpy")
    import numba

    HAVE_NUMBA = True
except ImportError as _e:  # pragma: no cover - numba is a dependency
    numba = None
    HAVE_NUMBA = False
    if os.environ.get("PYMPC_KERNELS") != "numpy":
        warnings.warn(f"numba is not available ({_e}); pympc's stencil kernels fall back to "
                      "numpy slicing, several times slower", RuntimeWarning, stacklevel=2)

BACKEND = "numba" if HAVE_NUMBA else "numpy"


def _jit(f):
    return numba.njit(cache=True, nogil=True, boundscheck=False)(f) if HAVE_NUMBA else None


# ---------------------------------------------------------------------------------------
# compiled loops: u and out are ghosted arrays, (l0, h0, ...) absolute loop bounds
# ---------------------------------------------------------------------------------------
# Inner loops run over 1-D views with an index that starts at the constant 0, so the
# compiler can prove it non-negative: no wraparound branch, and the loop vectorises
# (indexing u[i, j - 1] with a run-time j kept it scalar at ~15% of the roofline).
def _ftcs1(u, out, l0, h0, r0):
    o = out[l0:h0]
    uc, uw, ue = u[l0:h0], u[l0 - 1:h0 - 1], u[l0 + 1:h0 + 1]
    for k in range(o.shape[0]):
        c = uc[k]
        o[k] = c + r0 * (uw[k] - 2.0 * c + ue[k])


def _ftcs2(u, out, l0, h0, l1, h1, r0, r1):
    for i in range(l0, h0):
        o = out[i, l1:h1]
        uc, uw, ue = u[i, l1:h1], u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1]
        um, up = u[i - 1, l1:h1], u[i + 1, l1:h1]
        for k in range(o.shape[0]):
            c = uc[k]
            o[k] = c + (r0 * (um[k] - 2.0 * c + up[k]) + r1 * (uw[k] - 2.0 * c + ue[k]))


def _ftcs3(u, out, l0, h0, l1, h1, l2, h2, r0, r1, r2):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = out[i, j, l2:h2]
            uc, uw, ue = u[i, j, l2:h2], u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - 1, j, l2:h2], u[i + 1, j, l2:h2]
            us, un = u[i, j - 1, l2:h2], u[i, j + 1, l2:h2]
            for k in range(o.shape[0]):
                c = uc[k]
                o[k] = c + ((r0 * (um[k] - 2.0 * c + up[k]) + r1 * (us[k] - 2.0 * c + un[k]))
                            + r2 * (uw[k] - 2.0 * c + ue[k]))


_FTCS = {1: _jit(_ftcs1), 2: _jit(_ftcs2), 3: _jit(_ftcs3)}


# ---------------------------------------------------------------------------------------
# numpy reference (same arithmetic, same order)
# ---------------------------------------------------------------------------------------
def _shift(sl, axis, k):
    s = list(sl)
    s[axis] = slice(sl[axis].start + k, sl[axis].stop + k)
    return tuple(s)


def _ftcs_numpy(u, out, sl, r):
    c = u[sl]
    acc = None
    for a, ra in enumerate(r):
        term = ra * (u[_shift(sl, a, -1)] - 2.0 * c + u[_shift(sl, a, 1)])
        acc = term if acc is None else acc + term
    out[sl] = c + acc


# ---------------------------------------------------------------------------------------
def _bounds(a: DistArray, region):
    d = a.decomp
    g = d.ghost
    if region is None:
        region = [(0, n) for n in d.local_shape]
    if len(region) != d.ndim:
        raise InputError(f"region needs {d.ndim} (lo, hi) pairs")
    out = []
    for (lo, hi), n in zip(region, d.local_shape):
        if not (0 <= lo <= hi <= n):
            raise InputError(f"region {(lo, hi)} outside the owned block 0..{n}")
        out.append((g + lo, g + hi))
    return out


def heat_step(u: DistArray, out: DistArray, r, region=None, backend=None) -> DistArray:
    """Local. One explicit (FTCS) diffusion step on owned cells:
    ``out = u + sum_a r[a] * (u[i-1] - 2 u[i] + u[i+1])`` along each axis ``a``, with
    ``r[a] = alpha dt / h[a]**2``. Reads ``u``'s ghosts (exchange them first), writes
    ``out``'s owned cells (or ``region`` of them). ``r`` may be a scalar."""
    d = u.decomp
    if out.decomp is not d or u.data.shape != out.data.shape or u.dtype != out.dtype:
        raise InputError("heat_step needs u and out of one decomposition, shape and dtype")
    if u.components:
        raise InputError("heat_step works on scalar fields (no components)")
    if u.data is out.data:
        raise InputError("heat_step cannot update in place: pass a second array")
    r = tuple(float(x) for x in np.broadcast_to(np.asarray(r, dtype=float), (d.ndim,)))
    b = _bounds(u, region)
    if any(lo >= hi for lo, hi in b):
        return out
    backend = backend or BACKEND
    if backend == "numba" and HAVE_NUMBA and d.ndim in _FTCS:
        flat = [x for lohi in b for x in lohi]
        _FTCS[d.ndim](u.data, out.data, *flat, *r)
    elif backend in ("numba", "numpy"):
        _ftcs_numpy(u.data, out.data, tuple(slice(lo, hi) for lo, hi in b), r)
    else:
        raise InputError(f"backend must be 'numba' or 'numpy', got {backend!r}")
    return out


def split_regions(decomp, width=None):
    """Local. ``(interior, borders)``: the owned points that need no ghost values for a
    stencil of ``width`` (default the ghost width), and a list of disjoint border strips
    covering the rest of the owned block. Update the interior between ``start()`` and
    ``wait()`` of a halo exchange, the borders after."""
    w = decomp.ghost if width is None else int(width)
    n = decomp.local_shape
    inner = [(min(w, m), max(min(w, m), m - w)) for m in n]
    borders = []
    # peel axis by axis: along axis a, the low and high slabs, restricted on earlier
    # axes to the interior range (so strips do not overlap)
    for a in range(decomp.ndim):
        for lo, hi in ((0, inner[a][0]), (inner[a][1], n[a])):
            if lo >= hi:
                continue
            reg = []
            for b in range(decomp.ndim):
                if b < a:
                    reg.append(inner[b])
                elif b == a:
                    reg.append((lo, hi))
                else:
                    reg.append((0, n[b]))
            borders.append(tuple(reg))
    return tuple(inner), borders
