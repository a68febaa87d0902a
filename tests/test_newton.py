"""Newton-Krylov (solvers.newton) on the Bratu problem (solvers.bratu) against a serial
scipy Newton (spsolve on the assembled Jacobian), at 1-4 ranks on sizes the ranks do not
divide evenly: the solution, the quadratic convergence of exact Newton and the
superlinear convergence with Eisenstat-Walker forcing terms, the Jacobian-free products,
the failure past the fold (lam = 7) with one reason on every rank; and the pieces: the
residual kernel (numba == numpy bit for bit), the Walker-Pernice step, the bt line
search's quadratic and cubic steps, the EW forcing terms."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from mpi4py import MPI

import pympc
from solvers.bratu import BRATU_RESIDUAL, Bratu
from solvers.newton import (FD_ERROR, EisenstatWalker, FDJacobian, line_search_bt, newton,
                            walker_pernice)


def grid(shape, comm=None):
    """The unit square (or box) with ``shape`` vertices."""
    return pympc.Decomposition(shape, comm=comm, spacing=[1.0 / (n - 1) for n in shape])


def laplacian(shape):
    """The 5-point -lap on the interior points of the unit square (scipy, C order)."""
    A = None
    for a, n in enumerate(shape):
        h = 1.0 / (n - 1)
        T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n - 2, n - 2)) / h ** 2
        term = T
        for b, m in enumerate(shape):
            if b != a:
                term = sp.kron(term, sp.eye(m - 2)) if b > a else sp.kron(sp.eye(m - 2), term)
        A = term if A is None else A + term
    return A.tocsc()


def ex5_guess(shape, lam):
    """ex5's FormInitialGuess on the whole grid (numpy)."""
    dist = None
    for a, n in enumerate(shape):
        i = np.arange(n)
        da = (np.minimum(i, n - 1 - i) / (n - 1)).reshape([-1 if b == a else 1 for b in range(len(shape))])
        dist = da if dist is None else np.minimum(dist, da)
    return lam / (lam + 1.0) * np.sqrt(dist)


def scipy_newton(shape, lam):
    """Plain Newton with direct solves to ||F|| <= 1e-13 ||F_0||: the whole grid."""
    A = laplacian(shape)
    inner = tuple(slice(1, -1) for _ in shape)
    u = ex5_guess(shape, lam)[inner].ravel()
    F = A @ u - lam * np.exp(u)
    f0 = np.linalg.norm(F)
    for _ in range(50):
        if np.linalg.norm(F) <= 1e-13 * f0:
            break
        du = spla.spsolve((A - lam * sp.diags(np.exp(u))).tocsc(), F)
        u -= du
        F = A @ u - lam * np.exp(u)
        if np.abs(du).max() < 1e-15:
            break
    out = np.zeros(shape)
    out[inner] = u.reshape([n - 2 for n in shape])
    return out


_ORACLE = {}


def oracle(shape, lam=6.0):
    if (shape, lam) not in _ORACLE:
        _ORACLE[shape, lam] = scipy_newton(shape, lam)
    return _ORACLE[shape, lam]


def solve(shape, lam=6.0, comm=None, monitor_errors=False, **options):
    """Bratu solved by newton: the result, the max-norm errors of the iterates against
    the oracle (with ``monitor_errors``) and the solution gathered on every rank (the
    grid is closed on return)."""
    errors = []
    ref = oracle(shape, lam) if monitor_errors else None

    def monitor(k, u, fnorm):
        g = u.gather(root=0)
        e = float(np.abs(g - ref).max()) if u.decomp.rank == 0 else 0.0
        errors.append(u.decomp.cart.bcast(e, root=0))

    with grid(shape, comm) as d, Bratu(d, lam) as p:
        r = p.solve(monitor=monitor if monitor_errors else None, **options)
        u = r.x.gather(root=None)
    return r, errors, u


def steps(errors):
    """The pairs (e_k, e_{k+1}) that start below 0.1 and end above the round-off floor."""
    return [(a, b) for a, b in zip(errors, errors[1:]) if a < 0.1 and b > 1e-13]


def orders(errors):
    """log e_{k+1} / log e_k of those steps."""
    return [math.log(b) / math.log(a) for a, b in steps(errors)]


