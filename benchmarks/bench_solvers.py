"""Solver benchmark: the heat solver's step against petsc4py's DMDA step and the
memory-bandwidth roofline (the decomposition benchmark's pieces, reused), and red-black
SOR sweeps against the same written by hand with mpi4py + numpy. tracemalloc peaks beside
each figure. Run under mpiexec; rank 0 prints (or --json writes) the results.

    mpiexec -n 2 python benchmarks/bench_solvers.py --size 4096 --sor-size 2048
"""

from __future__ import annotations

import argparse

import numpy as np
from mpi4py import MPI

import pympc
from bench_decomp import HandHalo, copy_bandwidth, petsc_heat, traced_peak
from common import emit, timed, versions
from solvers.heat import Heat
from solvers.poisson import Poisson, optimal_omega

comm = MPI.COMM_WORLD


class HandSOR(HandHalo):
    """Red-black SOR for -lap u = f written by hand: HandHalo's exchange (Sendrecv per
    face, packed columns) and numpy strided slices per colour."""

    def __init__(self, n, omega):
        super().__init__(n, periodic=False)
        self.f = np.ones_like(self.u)
        self.h2 = (1.0 / (n - 1)) ** 2
        self.omega = omega
        self.n = n
        cx, cy = self.cart.Get_coords(self.cart.Get_rank())
        dims = self.cart.Get_topo()[0]
        self.gx = sum(n // dims[0] + (1 if c < n % dims[0] else 0) for c in range(cx))
        self.gy = sum(n // dims[1] + (1 if c < n % dims[1] else 0) for c in range(cy))

    def sweep(self):
        u, f, w, h2 = self.u, self.f, self.omega, self.h2
        nx, ny = u.shape[0] - 2, u.shape[1] - 2
        # the unknowns: the boundary points of the square hold their Dirichlet values
        lo_i, hi_i = (2 if self.gx == 0 else 1), (nx - 1 if self.gx + nx == self.n else nx)
        lo_j, hi_j = (2 if self.gy == 0 else 1), (ny - 1 if self.gy + ny == self.n else ny)
        for color in (0, 1):
            self.exchange(u)
            for i0 in (lo_i, lo_i + 1):  # rows of one parity, then the columns of the colour there
                j0 = lo_j + ((color - (self.gx + i0 - 1) - (self.gy + lo_j - 1)) % 2)
                rows, cols = slice(i0, hi_i + 1, 2), slice(j0, hi_j + 1, 2)
                c = u[rows, cols]
                if c.size == 0:
                    continue
                ni, nj = c.shape
                gs = 0.25 * (f[rows, cols] * h2 + u[i0 - 1:i0 - 1 + 2 * ni:2, cols] + u[i0 + 1:i0 + 1 + 2 * ni:2, cols]
                             + u[rows, j0 - 1:j0 - 1 + 2 * nj:2] + u[rows, j0 + 1:j0 + 1 + 2 * nj:2])
                c += w * (gs - c)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="heat grid per axis")
    ap.add_argument("--sor-size", type=int, default=2048, help="RB-SOR grid per axis")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    n, steps, reps, P = args.size, args.steps, args.reps, comm.Get_size()
    res = {"ranks": P, "size": n, "sor_size": args.sor_size, "steps": steps, "reps": reps}

    bw = copy_bandwidth(max(8 << 20, (160 << 20) // P), reps)
    res["roofline_Mcells"] = bw / 16 / 1e6
    d = pympc.Decomposition((n, n), dims=MPI.Compute_dims(P, 2), periodic=True)
    heat = Heat(d, alpha=1.0, u0=1.0)
    res["heat_solver"] = timed(heat.advance, steps, reps)
    res["heat_solver"]["Mcells"] = n * n / res["heat_solver"]["median"] / 1e6
    fields = heat.u.data.nbytes * 2
    res["heat_peak_extra_over_fields"] = traced_peak(heat.advance, 2) / fields
    d.close()
    p = petsc_heat(n, steps, reps)
    if p:
        res["heat_petsc"] = p[0]
        res["heat_petsc"]["Mcells"] = n * n / p[0]["median"] / 1e6
        res["petsc4py"] = p[1]

    m = args.sor_size
    ds = pympc.Decomposition((m, m), dims=MPI.Compute_dims(P, 2), spacing=1.0 / (m - 1))
    omega = optimal_omega(ds)
    poisson = Poisson(ds, 1.0, method="rbsor", omega=omega)
    res["sor_pympc"] = timed(poisson.advance, steps, reps)  # one iteration: a red and a black half-sweep
    hand = HandSOR(m, omega)
    res["sor_hand"] = timed(hand.sweep, steps, reps)
    res["sor_pympc_peak_extra_over_fields"] = traced_peak(poisson.advance, 2) / (
        2 * poisson.u.data.nbytes)
    res["sor_hand_peak_extra_over_fields"] = traced_peak(hand.sweep, 2) / (2 * hand.u.nbytes)
    ds.close()
    res["ratios"] = {
        "heat_over_roofline": res["heat_solver"]["Mcells"] / res["roofline_Mcells"],
        "sor_sweeps_pympc_over_hand": res["sor_hand"]["median"] / res["sor_pympc"]["median"],
    }
    if p:
        res["ratios"]["heat_over_petsc"] = res["heat_petsc"]["median"] / res["heat_solver"]["median"]
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)


if __name__ == "__main__":
    main()
