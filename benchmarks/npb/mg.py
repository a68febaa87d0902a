"""NPB MG on pympc: a V-cycle multigrid solve of the periodic Poisson problem.

What it teaches: a hierarchy of pympc decompositions (one per multigrid level, the same
process grid on each, so a coarse point and the fine points it restricts from live on
the same rank), ``pympc.DistArray`` fields with one ghost layer, ``pympc.update_halo``
after every stencil (the periodic wrap and the neighbours' values in one call, faces,
edges and corners), numba kernels on each rank's ghosted block, and ``reduce_all`` for
the norms.

It follows ``NPB3.4-MPI/MG/mg.f`` (the mirror ``mbdevpl/nas-parallel-benchmarks``): the
right-hand side of ``zran3``, the V-cycle ``mg3P`` (``rprj3``, ``psinv``, ``resid``,
``interp``), the untimed warm-up iteration, the timed region, the operation count and
the verification of the final residual's L2 norm. Arrays are ``(z, y, x)`` in C order,
so the x index runs fastest in memory, as Fortran's ``u(i1, i2, i3)`` does; data index 0
and ``n + 1`` on each axis are the ghosts, 1..n the owned points.

Run: ``mpiexec -n 4 python mg.py --class S`` (a power of two of processes), or
``--n 64 --nit 8`` for a grid that is no class (class U, not verified).
"""

from __future__ import annotations

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

import common  # noqa: E402
import pympc  # noqa: E402  (a launched rank initialises pympc's runtime here)

# NPB3.4-MPI/sys/setparams.c:569-573 (problem_size = n, nit per class); the reference
# L2 norms of the final residual: NPB3.4-MPI/MG/mg.f:316-324
CLASSES = {
    "S": {"n": 32, "nit": 4},
    "W": {"n": 128, "nit": 4},
    "A": {"n": 256, "nit": 4},
    "B": {"n": 256, "nit": 20},
    "C": {"n": 512, "nit": 20},
}
REFERENCE = {"S": 0.5307707005734e-04, "W": 0.6467329375339e-05, "A": 0.2433365309069e-05,
             "B": 0.1800564401355e-05, "C": 0.5706732285740e-06}
EPSILON = 1.0e-8                      # NPB3.4-MPI/MG/mg.f:313

# The residual operator A: mg.f:210-213. a[1] = 0, so resid drops its term (mg.f:753-758)
A_COEF = (-8.0 / 3.0, 0.0, 1.0 / 6.0, 1.0 / 12.0)
# The smoother S(a) for classes S, W, A (mg.f:219-222), S(b) for the others and for
# class U (mg.f:227-230). c[3] = 0, so psinv drops its term (mg.f:686-690)
SMOOTHER_A = (-3.0 / 8.0, 1.0 / 32.0, -1.0 / 64.0, 0.0)
SMOOTHER_B = (-3.0 / 17.0, 1.0 / 33.0, -1.0 / 61.0, 0.0)

# zran3's generator: multiplier 5^13 and seed 314159265, mm = 10 charges of each sign
# (mg.f:2149)
RAN_A = 5.0 ** 13
RAN_SEED = 314159265.0
CHARGES = 10

FLOPS_PER_POINT = 58.0                # Mop/s = 58 * nit * n^3 / t / 1e6: mg.f:360-363


# ---------------------------------------------------------------------------------------
# Stencil kernels on one rank's ghosted block (shape (m3 + 2, m2 + 2, m1 + 2)). Each
# computes the owned points only and follows mg.f's order of additions, so that the
# result does not depend on the process count; no fastmath (it would reorder the sums).
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _resid(u, v, r, a0, a2, a3):
    """Local. r = v - A u on the owned points (mg.f ``resid``); ``v`` may be ``r``."""
    n3, n2, n1 = u.shape
    u1 = np.empty(n1)                 # sums of the 4 face neighbours in the y-z plane
    u2 = np.empty(n1)                 # sums of the 4 edge neighbours in the y-z plane
    for i3 in range(1, n3 - 1):
        for i2 in range(1, n2 - 1):
            for i1 in range(n1):
                u1[i1] = u[i3, i2 - 1, i1] + u[i3, i2 + 1, i1] + u[i3 - 1, i2, i1] + u[i3 + 1, i2, i1]
                u2[i1] = (u[i3 - 1, i2 - 1, i1] + u[i3 - 1, i2 + 1, i1]
                          + u[i3 + 1, i2 - 1, i1] + u[i3 + 1, i2 + 1, i1])
            for i1 in range(1, n1 - 1):
                r[i3, i2, i1] = (v[i3, i2, i1] - a0 * u[i3, i2, i1]
                                 - a2 * (u2[i1] + u1[i1 - 1] + u1[i1 + 1])
                                 - a3 * (u2[i1 - 1] + u2[i1 + 1]))


