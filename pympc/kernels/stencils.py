"""The stencil kernels of the solvers on DistArray blocks: the checks, the owned-block
``region`` convention, and the call of the compiled loop or its numpy reference
(:mod:`pympc.kernels.loops`; :mod:`pympc.kernels.backend` decides which).

A numpy slicing update (``u[1:-1] + r*(u[:-2] - 2*u[1:-1] + u[2:])``) builds several
full-size temporaries per step and runs at about a tenth of the memory-bandwidth
roofline; one compiled loop reads each input once and writes the output once. pympc
compiles its loops with numba (``njit``, no fastmath: the arithmetic is IEEE in source
order, so results are bit-identical to the numpy references and independent of the
decomposition). ``backend="numpy"`` on any kernel, or ``PYMPC_KERNELS=numpy``, runs the
references (same results, slower); both are tested.

Every kernel takes an optional ``region``: per axis ``(lo, hi)`` in owned-block
coordinates (0 = first owned point), so a solver can update the interior while a halo
exchange is in flight and the border strips after (:func:`split_regions`). A region may
reach up to ``ghost - 1`` layers into the ghosts (``lo`` down to ``1 - ghost``): the
steps between two exchanges of width ``k`` recompute the ghosts their successors read
(docs/blocking.md).
"""

from __future__ import annotations

import numpy as np

from ..array import DistArray, require_compatible, require_distarray
from ..runtime import InputError
from . import backend as _backend
from .backend import as3d
from .loops import (CONVDIFF, FTCS, FTCS_ND, HEATVAR, JACOBI, LEAPFROG, RBSOR, RESIDUAL, _ftcs_numpy, check_stores,
                    per_axis)

BACKEND = _backend.resolve()
"""The backend a kernel called without ``backend=`` runs in this process."""
HAVE_NUMBA = BACKEND == "numba"
"""Whether that is the compiled one."""

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_arrays(where, names, *arrays, components=False):
    """The one input check of every kernel: DistArrays (``names`` says which argument is
    which), of one real floating dtype (float32 or float64: what the compiled loops
    compute in), on decompositions one halo exchange could serve (the loops index every
    array alike: :func:`~pympc.array.require_compatible` with ``halo=True``)."""
    for name, x in zip(names, arrays):
        require_distarray(x, name, where)
    a0 = arrays[0]
    for name, x in zip(names, arrays):
        if x.dtype not in FLOAT_DTYPES:
            raise InputError(f"{where}: {name} has dtype {x.dtype}; the stencil kernels take real "
                             f"floating arrays (float32 or float64): an integer array would be "
                             f"truncated at every step")
        if x is not a0:
            require_compatible(a0, x, where, halo=True)
            if x.dtype != a0.dtype:
                raise InputError(f"{where}: {names[0]} and {name} have different dtypes "
                                 f"({a0.dtype} and {x.dtype})")
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
        # a region may reach g - 1 layers into the ghosts (a deep-halo step recomputes
        # them): its points' neighbours are still inside the ghosted array
        if not (1 - g <= lo <= hi <= n + g - 1):
            raise InputError(f"region {(lo, hi)} outside the owned block 0..{n}"
                             + (f" grown by {g - 1} ghost layers" if g > 1 else ""))
        out.append((g + lo, g + hi))
    return out


def _not_in_place(where, a, b, what="update in place: pass a second array"):
    if a.data is b.data:
        raise InputError(f"{where} cannot {what}")


def ftcs_loop(u: np.ndarray, out: np.ndarray, args: tuple, backend: str | None = None,
              stores: str | None = None):
    """Local. The function that runs the FTCS step ``fn(u, out, *args)`` (``args``: the
    bounds and coefficients of ``_ftcs1/2/3``): the compiled loop or the numpy reference,
    as ``backend`` resolves; in 2-D the compiled row pair with plain or streaming stores,
    as :func:`pympc.kernels.streaming.ftcs2_loop` chooses or ``stores`` says (the same
    bits either way; a ``stores`` that names no loop is an :class:`~pympc.InputError`,
    in any dimension)."""
    check_stores(stores)
    fn = FTCS.get(u.ndim, FTCS_ND).select(backend)
    if u.ndim == 2 and fn is not _ftcs_numpy:
        from . import streaming  # imports numba: only once a compiled 2-D step runs
        fn = streaming.ftcs2_loop(fn, u, out, args, stores)
    return fn


