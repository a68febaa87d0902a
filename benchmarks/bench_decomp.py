"""Decomposition-layer benchmark: halo exchange and the FTCS heat step, pympc against the
same work written by hand in mpi4py, petsc4py's DMDA (when installed) and the
memory-bandwidth roofline, all measured in one run. Run under mpiexec; rank 0 prints
one JSON object (``--json FILE`` writes it).

    mpiexec -n 2 python benchmarks/bench_decomp.py --size 4096

Ratios are what to compare; absolute times drift between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc

import numpy as np
from mpi4py import MPI

import pympc
from common import emit, timed, versions
from pympc import kernels

comm = MPI.COMM_WORLD
R = 0.2  # alpha dt / h^2 of the heat step (stable: <= 1/4 in 2D)


def numpy_ftcs(u, out, r=R):
    """Local. The numpy slicing update a careful user writes (ghost width 1)."""
    c = u[1:-1, 1:-1]
    out[1:-1, 1:-1] = c + r * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4.0 * c)


# ---------------------------------------------------------------------------------------
# hand-written mpi4py reference: Compute_dims, Create_cart, Sendrecv per face, contiguous
# packing of the column faces
# ---------------------------------------------------------------------------------------
class HandHalo:
    def __init__(self, n, periodic=True):
        dims = MPI.Compute_dims(comm.Get_size(), 2)
        self.cart = comm.Create_cart(dims, periods=[periodic] * 2, reorder=False)
        cx, cy = self.cart.Get_coords(self.cart.Get_rank())
        nx = n // dims[0] + (1 if cx < n % dims[0] else 0)
        ny = n // dims[1] + (1 if cy < n % dims[1] else 0)
        self.u = np.zeros((nx + 2, ny + 2))
        self.v = np.zeros_like(self.u)
        self.nbr = [self.cart.Shift(0, 1), self.cart.Shift(1, 1)]
        self.sbuf = np.empty(nx)
        self.rbuf = np.empty(nx)

    def exchange(self, u):
        c = self.cart
        lo, hi = self.nbr[0]
        c.Sendrecv(u[-2, 1:-1], dest=hi, recvbuf=u[0, 1:-1], source=lo)      # rows: contiguous
        c.Sendrecv(u[1, 1:-1], dest=lo, recvbuf=u[-1, 1:-1], source=hi)
        lo, hi = self.nbr[1]
        self.sbuf[:] = u[1:-1, -2]                                            # columns: packed
        c.Sendrecv(self.sbuf, dest=hi, recvbuf=self.rbuf, source=lo)
        if lo != MPI.PROC_NULL:
            u[1:-1, 0] = self.rbuf
        self.sbuf[:] = u[1:-1, 1]
        c.Sendrecv(self.sbuf, dest=lo, recvbuf=self.rbuf, source=hi)
        if hi != MPI.PROC_NULL:
            u[1:-1, -1] = self.rbuf

    def step(self):
        self.exchange(self.u)
        numpy_ftcs(self.u, self.v)
        self.u, self.v = self.v, self.u


def copy_bandwidth(nbytes, reps):
    """Collective. Bytes/s of numpy copyto on every rank at once (read + write counted),
    summed over ranks: the roofline's bandwidth."""
    a = np.ones(nbytes // 8)
    b = np.empty_like(a)
    t = timed(lambda: np.copyto(b, a), 1, reps)
    return 2 * a.nbytes * comm.Get_size() / t["min"]


def petsc_heat(n, steps, reps):
    try:
        from petsc4py import PETSc
    except ImportError:
        return None
    da = PETSc.DMDA().create([n, n], dof=1, stencil_width=1, stencil_type=PETSc.DMDA.StencilType.STAR,
                             boundary_type=(PETSc.DM.BoundaryType.PERIODIC,) * 2, comm=PETSc.COMM_WORLD)
    g1, g2 = da.createGlobalVec(), da.createGlobalVec()
    loc = da.createLocalVec()
    (xs, xe), (ys, ye) = da.getRanges()
    (gxs, gxe), (gys, gye) = da.getGhostRanges()
    g1.set(1.0)
    state = [g1, g2]

    def step():
        da.globalToLocal(state[0], loc)
        u = loc.getArray(readonly=True).reshape(gye - gys, gxe - gxs)  # x fastest
        out = state[1].getArray().reshape(ye - ys, xe - xs)
        c = u[1:-1, 1:-1]
        out[...] = c + R * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4.0 * c)
        state.reverse()
    t = timed(step, steps, reps)
    for v in (g1, g2, loc, da):
        v.destroy()
    import petsc4py
    return t, petsc4py.__version__


