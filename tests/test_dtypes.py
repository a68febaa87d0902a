"""Every dtype of pympc.array.SUPPORTED_DTYPES through the array layer, against numpy on
the global array: halo exchange (periodic and not, star and box, two fields of different
dtypes in one message), scatter/from_global, gather, and every reduction (sum, min, max,
norm1, norm2, norminf, dot, and several in one reduce_all), on grids that do not divide
evenly over 1-4 ranks. (HDF5 I/O of the same dtypes: tests/test_io.py.)"""

import numpy as np
import pytest

import pympc
from pympc.array import SUPPORTED_DTYPES, reduce_all
from oracle import local_block, pad

NAMES = [str(t) for t in SUPPORTED_DTYPES]
# grids that divide unevenly at 2, 3 and 4 ranks; ghost widths the blocks allow
GRIDS = [((23,), 2), ((7, 5), 1), ((9, 7), 2), ((5, 4, 3), 1)]


def test_supported_dtypes_are_the_documented_list():
    assert NAMES == ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                     "float16", "float32", "float64", "complex64", "complex128"]
    assert all(t.isnative for t in SUPPORTED_DTYPES)


def values(shape, dtype, seed=0):
    """Global test data of ``dtype``: the full range of small integers (negative too),
    fractions for floats, both parts for complex; no NaN (NaN is tested apart)."""
    g = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return g.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = max(info.min, -100), min(info.max, 100)
        return g.integers(lo, hi, size=shape, endpoint=True).astype(dt)
    x = np.round(g.normal(0.0, 20.0, size=shape), 2)
    if dt.kind == "c":
        x = x + 1j * np.round(g.normal(0.0, 20.0, size=shape), 2)
    return x.astype(dt)


def other(x):
    """A value different from ``x`` at every point (to spot ghosts that were or were
    not written)."""
    if x.dtype.kind == "b":
        return ~x
    if x.dtype.kind in "iu":
        return x ^ np.asarray(1, dtype=x.dtype)
    return x + np.asarray(1, dtype=x.dtype)


def halo_mismatches(comm, shape, ghost, periodic, stencil, dtypes):
    """Collective. Exchange one field per dtype in one call; count the points where a
    ghost that should be written differs from numpy's pad of the global array, or one
    that should not (a physical boundary, a corner of a star stencil) was touched."""
    from oracle import ghost_mask

    globs = [values(shape, dt, seed=k) for k, dt in enumerate(dtypes)]
    bad = 0
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, ghost=ghost, stencil=stencil) as d:
        arrays, expects, before = [], [], []
        for glob in globs:
            a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
            expect = local_block(pad(glob, ghost, periodic, {ax: ("constant", 0) for ax in range(len(shape))}), d)
            a.data[...] = other(expect)   # every ghost differs from what it should become
            a.owned[...] = glob[d.global_slices()]
            arrays.append(a)
            expects.append(expect)
            before.append(a.data.copy())
        pympc.update_halo(*arrays)
        mask = ghost_mask(d, ghost, stencil)
        # ghosts beyond a physical boundary belong to the boundary conditions
        for ax in range(d.ndim):
            for side in (-1, 1):
                if d.at_boundary(ax, side):
                    idx = [slice(None)] * d.ndim
                    idx[ax] = slice(0, ghost) if side < 0 else slice(ghost + d.local_shape[ax], None)
                    mask = mask.copy()
                    mask[tuple(idx)] = False
        for a, expect, old in zip(arrays, expects, before):
            bad += int(np.count_nonzero((a.data != expect) & mask))
            bad += int(np.count_nonzero((a.data != old) & ~mask))
    return comm.allreduce(bad)


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", NAMES)
def test_halo_every_dtype(comm, dtype):
    """Every grid with both stencils; the periodicity (all, none, first axis only) taken in
    turn, so that each dtype meets all three. The dtype enters the exchange only as the
    element datatype of its subarrays (pympc.array.mpi_type) and in the numpy copies of
    periodic self-neighbours; which neighbours and regions there are is the same for
    every dtype (tests/test_halo.py: every periodicity with every grid)."""
    turn = 0
    for shape, ghost in GRIDS:
        nd = len(shape)
        for stencil in ("star", "box"):
            periodic = ((True,) * nd, (False,) * nd, (True,) + (False,) * (nd - 1))[turn % 3]
            turn += 1
            assert halo_mismatches(comm, shape, ghost, periodic, stencil, [dtype]) == 0, \
                (shape, ghost, periodic, stencil)