def ftcs_array(src: np.ndarray, dst: np.ndarray, r, backend: str | None = None) -> np.ndarray:
    """Local. The FTCS step of :func:`~pympc.kernels.heat_step` on plain numpy arrays of
    1-3 axes: ``dst`` at the interior points (all but the first and last point of every
    axis) becomes ``src + sum_a r[a] (src[i-1] - 2 src[i] + src[i+1])``; the outer layer
    of ``dst`` is left alone. ``r``: a scalar or one per axis. ``src`` and ``dst``:
    distinct float32 or float64 arrays of one shape and dtype."""
    for name, x in (("src", src), ("dst", dst)):
        if not isinstance(x, np.ndarray) or x.dtype.char not in "fd" or not 1 <= x.ndim <= 3:
            raise InputError(f"ftcs_array: {name} must be a float32 or float64 numpy array of "
                             f"1-3 axes, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if src.shape != dst.shape or src.dtype != dst.dtype or np.may_share_memory(src, dst):
        raise InputError("ftcs_array: src and dst must be distinct arrays of one shape and dtype")
    rr = per_axis(r, src.ndim)
    if min(src.shape) >= 3:
        args = (*[x for n in src.shape for x in (1, n - 1)], *rr)
        ftcs_loop(src, dst, args, backend)(src, dst, *args)
    return dst


def heat_step(u: DistArray, out: DistArray, r, region=None, backend=None, stores=None) -> DistArray:
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
    float64 first to reproduce it). In 2-D the compiled step stores plainly or past the
    cache (streaming stores), whichever measured faster on this machine
    (``PYMPC_STREAMING_STORES``, :mod:`pympc.kernels.streaming`), or the loop ``stores``
    names (``"plain"``, ``"stream-pairs"``, ``"stream-rows"``: pinned, e.g. to time a
    step as another program runs it; 1-D and 3-D steps ignore it): the same bits."""
    d = _check_arrays("heat_step", ("u", "out"), u, out)
    _not_in_place("heat_step", u, out)
    r = per_axis(r, d.ndim)
    b = _bounds(u, region)
    args = (*_flat(b), *r)
    kernel = ftcs_loop(u.data, out.data, args, backend, stores)  # (also checks the backend and stores)
    if all(lo < hi for lo, hi in b):
        kernel(u.data, out.data, *args)
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
# The kernels written once in 3-D (pympc.kernels.loops): a 1-D or 2-D block goes in as a
# 3-D view (backend.as3d) with bounds (0, 1), neighbour offset 0 and coefficient 0 on
# the leading axes.
# ---------------------------------------------------------------------------------------
def _flat(b):
    return [x for lohi in b for x in lohi]


def _box3(a: DistArray, region):
    """The loop bounds of ``region`` and the neighbour offsets of the two leading axes,
    as the 3-D loops take them: ``[l0, h0, l1, h1, l2, h2, o0, o1]``."""
    b = _bounds(a, region)
    nd = len(b)
    return _flat([(0, 1)] * (3 - nd) + b) + [1 if ax >= 3 - nd else 0 for ax in (0, 1)]


def _pad3(values, nd, fill=0.0):
    return (fill,) * (3 - nd) + tuple(float(v) for v in values)


def leapfrog_step(u: DistArray, u_old: DistArray, out: DistArray, r, region=None, backend=None) -> DistArray:
    """Local. One leapfrog step of the wave equation on owned cells:
    ``out = 2 u - u_old + sum_a r[a] (u[i-1] - 2 u[i] + u[i+1])``, ``r[a] = (c dt / h[a])**2``.
    Reads ``u``'s ghosts; ``out`` may be the same array as ``u_old``."""
    d = _check_arrays("leapfrog_step", ("u", "u_old", "out"), u, u_old, out)
    _not_in_place("leapfrog_step", u, out, "write into u")
    r = _pad3(per_axis(r, d.ndim), d.ndim)
    LEAPFROG(as3d(u.data), as3d(u_old.data), as3d(out.data), *_box3(u, region), *r, backend=backend)
    return out


def heat_step_variable(u: DistArray, k: DistArray, out: DistArray, s, region=None, backend=None) -> DistArray:
    """Local. One explicit step of ``u_t = div(k grad u)`` (flux form, face coefficients
    the mean of the two cells): ``s[a] = dt / h[a]**2``. Reads the ghosts of ``u`` and
    ``k``."""
    d = _check_arrays("heat_step_variable", ("u", "k", "out"), u, k, out)
    _not_in_place("heat_step_variable", u, out)
    s = _pad3(per_axis(s, d.ndim), d.ndim)
    HEATVAR(as3d(u.data), as3d(k.data), as3d(out.data), *_box3(u, region), *s, backend=backend)
    return out


def _weights(d, h2inv):
    w = per_axis(h2inv, d.ndim)
    return _pad3(w, d.ndim), 2.0 * float(np.sum(w))