def traced_peak(fn, steps):
    """Local. Peak bytes numpy allocated (tracemalloc) during ``steps`` calls of ``fn``."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(steps):
        fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return comm.allreduce(peak, op=MPI.MAX)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20, help="calls per timed batch")
    ap.add_argument("--reps", type=int, default=7, help="timed batches (median, min, max)")
    ap.add_argument("--json", help="write the results here (rank 0)")
    args = ap.parse_args(argv)
    n, steps, reps = args.size, args.steps, args.reps
    P = comm.Get_size()
    res = {"ranks": P, "size": n, "steps": steps, "reps": reps}

    # roofline: copy bandwidth with all ranks copying at once
    bw = copy_bandwidth(max(8 << 20, (160 << 20) // P), reps)
    res["copy_bandwidth_GBs"] = bw / 1e9
    res["roofline_Mcells"] = bw / 16 / 1e6  # 16 bytes per update: read u, write new

    # hand-written mpi4py
    hand = HandHalo(n)
    hand.u[1:-1, 1:-1] = 1.0
    res["halo_hand"] = timed(lambda: hand.exchange(hand.u), steps * 5, reps)
    res["heat_hand"] = timed(hand.step, steps, reps)

    # pympc: same numpy update, then the fast kernel path
    d = pympc.Decomposition((n, n), dims=MPI.Compute_dims(P, 2), periodic=True)
    u, v = pympc.DistArray(d), pympc.DistArray(d)
    u.fill(1.0)
    res["dims"] = list(d.dims)
    res["halo_pympc"] = timed(lambda: pympc.update_halo(u), steps * 5, reps)
    state = [u, v]

    def step_numpy():
        pympc.update_halo(state[0])
        numpy_ftcs(state[0].data, state[1].data)
        state.reverse()

    def step_fast():
        pympc.update_halo(state[0])
        kernels.heat_step(state[0], state[1], R)
        state.reverse()

    res["heat_pympc_numpy"] = timed(step_numpy, steps, reps)
    res["heat_pympc_fast"] = timed(step_fast, steps, reps)
    fields = u.data.nbytes + v.data.nbytes
    res["fields_bytes"] = fields
    res["peak_extra_bytes_fast"] = traced_peak(step_fast, 3)
    res["peak_extra_bytes_numpy"] = traced_peak(step_numpy, 3)
    # gather: only the root allocates the global array
    tracemalloc.start()
    u.gather(root=0)
    g_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    res["gather_peak_root"] = comm.bcast(g_peak, root=0)
    res["gather_peak_other_max"] = comm.allreduce(g_peak if comm.Get_rank() else 0, op=MPI.MAX)
    res["kernel_backend"] = kernels.BACKEND
    d.close()

    p = petsc_heat(n, steps, reps)
    res["heat_petsc"], res["petsc4py"] = (p if p else (None, None))

    cells = n * n
    for k in ("heat_hand", "heat_pympc_numpy", "heat_pympc_fast", "heat_petsc"):
        if res.get(k):
            res[k]["Mcells"] = cells / res[k]["median"] / 1e6
    res["ratios"] = ratios(res)
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)
    return res


def ratios(r):
    """Local. The figures the targets are stated in."""
    out = {
        "halo_pympc_over_hand": r["halo_pympc"]["median"] / r["halo_hand"]["median"],
        "heat_numpy_pympc_over_hand": r["heat_pympc_numpy"]["median"] / r["heat_hand"]["median"],
        "fast_over_roofline": r["heat_pympc_fast"]["Mcells"] / r["roofline_Mcells"],
        "fast_speedup_over_hand": r["heat_hand"]["median"] / r["heat_pympc_fast"]["median"],
        "peak_extra_over_fields_fast": r["peak_extra_bytes_fast"] / r["fields_bytes"],
    }
    if r.get("heat_petsc"):
        out["fast_over_petsc"] = r["heat_petsc"]["median"] / r["heat_pympc_fast"]["median"]
    return out


if __name__ == "__main__":
    main()
    sys.stdout.flush()
