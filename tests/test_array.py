"""DistArray against numpy on the gathered global array: scatter/gather, from_function,
reductions (fused), arithmetic; dtypes, components, sizes that do not divide."""

import numpy as np
import pytest

import pympc
from pympc.array import reduce_all

DTYPES = [np.int32, np.int64, np.float32, np.float64, np.complex128]
SHAPES = [((13,), ()), ((7, 10), ()), ((5, 6, 7), ()), ((9, 5), (3,)), ((4, 5, 3), (2, 2))]


def global_data(shape, comps, dtype, seed=0):
    g = np.random.default_rng(seed)
    x = g.integers(-50, 50, size=shape + comps)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * g.integers(-50, 50, size=shape + comps)
    return x.astype(dtype)


@pytest.mark.mpi
@pytest.mark.parametrize("shape,comps", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_gather_roundtrip(comm, shape, comps, dtype):
    glob = global_data(shape, comps, dtype)
    root = comm.Get_size() - 1
    with pympc.Decomposition(shape, comm=comm, periodic=True) as d:
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == root else None, root=root)
        assert a.dtype == np.dtype(dtype) and a.components == comps
        np.testing.assert_array_equal(a.owned, glob[d.global_slices()])
        assert (a.data[tuple(slice(0, 1) for _ in shape)] == 0).all()  # ghosts untouched
        back = a.gather(root=0)
        if comm.Get_rank() == 0:
            np.testing.assert_array_equal(back, glob)
        else:
            assert back is None  # only the root allocates the global array
        np.testing.assert_array_equal(a.gather(root=None), glob)


@pytest.mark.mpi
def test_from_global_rejects_wrong_shape_everywhere(comm):
    with pympc.Decomposition((6, 4), comm=comm) as d:
        with pytest.raises(pympc.InputError, match="does not match"):
            pympc.DistArray.from_global(d, np.zeros((6, 5)) if comm.Get_rank() == 0 else None)
        with pytest.raises(pympc.InputError, match="numeric dtype"):
            pympc.DistArray(d, dtype=object)


@pytest.mark.mpi
def test_from_function_indices_and_coordinates(comm):
    with pympc.Decomposition((9, 7), comm=comm, spacing=(0.5, 2.0), centring="cell") as d:
        a = pympc.DistArray.from_function(d, lambda i, j: 100 * i + j, dtype=np.int64)
        i, j = np.meshgrid(np.arange(9), np.arange(7), indexing="ij")
        np.testing.assert_array_equal(a.gather(root=None), 100 * i + j)
        b = pympc.DistArray.from_function(d, lambda x, y: x * y, coords=True)
        np.testing.assert_allclose(b.gather(root=None), ((i + 0.5) * 0.5) * ((j + 0.5) * 2.0))
        v = pympc.DistArray.from_function(d, lambda i, j: np.stack(np.broadcast_arrays(i, j), -1),
                                          dtype=np.int64, components=(2,))
        np.testing.assert_array_equal(v.gather(root=None), np.stack([i, j], -1))


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", [np.int64, np.float64, np.complex128])
def test_reductions_match_numpy(comm, dtype):
    shape = (11, 6)
    glob = global_data(shape, (), dtype, seed=3)
    other = global_data(shape, (), dtype, seed=4)
    with pympc.Decomposition(shape, comm=comm) as d:
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        b = pympc.DistArray.from_global(d, other if comm.Get_rank() == 0 else None)
        assert a.sum() == pytest.approx(glob.sum())
        assert a.dot(b) == pytest.approx(np.vdot(glob, other))
        assert a.norm(1) == pytest.approx(np.abs(glob).sum())
        assert a.norm(2) == pytest.approx(np.linalg.norm(glob.ravel()))
        assert a.norm(np.inf) == pytest.approx(np.abs(glob).max())
        if np.dtype(dtype).kind != "c":
            assert a.min() == glob.min() and a.max() == glob.max()
            assert type(a.min()) is np.dtype(dtype).type
            # several reductions, one Allreduce (mixed sum/max/min)
            s, mx, mn, n2 = reduce_all(("sum", a), ("max", b), ("min", a), ("norm2", b))
            assert (s, mx, mn) == (pytest.approx(glob.sum()), other.max(), glob.min())
            assert n2 == pytest.approx(np.linalg.norm(other))
        with pytest.raises(pympc.InputError):
            a.norm(3)


@pytest.mark.mpi
def test_reduce_all_issues_one_allreduce(comm):
    class Counting:  # a communicator that counts its collectives
        def __init__(self, c):
            self.c, self.calls = c, []

        def __getattr__(self, name):
            self.calls.append(name)
            return getattr(self.c, name)

    with pympc.Decomposition((8, 8), comm=comm) as d:
        a = pympc.DistArray.from_function(d, lambda i, j: i + j)
        counting = Counting(d.cart)
        out = reduce_all(("sum", a), ("max", a), ("norm2", a), ("min", a), ("dot", a, a), comm=counting)
        assert counting.calls == ["Allreduce"]
        glob = a.gather(root=None)
        assert out == [pytest.approx(glob.sum()), glob.max(), pytest.approx(np.linalg.norm(glob)),
                       glob.min(), pytest.approx((glob * glob).sum())]
        # partial values a rank computed itself travel in the same Allreduce
        me, P = comm.Get_rank(), comm.Get_size()
        counting.calls.clear()
        out = reduce_all(("dot", a, a), ("sum", float(me + 1)), ("max", 10 * me), comm=counting)
        assert counting.calls == ["Allreduce"]
        assert out == [pytest.approx((glob * glob).sum()), P * (P + 1) / 2, 10 * (P - 1)]
        assert reduce_all(("sum", 2.0), comm=d.cart) == [2.0 * P]
        with pytest.raises(pympc.InputError, match="comm="):
            reduce_all(("sum", 1.0))
        with pytest.raises(pympc.InputError, match="sum, min or max"):
            reduce_all(("norm2", 1.0), comm=d.cart)


@pytest.mark.mpi
def test_arithmetic_on_owned_cells(comm):
    shape = (10, 3)
    with pympc.Decomposition(shape, comm=comm) as d:
        x = pympc.DistArray.from_function(d, lambda i, j: 1.0 + i + j)
        y = pympc.DistArray.from_function(d, lambda i, j: 2.0 * i - j)
        X, Y = x.gather(root=None), y.gather(root=None)
        np.testing.assert_allclose(((x + y) * 2.0 - y / x).gather(root=None), (X + Y) * 2.0 - Y / X)
        z = x.copy()
        z += y
        z *= 3
        z.axpy(0.5, x)
        np.testing.assert_allclose(z.gather(root=None), (X + Y) * 3 + 0.5 * X)
        np.testing.assert_allclose((-x).gather(root=None), -X)
        assert x.copy().fill(2.5).sum() == pytest.approx(2.5 * 30)
