"""Kernels of the variable-coefficient diffusion operator ``A u = -div(k grad u) + c u``
(:class:`solvers.diffusion.DiffusionOperator`) and of the shifted multigrid smoother.

The operator's row at a point ``i`` (flux form, ``s_a[i]`` the coefficient of the face
between ``i`` and ``i + e_a`` divided by ``h_a**2``)::

    y[i] = c[i] x[i] + sum_a (s_a[i] (x[i] - x[i+e_a]) + s_a[i-e_a] (x[i] - x[i-e_a]))

in this order: ``acc = c x``, then for each axis ``acc = acc + (hi + lo)`` with
``hi = s_a[i] (x - x+)`` and ``lo = s_a[i-e] (x - x-)``. A padded axis (a 1-D or 2-D
block viewed as 3-D) has neighbour offset 0: its differences are exactly 0 and add
nothing, whatever face array is passed for it. The numpy references do the same
operations in the same order, so the products are bit-identical (the returned dot
products may differ in the last bits: numpy sums pairwise).

- :class:`Flux` applies the operator (and returns the local part of ``x . y``) on a
  region, choosing the loop that reads the fewest arrays: a scalar ``k`` and scalar ``c``
  read ``x`` only; a scalar ``k`` and a
  field ``c`` read ``x`` and ``c``; face fields read ``x`` and the faces (and ``c`` when
  it is a field).
- :func:`rbsor_shift_sweep`: half a red-black SOR sweep for ``(-k lap + c) u = f``
  (scalar ``k``; ``c`` scalar: the existing compiled sweep with the shifted diagonal,
  bit-identical to :func:`~pympc.kernels.stencils.rbsor_sweep` for ``c = 0``; ``c`` a
  field: a loop that also reads ``c``).
"""

from __future__ import annotations

import numpy as np

from ..array import DistArray
from ..runtime import InputError
from .backend import Kernel, as3d
from .loops import RBSOR, _box, _f64, _star
from .stencils import _box3, _check_arrays, _not_in_place, _pad3, per_axis


def _flux3(x, y, s0, s1, s2, c, l0, h0, l1, h1, l2, h2, o0, o1, cs, cfield):
    # y = c x + sum_a (s_a[i] (x - x[i+e]) + s_a[i-e] (x - x[i-e])); returns sum x y
    t = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = y[i, j, l2:h2]
            xc, xw, xe = x[i, j, l2:h2], x[i, j, l2 - 1:h2 - 1], x[i, j, l2 + 1:h2 + 1]
            xm, xp = x[i - o0, j, l2:h2], x[i + o0, j, l2:h2]
            xs, xn = x[i, j - o1, l2:h2], x[i, j + o1, l2:h2]
            a0, a0m = s0[i, j, l2:h2], s0[i - o0, j, l2:h2]
            a1, a1m = s1[i, j, l2:h2], s1[i, j - o1, l2:h2]
            a2, a2m = s2[i, j, l2:h2], s2[i, j, l2 - 1:h2 - 1]
            cc = c[i, j, l2:h2]
            for k in range(o.shape[0]):
                v = xc[k]
                acc = (cc[k] if cfield else cs) * v
                acc = acc + (a0[k] * (v - xp[k]) + a0m[k] * (v - xm[k]))
                acc = acc + (a1[k] * (v - xn[k]) + a1m[k] * (v - xs[k]))
                acc = acc + (a2[k] * (v - xe[k]) + a2m[k] * (v - xw[k]))
                o[k] = acc
                t += v * acc
    return t


def _flux_numpy(x, y, s0, s1, s2, c, l0, h0, l1, h1, l2, h2, o0, o1, cs, cfield):
    b = (l0, h0, l1, h1, l2, h2)
    v, xm, xp, xs, xn, xw, xe = (_f64(a) for a in _star(x, b, o0, o1))
    acc = (_f64(_box(c, *b)) if cfield else cs) * v
    acc = acc + (_f64(_box(s0, *b)) * (v - xp) + _f64(_box(s0, *b, -o0)) * (v - xm))
    acc = acc + (_f64(_box(s1, *b)) * (v - xn) + _f64(_box(s1, *b, 0, -o1)) * (v - xs))
    acc = acc + (_f64(_box(s2, *b)) * (v - xe) + _f64(_box(s2, *b, 0, 0, -1)) * (v - xw))
    _box(y, *b)[...] = acc
    return float(np.vdot(v, acc))


