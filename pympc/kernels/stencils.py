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

import warnings

import numpy as np

from ..array import DistArray, require_compatible, require_distarray
from .. import env as _env
from ..runtime import InputError

try:
    if _env.value("PYMPC_KERNELS") == "numpy":
        raise ImportError("PYMPC_KERNELS=numpy")
    import numba

    HAVE_NUMBA = True
except ImportError as _e:  # pragma: no cover - numba is a dependency
    numba = None
    HAVE_NUMBA = False
    if _env.value("PYMPC_KERNELS") != "numpy":
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


def _f64(x):
    # the compiled loops compute in float64 whatever the arrays' dtype (numba promotes
    # float32 * float64) and round once at the store; the reference does the same
    return x if x.dtype == np.float64 else x.astype(np.float64)


def _ftcs_numpy(u, out, sl, r):
    c = _f64(u[sl])
    acc = None
    for a, ra in enumerate(r):
        term = ra * (_f64(u[_shift(sl, a, -1)]) - 2.0 * c + _f64(u[_shift(sl, a, 1)]))
        acc = term if acc is None else acc + term
    out[sl] = c + acc


# ---------------------------------------------------------------------------------------
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_arrays(where, names, *arrays, components=False):
    """The one input check of every kernel: DistArrays (``names`` says which argument is
    which), of one real floating dtype (float32 or float64: what the compiled loops
    compute in), on compatible decompositions with the same ghost width."""
    for name, x in zip(names, arrays):
        require_distarray(x, name, where)
    a0 = arrays[0]
    for name, x in zip(names, arrays):
        if x.dtype not in FLOAT_DTYPES:
            raise InputError(f"{where}: {name} has dtype {x.dtype}; the stencil kernels take real "
                             f"floating arrays (float32 or float64): an integer array would be "
                             f"truncated at every step")
        if x is not a0:
            require_compatible(a0, x, where)
            if x.dtype != a0.dtype:
                raise InputError(f"{where}: {names[0]} and {name} have different dtypes "
                                 f"({a0.dtype} and {x.dtype})")
            if x.decomp.ghost != a0.decomp.ghost:  # the loops index every array alike
                raise InputError(f"{where}: the DistArrays are not on one decomposition: their ghost "
                                 f"widths differ ({a0.decomp.ghost} and {x.decomp.ghost})")
        if x.components and not components:
            raise InputError(f"{where} works on scalar fields (no components); {name} has "
                             f"components {x.components}")
    return a0.decomp


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
    ``out``'s owned cells (or ``region`` of them). ``r`` may be a scalar.

    ``u`` and ``out``: float32 or float64 DistArrays (one dtype) on compatible
    decompositions; any other dtype raises :class:`~pympc.InputError`.

    Order of operations (what makes the result bit-identical to numpy, to the
    ``backend="numpy"`` version and across decompositions and rank counts): per point,
    in float64, with ``c = u[i]`` and ``lo_a``, ``hi_a`` its neighbours along axis ``a``,
    ::

        t_a = r[a] * ((lo_a - 2.0 * c) + hi_a)
        out[i] = c + (((t_0 + t_1) + t_2))       # axes summed left to right, then c added

    rounded to ``out``'s dtype once, at the store. In numpy on the padded global array
    ``U`` (2-D, float64)::

        c = U[1:-1, 1:-1]
        out = c + (r[0] * (U[:-2, 1:-1] - 2.0 * c + U[2:, 1:-1])
                   + r[1] * (U[1:-1, :-2] - 2.0 * c + U[1:-1, 2:]))

    The compiled loop uses no fast-math (no reassociation, no fused multiply-add), so
    each operation rounds as in numpy. A float32 array is computed in float64 and
    rounded at the end (numpy on float32 would round every operation: convert to
    float64 first to reproduce it)."""
    d = _check_arrays("heat_step", ("u", "out"), u, out)
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


# ---------------------------------------------------------------------------------------
# Kernels for the solvers, written once in 3-D: a 1-D or 2-D block is viewed as 3-D with
# leading axes of size 1, coefficient 0 and neighbour offset 0 there (they read their own
# point: never out of bounds; 0 * finite = 0 and 0 + y = y exactly, so the results equal
# a 1-D/2-D formula bit for bit).
# ---------------------------------------------------------------------------------------
def _as3d(x: np.ndarray) -> np.ndarray:
    return x.reshape((1,) * (3 - x.ndim) + x.shape)


def _bounds3(a: DistArray, region):
    b = _bounds(a, region)
    return [(0, 1)] * (3 - len(b)) + b


def _pad3(values, nd, fill=0.0):
    return (fill,) * (3 - nd) + tuple(float(v) for v in values)


def _leapfrog3(u, uo, out, l0, h0, l1, h1, l2, h2, o0, o1, r0, r1, r2):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = out[i, j, l2:h2]
            uc, uw, ue = u[i, j, l2:h2], u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            old = uo[i, j, l2:h2]
            for k in range(o.shape[0]):
                c = uc[k]
                o[k] = (2.0 * c - old[k]) + ((r0 * (um[k] - 2.0 * c + up[k]) + r1 * (us[k] - 2.0 * c + un[k]))
                                             + r2 * (uw[k] - 2.0 * c + ue[k]))


def _heatvar3(u, kc, out, l0, h0, l1, h1, l2, h2, o0, o1, s0, s1, s2):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = out[i, j, l2:h2]
            uc, uw, ue = u[i, j, l2:h2], u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            kk, kw, ke = kc[i, j, l2:h2], kc[i, j, l2 - 1:h2 - 1], kc[i, j, l2 + 1:h2 + 1]
            km, kp = kc[i - o0, j, l2:h2], kc[i + o0, j, l2:h2]
            ks, kn = kc[i, j - o1, l2:h2], kc[i, j + o1, l2:h2]
            for k in range(o.shape[0]):
                c = uc[k]
                k0 = kk[k]
                f0 = 0.5 * (k0 + kp[k]) * (up[k] - c) - 0.5 * (k0 + km[k]) * (c - um[k])
                f1 = 0.5 * (k0 + kn[k]) * (un[k] - c) - 0.5 * (k0 + ks[k]) * (c - us[k])
                f2 = 0.5 * (k0 + ke[k]) * (ue[k] - c) - 0.5 * (k0 + kw[k]) * (c - uw[k])
                o[k] = c + ((s0 * f0 + s1 * f1) + s2 * f2)


def _jacobi3(u, f, out, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, inv_diag):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = out[i, j, l2:h2]
            ff = f[i, j, l2:h2]
            uw, ue = u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            for k in range(o.shape[0]):
                o[k] = (ff[k] + ((w0 * (um[k] + up[k]) + w1 * (us[k] + un[k])) + w2 * (uw[k] + ue[k]))) * inv_diag


def _rbsor3(u, f, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, inv_diag, omega, g0, g1, g2, color):
    # in place, on the points whose global index sum has the parity ``color``
    for i in range(l0, h0):
        for j in range(l1, h1):
            start = l2 + ((color - (i + g0 + j + g1 + l2 + g2)) % 2)
            for k in range(start, h2, 2):
                gs = (f[i, j, k] + ((w0 * (u[i - o0, j, k] + u[i + o0, j, k]) + w1 * (u[i, j - o1, k] + u[i, j + o1, k]))
                                    + w2 * (u[i, j, k - 1] + u[i, j, k + 1]))) * inv_diag
                u[i, j, k] += omega * (gs - u[i, j, k])


def _residual3(u, f, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, diag):
    s = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            ff, uc = f[i, j, l2:h2], u[i, j, l2:h2]
            uw, ue = u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            for k in range(uc.shape[0]):
                r = ff[k] - (diag * uc[k] - ((w0 * (um[k] + up[k]) + w1 * (us[k] + un[k])) + w2 * (uw[k] + ue[k])))
                s += r * r
    return s


def _convdiff3(x, y, l0, h0, l1, h1, l2, h2, o0, o1, dg, q0, q1, q2, v0, v1, v2, t0, t1, t2):
    # y = dg x - sum_a (x[i-1] + x[i+1]) / q_a + v_a (x[i+1] - x[i-1]) / t_a, and the sum
    # of x * y; padded axes have q = inf and v = 0 (they add exactly nothing)
    s = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = y[i, j, l2:h2]
            xc, xw, xe = x[i, j, l2:h2], x[i, j, l2 - 1:h2 - 1], x[i, j, l2 + 1:h2 + 1]
            xm, xp = x[i - o0, j, l2:h2], x[i + o0, j, l2:h2]
            xs, xn = x[i, j - o1, l2:h2], x[i, j + o1, l2:h2]
            for k in range(o.shape[0]):
                c = xc[k]
                acc = dg * c
                lo, hi = xm[k], xp[k]
                acc = acc - (lo + hi) / q0
                if v0 != 0.0:
                    acc = acc + v0 * (hi - lo) / t0
                lo, hi = xs[k], xn[k]
                acc = acc - (lo + hi) / q1
                if v1 != 0.0:
                    acc = acc + v1 * (hi - lo) / t1
                lo, hi = xw[k], xe[k]
                acc = acc - (lo + hi) / q2
                if v2 != 0.0:
                    acc = acc + v2 * (hi - lo) / t2
                o[k] = acc
                s += c * acc
    return s


if HAVE_NUMBA:
    _LEAPFROG, _HEATVAR, _JACOBI, _RBSOR, _RESIDUAL, _CONVDIFF = (
        _jit(f) for f in (_leapfrog3, _heatvar3, _jacobi3, _rbsor3, _residual3, _convdiff3))
else:  # pragma: no cover - the plain Python loops still give the right answer, slowly
    _LEAPFROG, _HEATVAR, _JACOBI, _RBSOR, _RESIDUAL = _leapfrog3, _heatvar3, _jacobi3, _rbsor3, _residual3
    _CONVDIFF = None




def _flat(b):
    return [x for lohi in b for x in lohi]


def _offsets(d):
    # neighbour offsets of the two leading axes of the 3-D view: 0 on padded axes
    return [1 if a >= 3 - d.ndim else 0 for a in (0, 1)]


def leapfrog_step(u: DistArray, u_old: DistArray, out: DistArray, r, region=None) -> DistArray:
    """Local. One leapfrog step of the wave equation on owned cells:
    ``out = 2 u - u_old + sum_a r[a] (u[i-1] - 2 u[i] + u[i+1])``, ``r[a] = (c dt / h[a])**2``.
    Reads ``u``'s ghosts; ``out`` may be the same array as ``u_old``."""
    d = _check_arrays("leapfrog_step", ("u", "u_old", "out"), u, u_old, out)
    if out.data is u.data:
        raise InputError("leapfrog_step cannot write into u")
    r = _pad3(np.broadcast_to(np.asarray(r, dtype=float), (d.ndim,)), d.ndim)
    _LEAPFROG(_as3d(u.data), _as3d(u_old.data), _as3d(out.data), *_flat(_bounds3(u, region)), *_offsets(d), *r)
    return out


