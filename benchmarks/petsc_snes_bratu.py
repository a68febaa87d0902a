"""PETSc SNES half of the Bratu comparison (bench_newton.py): ``-lap u - lam e^u = 0`` on
the unit square, u = 0 on the boundary, n x n DMDA, in snes/tutorials/ex5's scaled form
(rows times hx hy; relative tolerances are unaffected by the scaling), ex5's initial
guess.

Two ways:

- :func:`snes_bratu`: petsc4py. Residual vectorised numpy on the DMDA's local (ghosted)
  array; Jacobian = the 5-point Laplacian assembled once (petsc_common.five_point) plus
  the diagonal ``-hx hy lam e^u`` added each Newton step (``Mat.copy`` +
  ``setDiagonal(ADD_VALUES)``, no ``setValues`` loop); SNES newtonls + bt, options per
  configuration (EW, CG or GMRES, PCMG Galerkin on the DMDA, ``-snes_mf_operator``).
- :func:`ex5`: the compiled tutorial (C residual and Jacobian), built from the PETSc
  mirror's ``src/snes/tutorials/ex5.c`` against the wheel's headers and library when a C
  compiler is there, run under its own ``mpiexec``; its ``SNESSolve`` time from
  ``-log_view``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import numpy as np
from mpi4py import MPI

from petsc_common import configure, dmda, five_point, interior, log_view_time, owned_rows, petsc

comm = MPI.COMM_WORLD
EX5_SRC = "/work/.mirror/petsc+petsc/repo"
EX5_DIR = "/tmp/pympc-bench-ex5"


def ex5_guess(n, lam, rows):
    """Local. ex5's initial guess on grid rows ``rows`` (a range), all columns:
    ``lam / (lam + 1) sqrt(min(min(i, n-1-i) h, min(j, n-1-j) h))``, 0 on the boundary."""
    h = 1.0 / (n - 1)
    i = np.arange(rows.start, rows.stop)[:, None]
    j = np.arange(n)[None, :]
    di = np.minimum(i, n - 1 - i) * h
    dj = np.minimum(j, n - 1 - j) * h
    return lam / (lam + 1.0) * np.sqrt(np.minimum(di, dj))


class _Bratu:
    """The residual and Jacobian callbacks on one DMDA (ex5's scaled rows)."""

    def __init__(self, da, lam):
        PETSc = petsc()
        self.da, self.lam = da, lam
        self.n = n = da.getSizes()[0]
        self.h = 1.0 / (n - 1)
        self.inner = interior(da)
        self.local = da.createLocalVec()
        ys, ye = owned_rows(da)
        (gxs, gxe), (gys, gye) = da.getGhostRanges()
        self.shape = (gye - gys, gxe - gxs)
        # rows above/below the owned block: ghosts where a neighbour owns them; the
        # padding rows beyond the physical boundary are only read for boundary rows
        self.pad = np.zeros((ye - ys + 2, n))
        self.top = 1 - (ys - gys)
        self.rows = ye - ys
        self.L = five_point(da, 1.0, 1.0, boundary_diag=4.0)  # hy/hx = hx/hy = 1
        self.d = da.createGlobalVec()
        self.add = PETSc.InsertMode.ADD_VALUES
        self.same = PETSc.Mat.Structure.SAME_NONZERO_PATTERN

    def residual(self, snes, X, F):
        self.da.globalToLocal(X, self.local)
        u = self.pad
        u[self.top:self.top + self.shape[0]] = self.local.getArray(readonly=True).reshape(self.shape)
        c = u[1:1 + self.rows]
        f = F.getArray().reshape(self.rows, self.n)
        f[...] = 4.0 * c  # boundary rows: 2 (hy/hx + hx/hy) (u - 0)
        s = slice(1, self.n - 1)
        f[:, s] = np.where(self.inner[:, s], 4.0 * c[:, s] - u[:-2, s] - u[2:, s] - c[:, :-2] - c[:, 2:]
                           - self.h * self.h * self.lam * np.exp(c[:, s]), f[:, s])

    def jacobian(self, snes, X, J, P):
        self.L.copy(P, self.same)
        x = X.getArray(readonly=True).reshape(self.rows, self.n)
        self.d.getArray()[...] = np.where(self.inner, -self.h * self.h * self.lam * np.exp(x), 0.0).ravel()
        P.setDiagonal(self.d, self.add)
        if J != P:
            J.assemble()


def snes_bratu(n, lam, rtol, options, reps=2):
    """Collective. Solve Bratu ``lam`` on n x n with SNES newtonls (bt) configured by
    ``options`` (dict, as petsc_common.configure), from ex5's guess to ``rtol`` relative
    to ||F(u0)||; a warm-up solve (the DMDA hierarchy, first PC set-up: reported as setup),
    then ``reps`` timed solves (min, median to the slowest rank); Newton and total linear
    iterations, the reason, ||u||."""
    PETSc = petsc()
    P = comm.Get_size()
    da = dmda(n, P)
    t0 = time.perf_counter()
    prob = _Bratu(da, lam)
    J = prob.L.duplicate(copy=True)
    F, X = da.createGlobalVec(), da.createGlobalVec()
    ys, ye = owned_rows(da)
    start = ex5_guess(n, lam, range(ys, ye)).ravel()
    snes = PETSc.SNES().create(comm=PETSc.COMM_WORLD)
    snes.setDM(da)
    snes.setFunction(prob.residual, F)
    snes.setJacobian(prob.jacobian, J, J)
    configure(snes, {"snes_type": "newtonls", "snes_linesearch_type": "bt", "snes_rtol": rtol,
                     "snes_atol": 0, "snes_stol": 0, "ksp_norm_type": "unpreconditioned", "ksp_atol": 0,
                     "ksp_max_it": 1000, **options})

    def run():
        X.getArray()[...] = start
        snes.solve(None, X)
        return snes.getIterationNumber(), snes.getLinearSolveIterations(), int(snes.getConvergedReason())

    run()
    setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    times = []
    for _ in range(reps):
        comm.Barrier()
        t = time.perf_counter()
        newton, linear, reason = run()
        times.append(comm.allreduce(time.perf_counter() - t, op=MPI.MAX))
    out = {"setup": setup, "min": min(times), "median": float(np.median(times)), "newton_iterations": newton,
           "linear_iterations": linear, "reason": reason, "norm": X.norm()}
    for obj in (snes, J, prob.L, prob.d, prob.local, F, X, da):
        obj.destroy()
    return out


def build_ex5():
    """Local. Path of the compiled ex5, built once into EX5_DIR from the PETSc mirror with
    mpicc against the petsc wheel; None (with why) when it cannot be built here."""
    exe = os.path.join(EX5_DIR, "ex5")
    if os.path.exists(exe):
        return exe, None
    cc = shutil.which("mpicc.mpich") or shutil.which("mpicc")
    if cc is None:
        return None, "no MPI C compiler"
    try:
        import petsc as petsc_pkg
        pdir = petsc_pkg.get_petsc_dir()
        src = subprocess.run(["git", "-C", EX5_SRC, "show", "HEAD:src/snes/tutorials/ex5.c"], capture_output=True,
                             text=True, timeout=60)
        if src.returncode != 0:
            return None, "no PETSc source mirror for ex5.c"
        os.makedirs(EX5_DIR, exist_ok=True)
        with open(os.path.join(EX5_DIR, "ex5.c"), "w") as f:
            f.write(src.stdout)
        r = subprocess.run([cc, "-O3", f"-I{pdir}/include", "ex5.c", "-o", "ex5", f"-L{pdir}/lib",
                            f"-Wl,-rpath,{pdir}/lib", "-lpetsc", "-lm"], cwd=EX5_DIR, capture_output=True,
                           text=True, timeout=300)
    except (ImportError, OSError, subprocess.SubprocessError) as e:
        return None, f"{type(e).__name__}: {e}"[:200]
    if r.returncode != 0:
        return None, ("compile failed: " + r.stderr)[:300]
    return exe, None


def ex5(n, lam, rtol, ranks, options, reps=2):
    """Local (call on one rank while the others wait without spinning). Run the compiled
    ex5 ``reps`` times at ``ranks`` ranks under a fresh mpiexec (the MPI environment of
    this job stripped), options as for :func:`snes_bratu`; the median SNESSolve time from
    ``-log_view`` (the whole run, DMDA and first set-up included, reported as wall)."""
    exe, why = build_ex5()
    if exe is None:
        return {"error": why}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "HYDI_", "MPIR_", "MPI_LOCAL"))}
    args = [shutil.which("mpiexec.mpich") or "mpiexec", "-n", str(ranks), exe, "-da_grid_x", str(n), "-da_grid_y",
            str(n), "-mms", "0", "-par", str(lam), "-snes_rtol", str(rtol), "-snes_atol", "0", "-snes_stol", "0",
            "-ksp_norm_type", "unpreconditioned", "-ksp_atol", "0", "-snes_converged_reason", "-ksp_converged_reason",
            "-log_view", "-da_processors_x", "1", "-da_processors_y", str(ranks)]
    for k, v in options.items():
        args += [f"-{k}"] + ([] if v is None else [str(v)])
    times, walls = [], []
    for _ in range(reps):
        t = time.perf_counter()
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
        walls.append(time.perf_counter() - t)
        if r.returncode != 0:
            return {"error": ("ex5 failed: " + r.stdout[-300:] + r.stderr[-300:])}
        times.append(log_view_time(r.stdout, "SNESSolve"))
    m = re.search(r"Nonlinear solve (\w+) due to (\w+) iterations (\d+)", r.stdout)
    linear = sum(int(x) for x in re.findall(r"Linear solve converged due to \w+ iterations (\d+)", r.stdout))
    return {"min": min(times), "median": float(np.median(times)), "wall": float(np.median(walls)),
            "newton_iterations": int(m.group(3)) if m else None, "reason": m.group(2) if m else None,
            "linear_iterations": linear}