@njit(cache=True)
def _psinv(r, u, c0, c1, c2):
    """Local. u = u + C r on the owned points (mg.f ``psinv``, the smoother)."""
    n3, n2, n1 = r.shape
    r1 = np.empty(n1)
    r2 = np.empty(n1)
    for i3 in range(1, n3 - 1):
        for i2 in range(1, n2 - 1):
            for i1 in range(n1):
                r1[i1] = r[i3, i2 - 1, i1] + r[i3, i2 + 1, i1] + r[i3 - 1, i2, i1] + r[i3 + 1, i2, i1]
                r2[i1] = (r[i3 - 1, i2 - 1, i1] + r[i3 - 1, i2 + 1, i1]
                          + r[i3 + 1, i2 - 1, i1] + r[i3 + 1, i2 + 1, i1])
            for i1 in range(1, n1 - 1):
                u[i3, i2, i1] = (u[i3, i2, i1] + c0 * r[i3, i2, i1]
                                 + c1 * (r[i3, i2, i1 - 1] + r[i3, i2, i1 + 1] + r1[i1])
                                 + c2 * (r2[i1] + r1[i1 - 1] + r1[i1 + 1]))


@njit(cache=True)
def _rprj3(r, s):
    """Local. s = P r: the trilinear restriction of the fine residual ``r`` onto the
    coarse block ``s`` (mg.f ``rprj3``). Coarse owned point j sits on fine point 2j
    (data indices), and reads fine points 2j - 1 .. 2j + 1: the high ghost at most."""
    m3, m2, m1 = s.shape[0] - 2, s.shape[1] - 2, s.shape[2] - 2
    x1 = np.empty(r.shape[2])
    y1 = np.empty(r.shape[2])
    for j3 in range(1, m3 + 1):
        i3 = 2 * j3
        for j2 in range(1, m2 + 1):
            i2 = 2 * j2
            for j1 in range(1, m1 + 2):
                i1 = 2 * j1 - 1
                x1[i1] = r[i3, i2 - 1, i1] + r[i3, i2 + 1, i1] + r[i3 - 1, i2, i1] + r[i3 + 1, i2, i1]
                y1[i1] = (r[i3 - 1, i2 - 1, i1] + r[i3 + 1, i2 - 1, i1]
                          + r[i3 - 1, i2 + 1, i1] + r[i3 + 1, i2 + 1, i1])
            for j1 in range(1, m1 + 1):
                i1 = 2 * j1
                y2 = (r[i3 - 1, i2 - 1, i1] + r[i3 + 1, i2 - 1, i1]
                      + r[i3 - 1, i2 + 1, i1] + r[i3 + 1, i2 + 1, i1])
                x2 = r[i3, i2 - 1, i1] + r[i3, i2 + 1, i1] + r[i3 - 1, i2, i1] + r[i3 + 1, i2, i1]
                s[j3, j2, j1] = (0.5 * r[i3, i2, i1]
                                 + 0.25 * (r[i3, i2, i1 - 1] + r[i3, i2, i1 + 1] + x2)
                                 + 0.125 * (x1[i1 - 1] + x1[i1 + 1] + y2)
                                 + 0.0625 * (y1[i1 - 1] + y1[i1 + 1]))


@njit(cache=True)
def _interp_row(z, u, i3, i2, f3, f2, z1, z2, z3, m1):
    """Local. The fine row (f3, f2) of :func:`_interp` from coarse row (i3, i2): which
    of the four sums applies follows from whether the fine row sits on a coarse row
    (even data index) or between two (odd) along y and z."""
    on3, on2 = f3 % 2 == 0, f2 % 2 == 0
    for i1 in range(1, m1 + 1):          # fine point 2 i1: on a coarse point along x
        if on3 and on2:
            u[f3, f2, 2 * i1] = u[f3, f2, 2 * i1] + z[i3, i2, i1]
        elif on3:
            u[f3, f2, 2 * i1] = u[f3, f2, 2 * i1] + 0.5 * z1[i1]
        elif on2:
            u[f3, f2, 2 * i1] = u[f3, f2, 2 * i1] + 0.5 * z2[i1]
        else:
            u[f3, f2, 2 * i1] = u[f3, f2, 2 * i1] + 0.25 * z3[i1]
    for i1 in range(0, m1):              # fine point 2 i1 + 1: between two along x
        if on3 and on2:
            u[f3, f2, 2 * i1 + 1] = u[f3, f2, 2 * i1 + 1] + 0.5 * (z[i3, i2, i1 + 1] + z[i3, i2, i1])
        elif on3:
            u[f3, f2, 2 * i1 + 1] = u[f3, f2, 2 * i1 + 1] + 0.25 * (z1[i1] + z1[i1 + 1])
        elif on2:
            u[f3, f2, 2 * i1 + 1] = u[f3, f2, 2 * i1 + 1] + 0.25 * (z2[i1] + z2[i1 + 1])
        else:
            u[f3, f2, 2 * i1 + 1] = u[f3, f2, 2 * i1 + 1] + 0.125 * (z3[i1] + z3[i1 + 1])


