"""The fast kernel path: the compiled FTCS step equals the numpy reference bit for bit,
on every rank count, and the interior/border split covers the block exactly once."""

import numpy as np
import pytest

import pympc
from mpicheck import same_error as _refused
from pympc import bc, kernels
from oracle import ftcs, pad


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", [((41,), (True,)), ((19, 23), (False, True)),
                                            ((9, 11, 10), (True, False, False))])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_heat_step_matches_global_numpy(comm, shape, periodic, backend):
    glob = np.random.default_rng(2).random(shape)
    r = [0.1, 0.07, 0.05][:len(shape)]
    with pympc.Decomposition(shape, comm=comm, periodic=periodic) as d:
        u = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        out = u.empty_like()
        pympc.update_halo(u)
        bc.dirichlet(u, 0.25)
        kernels.heat_step(u, out, r, backend=backend)
        modes = {a: ("constant", 0.25) for a in range(len(shape))}
        expect = ftcs(pad(glob, 1, periodic, modes), r, 1)
        got = out.gather(root=None)
        np.testing.assert_array_equal(got, expect)  # bit-identical, any rank count


@pytest.mark.mpi
def test_overlapped_step_equals_plain_step(comm):
    shape = (30, 17)
    glob = np.random.default_rng(4).random(shape)
    with pympc.Decomposition(shape, comm=comm, periodic=True, ghost=2) as d:
        u = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        a, b = u.empty_like(), u.empty_like()
        pympc.update_halo(u)
        kernels.heat_step(u, a, 0.2)
        u.data[...] = -1.0  # stale ghosts
        u.owned[...] = glob[d.global_slices()]
        interior, borders = kernels.split_regions(d, width=1)
        h = pympc.start_halo(u)
        kernels.heat_step(u, b, 0.2, region=interior)  # needs no ghost
        h.wait()
        for reg in borders:
            kernels.heat_step(u, b, 0.2, region=reg)
        np.testing.assert_array_equal(a.owned, b.owned)


@pytest.mark.parametrize("local", [(7,), (5, 4), (3, 6, 2), (1, 1), (2, 9)])
@pytest.mark.parametrize("width", [1, 2])
def test_split_regions_cover_the_block_once(local, width):
    class D:  # only the shape matters
        ghost = width
        ndim = len(local)
        local_shape = local
    interior, borders = kernels.split_regions(D, width)
    count = np.zeros(local, dtype=int)
    for reg in [interior] + borders:
        count[tuple(slice(lo, hi) for lo, hi in reg)] += 1
    assert (count == 1).all()
    for a, (lo, hi) in enumerate(interior):
        assert lo >= min(width, local[a]) and hi <= max(lo, local[a] - width)


def test_heat_step_rejects_bad_arguments():
    with pympc.Decomposition((8, 8)) as d:
        u = pympc.DistArray(d)
        with pytest.raises(pympc.InputError, match="in place"):
            kernels.heat_step(u, u, 0.1)
        with pytest.raises(pympc.InputError, match="outside"):
            kernels.heat_step(u, u.empty_like(), 0.1, region=[(0, 9), (0, 8)])
        with pytest.raises(pympc.InputError):
            kernels.heat_step(u, pympc.DistArray(d, dtype=np.float32), 0.1)
    assert kernels.HAVE_NUMBA  # the fast path is really in use in this environment