# -- the solution at 1-4 ranks ---------------------------------------------------------

@pytest.mark.mpi
@pytest.mark.parametrize("shape", [(33, 33), (33, 41)])
def test_bratu_matches_scipy_newton_and_one_rank(shape):
    tol = 1e-10
    r, _, u = solve(shape, tol=tol)
    assert r.converged and r.residual <= tol, (r.reason, r.history)
    _, _, one = solve(shape, tol=tol, comm=MPI.COMM_SELF)
    ref = oracle(shape)
    assert np.abs(u - ref).max() <= 1e-8
    assert np.abs(u - one).max() <= 10 * tol * np.abs(ref).max()
    assert np.all(u[0] == 0) and np.all(u[-1] == 0) and np.all(u[:, 0] == 0)


def test_grid_that_does_not_halve():
    """31 x 45: the multigrid preconditioner takes its Galerkin path (any size)."""
    shape = (31, 45)
    r, _, u = solve(shape, tol=1e-10)
    assert r.converged and np.abs(u - oracle(shape)).max() <= 1e-8


def test_three_dimensions():
    """17^3: the 7-point residual and Jacobian, multigrid in 3-D."""
    shape = (17, 17, 17)
    r, _, u = solve(shape, tol=1e-10)
    assert r.converged and np.abs(u - oracle(shape)).max() <= 1e-8


def test_lagged_preconditioner_and_full_steps():
    """lag=True keeps the first multigrid (other iterates, the same solution);
    line_search="basic" takes full steps."""
    shape = (33, 33)
    with grid(shape) as d:
        with Bratu(d, 6.0, lag=True) as p:
            lagged = p.solve(tol=1e-10)
            mg = p.mg
            assert p.preconditioner(p.initial_guess()) is mg
        with Bratu(d, 6.0) as p:
            fresh = p.solve(tol=1e-10)
            basic = p.solve(tol=1e-10, line_search="basic")
        assert lagged.converged and basic.converged and basic.lambdas == [1.0] * basic.iterations
        assert lagged.history[2:] != fresh.history[2:]  # another preconditioner from step 2 on
        for r in (lagged, basic):
            assert (r.x - fresh.x).norm(np.inf) <= 1e-9 * fresh.x.norm(np.inf)


def fd_against_exact(method, shape, tol):
    exact, _, u = solve(shape, tol=tol)
    fd, _, v = solve(shape, tol=tol, jacobian="fd", method=method)
    assert fd.converged, fd.reason
    # every product of the Jacobian-free operator evaluates the residual once
    assert fd.function_evaluations > exact.function_evaluations + sum(fd.linear_iterations)
    diff = np.abs(u - v).max()
    assert diff <= 10 * tol * np.abs(u).max(), diff


@pytest.mark.mpi
def test_jacobian_free_gmres_matches_exact_jacobian():
    fd_against_exact("gmres", (17, 21), 1e-8)


def test_jacobian_free_cg_matches_exact_jacobian():
    fd_against_exact("cg", (33, 33), 1e-10)


@pytest.mark.mpi
@pytest.mark.parametrize("comm", ["world", "self"])
def test_past_the_fold_fails_with_one_reason(comm):
    """lam = 7 has no solution: converged=False and a reason, no exception, the same on
    every rank (world: the ranks of the run; self: each rank alone)."""
    shape = (33, 33)
    reasons = []
    runs = [{}] if comm == "world" else [{}, {"method": "gmres", "maxiter": 3}]
    for options in runs:
        r, _, _ = solve(shape, 7.0, comm=MPI.COMM_SELF if comm == "self" else None, **options)
        assert not r.converged and r.reason in ("line search failed", "linear solve failed", "diverged",
                                                "iteration limit", "stagnated"), r.reason
        assert r.history[-1] > 1e-3  # ||F|| stays away from 0
        reasons.append(r.reason)
    assert len(set(MPI.COMM_WORLD.allgather(tuple(reasons)))) == 1
    assert reasons == ["linear solve failed", "iteration limit"][:len(runs)]  # CG meets an indefinite J


# -- convergence orders (one rank) ----------------------------------------------------

