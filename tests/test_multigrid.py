"""Geometric multigrid: V(1,1) convergence per cycle (every cycle) and cycle counts independent of the
grid (2D 33^2..513^2, 3D 17^3..65^3), the same counts on every rank count as on one,
against scipy's direct solve, periodic (mean-zero) problems, W-cycles, MG-preconditioned
CG, multigrid through the one interface (``solvers.solve(op, b, method="mg")``), and
clear errors for sizes that do not coarsen."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from mpi4py import MPI

import pympc
import solvers
from oracle import mode_ramp_rhs, stencil_matrix
from solvers.krylov import StencilOperator, cg
from solvers.multigrid import Multigrid


def solve(comm, shape, **kw):
    with pympc.Decomposition(shape, comm=comm, spacing=1 / (shape[0] - 1)) as d:
        mg = Multigrid(d, **kw)
        r = mg.solve(mode_ramp_rhs(d), tol=1e-8)
        mg.close()
    return r


@pytest.mark.mpi
def test_v11_2d_reduction_per_cycle_and_grid_independent_counts(comm):
    counts = []
    for n in (33, 65, 129, 257, 513):
        r = solve(comm, (n, n))
        assert r.converged
        h = np.array(r.history)
        rates = h[1:] / h[:-1]
        # every cycle reduces the residual 2-norm by 10x or more (the first included)
        assert rates.max() <= 0.1, rates
        counts.append(r.iterations)
    assert max(counts) - min(counts) <= 2, counts
    with pympc.Decomposition((129, 129), comm=MPI.COMM_SELF, spacing=1 / 128) as ds:
        serial = Multigrid(ds).solve(mode_ramp_rhs(ds), tol=1e-8)
    assert abs(serial.iterations - counts[2]) <= 1


@pytest.mark.mpi
def test_v11_3d_grid_independent_counts(comm):
    counts = []
    for n in (17, 33, 65):
        r = solve(comm, (n, n, n))
        h = np.array(r.history)
        assert r.converged and (h[1:] / h[:-1]).max() <= 0.125, h[1:] / h[:-1]  # 0.09-0.115 measured
        counts.append(r.iterations)
    assert max(counts) - min(counts) <= 2, counts


@pytest.mark.mpi
def test_multigrid_equals_direct_solve_and_pcg(comm):
    n = 33
    h = 1 / (n - 1)
    with pympc.Decomposition((n, n), comm=comm, spacing=h) as d:
        f = mode_ramp_rhs(d)
        F = f.gather(root=None)
        mg = Multigrid(d)
        r = mg.solve(f, tol=1e-10)
        direct = spla.spsolve(stencil_matrix(n)[1], F[1:-1, 1:-1].ravel())
        u = r.x.gather(root=None)[1:-1, 1:-1].ravel()
        assert np.linalg.norm(u - direct) / np.linalg.norm(direct) < 1e-10 * 4 * n * n
        p = cg(StencilOperator(d), f, tol=1e-10, M=mg)
        assert p.converged and p.iterations <= 10
        with Multigrid(d, cycle="W") as mgw:
            w = mgw.solve(f, tol=1e-10)
        assert w.converged and w.iterations <= r.iterations
        mg.close()
    with pympc.Decomposition((n, n), comm=MPI.COMM_SELF, spacing=h) as ds, Multigrid(ds) as mgs:
        ps = cg(StencilOperator(ds), mode_ramp_rhs(ds), tol=1e-10, M=mgs)
    assert abs(ps.iterations - p.iterations) <= 1


@pytest.mark.mpi
def test_periodic_mean_zero_and_errors(comm):
    errs = []
    for n in (32, 64, 128):
        with pympc.Decomposition((n, n), comm=comm, spacing=1 / n, periodic=True) as d:
            f = pympc.DistArray.from_function(
                d, lambda x, y: 8 * np.pi ** 2 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y) + 5.0)
            with Multigrid(d) as mg:
                r = mg.solve(f, tol=1e-10)
            assert r.converged and abs(r.x.sum()) < 1e-8 * n * n
            x = np.arange(n) / n
            X, Y = np.meshgrid(x, x, indexing="ij")
            errs.append(np.abs(r.x.gather(root=None) - np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y)).max())
    assert (np.log2(np.array(errs[:-1]) / errs[1:]) > 1.9).all(), errs
    with pympc.Decomposition((34, 34), comm=comm) as d:
        with pytest.raises(pympc.InputError, match=r"m\*2\^k \+ 1"):
            Multigrid(d)
    with pympc.Decomposition((33, 33), comm=comm, centring="cell") as d:
        with pytest.raises(pympc.InputError, match="vertex"):
            Multigrid(d)


@pytest.mark.mpi
@pytest.mark.parametrize("periodic", [False, True])
def test_solve_method_mg_is_the_multigrid_object(comm, periodic):
    """``solvers.solve(op, b, method="mg", **options)`` gives bit for bit what
    ``Multigrid(decomp, **options).solve(b, ...)`` gives, x0 and maxiter included; a
    preconditioner or an operator other than the plain Laplacian is refused."""
    n = 32 if periodic else 33
    with pympc.Decomposition((n, n), comm=comm, spacing=1 / (n - 1), periodic=periodic) as d:
        f = mode_ramp_rhs(d)
        x0 = f.copy()
        x0.owned[...] *= 1e-2
        with Multigrid(d, cycle="W", nu=(2, 1)) as mg:
            ref = mg.solve(f, x0=x0, tol=1e-9, maxiter=3)
        r = solvers.solve(StencilOperator(d), f, "mg", x0=x0, tol=1e-9, maxiter=3, cycle="W", nu=(2, 1))
        assert (r.iterations, r.reason, r.history) == (ref.iterations, ref.reason, ref.history)
        assert r.iterations == 3 and r.reason == "iteration limit"
        assert np.array_equal(r.x.gather(root=None), ref.x.gather(root=None))
        with pytest.raises(pympc.InputError, match="preconditioner"):
            solvers.solve(StencilOperator(d), f, "mg", M=solvers.krylov.Jacobi(StencilOperator(d)))
        with pytest.raises(pympc.InputError, match="without velocity or shift"):
            solvers.solve(StencilOperator(d, shift=1.0), f, "mg")
        with pytest.raises(pympc.InputError, match="no option"):
            solvers.solve(StencilOperator(d), f, "mg", restart=3)
