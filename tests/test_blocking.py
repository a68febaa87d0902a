"""Deep halos and temporal blocking (issue 18, parts 2-3): k FTCS steps per halo exchange,
tile by tile (pympc.kernels.blocking.heat_steps) or as whole-block sweeps (Heat with
tile=False, or a variable alpha), are bit-identical to k one-step updates with an
exchange before each, at 1-4 ranks, on blocks that do not divide, periodic and not,
1-3D, vertex and cell centring, Dirichlet / Neumann / mixed sides, k = 1, 2, 3, 4, 8 and
tiles that do and do not divide the block; the one-step path itself against a serial
numpy oracle of the global array; the solvers' run loop ends its chunks of k steps at
outputs, checkpoints and signal checks, restarts with another k bit for bit, and sends
k-fold fewer halo messages (counted by the cost log)."""

import os
import signal
import warnings

import numpy as np
import pytest
from mpi4py import MPI

import pympc
from mpicheck import on_root, same_error
from oracle import ftcs
from pympc import costlog, kernels
from pympc.kernels import blocking
from solvers.boundary import Boundaries
from solvers.heat import Heat

KS = (1, 2, 3, 4, 8)  # and 16 (the default on large 2-D blocks) at the solver
SPACING = 0.1  # a flux times a distance that is not a power of two

# global shapes per axis count: no rank count of 2-4 divides them, every block holds
# k + 1 = 9 points (a vertex Neumann side reflects about its boundary point) at k = 8
SHAPES = {1: (37,), 2: (29, 28), 3: (28, 27, 10)}
R = {1: (0.31,), 2: (0.13, 0.21), 3: (0.07, 0.11, 0.09)}  # stable: sum <= 0.5


def dims_for(size, nd, how):
    """The process grid: "auto" (pympc's choice: the first axis split at 2-4 ranks) or
    "other" (another axis split, both of the first two at 4 ranks: box corners cross
    rank boundaries)."""
    if how == "auto" or nd == 1:
        return None
    if size == 4:
        return (2, 2) + (1,) * (nd - 2)
    return (1, size) + (1,) * (nd - 2)


def spec_for(kind, nd, periodic):
    """Boundary conditions of every non-periodic side: all Dirichlet (nonzero values),
    all Neumann with zero flux, all Neumann with nonzero flux, or mixed per side."""
    values = iter((1.0, -0.5, 0.25, 0.75, -1.25, 0.5))
    fluxes = iter((0.5, -0.75, 1.5, -0.25, 0.125, 2.0))
    out = {}
    for a in range(nd):
        if periodic[a]:
            continue
        for i, s in enumerate("-+"):
            name = "xyz"[a] + s
            v, f = next(values), next(fluxes)
            k = kind if kind != "mixed" else ("dirichlet", "neumann")[(a + i) % 2]
            if k == "dirichlet":
                out[name] = ("dirichlet", v)
            elif k == "neumann0":
                out[name] = ("neumann", 0.0)
            else:
                out[name] = ("neumann", f)
    return out


def periodic_for(how, nd):
    return {"none": (False,) * nd, "all": (True,) * nd, "mixed": (True,) + (False,) * (nd - 1)}[how]


def initial(d, dtype, seed=3):
    """A random field, the same global values on every rank count."""
    glob = np.random.default_rng(seed).random(d.shape).astype(dtype)
    u = pympc.DistArray(d, dtype=dtype)
    u.owned[...] = glob[tuple(slice(lo, hi) for lo, hi in zip(d.lo, d.hi))]
    return u


def one_steps(u, bc, r, steps, region, backend=None):
    """The one-step path: ``steps`` times a width-1 exchange, the boundary conditions,
    heat_step over the unknowns, Dirichlet boundary points held. Returns the field."""
    u = u.copy()
    v = u.empty_like()
    v.data[...] = np.nan
    for _ in range(steps):
        pympc.update_halo(u, width=1)
        bc.apply(u)
        kernels.heat_step(u, v, r, region=region, backend=backend)
        bc.fix_points(v)
        u, v = v, u
    return u