def heat_step_variable(u: DistArray, k: DistArray, out: DistArray, s, region=None) -> DistArray:
    """Local. One explicit step of ``u_t = div(k grad u)`` (flux form, face coefficients
    the mean of the two cells): ``s[a] = dt / h[a]**2``. Reads the ghosts of ``u`` and
    ``k``."""
    d = _check_arrays("heat_step_variable", ("u", "k", "out"), u, k, out)
    if out.data is u.data:
        raise InputError("heat_step_variable cannot update in place: pass a second array")
    s = _pad3(np.broadcast_to(np.asarray(s, dtype=float), (d.ndim,)), d.ndim)
    _HEATVAR(_as3d(u.data), _as3d(k.data), _as3d(out.data), *_flat(_bounds3(u, region)), *_offsets(d), *s)
    return out


def _weights(d, h2inv):
    w = np.broadcast_to(np.asarray(h2inv, dtype=float), (d.ndim,))
    return _pad3(w, d.ndim), 2.0 * float(np.sum(w))


def jacobi_step(u: DistArray, f: DistArray, out: DistArray, h2inv, region=None) -> DistArray:
    """Local. One Jacobi sweep for ``-lap u = f`` with the (2d+1)-point Laplacian:
    ``out = (f + sum_a (u[i-1] + u[i+1]) / h[a]**2) / (sum_a 2 / h[a]**2)``;
    ``h2inv[a] = 1 / h[a]**2``."""
    d = _check_arrays("jacobi_step", ("u", "f", "out"), u, f, out)
    if out.data is u.data:
        raise InputError("jacobi_step needs a second array for the new iterate")
    w, diag = _weights(d, h2inv)
    _JACOBI(_as3d(u.data), _as3d(f.data), _as3d(out.data), *_flat(_bounds3(u, region)), *_offsets(d), *w, 1.0 / diag)
    return out


