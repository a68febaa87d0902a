"""The workloads ``pympc bench`` times: **h-relations** (supersteps in which every rank
sends and receives exactly ``h`` words, 8 bytes each, spread over all ranks as
Bisseling's bspbench does: word ``i`` of rank ``s`` goes to rank ``(s + 1 + i) mod P``,
one put per destination) through every communication path (:class:`HRelation`: BSP
``hpput``, ``put``, ``send``, a raw ``MPI_Alltoallv`` of the same data with the counts
known in advance, one ``MPI_Put`` per rank pair in a fence epoch), the same through the
decomposition layer (:class:`HaloRelation`: a halo exchange and an empty sync), and the
compute phase that can precede them (:class:`Stream`: a stencil sweep, as a program's
compute phase leaves the caches).
"""

from __future__ import annotations

import math
import os

import numpy as np
from mpi4py import MPI

from .. import kernels
from ..array import DistArray
from ..bsp.core import BSP
from ..grid import Decomposition
from ..halo import _plan_for, update_halo
from ..runtime import InputError, get_comm

METHODS = ("hpput", "put", "send", "raw", "rma")
ALL = METHODS + ("halo",)  # with the decomposition layer's halo h-relation (HaloRelation)


def counts(h: int, src: int, dst: int, P: int) -> int:
    """Local. Words rank ``src`` sends to rank ``dst`` in an h-relation (bspbench's
    spread: word ``i`` to rank ``(src + 1 + i) mod P``)."""
    return len(range((dst - src - 1) % P, h, P))