def exchanged(u, bc, k):
    """A copy of ``u`` after one box exchange of width k and the boundary conditions: the
    input of k blocked steps (the same for every tile and backend, so made once per k)."""
    u = u.copy()
    pympc.update_halo(u, stencil="box", width=k)
    bc.apply(u)
    return u


def blocked(u, bc, r, k, region, tile, backend):
    """k steps from ``exchanged(u, bc, k)``: heat_steps tile by tile; it must leave its
    input as it found it (ghosts included), which is also what lets the callers reuse one
    exchanged input for every tile and backend."""
    out = u.empty_like()
    out.data[...] = np.nan
    before = u.data.copy()
    blocking.heat_steps(u, out, r, k, edges=bc.edges(), region=region, tile=tile, backend=backend)
    assert np.array_equal(u.data, before, equal_nan=True), "heat_steps wrote into its input"
    bc.fix_points(out)
    return out


def tiles_for(nd):
    """The default, one that divides the 2-3 rank blocks of the last axis, one that divides
    no block (7 x 3 x 5), and one point."""
    return (None, {1: (4,), 2: (4, 4), 3: (2, 3, 5)}[nd], {1: (7,), 2: (7, 3), 3: (7, 3, 5)}[nd], 1)


def same_everywhere(comm, ok, what):
    """Collective: every rank's verdict; the first failing rank's message."""
    bad = comm.allgather(None if ok else what)
    bad = [b for b in bad if b]
    assert not bad, bad[0]


def first_difference(got, want):
    diff = np.argwhere(~((got == want) | (np.isnan(got) & np.isnan(want))))
    if not len(diff):
        return None
    i = tuple(int(x) for x in diff[0])
    return f"first difference at owned index {i}: {got[i]!r} != {want[i]!r} ({len(diff)} points differ)"


def check_kernel(comm, nd, periodic, kind, centring, dims, dtype, backends, ks=KS, tiles=None):
    spec = spec_for(kind, nd, periodic)
    r = R[nd]
    for k in ks:
        with pympc.Decomposition(SHAPES[nd], comm=comm, periodic=periodic, ghost=k, spacing=SPACING,
                                 centring=centring, dims=dims_for(comm.Get_size(), nd, dims)) as d:
            bc = Boundaries(d, spec)
            region = bc.unknown_region()
            u = initial(d, dtype)
            bc.fix_points(u)
            want = one_steps(u, bc, r, k, region).owned.copy()
            ex = exchanged(u, bc, k)
            bad = None  # the first (tile, backend) that differs; every rank's verdict once per k
            for backend in backends:
                for tile in tiles or tiles_for(nd):
                    where = first_difference(blocked(ex, bc, r, k, region, tile, backend).owned, want)
                    if where is not None and bad is None:
                        bad = (f"rank {comm.Get_rank()} of {comm.Get_size()}: heat_steps k={k} tile={tile} "
                               f"backend={backend} {dtype.__name__} bc={spec} centring={centring} "
                               f"dims={d.dims} lo={d.lo}: {where}")
            same_everywhere(comm, bad is None, bad)


# every periodicity with every kind of side (a grid periodic on every axis has none)
KERNEL_CASES = [(nd, periodic, kind) for nd in (1, 2, 3) for periodic in ("none", "all", "mixed")
                for kind in ("dirichlet", "neumann0", "neumann", "mixed")
                if nd > 1 or periodic != "mixed"  # one axis: "mixed" is "all"
                if periodic != "all" or kind == "dirichlet"]


@pytest.mark.mpi
@pytest.mark.parametrize("nd,periodic,kind", KERNEL_CASES)
def test_heat_steps_equal_k_one_step_updates(comm, nd, periodic, kind):
    """Vertex centring, both backends, every k and tile, float64: bit for bit."""
    p = periodic_for(periodic, nd)
    check_kernel(comm, nd, p, kind, "vertex", "auto", np.float64, ("numba", "numpy"))


