"""PETSc TS half of the Crank–Nicolson heat comparison (bench_implicit.py): ``u_t = alpha
lap u`` on the unit square, homogeneous Dirichlet, on an n x n DMDA, TSCN with a linear
right-hand side (``TSComputeRHSFunctionLinear`` / ``TSComputeRHSJacobianConstant``), KSP CG
with the unpreconditioned 2-norm to ``tol`` relative to the right-hand side (the SNES is
ksponly, its initial guess the last step), PCMG on the DMDA (Galerkin coarse operators) or
PCGAMG.

Each configuration: one warm-up run of ``warmup`` steps (PCMG hierarchy, first PC set-up;
reported as setup), then ``reps`` runs of ``steps`` steps from the same initial field, each
timed from a barrier to the slowest rank; the median is the solve time.
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from petsc_common import configure, coordinates, dmda, five_point, petsc

comm = MPI.COMM_WORLD


def initial(da):
    """Local. The initial field on the owned points: the benchmark's u0 (both sides)."""
    a, b = coordinates(da)
    return u0(a, b)


def u0(a, b):
    """Local. ``sin(pi a) sin(pi b) + 0.25 sin(8 pi a) sin(5 pi b)`` (0 on the boundary)."""
    return np.sin(np.pi * a) * np.sin(np.pi * b) + 0.25 * np.sin(8 * np.pi * a) * np.sin(5 * np.pi * b)


def cn_heat(n, steps, dt, tol, options, alpha=1.0, reps=2, warmup=2):
    """Collective. Time ``steps`` TSCN steps of size ``dt`` with the ``options`` (dict, as
    petsc_common.configure: ``ts_*`` ones for the TS, the others for its KSP); returns setup, min/median seconds, KSP iterations
    per step and the final field's 2-norm and max (to check both sides agree)."""
    PETSc = petsc()
    P = comm.Get_size()
    da = dmda(n, P)
    h = 1.0 / (n - 1)
    # RHS Jacobian = alpha lap (boundary rows 0: u_t = 0 keeps the Dirichlet value)
    A = five_point(da, -alpha / h**2, -alpha / h**2, boundary_diag=0.0)
    u = da.createGlobalVec()
    start = initial(da).ravel()
    t0 = time.perf_counter()
    ts = PETSc.TS().create(comm=PETSc.COMM_WORLD)
    ts.setDM(da)
    ts.setProblemType(PETSc.TS.ProblemType.LINEAR)
    ts.setType(PETSc.TS.Type.CN)
    ts.setRHSFunction(PETSc.TS.computeRHSFunctionLinear)
    ts.setRHSJacobian(PETSc.TS.computeRHSJacobianConstant, A, A)
    ts.setTimeStep(dt)
    ts.setExactFinalTime(PETSc.TS.ExactFinalTime.MATCHSTEP)
    configure(ts, {"ts_adapt_type": "none", **{k: v for k, v in options.items() if k.startswith("ts_")}})
    snes = ts.getSNES()
    snes.setType("ksponly")
    configure(snes.getKSP(), {"ksp_type": "cg", "ksp_norm_type": "unpreconditioned", "ksp_rtol": tol,
                              "ksp_atol": 0, "ksp_max_it": 1000,
                              **{k: v for k, v in options.items() if not k.startswith("ts_")}})

    def run(k):
        u.getArray()[...] = start
        ts.setTime(0.0)
        ts.setStepNumber(0)
        ts.setTimeStep(dt)
        ts.setMaxSteps(k)
        ts.setMaxTime(1e30)
        its0 = ts.getKSPIterations()
        ts.solve(u)
        if ts.getConvergedReason() < 0:
            raise RuntimeError(f"TS diverged: {ts.getConvergedReason()}")
        return ts.getKSPIterations() - its0

    run(warmup)
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    times = []
    for _ in range(reps):
        comm.Barrier()
        t = time.perf_counter()
        its = run(steps)
        times.append(comm.allreduce(time.perf_counter() - t, op=MPI.MAX))
    norm, umax = u.norm(), u.max()[1]
    for obj in (ts, A, u, da):
        obj.destroy()
    return {"setup": setup, "min": min(times), "median": float(np.median(times)),
            "ksp_iterations_per_step": its / steps, "norm": norm, "max": umax}