@pytest.mark.mpi
def test_halo_mixed_dtypes_in_one_message(comm):
    # one struct datatype per direction carries fields of different element sizes
    for dtypes in (["float16", "float64", "bool"], ["complex64", "uint8", "int64", "float32"]):
        for periodic in ((True, True), (False, True)):
            assert halo_mismatches(comm, (9, 7), 2, periodic, "box", dtypes) == 0


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", NAMES)
def test_scatter_and_gather_every_dtype(comm, dtype):
    size = comm.Get_size()
    for shape, comps in (((23,), ()), ((7, 5), ()), ((5, 4, 3), ()), ((7, 5), (3,))):
        glob = values(shape + comps, dtype, seed=3)
        root = size - 1
        with pympc.Decomposition(shape, comm=comm) as d:
            a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == root else None, root=root)
            assert a.dtype == np.dtype(dtype) and a.components == comps
            assert np.array_equal(a.owned, glob[d.global_slices()])
            back = a.gather(root=0)
            assert (back is None) == (comm.Get_rank() != 0)
            if back is not None:
                assert back.dtype == np.dtype(dtype) and np.array_equal(back, glob)
            every = a.gather(root=None)
            assert every.dtype == np.dtype(dtype) and np.array_equal(every, glob)


@pytest.mark.mpi
def test_float_bits_travel_unchanged(comm):
    # NaN payloads, infinities, signed zeros and subnormals arrive bit for bit
    for dtype, bits in ((np.float16, np.uint16), (np.float32, np.uint32), (np.float64, np.uint64)):
        special = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0,
                            np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max], dtype=dtype)
        glob = np.resize(special, (11, 3))
        glob.view(bits)[0, 0] |= 1  # a NaN with a payload
        with pympc.Decomposition((11, 3), comm=comm, periodic=True, stencil="box") as d:
            a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
            pympc.update_halo(a)
            expect = local_block(pad(glob, 1, (True, True)), d)
            assert np.array_equal(a.data.view(bits), expect.view(bits))
            assert np.array_equal(a.gather(root=None).view(bits), glob.view(bits))


