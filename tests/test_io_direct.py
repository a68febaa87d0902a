"""The fast write paths of pympc.io against serial h5py and numpy: fields written straight
into their datasets' storage (pwritev of the owned rows, ghosts skipped) give the same
datasets as HDF5's own collective transfer, for uneven splits, split last axes, 1-3D,
components and several dtypes; short and failing writes; File.write_rows slab by slab
(the XDMF mesh) with bounded memory; large datasets aligned."""

import os
import tracemalloc

import h5py
import numpy as np
import pytest

import pympc
from mpicheck import on_root, same_error
from pympc.io import file as iofile
from pympc.io.output import Output

CASES = [((23,), (), None), ((13, 10), (), None), ((13, 10), (), "last"), ((7, 6, 5), (), None),
         ((9, 7), (3,), None), ((6, 5, 4), (2,), "last")]
DTYPES = [np.float64, np.float32, np.int16, np.complex128, np.bool_]


def glob_data(shape, dtype, seed=0):
    x = np.random.default_rng(seed).integers(-999, 999, size=shape)
    if np.dtype(dtype).kind == "b":
        return x > 0
    return (x + 1j * x[::-1] if np.dtype(dtype).kind == "c" else x).astype(dtype)


def _decomp(comm, shape, split, ghost=1):
    """Uneven splits: the first axis split in a 1, 2, 3 ... pattern, or the last axis
    split ("last": rows of different ranks interleave in the file)."""
    size = comm.Get_size()
    dims = [1] * len(shape)
    dims[-1 if split == "last" else 0] = size
    return pympc.Decomposition(shape, comm=comm, dims=tuple(dims), ghost=ghost)


def _write_and_read_back(comm, path, shape, comps, dtype, split, ghost=1, direct=True):
    glob = glob_data(shape + comps, dtype)
    with _decomp(comm, shape, split, ghost) as d:
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None, components=comps)
        _poison_ghosts(a)
        pympc.io.write(path, {"u": a})
    return glob


def short_transfers(real, sizes):
    """``real`` (``os.pwritev`` or ``os.preadv``) moving only part of its first buffer
    per call, 1000 bytes and 7 more each call (never a multiple of an item's size); the
    sizes go to ``sizes``."""
    def short(fd, bufs, pos):
        first = memoryview(bufs[0]).cast("B")
        n = min(len(first), 1000 + 7 * len(sizes))
        sizes.append(n)
        return real(fd, [first[:n]], pos)
    return short


def _poison_ghosts(a):
    """Ghost cells set to a value no owned cell has: a write that took a ghost shows."""
    owned = a.owned.copy()
    a.data[...] = 77 if a.dtype.kind != "b" else True
    a.owned[...] = owned


