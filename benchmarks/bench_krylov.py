"""Krylov and multigrid benchmark against PETSc (petsc4py) on the same problem, and pyamg.

1. CG without preconditioner on the 2D 5-point Laplacian (SIZE^2 points, homogeneous
   Dirichlet), ITERS iterations, the residual norm checked every iteration: pympc on the
   assembled matrix (and the matrix-free operator beside it) against PETSc KSP CG on the
   same AIJ rows (same row split: contiguous row slabs), time per iteration.
2. Multigrid-preconditioned CG to 1e-8 on MG_SIZE^2 (m 2^k + 1 points): pympc's
   geometric multigrid against PETSc CG + PCGAMG and CG + PCMG (Galerkin, DMDA
   interpolation), and pyamg (smoothed aggregation, CG) serially at 1 rank.

tracemalloc peaks beside each pympc figure.

    mpiexec -n 2 python benchmarks/bench_krylov.py --size 1024 --iters 200 --mg-size 1025
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI

import pympc
from bench_decomp import traced_peak
from common import emit, versions
from solvers.krylov import StencilOperator, cg, cg_single
from solvers.multigrid import Multigrid
from solvers.sparse import SparseOperator

comm = MPI.COMM_WORLD


def best_of(fn, reps):
    """Collective. (min, median) seconds of ``fn`` over ``reps`` runs after one warm-up
    (kernels compiled, caches built), to the slowest rank."""
    fn()
    ts = []
    for _ in range(reps):
        comm.Barrier()
        t0 = time.perf_counter()
        out = fn()
        ts.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
    return {"min": min(ts), "median": float(np.median(ts))}, out


def petsc_setup(op, b):
    try:
        from petsc4py import PETSc
    except ImportError:
        return None
    rows = op.rows.tocsr()
    nloc, N = rows.shape
    A = PETSc.Mat().createAIJ(size=((nloc, N), (nloc, N)), csr=(rows.indptr.astype(PETSc.IntType),
                              rows.indices.astype(PETSc.IntType), rows.data), comm=PETSc.COMM_WORLD)
    # empty (Dirichlet) rows: identity, with b = 0 there the Krylov spaces are the same
    diag = np.diff(rows.indptr) == 0
    A.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
    lo, _ = A.getOwnershipRange()
    for k in np.flatnonzero(diag):
        A.setValue(lo + int(k), lo + int(k), 1.0)
    A.assemble()
    x, bb = A.createVecs()
    bb.getArray()[...] = np.ascontiguousarray(b.owned).ravel()
    return PETSc, A, x, bb


def petsc_ksp(PETSc, A, x, b, pc_type, rtol, max_it, da=None):
    ksp = PETSc.KSP().create(comm=PETSc.COMM_WORLD)
    ksp.setOperators(A)
    ksp.setType("cg")
    ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
    ksp.setTolerances(rtol=rtol, atol=0.0, max_it=max_it)
    pc = ksp.getPC()
    pc.setType(pc_type)
    if pc_type == "mg":
        ksp.setDM(da)
        ksp.setDMActive(PETSc.KSP.DMActive.ALL, False)
        opts = PETSc.Options()
        opts["pc_mg_levels"] = 6
        opts["pc_mg_galerkin"] = "both"
        ksp.setFromOptions()
    ksp.setUp()

    def run():
        x.set(0.0)
        ksp.solve(b, x)
        return ksp.getIterationNumber()
    return ksp, run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--mg-size", type=int, default=1025)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    P, n, iters, reps = comm.Get_size(), args.size, args.iters, args.reps
    res = {"ranks": P, "size": n, "iters": iters, "mg_size": args.mg_size, "reps": reps}

    # 1. CG, no preconditioner, fixed iterations, norm every iteration
    d = pympc.Decomposition((n, n), dims=(P, 1), spacing=1.0 / (n - 1))
    A = SparseOperator.laplacian(d)
    mf = StencilOperator(d)
    b = A.restrict(pympc.DistArray.from_function(d, lambda x, y: np.sin(3 * x) + y))
    t, r = best_of(lambda: cg(A, b, tol=1e-300, maxiter=iters), reps)
    res["cg_assembled_per_iter"] = {k: v / r.iterations for k, v in t.items()}
    t, r2 = best_of(lambda: cg(mf, b, tol=1e-300, maxiter=iters), reps)
    res["cg_matrix_free_per_iter"] = {k: v / r2.iterations for k, v in t.items()}
    t, r3 = best_of(lambda: cg_single(A, b, tol=1e-300, maxiter=iters), reps)
    res["cg_single_per_iter"] = {k: v / r3.iterations for k, v in t.items()}
    vec = b.data.nbytes
    res["cg_peak_extra_over_vector"] = traced_peak(lambda: cg(A, b, tol=1e-300, maxiter=5), 1) / vec
    res["operator_bytes"] = comm.allreduce(A.A.data.nbytes + A.A.indices.nbytes + A.A.indptr.nbytes)
    ps = petsc_setup(A, b)
    if ps:
        PETSc, M, x, bb = ps
        ksp, run = petsc_ksp(PETSc, M, x, bb, "none", 1e-300, iters)
        t, its = best_of(run, reps)
        res["cg_petsc_per_iter"] = {k: v / its for k, v in t.items()}
        res["petsc_iterations"] = its
        res["petsc4py"] = __import__("petsc4py").__version__
    d.close()

    # 2. MG-preconditioned CG to 1e-8
    m = args.mg_size
    dm = pympc.Decomposition((m, m), dims=(P, 1), spacing=1.0 / (m - 1))
    Am = SparseOperator.laplacian(dm)
    bm = Am.restrict(pympc.DistArray.from_function(dm, lambda x, y: np.sin(3 * x) + y))
    t0 = time.perf_counter()
    mg = Multigrid(dm)
    res["mg_setup"] = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    t, r = best_of(lambda: cg(Am, bm, tol=1e-8, M=mg), reps)
    res["mgcg_pympc"] = {**t, "iterations": r.iterations}
    fields = bm.data.nbytes
    res["mgcg_peak_extra_over_field"] = traced_peak(lambda: cg(Am, bm, tol=1e-8, M=mg), 1) / fields
    levels = mg.levels + mg.serial
    res["mg_hierarchy_over_fine"] = comm.allreduce(sum(3 * lv.u.data.nbytes for lv in levels[1:])) / \
        comm.allreduce(3 * levels[0].u.data.nbytes)
    ps = petsc_setup(Am, bm)
    if ps:
        PETSc, M, x, bb = ps
        for pc in ("gamg", "mg"):
            try:
                da = None
                if pc == "mg":
                    da = PETSc.DMDA().create([m, m], stencil_width=1, comm=PETSc.COMM_WORLD,
                                             proc_sizes=(1, P))
                t0 = time.perf_counter()
                ksp, run = petsc_ksp(PETSc, M, x, bb, pc, 1e-8, 1000, da)
                setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
                t, its = best_of(run, reps)
                res[f"mgcg_petsc_{pc}"] = {**t, "iterations": its, "setup": setup}
            except Exception as e:  # a PETSc configuration we cannot build here
                res[f"mgcg_petsc_{pc}"] = {"error": f"{type(e).__name__}: {e}"[:200]}
    if P == 1:
        try:
            import pyamg
            import scipy.sparse as sp

            rows = Am.rows.tocsr()
            ident = sp.diags((np.diff(rows.indptr) == 0).astype(float))
            S = (rows + ident).tocsr()
            bs = np.ascontiguousarray(bm.owned).ravel()
            t0 = time.perf_counter()
            ml = pyamg.smoothed_aggregation_solver(S)
            setup = time.perf_counter() - t0
            def run_pyamg():
                resid = []
                ml.solve(bs, tol=1e-8, accel="cg", residuals=resid)
                return resid
            t, out = best_of(run_pyamg, reps)
            res["mgcg_pyamg"] = {**t, "iterations": len(out) - 1, "setup": setup}
        except ImportError:
            res["mgcg_pyamg"] = {"error": "pyamg not installed"}
    mg.close()
    dm.close()
    ratios = {"cg_pympc_over_petsc_time": None}
    if "cg_petsc_per_iter" in res:
        ratios["cg_pympc_over_petsc_time"] = res["cg_assembled_per_iter"]["median"] / res["cg_petsc_per_iter"]["median"]
        ratios["cg_matrix_free_over_petsc_time"] = res["cg_matrix_free_per_iter"]["median"] / \
            res["cg_petsc_per_iter"]["median"]
    best = [v["median"] for k, v in res.items() if k.startswith("mgcg_") and isinstance(v, dict) and
            "median" in v and k != "mgcg_pympc"]
    if best:
        ratios["mgcg_pympc_over_best_time"] = res["mgcg_pympc"]["median"] / min(best)
    res["ratios"] = ratios
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)


if __name__ == "__main__":
    main()
