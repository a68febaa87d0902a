"""NPB CG on pympc: the smallest eigenvalue of a random sparse symmetric matrix by inverse
power iteration, each step solved by 25 conjugate-gradient iterations (docs/npb.md).

It follows NPB3.4-MPI/CG/cg.f. The processes form an ``nprows x npcols`` grid (a power of
two; ``npcols`` is ``nprows`` or twice it) and each owns one block of the matrix: a range
of its rows and a range of its columns. Every vector of the solver lives in *column
space*: a process holds the entries of its own column range, so every process row holds
a whole copy of each vector, spread over its columns. The matrix-vector product ``q = A p``
is therefore three steps, as in cg.f:849-913:

1. each process multiplies its block by its piece of ``p`` (a partial sum over its columns
   for each of its rows; a compiled CSR loop);
2. the partial sums are added up across the process row (an ``Allreduce`` on the row's
   sub-communicator; cg.f does it by recursive halving with its partners);
3. the row sums are sent to the *transpose* process, whose column range is this row range
   (the matrix is symmetric, so the rows of ``A p`` are the columns of the next ``p``).

Dot products are sums over one's own columns, added up across the process row.

Run: ``mpiexec -n 4 python benchmarks/npb/cg.py --class S`` (1, 2, 4, 8, ... processes).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import pympc  # noqa: E402  (a launched rank initialises pympc's runtime at import)

# na, nonzer, niter, shift of each class: NPB3.4-MPI/sys/setparams.c:645-654
# (every class's shift is an integer, so --shift takes an int).
CLASSES = {
    "S": {"na": 1400, "nonzer": 7, "niter": 15, "shift": 10},      # setparams.c:646
    "W": {"na": 7000, "nonzer": 8, "niter": 15, "shift": 12},      # setparams.c:648
    "A": {"na": 14000, "nonzer": 11, "niter": 15, "shift": 20},    # setparams.c:650
    "B": {"na": 75000, "nonzer": 13, "niter": 75, "shift": 60},    # setparams.c:652
    "C": {"na": 150000, "nonzer": 15, "niter": 75, "shift": 110},  # setparams.c:654
}
# the reference zeta of each class: NPB3.4-MPI/CG/cg.f:106, 112, 118, 124, 130
ZETA_REFERENCE = {"S": 8.5971775078648, "W": 10.362595087124, "A": 17.130235054029,
                  "B": 22.712745482631, "C": 28.973605592845}
RCOND = 0.1              # setparams.c:643 (rcond="1.0d-1"): the smallest eigenvalue's floor
EPSILON = 1.0e-10        # cg.f:402; cg.f:405-406 verifies |zeta - ref| / ref <= epsilon
CG_ITERATIONS = 25       # cg.f:781 (cgitmax)
SEED = 314159265.0       # cg.f:188 (tran)
MULTIPLIER = 1220703125.0  # cg.f:189 (amult)
SIZES = {"na": "order of the matrix", "nonzer": "nonzeros per generated vector",
         "niter": "inverse power iterations", "shift": "eigenvalue shift (an integer)"}


# --- the process grid and the blocks -------------------------------------------------------

def _split(n: int, parts: int, k: int) -> tuple:
    """Local. Part ``k`` of ``parts`` near-equal ranges of ``0..n`` (the first ``n % parts``
    one longer), as cg.f:615-636 splits rows and columns; 0-based, half-open."""
    extra, size = n % parts, n // parts
    if k < extra:
        return k * (size + 1), (k + 1) * (size + 1)
    first = extra * (size + 1) + (k - extra) * size
    return first, first + size


@dataclass
class Grid:
    """Local. One process's place in CG's grid and the ranges it owns (cg.f:522-747):
    rows ``row0:row1`` and columns ``col0:col1`` of the matrix (0-based, half-open); the
    slice ``send0:send0+send_len`` of its row sums that its transpose process
    ``exch_proc`` needs; ``row_comm``: the processes of its process row."""

    nprows: int
    npcols: int
    row0: int
    row1: int
    col0: int
    col1: int
    send0: int
    send_len: int
    exch_proc: int
    row_comm: object

    @property
    def nrows(self) -> int:
        """Local. The number of matrix rows this process owns."""
        return self.row1 - self.row0

    @property
    def ncols(self) -> int:
        """Local. The number of matrix columns (vector entries) this process owns."""
        return self.col1 - self.col0


def process_grid(nprocs: int) -> tuple:
    """Local. ``(nprows, npcols)`` for a power-of-two process count (cg.f:538-544): the
    columns get the larger half of the exponent, so ``npcols`` is ``nprows`` or twice it."""
    log_p = nprocs.bit_length() - 1
    return 2 ** (log_p // 2), 2 ** (log_p - log_p // 2)


def owned_ranges(na: int, nprows: int, npcols: int, me: int) -> tuple:
    """Local. The rows and columns process ``me`` owns (cg.f:593-661), 0-based half-open.
    With twice as many process columns as rows, a row block's range is split in two
    halves by the even and the odd process (cg.f:639-659)."""
    proc_row, proc_col = divmod(me, npcols)
    if na % npcols == 0:
        rs, cs = na // nprows, na // npcols
        return (proc_row * rs, (proc_row + 1) * rs), (proc_col * cs, (proc_col + 1) * cs)
    rows = _split(na, nprows, proc_row)
    if npcols == nprows:
        return rows, _split(na, npcols, proc_col)
    c0, c1 = _split(na, npcols // 2, proc_col // 2)
    first_half = (c1 - c0 - 1) // 2 + 1
    cols = (c0, c0 + first_half) if me % 2 == 0 else (c0 + first_half, c1)
    return rows, cols


def setup_grid(comm, na: int) -> Grid:
    """Collective. This process's :class:`Grid`: its ranges, its transpose process
    (cg.f:685-690), the slice of row sums it sends (cg.f:665-676), and the process row's
    sub-communicator (the partners of cg.f's reduce_exch_proc, cg.f:706-715)."""
    me, nprocs = comm.Get_rank(), comm.Get_size()
    nprows, npcols = process_grid(nprocs)
    (row0, row1), (col0, col1) = owned_ranges(na, nprows, npcols, me)
    nrows = row1 - row0
    if npcols == nprows:
        send0, send_len = 0, nrows
        exch_proc = (me % nprows) * nprows + me // nprows
    else:
        # the even process of a pair sends the first (larger) half of its row sums
        half = (nrows + 1) // 2
        send0, send_len = (0, half) if me % 2 == 0 else (half, nrows // 2)
        exch_proc = 2 * (((me // 2) % nprows) * nprows + (me // 2) // nprows) + me % 2
    row_comm = comm.Split(color=me // npcols, key=me % npcols)
    return Grid(nprows, npcols, row0, row1, col0, col1, send0, send_len, exch_proc, row_comm)


# --- makea: the random sparse matrix (cg.f:1157-1273) ---------------------------------------

@njit(cache=True)
def _sparse_vector(n, nonzer, nn1, v, iv, mark, tran, amult):
    """Local. cg.f's ``sprnvc`` (cg.f:1411-1479): ``nonzer`` random values at distinct
    random positions ``0..n-1`` into ``v, iv``; positions come from scaling a random
    number by ``nn1`` (the power of two >= n) and rejecting those >= n. Returns the new
    generator state."""
    nzv = 0
    while nzv < nonzer:
        value, tran = common.randlc(tran, amult)
        where, tran = common.randlc(tran, amult)
        i = int(nn1 * where)
        if i >= n or mark[i]:
            continue
        mark[i] = 1
        v[nzv] = value
        iv[nzv] = i
        nzv += 1
    for k in range(nzv):
        mark[iv[k]] = 0
    return tran


@njit(cache=True)
def _set_element(v, iv, nzv, i, val):
    """Local. cg.f's ``vecset`` (cg.f:1505-1533): entry ``i`` of the sparse vector
    ``(v, iv)`` of ``nzv`` entries becomes ``val`` (appended when absent); returns the
    new count."""
    found = False
    for k in range(nzv):
        if iv[k] == i:
            v[k] = val
            found = True
    if not found:
        v[nzv] = val
        iv[nzv] = i
        nzv += 1
    return nzv


@njit(cache=True)
def _grow(arow, acol, aelt):
    """Local. The triplet arrays at twice their length (the original stops instead)."""
    m = 2 * arow.size
    ar, ac, ae = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.float64)
    ar[:arow.size], ac[:acol.size], ae[:aelt.size] = arow, acol, aelt
    return ar, ac, ae


@njit(cache=True)
def generate_triplets(n, nonzer, capacity, row0, row1, col0, col1, ratio, rcond, shift,
                      tran, amult):
    """Local. The matrix as (row, column, value) triplets, duplicates included, in the
    original's order, kept only where they fall in this block (cg.f:1206-1255): the sum
    over ``i`` of ``size_i * v_i v_i^T`` for ``n`` random sparse vectors ``v_i`` (each with
    entry ``i`` set to 0.5), ``size_i = ratio**i``; then ``rcond - shift`` on the diagonal.
    Every process draws every vector, so each builds exactly the original's entries."""
    arow = np.empty(capacity, np.int64)
    acol = np.empty(capacity, np.int64)
    aelt = np.empty(capacity, np.float64)
    v = np.empty(nonzer + 1, np.float64)
    iv = np.empty(nonzer + 1, np.int64)
    mark = np.zeros(n, np.int8)
    nn1 = 1
    while nn1 < n:
        nn1 *= 2
    size, nnza = 1.0, 0
    for outer in range(n):
        tran = _sparse_vector(n, nonzer, nn1, v, iv, mark, tran, amult)
        nzv = _set_element(v, iv, nonzer, outer, 0.5)
        for a in range(nzv):
            jcol = iv[a]
            if col0 <= jcol < col1:
                scale = size * v[a]
                for b in range(nzv):
                    irow = iv[b]
                    if row0 <= irow < row1:
                        if nnza == arow.size:
                            arow, acol, aelt = _grow(arow, acol, aelt)
                        arow[nnza], acol[nnza], aelt[nnza] = irow, jcol, v[b] * scale
                        nnza += 1
        size *= ratio
    for i in range(max(row0, col0), min(row1, col1)):
        if nnza == arow.size:
            arow, acol, aelt = _grow(arow, acol, aelt)
        arow[nnza], acol[nnza], aelt[nnza] = i, i, rcond - shift
        nnza += 1
    return arow[:nnza], acol[:nnza], aelt[:nnza]


@njit(cache=True)
def assemble_csr(nrows, ncols, row0, col0, arow, acol, aelt):
    """Local. cg.f's ``sparse`` (cg.f:1278-1405): the triplets as a CSR block with local
    row and column numbers; duplicates are added in the triplets' order, each row's
    columns come in the order they first became nonzero, and exact zeros are dropped, so
    the matrix-vector product adds its terms in the original's order."""
    rowstr = np.zeros(nrows + 1, np.int64)
    for k in range(arow.size):
        rowstr[arow[k] - row0 + 1] += 1
    for j in range(nrows):
        rowstr[j + 1] += rowstr[j]
    # bucket sort by row, keeping the generation order within a row
    fill = rowstr[:-1].copy()
    sa, sc = np.empty(arow.size, np.float64), np.empty(arow.size, np.int64)
    for k in range(arow.size):
        j = arow[k] - row0
        sa[fill[j]], sc[fill[j]] = aelt[k], acol[k] - col0
        fill[j] += 1
    a, colidx = np.empty(arow.size, np.float64), np.empty(arow.size, np.int32)
    x, mark = np.zeros(ncols, np.float64), np.zeros(ncols, np.int8)
    nzloc = np.empty(ncols, np.int64)
    nza, start = 0, 0
    for j in range(nrows):
        nzrow = 0
        for k in range(rowstr[j], rowstr[j + 1]):
            i = sc[k]
            x[i] += sa[k]
            if mark[i] == 0 and x[i] != 0.0:
                mark[i] = 1
                nzloc[nzrow] = i
                nzrow += 1
        for k in range(nzrow):
            i = nzloc[k]
            mark[i] = 0
            if x[i] != 0.0:
                a[nza], colidx[nza] = x[i], i
                nza += 1
            x[i] = 0.0
        rowstr[j] = start
        start = nza
    rowstr[nrows] = nza
    return rowstr, colidx[:nza].copy(), a[:nza].copy()


def makea(na: int, nonzer: int, shift: float, grid: Grid, tran: float) -> tuple:
    """Local. This process's block of CG's matrix as CSR ``(rowstr, colidx, a)`` with
    local row and column numbers (cg.f:195-213). ``tran``: the generator's state."""
    nprocs = grid.nprows * grid.npcols
    # the original's estimate of a block's nonzeros (cg_data.f:112-114); it grows if short
    capacity = (na * (nonzer + 1) // nprocs * (nonzer + 1) + nonzer
                + na * (nonzer + 2 + nprocs // 256) // grid.npcols)
    ratio = RCOND ** (1.0 / na)  # cg.f:1207
    arow, acol, aelt = generate_triplets(na, nonzer, capacity, grid.row0, grid.row1, grid.col0,
                                         grid.col1, ratio, RCOND, float(shift), tran, MULTIPLIER)
    return assemble_csr(grid.nrows, grid.ncols, grid.row0, grid.col0, arow, acol, aelt)


# --- the solver's compiled loops -----------------------------------------------------------

@njit(cache=True)
def block_product(rowstr, colidx, a, p, w):
    """Local. ``w = A_block p``: this block's rows times this process's piece of ``p``
    (cg.f:849-855), each row's terms added in CSR order."""
    for j in range(rowstr.size - 1):
        s = 0.0
        for k in range(rowstr[j], rowstr[j + 1]):
            s += a[k] * p[colidx[k]]
        w[j] = s


@njit(cache=True)
def dot(x, y):
    """Local. ``x . y`` over this process's columns, in index order."""
    s = 0.0
    for j in range(x.size):
        s += x[j] * y[j]
    return s


@njit(cache=True)
def step_z_r(z, r, p, q, alpha):
    """Local. ``z += alpha p``, ``r -= alpha q`` (cg.f:975-978); returns the local
    ``r . r`` (cg.f:984-987)."""
    for j in range(z.size):
        z[j] += alpha * p[j]
        r[j] -= alpha * q[j]
    s = 0.0
    for j in range(r.size):
        s += r[j] * r[j]
    return s


@njit(cache=True)
def step_p(p, r, beta):
    """Local. ``p = r + beta p`` (cg.f:1024-1026)."""
    for j in range(p.size):
        p[j] = r[j] + beta * p[j]


@njit(cache=True)
def residual_squared(x, r):
    """Local. The local ``|x - r|^2`` (cg.f:1111-1115)."""
    s = 0.0
    for j in range(x.size):
        d = x[j] - r[j]
        s += d * d
    return s


# --- the distributed solver ----------------------------------------------------------------

class Solver:
    """Local. The matrix block, the vectors (each over this process's columns) and the
    buffers of one CG process; built once, reused by every iteration."""

    def __init__(self, comm, grid: Grid, matrix: tuple):
        self.comm, self.grid = comm, grid
        self.rowstr, self.colidx, self.a = matrix
        n = grid.ncols
        self.x, self.z, self.p, self.q, self.r = (np.zeros(n) for _ in range(5))
        self.w = np.zeros(grid.nrows)
        self.one, self.total = np.zeros(2), np.zeros(2)
        self.me = comm.Get_rank()

    def row_sum(self, *values: float) -> np.ndarray:
        """Collective (over the process row). The sums of ``values`` over the process row:
        cg.f's exchange with its ``l2npcols`` partners (cg.f:812-831), one Allreduce here."""
        k = len(values)
        self.one[:k] = values
        if self.grid.row_comm.Get_size() == 1:
            return self.one[:k].copy()
        self.grid.row_comm.Allreduce(self.one[:k], self.total[:k])
        return self.total[:k].copy()

    def product(self, vec: np.ndarray, out: np.ndarray) -> None:
        """Collective. ``out = A vec``, both over this process's columns (cg.f:849-913):
        the block's partial row sums, their sum over the process row, and the exchange
        with the transpose process, whose columns are this process's rows."""
        g, w = self.grid, self.w
        block_product(self.rowstr, self.colidx, self.a, vec, w)
        if g.row_comm.Get_size() > 1:
            # cg.f:862-882 adds the row sums up by recursive halving with its partners; with
            # npcols = 2 nprows each process ends with only the half it sends on. One
            # Allreduce of the whole row block gives the same sums (up to 4 processes,
            # the same bits: two terms add alike in any order) for a little more traffic.
            g.row_comm.Allreduce(MPI.IN_PLACE, w)
        piece = w[g.send0:g.send0 + g.send_len]
        if g.exch_proc == self.me:
            out[:] = piece
        else:
            self.comm.Sendrecv(piece, dest=g.exch_proc, sendtag=1, recvbuf=out,
                               source=g.exch_proc, recvtag=1)

    def conj_grad(self) -> float:
        """Collective. 25 CG iterations on ``A z = x`` from ``z = 0`` (cg.f:754-1151);
        returns the residual norm ``|x - A z|``."""
        x, z, p, q, r = self.x, self.z, self.p, self.q, self.r
        q[:] = 0.0
        z[:] = 0.0
        r[:] = x
        p[:] = r
        rho = self.row_sum(dot(r, r))[0]
        for _ in range(CG_ITERATIONS):
            self.product(p, q)
            d = self.row_sum(dot(p, q))[0]
            alpha = rho / d
            rho0 = rho
            rho = self.row_sum(step_z_r(z, r, p, q, alpha))[0]
            step_p(p, r, rho / rho0)
        self.product(z, r)  # r = A z: r's old values are no longer needed
        return math.sqrt(self.row_sum(residual_squared(x, r))[0])

    def power_step(self, shift: float) -> tuple:
        """Collective. One step of the inverse power method (cg.f:320-376): solve, then
        ``zeta = shift + 1 / (x . z)`` and ``x = z / |z|``. Returns ``(rnorm, zeta)``."""
        rnorm = self.conj_grad()
        xz, zz = self.row_sum(dot(self.x, self.z), dot(self.z, self.z))
        np.multiply(self.z, 1.0 / math.sqrt(zz), out=self.x)
        return rnorm, shift + 1.0 / xz


# --- the program ---------------------------------------------------------------------------

def operations(na: int, nonzer: int, niter: int) -> float:
    """Local. CG's floating-point operation count (cg.f:434-437)."""
    nn = nonzer * (nonzer + 1.0)
    return 2.0 * niter * na * (3.0 + nn + 25.0 * (5.0 + nn) + 3.0)


def header(problem, nprocs: int) -> None:
    """Local. cg.f's opening lines (cg.f:153-166)."""
    p = problem.params
    print(f"\n\n NAS Parallel Benchmarks (pympc) -- CG Benchmark\n\n"
          f" Size: {p['na']:10d}  (class {problem.cls})\n Iterations: {p['niter']:5d}\n"
          f" Number of processes: {nprocs:5d}\n Number of nonzeroes per row: {p['nonzer']:8d}\n"
          f" Eigenvalue shift: {p['shift']:9.3f}", flush=True)


def validate(params: dict, nprocs: int) -> None:
    """Local. Sizes every rank checks alike: positive, and at least one column per process."""
    na, nonzer, niter = params["na"], params["nonzer"], params["niter"]
    if na < 1 or nonzer < 1 or niter < 1:
        common.fail("na, nonzer and niter must be positive")
    if nonzer > na:
        common.fail(f"nonzer ({nonzer}) cannot exceed na ({na})")
    if na < nprocs:
        common.fail(f"na ({na}) must be at least the number of processes ({nprocs})")


def main(argv=None) -> int:
    """Collective. Run CG; returns the exit status (the same on every rank)."""
    args = common.parser("CG", SIZES).parse_args(argv)
    problem = common.choose("CG", CLASSES, args)
    comm = pympc.WORLD
    me, nprocs = comm.Get_rank(), comm.Get_size()
    common.require_power_of_two("CG", nprocs)
    validate(problem.params, nprocs)
    na, nonzer, niter, shift = (problem.params[k] for k in ("na", "nonzer", "niter", "shift"))
    if me == 0:
        header(problem, nprocs)
    grid = setup_grid(comm, na)
    # cg.f:188-190: the seed, then one draw before makea
    tran = common.start_seed(common.randlc(SEED, MULTIPLIER)[1], MULTIPLIER, args.perturb_seed)
    solver = Solver(comm, grid, makea(na, nonzer, shift, grid, tran))

    # one untimed iteration to touch code and data (cg.f:229-284), then start again
    solver.x[:] = 1.0
    solver.power_step(shift)
    solver.x[:] = 1.0
    zeta = 0.0
    with common.Timer(comm) as timer:  # cg.f:305-381
        for it in range(1, niter + 1):
            rnorm, zeta = solver.power_step(shift)
            if me == 0:
                if it == 1:
                    print("\n   iteration           ||r||                 zeta")
                print(f"    {it:5d}      {rnorm:21.14e}{zeta:20.13f}", flush=True)
    status = 0
    if me == 0:
        verified = False
        if problem.verifiable:
            verified = common.check("zeta", zeta, ZETA_REFERENCE[problem.cls], EPSILON)
        else:
            print(f" zeta: computed {zeta:.17e}  (class U: no reference)", flush=True)
        mops = common.rate(operations(na, nonzer, niter), timer.seconds)
        status = common.report("CG", problem, (na,), niter, timer.seconds, mops,
                               "floating point", verified, nprocs)
    grid.row_comm.Free()
    return comm.bcast(status, root=0)


if __name__ == "__main__":
    sys.exit(main())