@pytest.mark.parametrize("shape", [(12,), (9, 7), (6, 5, 4)])
@pytest.mark.parametrize("velocity", [None, (2.0, -1.0, 0.5)])
def test_convdiff_apply_dot_backends_agree_bit_for_bit(shape, velocity):
    from mpi4py import MPI

    with pympc.Decomposition(shape, comm=MPI.COMM_SELF, periodic=True) as d:
        x = pympc.DistArray(d)
        x.data[...] = np.random.default_rng(3).random(x.data.shape)
        vel = None if velocity is None else velocity[:len(shape)]
        h = [0.1 * (a + 1) for a in range(len(shape))]
        region = [(1, n - 1) for n in d.local_shape]
        ys = {}
        for backend in ("numba", "numpy"):
            y = pympc.DistArray(d)
            y.data[...] = -3.0
            dot = kernels.convdiff_apply_dot(x, y, h, vel, 0.5, region=region, backend=backend)
            ys[backend] = (y.data.copy(), dot)
        assert np.array_equal(ys["numba"][0], ys["numpy"][0])          # the operator: the same bits
        assert ys["numba"][1] == pytest.approx(ys["numpy"][1], rel=1e-13)
        sl = tuple(slice(d.ghost + lo, d.ghost + hi) for lo, hi in region)
        mask = np.ones(x.data.shape, bool)
        mask[sl] = False
        assert np.all(ys["numba"][0][mask] == -3.0)                     # only the region is written
        with pytest.raises(pympc.InputError):
            kernels.convdiff_apply_dot(x, x, h)


# every public kernel, called with arrays made by ``make(dtype)`` (u, second, out)
def _kernel_calls(u, v, w):
    return {
        "heat_step": lambda: kernels.heat_step(u, w, 0.1),
        "leapfrog_step": lambda: kernels.leapfrog_step(u, v, w, 0.1),
        "heat_step_variable": lambda: kernels.heat_step_variable(u, v, w, 0.1),
        "jacobi_step": lambda: kernels.jacobi_step(u, v, w, 1.0),
        "rbsor_sweep": lambda: kernels.rbsor_sweep(u, v, 1.0, 1.5, 0),
        "residual_sumsq": lambda: kernels.residual_sumsq(u, v, 1.0),
        "ConvDiff.apply_dot": lambda: kernels.ConvDiff(2, 0.1).apply_dot(u, w),
        "convdiff_apply_dot": lambda: kernels.convdiff_apply_dot(u, w, 0.1),
    }




@pytest.mark.mpi
@pytest.mark.parametrize("dtype", [t for t in pympc.array.SUPPORTED_DTYPES
                                   if t not in (np.float32, np.float64)], ids=str)
def test_every_kernel_refuses_non_floating_dtypes(comm, dtype):
    """An integer heat_step truncated every update to an integer, silently."""
    with pympc.Decomposition((9, 7), comm=comm) as d:
        u, v, w = (pympc.DistArray(d, dtype) for _ in range(3))
        for name, call in _kernel_calls(u, v, w).items():
            msg = _refused(comm, call, "float32 or float64")
            assert str(np.dtype(dtype)) in msg, (name, msg)
        # one float64 array among them is not enough
        f = pympc.DistArray(d)
        _refused(comm, lambda: kernels.heat_step(f, w, 0.1), "float32 or float64")


@pytest.mark.mpi
def test_kernels_take_decompositions_built_alike_and_refuse_others(comm):
    size = comm.Get_size()
    glob = np.random.default_rng(6).random((12, 12))
    with pympc.Decomposition((12, 12), comm=comm) as d1, pympc.Decomposition((12, 12), comm=comm) as d2, \
            pympc.Decomposition((12, 12), comm=comm, ghost=2) as wide:
        u = pympc.DistArray.from_global(d1, glob if comm.Get_rank() == 0 else None)
        pympc.update_halo(u)
        a, b = pympc.DistArray(d1), pympc.DistArray(d2)
        kernels.heat_step(u, a, 0.2)
        kernels.heat_step(u, b, 0.2)  # out on a twin decomposition: the same result
        assert np.array_equal(a.owned, b.owned)
        for name, call in _kernel_calls(u, pympc.DistArray(wide), pympc.DistArray(wide)).items():
            assert "ghost widths" in _refused(comm, call, "not on one decomposition"), name
        _refused(comm, lambda: kernels.heat_step(u, pympc.DistArray(wide), 0.1), "ghost widths")
        if size > 1:
            with pympc.Decomposition((12, 12), comm=comm, dims=(1, size)) as cols, \
                    pympc.Decomposition((12, 12), comm=comm, dims=(size, 1)) as rows:
                x, y = pympc.DistArray(cols), pympc.DistArray(rows)
                for name, call in _kernel_calls(x, y, y).items():
                    assert "process grids" in _refused(comm, call, "not on one decomposition"), name
        # numpy arrays in any position: the type that was expected, by argument name
        for pos in range(3):
            args = [u, pympc.DistArray(d1), pympc.DistArray(d1)]
            args[pos] = args[pos].data
            for name, call in _kernel_calls(*args).items():
                if (pos == 1 and name in ("heat_step", "ConvDiff.apply_dot", "convdiff_apply_dot")
                        or pos == 2 and name in ("rbsor_sweep", "residual_sumsq")):
                    continue  # the kernels that do not take that argument
                _refused(comm, call, "must be a pympc.DistArray")


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", [((41,), (True,)), ((19, 23), (False, True)),
                                            ((9, 11, 10), (True, False, False))])
