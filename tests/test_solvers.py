"""Solvers I verified against mathematics and serial numpy: heat and wave orders of
accuracy, bit-identical heat on every rank count, leapfrog energy, Poisson by Jacobi and
RB-SOR against manufactured solutions and scipy's direct solve."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import pympc
from oracle import ftcs, pad
from solvers.heat import Heat
from solvers.poisson import Poisson, optimal_omega
from solvers.wave import Wave


def grid(n, periodic=False):
    h = 1.0 / (n if periodic else n - 1)
    x = np.arange(n) * h
    return h, np.meshgrid(x, x, indexing="ij")


def order(errors):
    e = np.array(errors)
    return np.log2(e[:-1] / e[1:])


@pytest.mark.mpi
def test_heat_sine_mode_second_order(comm):
    errs = []
    for n in (17, 33, 65):
        h, (x, y) = grid(n)
        with pympc.Decomposition((n, n), comm=comm, spacing=h) as d:
            s = Heat(d, alpha=0.5, u0=lambda x, y: np.sin(np.pi * x) * np.sin(np.pi * y))
            s.run(t_end=0.01, progress=None)
            assert s.t == pytest.approx(0.01)
            exact = np.sin(np.pi * x) * np.sin(np.pi * y) * np.exp(-2 * np.pi ** 2 * 0.5 * 0.01)
            errs.append(np.abs(s.u.gather(root=None) - exact).max())
    assert (order(errs) >= 1.9).all(), errs


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic,bc", [
    ((19, 14), (False, False), {"x-": ("dirichlet", 1.0), "y+": ("neumann", 0.0)}),
    ((16, 13), (True, False), {"y-": ("neumann", 0.0), "y+": ("dirichlet", -0.5)}),
    ((9, 8, 7), (False, True, False), None),
    ((30,), (False,), {"x+": ("neumann", 0.0)})])
def test_heat_is_bit_identical_to_serial_numpy_on_every_rank_count(comm, shape, periodic, bc):
    """The numpy oracle: the same step on the global array (pad by the boundary
    conditions, FTCS, Dirichlet boundary points held)."""
    rng = np.random.default_rng(1)
    u0 = rng.random(shape)
    h = [1.0 / (n - 1) for n in shape]
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, spacing=h) as d:
        s = Heat(d, alpha=1.0, u0=pympc.DistArray.from_global(d, u0 if comm.Get_rank() == 0 else None), bc=bc)
        s.run(steps=12, progress=None)
        got = s.u.gather(root=None)
        r = [s.dt / hh ** 2 for hh in h]
        spec = s.bc.conditions
    u = u0.copy()
    names = {}
    for (a, side), (kind, v) in spec.items():
        names[(a, side)] = (kind, v)

    def hold(x):
        for (a, side), (kind, v) in names.items():
            if kind == "dirichlet":
                idx = [slice(None)] * len(shape)
                idx[a] = 0 if side < 0 else -1
                x[tuple(idx)] = v
        return x
    u = hold(u)
    for _ in range(12):
        p = u
        for a in range(len(shape)):  # axis by axis, as pympc.bc fills them
            width = [(0, 0)] * len(shape)
            width[a] = (1, 1)
            if periodic[a]:
                p = np.pad(p, width, mode="wrap")
                continue
            lo, hi = names[(a, -1)], names[(a, 1)]
            lo_p = np.pad(p, width, mode="reflect" if lo[0] == "neumann" else "constant",
                          **({} if lo[0] == "neumann" else {"constant_values": lo[1]}))
            hi_p = np.pad(p, width, mode="reflect" if hi[0] == "neumann" else "constant",
                          **({} if hi[0] == "neumann" else {"constant_values": hi[1]}))
            sl_lo = [slice(None)] * len(shape)
            sl_lo[a] = slice(0, 1)
            p = hi_p
            p[tuple(sl_lo)] = lo_p[tuple(sl_lo)]
        u = hold(ftcs(p, r, 1))
    np.testing.assert_array_equal(got, u)


@pytest.mark.mpi
def test_heat_variable_coefficient_and_errors(comm):
    n = 21
    h, (x, y) = grid(n)
    with pympc.Decomposition((n, n), comm=comm, spacing=h) as d:
        k = pympc.DistArray.from_function(d, lambda x, y: 0.7 + 0 * x * y, coords=True)
        init = lambda x, y: np.sin(np.pi * x) * np.sin(2 * np.pi * y)  # noqa: E731
        a = Heat(d, alpha=k, u0=init, dt=1e-4)
        b = Heat(d, alpha=0.7, u0=init, dt=1e-4)
        a.run(steps=30, progress=None)
        b.run(steps=30, progress=None)
        np.testing.assert_allclose(a.u.gather(root=None), b.u.gather(root=None), rtol=0, atol=1e-13)
        # a coefficient that varies: compare with the flux-form formula in numpy
        kv = pympc.DistArray.from_function(d, lambda x, y: 1.0 + 0.5 * x + 0.25 * y * y, coords=True)
        c = Heat(d, alpha=kv, u0=init, dt=5e-5)
        c.run(steps=1, progress=None)
        K = 1.0 + 0.5 * x + 0.25 * y * y
        U = init(x, y)
        new = U.copy()
        s = 5e-5 / h ** 2
        kx = 0.5 * (K[1:] + K[:-1])
        ky = 0.5 * (K[:, 1:] + K[:, :-1])
        fx = np.zeros_like(U)
        fy = np.zeros_like(U)
        fx[1:-1] = kx[1:] * (U[2:] - U[1:-1]) - kx[:-1] * (U[1:-1] - U[:-2])
        fy[:, 1:-1] = ky[:, 1:] * (U[:, 2:] - U[:, 1:-1]) - ky[:, :-1] * (U[:, 1:-1] - U[:, :-2])
        new[1:-1, 1:-1] = U[1:-1, 1:-1] + s * (fx + fy)[1:-1, 1:-1]
        new[0], new[-1], new[:, 0], new[:, -1] = 0, 0, 0, 0
        np.testing.assert_allclose(c.u.gather(root=None), new, rtol=0, atol=1e-12)
        with pytest.raises(pympc.InputError, match="stability limit"):
            Heat(d, alpha=1.0, dt=1.0)
        with pytest.raises(pympc.InputError, match="periodic axis|unknown side"):
            Heat(d, bc={"w+": ("dirichlet", 0)})
        with pytest.raises(pympc.InputError, match="positive"):
            Heat(d, alpha=-1.0)


@pytest.mark.mpi
def test_wave_second_order_and_energy(comm):
    errs = []
    for n in (16, 32, 64):
        h, (x, y) = grid(n, periodic=True)
        exact = lambda x, y, t: np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y) * np.cos(2 * np.pi * np.sqrt(2) * t)  # noqa: E731,E501
        with pympc.Decomposition((n, n), comm=comm, spacing=h, periodic=True) as d:
            w = Wave(d, c=1.0, u0=lambda x, y: exact(x, y, 0.0), cfl=0.5)
            w.run(t_end=0.1, progress=None)
            errs.append(np.abs(w.u.gather(root=None) - exact(x, y, 0.1)).max())
    assert (order(errs) >= 1.9).all(), errs
    # discrete energy over 1000 steps at CFL 0.5, periodic: conserved to round-off
    n = 16
    h, _ = grid(n, periodic=True)
    with pympc.Decomposition((n, n), comm=comm, spacing=h, periodic=True) as d:
        w = Wave(d, u0=lambda x, y: np.exp(-40 * ((x - 0.5) ** 2 + (y - 0.4) ** 2)),
                 v0=lambda x, y: np.sin(2 * np.pi * x), cfl=0.5)
        w.run(steps=1, progress=None)
        e0 = w.energy()
        w.run(steps=1001, progress=None)
        assert abs(w.energy() - e0) / e0 < 1e-6


def model_problem(n, periodic=False):
    h, (x, y) = grid(n, periodic)
    if periodic:
        exact = np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y)
        return h, exact, 8 * np.pi ** 2 * exact
    exact = np.sin(np.pi * x) * np.sin(2 * np.pi * y)
    return h, exact, 5 * np.pi ** 2 * exact


@pytest.mark.mpi
@pytest.mark.parametrize("method", ["jacobi", "rbsor"])
def test_poisson_manufactured_solution_second_order(comm, method):
    errs, its = [], []
    for n in ((9, 17, 33) if method == "jacobi" else (17, 33, 65)):
        h, exact, f = model_problem(n)
        with pympc.Decomposition((n, n), comm=comm, spacing=h) as d:
            p = Poisson(d, pympc.DistArray.from_global(d, f if comm.Get_rank() == 0 else None))
            r = p.solve(method, tol=1e-10 if method == "rbsor" else 1e-8, check_every=10)
            assert r.converged, r.reason
            its.append(r.iterations)
            errs.append(np.abs(r.u.gather(root=None) - exact).max())
    assert (order(errs) >= 1.9).all(), errs
    if method == "rbsor":  # iterations grow like N, not N^2
        growth = np.log2(np.array(its[1:]) / np.array(its[:-1]))
        assert (growth < 1.3).all(), its


@pytest.mark.mpi
def test_poisson_equals_scipy_direct_solve(comm):
    n = 21
    h, _, _ = model_problem(n)
    rng = np.random.default_rng(9)
    f = rng.random((n, n))
    g_left = 0.3
    with pympc.Decomposition((n, n), comm=comm, spacing=h) as d:
        p = Poisson(d, pympc.DistArray.from_global(d, f if comm.Get_rank() == 0 else None),
                    bc={"x-": ("dirichlet", g_left)})
        tol = 1e-10
        r = p.solve("rbsor", tol=tol)
        u = r.u.gather(root=None)
    # the gathered problem: interior unknowns, Dirichlet values moved to the right side
    m = n - 2
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    A = (sp.kron(T, sp.eye(m)) + sp.kron(sp.eye(m), T)) / h ** 2
    b = f[1:-1, 1:-1].copy()
    b[0, :] += g_left / h ** 2
    direct = spla.spsolve(A.tocsc(), b.ravel()).reshape(m, m)
    # within the stopping tolerance, amplified by at most the condition number
    cond = 4 * (m + 1) ** 2 / np.pi ** 2
    assert np.linalg.norm(u[1:-1, 1:-1] - direct) / np.linalg.norm(direct) < cond * tol
    assert (u[0, 1:-1] == g_left).all()  # corners belong to the y sides too (set later)


@pytest.mark.mpi
def test_poisson_periodic_singular_and_reasons(comm):
    errs = []
    for n in (16, 32, 64):
        h, exact, f = model_problem(n, periodic=True)
        with pympc.Decomposition((n, n), comm=comm, spacing=h, periodic=True) as d:
            shifted = f + 3.0  # an incompatible mean: removed
            p = Poisson(d, pympc.DistArray.from_global(d, shifted if comm.Get_rank() == 0 else None))
            r = p.solve("rbsor", tol=1e-10, check_every=5)
            assert r.converged
            assert abs(r.u.sum()) < 1e-9 * n * n  # the zero-mean solution
            errs.append(np.abs(r.u.gather(root=None) - exact).max())
    assert (order(errs) >= 1.9).all(), errs
    with pympc.Decomposition((17, 17), comm=comm, spacing=1 / 16) as d:
        r = Poisson(d, 1.0).solve("jacobi", tol=1e-12, maxiter=7)
        assert r.reason == "iteration limit" and r.iterations == 7 and len(r.history) == 8
        r = Poisson(d, 1.0, u0=np.nan).solve("rbsor", tol=1e-8)
        assert r.reason == "diverged"
        with pytest.raises(pympc.InputError, match="omega"):
            Poisson(d, 1.0).solve("rbsor", omega=2.5)
        assert 1.0 < optimal_omega(d) < 2.0


@pytest.mark.mpi
def test_poisson_output_checkpoint_and_restart(comm, shared_tmp_path):
    import h5py

    n = 17
    h, exact, f = model_problem(n)
    with pympc.Decomposition((n, n), comm=comm, spacing=h) as d:
        full = Poisson(d, pympc.DistArray.from_global(d, f if comm.Get_rank() == 0 else None))
        ref = full.solve("rbsor", tol=1e-10, check_every=4)
        part = Poisson(d, pympc.DistArray.from_global(d, f if comm.Get_rank() == 0 else None))
        ck = str(shared_tmp_path / "ck")
        r1 = part.solve("rbsor", tol=1e-10, check_every=4, maxiter=12, checkpoint=ck, checkpoint_every=4)
        assert r1.reason == "iteration limit"
        again = Poisson(d, pympc.DistArray.from_global(d, f if comm.Get_rank() == 0 else None))
        r2 = again.solve("rbsor", tol=1e-10, check_every=4, checkpoint=ck, restart=True,
                         output=str(shared_tmp_path / "p.h5"))
        assert r2.iterations == ref.iterations and r2.history == ref.history
        np.testing.assert_array_equal(r2.u.gather(root=None), ref.u.gather(root=None))
    if comm.Get_rank() == 0:
        with h5py.File(shared_tmp_path / "p.h5") as fh:
            (step,) = list(fh["steps"])
            assert int(step) == ref.iterations and set(fh["steps"][step]) == {"u", "f"}
    comm.Barrier()