@njit(cache=True)
def _interp(z, u):
    """Local. u = u + Q z: adds the trilinear prolongation of the coarse correction ``z``
    to the owned points of the fine block ``u`` (mg.f ``interp``). Fine point 2i lies on
    coarse point i, fine point 2i + 1 halfway to i + 1; the fine owned points 1..2m read
    coarse points 0..m (the low ghost at most). Unlike mg.f, which also fills the fine
    ghosts from the coarse ones, it leaves the ghosts to the halo exchange."""
    m3, m2, m1 = z.shape[0] - 2, z.shape[1] - 2, z.shape[2] - 2
    n1 = z.shape[2]
    z1 = np.empty(n1)
    z2 = np.empty(n1)
    z3 = np.empty(n1)
    for i3 in range(0, m3 + 1):
        for i2 in range(0, m2 + 1):
            for i1 in range(n1):
                z1[i1] = z[i3, i2 + 1, i1] + z[i3, i2, i1]
                z2[i1] = z[i3 + 1, i2, i1] + z[i3, i2, i1]
                z3[i1] = z[i3 + 1, i2 + 1, i1] + z[i3 + 1, i2, i1] + z1[i1]
            # the fine rows this coarse row feeds: 2 i (on it) and 2 i + 1 (past it),
            # owned only when inside 1..2m
            for f3 in (2 * i3, 2 * i3 + 1):
                if f3 < 1 or f3 > 2 * m3:
                    continue
                for f2 in (2 * i2, 2 * i2 + 1):
                    if f2 < 1 or f2 > 2 * m2:
                        continue
                    _interp_row(z, u, i3, i2, f3, f2, z1, z2, z3, m1)


@njit(cache=True)
def _norm_parts(r):
    """Local. This rank's sum of squares and largest magnitude over the owned points
    (the local half of mg.f ``norm2u3``)."""
    n3, n2, n1 = r.shape
    s = 0.0
    big = 0.0
    for i3 in range(1, n3 - 1):
        for i2 in range(1, n2 - 1):
            for i1 in range(1, n1 - 1):
                s += r[i3, i2, i1] ** 2
                a = abs(r[i3, i2, i1])
                if a > big:
                    big = a
    return s, big


# ---------------------------------------------------------------------------------------
# zran3: the right-hand side v, +1 at the ten largest and -1 at the ten smallest numbers
# of NPB's generator laid over the whole grid in x-fastest order (mg.f:2127-2321)
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _fill_random(v, x0, a, a1, a2):
    """Local. The owned block of ``v`` from the generator: ``x0`` is the state just
    before this block's first point; a row of x advances it by ``a1 = a^nx``, a plane by
    ``a2 = a^(nx ny)`` (mg.f:2164-2179)."""
    n3, n2, n1 = v.shape
    for i3 in range(1, n3 - 1):
        x1 = x0
        for i2 in range(1, n2 - 1):
            common.vranlc(n1 - 2, x1, a, v[i3, i2, 1:])
            _, x1 = common.randlc(x1, a1)
        _, x0 = common.randlc(x0, a2)