@pytest.mark.mpi
@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("periodic", ["none", "mixed"])
@pytest.mark.parametrize("kind", ["dirichlet", "neumann", "mixed"])
def test_heat_steps_cell_centring_and_other_process_grids(comm, nd, periodic, kind):
    """Cell centring (Dirichlet through 2 value - x, Neumann mirrored about the face) on
    a process grid split along another axis (both axes at 4 ranks: corners)."""
    check_kernel(comm, nd, periodic_for(periodic, nd), kind, "cell", "other", np.float64, ("numba",))


@pytest.mark.mpi
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("centring", ["vertex", "cell"])
def test_heat_steps_float32(comm, nd, centring):
    """float32 (the Edge constants rounded as pympc.bc rounds them), mixed sides,
    mixed periodicity, both backends."""
    check_kernel(comm, nd, periodic_for("mixed" if nd > 1 else "none", nd), "mixed", centring, "other",
                 np.float32, ("numba", "numpy"))


def test_heat_steps_periodic_grid_dirichlet_and_neumann_against_global_numpy():
    """The serial oracle: k FTCS steps of the padded global array (np.pad wrap /
    constant / reflect plus the flux), boundary points held; one rank."""
    for nd in (1, 2, 3):
        for periodic, kind in (("all", "dirichlet"), ("none", "dirichlet"), ("mixed", "neumann"),
                               ("none", "mixed")):
            p = periodic_for(periodic, nd)
            spec = spec_for(kind, nd, p)
            for k in KS:
                with pympc.Decomposition(SHAPES[nd], comm=MPI.COMM_SELF, periodic=p, ghost=k,
                                         spacing=SPACING) as d:
                    bc = Boundaries(d, spec)
                    u = initial(d, np.float64)
                    bc.fix_points(u)
                    glob = global_steps(u.owned.copy(), bc, R[nd], k, p)
                    ex = exchanged(u, bc, k)
                    for tile in tiles_for(nd):
                        got = blocked(ex, bc, R[nd], k, bc.unknown_region(), tile, "numba").owned
                        where = first_difference(got, glob)
                        assert where is None, f"nd={nd} {periodic} {spec} k={k} tile={tile}: {where}"


def global_steps(glob, bc, r, steps, periodic):
    """The oracle on the global vertex-centred array: pad by one layer axis by axis (as
    pympc.bc fills them: Dirichlet constant, Neumann mirrored about the boundary point
    plus 2 h flux, periodic wrapped), one FTCS step, the Dirichlet points held."""
    nd = glob.ndim
    cond = bc.conditions

    def hold(x):
        for (a, s), (kind, v) in cond.items():
            if kind == "dirichlet":
                idx = [slice(None)] * nd
                idx[a] = 0 if s < 0 else -1
                x[tuple(idx)] = v
        return x
    u = hold(glob)
    for _ in range(steps):
        p = u
        for a in range(nd):
            width = [(0, 0)] * nd
            width[a] = (1, 1)
            if periodic[a]:
                p = np.pad(p, width, mode="wrap")
                continue
            p = np.pad(p, width, mode="constant", constant_values=np.nan)
            for s in (-1, 1):
                kind, v = cond[(a, s)]
                dst, src = [slice(None)] * nd, [slice(None)] * nd
                dst[a], src[a] = (0, 2) if s < 0 else (-1, -3)
                p[tuple(dst)] = v if kind == "dirichlet" else (p[tuple(src)] if v == 0 else
                                                               p[tuple(src)] + 2 * SPACING * v)
        u = hold(ftcs(p, r, 1))
    return u


