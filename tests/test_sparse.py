"""Distributed sparse matrices assembled from scipy rows: products equal scipy's on the
gathered vector; the assembled Laplacian equals the matrix-free one; Krylov methods on
it equal scipy's direct solve; block-Jacobi; columns out of reach are refused."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import pympc
from solvers.krylov import StencilOperator, bicgstab, cg, gmres
from solvers.sparse import BlockJacobi, SparseOperator, _owned_global_flat


def random_stencil_matrix(shape, periodic, seed=0):
    """A random nonsymmetric matrix with a 9-point (box) pattern, wrapped on periodic axes."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    idx = np.unravel_index(np.arange(n), shape)
    rows, cols = [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            i, j = idx[0] + di, idx[1] + dj
            keep = np.ones(n, dtype=bool)
            for a, (v, p) in enumerate(((i, periodic[0]), (j, periodic[1]))):
                if p:
                    v %= shape[a]
                else:
                    keep &= (v >= 0) & (v < shape[a])
            i, j = i % shape[0], j % shape[1]
            rows.append(np.arange(n)[keep])
            cols.append(np.ravel_multi_index((i[keep], j[keep]), shape))
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((rng.random(len(r)) + (r == c) * 9.0, (r, c)), shape=(n, n))


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", [((13, 11), (False, False)), ((10, 9), (True, False)),
                                            ((8, 12), (True, True))])
def test_product_equals_scipy(comm, shape, periodic):
    A = random_stencil_matrix(shape, periodic)
    X = np.random.default_rng(1).random(shape)
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, stencil="box") as d:
        op = SparseOperator(d, A[_owned_global_flat(d)])
        x = pympc.DistArray.from_global(d, X if comm.Get_rank() == 0 else None)
        y = x.empty_like()
        op.apply(x, y)
        np.testing.assert_allclose(y.gather(root=None).ravel(), A @ X.ravel(), rtol=1e-13, atol=1e-12)
        # the fused product also returns this rank's part of x . Ax, its ghosts untouched
        y.data[...] = np.nan
        part = op.apply_dot(x, y)
        assert np.all(y.data[tuple(slice(0, g) for g in (d.ghost,) * 2)] == 0)
        total = comm.allreduce(part)
        assert total == pytest.approx(X.ravel() @ (A @ X.ravel()), rel=1e-13)
        np.testing.assert_allclose(y.gather(root=None).ravel(), A @ X.ravel(), rtol=1e-13, atol=1e-12)


@pytest.mark.mpi
def test_columns_beyond_the_ghost_width_are_refused_everywhere(comm):
    size = comm.Get_size()
    n = 4 * size + 4
    A = sp.lil_matrix((n * 5, n * 5))
    A[0, n * 5 - 1] = 1.0  # the first point couples to the last: far away (not periodic)
    with pympc.Decomposition((n, 5), comm=comm, dims=(size, 1)) as d:
        rows = sp.csr_matrix(A)[_owned_global_flat(d)]
        if size > 1:
            with pytest.raises(pympc.InputError, match="beyond the ghost width"):
                SparseOperator(d, rows)