@njit(cache=True)
def _extremes(v, lo3, lo2, lo1, nx, ny, count):
    """Local. The ``count`` largest and smallest owned values, ascending and descending,
    with their global linear indices ``i1 + nx (i2 + ny i3)``: mg.f's per-rank candidates
    (mg.f:2189-2219; its ``bubble`` keeps the same sorted lists, starting from 0 and 1)."""
    big = np.zeros(count)
    small = np.ones(count)
    ibig = np.zeros(count, np.int64)
    ismall = np.zeros(count, np.int64)
    n3, n2, n1 = v.shape
    for i3 in range(1, n3 - 1):
        for i2 in range(1, n2 - 1):
            for i1 in range(1, n1 - 1):
                x = v[i3, i2, i1]
                g = (lo1 + i1 - 1) + nx * ((lo2 + i2 - 1) + ny * (lo3 + i3 - 1))
                if x > big[0]:             # replace the smallest of the large ones
                    k = 0
                    while k + 1 < count and x > big[k + 1]:
                        big[k] = big[k + 1]
                        ibig[k] = ibig[k + 1]
                        k += 1
                    big[k] = x
                    ibig[k] = g
                if x < small[0]:           # replace the largest of the small ones
                    k = 0
                    while k + 1 < count and x < small[k + 1]:
                        small[k] = small[k + 1]
                        ismall[k] = ismall[k + 1]
                        k += 1
                    small[k] = x
                    ismall[k] = g
    return big, ibig, small, ismall


def zran3(v, n, seed) -> None:
    """Collective. Set ``v`` to NPB MG's right-hand side: zero, +1 at the ten globally
    largest and -1 at the ten globally smallest of the generator's numbers (number
    ``1 + i1 + n (i2 + n i3)`` from ``seed`` at global point (i1, i2, i3)), ghosts
    exchanged. The positions do not depend on the process count."""
    d = v.decomp
    lo3, lo2, lo1 = d.lo
    # the state before this block's first point: jump i1 + n (i2 + n i3) steps ahead
    x0 = common.randlc(seed, common.power(RAN_A, lo1 + n * (lo2 + n * lo3)))[1]
    v.data[...] = 0.0
    _fill_random(v.data, x0, RAN_A, common.power(RAN_A, n), common.power(RAN_A, n * n))
    big, ibig, small, ismall = _extremes(v.data, lo3, lo2, lo1, n, n, CHARGES)
    # mg.f settles the global ten by ten rounds of Allreduce (mg.f:2226-2278); one
    # Allgather of every rank's candidates, sorted here, picks the same points
    size = d.cart.Get_size()
    values = np.empty((size, 2, CHARGES))
    where = np.empty((size, 2, CHARGES), np.int64)
    d.cart.Allgather(np.stack([big, small]), values)
    d.cart.Allgather(np.stack([ibig, ismall]), where)
    # [largest or smallest][every rank's candidates]
    values = values.transpose(1, 0, 2).reshape(2, -1)
    where = where.transpose(1, 0, 2).reshape(2, -1)
    plus = where[0][np.argsort(values[0], kind="stable")[-CHARGES:]]
    minus = where[1][np.argsort(values[1], kind="stable")[:CHARGES]]
    v.data[...] = 0.0
    for charge, points in ((-1.0, minus), (+1.0, plus)):   # mg.f:2308-2313: -1 first
        for g in points:
            i3, rest = divmod(int(g), n * n)
            i2, i1 = divmod(rest, n)
            if all(lo <= i < hi for lo, i, hi in zip(d.lo, (i3, i2, i1), d.hi)):
                v.data[i3 - lo3 + 1, i2 - lo2 + 1, i1 - lo1 + 1] = charge
    pympc.update_halo(v)


# ---------------------------------------------------------------------------------------
# The operators on DistArrays: each runs its kernel on this rank's block, then refills
# the ghosts of what it wrote (mg.f calls comm3 at the same places)
# ---------------------------------------------------------------------------------------

def resid(u, v, r, a) -> None:
    """Neighbour-collective. r = v - A u, ghosts exchanged (``v`` may be ``r``)."""
    _resid(u.data, v.data, r.data, a[0], a[2], a[3])
    pympc.update_halo(r)


def psinv(r, u, c) -> None:
    """Neighbour-collective. u = u + C r (the smoother), ghosts exchanged."""
    _psinv(r.data, u.data, c[0], c[1], c[2])
    pympc.update_halo(u)