def test_heat_step_float32(comm, shape, periodic):
    """float32: computed in float64 in the documented order, rounded once; the compiled
    and numpy versions agree bit for bit, at every rank count."""
    glob = np.random.default_rng(2).random(shape).astype(np.float32)
    r = [0.1, 0.07, 0.05][:len(shape)]
    with pympc.Decomposition(shape, comm=comm, periodic=periodic) as d:
        u = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        assert u.dtype == np.float32
        pympc.update_halo(u)
        bc.dirichlet(u, 0.25)
        outs = {}
        for backend in ("numba", "numpy"):
            outs[backend] = u.empty_like()
            kernels.heat_step(u, outs[backend], r, backend=backend)
        modes = {a: ("constant", 0.25) for a in range(len(shape))}
        expect = ftcs(pad(glob.astype(np.float64), 1, periodic, modes), r, 1).astype(np.float32)
        for backend, out in outs.items():
            assert out.dtype == np.float32
            assert np.array_equal(out.gather(root=None), expect), backend


def test_help_of_heat_step_gives_the_order_of_operations():
    import pydoc

    text = pydoc.render_doc(kernels.heat_step, renderer=pydoc.plaintext)
    assert "Order of operations" in text
    assert "t_a = r[a] * ((lo_a - 2.0 * c) + hi_a)" in text
    assert "out[i] = c + (((t_0 + t_1) + t_2))" in text
    assert "float32 or float64" in text


# ---------------------------------------------------------------------------------------
# Every kernel: backend="numpy" against backend="numba", and P ranks against one
# ---------------------------------------------------------------------------------------
SHAPES = [((41,), (True,)), ((40,), (False,)), ((19, 23), (False, True)),
          ((9, 11, 10), (True, False, False))]
COEF = (0.11, 0.07, 0.05)
# a sum a kernel returns is added in the loop's order by numba and pairwise by numpy, and
# over ranks by one Allreduce: for the tests' few thousand points the sums agree to this
SUM_RTOL = 1e-12


def _run_kernel(name, u, v, w, backend, region=None):
    """Run kernel ``name`` on fresh copies of ``u``, ``v`` (the second input: u_old, k or
    f) and ``w`` (the output); return (the array written, the float returned or None)."""
    u, v, w = (x.copy() for x in (u, v, w))
    nd = u.decomp.ndim
    c = COEF[:nd]
    if name == "heat_step":
        return kernels.heat_step(u, w, c, region, backend), None
    if name == "leapfrog_step":
        return kernels.leapfrog_step(u, v, w, c, region, backend), None
    if name == "heat_step_variable":
        return kernels.heat_step_variable(u, v, w, c, region, backend), None
    if name == "jacobi_step":
        return kernels.jacobi_step(u, v, w, [1.0, 2.0, 0.5][:nd], region, backend), None
    if name.startswith("rbsor_sweep"):
        return kernels.rbsor_sweep(u, v, [1.0, 2.0, 0.5][:nd], 1.5, int(name[-1]), region, backend), None
    if name == "residual_sumsq":
        return None, kernels.residual_sumsq(u, v, [1.0, 2.0, 0.5][:nd], region, backend)
    assert name == "convdiff_apply_dot"
    dot = kernels.convdiff_apply_dot(u, w, [0.1, 0.2, 0.3][:nd], [2.0, -1.0, 0.5][:nd], 0.5, region, backend)
    return w, dot


