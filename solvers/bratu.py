"""The Bratu problem ``-lap u = lam e^u`` with ``u = 0`` on the boundary, PETSc's SNES
example (``snes/tutorials/ex5``) on pympc (``docs/solvers/newton.md``).

- **Residual** ``F(u) = -lap_h u - lam e^u`` on the unknowns (5-point Laplacian in 2-D,
  7-point in 3-D; 0 on the boundary points, which are held at 0), one compiled pass that
  also returns the local sum of ``F^2`` (the norm costs no extra pass). ex5 multiplies
  its rows by ``hx hy``; a constant factor changes no relative tolerance, so the Newton
  iterates are the same.
- **Jacobian** ``J = -lap_h - lam e^u``, exact and matrix-free: a
  :class:`~solvers.diffusion.DiffusionOperator` with ``k = 1`` and the field shift
  ``c = -lam e^u`` (updated in place at each Newton step).
- **Preconditioner**: one :class:`~solvers.multigrid.Multigrid` with the same field
  shift, built once and updated by ``set_shift(c)`` at each Newton step (``lag=True``
  keeps the first one). Below the fold (``lam* ~ 6.81``) ``J`` is SPD on the lower
  branch, so CG with the symmetric cycle; past it there is no solution and Newton
  returns a reason (``converged=False``).
- **Initial guess** ``"ex5"``: ``u = lam / (lam + 1) sqrt(d)`` with ``d`` the distance to
  the nearest boundary (per axis ``min(i, N - 1 - i) h``, the smallest over the axes),
  ex5's ``FormInitialGuess``; ``"zero"``.

The kernels are :class:`~pympc.kernels.Kernel` pairs: a numba loop and a numpy
reference with the same operations in the same order. Both take ``e^u`` from the C
library (``math.exp``, what the compiled loop calls; numpy's own vectorised ``exp``
differs in the last bit at about 5% of the points), so they agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

import pympc
from pympc.kernels import Kernel, as3d
from pympc.runtime import InputError

from .boundary import Boundaries
from .diffusion import DiffusionOperator
from .multigrid import Multigrid
from .newton import newton


def _bratu3(u, F, l0, h0, l1, h1, l2, h2, o0, o1, dg, w0, w1, w2, lam):
    # F = dg u - sum_a w_a (u[i-1] + u[i+1]) - lam e^u, and the sum of F^2; padded axes
    # have w = 0 and offset 0 (they add exactly nothing)
    s = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = F[i, j, l2:h2]
            uc, uw, ue = u[i, j, l2:h2], u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            for k in range(o.shape[0]):
                c = uc[k]
                r = (dg * c - ((w0 * (um[k] + up[k]) + w1 * (us[k] + un[k])) + w2 * (uw[k] + ue[k]))) \
                    - lam * math.exp(c)
                o[k] = r
                s += r * r
    return s


_EXP = np.frompyfunc(math.exp, 1, 1)


def _exp(x):
    # the C library's exp point by point, as the compiled loops call it
    return _EXP(x).astype(np.float64)


def _box(a, l0, h0, l1, h1, l2, h2, d0=0, d1=0, d2=0):
    return a[l0 + d0:h0 + d0, l1 + d1:h1 + d1, l2 + d2:h2 + d2]


def _bratu_numpy(u, F, l0, h0, l1, h1, l2, h2, o0, o1, dg, w0, w1, w2, lam):
    b = (l0, h0, l1, h1, l2, h2)
    c = _box(u, *b)
    um, up, us, un = _box(u, *b, -o0), _box(u, *b, o0), _box(u, *b, 0, -o1), _box(u, *b, 0, o1)
    uw, ue = _box(u, *b, 0, 0, -1), _box(u, *b, 0, 0, 1)
    r = (dg * c - ((w0 * (um + up) + w1 * (us + un)) + w2 * (uw + ue))) - lam * _exp(c)
    _box(F, *b)[...] = r
    return float(np.vdot(r, r))


def _shift3(u, c, l0, h0, l1, h1, l2, h2, lam):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o, uc = c[i, j, l2:h2], u[i, j, l2:h2]
            for k in range(o.shape[0]):
                o[k] = -lam * math.exp(uc[k])


def _shift_numpy(u, c, l0, h0, l1, h1, l2, h2, lam):
    b = (l0, h0, l1, h1, l2, h2)
    _box(c, *b)[...] = -lam * _exp(_box(u, *b))


BRATU_RESIDUAL = Kernel(_bratu3, _bratu_numpy)
"""``F = -lap_h u - lam e^u`` on a box, returning the box's sum of ``F^2``."""
BRATU_SHIFT = Kernel(_shift3, _shift_numpy)
"""``c = -lam e^u`` on a box (the Jacobian's shift)."""


def _bounds3(decomp, box):
    """A box of owned coordinates as the 3-D loops' ghosted bounds and the offsets of the
    two leading axes: ``[l0, h0, l1, h1, l2, h2, o0, o1]``."""
    g, nd = decomp.ghost, decomp.ndim
    b = [(0, 1)] * (3 - nd) + [(g + lo, g + hi) for lo, hi in box]
    return [x for lohi in b for x in lohi] + [1 if ax >= 3 - nd else 0 for ax in (0, 1)]


