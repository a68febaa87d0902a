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