def words(method: str, h: int) -> int:
    """Local. The words each rank sends and receives in an h-relation of ``method``:
    ``h``, except the halo layer's, which moves whole rows of ``ceil(h/2)`` (at least one)
    words: ``h`` rounded up to even, at least 2."""
    return 2 * max(1, -(-int(h) // 2)) if method == "halo" else int(h)


def h_values(hmax: int, points: int) -> list:
    """Local. ``points`` h values spread evenly over ``0..hmax`` (rounded, distinct)."""
    return sorted(set(np.linspace(0, hmax, points).round().astype(int).tolist()))


def check_methods(methods) -> None:
    """Local. :class:`~pympc.InputError` unless every one of ``methods`` is in :data:`ALL`."""
    for m in methods:
        if m not in ALL:
            raise InputError(f"unknown h-relation method {m!r}; use one of {ALL}")


class HRelation:
    """Collective. The buffers and registrations for timing h-relations up to ``hmax``
    words with each method of :data:`METHODS`; :meth:`run` does one superstep.
    :meth:`close` frees the BSP object and the RMA window."""

    def __init__(self, hmax: int, comm=None):
        comm = get_comm(comm)
        self.comm, self.P, self.me = comm, comm.Get_size(), comm.Get_rank()
        self.cap = -(-hmax // self.P) + 1
        self.src = np.arange(hmax + 1, dtype=np.float64) + 1000 * self.me
        self.dst = np.zeros(self.P * self.cap)
        self.bsp = BSP(comm)
        self.reg = self.bsp.register(self.dst)
        self.bsp.sync("bench setup")
        self.win = MPI.Win.Create(self.dst, 8, comm=comm)
        self.win.Fence()
        self._plans = {}

    def plan(self, h: int):
        """Local. Per destination ``(rank, src start, count, offset there)`` and the
        Alltoallv counts/displacements for ``h``."""
        p = self._plans.get(h)
        if p is None:
            P, me, cap = self.P, self.me, self.cap
            sc = [counts(h, me, d, P) for d in range(P)]
            rc = [counts(h, s, me, P) for s in range(P)]
            sd = np.concatenate([[0], np.cumsum(sc)[:-1]]).astype(int).tolist()
            blocks = [(d, sd[d], sc[d], me * cap) for d in range(P) if sc[d]]
            p = self._plans[h] = (blocks, (sc, sd), (rc, [s * cap for s in range(P)]))
        return p

    def run(self, method: str, h: int) -> None:
        """Collective. One superstep of an h-relation through ``method``."""
        blocks, sspec, rspec = self.plan(h)
        bsp, src, reg = self.bsp, self.src, self.reg
        if method == "hpput":
            for d, s0, c, off in blocks:
                bsp.hpput(d, src[s0:s0 + c], reg, off)
            bsp.sync("h-relation")
        elif method == "put":
            for d, s0, c, off in blocks:
                bsp.put(d, src[s0:s0 + c], reg, off)
            bsp.sync("h-relation")
        elif method == "send":
            for d, s0, c, _ in blocks:
                bsp.send(d, 0, src[s0:s0 + c])
            bsp.sync("h-relation")
        elif method == "raw":
            self.comm.Alltoallv([src, sspec, MPI.DOUBLE], [self.dst, rspec, MPI.DOUBLE])
        elif method == "rma":
            for d, s0, c, off in blocks:
                self.win.Put([src[s0:s0 + c], MPI.DOUBLE], d, (off, c, MPI.DOUBLE))
            self.win.Fence()
        else:
            raise InputError(f"unknown h-relation method {method!r}; use one of {METHODS}")

    def check(self, method: str, h: int) -> bool:
        """Collective. Run one h-relation into a cleared buffer and verify every word."""
        self.dst[...] = -1
        self.win.Fence()  # no rank's puts may land before every rank has cleared its buffer
        self.run(method, h)
        got = {s: p for s, _, p in self.bsp.messages()} if method == "send" else None
        ok = True
        for s in range(self.P):
            c = counts(h, s, self.me, self.P)
            start = sum(counts(h, s, d, self.P) for d in range(self.me))
            want = np.arange(start, start + c) + 1000.0 * s  # source s's words for this rank
            if got is None:
                ok &= np.array_equal(self.dst[s * self.cap:s * self.cap + c], want)
            elif c:
                ok &= np.array_equal(got.get(s), want)
        return bool(self.comm.allreduce(ok, op=MPI.LAND))

    def close(self) -> None:
        """Collective. Free the window and the BSP object."""
        self.win.Fence()
        self.win.Free()
        self.bsp.close()


class HaloRelation:
    """Collective. h-relations of the decomposition layer, run the way a pympc stencil
    program runs its supersteps: ``update_halo`` of one array, the compute phase (if any),
    then an empty :meth:`BSP.sync`. For each ``h`` the array has 4 rows per rank and
    ``h/2`` columns (rounded up, at least one), split along axis 0 over all ranks and
    periodic along it: every rank sends its first and last owned row to its two
    neighbours (at one rank: two local row copies) and receives two rows, ``h`` words
    each way (exactly :func:`words` ``("halo", h)``). :meth:`close` frees it all."""

    LABEL = "halo h-relation"

    def __init__(self, hs, comm=None):
        comm = get_comm(comm)
        self.comm, self.P, self.me = comm, comm.Get_size(), comm.Get_rank()
        self.arrays = {}
        for h in sorted(set(int(x) for x in hs)):
            d = Decomposition((4 * self.P, words("halo", h) // 2), comm=comm, dims=(self.P, 1),
                              periodic=(True, False))
            a = DistArray(d)
            a.owned[...] = np.arange(d.lo[0], d.hi[0], dtype=float)[:, None]  # each row its global index
            self.arrays[h] = a
        self.bsp = BSP(comm)

    def run(self, h: int, compute=None) -> None:
        """Collective. One superstep: the halo exchange, ``compute()``, the sync."""
        update_halo(self.arrays[h])
        if compute is not None:
            compute()
        self.bsp.sync(self.LABEL)

    def check(self, h: int) -> bool:
        """Collective. Run one superstep on cleared ghosts and verify them: the ghost row
        above holds the previous rank's last row, the one below the next rank's first."""
        a = self.arrays[h]
        g = a.decomp.ghost
        a.data[:g] = a.data[-g:] = -1.0
        self.run(h)
        lo, hi, N = a.decomp.lo[0], a.decomp.hi[0], 4 * self.P
        cols = slice(g, a.data.shape[1] - g)
        ok = bool(np.all(a.data[g - 1, cols] == (lo - 1) % N) and np.all(a.data[-g, cols] == hi % N))
        return bool(self.comm.allreduce(ok, op=MPI.LAND))

    def close(self) -> None:
        """Collective. Free the arrays' decompositions and the BSP object."""
        self.bsp.close()
        for a in self.arrays.values():
            a.decomp.close()
        self.arrays = {}


# the halo patterns a program's exchanges can have (pympc.halo._pattern), each as the
# square periodic grid whose exchange pympc bench fits: name -> (periodic, stencil, width)
PATTERNS = {"rows": ((True, False), "star", 1), "cols": ((True, True), "star", 1),
            "box": ((True, True), "box", 1), "box/w2": ((True, True), "box", 2),
            "box/w4": ((True, True), "box", 4), "box/w8": ((True, True), "box", 8)}
# the grid sides those fits span by default (around 2048: T(h) of a strided pattern bends
# upwards as the grid outgrows the caches, so fit near the program's size)
PATTERN_SIDES = (1536, 1792, 2304, 2560)


class PatternRelation:
    """Collective. h-relations of one halo pattern (a :data:`PATTERNS` entry: which axes
    are periodic, the stencil, the ghost width), run as a stencil program runs them:
    ``update_halo`` of an ``n``² grid split as ``MPI.Compute_dims`` splits it, the compute
    phase (if any), an empty :meth:`BSP.sync`; one grid per side ``n`` of ``sides``, so
    the words ``h`` grow with ``n`` while the messages, their strides and the local copies
    keep the program's shape. ``words[n]``: the words the exchange moves per rank (the
    largest on any rank); ``key``: the pattern the cost log records (at some rank counts
    not the name: a grid periodic along rows only, split in both axes, also sends
    columns). The grids are built one at a time (:meth:`grid`), so a long list of large
    sides costs the memory of one. :meth:`close` frees it all."""

    LABEL = "halo pattern h-relation"

    def __init__(self, name, sides=PATTERN_SIDES, comm=None, stores=None):
        if name not in PATTERNS:
            raise InputError(f"unknown halo pattern {name!r}; use one of {tuple(PATTERNS)}")
        comm = get_comm(comm)
        kernels.check_stores(stores)
        self.comm, self.name, self.sides = comm, name, sorted(set(int(n) for n in sides))
        self.stores = stores
        self.periodic, self.stencil, self.width = PATTERNS[name]
        self.dims = MPI.Compute_dims(comm.Get_size(), 2)
        self.bsp = BSP(comm)
        self.array = self.partner = None
        self.words, self.key = {}, None
        for n in self.sides:  # the words and key of every side, from the plan itself
            a = self.grid(n)
            plan = _plan_for((a,), self.stencil, self.width, "PatternRelation")
            self.words[n] = comm.allreduce(plan.words, op=MPI.MAX)
            # ranks at a physical boundary may run a simpler pattern than the rest: the
            # fit is named after the most costly one any rank runs (box, cols, rows)
            pats = comm.allgather(plan.pattern)
            self.key = "halo:" + min(pats, key=lambda p: "bcr".index(p[0]))

    def holds(self, n: int) -> bool:
        """Local. Whether the grid of side ``n`` is the one held (built and not dropped)."""
        return self.array is not None and self.array.decomp.shape[0] == n

    def grid(self, n: int):
        """Collective. The DistArray of side ``n`` (the one of the last call is closed)."""
        if self.holds(n):
            return self.array
        self.drop()
        d = Decomposition((n, n), comm=self.comm, dims=self.dims, periodic=self.periodic, ghost=self.width,
                          stencil=self.stencil)
        self.array, self.partner = DistArray(d), DistArray(d)
        self.array.fill(1.0)
        self.partner.fill(1.0)
        return self.array

    def run(self, n: int, compute=None) -> None:
        """Collective. One superstep: the halo exchange, the compute phase, the sync. The
        compute phase (``compute``: a :class:`Stream` or anything else not None; None
        for none) is the program's own, whatever the stream's size: FTCS sweeps of the
        grid into its partner, as many as the halo width (one step per exchange; a
        deep-halo path runs ``k`` steps per exchange of width ``k``); the next exchange
        is of the grid written last, as in a heat step. An unrelated stream of the same
        size left the exchange of a 2048² deep halo (k = 4) 20% cheaper than the heat
        step's, and 2 sweeps before it 10% cheaper than 4. Sweeping on to the stream's
        bytes (earlier versions) gave the grids below 2048² two sweeps per exchange at one
        and two ranks: their exchanges cost 15-60% more than after one (sides 2000 and
        2040 against 2048 and 2056), and the fit overshot the 2048² heat step by 20%.
        ``stores`` (the constructor's) pins the 2-D loop of the sweeps
        (:func:`pympc.kernels.heat_step`): the stores a compute phase makes move the
        exchange after it up to 2x, so a fit that is to predict one program sweeps with
        that program's loop."""
        update_halo(self.grid(n), stencil=self.stencil, width=self.width)
        if compute is not None:
            for _ in range(self.width):
                kernels.heat_step(self.array, self.partner, 0.1, stores=self.stores)
                self.array, self.partner = self.partner, self.array
        self.bsp.sync(self.LABEL)

    def drop(self) -> None:
        """Collective. Free the grid (a later :meth:`run` builds it again)."""
        if self.array is not None:
            self.array.decomp.close()  # (the partner's too: one decomposition)
            self.array = self.partner = None

    def close(self) -> None:
        """Collective. Free the grid and the BSP object."""
        self.drop()
        self.bsp.close()


def _caches() -> dict:
    # cpu0's data and unified caches from Linux's sysfs: level -> bytes (empty if unreadable)
    import glob

    out = {}
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            kind = open(os.path.join(d, "type")).read().strip()
            level = int(open(os.path.join(d, "level")).read().strip())
            txt = open(os.path.join(d, "size")).read().strip()
            size = int(txt.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(txt[-1:], 1)
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified"):
            out[level] = max(out.get(level, 0), size)
    return out


def cache_bytes() -> int:
    """Local. The size of the last-level cache in bytes (from Linux's sysfs; 32 MiB when
    it cannot be read)."""
    return max(_caches().values(), default=0) or (32 << 20)


def private_cache_bytes() -> int:
    """Local. The size in bytes of the largest cache level below the last (L2 where there
    is an L3): the cache a core keeps to itself, what a superstep's communication may
    still find warm after its compute phase (from Linux's sysfs; 1 MiB when it cannot be
    read; the only level where there is one)."""
    levels = _caches()
    if not levels:
        return 1 << 20
    below = [lv for lv in levels if lv < max(levels)]
    return levels[max(below)] if below else levels[max(levels)]


def default_compute_bytes(comm=None) -> int:
    """Collective. The memory traffic per rank of the compute phase before the
    after-compute h-relations: the ranks of a node together stream twice its last-level
    cache."""
    node = get_comm(comm).Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return 2 * cache_bytes() // node.Get_size()
    finally:
        node.Free()


class Stream:
    """Local. A compute phase like a stencil program's: one sweep of the compiled 2-D
    five-point (FTCS) kernel of :mod:`pympc.kernels` from one square grid into another,
    ``nbytes`` of memory traffic in all (half read, half written with ordinary stores).
    Run before a superstep, it leaves the caches, TLBs and branch predictors as a real
    compute phase leaves them for the communication after it.

    (A plain ``copyto`` of the same size, the first version, left the communication
    after it about 15% cheaper than a stencil sweep does: large copies write around the
    cache, so fewer dirty lines are left to evict. The stencil predicts the heat step
    within a few per cent at one rank, the copy 0.8.)"""

    def __init__(self, nbytes: int):
        side = max(3, math.isqrt(max(0, int(nbytes)) // 16))
        self.nbytes = int(nbytes)
        self.src, self.dst = np.ones((side, side)), np.ones((side, side))
        self._sweep = lambda: kernels.ftcs_array(self.src, self.dst, 0.1)

    def __call__(self) -> None:
        self._sweep()