@pytest.mark.mpi
@pytest.mark.parametrize("periodic", [False, True])
def test_assembled_laplacian_equals_matrix_free(comm, periodic):
    n = 17
    with pympc.Decomposition((n, n), comm=comm, spacing=1 / (n - 1), periodic=periodic) as d:
        for vel in (None, (15.0, -5.0)):
            mf = StencilOperator(d, velocity=vel, shift=0.5)
            sa = SparseOperator.laplacian(d, velocity=vel, shift=0.5)
            x = mf.restrict(pympc.DistArray.from_function(d, lambda i, j: np.sin(0.3 * i) + np.cos(0.7 * j), coords=False))
            y1, y2 = x.empty_like(), x.empty_like()
            mf.apply(x, y1)
            sa.apply(x, y2)
            np.testing.assert_allclose(y2.owned, y1.owned, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(sa.diagonal().owned, mf.diagonal().owned)


@pytest.mark.mpi
def test_krylov_on_assembled_matrix_equals_scipy(comm):
    n = 21
    h = 1 / (n - 1)
    B = np.random.default_rng(5).random((n, n))
    m = n - 2
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    D = sp.diags([-1.0, 0.0, 1.0], [-1, 0, 1], shape=(m, m)) / (2 * h)
    eye = sp.eye(m)
    L = (sp.kron(T, eye) + sp.kron(eye, T)) / h ** 2
    C = L + 20.0 * sp.kron(D, eye) - 10.0 * sp.kron(eye, D)
    tol = 1e-10
    with pympc.Decomposition((n, n), comm=comm, spacing=h) as d:
        b = pympc.DistArray.from_global(d, B if comm.Get_rank() == 0 else None)
        A = SparseOperator.laplacian(d)
        Ac = SparseOperator.laplacian(d, velocity=(20.0, -10.0))
        cases = [(cg(A, b, tol=tol), L), (cg(A, b, tol=tol, M=BlockJacobi(A)), L),
                 (bicgstab(Ac, b, tol=tol), C), (gmres(Ac, b, tol=tol, restart=20, M=BlockJacobi(Ac, "ilu")), C)]
        for r, M in cases:
            assert r.converged, r.reason
            direct = spla.spsolve(M.tocsc(), B[1:-1, 1:-1].ravel())
            u = r.x.gather(root=None)[1:-1, 1:-1].ravel()
            assert np.linalg.norm(u - direct) / np.linalg.norm(direct) < np.linalg.cond(M.toarray()) * tol
        # block-Jacobi with exact blocks: one iteration on one rank
        if comm.Get_size() == 1:
            assert cases[1][0].iterations == 1


def test_csr_kernel_numpy_reference_equals_compiled():
    """The product kernel over runs of rows: the numpy reference adds each row's entries
    in the loop's order (the same bits, also for rows of 8 or more entries, where a numpy
    sum would go pairwise, and for empty rows); the
    fused dot product agrees to 1e-12; rows outside the runs are not written."""
    from pympc.kernels.sparse import CSR_MATVEC_DOT, unsigned

    rng = np.random.default_rng(2)
    A = sp.random(300, 300, density=0.02, random_state=3, format="csr")
    keep = np.ones(300)
    keep[50:60] = 0.0  # empty rows give 0
    A = sp.csr_matrix(sp.diags(keep) @ (A + sp.diags(rng.random(300))))
    A.eliminate_zeros()
    assert np.all(np.diff(A.indptr)[50:60] == 0) and np.diff(A.indptr).max() >= 8
    x = rng.random(300)
    runs = np.array([[0, 40], [45, 120], [130, 300]], dtype=np.uint64)
    res = {}
    for backend in ("numba", "numpy"):
        y = np.full(300, -5.0)
        s = CSR_MATVEC_DOT(unsigned(A.indptr), unsigned(A.indices), A.data, x, y, runs, backend=backend)
        res[backend] = y, s
    (y1, s1), (y2, s2) = res["numba"], res["numpy"]
    assert np.array_equal(y1, y2)
    assert s1 == pytest.approx(s2, rel=1e-12)
    rows = np.r_[0:40, 45:120, 130:300]
    np.testing.assert_allclose(y1[rows], (A @ x)[rows], rtol=1e-13)
    assert np.all(y1[np.r_[40:45, 120:130]] == -5.0)


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", [((13, 11), (False, False)), ((8, 12), (True, True))])
def test_numpy_product_equals_compiled_product(comm, shape, periodic):
    """SparseOperator(backend="numpy") gives the compiled product's y bit for bit, and
    its part of x . y to 1e-12, at every rank count."""
    A = random_stencil_matrix(shape, periodic, seed=4)
    X = np.random.default_rng(6).random(shape)
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, stencil="box") as d:
        x = pympc.DistArray.from_global(d, X if comm.Get_rank() == 0 else None)
        out = {}
        for backend in ("numba", "numpy"):
            y = x.empty_like()
            y.data[...] = np.nan
            part = SparseOperator(d, A[_owned_global_flat(d)], backend=backend).apply_dot(x, y)
            out[backend] = y, comm.allreduce(part)
        assert np.array_equal(out["numba"][0].data, out["numpy"][0].data)
        assert out["numba"][1] == pytest.approx(out["numpy"][1], rel=1e-12)
        np.testing.assert_allclose(out["numpy"][0].gather(root=None).ravel(), A @ X.ravel(), rtol=1e-13, atol=1e-12)
        with pytest.raises(pympc.InputError, match="backend must be"):
            SparseOperator(d, A[_owned_global_flat(d)], backend="cuda")


@pytest.mark.mpi
def test_unknown_mask_is_honoured_by_the_constructor(comm):
    """restrict() zeroes the points that are not unknowns: the mask given to the
    constructor (no patching afterwards), the boundary of laplacian(); a mask of the
    wrong shape is refused."""
    n = 11
    with pympc.Decomposition((n, n), comm=comm) as d:
        rows = SparseOperator.laplacian(d).rows
        gi, gj = np.meshgrid(*[np.arange(lo, hi) for lo, hi in zip(d.lo, d.hi)], indexing="ij")
        mask = (gi + gj) % 3 == 0
        b = pympc.DistArray.from_function(d, lambda i, j: 1.0 + i + 10 * j, coords=False)
        got = SparseOperator(d, rows, unknown_mask=mask).restrict(b)
        assert np.array_equal(got.owned, np.where(mask, b.owned, 0.0))
        assert np.array_equal(SparseOperator(d, rows).restrict(b).owned, b.owned)  # no mask: all unknowns
        lap = SparseOperator.laplacian(d).restrict(b).gather(root=None)
        B = b.gather(root=None)
        assert np.all(lap[[0, -1], :] == 0) and np.all(lap[:, [0, -1]] == 0)
        assert np.array_equal(lap[1:-1, 1:-1], B[1:-1, 1:-1])
        with pytest.raises(pympc.InputError, match="unknown_mask"):
            SparseOperator(d, rows, unknown_mask=np.ones((n + 1, n), bool))
