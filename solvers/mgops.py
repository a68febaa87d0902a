"""Galerkin multigrid for ``-div(k grad u) + c u`` with a coefficient ``k`` that varies by
orders of magnitude, on any grid size, as a solver and as a CG preconditioner
(:class:`GalerkinMultigrid`; docs/solvers/multigrid-variable.md).

- **Coarse grids for any N**: a vertex axis of N points (Dirichlet) keeps the even points
  and, when N is even, the last point as well: ``N_c = N // 2 + 1``; a periodic axis keeps
  the even points, ``N_c = (N + 1) // 2`` (for odd N the points N - 1 and 0 become
  neighbours). Every other fine point lies between two coarse points, so interpolation is
  defined; only one coarse interval is h instead of 2h, which the Galerkin product takes
  care of. Coarsening stops at ``coarse_size`` points or an axis of 4 points or fewer.
- **Interpolation** ``P`` operator-dependent (Dendy's black box multigrid): on a point
  between two coarse points along one axis, the fine stencil collapsed across the other
  axis gives the two weights; on a point between four, its own stencil row, solved for it
  with its neighbours already interpolated. It is built from the diffusion part only (no
  shift), so :meth:`GalerkinMultigrid.set_shift` never changes it. ``"bilinear"``: weights
  1/2 (and 1/4). At a 10^4 contrast bilinear interpolation takes many more cycles (see the
  docs page), because after smoothing the error is smooth in the flux ``k du/dn``, not in u.
- **Coarse operators** ``A_c = P^T A P`` (restriction ``P^T``), symmetric 9-point
  stencils (:mod:`pympc.kernels.galerkin`); the shift's part ``P^T M P`` is kept apart, so
  a new shift recombines ``A_c + sigma M_c`` from stored parts (never incrementally: the
  result does not depend on the history of shifts).
- **Smoothing**: Gauss-Seidel in colours of the global indices (2 colours on the finest,
  5-point level, 4 on the 9-point ones; an odd periodic axis adds a third colour on it),
  so a sweep does the same arithmetic on every decomposition. As a solver, colours in
  order before and after the coarse correction; as a preconditioner, reversed after it,
  so that the cycle is symmetric (PCG-safe).
- **Setup is replicated**: every rank gathers ``k`` and computes the whole hierarchy's
  coefficients (vectorised numpy and one compiled Galerkin loop) from it, then keeps its
  blocks. The hierarchy is therefore bit-identical on every rank count, and so are the
  cycles (reductions aside); the price is O(N) memory per rank during the setup.
- **Levels** are aligned with the finest decomposition as in :mod:`solvers.multigrid`;
  when blocks would get thinner than 2 points the level is agglomerated onto rank 0, which
  coarsens on to the same coarsest level as one rank and solves it with a sparse LU
  (a pseudo-inverse when every axis is periodic and there is no shift).

2-D only (3-D is refused with an InputError): the 27-point coarse stencils, their eight
colours and the 3-D interpolation are not written.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from mpi4py import MPI

import pympc
from pympc.kernels import galerkin as gk
from pympc.runtime import InputError

from .boundary import Boundaries
from .mgcycle import _Cycles
from .result import Result, check_arguments

INTERPOLATIONS = ("auto", "operator", "bilinear")


# ---------------------------------------------------------------------------------------
# sizes and index maps (global; one axis at a time)
# ---------------------------------------------------------------------------------------
def coarse_size(n: int, periodic: bool) -> int:
    """Local. The coarse axis of a fine axis of ``n`` points: ``n // 2 + 1`` (the even
    points and, for even ``n``, the last one) or ``(n + 1) // 2`` when periodic."""
    return (n + 1) // 2 if periodic else n // 2 + 1


def _coarsens(n, periodic):
    # 3 coarse points at least, so that the coarse stencil's offsets -1 and +1 differ
    return n >= 5


