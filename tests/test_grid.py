"""Decomposition: ranges tile the grid, neighbours are symmetric, geometry, clear errors."""

import itertools

import numpy as np
import pytest
from mpi4py import MPI

import pympc
from pympc.grid import choose_dims, split_sizes

CASES = [
    ((17,), None, (False,)), ((16,), None, (True,)),
    ((10, 7), None, (False, False)), ((9, 13), None, (True, False)), ((8, 8), (1, 0), (True, True)),
    ((11, 5), (0, 1), (False, True)), ((6, 7, 5), None, (True, False, True)), ((5, 9, 4), (1, 0, 0), (False,) * 3),
]


def test_split_sizes_spread_the_remainder():
    assert split_sizes(10, 3) == [4, 3, 3]
    assert split_sizes(9, 3) == [3, 3, 3]
    assert split_sizes(5, 5) == [1] * 5
    for n, p in itertools.product(range(1, 30), range(1, 8)):
        s = split_sizes(n, p)
        assert sum(s) == n and max(s) - min(s) <= 1


def test_choose_dims():
    assert choose_dims(2, (4096, 4096), (0, 0)) == (2, 1)
    assert choose_dims(4, (64, 64), (0, 0)) == (2, 2)
    assert choose_dims(4, (1000, 10), (0, 0)) == (4, 1)      # split the long axis
    assert choose_dims(2, (1, 100), (0, 0)) == (1, 2)        # MPI_Dims_create would say (2, 1)
    assert choose_dims(6, (60, 60, 60), (0, 1, 0)) == (3, 1, 2)


@pytest.mark.mpi
@pytest.mark.parametrize("shape,dims,periodic", CASES)
def test_ranges_tile_the_grid_and_neighbours_agree(comm, shape, dims, periodic):
    with pympc.Decomposition(shape, comm=comm, dims=dims, periodic=periodic, stencil="box") as d:
        size = comm.Get_size()
        assert int(np.prod(d.dims)) == size
        if dims:
            assert all(a == b for a, b in zip(d.dims, dims) if b)
        # every global point is owned exactly once
        count = np.zeros(shape, dtype=int)
        for rng in d.all_ranges():
            count[tuple(slice(lo, hi) for lo, hi in rng)] += 1
        assert (count == 1).all()
        assert comm.allgather(d.ranges()) == d.all_ranges()
        for a in range(d.ndim):  # remainder spread: sizes differ by at most one
            sizes = {hi - lo for rng in d.all_ranges() for lo, hi in [rng[a]]}
            assert max(sizes) - min(sizes) <= 1
        assert d.ghosted_shape == tuple(n + 2 for n in d.local_shape)
        # neighbour symmetry: my neighbour at +o has me at -o
        everyone = comm.allgather({o: r for o, r in d.neighbours("box").items()})
        for o, r in d.neighbours("box").items():
            if r == MPI.PROC_NULL:
                # only beyond a non-periodic boundary
                assert any(o[a] and d.at_boundary(a, o[a]) for a in range(d.ndim))
            else:
                assert everyone[r][tuple(-x for x in o)] == d.rank
        assert len(d.neighbours("star")) == 2 * d.ndim


@pytest.mark.mpi
def test_geometry_vertex_and_cell(comm):
    with pympc.Decomposition((11, 6), comm=comm, origin=(0.0, -1.0), spacing=(0.1, 0.5)) as d:
        x = d.coordinates(0)
        np.testing.assert_allclose(x, 0.1 * np.arange(*d.ranges()[0]))
        assert d.extent() == ((0.0, pytest.approx(1.0)), (-1.0, 1.5))
        assert len(d.coordinates(1, ghosted=True)) == d.local_shape[1] + 2
    with pympc.Decomposition((10,), comm=comm, origin=0.0, spacing=0.1, centring="cell") as d:
        np.testing.assert_allclose(d.coordinates(0), 0.1 * (np.arange(*d.ranges()[0]) + 0.5))
        assert d.extent()[0] == (0.0, pytest.approx(1.0))


def _error_everywhere(comm, **kw):
    with pytest.raises(pympc.InputError) as err:
        pympc.Decomposition(comm=comm, **kw)
    msgs = comm.allgather(str(err.value))
    assert len(set(msgs)) == 1, msgs  # the same message on every rank
    return msgs[0]


@pytest.mark.mpi
def test_impossible_requests_raise_the_same_error_everywhere(comm):
    size = comm.Get_size()
    assert "does not fit" in _error_everywhere(comm, shape=(8, 8), dims=(size + 1, 1))
    assert "ghost width must be >= 1" in _error_everywhere(comm, shape=(8,), ghost=0)
    assert "stencil" in _error_everywhere(comm, shape=(8,), stencil="cross")
    assert "2 entries but the grid has 3" in _error_everywhere(comm, shape=(4, 4, 4), periodic=(True, False))
    assert "at least one point" in _error_everywhere(comm, shape=(4, 0))
    assert "fewer than the ghost" in _error_everywhere(comm, shape=(2, 40 * size), dims=(1, size),
                                                       periodic=True, ghost=3)
    if size > 1:
        msg = _error_everywhere(comm, shape=(size - 1, 4), dims=(size, 1))
        assert "more ranks than points" in msg
        msg = _error_everywhere(comm, shape=(2 * size + 1, 3), dims=(size, 1), ghost=3)
        assert "thinner than the ghost width 3" in msg
