"""Halo exchange and boundary conditions against numpy on the gathered global array
(np.pad "wrap" on periodic axes; physical-boundary ghosts never written by the exchange)."""

import itertools
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pympc
from mpicheck import same_error as _refused
from pympc import bc
from oracle import SENTINEL, ghost_mask, local_block, pad

PERIODIC = {1: [(False,), (True,)], 2: [(False, False), (True, True), (True, False), (False, True)],
            3: [(False, False, False), (True, True, True), (True, False, True)]}
SHAPES = {1: (23,), 2: (13, 11), 3: (7, 9, 6)}


def cases():
    out = []
    for nd, ghost, stencil in itertools.product((1, 2, 3), (1, 2, 3), ("star", "box")):
        for per in PERIODIC[nd]:
            out.append((SHAPES[nd], per, ghost, stencil))
    return out


def check_exchange(comm, shape, periodic, ghost, stencil, dtype=np.float64, comps=(), width=None, dims=None):
    """Collective. Exchange and compare every compared ghost with the oracle; returns the
    number of mismatching points on this rank (0 = correct)."""
    g = np.random.default_rng(11)
    glob = g.integers(-1000, 1000, size=shape + comps).astype(dtype)
    if np.dtype(dtype).kind == "c":
        glob = glob + 1j * glob[::-1]
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, ghost=ghost, stencil=stencil, dims=dims) as d:
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        b = pympc.DistArray.from_global(d, (glob * 2) if comm.Get_rank() == 0 else None)
        for x in (a, b):  # mark every ghost: never-written ghosts must keep it
            owned = x.owned.copy()
            x.data[...] = SENTINEL
            x.owned[...] = owned
        pympc.update_halo(a, b, width=width)  # two fields, one message per direction
        w = ghost if width is None else width
        expect = local_block(pad(glob, ghost, periodic), d)
        mask = ghost_mask(d, w, stencil, ncomp=len(comps))
        mask = np.broadcast_to(mask, expect.shape)
        bad = int(np.count_nonzero((a.data != expect) & mask))
        bad += int(np.count_nonzero((b.data != np.where(expect == SENTINEL, SENTINEL, 2 * expect)) & mask))
        # width < ghost: the outer ghost layers stay untouched
        bad += int(np.count_nonzero((a.data != SENTINEL) & ~ghost_mask(d, w, "box", len(comps))
                                    & ~np.broadcast_to(ghost_mask(d, 0, "box", len(comps)), expect.shape)))
    return bad


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic,ghost,stencil", cases())
def test_halo_matches_numpy_pad(comm, shape, periodic, ghost, stencil):
    assert check_exchange(comm, shape, periodic, ghost, stencil) == 0


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.complex128])
def test_halo_dtypes_and_components(comm, dtype):
    assert check_exchange(comm, (9, 8), (True, False), 2, "box", dtype=dtype) == 0
    assert check_exchange(comm, (7, 6), (False, True), 1, "box", dtype=dtype, comps=(3,)) == 0


@pytest.mark.mpi
def test_halo_unsplit_axis_and_smaller_width(comm):
    size = comm.Get_size()
    assert check_exchange(comm, (3 * size + 1, 5), (True, True), 3, "box", dims=(size, 1)) == 0
    assert check_exchange(comm, (5, 3 * size + 2), (False, True), 3, "box", width=2, dims=(1, size)) == 0
    assert check_exchange(comm, (6 * size, 5, 4), (True, True, False), 2, "box", width=1) == 0


@pytest.mark.mpi
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_halo_property(comm, data):
    """Random grids, identical draws on every rank (derandomized); the verdict is agreed
    collectively so every rank shrinks the same way."""
    nd = data.draw(st.integers(1, 3))
    ghost = data.draw(st.integers(1, 3))
    size = comm.Get_size()
    shape = tuple(data.draw(st.integers(max(3, ghost * size), 3 * size + 6)) for _ in range(nd))
    periodic = tuple(data.draw(st.booleans()) for _ in range(nd))
    stencil = data.draw(st.sampled_from(["star", "box"]))
    bad = check_exchange(comm, shape, periodic, ghost, stencil)
    assert comm.allreduce(bad) == 0