KERNEL_NAMES = ("heat_step", "leapfrog_step", "heat_step_variable", "jacobi_step", "rbsor_sweep0",
                "rbsor_sweep1", "residual_sumsq", "convdiff_apply_dot")


def _fields(d, comm, dtype, seed=7):
    """u, a positive second field (a valid k), and an output full of -3: random global
    fields scattered, ghosts exchanged, walls at 0.25."""
    rng = np.random.default_rng(seed)
    out = []
    for shift, fill in ((0.0, None), (0.5, None), (0.0, -3.0)):
        glob = (rng.random(d.shape) + shift).astype(dtype)
        x = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        pympc.update_halo(x)
        bc.dirichlet(x, 0.25)
        if fill is not None:
            x.data[...] = fill
        out.append(x)
    return out


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_every_kernel_numpy_reference_equals_compiled(comm, shape, periodic, dtype):
    """The numpy reference of every kernel writes the same bits as the compiled loop, on
    the whole block and on the interior and border regions (bounds, offsets and the
    global red-black colouring); the sums it returns agree to SUM_RTOL."""
    with pympc.Decomposition(shape, comm=comm, periodic=periodic) as d:
        u, v, w = _fields(d, comm, dtype)
        interior, borders = kernels.split_regions(d, width=1)
        for name in KERNEL_NAMES:
            for region in [None, interior] + borders[:2]:
                (a, sa), (b, sb) = (_run_kernel(name, u, v, w, be, region) for be in ("numba", "numpy"))
                if a is not None:
                    assert a.dtype == dtype and np.array_equal(a.data, b.data), (name, region)
                if sa is not None:
                    assert sa == pytest.approx(sb, rel=SUM_RTOL, abs=1e-300), (name, region)


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", SHAPES)
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_every_kernel_gives_the_one_rank_result_on_any_decomposition(comm, shape, periodic, backend):
    """P ranks, gathered, give what one rank gives on the whole grid (COMM_SELF), bit for
    bit; the reduced sums agree to SUM_RTOL."""
    from mpi4py import MPI

    with pympc.Decomposition(shape, comm=comm, periodic=periodic) as d, \
            pympc.Decomposition(shape, comm=MPI.COMM_SELF, periodic=periodic) as one:
        fields, serial = _fields(d, comm, np.float64), _fields(one, MPI.COMM_SELF, np.float64)
        for name in KERNEL_NAMES:
            a, sa = _run_kernel(name, *fields, backend)
            b, sb = _run_kernel(name, *serial, backend)
            if a is not None:
                assert np.array_equal(a.gather(root=None), b.owned), name
            if sa is not None:
                assert comm.allreduce(sa) == pytest.approx(sb, rel=SUM_RTOL), name


@pytest.mark.mpi
def test_heat_step_beyond_three_axes_runs_the_numpy_reference(comm):
    shape, periodic = (5, 4, 3, 6), (True, False, True, False)
    glob = np.random.default_rng(1).random(shape)
    r = (0.1, 0.05, 0.02, 0.07)
    with pympc.Decomposition(shape, comm=comm, periodic=periodic) as d:
        u = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        pympc.update_halo(u)
        bc.dirichlet(u, 0.25)
        for backend in ("numba", "numpy"):
            out = kernels.heat_step(u, u.empty_like(), r, backend=backend)
            expect = ftcs(pad(glob, 1, periodic, {a: ("constant", 0.25) for a in range(4)}), r, 1)
            assert np.array_equal(out.gather(root=None), expect)