def test_heat_steps_refuses_bad_arguments():
    with pympc.Decomposition((12, 11), comm=MPI.COMM_SELF, ghost=3, periodic=True) as d:
        u = pympc.DistArray(d).fill(1.0)
        v = u.empty_like()
        for steps in (0, 4, -1):
            with pytest.raises(pympc.InputError, match="steps must be in 1..3"):
                blocking.heat_steps(u, v, 0.1, steps)
        with pytest.raises(pympc.InputError, match="tile"):
            blocking.heat_steps(u, v, 0.1, 2, tile=(0, 4))
        with pytest.raises(pympc.InputError, match="region"):
            blocking.heat_steps(u, v, 0.1, 2, region=[(0, 13), (0, 11)])
        with pytest.raises(pympc.InputError):
            blocking.heat_steps(u, u, 0.1, 2)  # in place
    with pympc.Decomposition((12, 11), comm=MPI.COMM_SELF, ghost=2) as d:
        u = pympc.DistArray(d).fill(1.0)
        with pytest.raises(pympc.InputError, match="physical boundary"):
            blocking.heat_steps(u, u.empty_like(), 0.1, 2)  # no edges for the physical sides


# -- the solvers ------------------------------------------------------------------------
from solvers.heat import default_steps  # noqa: E402
from solvers.poisson import Poisson  # noqa: E402
from solvers.wave import Wave  # noqa: E402

SOLVER_SHAPES = {1: (37,), 2: (29, 28), 3: (28, 28, 10)}
# every non-periodic side, Dirichlet and Neumann mixed (Poisson: Dirichlet only)
SOLVER_BC = {"x-": ("dirichlet", 1.0), "x+": ("neumann", 0.5), "y-": ("neumann", 0.0), "y+": ("dirichlet", -0.5),
             "z-": ("dirichlet", 0.25), "z+": ("neumann", -1.0)}
POISSON_BC = {"x-": ("dirichlet", 1.0), "x+": ("dirichlet", 0.0), "y-": ("dirichlet", 0.25),
              "y+": ("dirichlet", -0.5), "z-": ("dirichlet", 0.5), "z+": ("dirichlet", 0.0)}


def sides(bc, d):
    return {k: v for k, v in bc.items() if "xyz".index(k[0]) < d.ndim and not d.periodic["xyz".index(k[0])]}


def field0(*x):
    return np.sin(3 * x[0] + 0.5) * np.cos(2 * sum(x[1:]) + 0.25) + 0.1 * x[0]


def solver(kind, d, k=None, tile=None, variable=False):
    """A solver of ``kind`` taking ``k`` steps per exchange."""
    if kind == "heat":
        alpha = pympc.DistArray.from_function(d, lambda *x: 0.5 + 0.25 * x[0] + 0.125 * x[-1]) if variable else 0.5
        return Heat(d, alpha=alpha, u0=field0, bc=sides(SOLVER_BC, d), steps_per_exchange=k, tile=tile)
    if kind == "wave":
        return Wave(d, c=1.0, u0=field0, v0=lambda *x: x[0] * x[-1], bc=sides(SOLVER_BC, d), steps_per_exchange=k)
    return Poisson(d, f=lambda *x: 1.0 + x[0] * x[-1], u0=field0, bc=sides(POISSON_BC, d), method="jacobi",
                   tol=1e-15, check_every=5, steps_per_exchange=k)


def state(s):
    return {name: a.gather(root=None) for name, a in s.fields().items()}


def assert_same_state(comm, got, want, what):
    for name in want:
        where = first_difference(got[name], want[name])
        assert where is None, f"{what}: field {name}: {where}"


def decomposition(comm, nd, periodic):
    """The user's decomposition (ghost 1): split along the second axis, both of the first
    two at 4 ranks, so that every block holds 9 points at k = 8 (pympc's own choice
    splits 29 points over 4 ranks into blocks of 7)."""
    shape = SOLVER_SHAPES[nd]
    return pympc.Decomposition(shape, comm=comm, periodic=periodic_for(periodic, nd),
                               dims=dims_for(comm.Get_size(), nd, "other"), spacing=[1.0 / (n - 1) for n in shape])


