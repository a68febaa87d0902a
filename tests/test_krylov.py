"""Krylov methods against scipy's direct solve of the gathered problem, for SPD (CG) and
nonsymmetric (convection-diffusion: BiCGStab, GMRES) matrix-free operators; the same
iteration counts on every rank count (up to one, from round-off); stopping reasons."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from mpi4py import MPI

import pympc
from solvers.krylov import Jacobi, StencilOperator, bicgstab, cg, gmres

N = 21
VEL = (20.0, -10.0)


def gathered(n, velocity=None, periodic=False):
    h = 1.0 / (n - 1)
    m = n - 2
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    eye = sp.eye(m)
    A = (sp.kron(T, eye) + sp.kron(eye, T)) / h ** 2
    if velocity is not None:
        D = sp.diags([-1.0, 0.0, 1.0], [-1, 0, 1], shape=(m, m)) / (2 * h)
        A = A + velocity[0] * sp.kron(D, eye) + velocity[1] * sp.kron(eye, D)
    return h, A.tocsc()


METHODS = [
    ("cg", None, lambda op, b, **k: cg(op, b, **k)),
    ("cg-single", None, lambda op, b, **k: cg(op, b, variant="single", **k)),
    ("pcg-jacobi", None, lambda op, b, **k: cg(op, b, M=Jacobi(op), **k)),
    ("bicgstab", VEL, lambda op, b, **k: bicgstab(op, b, **k)),
    ("bicgstab-jacobi", VEL, lambda op, b, **k: bicgstab(op, b, M=Jacobi(op), **k)),
    ("gmres", VEL, lambda op, b, **k: gmres(op, b, restart=20, **k)),
]


@pytest.mark.mpi
@pytest.mark.parametrize("name,velocity,method", METHODS, ids=[m[0] for m in METHODS])
def test_krylov_equals_scipy_and_serial_iteration_counts(comm, name, velocity, method):
    h, A = gathered(N, velocity)
    B = np.random.default_rng(3).random((N, N))
    tol = 1e-10
    direct = spla.spsolve(A, B[1:-1, 1:-1].ravel()).reshape(N - 2, N - 2)
    with pympc.Decomposition((N, N), comm=comm, spacing=h) as d:
        b = pympc.DistArray.from_global(d, B if comm.Get_rank() == 0 else None)
        r = method(StencilOperator(d, velocity=velocity), b, tol=tol)
        assert r.converged, r.reason
        assert r.residual < 10 * tol and r.history[-1] < tol
        u = r.x.gather(root=None)[1:-1, 1:-1]
        cond = np.linalg.cond(A.toarray())
        assert np.linalg.norm(u - direct) / np.linalg.norm(direct) < cond * tol
    with pympc.Decomposition((N, N), comm=MPI.COMM_SELF, spacing=h) as ds:  # the serial run
        rs = method(StencilOperator(ds, velocity=velocity), pympc.DistArray.from_global(ds, B), tol=tol)
    assert abs(rs.iterations - r.iterations) <= 1, (rs.iterations, r.iterations)


@pytest.mark.mpi
def test_reasons_and_reductions(comm):
    h, _ = gathered(N)
    with pympc.Decomposition((N, N), comm=comm, spacing=h) as d:
        b = pympc.DistArray(d).fill(1.0)
        assert cg(StencilOperator(d, shift=-1e5), b).reason == "indefinite"
        r = gmres(StencilOperator(d, velocity=VEL), b, tol=1e-14, maxiter=7)
        assert r.reason == "iteration limit" and r.iterations == 7
        r = cg(StencilOperator(d), b, tol=1e-14, maxiter=5)
        assert r.reason == "iteration limit" and len(r.history) == 6
        # periodic + shift: SPD and well posed
        with pympc.Decomposition((16, 16), comm=comm, spacing=1 / 16, periodic=True) as dp:
            rp = cg(StencilOperator(dp, shift=1.0), pympc.DistArray(dp).fill(2.0), tol=1e-12)
            assert rp.converged and np.allclose(rp.x.owned, 2.0)
        with pytest.raises(pympc.InputError):
            cg(StencilOperator(d), b, variant="three")
