"""Variable-coefficient multigrid-preconditioned CG against PETSc (issue 19).

``-div(k grad u) = b`` on SIZE^2 points of the unit square, homogeneous Dirichlet, ``k``
a checkerboard of 8 x 8 tiles with values 1 and CONTRAST (or ``--pattern layered``: 8
horizontal layers), faces by the arithmetic mean (DiffusionOperator's rule). pympc:
``Multigrid.from_operator(DiffusionOperator(d, k))`` (the Galerkin hierarchy) as CG's
preconditioner. PETSc: KSP CG on the same rows (DiffusionOperator.rows(), Dirichlet points
identity with b = 0 there) with PCGAMG (thresholds -1, 0.01, 0.05; one smoothing of the
aggregates) and PCMG (Galerkin coarse operators, DMDA interpolation). All to 1e-8 relative
to ||b|| in the unpreconditioned 2-norm from x0 = 0. Setup (multigrid hierarchy / PCSetUp)
and solve reported apart; solve: median of REPS runs after a warm-up, to the slowest rank.

    mpiexec -n 2 python benchmarks/bench_varmg.py --size 1025 --contrast 1e4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
from mpi4py import MPI

import pympc
from bench_krylov import best_of, petsc_setup
from common import emit, versions
from solvers.diffusion import DiffusionOperator
from solvers.krylov import cg
from solvers.multigrid import Multigrid

comm = MPI.COMM_WORLD


def coefficient(pattern, contrast, tiles=8):
    """Local. k(x, y) on the unit square: ``contrast`` on alternate tiles (checkerboard)
    or layers (layered along axis 0), 1 elsewhere."""
    def k(x, y):
        i = np.minimum((x * tiles).astype(int), tiles - 1)
        j = np.minimum((y * tiles).astype(int), tiles - 1)
        odd = (i + j) % 2 if pattern == "checkerboard" else i % 2
        return np.where(odd == 1, contrast, 1.0)
    return k


def point_rows(op):
    """Local. ``op.rows()`` (one row per owned unknown) spread over every owned point in
    C order, the rows of points that are not unknowns empty (bench_krylov.petsc_setup
    makes them identity)."""
    d = op.decomp
    rows = op.rows().tocsr()
    idx = np.meshgrid(*[np.arange(lo, hi) for lo, hi in zip(d.lo, d.hi)], indexing="ij")
    unknown = np.ones(idx[0].shape, dtype=bool)
    for a in range(d.ndim):
        if not d.periodic[a]:
            unknown &= (idx[a] > 0) & (idx[a] < d.shape[a] - 1)
    counts = np.zeros(unknown.size, dtype=np.int64)
    counts[unknown.ravel()] = np.diff(rows.indptr)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix((rows.data, rows.indices, indptr), shape=(unknown.size, rows.shape[1]))


class _Rows:
    """bench_krylov.petsc_setup's view of an operator: ``rows``, a CSR of owned points."""

    def __init__(self, rows):
        self.rows = rows


def pympc_solve(op, b, reps):
    """Collective. Setup of the multigrid (after one warm-up build, numba compiled) and
    the median MG-PCG solve."""
    Multigrid.from_operator(op).close()  # kernels compiled, outside the timing
    comm.Barrier()
    t0 = time.perf_counter()
    mg = Multigrid.from_operator(op)
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    t, r = best_of(lambda: cg(op, b, tol=1e-8, M=mg), reps)
    out = {**t, "setup": setup, "iterations": r.iterations, "reason": r.reason,
           "norm": float(pympc.reduce_all(("norm2", r.x))[0])}
    mg.close()
    return out


def petsc_configs(m, P):
    """Local. The PETSc configurations compared: name -> (options, needs the DMDA)."""
    from petsc_common import mg_levels

    cfg = {f"gamg_threshold_{t:g}": ({"pc_type": "gamg", "pc_gamg_threshold": t, "pc_gamg_agg_nsmooths": 1}, False)
           for t in (-1, 0.01, 0.05)}
    mg = {"pc_type": "mg", "pc_mg_levels": mg_levels(m), "pc_mg_galerkin": "both"}
    # PCMG's default smoother (Chebyshev + SOR); Richardson + symmetric SOR took one
    # iteration more here, and its objects crash petsc4py's clean-up at exit on 2 ranks
    cfg["mg_galerkin"] = (mg, True)
    return cfg


def petsc_solve(op, b, reps):
    """Collective. Every PETSc configuration on the operator's rows: setup (PCSetUp),
    median solve, iterations, ||x||; {} when petsc4py is missing."""
    import petsc_common as pc

    if pc.petsc() is None:
        return {}
    full = point_rows(op)
    PETSc, A, x, bb = petsc_setup(_Rows(full), b)
    m, P = op.decomp.shape[0], comm.Get_size()
    own = comm.allgather(full.shape[0] // m)
    out = {}
    for name, (opts, with_da) in petsc_configs(m, P).items():
        try:
            da = pc.dmda(m, P, ownership=own) if with_da else None
            comm.Barrier()
            t0 = time.perf_counter()
            ksp = pc.ksp(A, {"ksp_rtol": 1e-8, "ksp_max_it": 2000, **opts}, da)
            setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)

            def run():
                x.set(0.0)
                ksp.solve(bb, x)
                return ksp.getIterationNumber(), int(ksp.getConvergedReason())
            t, (its, reason) = best_of(run, reps)
            out[name] = {**t, "setup": setup, "iterations": its, "reason": reason, "norm": x.norm()}
            ksp.destroy()
            if da is not None:
                da.destroy()
        except Exception as e:  # a configuration PETSc cannot build here
            out[name] = {"error": f"{type(e).__name__}: {e}"[:200]}
    for obj in (A, x, bb):
        obj.destroy()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1025)
    ap.add_argument("--contrast", type=float, default=1e4)
    ap.add_argument("--pattern", choices=("checkerboard", "layered"), default="checkerboard")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-petsc", action="store_true", help="the pympc half only")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    P, m = comm.Get_size(), args.size
    res = {"ranks": P, "size": m, "contrast": args.contrast, "pattern": args.pattern, "reps": args.reps}
    d = pympc.Decomposition((m, m), dims=(P, 1), spacing=1.0 / (m - 1))
    k = pympc.DistArray.from_function(d, coefficient(args.pattern, args.contrast))
    op = DiffusionOperator(d, k)
    b = op.restrict(pympc.DistArray.from_function(d, lambda x, y: np.sin(3 * x) + y))
    res["pympc"] = pympc_solve(op, b, args.reps)
    petsc = {} if args.no_petsc else petsc_solve(op, b, args.reps)
    res["petsc"] = petsc
    if petsc:
        res["petsc4py"] = __import__("petsc4py").__version__
    if petsc:
        from petsc_common import compare
        res["ratios"] = compare(res["pympc"], petsc, ok=lambda v: v["reason"] > 0)
    res["versions"] = versions()
    d.close()
    if comm.Get_rank() == 0:
        emit(res, args.json)


if __name__ == "__main__":
    main()
