"""Geometric multigrid for ``-lap x = b`` on vertex-centred grids, as a solver
(``Multigrid(decomp).solve(b, x0=, tol=, maxiter=)``, or ``solvers.solve(op, b,
method="mg")``) and as a CG preconditioner (``M=Multigrid(decomp)``).

- **Grids**: Dirichlet axes need ``N = m 2^k + 1`` points, periodic axes ``N = m 2^k``;
  each coarser level halves the intervals. Sizes that do not coarsen at least once are
  refused with a clear error.
- **Levels are aligned** with the finest decomposition: a rank owns on level l+1 the
  coarse points whose fine twins it owns on level l, so restriction and interpolation need
  only a halo exchange (box stencil, width 1), no redistribution.
- **Smoother**: red-black Gauss-Seidel / SOR (pympc's compiled half-sweep). As a solver,
  red then black before and after the coarse correction; the pre-smoother's half-sweeps
  are over-relaxed by ``omega[0]``, the post-smoother's by ``omega[1]`` except its last
  half-sweep, which is always plain Gauss-Seidel: it leaves no residual on its colour,
  where an over-relaxed one would leave ``omega - 1`` of it (the factor a first cycle from
  a smooth residual then cannot beat: 0.16-0.19 on 65^2..513^2 with 1.15 on every
  half-sweep).
  Defaults, measured on the model problem (every cycle, not only the average):
  ``(1.25, 1)`` in 2-D (the worst cycle 0.050 on 33^2..513^2, against 0.108 with plain
  Gauss-Seidel), ``(1.05, 1.45)`` in 3-D (0.09-0.12 on 17^3..129^3, against 0.31-0.40).
  As a CG preconditioner, black then red after the coarse correction, the mirror of the
  pre-smoother, all over-relaxed by ``pc_omega`` (default 1, the fewest PCG iterations),
  so that the cycle is symmetric.
- **Transfers**: full weighting (the tensor product of [1/4, 1/2, 1/4]) and multilinear
  interpolation, both separable, across rank boundaries through the ghosts.
- **Coarse solve**: once a level is small (``coarse_size`` points) or a rank's coarse block
  would get thinner than 2 points, the problem is agglomerated onto rank 0 alone (a
  sub-communicator of one) and solved exactly with a sparse LU factorised once (a dense
  least-squares solve for the singular all-periodic problem), then scattered back.
- V- and W-cycles (``cycle="V"`` / ``"W"``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from mpi4py import MPI
import scipy.sparse.linalg as spla

import pympc
from pympc import kernels
from pympc.runtime import InputError

from .diffusion import DiffusionOperator
from .krylov import StencilOperator
from .mgcycle import _Cycles
from .result import Result, check_arguments


class _Level:
    """One grid of the hierarchy: its operator, iterate ``u``, right-hand side ``f`` and
    residual ``r``."""

    def __init__(self, decomp, k=1.0, bc=None, plain=True):
        self.d, self.k, self.bc = decomp, k, bc
        # the plain Laplacian keeps its own operator; a k or a shift: DiffusionOperator
        self.op = StencilOperator(decomp) if plain else DiffusionOperator(decomp, k, 0.0, bc)
        self.h2inv = 1.0 / np.array(decomp.spacing) ** 2
        self.w = k * self.h2inv  # the smoother's weights k / h^2 (k = 1: h2inv itself)
        self.c = 0.0             # the shift on this level: a number or a DistArray
        self.region = self.op.region
        self.u = pympc.DistArray(decomp)
        self.f = pympc.DistArray(decomp)
        self.r = pympc.DistArray(decomp)
        self.unknown = np.zeros(decomp.ghosted_shape, dtype=bool)  # built once per level
        self.unknown[self.op.unknowns] = True

    def shift_to(self, c) -> None:
        """Make ``c`` (a number or a DistArray of this level) the level's shift."""
        self.c = c
        if isinstance(self.op, DiffusionOperator):
            self.op.set_shift(c)
        elif isinstance(c, pympc.DistArray) or c != 0.0:
            self.op = DiffusionOperator(self.d, self.k, c, self.bc)

    def ghosts(self, a, stencil=None):
        """Exchange ``a``'s halo and fill its boundary ghosts (homogeneous Dirichlet)."""
        pympc.update_halo(a, stencil=stencil)
        self.op.bc.apply(a)


