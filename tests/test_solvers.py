"""Solvers I verified against mathematics and serial numpy: heat and wave orders of
accuracy, bit-identical heat on every rank count, leapfrog energy, Poisson by Jacobi and
RB-SOR against manufactured solutions and scipy's direct solve."""

import time

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import pympc
from mpicheck import on_root, same_error
from oracle import ftcs
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
        k = pympc.DistArray.from_function(d, lambda x, y: 0.7 + 0 * x * y)
        init = lambda x, y: np.sin(np.pi * x) * np.sin(2 * np.pi * y)  # noqa: E731
        a = Heat(d, alpha=k, u0=init, dt=1e-4)
        b = Heat(d, alpha=0.7, u0=init, dt=1e-4)
        a.run(steps=30, progress=None)
        b.run(steps=30, progress=None)
        np.testing.assert_allclose(a.u.gather(root=None), b.u.gather(root=None), rtol=0, atol=1e-13)
        # a coefficient that varies: compare with the flux-form formula in numpy
        kv = pympc.DistArray.from_function(d, lambda x, y: 1.0 + 0.5 * x + 0.25 * y * y)
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
            errs.append(np.abs(r.x.gather(root=None) - exact).max())
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
        u = r.x.gather(root=None)
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
            assert abs(r.x.sum()) < 1e-9 * n * n  # the zero-mean solution
            errs.append(np.abs(r.x.gather(root=None) - exact).max())
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
        np.testing.assert_array_equal(r2.x.gather(root=None), ref.x.gather(root=None))
    if comm.Get_rank() == 0:
        with h5py.File(shared_tmp_path / "p.h5") as fh:
            (step,) = list(fh["steps"])
            assert int(step) == ref.iterations and set(fh["steps"][step]) == {"u", "f"}
    comm.Barrier()


# -- restart safety, stored physics, progress (issue 12, points 8, 10, 12, 13) ------------
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import warnings  # noqa: E402

from solvers.loop import TimeLoop  # noqa: E402




def files(comm, top):
    """Collective: {relative path: (sha256, mtime_ns)} of every file under ``top``, and
    every directory as None, read by rank 0 (so "unchanged" means bytes and mtime)."""
    out = None
    if comm.Get_rank() == 0:
        out = {}
        for root, dirs, names in os.walk(top):
            for n in dirs:
                out[os.path.relpath(os.path.join(root, n), top)] = None
            for n in names:
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    out[os.path.relpath(p, top)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(p).st_mtime_ns)
    return comm.bcast(out, root=0)


def refused(comm, fn, *words):
    """The call raises one InputError, the same on every rank, containing ``words``."""
    return same_error(comm, fn, None, *words)


SHAPE = (13, 10)  # 13 and 10 do not divide by 3 or 4
H = 1.0 / 12


def make(kind, d, alpha=0.5, c=1.0, bc=None, f=None):
    if bc is None:  # wave's x axis is periodic: no condition there
        bc = {"y-": ("neumann", 0.0)} if kind == "wave" else {"x-": ("dirichlet", 1.0)}
    if kind == "heat":
        return Heat(d, alpha=alpha, u0=lambda x, y: np.sin(3 * x) * np.cos(2 * y), bc=bc)
    if kind == "wave":
        return Wave(d, c=c, u0=lambda x, y: np.sin(3 * x) * np.cos(2 * y), v0=lambda x, y: x * y, bc=bc)
    # tol: never reached in these few iterations, so every run goes to its steps
    return Poisson(d, f=(lambda x, y: 1.0 + x * y) if f is None else f, bc=bc, tol=1e-15, check_every=2)


def go(kind, d, steps, physics=None, **kw):
    """A fresh solver of ``kind`` advanced to step (iteration) ``steps``: every solver
    through the one interface."""
    s = make(kind, d, **(physics or {}))
    s.run(steps=steps, progress=None, **kw)
    return s


def decomp(comm, kind):
    periodic = (kind == "wave", False)  # periodic and not
    return pympc.Decomposition(SHAPE, comm=comm, spacing=H, periodic=periodic)


