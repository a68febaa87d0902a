"""Crank–Nicolson heat against PETSc TS (issue 19).

``u_t = lap u`` on SIZE^2 points of the unit square, homogeneous Dirichlet,
``u0 = sin(pi x) sin(pi y) + 0.25 sin(8 pi x) sin(5 pi y)``, STEPS steps of DT (default 100
steps of 1e-4: each about 400 explicit steps' worth on 1025^2), every linear solve CG to TOL
relative to its right-hand side in the unpreconditioned 2-norm. pympc:
``solvers.implicit.ImplicitHeat(d, scheme="cn", dt, tol)`` run for STEPS steps (multigrid-
preconditioned CG, warm-started from the extrapolated increment). PETSc: TSCN, linear
problem, SNES ksponly, KSP CG with PCMG on the DMDA (Galerkin coarse operators; 6 levels and
all levels), each with and without ``-ksp_reuse_preconditioner``, and PCGAMG (reused);
benchmarks/petsc_ts_heat.py. (``-ts_theta_initial_guess_extrapolate`` would not help PETSc:
its ksponly solve stops relative to the residual of its first guess.) Setup (solver construction / first steps) and the runs'
time apart; runs: median of REPS after a warm-up, to the slowest rank.

    mpiexec -n 2 python benchmarks/bench_implicit.py --size 1025 --steps 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI

import pympc
from common import emit, versions
from petsc_common import compare, mg_levels, petsc
from petsc_ts_heat import cn_heat, u0
from solvers.implicit import ImplicitHeat

comm = MPI.COMM_WORLD


def pympc_run(n, steps, dt, tol, reps):
    """Collective. ImplicitHeat CN: construction (setup, after a warm-up run that compiles
    the kernels) and the median time of ``steps`` steps from u0; CG iterations per step;
    the final field's 2-norm and max."""
    d = pympc.Decomposition((n, n), dims=(comm.Get_size(), 1), spacing=1.0 / (n - 1))

    def make():
        return ImplicitHeat(d, alpha=1.0, u0=u0, dt=dt, scheme="cn", tol=tol)

    make().run(steps=2, progress=None)  # kernels compiled, outside the timing
    setups, times = [], []
    for _ in range(reps):
        comm.Barrier()
        t0 = time.perf_counter()
        s = make()
        setups.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
        comm.Barrier()
        t0 = time.perf_counter()
        s.run(steps=steps, progress=None)
        times.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
    norm, umax = pympc.reduce_all(("norm2", s.u), ("max", s.u))
    out = {"setup": float(np.median(setups)), "min": min(times), "median": float(np.median(times)),
           "cg_iterations_per_step": s.stats["linear_iterations"] / s.stats["steps"], "steps": s.stats["steps"],
           "norm": float(norm), "max": float(umax)}
    for name in ("close",):
        if hasattr(s, name):
            getattr(s, name)()
    d.close()
    return out


def petsc_configs(n, gamg=True):
    """Local. The TS configurations compared (KSP/PC options)."""
    full = mg_levels(n)
    cfg = {}
    for levels in sorted({min(6, full), full}):
        mg = {"pc_type": "mg", "pc_mg_levels": levels, "pc_mg_galerkin": "pmat"}
        if levels == full:  # Galerkin products redone every step: one level count (run time)
            cfg[f"mg{levels}"] = mg
        cfg[f"mg{levels}_reuse"] = {**mg, "ksp_reuse_preconditioner": None}
    if gamg:
        cfg["gamg_reuse"] = {"pc_type": "gamg", "ksp_reuse_preconditioner": None}
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1025)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--dt", type=float, default=1e-4)
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--no-gamg", action="store_true", help="leave PCGAMG out (for completeness only)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    n, P = args.size, comm.Get_size()
    res = {"ranks": P, "size": n, "steps": args.steps, "dt": args.dt, "tol": args.tol, "reps": args.reps}
    res["pympc"] = pympc_run(n, args.steps, args.dt, args.tol, args.reps)
    res["petsc"] = {}
    if petsc() is not None:
        for name, opts in petsc_configs(n, not args.no_gamg).items():
            try:
                res["petsc"][name] = cn_heat(n, args.steps, args.dt, args.tol, opts, reps=args.reps)
            except Exception as e:  # a configuration PETSc cannot run here
                res["petsc"][name] = {"error": f"{type(e).__name__}: {e}"[:200]}
        res["petsc4py"] = __import__("petsc4py").__version__
        res["ratios"] = compare(res["pympc"], res["petsc"])
        ref = [v["norm"] for v in res["petsc"].values() if "norm" in v]
        if ref:  # the same problem: the final fields' norms agree to the solver tolerance
            res["final_norm_rel_diff"] = abs(res["pympc"]["norm"] - ref[0]) / ref[0]
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)


if __name__ == "__main__":
    main()