def rbsor_sweep(u: DistArray, f: DistArray, h2inv, omega: float, color: int, region=None) -> DistArray:
    """Local. Half a red-black SOR sweep for ``-lap u = f``, in place: the points whose
    global index sum has parity ``color`` (0 red, 1 black) move by ``omega`` times their
    Gauss-Seidel correction. The colouring uses global indices, so it is the same on
    every decomposition."""
    d = _check_arrays("rbsor_sweep", ("u", "f"), u, f)
    w, diag = _weights(d, h2inv)
    g = _pad3([lo - d.ghost for lo in d.lo], d.ndim, 0.0)
    _RBSOR(_as3d(u.data), _as3d(f.data), *_flat(_bounds3(u, region)), *_offsets(d), *w, 1.0 / diag, float(omega),
           *(int(x) for x in g), int(color) % 2)
    return u


def residual_sumsq(u: DistArray, f: DistArray, h2inv, region=None) -> float:
    """Local. This rank's sum of squares of ``f + lap u`` (the residual of ``-lap u = f``)
    over ``region`` of the owned block; combine over ranks with one Allreduce."""
    d = _check_arrays("residual_sumsq", ("u", "f"), u, f)
    w, diag = _weights(d, h2inv)
    return float(_RESIDUAL(_as3d(u.data), _as3d(f.data), *_flat(_bounds3(u, region)), *_offsets(d), *w, diag))