@pytest.mark.mpi
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("periodic", ["none", "mixed", "all"])
def test_heat_steps_per_exchange_equal_one_step(comm, nd, periodic):
    """Heat with k = 2, 3, 4, 8 steps per exchange, tiled (default and 7 x 3 x 5 tiles)
    or whole-block sweeps (tile=False), and with a variable alpha: 19 steps (no multiple
    of k) give the fields of one step per exchange bit for bit."""
    with decomposition(comm, nd, periodic) as d:
        for variable in (False, True):
            ref = solver("heat", d, 1, variable=variable)
            ref.run(steps=19, progress=None)
            want = state(ref)
            for k in (2, 3, 4, 8):
                for tile in ((None, (7, 3, 5)[:nd], False) if not variable else (None,)):
                    s = solver("heat", d, k, tile, variable)
                    assert s.steps_per_exchange == k and s.u.decomp.ghost == k
                    s.run(steps=19, progress=None)
                    assert s.step_count == 19
                    assert_same_state(comm, state(s), want, f"heat k={k} tile={tile} variable={variable}")


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["wave", "poisson"])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("periodic", ["none", "mixed"])
def test_wave_and_jacobi_steps_per_exchange_equal_one_step(comm, kind, nd, periodic):
    """Wave (leapfrog, the Taylor step included) and Poisson-Jacobi with k = 2, 3, 4, 8
    steps (sweeps) per exchange: the fields of one step per exchange bit for bit, and
    Poisson's residual history too."""
    with decomposition(comm, nd, periodic) as d:
        ref = solver(kind, d, 1)
        ref.run(steps=19, progress=None)
        want = state(ref)
        for k in (2, 3, 4, 8):
            s = solver(kind, d, k)
            assert s.steps_per_exchange == k
            s.run(steps=19, progress=None)
            assert s.step_count == 19
            assert_same_state(comm, state(s), want, f"{kind} k={k}")
            if kind == "poisson":
                assert s.history == ref.history


def expected_chunks(k, steps, periods, start=0):
    """The chunks run() takes: up to k steps, ending at every multiple of a period and
    at the end."""
    out, n = [], start
    while n < steps:
        m = min([k, steps - n] + [p - n % p for p in periods])
        out.append((n, m))
        n += m
    return out


def recording(s):
    """Record ``(step, steps taken)`` of every advance()/advance_steps() call run() makes."""
    calls, inside = [], []
    one, many = s.advance, s.advance_steps

    def advance():
        if not inside:  # not one of the steps of a chunk taken one by one (wave's first)
            calls.append((s.step_count, 1))
        one()

    def advance_steps(m):
        calls.append((s.step_count, m))
        inside.append(m)
        try:
            many(m)
        finally:
            inside.pop()
    s.advance, s.advance_steps = advance, advance_steps
    return calls


def series(path):
    """{step: {name: values}} of an output file."""
    import h5py

    with h5py.File(path, "r") as f:
        return {int(n): {name: f["steps"][n][name][...] for name in f["steps"][n]} for n in f["steps"]}