# ---------------------------------------------------------------------------------------
# ftcs_array: the FTCS step on plain arrays (what pympc bench times)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(13,), (9, 7), (6, 5, 8)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_ftcs_array_updates_the_interior_of_plain_arrays(shape, dtype, backend):
    src = np.random.default_rng(5).random(shape).astype(dtype)
    dst = np.full(shape, -2.0, dtype)
    r = COEF[:len(shape)]
    assert kernels.ftcs_array(src, dst, r, backend=backend) is dst
    inner = tuple(slice(1, -1) for _ in shape)
    expect = ftcs(src.astype(np.float64), r, 1).astype(dtype)
    assert np.array_equal(dst[inner], expect)
    mask = np.ones(shape, bool)
    mask[inner] = False
    assert np.all(dst[mask] == -2.0)  # the outer layer is left alone


def test_ftcs_array_refuses_bad_arrays():
    a = np.zeros((5, 5))
    for src, dst in ((a, a), (a, np.zeros((5, 6))), (a, np.zeros((5, 5), np.float32)),
                     (np.zeros((5, 5), int), np.zeros((5, 5), int)), (a.tolist(), a)):
        with pytest.raises(pympc.InputError, match="ftcs_array"):
            kernels.ftcs_array(src, dst, 0.1)


# ---------------------------------------------------------------------------------------
# the vector operations
# ---------------------------------------------------------------------------------------
def _owned_views(shape, dtype, n, seed=3):
    """``n`` owned-block views (strided) of random ghosted arrays of ``shape``."""
    rng = np.random.default_rng(seed)
    full = [rng.random(tuple(s + 2 for s in shape)).astype(dtype) for _ in range(n)]
    return [f[tuple(slice(1, -1) for _ in shape)] for f in full]


