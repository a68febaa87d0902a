"""The fast read path of pympc.io against serial h5py and numpy: a field read from a file
opened read-only goes straight from its dataset's storage into the owned rows
(``os.preadv``, ghosts untouched) and gives the same DistArray as HDF5's own collective
transfer, for uneven splits, split last axes, 1-3D, components and several dtypes, into a
new DistArray and into ``out=``; every dataset that is not plainly this file's contiguous
bytes in native order (big-endian, chunked, behind an external link, after a user block,
a file open for writing) goes through HDF5; short and failing reads."""

import os

import h5py
import numpy as np
import pytest

import pympc
from mpicheck import same_error
from pympc.io import file as iofile
from test_io_direct import CASES, DTYPES, _decomp, _poison_ghosts, glob_data, short_transfers


def _serial(comm, path, glob, name="u", **kw):
    """Rank 0 writes ``glob`` with serial h5py (another program's file); all wait."""
    if comm.Get_rank() == 0:
        with h5py.File(path, "w") as f:
            f.create_dataset(name, data=glob, **kw)
    comm.Barrier()


def _spy(monkeypatch):
    """Which way each field went: ``"hdf5"`` (HDF5's transfer) or ``"direct"``."""
    ways = []
    real_h5, real_direct = iofile._move_distarray, iofile._move_direct
    monkeypatch.setattr(iofile, "_move_distarray", lambda *a, **k: ways.append("hdf5") or real_h5(*a, **k))
    monkeypatch.setattr(iofile, "_move_direct", lambda *a, **k: ways.append("direct") or real_direct(*a, **k))
    return ways


def _mine(d, glob):
    return glob[tuple(slice(lo, lo + n) for lo, n in zip(d.lo, d.local_shape))]


def _check(d, a, glob, ghosts_of=None):
    """``a``'s owned cells are this rank's part of ``glob``; its ghosts, if ``ghosts_of``
    (the array before the read) is given, are as they were."""
    np.testing.assert_array_equal(a.owned, _mine(d, glob))
    if ghosts_of is not None:
        ghost = np.ones(a.data.shape[:d.ndim], dtype=bool)
        ghost[tuple(slice(d.ghost, d.ghost + n) for n in d.local_shape)] = False
        np.testing.assert_array_equal(a.data[ghost], ghosts_of[ghost])