def _shifted3(x, y, c, l0, h0, l1, h1, l2, h2, o0, o1, dg, w0, w1, w2):
    # y = (dg + c) x - ((w0 (x- + x+) + w1 (..)) + w2 (..)): scalar k, field c
    t = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = y[i, j, l2:h2]
            xc, xw, xe = x[i, j, l2:h2], x[i, j, l2 - 1:h2 - 1], x[i, j, l2 + 1:h2 + 1]
            xm, xp = x[i - o0, j, l2:h2], x[i + o0, j, l2:h2]
            xs, xn = x[i, j - o1, l2:h2], x[i, j + o1, l2:h2]
            cc = c[i, j, l2:h2]
            for k in range(o.shape[0]):
                v = xc[k]
                acc = (dg + cc[k]) * v - ((w0 * (xm[k] + xp[k]) + w1 * (xs[k] + xn[k])) + w2 * (xw[k] + xe[k]))
                o[k] = acc
                t += v * acc
    return t


def _shifted_numpy(x, y, c, l0, h0, l1, h1, l2, h2, o0, o1, dg, w0, w1, w2):
    b = (l0, h0, l1, h1, l2, h2)
    v, xm, xp, xs, xn, xw, xe = (_f64(a) for a in _star(x, b, o0, o1))
    acc = (dg + _f64(_box(c, *b))) * v - ((w0 * (xm + xp) + w1 * (xs + xn)) + w2 * (xw + xe))
    _box(y, *b)[...] = acc
    return float(np.vdot(v, acc))


def _const3(x, y, l0, h0, l1, h1, l2, h2, o0, o1, dg, w0, w1, w2):
    # y = dg x - ((w0 (x- + x+) + w1 (..)) + w2 (..)): k and c numbers, x read only
    t = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = y[i, j, l2:h2]
            xc, xw, xe = x[i, j, l2:h2], x[i, j, l2 - 1:h2 - 1], x[i, j, l2 + 1:h2 + 1]
            xm, xp = x[i - o0, j, l2:h2], x[i + o0, j, l2:h2]
            xs, xn = x[i, j - o1, l2:h2], x[i, j + o1, l2:h2]
            for k in range(o.shape[0]):
                v = xc[k]
                acc = dg * v - ((w0 * (xm[k] + xp[k]) + w1 * (xs[k] + xn[k])) + w2 * (xw[k] + xe[k]))
                o[k] = acc
                t += v * acc
    return t


def _const_numpy(x, y, l0, h0, l1, h1, l2, h2, o0, o1, dg, w0, w1, w2):
    b = (l0, h0, l1, h1, l2, h2)
    v, xm, xp, xs, xn, xw, xe = (_f64(a) for a in _star(x, b, o0, o1))
    acc = dg * v - ((w0 * (xm + xp) + w1 * (xs + xn)) + w2 * (xw + xe))
    _box(y, *b)[...] = acc
    return float(np.vdot(v, acc))


def _rbsorc3(u, f, c, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, diag, omega, g0, g1, g2, color):
    # RBSOR with the diagonal diag + c[i] (a field shift), in place on one colour
    for i in range(l0, h0):
        for j in range(l1, h1):
            start = l2 + ((color - (i + g0 + j + g1 + l2 + g2)) % 2)
            for k in range(start, h2, 2):
                gs = (f[i, j, k] + ((w0 * (u[i - o0, j, k] + u[i + o0, j, k]) + w1 * (u[i, j - o1, k] + u[i, j + o1, k]))
                                    + w2 * (u[i, j, k - 1] + u[i, j, k + 1]))) / (diag + c[i, j, k])
                u[i, j, k] += omega * (gs - u[i, j, k])


def _rbsorc_numpy(u, f, c, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, diag, omega, g0, g1, g2, color):
    # one colour at once: its points do not couple (as loops._rbsor_numpy)
    b = (l0, h0, l1, h1, l2, h2)
    _, um, up, us, un, uw, ue = (_f64(a) for a in _star(u, b, o0, o1))
    nsum = _f64(_box(f, *b)) + ((w0 * (um + up) + w1 * (us + un)) + w2 * (uw + ue))
    gs = nsum / (diag + _f64(_box(c, *b)))
    box = _box(u, *b)
    v = _f64(box)
    parity = (np.arange(l0, h0)[:, None, None] + np.arange(l1, h1)[None, :, None]
              + np.arange(l2, h2)[None, None, :] + (g0 + g1 + g2)) % 2
    np.copyto(box, v + omega * (gs - v), casting="same_kind", where=parity == color)