@pytest.mark.parametrize("shape", [(33, 33), (65, 65)])
def test_exact_newton_converges_quadratically(shape):
    r, errors, _ = solve(shape, tol=1e-12, ew=False, linear_tol=1e-13, monitor_errors=True)
    assert r.converged
    assert all(lam == 1.0 for lam in r.lambdas)
    p = orders(errors)
    assert len(p) >= 2 and min(p[-2:]) >= 1.8, (errors, p)
    # e_{k+1} = C e_k^2 with one C (at order 1.6, C would grow 100-fold over these steps)
    q = [b / a ** 2 for a, b in steps(errors)]
    assert max(q) <= 4 * min(q), (errors, q)
    ew, ew_errors, _ = solve(shape, tol=1e-12, monitor_errors=True)
    assert ew.converged and sum(ew.linear_iterations) < sum(r.linear_iterations)
    assert min(orders(ew_errors)[-2:]) >= 1.5, ew_errors
    assert ew.etas[0] == 0.3 and all(e <= 0.9 for e in ew.etas)


# -- the pieces ----------------------------------------------------------------------

def test_residual_kernel_numba_equals_numpy_and_scipy():
    shape, lam = (23, 31), 5.0
    with grid(shape) as d, Bratu(d, lam) as p:
        u = p.initial_guess()
        u.owned[1:-1, 1:-1] += np.random.default_rng(1).uniform(-0.3, 0.3, (21, 29))
        F1, F2 = u.empty_like(), u.empty_like()
        n1 = p.residual(u, F1, backend="numba")
        n2 = p.residual(u, F2, backend="numpy")
        assert np.array_equal(F1.data, F2.data) and math.isclose(n1, n2, rel_tol=1e-13)
        inner = (slice(1, -1), slice(1, -1))
        v = u.owned[inner].ravel()
        want = laplacian(shape) @ v - lam * np.exp(v)
        np.testing.assert_allclose(F1.owned[inner].ravel(), want, rtol=1e-12, atol=1e-9)
        assert np.all(F1.owned[0] == 0) and np.all(F1.owned[:, -1] == 0)
        assert math.isclose(n1, np.linalg.norm(want), rel_tol=1e-12)
        J = p.jacobian(u)  # the exact Jacobian: -lap - lam e^u
        x, y = u.empty_like(), u.empty_like()
        x.owned[inner] = np.random.default_rng(2).standard_normal((21, 29))
        J.apply(x, y)
        JA = laplacian(shape) - lam * sp.diags(np.exp(v))
        np.testing.assert_allclose(y.owned[inner].ravel(), JA @ x.owned[inner].ravel(), rtol=1e-12, atol=1e-9)
    assert BRATU_RESIDUAL.loop is not None


def test_initial_guess_is_ex5s():
    shape = (17, 13)
    with grid(shape) as d, Bratu(d, 6.0) as p:
        np.testing.assert_array_equal(p.initial_guess().owned, ex5_guess(shape, 6.0))
        assert p.initial_guess("zero").norm(np.inf) == 0


class _Recorder:
    """F(u) = u (the identity), keeping a copy of every point it is evaluated at."""

    def __init__(self, decomp):
        self.decomp, self.points = decomp, []

    def residual(self, u, F):
        self.points.append(u.owned.copy())
        F.owned[...] = u.owned


@pytest.mark.mpi
def test_walker_pernice_step():
    with pympc.Decomposition((19, 7)) as d:
        u = pympc.DistArray.from_function(d, lambda x, y: np.sin(x) + y)
        a = pympc.DistArray.from_function(d, lambda x, y: np.cos(3 * x * y) - 0.2)
        F = u.copy()
        prob = _Recorder(d)
        J = FDJacobian(prob).at(u, F)
        y = u.empty_like()
        J.apply(a, y)
        unorm, anorm = u.norm(2), a.norm(2)
        h = walker_pernice(unorm, anorm)
        assert h == FD_ERROR * math.sqrt(1.0 + unorm) / anorm and FD_ERROR == math.sqrt(np.finfo(float).eps)
        w = prob.points[-1]
        np.testing.assert_allclose(w, u.owned + h * a.owned, rtol=0, atol=1e-15)
        np.testing.assert_allclose(y.owned, a.owned, rtol=0, atol=1e-7)  # J = I
        zero = u.empty_like()
        J.apply(zero, y)  # a = 0: no evaluation, y = 0
        assert len(prob.points) == 1 and y.norm(np.inf) == 0