class ConvDiff:
    """Local. The convection-diffusion operator
    ``y = (sum_a 2 / h[a]**2 + shift) x - sum_a (x[i-1] + x[i+1]) / h[a]**2
    + sum_a v[a] (x[i+1] - x[i-1]) / (2 h[a])`` of a ``ndim``-D grid, its coefficients
    computed once: :meth:`apply_dot` applies it to a region. ``diag`` is its diagonal.
    ``backend``: ``"numba"`` (default when available) or ``"numpy"``; the numpy version
    (also ``PYMPC_KERNELS=numpy``) gives the same ``y`` bit for bit, in that order of
    operations (the dot product may differ in the last bits)."""

    def __init__(self, ndim: int, h, velocity=None, shift=0.0, backend=None):
        self.ndim = int(ndim)
        self.h = np.broadcast_to(np.asarray(h, dtype=float), (self.ndim,))
        self.v = np.zeros(self.ndim) if velocity is None else np.broadcast_to(
            np.asarray(velocity, dtype=float), (self.ndim,))
        self.diag = 2.0 * float(np.sum(1.0 / self.h ** 2)) + float(shift)
        backend = backend or BACKEND
        if backend not in ("numba", "numpy"):
            raise InputError(f"backend must be 'numba' or 'numpy', got {backend!r}")
        self.compiled = backend == "numba" and _CONVDIFF is not None
        self._coef = (self.diag, *_pad3([float(hh ** 2) for hh in self.h], self.ndim, np.inf),
                      *_pad3(self.v, self.ndim), *_pad3([2.0 * float(hh) for hh in self.h], self.ndim, 1.0))

    def apply_dot(self, x: DistArray, y: DistArray, region=None) -> float:
        """Local. ``y = A x`` on ``region`` of the owned block (default all of it), and
        this rank's part of ``x . y`` there, in one pass. Reads ``x``'s ghosts; writes
        only ``region`` of ``y``."""
        d = _check_arrays("ConvDiff.apply_dot", ("x", "y"), x, y)
        if x.data is y.data:
            raise InputError("convdiff_apply_dot needs a second array for the result")
        if d.ndim != self.ndim:
            raise InputError(f"a {self.ndim}-D operator cannot act on a {d.ndim}-D array")
        if self.compiled:
            return float(_CONVDIFF(_as3d(x.data), _as3d(y.data), *_flat(_bounds3(x, region)), *_offsets(d),
                                   *self._coef))
        b = _bounds(x, region)
        if any(lo >= hi for lo, hi in b):
            return 0.0
        sl = tuple(slice(lo, hi) for lo, hi in b)
        xd = x.data
        c = _f64(xd[sl])
        acc = self.diag * c
        for a in range(d.ndim):
            lo, hi = _f64(xd[_shift(sl, a, -1)]), _f64(xd[_shift(sl, a, 1)])
            acc -= (lo + hi) / self.h[a] ** 2
            if self.v[a]:
                acc += self.v[a] * (hi - lo) / (2.0 * self.h[a])
        y.data[sl] = acc
        return float(np.vdot(c, acc))


def convdiff_apply_dot(x: DistArray, y: DistArray, h, velocity=None, shift=0.0, region=None,
                       backend=None) -> float:
    """Local. :class:`ConvDiff` ``(h, velocity, shift)`` applied once: ``y = A x`` on
    ``region`` of the owned block and this rank's part of ``x . y`` there. Code that
    applies one operator many times keeps a :class:`ConvDiff`."""
    require_distarray(x, "x", "convdiff_apply_dot")
    return ConvDiff(x.decomp.ndim, h, velocity, shift, backend).apply_dot(x, y, region)
