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


@pytest.mark.mpi
def test_usage_errors_are_input_errors(comm):
    """Every usage error of the decomposition layer is an InputError (neighbour() raised
    ValueError; a halo started twice RuntimeError)."""
    with pympc.Decomposition((8, 6), comm=comm, periodic=True) as d:
        for bad in ((1,), (0, 0), (2, 0), (1, 0, 0)):
            with pytest.raises(pympc.InputError, match="offset must have 2 entries"):
                d.neighbour(bad)
        assert d.neighbour((1, 0)) == d.neighbours()[(1, 0)]
        a = pympc.DistArray(d)
        h = pympc.start_halo(a)
        with pytest.raises(pympc.InputError, match="started already"):
            pympc.start_halo(a)
        h.wait()
        for call in (lambda: pympc.update_halo(a, stencil="cross"), lambda: pympc.update_halo(a, width=0)):
            with pytest.raises(pympc.InputError):
                call()
    with pytest.raises(pympc.InputError, match="closed"):
        pympc.update_halo(a)  # its decomposition is closed


@pytest.mark.mpi
def test_compatibility_is_checked_once_per_pair(comm, monkeypatch):
    """mismatch() compares the two communicators' groups once per pair of
    decompositions, not at every check of two arrays."""
    import types

    calls = []

    class CountingMPI(types.ModuleType):  # pympc.grid's MPI, counting Comm.Compare
        Comm = types.SimpleNamespace(Compare=lambda *a: calls.append(1) or MPI.Comm.Compare(*a))

        def __getattr__(self, name):
            return getattr(MPI, name)

    with pympc.Decomposition((9, 7), comm=comm) as d, pympc.Decomposition((9, 7), comm=comm) as twin:
        monkeypatch.setattr(pympc.grid, "MPI", CountingMPI("MPI"))
        for _ in range(5):
            assert d.compatible(twin) and d.mismatch(twin, halo=True) is None
        assert len(calls) == 1
        twin.close()
        assert d.mismatch(twin) == "one of them is closed"  # a closed one is never compatible


@pytest.mark.mpi
def test_sizes_that_imply_another_rank_count_raise_the_same_error_everywhere(comm):
    """sizes= fixes the process grid (one list per axis, one entry per block): a grid of
    another rank count must be refused before the Cartesian communicator is built (it
    left ranks out of it, which then died in MPI_Comm_rank(MPI_COMM_NULL))."""
    size = comm.Get_size()
    for blocks in (size + 1, size - 1, 2 * size):
        if blocks < 1:
            continue
        sizes = [[2] * blocks, [5]]
        msg = _error_everywhere(comm, shape=(2 * blocks, 5), sizes=sizes)
        assert "does not fit" in msg and f"{size} ranks" in msg
    if size > 1:  # the right count on the wrong axes is fine; a contradiction with dims is not
        msg = _error_everywhere(comm, shape=(8, 3 * size), sizes=[[8], [3] * size], dims=(size, 1))
        assert "contradicts dims" in msg
    assert "positive block sizes" in _error_everywhere(comm, shape=(6, 4), sizes=[[6], []])
    # a valid sizes= gives exactly those blocks
    sizes = [[1 + b for b in range(size)], [4]]
    with pympc.Decomposition((sum(sizes[0]), 4), comm=comm, sizes=sizes) as d:
        assert d.dims == (size, 1)
        assert [hi - lo for (lo, hi), _ in d.all_ranges()] == sizes[0]


@pytest.mark.mpi
def test_compatible_decompositions(comm):
    size = comm.Get_size()
    dup = comm.Dup()
    with pympc.Decomposition((9, 7), comm=comm, periodic=(True, False)) as d, \
            pympc.Decomposition((9, 7), comm=comm, periodic=(True, False)) as twin, \
            pympc.Decomposition((9, 7), comm=dup, periodic=(True, False), ghost=2) as wider, \
            pympc.Decomposition((7, 9), comm=comm) as transposed:
        assert d.compatible(d) and d.compatible(twin) and twin.compatible(d)  # built twice: yes
        assert d.compatible(wider)                          # another communicator, same ranks
        assert not d.compatible(wider, halo=True) and "ghost widths" in d.mismatch(wider, halo=True)
        assert not d.compatible(transposed) and "global shapes" in d.mismatch(transposed)
        assert not d.compatible(np.zeros((9, 7)))
        if size > 1:
            with pympc.Decomposition((9, 7), comm=comm, dims=(1, size)) as other_grid:
                if d.dims != other_grid.dims:
                    assert "process grids" in d.mismatch(other_grid)
            sizes = [[9 - (size - 1)] + [1] * (size - 1), [7]]
            with pympc.Decomposition((9, 7), comm=comm, sizes=sizes) as uneven, \
                    pympc.Decomposition((9, 7), comm=comm, dims=(size, 1)) as even:
                assert "block sizes" in even.mismatch(uneven)
            # the same ranks in another order own other blocks
            rev = comm.Split(0, size - 1 - comm.Get_rank())
            with pympc.Decomposition((9, 7), comm=rev, dims=(size, 1)) as reordered, \
                    pympc.Decomposition((9, 7), comm=comm, dims=(size, 1)) as ordered:
                assert "different ranks" in ordered.mismatch(reordered)
            rev.Free()
        # every rank gets the same answer
        assert len(set(comm.allgather((d.compatible(twin), d.compatible(transposed))))) == 1
    dup.Free()


@pytest.mark.mpi
@pytest.mark.parametrize("shape", [(10,), (7, 5), (5, 6, 3)])
def test_ownership_ranges_tile_each_axis_and_match_every_rank(comm, shape):
    d = pympc.Decomposition(shape, comm=comm)
    own = d.ownership_ranges()
    for a in range(d.ndim):
        bounds = own[a]
        assert len(bounds) == d.dims[a] and bounds[0][0] == 0 and bounds[-1][1] == shape[a]
        assert all(b[1] == c[0] and b[1] > b[0] for b, c in zip(bounds, bounds[1:]))
    for r in range(d.size):
        coords = d.cart.Get_coords(r)
        assert d.ranges(r) == tuple(own[a][coords[a]] for a in range(d.ndim))
    d.close()