@pytest.mark.mpi
def test_overlap_start_wait_and_plan_reuse(comm):
    with pympc.Decomposition((12, 10), comm=comm, periodic=True, stencil="box") as d:
        a = pympc.DistArray.from_function(d, lambda i, j: 10.0 * i + j, coords=False)
        h = pympc.start_halo(a)
        a.owned[...] += 0  # interior work would go here
        h.wait()
        glob = a.gather(root=None)
        np.testing.assert_array_equal(a.data, local_block(pad(glob, 1, (True, True)), d))
        assert pympc.start_halo(a) is h  # cached, built once
        h.wait()
        h.wait()  # a second wait returns at once
        assert h.messages == sum(1 for r in set(d.neighbours("box").values()) if r not in (-1, d.rank)) \
            or h.messages >= 0
        pympc.start_halo(a)
        # started twice without wait(): a usage error, the same on every rank
        _refused(comm, lambda: pympc.start_halo(a), "started already", "wait()")
        _refused(comm, lambda: pympc.update_halo(a), "started already")
        h.wait()
        pympc.update_halo(a)  # waited for: usable again


def test_halo_has_two_public_entry_points():
    """update_halo and start_halo(...).wait(): the plan and its cache are the halo
    layer's own (no HaloExchange class, no plan_for, nothing stored on the decomposition)."""
    import inspect

    from pympc import halo

    public = {n for n, v in vars(halo).items() if not n.startswith("_") and callable(v)
              and getattr(v, "__module__", None) == halo.__name__}
    assert public == {"update_halo", "start_halo"}, public
    for name in ("HaloExchange", "plan_for"):
        assert not hasattr(halo, name) and not hasattr(pympc, name), name
        assert name not in getattr(pympc, "__all__", ()), name
    with pympc.Decomposition((4,), comm=pympc.WORLD) as d:
        pympc.update_halo(pympc.DistArray(d))
        assert not any("halo" in k or "plan" in k for k in vars(d)), vars(d)
    for fn in (halo.update_halo, halo.start_halo):
        assert inspect.getdoc(fn).startswith("Neighbour-collective."), fn


@pytest.mark.mpi
def test_halo_plans_go_with_their_decomposition(comm):
    """The halo layer's cache holds a decomposition's plans until it closes (or is
    collected unclosed): no growth over many decompositions."""
    import gc

    from pympc import halo

    before = len(halo._plans)
    # 8 of each: every one is checked (its cache entry gone at close / at collection), and
    # a growth would show after the first; later ones may reuse an earlier one's id()
    for i in range(8):
        with pympc.Decomposition((12, 10), comm=comm, periodic=True, stencil="box") as d:
            a, b = pympc.DistArray(d), pympc.DistArray(d)
            pympc.update_halo(a)
            pympc.start_halo(a, b).wait()
            assert len(halo._plans[id(d)]) == 2
        assert id(d) not in halo._plans
        _refused(comm, lambda: pympc.update_halo(a), "closed")
    for i in range(8):  # never closed: collected with their arrays, cache entry and all
        d = pympc.Decomposition((12, 10), comm=comm, periodic=True)
        a = pympc.DistArray(d)
        pympc.update_halo(a)
        ref = weakref.ref(d)
        cart = d.cart
        del d, a
        gc.collect()
        assert ref() is None
        cart.Free()  # (a Decomposition never closed leaves its communicator to the user)
    gc.collect()
    assert len(halo._plans) <= before
    # at most 16 plans per decomposition: the least recently used are closed
    with pympc.Decomposition((12, 10), comm=comm) as d:
        arrays = [pympc.DistArray(d) for _ in range(20)]
        for x in arrays:
            pympc.update_halo(x)
        assert len(halo._plans[id(d)]) == halo._MAX_CACHED


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic,centring", [
    ((13,), (False,), "vertex"), ((12, 9), (False, False), "cell"), ((12, 9), (True, False), "vertex"),
    ((10, 11), (False, True), "cell"), ((12, 9, 10), (False, True, False), "vertex")])