# (k, tile) runs per kind; heat's three share one one-step reference run
CHUNK_RUNS = {"heat": ((4, None), (3, (7, 3)), (8, False)), "wave": ((4, None),), "poisson": ((4, None),)}


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_chunks_end_at_outputs_checkpoints_and_signal_checks(comm, shared_tmp_path, kind):
    """run(steps=17) with output_every=5, checkpoint_every=7 and signal_check_every=6 (no
    multiples of k; each period ends chunks at least twice, the last step is none of
    them): every chunk ends at those steps, the output series holds the same steps and
    values as the one-step run's, the checkpoints are at the same steps."""
    top = shared_tmp_path
    runs = {}
    for kk, tile in ((1, None),) + CHUNK_RUNS[kind]:
        out, ck = str(top / f"run{kk}.h5"), str(top / f"ck{kk}")
        with decomposition(comm, 2, "mixed") as d:
            s = solver(kind, d, kk, tile)
            calls = recording(s)
            s.run(steps=17, output=out, output_every=5, checkpoint=ck, checkpoint_every=7,
                  signal_check_every=6, progress=None)
            periods = (5, 7, 6) + ((5,) if kind == "poisson" else ())
            assert calls == expected_chunks(kk, 17, periods), calls
            runs[kk] = (state(s), out, ck)
        if kk == 1:
            continue
        assert_same_state(comm, runs[kk][0], runs[1][0], f"{kind} k={kk} tile={tile}")

        def check():
            a, b = series(runs[kk][1]), series(runs[1][1])
            first = 5 if kind == "poisson" else 0
            assert sorted(a) == sorted(b) == sorted({first, 5, 10, 15, 17}), (sorted(a), sorted(b))
            for n in b:
                for name in b[n]:
                    assert first_difference(a[n][name], b[n][name]) is None, f"k={kk} step {n} {name}"
            assert sorted(os.listdir(runs[kk][2])) == sorted(os.listdir(runs[1][2]))
            assert "checkpoint_00000017.h5" in os.listdir(runs[kk][2]), os.listdir(runs[kk][2])
        on_root(comm, check)


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_restart_with_another_k_continues_bit_identically(comm, shared_tmp_path, kind):
    """Checkpointed at step 13 with k = 4 (tiles of 7 x 3), restarted with k = 3, then
    k = 1 and on with k = 8: the fields of one uninterrupted one-step run. (Each run
    checkpoints at its end only: a restart reads the newest checkpoint, and where chunks
    end at periodic checkpoints is the chunk test's.)"""
    ck = str(shared_tmp_path / "ck")
    with decomposition(comm, 2, "mixed") as d:
        ref = solver(kind, d, 1)
        ref.run(steps=27, progress=None)
        s = solver(kind, d, 4, (7, 3))
        s.run(steps=13, checkpoint=ck, progress=None)
        for k, end in ((3, 20), (1, 22), (8, 27)):
            r = solver(kind, d, k)
            r.run(steps=end, checkpoint=ck, restart=True, progress=None)
            assert r.step_count == end and r.start_step == s.step_count, (r.step_count, r.start_step)
            s = r
        assert_same_state(comm, state(r), state(ref), f"{kind} restarted")


@pytest.mark.mpi
@pytest.mark.parametrize("kind,k", [("heat", 4), ("heat", 8), ("wave", 4), ("poisson", 3)])
def test_a_signal_stops_at_the_next_signal_check_step(comm, shared_tmp_path, kind, k):
    """SIGUSR1 during the chunk that takes step 8, signal_check_every=6: the run checkpoints
    at step 12 (not 8, not past 12) and stops, with the one-step run's fields at 12."""
    ck = str(shared_tmp_path / "ck")
    with decomposition(comm, 2, "mixed") as d:
        ref = solver(kind, d, 1)
        ref.run(steps=12, progress=None)
        s = solver(kind, d, k)
        many = s.advance_steps

        def advance_steps(m):
            many(m)
            if s.step_count < 8 <= s.step_count + m:
                os.kill(os.getpid(), signal.SIGUSR1)
        s.advance_steps = advance_steps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s.run(steps=29, checkpoint=ck, signal_check_every=6, progress=None)
        assert s.interrupted and s.step_count == 12, (s.interrupted, s.step_count)
        assert_same_state(comm, state(s), state(ref), f"{kind} k={k} interrupted")
    on_root(comm, lambda: os.listdir(ck) == ["checkpoint_00000012.h5"] or (_ for _ in ()).throw(
        AssertionError(f"checkpoints: {os.listdir(ck)}")))