def _coarse_sizes(d):
    """Per axis, the coarse block sizes aligned with ``d``'s blocks (even global indices)."""
    return [[len(range(lo + lo % 2, hi, 2)) for lo, hi in axis] for axis in d.ownership_ranges()]


def _laplacian_matrix(shape, spacing, periodic):
    """The coarsest level's matrix (scipy, natural order) and the mask of its unknowns."""
    mats = []
    for n, h, p in zip(shape, spacing, periodic):
        T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n), format="lil")
        if p:
            T[0, n - 1] = T[n - 1, 0] = -1.0
            keep = np.ones(n, dtype=bool)
        else:
            keep = np.zeros(n, dtype=bool)
            keep[1:-1] = True  # boundary points are not unknowns
        mats.append((sp.csr_matrix(T) / h ** 2, keep))
    A = None
    for a, (T, _) in enumerate(mats):
        term = T
        for b, (Tb, _) in enumerate(mats):
            if b == a:
                continue
            eye = sp.eye(Tb.shape[0])
            term = sp.kron(term, eye) if b > a else sp.kron(eye, term)
        A = term if A is None else A + term
    keep = mats[0][1]
    for _, k in mats[1:]:
        keep = np.outer(keep, k).ravel()
    return A.tocsc(), keep


def _galerkin(op, **options):
    """The variable-coefficient (Galerkin) multigrid of ``op``, from :mod:`solvers.mgops`."""
    try:
        from .mgops import GalerkinMultigrid
    except ImportError as e:
        raise InputError(f"variable-coefficient multigrid is not available ({e}): Multigrid takes a number k "
                         f"on grids of m*2^j + 1 (Dirichlet) or m*2^j (periodic) points") from None
    return GalerkinMultigrid(op, **options)