def _tolerance(dtype):
    return {"float16": 1e-3, "float32": 1e-5, "complex64": 1e-5}.get(str(np.dtype(dtype)), 1e-12)


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", NAMES)
def test_reductions_every_dtype(comm, dtype):
    dt = np.dtype(dtype)
    shape = (11, 6)
    glob, glob2 = values(shape, dt, seed=5), values(shape, dt, seed=6)
    wide = np.complex128 if dt.kind == "c" else np.float64
    rel = _tolerance(dt)
    with pympc.Decomposition(shape, comm=comm) as d:
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        b = pympc.DistArray.from_global(d, glob2 if comm.Get_rank() == 0 else None)
        if dt.kind in "biu":  # exact integers, like numpy's sum (64-bit accumulator)
            acc = np.uint64 if dt.kind == "u" else np.int64
            assert a.sum() == int(glob.sum(dtype=acc)) and type(a.sum()) is int
            assert a.dot(b) == int((glob.astype(acc) * glob2.astype(acc)).sum())
        else:
            assert a.sum() == pytest.approx(glob.astype(wide).sum(), rel=rel)
            assert a.dot(b) == pytest.approx(np.vdot(glob.astype(wide), glob2.astype(wide)), rel=rel)
        g = glob.astype(wide)
        assert a.norm(1) == pytest.approx(np.abs(g).sum(), rel=rel)
        assert a.norm(2) == pytest.approx(np.linalg.norm(g.ravel()), rel=rel)
        assert a.norm(np.inf) == pytest.approx(np.abs(g).max(), rel=rel)
        if dt.kind == "c":
            for f in (a.min, a.max):
                with pytest.raises(pympc.InputError, match="no order"):
                    f()
            return
        # min and max: exact, in the array's dtype (bool: max is any, min is all)
        for got, want in ((a.min(), glob.min()), (a.max(), glob.max())):
            assert got == want and type(got) is dt.type
        # several in one Allreduce give the same values as one at a time
        s, mx, mn, n2, n1, ninf, dot, part = reduce_all(
            ("sum", a), ("max", b), ("min", a), ("norm2", b), ("norm1", a), ("norminf", b), ("dot", a, b),
            ("max", comm.Get_rank()))
        assert (mx, mn) == (b.max(), a.min())
        if dt.kind in "biu":
            assert (s, dot) == (a.sum(), a.dot(b))
        else:  # MPI may add the ranks' parts in another order in a mixed request
            assert (s, dot) == (pytest.approx(a.sum(), rel=rel), pytest.approx(a.dot(b), rel=rel))
        assert type(mx) is dt.type and type(mn) is dt.type
        assert (n2, n1, ninf) == (pytest.approx(b.norm(2)), pytest.approx(a.norm(1)),
                                  pytest.approx(b.norm(np.inf)))
        assert part == comm.Get_size() - 1


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int32"])
def test_min_max_of_small_types_agree_with_numpy_on_all_equal_and_extreme_values(comm, dtype):
    dt = np.dtype(dtype)
    with pympc.Decomposition((9, 5), comm=comm) as d:
        for fill in ([True, False] if dt.kind == "b" else [np.iinfo(dt).min, np.iinfo(dt).max]):
            a = pympc.DistArray(d, dt).fill(fill)
            assert a.min() == fill and a.max() == fill
        if dt.kind == "b":  # one True somewhere: any is True, all is False
            a = pympc.DistArray.from_function(d, lambda i, j: (i == 8) & (j == 4), dtype=dt, coords=False)
            assert (a.max(), a.min()) == (True, False)


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_nan_wins_min_and_max_as_in_numpy(comm, dtype):
    size = comm.Get_size()
    for where in range(size):  # the NaN on each rank in turn
        with pympc.Decomposition((4 * size + 1,), comm=comm) as d:
            a = pympc.DistArray.from_function(d, lambda i: i, dtype=dtype, coords=False)
            if d.rank == where:
                a.owned[0] = np.nan
            assert np.isnan(a.max()) and np.isnan(a.min()) and np.isnan(a.norm(np.inf))
            mx, s = reduce_all(("max", a), ("sum", 1.0))  # the mixed path too
            assert np.isnan(mx) and s == size


@pytest.mark.mpi
def test_integers_stay_exact_in_a_mixed_request(comm):
    # int64 values beyond 2**53 and uint64 values beyond 2**63: float64 would round them
    size = comm.Get_size()
    big = 2 ** 60
    with pympc.Decomposition((3 * size + 2,), comm=comm) as d:
        a = pympc.DistArray.from_function(d, lambda i: big + 3 * i, dtype=np.int64, coords=False)
        u = pympc.DistArray.from_function(d, lambda i: np.uint64(2 ** 63) + np.uint64(7) * i.astype(np.uint64),
                                          dtype=np.uint64, coords=False)
        glob, uglob = a.gather(root=None), u.gather(root=None)
        s, mx, mn, us, umx, f = reduce_all(("sum", a), ("max", a), ("min", a), ("sum", u), ("max", u),
                                           ("sum", 0.5))
        assert s == int(glob.sum()) and mx == glob.max() and mn == glob.min()
        assert us == int(uglob.sum())  # wraps modulo 2**64 exactly as numpy's uint64 sum
        assert umx == uglob.max() and type(umx) is np.uint64
        assert f == 0.5 * size


@pytest.mark.mpi
def test_unsupported_dtypes_are_refused_everywhere_with_the_list(comm):
    with pympc.Decomposition((6,), comm=comm) as d:
        for bad in (object, "U3", np.longdouble, np.clongdouble, "datetime64[s]"):
            if np.dtype(bad) in SUPPORTED_DTYPES:  # longdouble is double on some platforms
                continue
            with pytest.raises(pympc.InputError, match="float16") as err:
                pympc.DistArray(d, dtype=bad)
            assert len(set(comm.allgather(str(err.value)))) == 1
        # another byte order is the same dtype, stored natively
        assert pympc.DistArray(d, dtype=">f8").dtype == np.dtype(np.float64)
        glob = np.arange(6, dtype=">i4")
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        assert a.dtype == np.dtype(np.int32) and a.dtype.isnative
        assert np.array_equal(a.gather(root=None), glob)