def halo_counts(kind, d, k, steps):
    """(halo supersteps, halo exchanges) of a run of ``steps`` steps, from the cost log."""
    s = solver(kind, d, k)
    label = "poisson:sweep" if kind == "poisson" else f"{kind}:halo"
    with costlog.Log() as log:
        s.run(steps=steps, progress=None, signals=())
    lab = log.local()["labels"][label]
    return lab["count"], lab["kinds"]["halo"]["count"]


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_the_cost_log_counts_k_fold_fewer_halo_exchanges(comm, kind):
    """24 steps: the one-step path exchanges every step, k steps per exchange exchange
    once per k steps (wave: its first chunk, with the Taylor step, one step at a time;
    Poisson: 30 sweeps, chunks ending at the residual checks every 5)."""
    with decomposition(comm, 2, "mixed") as d:
        if kind == "poisson":
            for k in (1, 2, 3):  # chunks end at the residual checks (every 5): 2 + 2 + 1, 3 + 2
                steps, per = halo_counts(kind, d, k, 30)
                assert per == {1: 30, 2: 18, 3: 12}[k], (k, per)
            return
        for k in (1, 2, 3, 4, 8):
            want = 24 // k + (k - 1 if kind == "wave" else 0)
            steps, per = halo_counts(kind, d, k, 24)
            assert (steps, per) == (want, want), (k, steps, per)


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_bad_steps_per_exchange_is_one_input_error_line(comm, kind):
    with decomposition(comm, 2, "mixed") as d:
        for bad in (0, -1, 2.5, True, "4", 33, np.float64(2.0)):
            msg = same_error(comm, lambda: solver(kind, d, bad), None, "steps_per_exchange", repr(bad))
            assert "\n" not in msg, msg


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_a_block_thinner_than_k_is_the_decompositions_input_error(comm, kind):
    """12 x 11 points, 13 steps per exchange: every block is thinner than 13 at any rank
    count; one InputError, the same on every rank (no rank waits in a collective)."""
    with pympc.Decomposition((12, 11), comm=comm, periodic=(True, False)) as d:
        msg = same_error(comm, lambda: solver(kind, d, 13), None)
        assert "\n" not in msg and "13" in msg, msg


def test_default_steps_rule():
    """docs/blocking.md's rule: BLOCKED_STEPS on a 2-D grid with a constant alpha and
    blocks of at least BLOCKED_MIN points per axis, else 1 (3-D, small blocks, a
    variable alpha); the default run equals one step per exchange, bit for bit."""
    from solvers.heat import BLOCKED_MIN, BLOCKED_STEPS

    n = BLOCKED_MIN
    with pympc.Decomposition((n + 6, n), comm=MPI.COMM_SELF, spacing=0.1, periodic=(True, False)) as d:
        assert default_steps(d) == BLOCKED_STEPS > 1
        s = Heat(d, u0=field0, bc={"y-": ("dirichlet", 1.0), "y+": ("neumann", 0.5)})
        assert s.steps_per_exchange == BLOCKED_STEPS
        ref = Heat(d, u0=field0, bc={"y-": ("dirichlet", 1.0), "y+": ("neumann", 0.5)}, steps_per_exchange=1)
        for solver_ in (s, ref):
            solver_.run(steps=BLOCKED_STEPS + 3, progress=None)
        where = first_difference(s.u.owned, ref.u.owned)
        assert where is None, where
        assert default_steps(d, variable=True) == 1
        assert Heat(d, alpha=pympc.DistArray(d).fill(1.0)).steps_per_exchange == 1
    with pympc.Decomposition((n + 6, n - 1), comm=MPI.COMM_SELF) as d:
        assert default_steps(d) == 1
    with pympc.Decomposition((n, n, n), comm=MPI.COMM_SELF) as d:
        assert default_steps(d) == 1


@pytest.mark.mpi
@pytest.mark.parametrize("periodic", ["none", "mixed", "all"])
def test_heat_sixteen_steps_per_exchange(comm, periodic):
    """k = 16 (the most a solver takes, and the default on large 2-D blocks): tiled with
    the default tiles, 7 x 3 tiles, and whole-block sweeps, equal to one step per
    exchange over 37 steps (53 x 37: blocks of at least 17 at 1-4 ranks)."""
    shape = (53, 37)
    dims = (2, 2) if comm.Get_size() == 4 else None
    with pympc.Decomposition(shape, comm=comm, periodic=periodic_for(periodic, 2), dims=dims,
                             spacing=[1.0 / (n - 1) for n in shape]) as d:
        ref = solver("heat", d, 1)
        ref.run(steps=37, progress=None)
        for tile in (None, (7, 3), False):
            s = solver("heat", d, 16, tile)
            s.run(steps=37, progress=None)
            assert_same_state(comm, state(s), state(ref), f"heat k=16 tile={tile}")