class Multigrid(_Cycles):
    """Collective. Geometric multigrid for ``-k lap x + c x = b`` on ``decomp``
    (vertex centring; every axis periodic or homogeneous Dirichlet): a solver
    (:meth:`solve`) and a preconditioner (:meth:`apply`, for ``M=``). ``k`` a number
    (None: 1), ``shift`` (``c``) a number or a DistArray (:meth:`set_shift`); every level
    is rediscretised (``k`` and a number ``c`` the same on every level, a field ``c``
    restricted by full weighting). ``bc``: None or homogeneous Dirichlet sides (as
    :class:`~solvers.diffusion.DiffusionOperator` takes them). For an operator
    (variable ``k`` too) use :meth:`from_operator`.

    ``nu`` = (pre, post) red-black Gauss-Seidel sweeps, ``cycle`` ``"V"`` or ``"W"``,
    ``coarse_size``: agglomerate and solve exactly once a level has at most this many
    points. ``omega`` = (pre, post) over-relaxation of the solver's smoother (one number:
    both; the post-smoother's last half-sweep is always Gauss-Seidel); default
    ``(1.25, 1)`` in 2-D, ``(1.05, 1.45)`` in 3-D, ``(1, 1)`` otherwise. ``pc_omega``:
    the over-relaxation of every half-sweep of the (symmetric) preconditioner cycle.
    ``op`` is the finest level's operator. Construction is
    collective (the coarse levels get communicators of their own: :meth:`close` them)."""

    _OMEGA = {2: (1.25, 1.0), 3: (1.05, 1.45)}

    def __init__(self, decomp, *, k=None, shift=0.0, bc=None, nu=(1, 1), cycle="V", coarse_size=100,
                 omega=None, pc_omega=1.0):
        if decomp.centring != "vertex":
            raise InputError("multigrid works on vertex-centred grids")
        if cycle not in ("V", "W"):
            raise InputError(f"cycle must be 'V' or 'W', got {cycle!r}")
        if isinstance(k, pympc.DistArray):
            raise InputError("Multigrid(decomp, k=...) takes a number; for a variable k use "
                             "Multigrid.from_operator(DiffusionOperator(decomp, k, ...))")
        self.k = 1.0 if k is None else float(k)
        if not (self.k > 0 and np.isfinite(self.k)):
            raise InputError(f"k must be positive and finite, got {k}")
        # the plain Laplacian (every existing call) keeps its path and its bits
        plain = k is None and bc is None and not isinstance(shift, pympc.DistArray) and float(shift) == 0.0
        if bc is not None:  # checked once (homogeneous Dirichlet only), kept as plain data for the levels
            bc = DiffusionOperator(decomp, bc=bc).bc.parameters()
        self._level = lambda d: _Level(d, self.k, bc, plain)
        self.nu, self.cycle = (int(nu[0]), int(nu[1])), cycle
        self._relaxation(decomp.ndim, omega, pc_omega)
        self.coarse_size = int(coarse_size)
        self.levels = [self._level(decomp)]  # distributed levels, aligned with the finest
        self.serial = []                # levels agglomerated onto rank 0 (COMM_SELF)
        self._chain(self.levels, first=True)
        last = self.levels[-1].d
        self._root = decomp.comm.Get_rank() == 0
        if self._more(last) and self._root:
            # agglomerate: a copy of the last distributed level on rank 0 alone, coarsened
            # on down to the same coarse size as on one rank, so the hierarchy (and the
            # cycle counts) do not depend on the number of ranks
            self.serial = [self._level(pympc.Decomposition(last.shape, comm=MPI.COMM_SELF, periodic=last.periodic,
                                                           stencil="box", spacing=last.spacing))]
            self._chain(self.serial)
        self.set_shift(shift)

    @classmethod
    def from_operator(cls, op, **options):
        """Collective. The multigrid of a :class:`~solvers.diffusion.DiffusionOperator`
        (its ``k``, ``shift`` and boundaries; ``options`` those of the constructor but
        ``k``, ``shift``, ``bc``). A number ``k`` on a grid that halves: this class
        (rediscretised levels); a field ``k``, or sizes that do not halve: the Galerkin
        hierarchy of :mod:`solvers.mgops`."""
        if not isinstance(op, DiffusionOperator):
            raise InputError(f"Multigrid.from_operator takes a DiffusionOperator, got {type(op).__name__}")
        taken = sorted({"k", "shift", "bc"} & set(options))
        if taken:
            raise InputError(f"Multigrid.from_operator takes {taken} from the operator, not as options")
        if isinstance(op.k, pympc.DistArray) or not cls._halve(op.decomp)[0]:
            return _galerkin(op, **options)
        # (the operator's sides are homogeneous Dirichlet or periodic: Multigrid's default)
        return cls(op.decomp, k=op.k, shift=op.shift, **options)

    def set_shift(self, shift) -> None:
        """Collective. Set the shift ``c`` of ``-div(k grad u) + c u`` on every level: a
        number (the same number on every level), or a DistArray on the finest
        decomposition (its owned values copied; the coarse levels get its full
        weighting, level by level); then the coarsest level is factorised again. The
        hierarchy equals one built with this shift, bit for bit."""
        field = isinstance(shift, pympc.DistArray)
        if field:
            why = self.levels[0].d.mismatch(shift.decomp, halo=True)
            if why is not None:
                raise InputError(f"shift must live on the multigrid's decomposition: {why}")
        else:
            shift = float(shift)
        self.singular = all(self.levels[0].d.periodic) and not field and shift == 0.0
        top = shift.owned if field else None
        for chain in (self.levels, self.serial):
            for j, lev in enumerate(chain):
                c = shift
                if field:  # a fresh array per call: nothing carries over from an earlier shift
                    c = pympc.DistArray(lev.d)
                    c.owned[...] = top if j == 0 else self._full_weighting(chain[j - 1], chain[j - 1].c)
                lev.shift_to(c)
            if field and chain is self.levels:
                # the agglomerated chain starts from a copy of the last distributed level
                top = self.levels[-1].c.gather(root=0) if self.serial_chain() else None
        # the coarsest level: agglomerated (on rank 0 alone: self.serial is empty elsewhere) or distributed
        self._factorise((self.serial or [None])[-1] if self.serial_chain() else self.levels[-1])

    @property
    def op(self):
        """Local. The finest level's operator (:class:`~solvers.krylov.StencilOperator`
        for the plain Laplacian, else :class:`~solvers.diffusion.DiffusionOperator`)."""
        return self.levels[0].op

    def _relaxation(self, ndim, omega, pc_omega):
        """The smoothers' over-relaxation, checked, and the (colour, omega) of each
        half-sweep: ``_sweeps[symmetric][0 pre, 1 post]``."""
        if omega is None:
            omega = self._OMEGA.get(ndim, (1.0, 1.0))
        pre, post = (omega, omega) if np.ndim(omega) == 0 else omega
        self.omega, self.pc_omega = (float(pre), float(post)), float(pc_omega)
        for w in self.omega + (self.pc_omega,):
            if not 0 < w < 2:
                raise InputError(f"smoother omega must be in (0, 2), got {omega} (pc_omega {pc_omega})")
        post_w = [self.omega[1]] * (2 * self.nu[1] - 1) + [1.0] if self.nu[1] else []
        self._sweeps = {
            False: (list(zip((0, 1) * self.nu[0], [self.omega[0]] * 2 * self.nu[0])),
                    list(zip((0, 1) * self.nu[1], post_w))),
            True: (list(zip((0, 1) * self.nu[0], [self.pc_omega] * 2 * self.nu[0])),
                   list(zip((1, 0) * self.nu[1], [self.pc_omega] * 2 * self.nu[1]))),
        }

    def _factorise(self, lev):
        """On rank 0, the exact solve of the coarsest level ``lev``, factorised once (again
        on every :meth:`set_shift`)."""
        self._lu = self._dense = None
        if not self._root and self.serial_chain():
            return  # the agglomerated coarsest level lives on rank 0 alone
        exact = lev.d
        c = lev.c
        if isinstance(c, pympc.DistArray):
            c = c.gather(root=0)  # collective on a distributed coarsest level
        if self._root:
            A, keep = _laplacian_matrix(exact.shape, exact.spacing, exact.periodic)
            if self.k != 1.0:
                A = A * self.k
            if np.ndim(c) or c != 0.0:
                A = A + sp.diags(np.broadcast_to(c, exact.shape).ravel())
            self._keep = keep
            Ak = sp.csc_matrix(A)[keep][:, keep]
            if self.singular:
                self._dense = np.linalg.pinv(Ak.toarray())
            else:
                self._lu = spla.splu(Ak.tocsc())

    @staticmethod
    def _halve(d):
        n_c, ok = [], True
        for n, p in zip(d.shape, d.periodic):
            if p:
                ok &= n % 2 == 0 and n >= 4
                n_c.append(n // 2)
            else:
                ok &= (n - 1) % 2 == 0 and n >= 5
                n_c.append((n - 1) // 2 + 1)
        return ok, n_c

    def _more(self, d):
        """Whether the hierarchy goes on below ``d``: it halves and is still large."""
        ok, _ = self._halve(d)
        return ok and int(np.prod(d.shape)) > self.coarse_size

    def _chain(self, levels, first=False):
        while True:
            d = levels[-1].d
            ok, n_c = self._halve(d)
            if first and len(levels) == 1 and not ok:
                raise InputError(f"multigrid needs N = m*2^k + 1 points on Dirichlet axes and N = m*2^k on "
                                 f"periodic ones (k >= 1); got shape {d.shape}, periodic {d.periodic}")
            if not self._more(d):
                return
            sizes = _coarse_sizes(d)
            if any(min(x) < 2 for x in sizes):
                return  # blocks too thin to stay aligned: agglomerate from here
            coarse = pympc.Decomposition(n_c, comm=d.comm, periodic=d.periodic, stencil="box",
                                         spacing=[2 * h for h in d.spacing], sizes=sizes)
            levels.append(self._level(coarse))

    # -- pieces ----------------------------------------------------------------------
    def _smooth(self, lev, sweeps):
        for color, omega in sweeps:
            lev.ghosts(lev.u)
            kernels.rbsor_shift_sweep(lev.u, lev.f, lev.w, omega, color, lev.c, region=lev.region)

    def _residual(self, lev):
        lev.op.apply(lev.u, lev.r)  # A u on the unknowns, 0 elsewhere
        sl = lev.op.unknowns
        lev.r.data[sl] = lev.f.data[sl] - lev.r.data[sl]

    def _restrict(self, fine, coarse):
        coarse.f.owned[...] = self._full_weighting(fine, fine.r)
        # Dirichlet boundary points of the coarse level carry no residual
        coarse.f.data[~coarse.unknown] = 0.0

    @staticmethod
    def _full_weighting(fine, a):
        """The full weighting of ``fine``'s DistArray ``a`` at the coarse points this rank
        owns (an array of the coarse owned shape); exchanges ``a``'s halo."""
        d = fine.d
        fine.ghosts(a, "box")
        x = a.data
        g = d.ghost
        for a in range(d.ndim):  # [1/4, 1/2, 1/4] along axis a, owned range of axis a
            n = d.local_shape[a]
            lo = [slice(None)] * x.ndim
            mid = list(lo)
            hi = list(lo)
            lo[a], mid[a], hi[a] = slice(g - 1, g - 1 + n), slice(g, g + n), slice(g + 1, g + 1 + n)
            x = 0.25 * x[tuple(lo)] + 0.5 * x[tuple(mid)] + 0.25 * x[tuple(hi)]
            # keep a ghost-sized pad so later axes index alike: re-pad this axis
            pad = [(0, 0)] * x.ndim
            pad[a] = (g, g)
            x = np.pad(x, pad)
        sub = tuple(slice(g + (lo % 2), g + d.local_shape[a], 2) for a, lo in enumerate(d.lo))
        return x[sub]

    def _prolong_add(self, coarse, fine):
        dc = coarse.d
        coarse.ghosts(coarse.u, "box")
        c = coarse.u.data
        df = fine.d
        for a in range(df.ndim):
            i = np.arange(df.lo[a], df.hi[a])
            lo_idx = i // 2 - dc.lo[a] + dc.ghost
            hi_idx = (i + 1) // 2 - dc.lo[a] + dc.ghost
            c = 0.5 * (np.take(c, lo_idx, axis=a) + np.take(c, hi_idx, axis=a))
        sl = fine.op.unknowns
        own = tuple(slice(s.start - df.ghost, s.stop - df.ghost) for s in sl)
        fine.u.data[sl] += c[own]

    def _pre_smooth(self, lev, symmetric):
        self._smooth(lev, self._sweeps[symmetric][0])

    def _post_smooth(self, lev, symmetric):
        # as a solver red then black again (black then red would put two red half-sweeps
        # back to back, this one's and the next cycle's first: with Gauss-Seidel a
        # projection, one of them is lost; 0.27 per V(1,1) cycle on 257^2 against 0.11);
        # as a CG preconditioner black then red, the mirror of the pre-smoother, so that
        # the cycle is symmetric
        self._smooth(lev, self._sweeps[symmetric][1])

    def _agglomerates(self) -> bool:
        return self.serial_chain()

    def serial_chain(self) -> bool:
        """Local. Whether coarse levels are agglomerated onto rank 0 (the same answer on
        every rank)."""
        return self._more(self.levels[-1].d)

    # -- interfaces ------------------------------------------------------------------
    def apply(self, r, z) -> None:
        """Collective. One cycle from zero on ``A z = r`` (CG preconditioner interface)."""
        fine = self.levels[0]
        saved_u, saved_f = fine.u, fine.f
        fine.u, fine.f = z, r
        z.data[...] = 0.0
        self._cycle(0, True, self.levels)
        fine.u, fine.f = saved_u, saved_f

    def solve(self, b, *, x0=None, tol=1e-8, maxiter=100) -> Result:
        """Collective. Cycles until ``||b - A x|| / ||b|| < tol`` (one Allreduce per
        cycle) or ``maxiter`` cycles; ``x0`` the initial guess (default 0). The keywords
        of :func:`solvers.solve`; ``iterations`` counts cycles. With every axis periodic
        the mean of ``b`` is removed and the zero-mean solution returned."""
        fine = self.levels[0]
        check_arguments(fine.d, b, x0, tol, maxiter, "multigrid")
        fine.f.owned[...] = fine.op.restrict(b).owned
        if self.singular:
            fine.f.owned[...] -= fine.f.sum() / np.prod(fine.d.shape)
        fine.u.data[...] = 0.0 if x0 is None else x0.data
        return self._iterate(fine, tol, maxiter)
