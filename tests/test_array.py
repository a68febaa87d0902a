"""DistArray against numpy on the gathered global array: scatter/gather, from_function,
reductions (fused), arithmetic; dtypes, components, sizes that do not divide."""

import numpy as np
import pytest

import pympc
from mpicheck import same_error as _same_error_everywhere
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
        a = pympc.DistArray.from_function(d, lambda i, j: 100 * i + j, dtype=np.int64, coords=False)
        i, j = np.meshgrid(np.arange(9), np.arange(7), indexing="ij")
        np.testing.assert_array_equal(a.gather(root=None), 100 * i + j)
        b = pympc.DistArray.from_function(d, lambda x, y: x * y)
        np.testing.assert_allclose(b.gather(root=None), ((i + 0.5) * 0.5) * ((j + 0.5) * 2.0))
        v = pympc.DistArray.from_function(d, lambda i, j: np.stack(np.broadcast_arrays(i, j), -1),
                                          dtype=np.int64, components=(2,), coords=False)
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
        a = pympc.DistArray.from_function(d, lambda i, j: i + j, coords=False)
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
        x = pympc.DistArray.from_function(d, lambda i, j: 1.0 + i + j, coords=False)
        y = pympc.DistArray.from_function(d, lambda i, j: 2.0 * i - j, coords=False)
        X, Y = x.gather(root=None), y.gather(root=None)
        np.testing.assert_allclose(((x + y) * 2.0 - y / x).gather(root=None), (X + Y) * 2.0 - Y / X)
        z = x.copy()
        z += y
        z *= 3
        z.axpy(0.5, x)
        np.testing.assert_allclose(z.gather(root=None), (X + Y) * 3 + 0.5 * X)
        np.testing.assert_allclose((-x).gather(root=None), -X)
        assert x.copy().fill(2.5).sum() == pytest.approx(2.5 * 30)




def _two_array_operations(a, b):
    """Every operation that combines two DistArrays point for point."""
    def inplace(op):
        def run():
            c = a.copy()
            op(c, b)
        return run

    def iadd(c, o): c += o
    def isub(c, o): c -= o
    def imul(c, o): c *= o
    def idiv(c, o): c /= o
    return {"dot": lambda: a.dot(b), "reduce_all dot": lambda: reduce_all(("sum", a), ("dot", a, b)),
            "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
            "+=": inplace(iadd), "-=": inplace(isub), "*=": inplace(imul), "/=": inplace(idiv),
            "axpy": lambda: a.copy().axpy(2.0, b)}


@pytest.mark.mpi
def test_two_array_operations_refuse_incompatible_decompositions(comm):
    """Owned blocks of equal size but another shape (a transposed grid; another process
    grid) were paired element by element by dot: a wrong number, silently."""
    size = comm.Get_size()
    pairs = [((6, 8), {}, (8, 6), {}, "global shapes")]
    if size > 1:
        pairs.append(((12, 12), {"dims": (size, 1)}, (12, 12), {"dims": (1, size)}, "process grids"))
    for shape_a, kw_a, shape_b, kw_b, why in pairs:
        with pympc.Decomposition(shape_a, comm=comm, **kw_a) as da, \
                pympc.Decomposition(shape_b, comm=comm, **kw_b) as db:
            a = pympc.DistArray.from_function(da, lambda i, j: 1.0 + i + 2 * j, coords=False)
            b = pympc.DistArray.from_function(db, lambda i, j: 3.0 - i + j, coords=False)
            for name, op in _two_array_operations(a, b).items():
                msg = _same_error_everywhere(comm, op, "not on one decomposition")
                assert why in msg, (name, msg)
    # same grid, other components: refused too
    with pympc.Decomposition((7, 5), comm=comm) as d:
        a, b = pympc.DistArray(d, components=(2,)).fill(1.0), pympc.DistArray(d, components=(2, 1)).fill(1.0)
        for name, op in _two_array_operations(a, b).items():
            assert "components differ" in _same_error_everywhere(comm, op, "not on one decomposition"), name


@pytest.mark.mpi
def test_two_array_operations_accept_a_decomposition_built_twice(comm):
    with pympc.Decomposition((9, 7), comm=comm) as d1, pympc.Decomposition((9, 7), comm=comm) as d2:
        a = pympc.DistArray.from_function(d1, lambda i, j: 1.0 + i + 2 * j, coords=False)
        b = pympc.DistArray.from_function(d2, lambda i, j: 3.0 + i * j, coords=False)
        A, B = a.gather(root=None), b.gather(root=None)
        assert a.dot(b) == pytest.approx(np.vdot(A, B))
        assert reduce_all(("dot", a, b), ("max", b)) == [pytest.approx(np.vdot(A, B)), B.max()]
        np.testing.assert_array_equal((a + b).gather(root=None), A + B)
        np.testing.assert_array_equal((a / b).gather(root=None), A / B)
        c = a.copy()
        c -= b
        c *= b
        c.axpy(0.5, b)
        np.testing.assert_allclose(c.gather(root=None), (A - B) * B + 0.5 * B)


@pytest.mark.mpi
def test_reduce_all_refuses_arrays_on_other_ranks(comm):
    size = comm.Get_size()
    if size == 1:
        return
    half = comm.Split(comm.Get_rank() % 2, comm.Get_rank())
    with pympc.Decomposition((8,), comm=comm) as d, pympc.Decomposition((8,), comm=half) as dh:
        a, h = pympc.DistArray(d).fill(1.0), pympc.DistArray(dh).fill(1.0)
        _same_error_everywhere(comm, lambda: reduce_all(("sum", a), ("sum", h)), "different sets of ranks")
    half.Free()


