"""Every linear solver through the one interface (``solvers.solve``) against a serial
oracle (scipy's direct solve, or numpy's of the matrix the serial operator formula gives)
on uneven splits, periodic and not: SPD (CG, single-reduction CG, multigrid) and
nonsymmetric (convection-diffusion: BiCGStab, GMRES) matrix-free operators; the same
iteration counts on every rank count (up to one, from round-off); stopping reasons; the
old spellings gone."""

import functools

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from mpi4py import MPI

import pympc
import solvers
from oracle import stencil_matrix
from solvers.krylov import Jacobi, StencilOperator, bicgstab, cg, cg_single, gmres

N = 21
VEL = (20.0, -10.0)


def jacobi(op):
    return Jacobi(op)


# (id, velocity, method, preconditioner factory, options)
METHODS = [
    ("cg", None, "cg", None, {}),
    ("cg_single", None, "cg_single", None, {}),
    ("pcg-jacobi", None, "cg", jacobi, {}),
    ("cg_single-jacobi", None, "cg_single", jacobi, {}),
    ("bicgstab", VEL, "bicgstab", None, {}),
    ("bicgstab-jacobi", VEL, "bicgstab", jacobi, {}),
    ("gmres", VEL, "gmres", None, {"restart": 20}),
    ("gmres-jacobi", VEL, "gmres", jacobi, {"restart": 20}),
    ("mg", None, "mg", None, {}),
    ("mg-W", None, "mg", None, {"cycle": "W"}),
]


def run(op, b, method, pc, opts, **kw):
    """One solve through the one interface."""
    return solvers.solve(op, b, method, M=None if pc is None else pc(op), **opts, **kw)


@pytest.mark.mpi
@pytest.mark.parametrize("n", [N, 23])  # 21 divides among 3 ranks, 23 among none
@pytest.mark.parametrize("name,velocity,method,pc,opts", METHODS, ids=[m[0] for m in METHODS])
def test_every_method_equals_scipy_and_serial_iteration_counts(comm, n, name, velocity, method, pc, opts):
    h, A = stencil_matrix(n, velocity)
    B = np.random.default_rng(3).random((n, n))
    tol = 1e-10
    direct = spla.spsolve(A, B[1:-1, 1:-1].ravel()).reshape(n - 2, n - 2)
    with pympc.Decomposition((n, n), comm=comm, spacing=h) as d:
        b = pympc.DistArray.from_global(d, B if comm.Get_rank() == 0 else None)
        r = run(StencilOperator(d, velocity=velocity), b, method, pc, opts, tol=tol)
        assert isinstance(r, solvers.Result)
        assert r.converged, r.reason
        assert r.residual < 10 * tol and r.history[-1] < tol
        assert len(r.history) == r.iterations + 1
        u = r.x.gather(root=None)[1:-1, 1:-1]
        cond = np.linalg.cond(A.toarray())
        assert np.linalg.norm(u - direct) / np.linalg.norm(direct) < cond * tol
    with pympc.Decomposition((n, n), comm=MPI.COMM_SELF, spacing=h) as ds:  # the serial run
        rs = run(StencilOperator(ds, velocity=velocity), pympc.DistArray.from_global(ds, B), method, pc, opts,
                 tol=tol)
    assert abs(rs.iterations - r.iterations) <= 1, (rs.iterations, r.iterations)


@functools.lru_cache(maxsize=None)
def _dense_oracle(shape, periodic, velocity, shift):
    """Serial numpy: the dense matrix of the operator formula (:func:`_operator_oracle`)
    on the unknowns, built column by column, the mask of the unknowns and the matrix's
    condition number (cached: every method asks for the same ones)."""
    h = np.array([1.0 / (n - 1) for n in shape])
    velocity = np.zeros(len(shape)) if velocity is None else np.array(velocity)
    _, unknown = _operator_oracle(np.zeros(shape), periodic, h, velocity, shift)
    idx = np.flatnonzero(unknown)
    A = np.empty((idx.size, idx.size))
    for j, k in enumerate(idx):
        e = np.zeros(unknown.size)
        e[k] = 1.0
        A[:, j] = _operator_oracle(e.reshape(shape), periodic, h, velocity, shift)[0].ravel()[idx]
    return A, unknown, np.linalg.cond(A)


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic,shift", [((16, 13), (True, False), 0.0), ((13, 16), (False, True), 0.0),
                                                  ((16, 16), (True, True), 100.0),
                                                  ((17, 9, 8), (False, False, True), 0.0)])