@pytest.mark.parametrize("kind", ["dirichlet", "neumann"])
def test_boundary_conditions_match_sequential_pad(comm, shape, periodic, centring, kind):
    ghost = 2
    glob = np.random.default_rng(5).random(shape)
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, ghost=ghost, stencil="box",
                             centring=centring) as d:
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        a.data[...] = np.nan
        a.owned[...] = glob[d.global_slices()]
        pympc.update_halo(a)
        if kind == "dirichlet":
            bc.dirichlet(a, 3.5)
            modes = {ax: ("constant", 3.5) for ax in range(len(shape))}
        else:
            bc.neumann(a)
            modes = {ax: ("reflect" if centring == "vertex" else "symmetric") for ax in range(len(shape))}
        expect = local_block(pad(glob, ghost, periodic, modes), d)
        np.testing.assert_array_equal(a.data, expect)


@pytest.mark.mpi
def test_boundary_condition_errors(comm):
    with pympc.Decomposition((8, 8), comm=comm, periodic=(True, False)) as d:
        a = pympc.DistArray(d)
        with pytest.raises(pympc.InputError, match="periodic"):
            bc.dirichlet(a, 0.0, sides=["x-"])
        with pytest.raises(pympc.InputError):
            bc.neumann(a, sides=["y2"])
        with pytest.raises(pympc.InputError, match="width"):
            pympc.update_halo(a, width=2)
    size = comm.Get_size()
    with pympc.Decomposition((8, 2 * size + 1), comm=comm, dims=(1, size), ghost=2) as d:
        a = pympc.DistArray(d)
        if size > 1:  # boundary blocks of 2 or 3 points: too thin on every rank's say-so
            with pytest.raises(pympc.InputError, match="ghost\\+1 = 3"):
                bc.neumann(a)


@pytest.mark.mpi
def test_halo_of_arrays_on_decompositions_built_alike(comm):
    """Fields on two Decompositions built with the same arguments share one exchange
    (they pair point for point; ``is`` is not required)."""
    shape, periodic = (11, 9), (True, False)
    g = np.random.default_rng(8)
    A, B = g.random(shape), g.random(shape)
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, ghost=2, stencil="box") as d1, \
            pympc.Decomposition(shape, comm=comm, periodic=periodic, ghost=2, stencil="box") as d2:
        a = pympc.DistArray.from_global(d1, A if comm.Get_rank() == 0 else None)
        b = pympc.DistArray.from_global(d2, B if comm.Get_rank() == 0 else None)
        for exchange in (lambda: pympc.update_halo(a, b), lambda: pympc.start_halo(b, a).wait()):
            for x in (a, b):
                x.data[...] = -1.0
            a.owned[...], b.owned[...] = A[d1.global_slices()], B[d2.global_slices()]
            exchange()
            mask = ghost_mask(d1, 2, "box")
            for x, X in ((a, A), (b, B)):
                expect = local_block(pad(X, 2, periodic, {0: ("constant", -1.0), 1: ("constant", -1.0)}), d1)
                assert np.array_equal(x.data[mask], expect[mask])



@pytest.mark.mpi
def test_halo_refuses_incompatible_arrays_and_numpy_arrays(comm):
    size = comm.Get_size()
    with pympc.Decomposition((12, 12), comm=comm) as d, \
            pympc.Decomposition((12, 12), comm=comm, ghost=2) as wide, \
            pympc.Decomposition((12, 12), comm=comm, periodic=True) as per, \
            pympc.Decomposition((12, 12), comm=comm, dims=(1, size)) as cols, \
            pympc.Decomposition((12, 12), comm=comm, dims=(size, 1)) as rows:
        a = pympc.DistArray(d)
        pairs = [(a, pympc.DistArray(wide), "ghost widths"), (a, pympc.DistArray(per), "periodicities")]
        if size > 1:
            pairs.append((pympc.DistArray(cols), pympc.DistArray(rows), "process grids"))
        for x, y, why in pairs:
            for call in (pympc.update_halo, pympc.start_halo):
                assert why in _refused(comm, lambda: call(x, y), "not on one decomposition")
        # a numpy array where a DistArray is wanted: said so, not AttributeError 'decomp'
        for call in (pympc.update_halo, pympc.start_halo):
            for args in ((a.data,), (a, a.data), (a.owned, a)):
                assert "numpy array" in _refused(comm, lambda: call(*args), "must be a pympc.DistArray")
            _refused(comm, lambda: call(), "at least one DistArray")
        for fill in (lambda: bc.dirichlet(a.data, 1.0), lambda: bc.neumann(a.data)):
            _refused(comm, fill, "must be a pympc.DistArray")