@pytest.mark.parametrize("shape", [(17,), (9, 7), (5, 6, 7)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_vector_operations_numpy_reference_equals_compiled(shape, dtype):
    from pympc.kernels import vector

    assert vector.fast(*_owned_views(shape, dtype, 2)) == (dtype == np.float64)
    assert not vector.fast(*_owned_views(shape, dtype, 2), backend="numpy")
    res = {}
    for backend in ("numba", "numpy"):
        x, r, p, q, y = _owned_views(shape, dtype, 5)
        vector.axpby(y, 0.7, x, -1.3, backend=backend)
        rr = vector.cg_update(x, r, p, q, 0.37, backend=backend)
        res[backend] = (y, x, r, rr, vector.dot(p, q, backend=backend))
    for a, b in zip(res["numba"][:3], res["numpy"][:3]):
        assert a.dtype == dtype and np.array_equal(a, b)  # pointwise: the same bits
    for a, b in zip(res["numba"][3:], res["numpy"][3:]):
        assert a == pytest.approx(b, rel=1e-6 if dtype == np.float32 else SUM_RTOL)


# ---------------------------------------------------------------------------------------
# the backend resolver
# ---------------------------------------------------------------------------------------
def test_a_wrong_backend_name_is_refused_by_every_kernel():
    from mpi4py import MPI

    from pympc.kernels import vector

    with pympc.Decomposition((8, 9), comm=MPI.COMM_SELF) as d:
        u, v, w = (pympc.DistArray(d) for _ in range(3))
        for name in KERNEL_NAMES:
            with pytest.raises(pympc.InputError, match="backend must be 'numba' or 'numpy'"):
                _run_kernel(name, u, v, w, "cuda")
        with pytest.raises(pympc.InputError, match="backend must be"):
            kernels.ConvDiff(2, 0.1, backend="cuda")
    x = np.zeros(4)
    for call in (lambda: vector.dot(x, x, backend="cuda"), lambda: vector.axpby(x, 1.0, x, 1.0, backend="cuda"),
                 lambda: vector.cg_update(x, x, x, x, 1.0, backend="cuda"),
                 lambda: kernels.ftcs_array(np.zeros(4), np.zeros(4), 0.1, backend="cuda")):
        with pytest.raises(pympc.InputError, match="backend must be"):
            call()


def _python(code, **env):
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_pympc_kernels_numpy_selects_the_references_and_backend_wins():
    code = ("from pympc import kernels; from pympc.kernels import backend, loops, vector; import numpy as np;"
            "print(kernels.BACKEND, kernels.HAVE_NUMBA, backend.resolve(), backend.resolve('numba'),"
            " loops.JACOBI.select() is loops.JACOBI.reference, vector.fast(np.zeros(3)),"
            " vector.fast(np.zeros(3), backend='numba'))")
    assert _python(code, PYMPC_KERNELS="numpy") == "numpy False numpy numba True False True"
    assert _python(code, PYMPC_KERNELS="numba") == "numba True numba numba False True True"


def test_without_numba_the_references_run_with_one_warning():
    code = ("import sys, warnings; sys.modules['numba'] = None\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import numpy as np; from pympc import kernels; from pympc.kernels import vector\n"
            "    a, b = np.random.default_rng(0).random((2, 6, 7))\n"
            "    kernels.ftcs_array(a, b, 0.1); vector.axpby(a[1:-1], 2.0, b[1:-1], 1.0)\n"
            "    print(kernels.BACKEND, kernels.resolve('numba'), len([x for x in w if 'numba is not' in str(x.message)]))")
    assert _python(code) == "numpy numpy 1"


# ---------------------------------------------------------------------------------------
# The FTCS loops themselves (row pairs in 2-D): bit-identical to the numpy reference and
# to the one-row loop they replaced, on any bounds (odd and even row counts, one row,
# none, widths that fill no vector) and both dtypes; nothing outside the bounds written
# ---------------------------------------------------------------------------------------
def _one_row_ftcs2(u, out, l0, h0, l1, h1, r0, r1):
    # the 2-D loop before row pairs, kept as an oracle
    for i in range(l0, h0):
        o = out[i, l1:h1]
        uc, uw, ue = u[i, l1:h1], u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1]
        um, up = u[i - 1, l1:h1], u[i + 1, l1:h1]
        for k in range(o.shape[0]):
            c = uc[k]
            o[k] = c + (r0 * (um[k] - 2.0 * c + up[k]) + r1 * (uw[k] - 2.0 * c + ue[k]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_ftcs_loops_bit_identical_on_random_bounds(ndim, dtype):
    from pympc.kernels.loops import FTCS

    numba = pytest.importorskip("numba")
    old = numba.njit(_one_row_ftcs2)
    rng = np.random.default_rng(11 + ndim)
    for trial in range(12):
        shape = tuple(int(x) for x in rng.integers(3, (70, 40, 37)[ndim - 1], size=ndim))
        shape = (shape[0] + 1,) + shape[1:] if trial == 0 else shape  # an even count too
        u = (rng.random(shape) * 3 - 1).astype(dtype)
        bounds = []
        for n in shape:  # a sub-range of the interior; sometimes one row or none
            lo = int(rng.integers(1, n - 1))
            bounds += [lo, int(rng.integers(lo, n))] if trial % 3 else [1, n - 1]
        r = tuple(float(x) for x in rng.random(ndim) * 0.25)
        got, ref = np.full(shape, -7.0, dtype), np.full(shape, -7.0, dtype)
        FTCS[ndim](u, got, *bounds, *r, backend="numba")
        FTCS[ndim](u, ref, *bounds, *r, backend="numpy")
        assert np.array_equal(got, ref), (shape, bounds)
        if ndim == 2:
            prev = np.full(shape, -7.0, dtype)
            old(u, prev, *bounds, *r)
            assert np.array_equal(got, prev), (shape, bounds)
        outside = np.ones(shape, bool)
        outside[tuple(slice(lo, h) for lo, h in zip(bounds[::2], bounds[1::2]))] = False
        assert np.all(got[outside] == -7.0)