@pytest.mark.parametrize("name,velocity,method,pc,opts", METHODS, ids=[m[0] for m in METHODS])
def test_every_method_on_periodic_axes_equals_numpy(comm, shape, periodic, shift, name, velocity, method, pc, opts):
    """Periodic axes, uneven splits and 3-D: the solution of each method equals numpy's
    dense solve of the serial operator formula, with the same iteration count on every
    rank count. Multigrid solves the plain Laplacian (no shift, so the all-periodic case
    is singular: the zero-mean solution of b minus its mean)."""
    if method == "mg" and shift:
        shift = 0.0
    h = np.array([1.0 / (n - 1) for n in shape])
    vel = None if velocity is None else tuple(5.0 * np.arange(1, len(shape) + 1))
    A, unknown, cond = _dense_oracle(shape, periodic, vel, shift)
    B = np.random.default_rng(6).random(shape)
    rhs = B[unknown]
    singular = all(periodic) and shift == 0
    exact = np.linalg.lstsq(A, rhs - rhs.mean(), rcond=None)[0] if singular else np.linalg.solve(A, rhs)
    if singular:
        exact -= exact.mean()
    tol = 1e-10
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, spacing=list(h)) as d:
        b = pympc.DistArray.from_global(d, B)
        r = run(StencilOperator(d, velocity=vel, shift=shift), b, method, pc, opts, tol=tol)
        assert r.converged, r.reason
        X = r.x.gather(root=None)
        assert np.all(X[~unknown] == 0.0)
        assert np.linalg.norm(X[unknown] - exact) / np.linalg.norm(exact) < cond * tol
    with pympc.Decomposition(shape, comm=MPI.COMM_SELF, periodic=periodic, spacing=list(h)) as ds:
        rs = run(StencilOperator(ds, velocity=vel, shift=shift), pympc.DistArray.from_global(ds, B), method, pc,
                 opts, tol=tol)
    assert abs(rs.iterations - r.iterations) <= 1, (rs.iterations, r.iterations)


@pytest.mark.mpi
def test_reasons_and_reductions(comm):
    h, _ = stencil_matrix(N)
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
        with pytest.raises(pympc.InputError, match="method must be one of"):
            solvers.solve(StencilOperator(d), b, "cg-three")


def test_cg_update_matches_numpy():
    from pympc.kernels import vector

    rng = np.random.default_rng(0)
    base = [rng.random((7, 9)) for _ in range(4)]
    for view in (lambda a: a, lambda a: a[1:-1, 2:-1]):  # contiguous and strided views
        x, r, p, q = (b.copy() for b in base)
        xv, rv, pv, qv = (view(a) for a in (x, r, p, q))
        rr = vector.cg_update(xv, rv, pv, qv, 0.3)
        ex, er = view(base[0]) + 0.3 * view(base[2]), view(base[1]) - 0.3 * view(base[3])
        np.testing.assert_allclose(xv, ex, rtol=1e-15)
        np.testing.assert_allclose(rv, er, rtol=1e-15)
        assert rr == pytest.approx((er * er).sum(), rel=1e-14)
        assert np.array_equal(x[0], base[0][0]) or view(x) is x  # nothing outside the view


def test_cg_holds_four_vectors():
    """The issue's memory rule: CG holds the operator plus four vectors (x, r, p, Ap);
    the right-hand side is not copied and the final true residual reuses r and Ap."""
    import tracemalloc

    from solvers.sparse import SparseOperator

    n = 129
    with pympc.Decomposition((n, n), comm=MPI.COMM_SELF, spacing=1 / (n - 1)) as d:
        A = SparseOperator.laplacian(d)
        b = pympc.DistArray.from_function(d, lambda x, y: np.sin(3 * x) + y)
        x0 = b.empty_like()
        for op in (A, StencilOperator(d)):
            cg(op, b, maxiter=3)  # compiled, plans cached
            for kw in ({}, {"x0": x0}):
                tracemalloc.start()
                r = cg(op, b, maxiter=3, **kw)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                assert r.iterations == 3
                if op is A:  # the matrix-free product builds stencil temporaries besides
                    assert peak / b.data.nbytes < 4.1, peak / b.data.nbytes


@pytest.mark.mpi
def test_initial_guess_and_restricted_rhs(comm):
    """A nonzero x0 starts from its residual; b's values on the Dirichlet points (not
    unknowns) are ignored by every method, and b itself is left unchanged."""
    h, A = stencil_matrix(N)
    B = np.random.default_rng(4).random((N, N))
    direct = spla.spsolve(A, B[1:-1, 1:-1].ravel()).reshape(N - 2, N - 2)
    with pympc.Decomposition((N, N), comm=comm, spacing=h) as d:
        b = pympc.DistArray.from_global(d, B if comm.Get_rank() == 0 else None)
        before = b.data.copy()
        op = StencilOperator(d)
        r0 = cg(op, b, tol=1e-10)
        x0 = r0.x.copy()
        r1 = cg(op, b, x0=x0, tol=1e-10)
        assert r1.iterations == 0 and r1.converged and r1.residual < 1e-10
        assert np.array_equal(b.data, before)
        x0.owned[...] += 1e-3
        for method in (cg, cg_single, bicgstab, gmres):
            r = method(op, b, x0=x0, tol=1e-10)
            assert r.converged and 0 < r.iterations and r.history[0] < 1
            u = r.x.gather(root=None)[1:-1, 1:-1]
            assert np.linalg.norm(u - direct) / np.linalg.norm(direct) < 1e-6