def jacobi_step(u: DistArray, f: DistArray, out: DistArray, h2inv, region=None, backend=None) -> DistArray:
    """Local. One Jacobi sweep for ``-lap u = f`` with the (2d+1)-point Laplacian:
    ``out = (f + sum_a (u[i-1] + u[i+1]) / h[a]**2) / (sum_a 2 / h[a]**2)``;
    ``h2inv[a] = 1 / h[a]**2``."""
    d = _check_arrays("jacobi_step", ("u", "f", "out"), u, f, out)
    _not_in_place("jacobi_step", u, out)
    w, diag = _weights(d, h2inv)
    JACOBI(as3d(u.data), as3d(f.data), as3d(out.data), *_box3(u, region), *w, 1.0 / diag, backend=backend)
    return out


def rbsor_sweep(u: DistArray, f: DistArray, h2inv, omega: float, color: int, region=None,
                backend=None) -> DistArray:
    """Local. Half a red-black SOR sweep for ``-lap u = f``, in place: the points whose
    global index sum has parity ``color`` (0 red, 1 black) move by ``omega`` times their
    Gauss-Seidel correction. The colouring uses global indices, so it is the same on
    every decomposition."""
    d = _check_arrays("rbsor_sweep", ("u", "f"), u, f)
    w, diag = _weights(d, h2inv)
    g = _pad3([lo - d.ghost for lo in d.lo], d.ndim, 0.0)
    RBSOR(as3d(u.data), as3d(f.data), *_box3(u, region), *w, 1.0 / diag, float(omega),
          *(int(x) for x in g), int(color) % 2, backend=backend)
    return u


def residual_sumsq(u: DistArray, f: DistArray, h2inv, region=None, backend=None) -> float:
    """Local. This rank's sum of squares of ``f + lap u`` (the residual of ``-lap u = f``)
    over ``region`` of the owned block; combine over ranks with one Allreduce."""
    d = _check_arrays("residual_sumsq", ("u", "f"), u, f)
    w, diag = _weights(d, h2inv)
    return float(RESIDUAL(as3d(u.data), as3d(f.data), *_box3(u, region), *w, diag, backend=backend))


class ConvDiff:
    """Local. The convection-diffusion operator
    ``y = (sum_a 2 / h[a]**2 + shift) x - sum_a (x[i-1] + x[i+1]) / h[a]**2
    + sum_a v[a] (x[i+1] - x[i-1]) / (2 h[a])`` of a ``ndim``-D grid, its coefficients
    computed once: :meth:`apply_dot` applies it to a region. ``diag`` is its diagonal.
    ``backend``: ``"numba"`` or ``"numpy"`` (None: ``PYMPC_KERNELS``); the numpy version
    gives the same ``y`` bit for bit, in that order of operations (the dot product may
    differ in the last bits)."""

    def __init__(self, ndim: int, h, velocity=None, shift=0.0, backend=None):
        self.ndim = int(ndim)
        self.h = np.broadcast_to(np.asarray(h, dtype=float), (self.ndim,))
        self.v = np.zeros(self.ndim) if velocity is None else np.broadcast_to(
            np.asarray(velocity, dtype=float), (self.ndim,))
        self.diag = 2.0 * float(np.sum(1.0 / self.h ** 2)) + float(shift)
        self._loop = CONVDIFF.select(backend)
        self.compiled = self._loop is not CONVDIFF.reference
        self._coef = (self.diag, *_pad3([float(hh ** 2) for hh in self.h], self.ndim, np.inf),
                      *_pad3(self.v, self.ndim), *_pad3([2.0 * float(hh) for hh in self.h], self.ndim, 1.0))

    def apply_dot(self, x: DistArray, y: DistArray, region=None) -> float:
        """Local. ``y = A x`` on ``region`` of the owned block (default all of it), and
        this rank's part of ``x . y`` there, in one pass. Reads ``x``'s ghosts; writes
        only ``region`` of ``y``."""
        d = _check_arrays("ConvDiff.apply_dot", ("x", "y"), x, y)
        _not_in_place("ConvDiff.apply_dot", x, y, "write into x: pass a second array for the result")
        if d.ndim != self.ndim:
            raise InputError(f"a {self.ndim}-D operator cannot act on a {d.ndim}-D array")
        return float(self._loop(as3d(x.data), as3d(y.data), *_box3(x, region), *self._coef))


def convdiff_apply_dot(x: DistArray, y: DistArray, h, velocity=None, shift=0.0, region=None,
                       backend=None) -> float:
    """Local. :class:`ConvDiff` ``(h, velocity, shift)`` applied once: ``y = A x`` on
    ``region`` of the owned block and this rank's part of ``x . y`` there. Code that
    applies one operator many times keeps a :class:`ConvDiff`."""
    require_distarray(x, "x", "convdiff_apply_dot")
    return ConvDiff(x.decomp.ndim, h, velocity, shift, backend).apply_dot(x, y, region)