FLUX = Kernel(_flux3, _flux_numpy)
SHIFTED = Kernel(_shifted3, _shifted_numpy)
CONST = Kernel(_const3, _const_numpy)
RBSOR_C = Kernel(_rbsorc3, _rbsorc_numpy)


class Flux:
    """Local. The operator ``y = -div(k grad x) + c x`` of a ``ndim``-D grid of spacing
    ``h`` (module doc): ``k`` a number, or the per-axis face arrays ``s_a`` (ghosted
    numpy arrays of the block, already divided by ``h_a**2``); ``shift`` (``c``) a number
    or a ghosted numpy array. :meth:`apply_dot` applies it to a region. ``diag`` is the
    (scalar) diagonal when ``k`` and ``c`` are numbers, else None. ``backend`` as for
    every kernel (the numpy reference writes the same ``y`` bit for bit)."""

    def __init__(self, ndim: int, h, k=1.0, shift=0.0, backend=None):
        self.ndim = int(ndim)
        h = np.broadcast_to(np.asarray(h, dtype=float), (self.ndim,))
        self.faces = None if np.ndim(k) == 0 and not isinstance(k, (list, tuple)) else list(k)
        self.cfield = np.ndim(shift) != 0
        self.diag = None
        if self.faces is None:
            w = [float(k) / float(hh) ** 2 for hh in h]
            self._coef = (2.0 * float(np.sum(w)), *_pad3(w, self.ndim))
            if self.cfield:
                self._loop, self._c = SHIFTED.select(backend), as3d(shift)
            else:
                # reads x only; multiplications, no divisions: 2.4x faster than ConvDiff on 1025^2
                self._loop, self._c = CONST.select(backend), None
                self._coef = (self._coef[0] + float(shift),) + self._coef[1:]
                self.diag = self._coef[0]
        else:
            if len(self.faces) != self.ndim:
                raise InputError(f"Flux takes {self.ndim} face arrays, got {len(self.faces)}")
            pad = [as3d(self.faces[0])] * (3 - self.ndim)
            self._s = pad + [as3d(f) for f in self.faces]
            self._loop = FLUX.select(backend)
            self._c = as3d(shift) if self.cfield else self._s[0]
            self._cs = 0.0 if self.cfield else float(shift)

    def apply_dot(self, x, y, region=None) -> float:
        """Local. ``y = A x`` on ``region`` of the owned block (default all of it), and
        this rank's part of ``x . y`` there. Reads ``x``'s ghosts; writes only ``region``
        of ``y``."""
        d = _check_arrays("Flux.apply_dot", ("x", "y"), x, y)
        _not_in_place("Flux.apply_dot", x, y, "write into x: pass a second array for the result")
        if d.ndim != self.ndim:
            raise InputError(f"a {self.ndim}-D operator cannot act on a {d.ndim}-D array")
        box = _box3(x, region)
        if self.faces is None:
            c = () if self._c is None else (self._c,)
            return float(self._loop(as3d(x.data), as3d(y.data), *c, *box, *self._coef))
        return float(self._loop(as3d(x.data), as3d(y.data), *self._s, self._c, *box, self._cs, self.cfield))


def rbsor_shift_sweep(u, f, h2inv, omega: float, color: int, shift=0.0, region=None, backend=None):
    """Local. Half a red-black SOR sweep for ``(-sum_a w_a d_aa + c) u = f`` in place,
    ``w_a = h2inv[a]`` (the constant ``k`` folded in: ``k / h_a**2``), ``c = shift`` a
    number or a DistArray (read at the point only). With ``shift = 0`` it is
    :func:`~pympc.kernels.stencils.rbsor_sweep` bit for bit (the diagonal ``diag + 0.0``)."""
    d = _check_arrays("rbsor_shift_sweep", ("u", "f"), u, f)
    w = per_axis(h2inv, d.ndim)
    diag = 2.0 * float(np.sum(w))
    w = _pad3(w, d.ndim)
    g = [int(x) for x in _pad3([lo - d.ghost for lo in d.lo], d.ndim, 0.0)]
    if not isinstance(shift, DistArray):
        RBSOR(as3d(u.data), as3d(f.data), *_box3(u, region), *w, 1.0 / (diag + float(shift)), float(omega),
              *g, int(color) % 2, backend=backend)
    else:
        _check_arrays("rbsor_shift_sweep", ("u", "shift"), u, shift)
        RBSOR_C(as3d(u.data), as3d(f.data), as3d(shift.data), *_box3(u, region), *w, diag, float(omega),
                *g, int(color) % 2, backend=backend)
    return u