def _operator_oracle(X, periodic, h, velocity, shift):
    """Serial numpy: the matrix-free operator on the global grid X (0 off the unknowns)."""
    nd = X.ndim
    Xp = X
    for a in range(nd):
        Xp = np.pad(Xp, [(1, 1) if b == a else (0, 0) for b in range(nd)], mode="wrap" if periodic[a] else "constant")
    inner = tuple(slice(1, -1) for _ in range(nd))
    Y = (2.0 * np.sum(1.0 / h ** 2) + shift) * X
    for a in range(nd):
        lo = Xp[tuple(slice(0, -2) if b == a else inner[b] for b in range(nd))]
        hi = Xp[tuple(slice(2, None) if b == a else inner[b] for b in range(nd))]
        Y = Y - (lo + hi) / h[a] ** 2 + velocity[a] * (hi - lo) / (2.0 * h[a])
    unknown = np.ones(X.shape, bool)
    for a in range(nd):
        if not periodic[a]:
            edge = [slice(None)] * nd
            edge[a] = [0, -1]
            unknown[tuple(edge)] = False
    return np.where(unknown, Y, 0.0), unknown


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", [((17, 13), (False, False)), ((16, 11), (True, False)),
                                            ((9, 8, 7), (False, True, False)), ((23,), (False,)),
                                            ((6, 5), (True, True))])
@pytest.mark.parametrize("velocity", [None, 1.5])
def test_stencil_apply_dot_matches_the_serial_operator(comm, shape, periodic, velocity):
    """The compiled product (interior while the halo travels, the frame after) equals the
    serial formula on every point, 0 off the unknowns (ghosts included), and the dot its
    share of x . Ax, on uneven splits and periodic axes."""
    h = np.array([1.0 / (n - 1) for n in shape])
    vel = np.zeros(len(shape)) if velocity is None else velocity * np.arange(1, len(shape) + 1)
    X = np.random.default_rng(5).random(shape) - 0.5
    ref, unknown = _operator_oracle(np.where(np.ones(shape, bool), X, 0), periodic, h, vel, 0.25)
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, spacing=list(h)) as d:
        op = StencilOperator(d, velocity=None if velocity is None else vel, shift=0.25)
        x = pympc.DistArray.from_global(d, X)
        y = pympc.DistArray(d)
        y.data[...] = np.nan                       # every point must be written
        part = op.apply_dot(x, y)
        assert not np.isnan(y.data).any()
        g = d.ghost
        interior = tuple(slice(g, g + n) for n in d.local_shape)
        ghosts = np.ones(y.data.shape, bool)
        ghosts[interior] = False
        assert np.all(y.data[ghosts] == 0.0)
        Y = y.gather(root=None)
        # X on the non-unknowns is read as it is (the oracle pads with 0 beyond the grid)
        np.testing.assert_allclose(Y, ref, rtol=1e-13, atol=1e-10)
        total = comm.allreduce(part)
        assert total == pytest.approx(float(np.vdot(X[unknown], ref[unknown])), rel=1e-12)
        y2 = pympc.DistArray(d)
        op.apply(x, y2)
        assert np.array_equal(y2.owned, y.owned)


def test_one_spelling_per_concept():
    """The one interface has one name per concept: the Result has no alias attributes,
    the removed names and keywords are gone (``variant=``, ``u0=``, ``maxcycles=``, the
    right-hand side as ``f``), every method takes the common keywords, and an option a
    method does not have is refused by name."""
    import dataclasses
    import inspect

    import solvers.krylov as krylov
    import solvers.multigrid as multigrid
    from solvers.linear import KRYLOV
    from solvers.multigrid import Multigrid

    assert [f.name for f in dataclasses.fields(solvers.Result)] == ["x", "iterations", "residual", "reason",
                                                                     "history"]
    r = solvers.Result(None, 0, 0.0, "converged")
    for alias in ("u", "cycles", "solution", "its"):
        assert not hasattr(r, alias)
    assert not hasattr(krylov, "KrylovResult") and not hasattr(multigrid, "MGResult")
    common = ["M", "x0", "tol", "maxiter"]
    for name, fn in KRYLOV.items():
        params = inspect.signature(fn).parameters
        assert list(params)[:2] == ["op", "b"] and list(params)[2:6] == common, name
        assert "variant" not in params and "u0" not in params
    assert list(inspect.signature(Multigrid.solve).parameters) == ["self", "b", "x0", "tol", "maxiter"]
    assert list(inspect.signature(solvers.solve).parameters)[:7] == ["op", "b", "method"] + common
    with pympc.Decomposition((9, 9), comm=MPI.COMM_SELF) as d:
        op, b = StencilOperator(d), pympc.DistArray(d).fill(1.0)
        with pytest.raises(TypeError):
            cg(op, b, variant="single")
        with pytest.raises(TypeError):
            cg(op, b, None)  # x0 and the rest are keywords only
        with pytest.raises(pympc.InputError, match="restart"):
            solvers.solve(op, b, "cg", restart=5)
        with Multigrid(d) as mg:
            for old in ({"u0": b}, {"maxcycles": 3}, {"f": b}):
                with pytest.raises(TypeError):
                    mg.solve(**({"b": b} if "f" not in old else {}), **old)
        assert solvers.solve(op, b, "gmres", restart=5, maxiter=2).iterations == 2
