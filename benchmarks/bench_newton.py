"""Newton–Krylov on Bratu against PETSc SNES (issue 19).

``-lap u - lam e^u = 0`` (lam = 6) on SIZE^2 points of the unit square, u = 0 on the
boundary, from snes/tutorials/ex5's initial guess to ``||F|| <= 1e-8 ||F(u0)||`` (no step
or absolute test on either side). pympc: ``solvers.bratu.Bratu(d, lam).solve(tol, stol=0)``
(newton with the bt line search, Eisenstat–Walker, CG preconditioned by multigrid on the
exact Jacobian, kept across Newton steps with ``set_shift``). PETSc
(benchmarks/petsc_snes_bratu.py): SNES newtonls + bt + EW, CG or GMRES, PCMG on the DMDA
with Galerkin coarse operators (``-pc_mg_galerkin pmat``, re-done every Newton step): the
petsc4py version (numpy residual, Jacobian = assembled Laplacian + diagonal) and the
compiled ex5 when it builds here. Newton and total linear iterations reported. Times: the
median of REPS solves after a warm-up solve (pympc: kernels compiled, multigrid built;
petsc4py: DMDA hierarchy), to the slowest rank; ex5: its SNESSolve event (one solve per
run, the hierarchy built inside it).

    mpiexec -n 2 python benchmarks/bench_newton.py --sizes 513,1025
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI

import pympc
from common import emit, versions
from petsc_common import compare, mg_levels, petsc
from petsc_snes_bratu import ex5, snes_bratu
from solvers.bratu import Bratu

comm = MPI.COMM_WORLD


def pympc_solve(n, lam, tol, reps):
    """Collective. Bratu.solve on n x n: setup (the warm-up solve less a timed one),
    median solve, Newton and linear iterations, reason, ||u||."""
    d = pympc.Decomposition((n, n), dims=(comm.Get_size(), 1), spacing=1.0 / (n - 1))
    with Bratu(d, lam) as p:
        comm.Barrier()
        t0 = time.perf_counter()
        p.solve(tol=tol, stol=0.0)  # kernels compiled, multigrid built
        first = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        times = []
        for _ in range(reps):
            comm.Barrier()
            t0 = time.perf_counter()
            r = p.solve(tol=tol, stol=0.0)
            times.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
        (norm,) = pympc.reduce_all(("norm2", r.x))
    d.close()
    med = float(np.median(times))
    return {"setup": first - med, "min": min(times), "median": med, "newton_iterations": r.iterations,
            "linear_iterations": int(sum(r.linear_iterations)), "reason": r.reason, "residual": r.residual,
            "norm": float(norm)}


def petsc_configs(n):
    """Local. The SNES configurations compared (options; ex5 takes the same)."""
    mg = {"snes_ksp_ew": None, "pc_type": "mg", "pc_mg_levels": mg_levels(n), "pc_mg_galerkin": "pmat"}
    return {"cg": {**mg, "ksp_type": "cg"}, "gmres": {**mg, "ksp_type": "gmres"}}


def ex5_all(n, lam, tol, configs, reps):
    """Collective. The compiled ex5 per configuration, run by rank 0 while the other ranks
    wait without spinning (their cores free for ex5's ranks)."""
    out = None
    if comm.Get_rank() == 0:
        out = {name: ex5(n, lam, tol, comm.Get_size(), opts, reps=reps) for name, opts in configs.items()}
        req = comm.Ibarrier()
    else:
        req = comm.Ibarrier()
        while not req.Test():
            time.sleep(0.05)
    req.Wait()
    return comm.bcast(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="513,1025")
    ap.add_argument("--lam", type=float, default=6.0)
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--no-ex5", action="store_true", help="skip the compiled ex5")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    P = comm.Get_size()
    res = {"ranks": P, "lam": args.lam, "tol": args.tol, "reps": args.reps, "sizes": {}}
    for n in [int(s) for s in args.sizes.split(",") if s]:
        r = res["sizes"][str(n)] = {"pympc": pympc_solve(n, args.lam, args.tol, args.reps), "petsc": {}}
        if petsc() is None:
            continue
        configs = petsc_configs(n)
        for name, opts in configs.items():
            try:
                r["petsc"][f"petsc4py_{name}"] = snes_bratu(n, args.lam, args.tol, opts, reps=args.reps)
            except Exception as e:  # a configuration PETSc cannot run here
                r["petsc"][f"petsc4py_{name}"] = {"error": f"{type(e).__name__}: {e}"[:200]}
        if not args.no_ex5:
            for name, v in ex5_all(n, args.lam, args.tol, configs, args.reps).items():
                r["petsc"][f"ex5_{name}"] = v
        r["ratios"] = compare(r["pympc"], r["petsc"], ok=lambda v: v.get("reason") in (2, 3, "CONVERGED_FNORM_RELATIVE"))
    if petsc() is not None:
        res["petsc4py"] = __import__("petsc4py").__version__
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)


if __name__ == "__main__":
    main()