class Bratu:
    """Local. (Nothing collective is built until the first :meth:`preconditioner`.)
    The Bratu problem ``-lap u - lam e^u = 0`` on ``decomp`` (a vertex grid, every side
    homogeneous Dirichlet; the unit square when ``spacing = 1 / (N - 1)``), for
    :func:`solvers.newton.newton` (module doc). ``lag``: keep the first multigrid
    preconditioner (no ``set_shift`` per Newton step); ``mg``: options of the
    :class:`~solvers.multigrid.Multigrid` (``nu``, ``pc_omega``, ...). Holds a
    multigrid hierarchy: :meth:`close` it (or use ``with``)."""

    def __init__(self, decomp, lam=6.0, *, lag=False, mg=None):
        if decomp.centring != "vertex" or any(decomp.periodic):
            raise InputError("Bratu works on vertex-centred grids without periodic axes (u = 0 on every side)")
        self.lam = float(lam)
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise InputError(f"lam must be >= 0 and finite, got {lam}")
        self.decomp, self.lag, self.mg_options = decomp, bool(lag), dict(mg or {})
        self.bc = Boundaries(decomp)
        self.c = pympc.DistArray(decomp)  # the shift -lam e^u (0 off the unknowns)
        self.J = DiffusionOperator(decomp, 1.0, self.c)  # keeps c by reference
        self.mg = None
        self._fresh = False  # c was computed by jacobian(u) and not yet used by preconditioner
        h2 = 1.0 / np.asarray(decomp.spacing, dtype=float) ** 2
        w = (0.0,) * (3 - decomp.ndim) + tuple(float(x) for x in h2)
        self._coef = (2.0 * float(np.sum(h2)), *w, self.lam)
        region = self.bc.unknown_region()
        self._box = _bounds3(decomp, region)
        self._shift_box = self._box[:6]
        self._zero = self._outside(region)

    def _outside(self, region):
        """The slices of ``data`` outside the unknowns (the residual writes 0 there)."""
        out, g = [], self.decomp.ghost
        for a, (lo, hi) in enumerate(region):
            for part in (slice(0, g + lo), slice(g + hi, None)):
                idx = [slice(None)] * self.decomp.ndim
                idx[a] = part
                out.append(tuple(idx))
        return out

    def _check(self, u, name):
        if not isinstance(u, pympc.DistArray) or u.dtype != np.float64 or u.components:
            raise InputError(f"Bratu: {name} must be a float64 scalar DistArray")
        why = self.decomp.mismatch(u.decomp, halo=True)
        if why is not None:
            raise InputError(f"Bratu: {name} must live on the problem's decomposition: {why}")

    def residual(self, u, F, backend=None) -> float:
        """Collective. ``F = -lap_h u - lam e^u`` on the unknowns, 0 elsewhere; returns
        ``||F||_2``. Holds ``u``'s boundary points at 0 (writes them) and exchanges its
        halo. ``backend``: ``"numba"`` or ``"numpy"`` (None: ``PYMPC_KERNELS``)."""
        self._check(u, "u")
        self._check(F, "F")
        self.bc.fix_points(u)
        pympc.update_halo(u)
        s = BRATU_RESIDUAL(as3d(u.data), as3d(F.data), *self._box, *self._coef, backend=backend)
        for idx in self._zero:
            F.data[idx] = 0.0
        (total,) = pympc.reduce_all(("sum", s), comm=self.decomp.cart)
        return math.sqrt(total)

    def _linearise(self, u):
        """``c = -lam e^u`` on the unknowns."""
        self._check(u, "u")
        BRATU_SHIFT(as3d(u.data), as3d(self.c.data), *self._shift_box, self.lam)

    def jacobian(self, u) -> DiffusionOperator:
        """Local. The exact Jacobian ``-lap_h - lam e^u`` at ``u``, matrix-free (the one
        operator of this problem, its shift updated in place)."""
        self._linearise(u)
        self._fresh = True
        return self.J

    def preconditioner(self, u) -> Multigrid:
        """Collective. The multigrid preconditioner of the Jacobian at ``u`` (the shift
        :meth:`jacobian` just computed at this ``u`` when it was called last; built on
        the first call, then ``set_shift`` per call unless ``lag``)."""
        if self.mg is not None and self.lag:
            return self.mg
        if not self._fresh:
            self._linearise(u)
        self._fresh = False
        if self.mg is None:
            self.mg = Multigrid.from_operator(self.J, **self.mg_options)
        else:
            self.mg.set_shift(self.c)
        return self.mg

    def initial_guess(self, kind="ex5"):
        """Local. A new DistArray: ex5's guess ``lam / (lam + 1) sqrt(d)`` (``d`` the
        distance to the nearest boundary, measured along the axes) or ``"zero"``."""
        if kind not in ("ex5", "zero"):
            raise InputError(f"initial_guess kind must be 'ex5' or 'zero', got {kind!r}")
        u = pympc.DistArray(self.decomp)
        if kind == "ex5":
            d = self.decomp
            dist = None
            for a in range(d.ndim):
                i = u.global_indices(a)
                da = np.minimum(i, d.shape[a] - 1 - i) * d.spacing[a]
                shape = [1] * d.ndim
                shape[a] = -1
                da = da.reshape(shape)
                dist = da if dist is None else np.minimum(dist, da)
            u.owned[...] = self.lam / (self.lam + 1.0) * np.sqrt(dist)
        return u

    def solve(self, u0=None, **options):
        """Collective. :func:`~solvers.newton.newton` on this problem from ``u0`` (default
        ex5's guess); ``options`` those of ``newton``."""
        return newton(self, self.initial_guess() if u0 is None else u0, **options)

    def close(self) -> None:
        """Collective. Free the multigrid hierarchy's communicators."""
        if self.mg is not None:
            self.mg.close()
            self.mg = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
