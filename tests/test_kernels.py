"""The fast kernel path: the compiled FTCS step equals the numpy reference bit for bit,
on every rank count, and the interior/border split covers the block exactly once."""

import numpy as np
import pytest

import pympc
from pympc import bc, kernels
from oracle import ftcs, local_block, pad


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