def mkdir0(comm, path):
    if comm.Get_rank() == 0:
        os.makedirs(path)
    comm.Barrier()


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_restart_without_checkpoint_refuses_and_opens_nothing(comm, shared_tmp_path, kind):
    """Point 8: restart=True with no checkpoint (no directory, an empty one, one whose
    only checkpoint is damaged, none given) raises one InputError naming the directory; the output series is untouched (bytes
    and mtime), no directory is created, the solver is not advanced."""
    top = shared_tmp_path
    out = str(top / "run.h5")
    mkdir0(comm, top / "empty")
    mkdir0(comm, top / "damaged")  # its only checkpoint is damaged: none to continue from
    if comm.Get_rank() == 0:
        (top / "damaged" / "checkpoint_00000004.h5").write_bytes(b"\x89HDF\r\n\x1a\n cut short")
    comm.Barrier()
    with decomp(comm, kind) as d:
        go(kind, d, 6, output=out, output_every=2)  # an earlier run's series, no checkpoint
        before = files(comm, top)
        for ck in (top / "missing", top / "empty", top / "damaged"):
            s = make(kind, d)
            run = lambda: s.run(steps=10, output=out, checkpoint=str(ck), restart=True)  # noqa: E731
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the damaged file is reported by the checkpoint layer
                refused(comm, run, str(ck), "restart")
            assert s.step_count == 0
        s = make(kind, d)
        refused(comm, lambda: s.run(steps=10, output=out, restart=True), "checkpoint=")
        if kind == "poisson":  # the convenience form refuses alike
            refused(comm, lambda: s.solve(maxiter=10, output=out, restart=True), "checkpoint=")
        assert files(comm, top) == before


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_fresh_run_never_replaces_an_earlier_run(comm, shared_tmp_path, kind):
    """Point 8: a fresh run refuses an existing output file and a checkpoint directory
    that holds checkpoints (nothing touched) unless overwrite=True, which replaces the
    file and deletes the old checkpoints; Output(mode="w") refuses an existing file too."""
    import h5py

    top = shared_tmp_path
    out, ck = str(top / "run.h5"), str(top / "ck")
    with decomp(comm, kind) as d:
        go(kind, d, 6, output=out, output_every=2, checkpoint=ck, checkpoint_every=2)
        before = files(comm, top)
        refused(comm, lambda: go(kind, d, 6, output=out), out, "exists", "overwrite=True")
        refused(comm, lambda: go(kind, d, 6, output=str(top / "new.h5"), checkpoint=ck), ck,
                "already holds checkpoints", "overwrite=True")
        refused(comm, lambda: pympc.Output(out, d), out, "exists")
        refused(comm, lambda: pympc.Output(out, d, mode="w"), out, "exists")
        assert files(comm, top) == before
        go(kind, d, 4, output=out, checkpoint=ck, overwrite=True)

    def check():
        with h5py.File(out) as f:
            want = ["00000004"] if kind == "poisson" else ["00000000", "00000004"]
            assert sorted(f["steps"]) == want, list(f["steps"])
        assert sorted(os.listdir(ck)) == ["checkpoint_00000004.h5"], os.listdir(ck)
    on_root(comm, check)
    with pympc.Decomposition(SHAPE, comm=comm) as d:
        pympc.Output(out, d, overwrite=True).close()  # an explicit overwrite starts an empty series
    on_root(comm, lambda: h5py.File(out, "r").close() or None)


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
@pytest.mark.parametrize("case", ["one", "several", "newest damaged"])
def test_restart_continues_run_and_series_bit_identically(comm, shared_tmp_path, kind, case):
    """One checkpoint, several, or the newest damaged (load falls back to the previous
    intact one): the restarted run ends bit-identical to an uninterrupted one and the
    output series is whole, each step once."""
    import h5py

    top = shared_tmp_path
    out, ck = str(top / "run.h5"), str(top / "ck")
    every = None if case == "one" else 3  # saves at 3, 6 and 8 (the end); two are kept
    with decomp(comm, kind) as d:
        ref = go(kind, d, 12).u.gather(root=None)
        go(kind, d, 8, output=out, output_every=2, checkpoint=ck, checkpoint_every=every)
        if case == "newest damaged" and comm.Get_rank() == 0:
            newest = os.path.join(ck, "checkpoint_00000008.h5")
            with open(newest, "r+b") as f:
                f.truncate(os.path.getsize(newest) // 2)
        comm.Barrier()
        s = make(kind, d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the damaged file is reported (by the checkpoint layer)
            s.run(steps=12, output=out, output_every=2, checkpoint=ck, checkpoint_every=every, restart=True,
                  progress=None)
        assert s.step_count == 12 and s.t == pytest.approx(12 * s.dt)
        np.testing.assert_array_equal(s.u.gather(root=None), ref)

    def check():
        with h5py.File(out) as f:
            first = 2 if kind == "poisson" else 0  # a relaxation's initial guess is not written
            assert sorted(f["steps"]) == [f"{n:08d}" for n in range(first, 13, 2)], list(f["steps"])
            np.testing.assert_array_equal(f["steps/00000012/u"][...], ref)
            assert all(f["steps"][g].attrs["complete"] == 1 for g in f["steps"])
    on_root(comm, check)


END = {"heat": (0.03, 0.005), "wave": (0.3, 0.05), "poisson": (8, 3)}  # poisson: t counts iterations


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_restart_past_the_requested_end_refuses(comm, shared_tmp_path, kind):
    """Point 13: a restart whose checkpoint is past t_end (or steps, or maxiter) says so
    and changes nothing; one exactly at the end has nothing to do and touches no file."""
    top = shared_tmp_path
    out, ck = str(top / "run.h5"), str(top / "ck")
    with decomp(comm, kind) as d:
        if kind == "poisson":  # the convenience form: maxiter is the end
            go(kind, d, 8, output=str(top / "solve.h5"), checkpoint=str(top / "cks"))
            before = files(comm, top)
            p = make(kind, d)
            refused(comm, lambda: p.solve("rbsor", maxiter=4, output=str(top / "solve.h5"),
                                          checkpoint=str(top / "cks"), restart=True),
                    "step 8", "past the requested end", "step 4")
            assert files(comm, top) == before
            # exactly at the end: nothing to do, and the output's last step is not rewritten
            r = make(kind, d).solve(maxiter=8, output=str(top / "solve.h5"), checkpoint=str(top / "cks"),
                                    restart=True)
            assert r.iterations == 8 and r.reason == "iteration limit" and files(comm, top) == before
        long, short = END[kind]
        s = make(kind, d)
        s.run(t_end=long, output=out, output_every=3, checkpoint=ck, checkpoint_every=4, progress=None)
        n = s.step_count
        before = files(comm, top)
        s = make(kind, d)
        refused(comm, lambda: s.run(t_end=short, output=out, checkpoint=ck, restart=True), "past the requested end",
                f"step {n}", f"t_end={short:g}")
        refused(comm, lambda: s.run(steps=n - 1, output=out, checkpoint=ck, restart=True), "past the requested end")
        assert s.step_count == 0 and files(comm, top) == before
        s.run(t_end=long, output=out, checkpoint=ck, restart=True, progress=None)
        assert s.step_count == n and s.t == pytest.approx(long) and files(comm, top) == before


@pytest.mark.mpi
def test_shorter_rerun_into_the_same_directory_cannot_restart_stale(comm, shared_tmp_path):
    """The README's data loss, at the solver level: a shorter fresh run into the
    directory of a longer one is refused; with overwrite=True the old checkpoints go,
    so a later restart continues the short run, not the long one."""
    top = shared_tmp_path
    out, ck = str(top / "run.h5"), str(top / "ck")
    with decomp(comm, "heat") as d:
        ref = make("heat", d)  # the short run continued in memory: its dt, to t = 0.01
        ref.run(t_end=0.005, progress=None)
        ref.run(t_end=0.01, progress=None)
        make("heat", d).run(t_end=0.03, output=out, checkpoint=ck, checkpoint_every=4, progress=None)
        before = files(comm, top)
        refused(comm, lambda: make("heat", d).run(t_end=0.005, output=out, checkpoint=ck), "overwrite=True")
        assert files(comm, top) == before
        make("heat", d).run(t_end=0.005, output=out, checkpoint=ck, overwrite=True, progress=None)
        s = make("heat", d)
        s.run(t_end=0.01, output=out, checkpoint=ck, restart=True, progress=None)
        assert s.t == pytest.approx(0.01) and s.step_count == ref.step_count
        np.testing.assert_array_equal(s.u.gather(root=None), ref.u.gather(root=None))


def checksum_oracle(glob):
    """The fingerprint of solvers.loop.field_checksum, on the global array in numpy."""
    bits = np.ascontiguousarray(glob, dtype=np.float64).view(np.uint64).ravel()
    w = np.arange(bits.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return f"{int(np.sum(bits * w, dtype=np.uint64)):016x}"


@pytest.mark.mpi
def test_physics_stored_and_other_physics_refused(comm, shared_tmp_path):
    """Point 10: outputs and checkpoints hold the solver's physics; a restart whose
    physics differ refuses, listing the keys, unless allow_changed names them; a change
    that makes the checkpoint's dt unstable is refused even when allowed."""
    import h5py

    top = shared_tmp_path
    out, ck = str(top / "run.h5"), str(top / "ck")
    with decomp(comm, "heat") as d:
        s = make("heat", d, alpha=0.5)
        s.run(steps=6, output=out, checkpoint=ck, progress=None, params={"note": "mine"},
              units={"u": "K", "time": "s", "length": "m"})
        dt = s.dt

        def check():
            with h5py.File(out) as f:
                p = json.loads(f.attrs["parameters"])
                assert p["solver"] == "heat" and p["alpha"] == 0.5 and p["dt"] == "auto", p
                assert p["bc"] == {"x-": ["dirichlet", 1.0], "x+": ["dirichlet", 0.0], "y-": ["dirichlet", 0.0],
                                   "y+": ["dirichlet", 0.0]}, p
                assert p["grid"]["shape"] == list(SHAPE) and p["grid"]["spacing"] == [H, H], p
                assert p["job"] == {"note": "mine"}, p
                assert json.loads(f.attrs["axes"]) == ["x", "y"]
                ds = f["steps/00000006/u"]
                assert (ds.attrs["units"], ds.attrs["time_units"], ds.attrs["length_units"]) == ("K", "s", "m")
                assert json.loads(ds.attrs["axes"]) == ["x", "y"]
            with h5py.File(os.path.join(ck, "checkpoint_00000006.h5")) as f:
                assert json.loads(f.attrs["parameters"])["alpha"] == 0.5
                assert f["physics"].attrs["alpha"] == 0.5 and json.loads(f["physics"].attrs["bc"])["x-"] == \
                    ["dirichlet", 1.0]
                assert float(f.attrs["time"]) == pytest.approx(6 * dt)  # an attribute, not only JSON
        on_root(comm, check)
        before = files(comm, top)
        restart = dict(steps=10, output=out, checkpoint=ck, restart=True, progress=None)
        refused(comm, lambda: make("heat", d, alpha=0.7).run(**restart), "['alpha']", "0.5", "0.7",
                "allow_changed")
        refused(comm, lambda: make("heat", d, bc={"x-": ("dirichlet", 2.0)}).run(**restart), "bc.x-")
        refused(comm, lambda: make("heat", d, bc="neumann").run(**restart), "bc.x+", "bc.y-")
        refused(comm, lambda: make("heat", d).run(**restart, allow_changed=("alhpa",)), "alhpa")
        refused(comm, lambda: make("heat", d).run(steps=10, units={"v": "K"}), "units")
        assert files(comm, top) == before
        s = make("heat", d, alpha=0.4)
        s.run(**restart, allow_changed=("alpha",))
        assert s.step_count == 10 and s.dt == dt
        # allowed, but the checkpoint's dt is beyond the new stability limit
        refused(comm, lambda: make("heat", d, alpha=5.0).run(steps=12, output=out, checkpoint=ck, restart=True,
                                                             allow_changed="alpha"), "stability limit")
    # a variable coefficient: an exact fingerprint, the same on every rank count
    with decomp(comm, "heat") as d:
        glob = np.add.outer(np.linspace(1, 2, SHAPE[0]), np.linspace(0, 0.3, SHAPE[1]))
        k = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        s = Heat(d, alpha=k)
        assert s.parameters()["alpha"] == {"field": checksum_oracle(glob), "min": 1.0, "max": 2.3}
        ck2 = str(top / "ck2")
        s.run(steps=3, checkpoint=ck2, progress=None)
        k.owned[...] *= 1.0 + 1e-15 * (k.owned > 1.5)
        refused(comm, lambda: Heat(d, alpha=k).run(steps=5, checkpoint=ck2, restart=True), "alpha.field")
    # wave: c; poisson: f
    with decomp(comm, "wave") as d:
        make("wave", d).run(steps=4, checkpoint=str(top / "ckw"), progress=None)
        rw = dict(steps=6, checkpoint=str(top / "ckw"), restart=True, progress=None)
        refused(comm, lambda: make("wave", d, c=2.0).run(**rw), "['c']")
        refused(comm, lambda: make("wave", d, c=3.0).run(**rw, allow_changed=("c",)), "stability limit")
        w = make("wave", d, c=0.5)
        w.run(**rw, allow_changed=("c",))
        assert w.step_count == 6
    with decomp(comm, "poisson") as d:
        go("poisson", d, 4, checkpoint=str(top / "ckp"))
        p = make("poisson", d, f=lambda x, y: 2.0 + x * y)
        refused(comm, lambda: p.solve(maxiter=8, checkpoint=str(top / "ckp"), restart=True), "['f']")


@pytest.mark.mpi
@pytest.mark.parametrize("shape,components,axes", [((11,), (), ["x"]), ((7, 5), (2,), ["x", "y", "component"]),
                                                   ((5, 4, 3), (), ["x", "y", "z"])])
def test_output_labels_axes_and_units(comm, shared_tmp_path, shape, components, axes):
    """Point 10: every dataset names its axes (pympc's axis 0 is x) and carries the units."""
    import h5py

    path = str(shared_tmp_path / "o.h5")
    with pympc.Decomposition(shape, comm=comm) as d:
        a = pympc.DistArray(d, components=components).fill(1.0)
        with pympc.Output(path, d, units={"a": "m/s", "time": "ms"}) as out:
            out.write(0, 0.0, a=a)

    def check():
        with h5py.File(path) as f:
            ds = f["steps/00000000/a"]
            assert json.loads(ds.attrs["axes"]) == axes and ds.ndim == len(axes)
            assert ds.attrs["units"] == "m/s" and ds.attrs["time_units"] == "ms" and ds.attrs["length_units"] == ""
            assert json.loads(f.attrs["axes"]) == axes[:len(shape)]
    on_root(comm, check)


def test_first_progress_line_after_three_steps_and_an_interval(records):
    """Point 12: no progress line from the first step's rate: the first comes after at
    least 3 steps and one interval (``records``: the heat logger's messages, conftest)."""
    with pympc.Decomposition(SHAPE, spacing=H) as d:
        make("heat", d).run(steps=6, progress=0.0)
        lines = [m for m in records if m.startswith("step ")]
        assert [m.split()[1] for m in lines] == ["4/6", "5/6", "6/6"], records
        records.clear()
        # a slow first step (start-up: compiling, first touch) is not in the rate: the
        # ETA of 2000 cheap steps is not the first step's 0.5 s times 2000
        s = make("heat", d)
        advance = s.advance
        calls = []

        def slow_first():
            if not calls:
                time.sleep(0.5)
            calls.append(1)
            advance()
        s.advance = slow_first
        s.run(steps=2000, progress=0.0)
        first = next(m for m in records if m.startswith("step "))
        assert first.startswith("step 4/2000"), first
        eta = float(first.split("ETA")[1].split()[0])
        assert eta < 60, first  # counting the first step: ETA ~ 0.5 s / 3 * 1996 = 333 s
        records.clear()
        make("heat", d).run(steps=6, progress=3600.0)
        assert not [m for m in records if m.startswith("step ")], records
        assert any(m.startswith("done: 6 steps") for m in records), records


def test_timeloop_subclass_mistakes_say_what_to_do():
    """The TimeLoop guide's contract: forgetting self.dt, super().__init__ or a method
    gives an error that says what to write."""
    class NoDt(TimeLoop):
        def __init__(self, d):
            super().__init__(d)
            self.u = pympc.DistArray(d)

        def advance(self):
            pass

        def fields(self):
            return {"u": self.u}

        def set_fields(self, fields):
            self.u.owned[...] = fields["u"].owned

    class DtFirst(NoDt):
        def __init__(self, d):
            self.dt = 0.5  # before super().__init__: kept
            super().__init__(d)

    class NoInit(TimeLoop):
        def __init__(self, d):
            self.dt = 0.1

    class NoAdvance(TimeLoop):
        def __init__(self, d):
            super().__init__(d)
            self.dt = 0.1

        def fields(self):
            return {}

    with pympc.Decomposition((6, 5)) as d:
        for bad in (None, 0.0, -1.0, float("nan"), "0.1"):
            s = NoDt(d)
            s.dt = bad
            with pytest.raises(pympc.InputError, match=r"must set self\.dt \(the time step, a positive number\)"):
                s.run(steps=2, progress=None)
            with pytest.raises(pympc.InputError, match=r"self\.dt"):
                s.t
        s = DtFirst(d)
        s.run(steps=4, progress=None)
        assert s.t == 2.0
        with pytest.raises(pympc.InputError, match=r"must call super\(\)\.__init__\(decomp"):
            NoInit(d).run(steps=1)
        with pytest.raises(NotImplementedError, match=r"must define advance\(\)"):
            NoAdvance(d).run(steps=1, progress=None)


@pytest.mark.mpi
def test_heat_fields_on_a_decomposition_built_alike(comm):
    """Issue 12 point 14 at the solver: a variable alpha and an initial field on a
    decomposition built alike (not the same object) are taken, and give the result of
    fields on the solver's own; one on another grid, or another ghost width, is refused."""
    n = 13
    f0 = lambda x, y: np.sin(np.pi * x) * y  # noqa: E731
    a0 = lambda x, y: 0.5 + 0.25 * x  # noqa: E731
    with pympc.Decomposition((n, n), comm=comm, spacing=1 / (n - 1)) as d, \
         pympc.Decomposition((n, n), comm=comm, spacing=1 / (n - 1)) as twin:
        runs = []
        for src in (d, twin):
            u0 = pympc.DistArray.from_function(src, f0)
            alpha = pympc.DistArray.from_function(src, a0)
            s = Heat(d, alpha=alpha, u0=u0)
            s.run(steps=5, progress=None)
            assert s.u.decomp is d
            runs.append(s.u.gather(root=None))
        np.testing.assert_array_equal(runs[0], runs[1])
    with pympc.Decomposition((n, n), comm=comm) as d, \
         pympc.Decomposition((n + 1, n), comm=comm) as other, \
         pympc.Decomposition((n, n), comm=comm, ghost=2) as wide:
        with pytest.raises(pympc.InputError, match="initial field.*global shapes"):
            Heat(d, alpha=1.0, u0=pympc.DistArray(other))
        with pytest.raises(pympc.InputError, match="alpha must live.*ghost"):
            Heat(d, alpha=pympc.DistArray(wide).fill(1.0), u0=0.0)


@pytest.mark.mpi
def test_a_stepped_solver_appends_only_to_its_own_series(comm, shared_tmp_path):
    """A solver that has stepped and runs on (no restart) continues the file it wrote
    last; given another, existing file it refuses (it used to open it for appending and
    cut off that file's later steps), and a new path starts a new series."""
    import h5py

    mine, other, new = (str(shared_tmp_path / n) for n in ("mine.h5", "other.h5", "new.h5"))
    with pympc.Decomposition(SHAPE, comm=comm, spacing=H) as d:
        make("heat", d).run(steps=8, output=other, output_every=1, progress=None)
        s = make("heat", d)
        s.run(steps=3, output=mine, output_every=1, progress=None)
        before = comm.bcast(open(other, "rb").read() if comm.Get_rank() == 0 else None, root=0)
        refused(comm, lambda: s.run(steps=6, output=other, output_every=1, progress=None),
                "other.h5", "overwrite=True")
        assert s.step_count == 3
        on_root(comm, lambda: (open(other, "rb").read() == before) or (_ for _ in ()).throw(
            AssertionError("the other run's file changed")))
        s.run(steps=6, output=mine, output_every=1, progress=None)  # its own series: appended
        s.run(steps=7, output=new, output_every=1, progress=None)   # a new one

    def check():
        with h5py.File(mine, "r") as f:
            assert sorted(int(k) for k in f["steps"]) == list(range(7)), list(f["steps"])
        with h5py.File(new, "r") as f:
            assert sorted(int(k) for k in f["steps"]) == [7], list(f["steps"])
    on_root(comm, check)


# -- the one solver interface (issue 13, point 5) ------------------------------------------
import inspect  # noqa: E402

from mpi4py import MPI  # noqa: E402

from pympc import bc as pbc  # noqa: E402
from solvers.boundary import Boundaries  # noqa: E402

INTERFACE_BC = {  # every non-periodic side of the 13 x 10 grid gets a condition, mixed
    "heat": {"x-": ("dirichlet", 1.0), "x+": ("neumann", 0.5), "y-": ("neumann", 0.0), "y+": ("dirichlet", -0.5)},
    "wave": {"x-": ("dirichlet", 0.0), "x+": ("neumann", 0.0), "y-": ("neumann", 0.0), "y+": ("dirichlet", 0.0)},
    "poisson": {"x-": ("dirichlet", 1.0), "x+": ("dirichlet", 0.0), "y-": ("dirichlet", 0.25), "y+": ("dirichlet", 0.0)},
}


def interface_solver(kind, d):
    """A solver of ``kind`` on ``d``, only its constructor's keywords (the physics)."""
    bc = {k: v for k, v in INTERFACE_BC[kind].items() if not d.periodic["xy".index(k[0])]}
    u0 = lambda x, y: np.sin(3 * x) * np.cos(2 * y)  # noqa: E731
    if kind == "heat":
        return Heat(d, alpha=0.5, u0=u0, bc=bc)
    if kind == "wave":
        return Wave(d, c=1.0, u0=u0, v0=lambda x, y: x * y, bc=bc)
    return Poisson(d, f=lambda x, y: 1.0 + x * y, u0=u0, bc=bc, tol=1e-15)


def gathered(s):
    return {name: a.gather(root=None) for name, a in s.fields().items()}


def serial_series(kind, periodic, path, ends, **run):
    """The oracle: the same solver on one rank (COMM_SELF) over the global grid, run to
    each of ``ends`` in turn with an output series to ``path``; returns its last fields."""
    with pympc.Decomposition(SHAPE, comm=MPI.COMM_SELF, spacing=H, periodic=periodic) as ds:
        s = interface_solver(kind, ds)
        for end in ends:
            s.run(steps=end, output=path, progress=None, **run)
        return gathered(s)


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
@pytest.mark.parametrize("periodic", [(False, False), (True, False), (True, True)])
def test_every_solver_through_the_one_interface(comm, shared_tmp_path, tmp_path, kind, periodic):
    """Constructor (decomp, **physics), dt, advance() through run(), fields()/set_fields()
    round trip, parameters() (solver, physics, bc, grid), run(steps=) with output,
    checkpoint and restart on 1-4 ranks (13 x 10: blocks that do not divide) equal, bit
    for bit and step by step, to the same solver run uninterrupted on one rank."""
    import h5py

    top = shared_tmp_path
    out, ck = str(top / "run.h5"), str(top / "ck")
    mine = str(tmp_path / f"serial-{comm.Get_rank()}.h5")  # every rank computes the oracle
    ref = serial_series(kind, periodic, mine, (5, 9), output_every=2)
    with pympc.Decomposition(SHAPE, comm=comm, spacing=H, periodic=periodic) as d:
        s = interface_solver(kind, d)
        assert "comm" not in inspect.signature(type(s)).parameters
        assert s.comm is d.comm and s.dt > 0 and s.step_count == 0
        p = s.parameters()
        assert p["solver"] == kind and p["grid"]["shape"] == list(SHAPE) and p["grid"]["periodic"] == list(periodic)
        want_bc = {k: [v[0], v[1]] for k, v in INTERFACE_BC[kind].items()
                   if not periodic["xy".index(k[0])]}
        assert p["bc"] == want_bc, p
        # fields()/set_fields(): a round trip through copies
        before = gathered(s)
        saved = {name: a.copy() for name, a in s.fields().items()}
        for a in s.fields().values():
            a.owned[...] = -7.0
        s.set_fields(saved)
        after = gathered(s)
        assert sorted(after) == sorted(before) and after
        for name in before:
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
        # run to 5 with output and checkpoints; a new solver restarts and goes on to 9
        s.run(steps=5, output=out, output_every=2, checkpoint=ck, checkpoint_every=2, progress=None)
        assert s.step_count == 5 and s.t == pytest.approx(5 * s.dt)
        r = interface_solver(kind, d)
        r.run(steps=9, output=out, output_every=2, checkpoint=ck, restart=True, progress=None)
        assert r.step_count == 9 and r.parameters() == p
        got = gathered(r)
    # the singular problem (every axis periodic) takes global sums (the mean of f removed,
    # the zero-mean solution): equal to round-off there, bit for bit everywhere else
    same = (lambda a, b, err_msg: np.testing.assert_allclose(a, b, rtol=0, atol=1e-13, err_msg=err_msg)) \
        if kind == "poisson" and all(periodic) else np.testing.assert_array_equal
    for name in ref:
        same(got[name], ref[name], err_msg=name)

    def same_series():
        with h5py.File(out) as f, h5py.File(mine) as g:
            assert sorted(f["steps"]) == sorted(g["steps"]), (list(f["steps"]), list(g["steps"]))
            want = ([] if kind == "poisson" else [0]) + [2, 4, 5, 6, 8, 9]  # no initial guess
            assert sorted(int(k) for k in f["steps"]) == want, list(f["steps"])
            for st in f["steps"]:
                for name in g["steps"][st]:
                    same(f["steps"][st][name][...], g["steps"][st][name][...], err_msg=f"step {st} {name}")
            assert json.loads(f.attrs["parameters"]) == json.loads(g.attrs["parameters"]) == p
    on_root(comm, same_series)


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_every_solver_runs_to_t_end(comm, kind):
    """run(t_end=): heat and wave shorten dt once so a whole number of steps ends at
    t_end; a relaxation's t counts iterations. Equal to the one-rank run, bit for bit."""
    t_end = {"heat": 0.004, "wave": 0.05, "poisson": 6}[kind]
    periodic = (True, False)
    with pympc.Decomposition(SHAPE, comm=MPI.COMM_SELF, spacing=H, periodic=periodic) as ds:
        ref = interface_solver(kind, ds)
        ref.run(t_end=t_end, progress=None)
        want = gathered(ref)
    with pympc.Decomposition(SHAPE, comm=comm, spacing=H, periodic=periodic) as d:
        s = interface_solver(kind, d)
        s.run(t_end=t_end, progress=None)
        assert s.t == pytest.approx(t_end) and s.step_count == ref.step_count and s.dt == ref.dt
        got = gathered(s)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.mpi
def test_parameters_computed_once_per_checkpoint(comm, shared_tmp_path):
    """The physics a checkpoint stores (its state and its attribute) come from one call."""
    with decomp(comm, "heat") as d:
        s = make("heat", d)
        calls = []
        inner = s.parameters

        def counted():
            calls.append(1)
            return inner()
        s.parameters = counted
        s.run(steps=4, checkpoint=str(shared_tmp_path / "ck"), checkpoint_every=1, progress=None)
        assert len(calls) == 4  # saves at 1, 2, 3 and the end


@pytest.mark.mpi
def test_one_boundary_spelling_for_pympc_bc_and_the_solvers(comm):
    """pympc.bc and the solvers' bc= take the same side names ("x-", ...; a TOML job
    file's table as it is), fill the same ghosts, and refuse a bad side with one clear
    InputError, the same text from both, the same on every rank."""
    from pympc.jobs.spec import tomllib

    with pympc.Decomposition((9, 7), comm=comm, periodic=(False, True), spacing=0.125) as d:
        a = pympc.DistArray.from_function(d, lambda x, y: x + 10 * y)
        b = a.copy()
        pympc.update_halo(a, b)
        pbc.dirichlet(a, 2.0, sides=["x-"])
        pbc.neumann(a, sides="x+", flux=0.5)
        Boundaries(d, {"x-": ("dirichlet", 2.0), "x+": ("neumann", 0.5)}).apply(b)
        np.testing.assert_array_equal(a.data, b.data)
        table = tomllib.loads('[bc]\n"x-" = ["dirichlet", 2.0]\n"x+" = ["neumann", 0.5]\n')["bc"]
        assert Heat(d, bc=table).parameters()["bc"] == {"x-": ["dirichlet", 2.0], "x+": ["neumann", 0.5]}
        for bad, words in (("w+", ("unknown side 'w+'", "['x-', 'x+', 'y-', 'y+']")),
                           ((0, -1), ("unknown side (0, -1)",)),
                           ("y-", ("periodic axis",))):
            m1 = refused(comm, lambda: pbc.dirichlet(a, 0.0, sides=[bad]), *words)
            m2 = refused(comm, lambda: Heat(d, bc={bad: ("dirichlet", 0.0)}), *words)
            m3 = refused(comm, lambda: Poisson(d, 1.0, bc={bad: ("dirichlet", 0.0)}), *words)
            assert m1 == m2 == m3
        refused(comm, lambda: Wave(d, bc={"x-": ("robin", 1.0)}), "'x-'", "dirichlet", "neumann")
        refused(comm, lambda: Heat(d, bc={"x-": "dirichlet"}), "'x-'", "(kind, value)")
        refused(comm, lambda: Heat(d, bc=[("x-", "dirichlet")]), "bc must be")
