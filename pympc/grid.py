"""Decomposition: a global structured grid split into per-rank blocks over a Cartesian
process grid, with ghost cells, periodicity per axis, neighbours and geometry.

Modelled on PETSc's DMDA (``DMDACreate``/``getRanges``/``getGhostRanges``, star and
box stencils, natural ordering), with ghosts allocated on every side of a block: at a
physical (non-periodic) boundary they hold boundary conditions (:mod:`pympc.bc`).
"""

from __future__ import annotations

import itertools
import weakref

import numpy as np

from mpi4py import MPI

from .gridplan import CENTRINGS, STENCILS, choose_dims, per_axis, plan, split_sizes  # noqa: F401
from .runtime import InputError, get_comm


_closers: list = []


def on_close(callback) -> None:
    """Local. Have ``callback(decomp)`` run whenever a :class:`Decomposition` closes,
    before its Cartesian communicator is freed: how a higher layer frees what it keeps
    per decomposition (the halo plans of :mod:`pympc.halo`) while this layer knows
    nothing of it."""
    _closers.append(callback)


class Decomposition:
    """Collective. A global grid of ``shape`` split over the ranks of ``comm`` (building
    one is collective; the methods say whether they are).

    :param shape: global number of points per axis (1, 2 or 3 axes; more work too).
    :param comm: the communicator (default: the world).
    :param dims: process grid, e.g. ``(2, 1)``; zeros are chosen (the least halo
        surface, :func:`choose_dims`); ``1`` on an axis leaves it unsplit. Default: all
        free.
    :param periodic: bool or one bool per axis.
    :param ghost: ghost width (>= 1) on every side of every block.
    :param stencil: ``"star"`` (faces only are exchanged) or ``"box"`` (faces, edges,
        corners).
    :param origin: grid geometry per axis (scalars broadcast), with ``spacing``.
    :param spacing: the distance between points per axis (> 0).
    :param centring: ``"vertex"`` (point i at ``origin + i*spacing``) or ``"cell"`` (the
        centre of cell i, ``origin + (i + 1/2)*spacing``).
    :param sizes: optional block sizes per axis (one list per axis, one entry per rank
        along it) instead of the even split; multigrid aligns coarse levels with it.

    Creating one is **collective** (it builds a Cartesian communicator); call
    :meth:`close` (or use ``with``) when done. Impossible requests raise the same
    :class:`~pympc.InputError` on every rank.
    """

    def __init__(self, shape, comm=None, dims=None, periodic=False, ghost=1, stencil="star",
                 origin=0.0, spacing=1.0, centring="vertex", sizes=None):
        comm = get_comm(comm)
        size = comm.Get_size()
        shape, dims, sizes, periodic, ghost = plan(shape, size, dims, periodic, ghost, sizes)
        ndim = len(shape)
        if stencil not in STENCILS:
            raise InputError(f"stencil must be one of {STENCILS}, got {stencil!r}")
        if centring not in CENTRINGS:
            raise InputError(f"centring must be one of {CENTRINGS}, got {centring!r}")
        self.shape, self.ndim, self.dims = shape, ndim, dims
        self.periodic, self.ghost, self.stencil, self.centring = periodic, ghost, stencil, centring
        self.origin = per_axis(origin, ndim, "origin", float)
        self.spacing = per_axis(spacing, ndim, "spacing", float)
        if any(h <= 0 for h in self.spacing):
            raise InputError(f"spacing must be positive, got {self.spacing}")
        self.comm, self.size = comm, size
        self._place(sizes or [split_sizes(shape[a], dims[a]) for a in range(ndim)])

    def _place(self, sizes):
        """Build the Cartesian communicator and this rank's block, ranges and neighbours."""
        ndim = self.ndim
        self.cart = self.comm.Create_cart(list(self.dims), periods=list(self.periodic), reorder=False)
        self.rank = self.cart.Get_rank()
        self.coords = tuple(self.cart.Get_coords(self.rank))
        self._sizes = sizes
        self._starts = [np.concatenate([[0], np.cumsum(s)[:-1]]).astype(int).tolist() for s in sizes]
        self.lo = tuple(self._starts[a][self.coords[a]] for a in range(ndim))
        self.local_shape = tuple(self._sizes[a][self.coords[a]] for a in range(ndim))
        self.hi = tuple(lo + n for lo, n in zip(self.lo, self.local_shape))
        self.ghosted_shape = tuple(n + 2 * self.ghost for n in self.local_shape)
        self._neighbours = {off: self._neighbour_rank(off)
                            for off in itertools.product((-1, 0, 1), repeat=ndim) if any(off)}
        # decompositions found to hold the same ranks in the same order (mismatch): the
        # group comparison runs once per pair, not at every check of two arrays
        self._same_ranks = weakref.WeakSet()

    # -- topology ---------------------------------------------------------------------
    def _neighbour_rank(self, offset):
        c = []
        for a, o in enumerate(offset):
            x = self.coords[a] + o
            if not 0 <= x < self.dims[a]:
                if not self.periodic[a]:
                    return MPI.PROC_NULL
                x %= self.dims[a]
            c.append(x)
        return self.cart.Get_cart_rank(c)

    def neighbour(self, offset) -> int:
        """Local. Rank of the neighbour at ``offset`` (e.g. ``(1, 0)``, ``(-1, 1)``), or
        ``MPI.PROC_NULL`` beyond a non-periodic boundary."""
        offset = tuple(int(o) for o in offset)
        if len(offset) != self.ndim or not any(offset) or any(abs(o) > 1 for o in offset):
            raise InputError(f"offset must have {self.ndim} entries in -1..1, not all 0: {offset}")
        return self._neighbours[offset]

    def neighbours(self, stencil=None) -> dict:
        """Local. ``{offset: rank}`` for the faces (star) or all 3^d - 1 directions (box)."""
        stencil = stencil or self.stencil
        return {o: r for o, r in self._neighbours.items()
                if stencil == "box" or sum(map(abs, o)) == 1}

    def at_boundary(self, axis: int, side: int) -> bool:
        """Local. True if this block touches the physical (non-periodic) boundary on
        ``side`` (-1 low, +1 high) of ``axis``."""
        if self.periodic[axis]:
            return False
        return self.coords[axis] == (0 if side < 0 else self.dims[axis] - 1)

    # -- compatibility -----------------------------------------------------------------
    def mismatch(self, other, halo: bool = False) -> str | None:
        """Local. Why arrays on ``self`` and ``other`` cannot be combined point for point,
        or ``None`` when they can (see :meth:`compatible`)."""
        if other is self:
            return None
        if not isinstance(other, Decomposition):
            return f"{type(other).__name__} is not a Decomposition"
        for what, x, y in (("global shapes", self.shape, other.shape),
                           ("process grids", self.dims, other.dims),
                           ("block sizes", self._sizes, other._sizes)):
            if x != y:
                return f"their {what} differ ({x} and {y})"
        if halo:
            for what, x, y in (("ghost widths", self.ghost, other.ghost),
                               ("periodicities", self.periodic, other.periodic)):
                if x != y:
                    return f"their {what} differ ({x} and {y})"
        if self.cart == MPI.COMM_NULL or other.cart == MPI.COMM_NULL:
            return "one of them is closed"
        # the same ranks in the same order: MPI_Comm_compare is local, and with equal
        # process grids (and reorder=False) every rank then owns the same block in both
        if other not in self._same_ranks:
            if MPI.Comm.Compare(self.cart, other.cart) not in (MPI.IDENT, MPI.CONGRUENT):
                return "their communicators hold different ranks (or the same ranks in another order)"
            self._same_ranks.add(other)
        return None

    def compatible(self, other, halo: bool = False) -> bool:
        """Local. Whether arrays on ``self`` and ``other`` pair point for point on every
        rank: the same communicator group (same ranks, same order), global shape,
        process grid and block sizes. Two decompositions built alike are compatible
        (``other is self`` is not required). ``halo=True`` also asks for the same ghost
        width and periodicity, as one halo exchange of arrays on both needs. It looks only
        at what every rank of the group holds alike, so every rank gets the same answer and
        a refusal based on it is the same everywhere."""
        return self.mismatch(other, halo) is None

    # -- index ranges ------------------------------------------------------------------
    def ownership_ranges(self) -> tuple:
        """Local. Per axis, the global ``(lo, hi)`` of each block along that axis, in
        process-grid order (petsc4py's ``DMDA.getOwnershipRanges``, as ranges):
        ``Decomposition((10,), dims=(3,)).ownership_ranges() == (((0, 4), (4, 7), (7, 10)),)``."""
        return tuple(tuple((lo, lo + n) for lo, n in zip(self._starts[a], self._sizes[a]))
                     for a in range(self.ndim))

    def ranges(self, rank=None) -> tuple:
        """Local. Global ``(lo, hi)`` per axis owned by ``rank`` (default this rank)."""
        if rank is None:
            return tuple(zip(self.lo, self.hi))
        coords = self.cart.Get_coords(rank)
        return tuple((self._starts[a][coords[a]], self._starts[a][coords[a]] + self._sizes[a][coords[a]])
                     for a in range(self.ndim))

    def all_ranges(self) -> list:
        """Local. :meth:`ranges` of every rank, indexed by rank."""
        return [self.ranges(r) for r in range(self.size)]

    def ghost_ranges(self) -> tuple:
        """Local. Global ``(lo, hi)`` per axis of this block's ghosted region; indices may
        fall outside ``0..n`` (ghosts beyond the boundary or across a periodic wrap)."""
        g = self.ghost
        return tuple((lo - g, hi + g) for lo, hi in zip(self.lo, self.hi))

    def owned_slices(self) -> tuple:
        """Local. Slices of the owned block inside a ghosted local array."""
        g = self.ghost
        return tuple(slice(g, g + n) for n in self.local_shape)

    def global_slices(self) -> tuple:
        """Local. Slices of the owned block inside the global array."""
        return tuple(slice(lo, hi) for lo, hi in zip(self.lo, self.hi))

    # -- geometry ----------------------------------------------------------------------
    def coordinates(self, axis: int, ghosted: bool = False) -> np.ndarray:
        """Local. Coordinates along ``axis`` of this block's points (with ghosts if
        ``ghosted``), per the centring: vertex ``x0 + i h``, cell ``x0 + (i + 1/2) h``."""
        lo, hi = self.ghost_ranges()[axis] if ghosted else (self.lo[axis], self.hi[axis])
        i = np.arange(lo, hi, dtype=float)
        shift = 0.5 if self.centring == "cell" else 0.0
        return self.origin[axis] + (i + shift) * self.spacing[axis]

    def extent(self) -> tuple:
        """Local. ``(low, high)`` coordinates of the domain per axis: the first and last
        point (vertex centring) or the outer cell faces (cell centring)."""
        out = []
        for a in range(self.ndim):
            n = self.shape[a] - (1 if self.centring == "vertex" else 0)
            out.append((self.origin[a], self.origin[a] + n * self.spacing[a]))
        return tuple(out)

    # -- life cycle --------------------------------------------------------------------
    def close(self) -> None:
        """Collective. Free the Cartesian communicator and what higher layers keep for this
        decomposition (its halo plans; :func:`on_close`). A second call does nothing."""
        if self.cart == MPI.COMM_NULL:
            return
        for callback in _closers:
            callback(self)
        self.cart.Free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        per = "".join("P" if p else "-" for p in self.periodic)
        return (f"Decomposition(shape={self.shape}, dims={self.dims}, periodic={per}, "
                f"ghost={self.ghost}, stencil={self.stencil!r}, rank {self.rank} owns "
                f"{[f'{lo}:{hi}' for lo, hi in zip(self.lo, self.hi)]})")