def _polynomial(f, s, b, a):
    calls = []

    def phi(lam):
        calls.append(lam)
        return f + s * lam + b * lam ** 2 + a * lam ** 3
    return phi, calls


def test_line_search_quadratic_step():
    # phi = 1 - lam + 2 lam^2: the full step fails; the quadratic through phi(0),
    # phi'(0), phi(1) is phi itself: its minimiser 1/4 is taken
    phi, calls = _polynomial(1.0, -1.0, 2.0, 0.0)
    lam, g, n, why = line_search_bt(phi, 1.0, -1.0)
    assert why is None and calls == [1.0, 0.25] and lam == 0.25 and g == phi(0.25) and n == 2


def test_line_search_cubic_step():
    # phi = 1 - lam + 5 lam^2 + 100 lam^3: the full step fails, the quadratic step
    # (1/210) is clipped to 0.1 and fails; the cubic through phi(0), phi'(0), phi(1),
    # phi(0.1) is phi itself, so its minimiser (-b + sqrt(b^2 + 3a)) / (3a) is taken
    phi, calls = _polynomial(1.0, -1.0, 5.0, 100.0)
    lam, g, n, why = line_search_bt(phi, 1.0, -1.0)
    want = (-5.0 + math.sqrt(25.0 + 300.0)) / 300.0
    assert why is None and n == 3 and calls[:2] == [1.0, 0.1]
    assert math.isclose(lam, want, rel_tol=1e-12)
    assert 0.01 <= lam <= 0.05 and g <= 1.0 - 1e-4 * lam


def test_line_search_positive_slope_cuts_and_failures():
    # a positive slope is negated (PETSc), a zero slope taken as -1
    phi, calls = _polynomial(1.0, -1.0, 2.0, 0.0)
    assert line_search_bt(phi, 1.0, +1.0)[0] == 0.25
    # non-finite trials: halve first
    lam, g, n, why = line_search_bt(lambda t: math.inf if t > 0.3 else 1.0 - t, 1.0, -1.0)
    assert why is None and lam == 0.25 and n == 3
    # no decrease anywhere: fails (no exception)
    lam, g, n, why = line_search_bt(lambda t: 1.0 + t, 1.0, -1.0, max_cuts=40)
    assert why == "line search failed" and lam <= 1e-12 * 10
    lam, g, n, why = line_search_bt(lambda t: 1.0 + t, 1.0, -1.0, small_step=True)
    assert why == "stagnated" and n == 1


def test_eisenstat_walker_forcing_terms():
    ew = EisenstatWalker()
    alpha = (1 + math.sqrt(5)) / 2
    assert ew.forcing(1.0) == 0.3
    eta1 = 0.5 ** alpha
    assert ew.forcing(0.5) == eta1  # the safeguard 0.3^alpha = 0.14 is smaller
    assert ew.forcing(0.5e-3) == eta1 ** alpha  # the safeguard 0.16 > threshold 0.1 wins
    assert ew.forcing(0.5e-6) == 1e-3 ** alpha  # the safeguard 0.053 < 0.1: not applied
    assert EisenstatWalker(rtol_0=2.0).forcing(1.0) == 0.9  # rtol_max


def test_bad_input_is_one_clear_error():
    with grid((9, 9)) as d, Bratu(d) as p:
        u = p.initial_guess()
        with pytest.raises(pympc.InputError, match="method"):
            newton(p, u, method="mg")
        with pytest.raises(pympc.InputError, match="line_search"):
            newton(p, u, line_search="cp")
        with pytest.raises(pympc.InputError, match="u0"):
            newton(p, np.zeros((9, 9)))
        with pytest.raises(pympc.InputError, match="jacobian"):
            newton(_Recorder(d), pympc.DistArray(d), jacobian="exact")
    with pympc.Decomposition((8, 8), periodic=True) as d:
        with pytest.raises(pympc.InputError, match="periodic"):
            Bratu(d)
