"""Galerkin multigrid for -div(k grad u) + shift (solvers.mgops): its kernels (numba ==
numpy), the Galerkin product against scipy P^T A P with P assembled here from the rule,
the hierarchy and the cycle bit-identical on 1-4 ranks, cycle counts at a 10^4 contrast
(checkerboard and layered k) that do not grow with the grid, solutions against scipy's
spsolve (within tol * cond), any grid size, scalar and field shifts, set_shift against a
fresh build, and the errors."""

import zlib

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from mpi4py import MPI

import pympc
from pympc.kernels import galerkin as gk
from solvers import mgops
from solvers.krylov import cg
from solvers.mgops import GalerkinMultigrid


# -- problems ------------------------------------------------------------------------------
def tiles(d, kind="checker", contrast=1e4, n_tiles=8):
    """k = contrast on the tiles (floor(8x) + floor(8y) even, or floor(8y) even), 1 else."""
    k = pympc.DistArray(d)
    x = [np.arange(lo, hi) / (n - 1) for lo, hi, n in zip(d.lo, d.hi, d.shape)]
    tx, ty = (np.minimum(np.floor(n_tiles * g), n_tiles - 1) for g in np.meshgrid(*x, indexing="ij"))
    even = (ty % 2 == 0) if kind == "layered" else ((tx + ty) % 2 == 0)
    k.owned[...] = np.where(even, contrast, 1.0)
    return k


def rhs(d, seed=1):
    b = pympc.DistArray(d)
    b.owned[...] = np.random.default_rng(seed).standard_normal(d.shape)[d.global_slices()]
    return b


def matrix(kg, h, periodic, shift=0.0):
    """The flux-form matrix on the unknowns, assembled face by face (a face between
    neighbours p, q: the mean of their k over h^2, added to A[p, p] and A[q, q] and
    subtracted from A[p, q] and A[q, p]), and the mask of the unknowns."""
    idx = np.arange(kg.size).reshape(kg.shape)
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [np.broadcast_to(shift, kg.shape).ravel()]
    for a in range(2):
        p, q = idx, np.roll(idx, -1, axis=a)
        w = 0.5 * (kg + np.roll(kg, -1, axis=a)) / h[a] ** 2
        ok = np.ones(kg.shape, dtype=bool)
        if not periodic[a]:
            ok[(slice(None),) * a + (-1,)] = False  # no face beyond the last point
        p, q, w = p[ok], q[ok], w[ok]
        rows += [p, q, p, q]
        cols += [p, q, q, p]
        vals += [w, w, -w, -w]
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(kg.size,) * 2)
    keep = unknown_mask(kg.shape, periodic)
    return A[keep][:, keep], keep


def direct(d, kg, b, shift=0.0):
    A, keep = matrix(kg, d.spacing, d.periodic, shift)
    return spla.spsolve(A.tocsc(), b.gather(root=None).ravel()[keep]), A, keep