def rprj3(r, s) -> None:
    """Collective. s = P r onto the next coarser level, ghosts exchanged. Onto a
    replicated level (see :func:`setup`) every rank restricts its own block, and one
    Allgather gives every rank the whole coarse grid."""
    if not _gathers(r, s):
        _rprj3(r.data, s.data)
        pympc.update_halo(s)
        return
    d = r.decomp
    half = tuple(m // 2 for m in d.local_shape)     # this rank's coarse points
    block = np.zeros(tuple(m + 2 for m in half))
    _rprj3(r.data, block)
    blocks = np.empty((d.size, *half))
    d.cart.Allgather(np.ascontiguousarray(block[1:-1, 1:-1, 1:-1]), blocks)
    for rank, ranges in enumerate(d.all_ranges()):
        lo = [a // 2 + 1 for a, _ in ranges]           # + 1: the ghost layer
        s.data[lo[0]:lo[0] + half[0], lo[1]:lo[1] + half[1], lo[2]:lo[2] + half[2]] = blocks[rank]
    pympc.update_halo(s)                               # the periodic wrap, on this rank


def interp(z, u) -> None:
    """Neighbour-collective. u = u + Q z from the next coarser level, ghosts exchanged
    (mg.f computes the fine ghosts from the coarse ones instead: the same values).
    From a replicated level, this rank reads the part under its block (ghosts too)."""
    coarse = z.data
    if _gathers(u, z):
        d = u.decomp
        lo = [a // 2 for a in d.lo]                     # ghost index lo - 1 is data lo
        n = [m // 2 + 2 for m in d.local_shape]
        coarse = np.ascontiguousarray(coarse[lo[0]:lo[0] + n[0], lo[1]:lo[1] + n[1],
                                             lo[2]:lo[2] + n[2]])
    _interp(coarse, u.data)
    pympc.update_halo(u)


def _gathers(fine, coarse) -> bool:
    """Local. Whether ``coarse`` is a replicated level below the distributed ``fine``."""
    return coarse.decomp.size < fine.decomp.size


def norm2u3(r, n: int) -> tuple:
    """Collective. The residual's L2 norm ``sqrt(sum r^2 / n^3)`` and its largest
    magnitude (mg.f ``norm2u3``): one Allreduce carries both."""
    s, big = _norm_parts(r.data)
    total, peak = pympc.reduce_all(("sum", s), ("max", big), comm=r.decomp.cart)
    return float(np.sqrt(total / float(n) ** 3)), float(peak)


def mg3p(u, v, r, a, c) -> None:
    """Collective. One V-cycle (mg.f ``mg3P``): ``u[k]``, ``r[k]`` are level k's
    correction and residual, coarsest first, ``u[-1]``/``r[-1]`` the fine grid's
    solution and residual, ``v`` its right-hand side."""
    top = len(u) - 1
    for k in range(top, 0, -1):               # down: restrict the residual
        rprj3(r[k], r[k - 1])
    u[0].data[...] = 0.0                      # the coarsest level: one smoothing of 0
    psinv(r[0], u[0], c)
    for k in range(1, top):                   # up: prolongate, residual, smooth
        u[k].data[...] = 0.0
        interp(u[k - 1], u[k])
        resid(u[k], r[k], r[k], a)
        psinv(r[k], u[k], c)
    interp(u[top - 1], u[top])                # the fine grid keeps its solution
    resid(u[top], v, r[top], a)
    psinv(r[top], u[top], c)


def process_grid(nprocs: int) -> tuple:
    """Local. mg.f's process grid (mg.f:451-461): log2(P) split as evenly as possible,
    x gets the least, z the most; returned in array order (z, y, x)."""
    log_p = nprocs.bit_length() - 1
    dx = log_p // 3
    dy = (log_p - dx) // 2
    px, py = 2 ** dx, 2 ** dy
    return (nprocs // (px * py), py, px)


def check_problem(n: int, nit: int, dims: tuple) -> None:
    """Local. Refuse (exit 2, on every rank) a grid that is no power of two, fewer than
    one V-cycle, or too few points for the process grid."""
    if n < 4 or not common.is_power_of_two(n):
        common.fail(f"MG needs n a power of two >= 4, got {n}")
    if nit < 1:
        common.fail(f"MG needs nit >= 1, got {nit}")
    if n < 2 * max(dims):
        # the finest level is distributed with at least 2 points per rank and axis, so
        # that its restriction has a point on every rank (see setup)
        common.fail(f"MG needs n >= 2 x the processes per axis {dims[::-1]} (x, y, z), got {n}")


def setup(n: int, dims: tuple, stack) -> list:
    """Collective. One periodic decomposition per level, 2^1 .. n points per axis, all
    on mg.f's process grid: a rank's coarse block then lies under its fine block
    (``lo_fine = 2 lo_coarse``), so restriction and prolongation need only ghosts. The
    box stencil exchanges edges and corners too: every operator reads all 26
    neighbours. ``stack`` closes them at the end.

    A level with fewer than 2 points per rank on an axis is replicated: every rank
    holds all of it (a decomposition of ``COMM_SELF``) and computes it redundantly, so
    that a restriction onto it has whole coarse points on every rank. mg.f spreads such
    levels down to 1 point per rank and leaves ranks idle ("dead", mg.f:476-494) below
    that; the arithmetic per point is the same."""
    from mpi4py import MPI

    levels = []
    m = 2
    while m <= n:
        spread = m >= 2 * max(dims)            # at least 2 points per rank and axis
        comm, grid = (pympc.WORLD, dims) if spread else (MPI.COMM_SELF, (1, 1, 1))
        levels.append(stack.enter_context(pympc.Decomposition(
            (m, m, m), comm=comm, dims=grid, periodic=True, ghost=1, stencil="box")))
        m *= 2
    return levels


def solve(problem, seed, comm) -> tuple:
    """Collective. mg.f's main program: set up, one untimed V-cycle (it also compiles the
    kernels), start again from u = 0, then the timed region: the residual, ``nit``
    V-cycles each followed by the residual, the final norm. Returns (norm, seconds,
    initialisation seconds)."""
    n, nit = problem.params["n"], problem.params["nit"]
    a = A_COEF
    c = SMOOTHER_A if problem.cls in ("S", "W", "A") else SMOOTHER_B
    with contextlib.ExitStack() as stack:
        with common.Timer(comm) as init:
            levels = setup(n, process_grid(comm.Get_size()), stack)
            u = [pympc.DistArray(d) for d in levels]
            r = [pympc.DistArray(d) for d in levels]
            v = pympc.DistArray(levels[-1])
            zran3(v, n, seed)
            resid(u[-1], v, r[-1], a)
            norm2u3(r[-1], n)
            mg3p(u, v, r, a, c)               # the warm-up iteration (mg.f:261-268)
            resid(u[-1], v, r[-1], a)
            u[-1].data[...] = 0.0
            zran3(v, n, seed)
        with common.Timer(comm) as bench:     # mg.f:282-301
            resid(u[-1], v, r[-1], a)
            norm2u3(r[-1], n)
            for it in range(1, nit + 1):
                if comm.Get_rank() == 0 and (it == 1 or it == nit or it % 5 == 0):
                    print(f"  iter {it:4d}", flush=True)
                mg3p(u, v, r, a, c)
                resid(u[-1], v, r[-1], a)
            rnm2, _ = norm2u3(r[-1], n)
    return rnm2, bench.seconds, init.seconds


def main(argv=None) -> int:
    """Collective. Run NPB MG on every rank of the world communicator; every rank
    returns the same exit status (common's: 0 verified, 1 not, 2 bad input, 3 class U)."""
    args = common.parser("MG", {"n": "grid points per axis, a power of two (class U)",
                                "nit": "number of V-cycles (class U)"}).parse_args(argv)
    problem = common.choose("MG", CLASSES, args)
    comm = pympc.WORLD
    nprocs, rank = comm.Get_size(), comm.Get_rank()
    common.require_power_of_two("MG", nprocs)
    n, nit = problem.params["n"], problem.params["nit"]
    check_problem(n, nit, process_grid(nprocs))
    seed = common.start_seed(RAN_SEED, RAN_A, args.perturb_seed)
    if rank == 0:
        print(f"\n\n NAS Parallel Benchmarks 3.4 -- MG Benchmark (pympc)\n\n"
              f" Size: {n:4d}x{n:4d}x{n:4d}  (class {problem.cls})\n Iterations: {nit:4d}\n"
              f" Total number of processes: {nprocs:6d}\n", flush=True)
    rnm2, seconds, init = solve(problem, seed, comm)
    if rank != 0:
        return comm.bcast(None, root=0)  # rank 0 decides the exit status
    print(f"\n Initialization time: {init:15.3f} seconds\n\n Benchmark completed", flush=True)
    verified = False
    if problem.verifiable:                    # mg.f:333-334: relative error <= epsilon
        verified = common.check("L2 norm", rnm2, REFERENCE[problem.cls], EPSILON)
    else:
        print(f" L2 norm: computed {rnm2:.17e}  (no reference: class U)", flush=True)
    mops = common.rate(FLOPS_PER_POINT * nit * float(n) ** 3, seconds)
    status = common.report("MG", problem, (n, n, n), nit, seconds, mops, "floating point",
                           verified, nprocs)
    return comm.bcast(status, root=0)  # rank 0's exit status on every rank


if __name__ == "__main__":
    sys.exit(main())