class _AxisMap:
    """Local. Along one axis, how fine points map to coarse ones: ``between`` (the fine
    point lies between two coarse points), ``lo``/``hi`` its lower/upper coarse parent
    (equal when it coincides with a coarse point; ``hi_raw`` before the periodic wrap),
    ``child`` the fine point of each coarse point, ``mult`` (coarse, 3): whether fine
    ``child - 1``, ``child``, ``child + 1`` interpolate from that coarse point."""

    def __init__(self, n, periodic):
        self.n, self.periodic = n, periodic
        nc = self.nc = coarse_size(n, periodic)
        i = np.arange(n)
        special = not periodic and n % 2 == 0  # the odd last point is a coarse point too
        self.between = i % 2 == 1
        self.lo, self.hi_raw = i // 2, (i + 1) // 2
        self.child = 2 * np.arange(nc)
        if special:
            self.between[-1] = False
            self.lo[-1] = nc - 1
            self.child[-1] = n - 1
        self.hi = self.hi_raw % nc
        self.mult = np.ones((nc, 3))
        for col, d, parent in ((0, -1, self.hi), (2, 1, self.lo)):
            k = self.child + d
            inside = np.ones(nc, dtype=bool) if periodic else (k >= 0) & (k < n)
            k = k % n
            self.mult[:, col] = inside & self.between[k] & (parent[k] == np.arange(nc))


def _unknown(n, periodic):
    """Local. Per axis: the mask of unknowns (Dirichlet end points are not)."""
    m = np.ones(n, dtype=bool)
    if not periodic:
        m[0] = m[-1] = False
    return m


def _colour_ranges(lo, hi, n, periodic, shift):
    """Local. The points of global range ``[lo, hi)`` of an axis by colour, as local
    ``(start, stop, step)`` (``shift`` added; an empty colour is ``()``): colour 0 the
    even points, 1 the odd ones, 2 the last point of an odd periodic axis (it neighbours
    point 0, also even)."""
    last = n - 1 if periodic and n % 2 == 1 else n
    out = []
    for c in (0, 1):
        start = lo + (c - lo) % 2
        stop = min(hi, last)
        out.append((start + shift, stop + shift, 2) if start < stop else ())
    out.append((last + shift, last + 1 + shift, 1) if lo <= last < hi else ())
    return out


# ---------------------------------------------------------------------------------------
# global stencils (5 arrays: centre and forward offsets, gk.FORWARD)
# ---------------------------------------------------------------------------------------
def face_rule(k, face="arithmetic"):
    """Local. The face coefficients of a global vertex field ``k`` per axis (face ``i``
    between points ``i`` and ``i + e_a``; across the periodic wrap on the last point):
    the arithmetic mean of the two ends (the rule of :class:`solvers.heat.Heat`) or,
    ``face="harmonic"``, their harmonic mean."""
    out = []
    for a in range(k.ndim):
        kn = np.roll(k, -1, axis=a)
        out.append(0.5 * (k + kn) if face == "arithmetic" else 2.0 * k * kn / (k + kn))
    return out


def fine_stencil(faces, spacing, periodic):
    """Local. The 5-point stencil of ``-div(k grad u)`` on a global 2-D grid from its face
    coefficients (:func:`face_rule`): ``C[2] = -kf_0 / h_0^2`` (0 for the face beyond a
    Dirichlet end), ``C[4]`` likewise along axis 1, ``C[0]`` the sum of the four faces."""
    C = np.zeros((5,) + faces[0].shape)
    for a, e in ((0, 2), (1, 4)):
        kf = faces[a] / spacing[a] ** 2
        if not periodic[a]:
            kf[(slice(None),) * a + (-1,)] = 0.0
        C[e] = -kf
    C[0] = -(((C[2] + np.roll(C[2], 1, axis=0)) + C[4]) + np.roll(C[4], 1, axis=1))
    return C


def full_stencil(C):
    """Local. The nine entries ``F[3 (o0 + 1) + o1 + 1] = A[i, i + o]`` of a symmetric
    stored stencil (the backward ones are the neighbours' forward entries)."""
    F = np.empty((9,) + C.shape[1:])
    for e, (o0, o1) in enumerate(gk.FORWARD):
        F[3 * (o0 + 1) + o1 + 1] = C[e]
        if e:
            F[3 * (1 - o0) + 1 - o1] = np.roll(C[e], (o0, o1), axis=(0, 1))
    return F


def _bilinear(m0, m1):
    lo0, hi0 = np.where(m0.between, 0.5, 1.0)[:, None], np.where(m0.between, 0.5, 0.0)[:, None]
    lo1, hi1 = np.where(m1.between, 0.5, 1.0)[None, :], np.where(m1.between, 0.5, 0.0)[None, :]
    return np.stack([lo0 * lo1, lo0 * hi1, hi0 * lo1, hi0 * hi1])