@pytest.mark.mpi
@pytest.mark.parametrize("shape,comps,split", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_write_matches_serial_oracle_and_hdf5_path(comm, shared_tmp_path, monkeypatch, shape, comps,
                                                          split, dtype):
    calls = []
    real = iofile._move_distarray
    monkeypatch.setattr(iofile, "_move_distarray", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast, slow = str(shared_tmp_path / "fast.h5"), str(shared_tmp_path / "slow.h5")
    glob = _write_and_read_back(comm, fast, shape, comps, dtype, split, ghost=2 if len(shape) == 2 else 1)
    assert calls == []  # the field went the direct way (no HDF5 transfer of it)
    monkeypatch.setattr(iofile, "DIRECT", False)
    _write_and_read_back(comm, slow, shape, comps, dtype, split)
    assert calls  # and here through HDF5's collective transfer

    def check():
        with h5py.File(fast, "r") as f, h5py.File(slow, "r") as g:
            assert f["u"].dtype == g["u"].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(f["u"][...], glob)
            np.testing.assert_array_equal(g["u"][...], glob)
    on_root(comm, check)


@pytest.mark.mpi
def test_direct_write_survives_short_writes(comm, shared_tmp_path, monkeypatch):
    """pwritev may write fewer bytes than asked (a signal, a file system limit): the rest
    is written again from where it stopped, mid-row included."""
    sizes = []
    monkeypatch.setattr(os, "pwritev", short_transfers(os.pwritev, sizes))
    path = str(shared_tmp_path / "short.h5")
    glob = _write_and_read_back(comm, path, (37, 29), (2,), np.float64, None)
    assert len(sizes) > 1
    on_root(comm, lambda: np.testing.assert_array_equal(h5py.File(path, "r")["u"][...], glob))


@pytest.mark.mpi
def test_a_failing_direct_write_raises_on_every_rank(comm, shared_tmp_path, monkeypatch):
    def fail(fd, bufs, pos):
        raise OSError(28, "No space left on device")
    if comm.Get_rank() == comm.Get_size() - 1:
        monkeypatch.setattr(os, "pwritev", fail)
    path = str(shared_tmp_path / "full.h5")
    with pympc.Decomposition((12, 8), comm=comm) as d:
        a = pympc.DistArray.from_function(d, lambda i, j: i + j, coords=False)
        same_error(comm, lambda: pympc.io.write(path, {"u": a}), None, "No space left")

    def nothing_named():
        assert not os.path.exists(path), "a failed write left the file under its name"
    on_root(comm, nothing_named)


@pytest.mark.mpi
def test_a_field_held_by_some_ranks_goes_direct(comm, shared_tmp_path):
    """Ranks outside the field join with nothing; the others write their rows."""
    path = str(shared_tmp_path / "sub.h5")
    rank = comm.Get_rank()
    sub = comm.Split(0 if rank == 0 or comm.Get_size() == 1 else rank % 2, rank)
    glob = glob_data((11, 5), np.float64)
    try:
        mine = rank == 0 or comm.Get_size() == 1 or rank % 2 == 0
        with pympc.io.File(path, "w", comm=comm) as f:
            if mine:
                with pympc.Decomposition((11, 5), comm=sub) as d:
                    a = pympc.DistArray.from_global(d, glob if sub.Get_rank() == 0 else None)
                    f.write("u", a)
            else:
                f.write("u", None)
    finally:
        sub.Free()
    on_root(comm, lambda: np.testing.assert_array_equal(h5py.File(path, "r")["u"][...], glob))


@pytest.mark.mpi
@pytest.mark.parametrize("rows,cols,slab", [(17, 3, 24), (5, 4, 10_000), (1, 6, 8), (0, 2, 64)])
def test_write_rows_in_slabs(comm, shared_tmp_path, monkeypatch, rows, cols, slab):
    """Uneven shares (a rank may have none, or more slabs than another), slabs smaller
    than a row (one row each), a dataset with no rows."""
    monkeypatch.setattr(iofile, "SLAB_BYTES", slab)
    glob = np.arange(rows * cols * 2, dtype=np.float32).reshape(rows, cols, 2) * 0.5
    rank, size = comm.Get_rank(), comm.Get_size()
    lo, hi = rank * rows // size, (rank + 1) * rows // size
    if size > 1 and rank == 0:
        lo = hi = 0  # rank 0 writes nothing
    elif size > 1 and rank == 1:
        lo = 0
    seen = []

    def fill(out, start):
        seen.append(len(out))
        out[...] = glob[start:start + len(out)]
    path = str(shared_tmp_path / "rows.h5")
    with pympc.io.File(path, "w", comm=comm) as f:
        f.write_rows("r", glob.shape, np.float32, lo, hi, fill, attrs={"k": 1})
        same_error(comm, lambda: f.write_rows("bad", (4, 2), np.float64, 3, 5, fill), None, "do not fit")
    assert sum(seen) == hi - lo and all(n * cols * 2 * 4 <= max(slab, cols * 2 * 4) for n in seen)

    def check():
        with h5py.File(path, "r") as h:
            np.testing.assert_array_equal(h["r"][...], glob)
            assert h["r"].attrs["k"] == 1 and h["r"].dtype == np.float32
    on_root(comm, check)


def _mesh_oracle(field):
    """The mesh coordinates as pympc wrote them before write_rows: one meshgrid."""
    from pympc.io.xdmf import _columns, _nodes
    nodes = _nodes(field)
    axes = [field["origin"][a] + np.arange(n, dtype=np.float64) * field["spacing"][a] for a, n in enumerate(nodes)]
    block = np.zeros(nodes + [_columns(len(nodes))])
    for a, x in enumerate(np.meshgrid(*axes, indexing="ij")):
        block[..., a] = x
    return block


@pytest.mark.mpi
@pytest.mark.parametrize("shape", [(9,), (7, 5), (4, 3, 5)])
@pytest.mark.parametrize("centring", ["vertex", "cell"])
def test_mesh_written_in_slabs_is_the_meshgrid(comm, shared_tmp_path, monkeypatch, shape, centring):
    monkeypatch.setattr(iofile, "SLAB_BYTES", 40)  # a few rows a slab, one where rows are larger
    path = str(shared_tmp_path / "m.h5")
    with pympc.Decomposition(shape, comm=comm, origin=12345.678, spacing=1e-3, centring=centring) as d:
        u = pympc.DistArray.from_function(d, lambda *x: sum(x), coords=False)
        with Output(path, d) as out:
            out.write(0, 0.0, u=u)
        field = {"shape": list(shape), "centring": centring, "origin": list(d.origin), "spacing": list(d.spacing)}
    from pympc.io.xdmf import mesh_path

    def check():
        with h5py.File(path, "r") as f:
            g = f[mesh_path(field)]
            np.testing.assert_array_equal(g["points"][...], _mesh_oracle(field))
            if len(shape) == 1 and centring == "cell":
                n = shape[0]
                np.testing.assert_array_equal(g["cells"][...], np.stack([np.arange(n), np.arange(1, n + 1)], 1))
    on_root(comm, check)


@pytest.mark.mpi
def test_output_step_memory_is_bounded(comm, shared_tmp_path):
    """The first step of a series writes the field and two fields' worth of mesh
    coordinates: numpy allocates a few MiB of slab at most, not the mesh (it was 4 fields'
    worth), and nothing for the field itself."""
    n = 1024  # an 8 MiB field: the 4 MiB slab is half of it
    path = str(shared_tmp_path / "big.h5")
    with pympc.Decomposition((n, n), comm=comm) as d:
        u = pympc.DistArray.from_function(d, lambda i, j: i + 0.5 * j, coords=False)
        with Output(path, d) as out:
            tracemalloc.start()
            out.write(0, 0.0, u=u)
            first = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            out.write(1, 1.0, u=u)
            later = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        field = n * n * 8
        assert first <= iofile.SLAB_BYTES + 0.05 * field, (first, field)
        assert later <= 0.05 * field, (later, field)  # row views and their offsets only
        on_root(comm, lambda: np.testing.assert_array_equal(h5py.File(path, "r")["/steps/00000001/u"][...],
                                                            np.add.outer(np.arange(n), 0.5 * np.arange(n))))


@pytest.mark.mpi
def test_large_datasets_are_aligned(comm, shared_tmp_path):
    path = str(shared_tmp_path / "al.h5")
    with pympc.Decomposition((1024, 520), comm=comm) as d:  # 4.06 MiB: above the threshold
        big = pympc.DistArray.from_function(d, lambda i, j: i - j, coords=False)
        with pympc.Decomposition((10, 3), comm=comm) as s:
            small = pympc.DistArray.from_function(s, lambda i, j: i * j, coords=False)
            pympc.io.write(path, {"small": small, "big": big, "small2": small})

    def check():
        with h5py.File(path, "r") as f:
            assert f["big"].id.get_offset() % iofile.ALIGN_INTERVAL == 0
            assert f["small2"].id.get_offset() < iofile.ALIGN_INTERVAL + f["big"].id.get_offset()
            np.testing.assert_array_equal(f["big"][...], np.subtract.outer(np.arange(1024), np.arange(520)))
    on_root(comm, check)


@pytest.mark.mpi
def test_a_file_with_a_user_block_goes_through_hdf5(comm, shared_tmp_path, monkeypatch):
    """Another program's file with a user block, opened r+: offsets would be shifted, so
    the field takes HDF5's transfer, and lands where HDF5 says."""
    calls = []
    real = iofile._move_distarray
    monkeypatch.setattr(iofile, "_move_distarray", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = str(shared_tmp_path / "ub.h5")
    if comm.Get_rank() == 0:
        with h5py.File(path, "w", userblock_size=512) as f:
            f.attrs["x"] = 1
    comm.Barrier()
    glob = glob_data((10, 7), np.float64)
    with pympc.Decomposition((10, 7), comm=comm) as d:
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None)
        with pympc.io.File(path, "r+", comm=comm) as f:
            f.write("u", a)
    assert calls
    on_root(comm, lambda: np.testing.assert_array_equal(h5py.File(path, "r")["u"][...], glob))