@pytest.mark.mpi
@pytest.mark.parametrize("shape,comps,split", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_read_matches_serial_oracle_and_hdf5_path(comm, shared_tmp_path, monkeypatch, shape, comps,
                                                         split, dtype):
    path = str(shared_tmp_path / "r.h5")
    glob = glob_data(shape + comps, dtype, seed=3)
    _serial(comm, path, glob)
    ways = _spy(monkeypatch)
    with _decomp(comm, shape, split, ghost=2 if len(shape) == 2 else 1) as d:
        new = pympc.io.read(path, "u", d)
        out = pympc.DistArray(d, dtype, comps)
        _poison_ghosts(out)
        before = out.data.copy()
        assert pympc.io.read(path, "u", out=out) is out
        assert ways == ["direct", "direct"]
        _check(d, new, glob)
        _check(d, out, glob, before)
        assert new.dtype == np.dtype(dtype) and new.components == comps
        monkeypatch.setattr(iofile, "DIRECT", False)
        slow = pympc.io.read(path, "u", d)
        assert ways[2:] == ["hdf5"]
        _check(d, slow, glob)


@pytest.mark.mpi
def test_direct_read_with_a_safe_conversion(comm, shared_tmp_path):
    """dtype= reads the stored type straight, then numpy converts (int32 -> float64)."""
    path = str(shared_tmp_path / "i.h5")
    glob = glob_data((19, 6), np.int32)
    _serial(comm, path, glob)
    with pympc.Decomposition((19, 6), comm=comm, ghost=2) as d:
        a = pympc.io.read(path, "u", d, dtype=np.float64)
        assert a.dtype == np.float64
        _check(d, a, glob.astype(np.float64))


def _external(comm, path, glob):
    """A file whose ``u`` is an external link to a dataset in another file."""
    other = path[:-3] + ".data.h5"
    _serial(comm, other, glob, name="v")
    if comm.Get_rank() == 0:
        with h5py.File(path, "w") as f:
            f.create_dataset("pad", data=np.arange(1000.0))  # the offsets of the two files differ
            f["u"] = h5py.ExternalLink(os.path.basename(other), "v")
    comm.Barrier()


def _userblock(comm, path, glob):
    if comm.Get_rank() == 0:
        with h5py.File(path, "w", userblock_size=512) as f:
            f.create_dataset("u", data=glob)
    comm.Barrier()


@pytest.mark.mpi
@pytest.mark.parametrize("kind", ["big-endian", "chunked", "external link", "user block", "open r+"])
def test_other_datasets_go_through_hdf5(comm, shared_tmp_path, monkeypatch, kind):
    """Where the bytes at H5Dget_offset are not the field as numpy holds it in this file
    (or the file is open for writing), the read is HDF5's, and right."""
    path = str(shared_tmp_path / "o.h5")
    glob = glob_data((17, 9), np.float64, seed=5)
    if kind == "big-endian":
        _serial(comm, path, glob.astype(">f8"))
    elif kind == "chunked":
        _serial(comm, path, glob, chunks=(4, 3))
    elif kind == "external link":
        _external(comm, path, glob)
    elif kind == "user block":
        _userblock(comm, path, glob)
    else:
        _serial(comm, path, glob)
    ways = _spy(monkeypatch)
    with pympc.Decomposition((17, 9), comm=comm, ghost=1) as d:
        if kind == "open r+":
            with pympc.io.File(path, "r+", comm=comm) as f:
                a = f.read("u", d)
        else:
            a = pympc.io.read(path, "u", d)
        assert ways == ["hdf5"], ways
        assert a.dtype.isnative
        _check(d, a, glob)


@pytest.mark.mpi
def test_ranks_outside_the_field_join_a_direct_read(comm, shared_tmp_path, monkeypatch):
    """A field held by some ranks: the others pass None, get None, and take part in the
    verdict (no rank waits)."""
    path = str(shared_tmp_path / "sub.h5")
    glob = glob_data((11, 5), np.float64)
    _serial(comm, path, glob)
    ways = _spy(monkeypatch)
    rank = comm.Get_rank()
    mine = rank == 0 or comm.Get_size() == 1 or rank % 2 == 0
    sub = comm.Split(0 if mine else 1, rank)
    try:
        with pympc.io.File(path, "r", comm=comm) as f:
            if mine:
                with pympc.Decomposition((11, 5), comm=sub) as d:
                    _check(d, f.read("u", d), glob)
            else:
                assert f.read("u", None) is None
    finally:
        sub.Free()
    assert ways == ["direct"]


@pytest.mark.mpi
def test_direct_read_survives_short_reads(comm, shared_tmp_path, monkeypatch):
    """preadv may read fewer bytes than asked: the rest is read from where it stopped,
    mid-row and mid-value included."""
    sizes = []
    path = str(shared_tmp_path / "short.h5")
    glob = glob_data((37, 29, 2), np.float64)
    _serial(comm, path, glob)
    monkeypatch.setattr(os, "preadv", short_transfers(os.preadv, sizes))
    with pympc.Decomposition((37, 29), comm=comm, ghost=2) as d:
        a = pympc.io.read(path, "u", d)
        _check(d, a, glob)
    assert len(sizes) > 1


@pytest.mark.mpi
@pytest.mark.parametrize("failure", ["end of file", "EIO"])
def test_a_failing_direct_read_raises_on_every_rank(comm, shared_tmp_path, monkeypatch, failure):
    """One rank's read fails (the file ends early, an I/O error): every rank raises the
    same InputError naming the file, none waits."""
    path = str(shared_tmp_path / "bad.h5")
    _serial(comm, path, glob_data((12, 8), np.float64))

    def fail(fd, bufs, pos):
        if failure == "EIO":
            raise OSError(5, "Input/output error")
        return 0
    if comm.Get_rank() == comm.Get_size() - 1:
        monkeypatch.setattr(os, "preadv", fail)
    with pympc.Decomposition((12, 8), comm=comm) as d:
        words = ("Input/output error",) if failure == "EIO" else ("ends inside dataset 'u'",)
        same_error(comm, lambda: pympc.io.read(path, "u", d), None, path, *words)


@pytest.mark.mpi
@pytest.mark.parametrize("shape,comps,split", CASES)
def test_rows_grouped_past_the_iovec_limit_in_both_directions(comm, shared_tmp_path, monkeypatch, shape, comps,
                                                               split):
    """Consecutive rows go to ``os.pwritev``/``os.preadv`` in groups of at most
    ``_IOV_MAX``: with the limit at 2 every run of rows is cut mid-run (and rows of a
    split last axis, not consecutive in the file, each start a group); the field written
    and read back is the oracle's, and no call gets more rows than the limit."""
    monkeypatch.setattr(iofile, "_IOV_MAX", 2)
    calls = []
    for fn in ("pwritev", "preadv"):
        real = getattr(os, fn)
        monkeypatch.setattr(os, fn, lambda fd, bufs, pos, real=real: calls.append(len(bufs)) or real(fd, bufs, pos))
    path = str(shared_tmp_path / "iov.h5")
    glob = glob_data(shape + comps, np.float64, seed=5)
    with _decomp(comm, shape, split, ghost=2 if len(shape) == 2 else 1) as d:
        a = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None, components=comps)
        pympc.io.write(path, {"u": a})
        out = pympc.DistArray(d, np.float64, comps)
        _poison_ghosts(out)
        before = out.data.copy()
        pympc.io.read(path, "u", out=out)
        _check(d, out, glob, before)
        # again, other values into the same array (its row views are kept between reads)
        glob2 = glob_data(shape + comps, np.float64, seed=6)
        b = pympc.DistArray.from_global(d, glob2 if comm.Get_rank() == 0 else None, components=comps)
        pympc.io.write(path, {"u": b})
        pympc.io.read(path, "u", out=out)
        _check(d, out, glob2, before)
        rows = int(np.prod(d.local_shape[:-1])) if len(shape) > 1 else 1
    assert max(calls, default=0) <= 2
    if 0 not in d.local_shape:
        assert len(calls) >= 4 * -(-rows // 2)  # each transfer: a call per group at least