def _operator_weights(C, m0, m1):
    """Local. Dendy's operator-dependent weights from the stencil ``C`` (see the module
    doc), as the four arrays of :mod:`pympc.kernels.galerkin`."""
    F = full_stencil(C)

    def f(o0, o1):
        return F[3 * (o0 + 1) + o1 + 1]

    b0, b1 = m0.between[:, None], m1.between[None, :]
    W = np.zeros((4,) + C.shape[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        # between along axis 0 only: collapse across axis 1
        den = (f(0, -1) + f(0, 0)) + f(0, 1)
        fc = b0 & ~b1
        W[0] = np.where(fc, -((f(-1, -1) + f(-1, 0)) + f(-1, 1)) / den, 0.0)
        W[2] = np.where(fc, -((f(1, -1) + f(1, 0)) + f(1, 1)) / den, 0.0)
        den = (f(-1, 0) + f(0, 0)) + f(1, 0)
        cf = ~b0 & b1
        W[0] = np.where(cf, -((f(-1, -1) + f(0, -1)) + f(1, -1)) / den, W[0])
        W[1] = np.where(cf, -((f(-1, 1) + f(0, 1)) + f(1, 1)) / den, 0.0)
        W[0] = np.where(~b0 & ~b1, 1.0, W[0])

        def nb(o0, o1, slot):  # a neighbour's weight, W[slot][i + o]
            return np.roll(W[slot], (-o0, -o1), axis=(0, 1))

        ff = b0 & b1
        acc = [(f(-1, -1) + f(-1, 0) * nb(-1, 0, 0)) + f(0, -1) * nb(0, -1, 0),
               (f(-1, 1) + f(-1, 0) * nb(-1, 0, 1)) + f(0, 1) * nb(0, 1, 0),
               (f(1, -1) + f(1, 0) * nb(1, 0, 0)) + f(0, -1) * nb(0, -1, 2),
               (f(1, 1) + f(1, 0) * nb(1, 0, 1)) + f(0, 1) * nb(0, 1, 2)]
        for s in range(4):
            W[s] = np.where(ff, -acc[s] / f(0, 0), W[s])
    return W


def weights(C, m0, m1, kind):
    """Local. The interpolation weights (4 arrays) from fine stencil ``C`` to the coarse
    grid of the axis maps ``m0, m1``: ``kind`` ``"operator"`` or ``"bilinear"``. Points
    that are not unknowns, and any row whose weights are not finite, take the bilinear
    ones (they only ever multiply coarse boundary values, which are 0)."""
    W = _bilinear(m0, m1)
    if kind == "operator":
        Wo = _operator_weights(C, m0, m1)
        keep = (_unknown(m0.n, m0.periodic)[:, None] & _unknown(m1.n, m1.periodic)[None, :]
                & np.isfinite(Wo).all(axis=0))
        W = np.where(keep, Wo, W)
    return W


def galerkin(C, W, m0, m1, backend=None):
    """Local. ``P^T A P`` as a stored (5-array) symmetric stencil on the coarse grid: the
    forward entries of the 9-point product (its backward entries agree with them to
    rounding; storing one half makes the coarse operator symmetric bit for bit)."""
    out = np.zeros((9, m0.nc, m1.nc))
    gk.RAP(C, W, m0.lo, m0.hi, m1.lo, m1.hi, bool(m0.periodic), bool(m1.periodic), out, backend=backend)
    return np.stack([out[3 * (o0 + 1) + o1 + 1] for o0, o1 in gk.FORWARD])


def assemble(C, periodic):
    """Local. The scipy CSR matrix of a stored stencil on the unknowns of a global grid
    (natural order), and the flat mask of the unknowns."""
    shape = C.shape[1:]
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    known = _unknown(shape[0], periodic[0])[:, None] & _unknown(shape[1], periodic[1])[None, :]
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [C[0].ravel()]
    for e, (o0, o1) in enumerate(gk.FORWARD[1:], start=1):
        nbr = np.roll(idx, (-o0, -o1), axis=(0, 1))  # the point at i + o
        ok = np.ones(shape, dtype=bool)
        for a, o in ((0, o0), (1, o1)):
            if not periodic[a] and o:
                edge = [slice(None)] * 2
                edge[a] = -1 if o > 0 else 0
                ok[tuple(edge)] = False
        rows += [idx[ok], nbr[ok]]
        cols += [nbr[ok], idx[ok]]
        vals += [C[e][ok], C[e][ok]]
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(idx.size, idx.size))
    keep = known.ravel()
    return A[keep][:, keep], keep


def _mass_chain(c, grids, backend=None):
    """Local. ``P^T ... P^T diag(c) P ... P`` on every level (``c`` a global array)."""
    M = np.zeros((5,) + c.shape)
    M[0] = c
    out = [M]
    for g in grids[:-1]:
        out.append(galerkin(out[-1], g.W, *g.maps, backend=backend))
    return out


class _Grid:
    """Local. One level's global data, the same on every rank: its shape, diffusion
    stencil ``A``, and (unless it is the coarsest) the axis maps and weights ``W`` of the
    interpolation from the next level."""

    def __init__(self, A, periodic):
        self.A, self.periodic = A, tuple(periodic)
        self.shape = A.shape[1:]
        self.maps = self.W = None


def hierarchy(A0, periodic, coarse_points, kind, backend=None):
    """Local. The global levels from the finest diffusion stencil ``A0``: coarsen while a
    level has more than ``coarse_points`` points and every axis at least 5."""
    grids = [_Grid(A0, periodic)]
    while (int(np.prod(grids[-1].shape)) > coarse_points
           and all(_coarsens(n, p) for n, p in zip(grids[-1].shape, periodic))):
        g = grids[-1]
        g.maps = tuple(_AxisMap(n, p) for n, p in zip(g.shape, periodic))
        g.W = weights(g.A, *g.maps, kind)
        grids.append(_Grid(galerkin(g.A, g.W, *g.maps, backend=backend), periodic))
    return grids


# ---------------------------------------------------------------------------------------
# local (per-rank) levels
# ---------------------------------------------------------------------------------------
def _positions(d, a):
    """Local. Global indices along axis ``a`` of ``d``'s ghosted block, wrapped on a
    periodic axis, and which of them exist."""
    n = d.shape[a]
    i = np.arange(d.lo[a] - d.ghost, d.hi[a] + d.ghost)
    if d.periodic[a]:
        return i % n, np.ones(i.size, dtype=bool)
    inside = (i >= 0) & (i < n)
    return np.clip(i, 0, n - 1), inside


def local_block(glob, d):
    """Local. The ghosted block of ``d`` cut from a global array (trailing two axes), 0
    beyond a non-periodic side."""
    out = glob
    for a in range(2):
        i, inside = _positions(d, a)
        axis = out.ndim - 2 + a
        out = np.take(out, i, axis=axis)
        if not inside.all():
            shape = [1] * out.ndim
            shape[axis] = i.size
            out *= inside.reshape(shape)
    return np.ascontiguousarray(out)


class _Level:
    """Local. One grid of the hierarchy on this rank: decomposition ``d``, iterate ``u``,
    right-hand side ``f``, residual ``r``, the stencil block ``C`` (set by :meth:`load`),
    the kernel box of the unknowns and the colour groups of the smoother."""

    def __init__(self, d, grid, nine):
        self.d, self.grid, self.nine = d, grid, int(nine)
        self.u, self.f, self.r = (pympc.DistArray(d) for _ in range(3))
        self.stencil = "box"
        g, box, axes = d.ghost, [], []
        for a in range(2):
            known = _unknown(d.shape[a], d.periodic[a])
            lo = max(d.lo[a], int(np.argmax(known)))
            hi = min(d.hi[a], d.shape[a] - int(np.argmax(known[::-1])))
            box += [lo - d.lo[a] + g, hi - d.lo[a] + g]
            axes.append(_colour_ranges(lo, hi, d.shape[a], d.periodic[a], g - d.lo[a]))
        self.box = tuple(box)
        self.sl = (slice(box[0], box[1]), slice(box[2], box[3]))
        self.groups = self._groups(axes)
        # a 5-point level red-black-coloured: both colours in one pass (kernels.galerkin.RB)
        odd = any(p and n % 2 for n, p in zip(d.shape, d.periodic))
        self.parity = sum(lo - g for lo in d.lo)
        self.fused = not self.nine and not odd
        self.frames = [self._frame(c) for c in (0, 1)]

    def _frame(self, c):
        """The GS ranges of colour ``c`` on the first and last row and column of the box
        (what the fused pass leaves to after the halo exchange)."""
        l0, h0, l1, h1 = self.box
        p, out = self.parity, []
        for r in sorted({l0, h0 - 1}):
            if l0 <= r < h0 and l1 < h1:
                out.append((r, r + 1, 1, l1 + (c - (r + l1 + p)) % 2, h1, 2))
        for q in sorted({l1, h1 - 1}):
            if l1 <= q < h1 and l0 + 1 < h0 - 1:
                out.append((l0 + 1 + (c - (l0 + 1 + q + p)) % 2, h0 - 1, 2, q, q + 1, 1))
        return out

    def _groups(self, axes):
        """The smoother's colours: groups of (rows, cols) ranges; no two points of a group
        are coupled, so a group's order inside does not matter."""
        pairs = [(c0, c1) for c0 in range(3) for c1 in range(3)]
        odd = any(p and n % 2 for n, p in zip(self.d.shape, self.d.periodic))
        if odd:
            groups = [[p] for p in pairs]
        elif self.nine:
            groups = [[(0, 0)], [(1, 0)], [(0, 1)], [(1, 1)]]
        else:
            groups = [[(0, 0), (1, 1)], [(0, 1), (1, 0)]]
        # every rank keeps every group (one halo exchange each, collective), empty or not
        return [[axes[0][c0] + axes[1][c1] for c0, c1 in group if axes[0][c0] and axes[1][c1]]
                for group in groups if all(self._has(c0, c1) for c0, c1 in group)]

    def _has(self, c0, c1):
        """Whether colour pair (c0, c1) has points on the whole grid (the same answer on
        every rank)."""
        return all(c < 2 or (p and n % 2) for c, n, p in zip((c0, c1), self.d.shape, self.d.periodic))

    def load(self, S):
        """Local. Take this level's block of the global stencil ``S`` (shift included)."""
        self.C = local_block(S, self.d)
        with np.errstate(divide="ignore"):
            self.invd = np.where(self.C[0] != 0, 1.0 / self.C[0], 0.0)

    def link(self, coarse):
        """Local. The tables of the transfers between this level and ``coarse`` (aligned
        with it): weights block, parents' coarse positions, children's fine positions."""
        dc, df, maps = coarse.d, self.d, self.grid.maps
        self.W = local_block(self.grid.W, df)
        self.parents = []
        for a, m in enumerate(maps):
            i, _ = _positions(df, a)
            self.parents += [np.clip(m.lo[i] - dc.lo[a] + dc.ghost, 0, dc.ghosted_shape[a] - 1),
                             np.clip(m.hi_raw[i] - dc.lo[a] + dc.ghost, 0, dc.ghosted_shape[a] - 1)]
        coarse.children = []
        for a, m in enumerate(maps):
            I = np.arange(dc.lo[a] - dc.ghost, dc.hi[a] + dc.ghost)
            own = (I >= dc.lo[a]) & (I < dc.hi[a])
            Ic = np.clip(I, 0, m.nc - 1)
            pos = np.where(own, m.child[Ic] - df.lo[a] + df.ghost, 1)
            coarse.children += [pos, np.where(own[:, None], m.mult[Ic], 0.0)]


def aligned_sizes(d, maps):
    """Local. Per axis, the coarse block sizes aligned with ``d``'s blocks: the coarse
    points whose fine point each block owns."""
    return [[int(np.count_nonzero((m.child >= lo) & (m.child < hi))) for lo, hi in axis]
            for axis, m in zip(d.ownership_ranges(), maps)]


def _global(x, d, name):
    """Collective. A scalar or DistArray on ``d`` as a global array on every rank."""
    if isinstance(x, pympc.DistArray):
        if x.decomp.shape != d.shape or x.components:
            raise InputError(f"{name} must be a number or a scalar DistArray of shape {d.shape}, "
                             f"got one of shape {x.decomp.shape}")
        return np.asarray(x.gather(root=None), dtype=float)
    return np.full(d.shape, _number(x, name))


def _number(x, name):
    """Local. ``x`` as a float, or one InputError line."""
    try:
        return float(x)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number or a DistArray, got {type(x).__name__}") from None


class _Operator:
    """Local. The finest level's operator ``A u = -div(k grad u) + c u`` for the Krylov
    methods (``decomp``, ``apply``, ``apply_dot``, ``restrict``, ``diagonal``)."""

    def __init__(self, level):
        self.level = level
        self.decomp = level.d

    @property
    def unknowns(self):
        """Local. The slices of a DistArray's ``data`` that hold this rank's unknowns."""
        return self.level.sl

    def apply_dot(self, x, y) -> float:
        """Collective. ``y = A x`` on the unknowns (0 elsewhere) and this rank's ``x . y``."""
        lev = self.level
        pympc.update_halo(x, stencil=lev.stencil)
        y.data[...] = 0.0
        return float(gk.APPLY(x.data, y.data, lev.C, *lev.box, lev.nine))

    def apply(self, x, y) -> None:
        """Collective. ``y = A x`` on the unknowns, 0 elsewhere."""
        self.apply_dot(x, y)

    def restrict(self, b, out=None):
        """Local. ``b`` with the points that are not unknowns set to 0."""
        out = b.empty_like() if out is None else out
        out.data[...] = 0.0
        out.data[self.level.sl] = b.data[self.level.sl]
        return out

    def diagonal(self):
        """Local. The diagonal of A (1 on the points that are not unknowns)."""
        dg = pympc.DistArray(self.decomp).fill(1.0)
        dg.data[self.level.sl] = self.level.C[0][self.level.sl]
        return dg


def _source(op_or_decomp):
    """Local. ``(decomp, operator or None)`` from the first argument."""
    if hasattr(op_or_decomp, "face_coefficients"):
        return op_or_decomp.decomp, op_or_decomp
    if isinstance(op_or_decomp, pympc.Decomposition):
        return op_or_decomp, None
    raise InputError(f"GalerkinMultigrid takes a Decomposition or a DiffusionOperator, got "
                     f"{type(op_or_decomp).__name__}")


def _check(d, bc, cycle, nu, omega, interpolation):
    """Local. One InputError line for anything GalerkinMultigrid does not take."""
    if d.ndim != 2:
        raise InputError(f"the Galerkin multigrid is written for 2-D grids only; got {d.ndim}-D")
    if d.centring != "vertex":
        raise InputError("multigrid works on vertex-centred grids")
    if any(kind != "dirichlet" or v != 0 for kind, v in Boundaries(d, bc).conditions.values()):
        raise InputError("the Galerkin multigrid takes homogeneous Dirichlet or periodic boundaries "
                         "(solve for the correction, which has zero boundary values)")
    if cycle not in ("V", "W"):
        raise InputError(f"cycle must be 'V' or 'W', got {cycle!r}")
    if len(nu) != 2 or min(nu) < 0 or max(nu) < 1:
        raise InputError(f"nu must be (pre, post) sweeps >= 0, not both 0; got {nu!r}")
    if not (isinstance(omega, (int, float)) and 0 < omega < 2):
        raise InputError(f"smoother omega must be one number in (0, 2), got {omega!r}")
    if interpolation not in INTERPOLATIONS:
        raise InputError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")


class GalerkinMultigrid(_Cycles):
    """Collective. Multigrid for ``A u = -div(k grad u) + shift u`` on a 2-D vertex grid
    of any size (homogeneous Dirichlet or periodic sides): a solver (:meth:`solve`) and a
    CG preconditioner (:meth:`apply`, one symmetric cycle). See the module doc.

    ``op_or_decomp``: a Decomposition (then ``k``, ``shift``, ``bc`` and ``face`` say the
    operator) or a :class:`~solvers.diffusion.DiffusionOperator` (its own ``k``, shift,
    faces and boundaries). ``k``: a number or a positive DistArray (vertex values; faces
    by the rule ``face``, :func:`face_rule`). ``shift``: a number or a DistArray. ``nu`` = (pre, post) Gauss-Seidel sweeps, ``cycle`` "V" or
    "W", ``coarse_size``: levels of at most this many points are solved directly,
    ``omega`` the smoother's over-relaxation, ``interpolation`` "operator", "bilinear" or
    "auto" (operator-dependent when ``k`` is a field). ``op`` is the finest level's
    operator (for the Krylov methods). Coarse levels hold communicators of their own:
    :meth:`close` them."""

    def __init__(self, op_or_decomp, *, k=None, shift=0.0, bc=None, nu=(1, 1), cycle="V", coarse_size=100,
                 omega=1.0, interpolation="auto", face="arithmetic"):
        d, op = _source(op_or_decomp)
        _check(d, None if op is not None else bc, cycle, nu, omega, interpolation)
        self.nu, self.cycle, self.omega = (int(nu[0]), int(nu[1])), cycle, float(omega)
        if op is not None:
            k, shift = op.k, op.shift
            faces = [_global(f, d, "a face coefficient") for f in op.face_coefficients()]
        else:
            faces = face_rule(_global(1.0 if k is None else k, d, "k"), face)
        if not all(np.isfinite(f).all() and (f > 0).all() for f in faces):
            raise InputError("k must be positive and finite everywhere")
        if interpolation == "auto":
            interpolation = "operator" if isinstance(k, pympc.DistArray) else "bilinear"
        self.interpolation = interpolation
        self.grids = hierarchy(fine_stencil(faces, d.spacing, d.periodic), d.periodic, int(coarse_size),
                               interpolation)
        self._root = d.comm.Get_rank() == 0
        self._levels(d)
        self.op = op if op is not None else _Operator(self.levels[0])
        self._unit = None
        self.set_shift(shift)

    def _levels(self, d):
        """The local levels: aligned with ``d`` while blocks keep 2 points, then (rank 0
        alone) the agglomerated rest."""
        self.levels, self.serial = [_Level(d, self.grids[0], False)], []
        for g in self.grids[1:]:
            fine = self.levels[-1]
            sizes = aligned_sizes(fine.d, fine.grid.maps)
            if any(min(s) < 2 for s in sizes):
                break
            dc = pympc.Decomposition(g.shape, comm=d.comm, periodic=d.periodic, stencil="box",
                                     spacing=[2 * h for h in fine.d.spacing], sizes=sizes)
            self.levels.append(_Level(dc, g, True))
            fine.link(self.levels[-1])
        self.agglomerated = len(self.levels) < len(self.grids)
        if self.agglomerated and self._root:
            last = self.levels[-1]
            for g in [last.grid] + self.grids[len(self.levels):]:
                ds = pympc.Decomposition(g.shape, comm=MPI.COMM_SELF, periodic=d.periodic, stencil="box",
                                         spacing=last.d.spacing)
                self.serial.append(_Level(ds, g, g is not self.grids[0]))
                if len(self.serial) > 1:
                    self.serial[-2].link(self.serial[-1])

    def set_shift(self, shift) -> None:
        """Collective. Make the operator ``-div(k grad u) + shift u`` (a number or a
        DistArray): every level's stencil is recombined as ``A_l + shift M_l`` from the
        stored diffusion and mass parts (a field's mass hierarchy is rebuilt), and the
        coarsest level refactorised. The same result, bit for bit, as a fresh build."""
        if isinstance(shift, pympc.DistArray):
            c = _global(shift, self.levels[0].d, "shift")
            stencils = [g.A + m for g, m in zip(self.grids, _mass_chain(c, self.grids))]
            zero = not c.any()
        else:
            sigma = _number(shift, "shift")
            zero = sigma == 0
            if zero:
                stencils = [g.A for g in self.grids]
            else:
                if self._unit is None:  # P^T P on every level, built on the first nonzero shift
                    self._unit = _mass_chain(np.ones(self.grids[0].shape), self.grids)
                stencils = [g.A + sigma * m for g, m in zip(self.grids, self._unit)]
        self.shift = shift
        index = {id(g): i for i, g in enumerate(self.grids)}
        for lev in self.levels + self.serial:
            lev.load(stencils[index[id(lev.grid)]])
        self.singular = zero and all(self.grids[0].periodic)
        self._factorise(stencils[-1])

    def _factorise(self, S):
        """On rank 0, the direct solve of the coarsest level."""
        self._lu = self._dense = None
        if self._root:
            A, self._keep = assemble(S, self.grids[-1].periodic)
            if self.singular:
                self._dense = np.linalg.pinv(A.toarray())
            else:
                self._lu = spla.splu(A.tocsc())

    def levels_info(self) -> list:
        """Local. One dict per level, finest first: ``shape``, ``points``, ``stencil`` (5
        or 9 points), ``agglomerated`` (on rank 0 alone) and ``direct`` (solved by LU)."""
        n = len(self.levels)
        return [{"shape": tuple(g.shape), "points": int(np.prod(g.shape)), "stencil": 5 if i == 0 else 9,
                 "agglomerated": i >= n, "direct": i == len(self.grids) - 1}
                for i, g in enumerate(self.grids)]

    # -- pieces ----------------------------------------------------------------------
    def _smooth(self, lev, sweeps, reverse):
        if lev.fused:
            return self._smooth_rb(lev, sweeps, reverse)
        groups = lev.groups[::-1] if reverse else lev.groups
        for _ in range(sweeps):
            for group in groups:
                pympc.update_halo(lev.u, stencil=lev.stencil)
                for ranges in group:
                    gk.GS(lev.u.data, lev.f.data, lev.C, lev.invd, *ranges, lev.nine, self.omega)

    def _smooth_rb(self, lev, sweeps, reverse):
        """Red-black sweeps on a 5-point level, each colour pair in one pass: the same
        arithmetic as two :meth:`_smooth` half-sweeps, with the second colour's frame
        after the halo exchange."""
        first = 1 if reverse else 0
        u, f = lev.u.data, lev.f.data
        for _ in range(sweeps):
            pympc.update_halo(lev.u, stencil=lev.stencil)
            gk.RB(u, f, lev.C, lev.invd, *lev.box, lev.parity, first, self.omega)
            pympc.update_halo(lev.u, stencil=lev.stencil)
            for ranges in lev.frames[1 - first]:
                gk.GS(u, f, lev.C, lev.invd, *ranges, 0, self.omega)

    def _residual(self, lev) -> None:
        """``r = f - A u`` on the unknowns."""
        pympc.update_halo(lev.u, stencil=lev.stencil)
        gk.RESIDUAL(lev.u.data, lev.f.data, lev.C, lev.r.data, *lev.box, lev.nine)

    @staticmethod
    def _restrict(fine, coarse):
        pympc.update_halo(fine.r, stencil="box")
        pos0, m0, pos1, m1 = coarse.children
        gk.RESTRICT(fine.r.data, fine.W, coarse.f.data, *coarse.box, pos0, m0, pos1, m1)

    @staticmethod
    def _prolong_add(coarse, fine):
        pympc.update_halo(coarse.u, stencil="box")
        gk.PROLONG(coarse.u.data, fine.W, fine.u.data, *fine.box, *fine.parents)

    def _pre_smooth(self, lev, symmetric):
        self._smooth(lev, self.nu[0], False)

    def _post_smooth(self, lev, symmetric):
        # the preconditioner's post-smoother runs the colours backwards: the cycle is
        # then symmetric, as CG needs
        self._smooth(lev, self.nu[1], symmetric)

    def _agglomerates(self) -> bool:
        return self.agglomerated

    # -- interfaces ------------------------------------------------------------------
    def apply(self, r, z) -> None:
        """Collective. One cycle from zero on ``A z = r`` (CG preconditioner interface;
        symmetric)."""
        fine = self.levels[0]
        saved_u, saved_f = fine.u, fine.f
        fine.u, fine.f = z, r
        z.data[...] = 0.0
        try:
            self._cycle(0, True, self.levels)
        finally:
            fine.u, fine.f = saved_u, saved_f

    def solve(self, b, *, x0=None, tol=1e-8, maxiter=100) -> Result:
        """Collective. Cycles until ``||b - A x|| / ||b|| < tol`` (one Allreduce per
        cycle) or ``maxiter`` cycles; ``x0`` the initial guess (default 0). With every
        axis periodic and no shift the mean of ``b`` is removed and the zero-mean solution
        returned."""
        fine = self.levels[0]
        check_arguments(fine.d, b, x0, tol, maxiter, "multigrid")
        fine.f.data[...] = 0.0
        fine.f.data[fine.sl] = b.data[fine.sl]
        if self.singular:
            fine.f.owned[...] -= fine.f.sum() / np.prod(fine.d.shape)
        fine.u.data[...] = 0.0
        if x0 is not None:
            fine.u.data[fine.sl] = x0.data[fine.sl]
        return self._iterate(fine, tol, maxiter)