@pytest.mark.mpi
def test_reduce_all_refuses_numpy_arrays(comm):
    """('sum', ndarray) with comm= used to Allreduce the array element-wise and return
    that as 'the sum'."""
    with pympc.Decomposition((6, 4), comm=comm) as d:
        a = pympc.DistArray(d).fill(1.0)
        for op in ("sum", "min", "max"):
            for bad in (np.ones(3), np.ones((2, 2), dtype=np.int64), [1.0, 2.0]):
                msg = _same_error_everywhere(comm, lambda: reduce_all((op, bad), comm=d.cart), "DistArray")
                assert "one number" in msg
                _same_error_everywhere(comm, lambda: reduce_all(("sum", a), (op, bad)), "DistArray")
        for op in ("norm1", "norm2", "norminf"):
            _same_error_everywhere(comm, lambda: reduce_all((op, a.owned)), "takes a pympc.DistArray")
        _same_error_everywhere(comm, lambda: reduce_all(("dot", a, a.owned)), "must be a pympc.DistArray")
        _same_error_everywhere(comm, lambda: a.dot(a.data), "must be a pympc.DistArray")
        _same_error_everywhere(comm, lambda: reduce_all(("dot", a)), "takes 2 operand")
        # a number (numpy scalar or 0-d array) is a partial value
        assert reduce_all(("sum", np.float32(1.5)), ("max", np.array(comm.Get_rank())), comm=d.cart) == \
            [1.5 * comm.Get_size(), comm.Get_size() - 1]


@pytest.mark.mpi
def test_numpy_array_where_a_distarray_is_wanted(comm, shared_tmp_path):
    """Output.write and cg name the type they expect (they ended in AttributeError ...
    'decomp'); Output.write checks before it touches the file."""
    import h5py

    from solvers.krylov import StencilOperator, cg

    with pympc.Decomposition((9, 8), comm=comm) as d:
        u = pympc.DistArray.from_function(d, lambda i, j: i + 0.5 * j, coords=False)
        path = shared_tmp_path / "series.h5"
        out = pympc.Output(path, d)
        out.write(0, 0.0, u=u)
        for bad in (u.owned, u.gather(root=None), 3.0):
            msg = _same_error_everywhere(comm, lambda: out.write(0, 0.0, u=bad), "must be a pympc.DistArray")
            assert "Output.write" in msg and "'u'" in msg
        comm.Barrier()
        if comm.Get_rank() == 0:  # step 0 is still there, whole
            with h5py.File(path, "r") as f:
                np.testing.assert_array_equal(f["steps/00000000/u"][...], u.gather(root=None))
        else:
            u.gather(root=None)
        out.close()
        op = StencilOperator(d)
        _same_error_everywhere(comm, lambda: cg(op, u.owned), "b must be a pympc.DistArray")
        _same_error_everywhere(comm, lambda: cg(op, u, x0=np.zeros(3)), "x0 must be a pympc.DistArray")


def test_help_of_distarray_names_its_attributes_and_dtypes():
    import pydoc

    text = pydoc.render_doc(pympc.DistArray, renderer=pydoc.plaintext)
    for word in (":ivar decomp:", ":ivar data:", ":ivar owned:", "ghosted", "SUPPORTED_DTYPES",
                 "compatible"):
        assert word in text, word
    assert not hasattr(pympc.DistArray, "ghosted")  # one name for the ghosted array: data
    assert "bool, int8-64, uint8-64, float16/32/64,\ncomplex64/128" in pympc.array.__doc__
    assert "not longdouble" in pympc.array.__doc__


def test_vector_operations_refuse_views_of_other_shapes():
    """pympc.kernels.vector works on owned-block views; numpy's vdot would flatten two blocks of
    equal size and pair the wrong points, and += would broadcast."""
    from pympc.kernels import vector

    a, b, c = np.ones((4, 6)), np.ones((6, 4)), np.ones((6,))
    for x, y in ((a, b), (a, c), (a.astype(np.float32), b)):
        with pytest.raises(pympc.InputError, match="different shapes"):
            vector.dot(x, y)
        with pytest.raises(pympc.InputError, match="different shapes"):
            vector.axpby(x, 2.0, y, 1.0)
        with pytest.raises(pympc.InputError, match="different shapes"):
            vector.cg_update(x, x.copy(), y, x.copy(), 0.5)
    assert vector.dot(a, a) == 24.0


@pytest.mark.mpi
def test_cg_takes_b_on_a_decomposition_built_alike(comm):
    from solvers.krylov import StencilOperator, cg

    with pympc.Decomposition((10, 9), comm=comm) as d, pympc.Decomposition((10, 9), comm=comm) as twin, \
            pympc.Decomposition((9, 10), comm=comm) as other:
        op = StencilOperator(d)
        rhs = lambda i, j: 1.0 + 0.1 * i * j  # noqa: E731
        mine = cg(op, pympc.DistArray.from_function(d, rhs, coords=False), tol=1e-10)
        theirs = cg(op, pympc.DistArray.from_function(twin, rhs, coords=False), tol=1e-10)
        assert theirs.reason == mine.reason == "converged" and theirs.iterations == mine.iterations
        assert np.array_equal(theirs.x.gather(root=None), mine.x.gather(root=None))
        with pytest.raises(pympc.InputError, match="global shapes"):
            cg(op, pympc.DistArray(other))