# -- the interpolation rule, written out point by point (independent of mgops) -------------
def parents(n, periodic):
    """Per fine point of an axis: its coarse parents and whether it lies between two."""
    nc = (n + 1) // 2 if periodic else n // 2 + 1
    out = []
    for i in range(n):
        if i == n - 1 and not periodic and n % 2 == 0:
            out.append(((nc - 1,), False))
        elif i % 2 == 0:
            out.append(((i // 2,), False))
        else:
            out.append(((i // 2, ((i + 1) // 2) % nc), True))
    return out, nc


def dendy_P(A9, periodic, kind):
    """P (scipy, all points) from a full 9-point stencil A9[o0 + 1, o1 + 1][i, j], by
    Dendy's rule: collapse across the other axis on points between two coarse points,
    the point's own row with interpolated neighbours on points between four."""
    n0, n1 = A9.shape[2:]
    (p0, nc0), (p1, nc1) = parents(n0, periodic[0]), parents(n1, periodic[1])
    memo = {}

    def f(o0, o1, i, j):
        return A9[o0 + 1, o1 + 1, i, j]

    def row(i, j):  # {coarse (I, J): weight}
        if (i, j) in memo:
            return memo[i, j]
        (c0, b0), (c1, b1) = p0[i], p1[j]
        inner = (0 < i < n0 - 1 or periodic[0]) and (0 < j < n1 - 1 or periodic[1])
        if kind == "bilinear" or not inner or not (b0 or b1):
            w = {(I, J): (0.5 if b0 else 1.0) * (0.5 if b1 else 1.0) for I in c0 for J in c1}
        elif b0 and not b1:
            den = sum(f(0, o, i, j) for o in (-1, 0, 1))
            w = {(c0[s], c1[0]): -sum(f(o0, o, i, j) for o in (-1, 0, 1)) / den for s, o0 in ((0, -1), (1, 1))}
        elif b1 and not b0:
            den = sum(f(o, 0, i, j) for o in (-1, 0, 1))
            w = {(c0[0], c1[s]): -sum(f(o, o1, i, j) for o in (-1, 0, 1)) / den for s, o1 in ((0, -1), (1, 1))}
        else:
            w = {}
            for o0 in (-1, 0, 1):
                for o1 in (-1, 0, 1):
                    if o0 or o1:
                        for key, v in row((i + o0) % n0, (j + o1) % n1).items():
                            w[key] = w.get(key, 0.0) - f(o0, o1, i, j) * v / f(0, 0, i, j)
        memo[i, j] = w
        return w

    P = sp.lil_matrix((n0 * n1, nc0 * nc1))
    for i in range(n0):
        for j in range(n1):
            for (I, J), v in row(i, j).items():
                P[i * n1 + j, I * nc1 + J] += v
    return P.tocsr(), (nc0, nc1)


def full9(C, periodic):
    """The full 9-point stencil (3, 3, n0, n1) of a stored (5-array) one, with no entry
    across a non-periodic side."""
    n0, n1 = C.shape[1:]
    A9 = np.zeros((3, 3, n0, n1))
    for e, (o0, o1) in enumerate(gk.FORWARD):
        A9[o0 + 1, o1 + 1] = C[e]
        if e:
            for i in range(n0):
                for j in range(n1):
                    ii, jj = i - o0, j - o1
                    if (0 <= ii < n0 or periodic[0]) and (0 <= jj < n1 or periodic[1]):
                        A9[1 - o0, 1 - o1, i, j] = C[e][ii % n0, jj % n1]
    return A9


def unknown_mask(shape, periodic):
    m = [np.ones(n, dtype=bool) for n in shape]
    for a in range(2):
        if not periodic[a]:
            m[a][[0, -1]] = False
    return np.outer(*m).ravel()


# -- kernels --------------------------------------------------------------------------------
@pytest.mark.parametrize("nine", [0, 1])
def test_kernels_numba_equal_numpy(nine):
    rng = np.random.default_rng(3)
    n0, n1 = 13, 10
    C = rng.standard_normal((5, n0, n1))
    C[0] = 10 + rng.random((n0, n1))
    invd = 1.0 / C[0]
    f = rng.standard_normal((n0, n1))
    for colour in ((1, 12, 2, 2, 9, 2), (2, 11, 2, 1, 9, 2), (1, 12, 2, 3, 4, 1)):
        u = [rng.standard_normal((n0, n1))] * 2
        u = [u[0].copy(), u[0].copy()]
        for x, be in zip(u, ("numba", "numpy")):
            gk.GS(x, f, C, invd, *colour, nine, 1.1, backend=be)
        assert np.array_equal(u[0], u[1])
    x = rng.standard_normal((n0, n1))
    outs = [np.zeros((n0, n1)), np.zeros((n0, n1))]
    for o, be in zip(outs, ("numba", "numpy")):
        gk.RESIDUAL(x, f, C, o, 1, 12, 1, 9, nine, backend=be)
    assert np.array_equal(outs[0], outs[1]) and outs[0].any()
    s = [gk.APPLY(x, o, C, 2, 11, 1, 8, nine, backend=be) for o, be in zip(outs, ("numba", "numpy"))]
    assert np.array_equal(outs[0], outs[1]) and np.isclose(s[0], s[1], rtol=1e-13)


@pytest.mark.parametrize("first,p", [(0, 0), (1, 1), (0, 3)])
def test_fused_red_black_equals_two_half_sweeps(first, p):
    rng = np.random.default_rng(5)
    n0, n1 = 12, 11
    C = rng.standard_normal((5, n0, n1))
    C[0] = 10 + rng.random((n0, n1))
    invd, f, u0 = 1.0 / C[0], rng.standard_normal((n0, n1)), rng.standard_normal((n0, n1))
    box = (1, 11, 1, 10)
    ref = u0.copy()
    for c in (first, 1 - first):  # two half-sweeps, colour (i + j + p) % 2
        for r in (0, 1):  # the rows of each parity, colour c on them
            r0 = box[0] + (r - box[0]) % 2
            c0 = box[2] + (c - (r0 + box[2] + p)) % 2
            gk.GS(ref, f, C, invd, r0, box[1], 2, c0, box[3], 2, 0, 1.2, backend="numpy")
    for be in ("numba", "numpy"):
        u = u0.copy()
        gk.RB(u, f, C, invd, *box, p, first, 1.2, backend=be)
        # the frame of the second colour, as the multigrid does after its halo exchange
        lev = type("L", (), {"box": box, "parity": p})()
        for ranges in mgops._Level._frame(lev, 1 - first):
            gk.GS(u, f, C, invd, *ranges, 0, 1.2, backend=be)
        assert np.array_equal(u, ref), be


def test_transfer_and_galerkin_kernels_numba_equal_numpy():
    rng = np.random.default_rng(4)
    W = rng.random((4, 12, 11))
    r = rng.standard_normal((12, 11))
    pos = [np.array([1, 1, 3, 5, 7, 9, 9]), np.array([1, 1, 3, 5, 7, 9])]
    mult = [rng.integers(0, 2, (7, 3)).astype(float), rng.integers(0, 2, (6, 3)).astype(float)]
    fc = [np.zeros((7, 6)), np.zeros((7, 6))]
    for o, be in zip(fc, ("numba", "numpy")):
        gk.RESTRICT(r, W, o, 1, 6, 1, 5, pos[0], mult[0], pos[1], mult[1], backend=be)
    assert np.array_equal(fc[0], fc[1]) and fc[0].any()
    uc = rng.standard_normal((7, 6))
    tab = [np.clip(np.arange(12) // 2, 0, 6), np.clip((np.arange(12) + 1) // 2, 0, 6),
           np.clip(np.arange(11) // 2, 0, 5), np.clip((np.arange(11) + 1) // 2, 0, 5)]
    uf = [r.copy(), r.copy()]
    for o, be in zip(uf, ("numba", "numpy")):
        gk.PROLONG(uc, W, o, 1, 11, 1, 10, *tab, backend=be)
    assert np.array_equal(uf[0], uf[1])
    for periodic in ((False, False), (True, True), (True, False)):
        maps = [mgops._AxisMap(n, p) for n, p in zip((9, 10), periodic)]
        C = rng.standard_normal((5, 9, 10))
        Wf = rng.random((4, 9, 10))
        outs = [np.zeros((9, maps[0].nc, maps[1].nc)) for _ in range(2)]
        for o, be in zip(outs, ("numba", "numpy")):
            gk.RAP(C, Wf, maps[0].lo, maps[0].hi, maps[1].lo, maps[1].hi, *periodic, o, backend=be)
        assert np.array_equal(outs[0], outs[1])


# -- the Galerkin product -------------------------------------------------------------------
@pytest.mark.parametrize("shape,periodic", [((9, 9), (False, False)), ((10, 13), (False, False)),
                                            ((16, 16), (True, True)), ((11, 12), (True, False))])
@pytest.mark.parametrize("kind", ["operator", "bilinear"])
def test_coarse_operator_is_PtAP(shape, periodic, kind):
    with pympc.Decomposition(shape, comm=MPI.COMM_SELF, periodic=periodic, spacing=0.1) as d:
        k = tiles(d, n_tiles=3)
        with GalerkinMultigrid(d, k=k, interpolation=kind, coarse_size=1) as mg:
            for lvl in range(2):  # the 5-point level and a 9-point one
                fine, coarse = mg.grids[lvl], mg.grids[lvl + 1]
                A9 = full9(fine.A, periodic)
                P, nc = dendy_P(A9, periodic, kind)
                assert nc == coarse.shape
                kf, kc = unknown_mask(fine.shape, periodic), unknown_mask(nc, periodic)
                A = sp.csr_matrix((A9[1, 1].ravel(), (np.arange(A9[1, 1].size),) * 2))
                A, _ = mgops.assemble(fine.A, periodic)
                Pu = P[kf][:, kc]
                want = (Pu.T @ A @ Pu).toarray()
                got = mgops.assemble(coarse.A, periodic)[0].toarray()
                assert np.allclose(got, want, rtol=1e-12, atol=1e-12 * abs(want).max())
                assert np.array_equal(got, got.T)  # symmetric bit for bit


def test_fine_operator_is_the_flux_form():
    with pympc.Decomposition((12, 9), comm=MPI.COMM_SELF, periodic=(False, True), spacing=(0.1, 0.2)) as d:
        k = tiles(d, n_tiles=3, contrast=7.0)
        with GalerkinMultigrid(d, k=k, shift=0.5) as mg:
            want, _ = matrix(k.gather(root=None), d.spacing, d.periodic, 0.5)
            A, _ = mgops.assemble(mg.grids[0].A, d.periodic)
            assert abs(A + 0.5 * sp.eye(A.shape[0]) - want).max() < 1e-12
            x = mg.op.restrict(rhs(d))  # 0 on the points that are not unknowns
            y = x.empty_like()
            mg.op.apply(x, y)
            keep = unknown_mask(d.shape, d.periodic)
            assert np.allclose(y.gather(root=None).ravel()[keep], want @ x.gather(root=None).ravel()[keep])


# -- the same hierarchy and cycle on every rank count -------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", [((31, 45), (False, False)), ((27, 27), (True, True)),
                                            ((20, 17), (True, False))])
def test_cycle_bit_identical_across_rank_counts(comm, shape, periodic):
    def run(c):
        with pympc.Decomposition(shape, comm=c, periodic=periodic, spacing=1 / 30) as d:
            with GalerkinMultigrid(d, k=tiles(d, n_tiles=4), shift=1.0 if all(periodic) else 0.0) as mg:
                b = rhs(d)
                z = b.empty_like()
                mg.apply(b, z)
                x = mg.solve(b, tol=1e-30, maxiter=2).x  # two solver cycles
                return z.gather(root=None), x.gather(root=None), [i["shape"] for i in mg.levels_info()]
    here, alone = run(comm), run(MPI.COMM_SELF)
    assert here[2] == alone[2]
    for a, b in zip(here[:2], alone[:2]):
        assert zlib.crc32(a.tobytes()) == zlib.crc32(b.tobytes())


# -- a 10^4 contrast: counts that do not grow with the grid, solutions against spsolve -----
def counts(n, kind, cycle):
    with pympc.Decomposition((n, n), comm=MPI.COMM_SELF, spacing=1 / (n - 1)) as d:
        b = rhs(d)
        with GalerkinMultigrid(d, k=tiles(d, kind), cycle=cycle) as mg:
            standalone = mg.solve(b, tol=1e-8, maxiter=200)
            pcg = cg(mg.op, b, M=mg, tol=1e-8, maxiter=200)
    assert standalone.converged and pcg.converged
    return standalone.iterations, pcg.iterations


# measured (docs/solvers/multigrid-variable.md), (cycles, PCG iterations) on 65^2, 129^2, 257^2
COUNTS = {("checker", "W"): [(15, 10), (16, 10), (16, 11)], ("layered", "W"): [(7, 9), (7, 8), (7, 8)],
          ("layered", "V"): [(7, 9), (8, 8), (7, 8)], ("checker", "V"): [(25, 12), (34, 14), (43, 15)]}


@pytest.mark.parametrize("kind,cycle", [("checker", "W"), ("layered", "W"), ("layered", "V")])
def test_contrast_1e4_counts_do_not_grow_with_the_grid(kind, cycle):
    got = [counts(n, kind, cycle) for n in (65, 129, 257)]
    for j, name in enumerate(("cycles", "PCG iterations")):
        seq = [g[j] for g in got]
        assert max(seq) - min(seq) <= 1, (name, seq)
        assert max(seq) <= max(c[j] for c in COUNTS[kind, cycle]) + 1, (name, seq)


def test_checkerboard_v_cycle_pcg_grows_slowly():
    # the V-cycle's rate on the checkerboard degrades by about 0.1 per level (the doc page
    # says why); as a CG preconditioner that costs about one iteration per doubling of n
    got = [counts(n, "checker", "V") for n in (65, 129)]
    assert [g[1] for g in got] == [c[1] for c in COUNTS["checker", "V"][:2]], got


@pytest.mark.parametrize("kind", ["checker", "layered"])
def test_contrast_1e4_solution_against_spsolve_within_tol_times_cond(kind):
    n, tol = 65, 1e-8
    with pympc.Decomposition((n, n), comm=MPI.COMM_SELF, spacing=1 / (n - 1)) as d:
        k = tiles(d, kind)
        b = rhs(d)
        xs, A, keep = direct(d, k.gather(root=None), b)
        big = spla.eigsh(A, k=1, which="LA", return_eigenvectors=False)[0]
        small = spla.eigsh(A, k=1, sigma=0, which="LM", return_eigenvectors=False)[0]
        with GalerkinMultigrid(d, k=k) as mg:
            for r in (mg.solve(b, tol=tol, maxiter=200), cg(mg.op, b, M=mg, tol=tol)):
                x = r.x.gather(root=None).ravel()[keep]
                assert r.converged
                assert np.linalg.norm(x - xs) / np.linalg.norm(xs) <= tol * big / small
                assert np.linalg.norm(x - xs) / np.linalg.norm(xs) <= 1e-6  # (tol * cond ~ 0.3 here)


def test_operator_interpolation_beats_bilinear_at_contrast_1e4():
    # the reason for operator-dependent P (module doc): bilinear P needs many more cycles
    with pympc.Decomposition((129, 129), comm=MPI.COMM_SELF, spacing=1 / 128) as d:
        k, b = tiles(d, "layered"), rhs(d)
        its = {}
        for kind in ("operator", "bilinear"):
            with GalerkinMultigrid(d, k=k, interpolation=kind) as mg:
                its[kind] = mg.solve(b, tol=1e-8, maxiter=300).iterations
    assert its["bilinear"] >= 4 * its["operator"], its


# -- any grid size -----------------------------------------------------------------------------
def check_against_direct(comm, shape, periodic=(False, False), shift=0.0, tol=1e-10, solver=True):
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, spacing=1 / 32) as d:
        k = tiles(d, n_tiles=4, contrast=100.0)
        b = rhs(d)
        xs, _, keep = direct(d, k.gather(root=None), b, shift)
        with GalerkinMultigrid(d, k=k, shift=shift) as mg:
            info = mg.levels_info()
            runs = [mg.solve(b, tol=tol, maxiter=100)] if solver else []
            for r in runs + [cg(mg.op, b, M=mg, tol=tol)]:
                assert r.converged, (shape, r.reason, r.history[-3:])
                x = r.x.gather(root=None).ravel()[keep]
                assert np.abs(x - xs).max() <= 1e4 * tol * np.abs(xs).max()
    return info, r.iterations


@pytest.mark.mpi
def test_any_size_at_every_rank_count(comm):
    info, _ = check_against_direct(comm, (31, 45), tol=1e-8, solver=False)
    assert [i["shape"] for i in info] == [(31, 45), (16, 23), (9, 12), (5, 7)]


def test_periodic_odd_size_with_shift():
    info, _ = check_against_direct(MPI.COMM_SELF, (27, 27), periodic=(True, True), shift=1.0)
    assert [i["shape"] for i in info] == [(27, 27), (14, 14), (7, 7)]


@pytest.mark.parametrize("shape", [(100, 100), (1000, 37), (64, 65)])
def test_any_size_serial(shape):
    info, its = check_against_direct(MPI.COMM_SELF, shape, tol=1e-9)
    assert info[-1]["points"] <= 100 or min(info[-1]["shape"]) <= 4
    # within 2 iterations of the nearest m 2^k + 1 grid
    near = tuple(int(2 ** np.round(np.log2(n - 1)) + 1) for n in shape)
    _, its_near = check_against_direct(MPI.COMM_SELF, near, tol=1e-9)
    assert its <= its_near + 2, (its, its_near)


def test_coarse_sizes():
    assert [mgops.coarse_size(n, False) for n in (5, 6, 9, 10, 1000)] == [3, 4, 5, 6, 501]
    assert [mgops.coarse_size(n, True) for n in (5, 6, 27, 28)] == [3, 3, 14, 14]
    m = mgops._AxisMap(10, False)  # the odd last point 9 is a coarse point of its own
    assert list(m.child) == [0, 2, 4, 6, 8, 9] and not m.between[9] and m.lo[9] == 5
    m = mgops._AxisMap(7, True)  # points 6 and 0 become coarse neighbours
    assert list(m.child) == [0, 2, 4, 6] and list(m.mult[0]) == [0, 1, 1] and list(m.mult[3]) == [1, 1, 0]


# -- shifts ----------------------------------------------------------------------------------
def test_scalar_and_field_shift_against_spsolve_and_set_shift_equals_fresh_build():
    n = 33
    with pympc.Decomposition((n, n), comm=MPI.COMM_SELF, spacing=1 / (n - 1)) as d:
        k, b = tiles(d, n_tiles=4), rhs(d)
        c = pympc.DistArray(d)
        u = np.add.outer(np.sin(3 * np.arange(n) / n), np.cos(2 * np.arange(n) / n))
        c.owned[...] = 6.0 * np.exp(u)  # the size of a Bratu iterate's lambda e^u
        kg = k.gather(root=None)
        with GalerkinMultigrid(d, k=k) as mg:
            for shift in (40.0, c, 0.0, 1e5):
                mg.set_shift(shift)
                xs, _, keep = direct(d, kg, b, c.gather(root=None) if shift is c else shift)
                r = cg(mg.op, b, M=mg, tol=1e-11)
                assert np.abs(r.x.gather(root=None).ravel()[keep] - xs).max() <= 1e-8 * np.abs(xs).max()
                with GalerkinMultigrid(d, k=k, shift=shift) as fresh:
                    for a, f in zip(mg.levels + mg.serial, fresh.levels + fresh.serial):
                        assert np.array_equal(a.C, f.C) and np.array_equal(a.invd, f.invd)
                    z1, z2 = b.empty_like(), b.empty_like()
                    mg.apply(b, z1)
                    fresh.apply(b, z2)
                    assert np.array_equal(z1.data, z2.data)


# -- errors ----------------------------------------------------------------------------------
def test_errors():
    with pympc.Decomposition((9, 9, 9), comm=MPI.COMM_SELF) as d3:
        with pytest.raises(pympc.InputError, match="2-D"):
            GalerkinMultigrid(d3)
    with pympc.Decomposition((17, 17), comm=MPI.COMM_SELF) as d:
        k = pympc.DistArray(d).fill(1.0)
        k.owned[3, 3] = -1.0
        for kw, msg in ((dict(k=k), "positive"), (dict(bc="neumann"), "Dirichlet"), (dict(cycle="F"), "cycle"),
                        (dict(interpolation="cubic"), "interpolation"), (dict(omega=2.5), "omega"),
                        (dict(k="soft"), "number or a DistArray")):
            with pytest.raises(pympc.InputError, match=msg):
                GalerkinMultigrid(d, **kw)
        with pytest.raises(pympc.InputError):
            GalerkinMultigrid("grid")