def test_heat_steps_bad_tile_is_one_input_error():
    """(Was numpy's broadcast / int() ValueError, and 2.5 was taken as 2.)"""
    with pympc.Decomposition((12, 11), comm=MPI.COMM_SELF, ghost=3, periodic=True) as d:
        u = pympc.DistArray(d).fill(1.0)
        for tile in ((1, 2, 3), "abc", (2.5, 3), (4, -1), (0, 3), True):
            with pytest.raises(pympc.InputError, match="tile") as err:
                blocking.heat_steps(u, u.empty_like(), 0.1, 2, tile=tile)
            assert "\n" not in str(err.value)


@pytest.mark.mpi
def test_heat_refuses_a_bad_tile_when_constructed(comm):
    """(Was unchecked until the first chunk of k steps, after run() had opened its output.)"""
    with decomposition(comm, 2, "mixed") as d:
        for tile in ((0, 3), (1, 2, 3), "abc", 2.5, True, (7,)):
            msg = same_error(comm, lambda: Heat(d, steps_per_exchange=3, tile=tile), None, "tile", repr(tile))
            assert "\n" not in msg, msg


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["heat", "wave", "poisson"])
def test_a_decomposition_with_wide_ghosts_is_used_as_it_is(comm, kind):
    """Ghosts 3 wide: k = 1, 2, 3 run on the user's decomposition itself (no copy), k = 4
    on one built alike; all four give the same fields, also to a t_end (heat, wave: dt
    shortened once) that is no multiple of the steps."""
    shape = SOLVER_SHAPES[2]
    with pympc.Decomposition(shape, comm=comm, periodic=(True, False), ghost=3,
                             dims=dims_for(comm.Get_size(), 2, "other"), spacing=[1.0 / (n - 1) for n in shape]) as d:
        runs = []
        for k in (1, 2, 3, 4):
            s = solver(kind, d, k)
            assert (s.u.decomp is d) == (k <= 3), (k, s.u.decomp.ghost)
            if kind == "poisson":
                s.run(steps=17, progress=None)
            else:
                s.run(t_end=17.5 * s.dt, progress=None)
            runs.append(state(s))
        for k, got in zip((2, 3, 4), runs[1:]):
            assert_same_state(comm, got, runs[0], f"{kind} ghost 3, k={k}")


@pytest.mark.mpi
@pytest.mark.parametrize("centring", ["vertex", "cell"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_heat_cell_centring_and_float32(comm, centring, dtype):
    """Heat on a cell-centred grid (Dirichlet through 2 value - x, Neumann about the
    face) and in float32: k = 4 (default tiles), 3 (7 x 3 tiles) and 8 (whole-block
    sweeps) equal one step per exchange, and the field stays in its dtype."""
    shape = SOLVER_SHAPES[2]
    with pympc.Decomposition(shape, comm=comm, periodic=(True, False), centring=centring, spacing=0.03,
                             dims=dims_for(comm.Get_size(), 2, "other")) as d:
        u0 = initial(d, dtype)
        bc = {"y-": ("dirichlet", 1.0), "y+": ("neumann", 0.5)}
        runs = {}
        for k, tile in ((1, None), (4, None), (3, (7, 3)), (8, False)):
            s = Heat(d, alpha=0.5, u0=u0, bc=bc, steps_per_exchange=k, tile=tile)
            s.run(steps=19, progress=None)
            assert s.u.dtype == dtype
            runs[k, tile] = state(s)
        for key, got in runs.items():
            assert_same_state(comm, got, runs[1, None], f"heat {centring} {dtype.__name__} k, tile = {key}")
