"""Parallel HDF5 I/O: DistArrays to and from one shared file, written collectively.

The file holds each field as one contiguous dataset of the **global** array in natural
layout, so h5py, h5dump, ParaView or any serial tool sees a plain array. HDF5 creates
each dataset collectively; every rank then writes its own block straight from the ghosted
local array into the dataset's storage, its owned rows handed to ``os.pwritev`` (no copy
of the block; :func:`_move_direct` says why), or, where that does not apply, in one
collective MPI-IO transfer whose memory selection skips the ghosts. Reads of a file
opened read-only go the same way back (``os.preadv`` into the owned rows), or, where that
does not apply, in one collective transfer into the owned cells.

Hangs designed out:

* a rank with nothing to write (a field held by some ranks only, an array on rank 0) still
  takes part with an empty selection; h5py's high-level ``ds[...] = x`` would skip the
  call and leave the others waiting (h5py issue 965), so transfers use the low-level API;
* collective transfers are requested per call with a transfer property list, not with
  ``with ds.collective:`` (which did not apply in some h5py versions, h5py issue 2017);
* every metadata operation (create, attributes) runs on every rank with identical values;
  nothing asks an mpio file for properties on one rank only (even ``f.driver`` is
  collective there);
* a bad file is checked first by rank 0 alone and the verdict shared (:func:`pympc.runtime.on_root`),
  so every rank raises the same :class:`~pympc.InputError` instead of some ranks failing
  inside a collective open.

**Two strategies behind one File**, chosen once when it opens: :class:`_Parallel` (every
rank holds the file; the mpio driver, or the default driver on one rank without an
MPI-enabled h5py) and :class:`_SerialFallback` (several ranks, h5py without MPI: rank 0
holds the file; writes gather to it, reads scatter from it, its answers are shared; one
warning says why it is slower). Both answer the same few calls: ask about the file,
change its metadata, write a DistArray or a block, read a DistArray, close.

**A private communicator.** A File talks on its own duplicate of the communicator it is
given (made at open, freed at close), so nothing it sends can match a message or a
collective of the user's program on that communicator.
"""

from __future__ import annotations

import datetime
import json
import os
import warnings

import h5py
import numpy as np
from h5py import h5d, h5fd, h5p, h5s

from .. import env as _env
from .._version import __version__
from ..array import SUPPORTED_DTYPES, DistArray, check_dtype
from ..grid import Decomposition
from ..runtime import InputError, check_all, get_comm, on_root

FORMAT = "pympc"
FORMAT_VERSION = 1
HAVE_PARALLEL_H5PY = bool(h5py.get_config().mpi)
_warned = False

#: Fields go into their datasets' storage with ``os.pwritev``, and out of it (files opened
#: ``"r"``) with ``os.preadv`` (see :func:`_move_direct`); ``PYMPC_IO_DIRECT=0``
#: (pympc.env; the same on every rank) sends them through HDF5's collective MPI-IO
#: transfer instead.
DIRECT = bool(_env.value("PYMPC_IO_DIRECT")) and hasattr(os, "pwritev")
#: Datasets of at least ``ALIGN_THRESHOLD`` bytes start at a multiple of ``ALIGN_INTERVAL``
#: in files pympc writes (H5Pset_alignment): whole pages and file-system blocks for the
#: bulk data, at most a quarter of such a dataset lost to padding.
ALIGN_THRESHOLD, ALIGN_INTERVAL = 4 << 20, 1 << 20
#: The staging buffer of :meth:`File.write_rows`, in bytes (one row at least).
SLAB_BYTES = 4 << 20
_IOV_MAX = 1024  # POSIX's minimum of IOV_MAX on Linux: iovecs per pwritev call


def _warn_serial():
    global _warned
    if not _warned:
        warnings.warn("h5py was built without MPI: pympc writes and reads HDF5 through rank 0 "
                      "(gather/scatter), which is slower and needs the global array in rank 0's "
                      "memory. Run 'pympc info' for how to get a parallel h5py.", RuntimeWarning,
                      stacklevel=3)
        _warned = True


def open_readonly(path):
    """Local. ``path`` opened read-only by this rank alone (an ``h5py.File``)."""
    return _h5open(path, "r")


def _h5open(path, mode, **driver):
    if mode == "r":
        # without HDF5's file lock: on file systems without flock (some NFS, Lustre mounts)
        # a locked open fails, which would make an intact file (a checkpoint) unreadable
        try:
            return h5py.File(path, "r", locking=False, **driver)
        except (TypeError, ValueError):  # an h5py or HDF5 without the option
            pass
        return h5py.File(path, mode, **driver)
    try:  # a file access property: it applies to what this open allocates
        return h5py.File(path, mode, alignment_threshold=ALIGN_THRESHOLD,
                         alignment_interval=ALIGN_INTERVAL, **driver)
    except TypeError:  # h5py < 3.7 has no alignment keywords
        return h5py.File(path, mode, **driver)


def _precheck(path, mode, comm):
    """Collective. Rank 0 checks the file alone; every rank raises the same error. A file
    opened ``"r"`` has its format version checked after the open instead
    (:func:`_check_version` on the open file: one open fewer per read)."""
    on_root(lambda: _check_path(path, mode), comm)


def _check_path(path, mode):
    try:
        if mode in ("r", "r+"):
            _check_readable(path, version=mode != "r")
        else:
            _check_creatable(path, mode)
    except OSError as e:  # unreadable, truncated, corrupt
        raise InputError(f"cannot read {path}: {e}") from None


def _check_readable(path, version=True):
    if not os.path.exists(path):
        raise InputError(f"no such file: {path}")
    if not h5py.is_hdf5(path):
        raise InputError(f"{path} is not an HDF5 file (or it is truncated or corrupt)")
    if version:
        with open_readonly(path) as f:
            _check_version(path, f)


def _check_version(path, h5):
    """A pympc file newer than this pympc reads: :class:`~pympc.InputError`."""
    fmt, ver = h5.attrs.get("format"), h5.attrs.get("format_version")
    if fmt == FORMAT and ver is not None and int(ver) > FORMAT_VERSION:
        raise InputError(f"{path} has pympc format version {int(ver)}, newer than this "
                         f"pympc ({__version__}) reads (<= {FORMAT_VERSION})")


def _check_creatable(path, mode):
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"cannot create {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot create {path}: directory {parent} is not writable")
    if mode == "x" and os.path.exists(path):
        raise InputError(f"{path} exists already")


def _attr_value(v):
    if isinstance(v, (dict, list, tuple)) and not (isinstance(v, (list, tuple)) and v and
                                                    all(isinstance(x, (int, float, np.number)) for x in v)):
        return json.dumps(v, sort_keys=True, default=str)
    if v is None:
        return "null"
    return v


def _describe_dtype(dt: np.dtype) -> str:
    if dt.kind in "biufc" and not dt.isnative:
        order = "big" if dt.byteorder == ">" else "little"
        return f"{dt.newbyteorder('=')} ({order}-endian)"
    return str(dt)


def read_dtypes(path: str, name: str, stored, dtype=None, supported_only=True):
    """Local. ``(memory, want)`` for reading a dataset of type ``stored`` as ``dtype``.

    ``memory`` is the type HDF5 reads into: the stored type in native byte order (HDF5
    converts big-endian data written by any other program); ``want`` is ``dtype`` (default
    ``memory``). Only safe conversions are allowed, by numpy's rule
    (``np.can_cast(stored, want, "safe")``: every value of the stored type is
    representable, int64 to float64 included, as in numpy); anything else, and a stored
    type pympc does not read, raises :class:`~pympc.InputError` naming the file, the
    dataset and both types. The same inputs give the same verdict on every rank.
    """
    stored = np.dtype(stored)
    memory = stored.newbyteorder("=") if stored.kind in "biufc" else stored
    if supported_only and memory not in SUPPORTED_DTYPES:
        raise InputError(f"{path}: dataset {name!r} holds {_describe_dtype(stored)}, which pympc does not "
                         f"read into a DistArray (it holds {', '.join(map(str, SUPPORTED_DTYPES))})")
    if dtype is None:
        return memory, memory
    try:
        want = np.dtype(dtype)
    except TypeError as e:
        raise InputError(f"reading {path}: dataset {name!r}: dtype={dtype!r} is not a numpy dtype") from e
    if supported_only:
        want = check_dtype(want)
    elif want.kind in "biufc":
        want = want.newbyteorder("=")
    if not np.can_cast(memory, want, casting="safe"):
        raise InputError(f"{path}: dataset {name!r} holds {_describe_dtype(stored)}, which does not convert "
                         f"safely to {want}: reading with dtype= allows only safe conversions "
                         f"(np.can_cast({memory}, {want}, 'safe') is False); read it as {memory} and "
                         f"convert it yourself if the loss is intended")
    return memory, want


def grid_attrs(decomp: Decomposition) -> dict:
    """Local. The geometry attributes pympc writes on every field dataset."""
    return {"grid_shape": np.array(decomp.shape, dtype=np.int64),
            "origin": np.array(decomp.origin), "spacing": np.array(decomp.spacing),
            "centring": decomp.centring, "periodic": np.array(decomp.periodic, dtype=np.int8)}


def _create(h5, name, attrs, **how):
    """The dataset ``name`` made anew (a previous one of that name deleted) with ``attrs``."""
    if name in h5:
        del h5[name]
    ds = h5.create_dataset(name, **how)
    for k, v in attrs.items():
        ds.attrs[k] = _attr_value(v)
    return ds


def _transfer(ds, buf, mstart, fstart, count, write, dxpl, memory=None):
    """One collective transfer between the block ``count`` at ``fstart`` of dataset ``ds``
    and ``buf`` at ``mstart`` (a memory selection: ghosts are skipped in place, no copy).
    ``buf`` None or an empty block: this rank joins with empty selections, in the memory
    type ``memory`` (default the dataset's) that every other rank uses, so that all agree
    on the conversion."""
    fspace = ds.id.get_space()
    if buf is None or 0 in tuple(count):
        fspace.select_none()
        mspace = h5s.create_simple((1,))
        mspace.select_none()
        buf = np.zeros(1, dtype=memory if memory is not None else ds.dtype)
    elif tuple(count) == ds.shape == buf.shape:  # the whole dataset (a scalar one included)
        fspace.select_all()
        mspace = h5s.create_simple(buf.shape)
    else:
        fspace.select_hyperslab(tuple(fstart), tuple(count))
        mspace = h5s.create_simple(buf.shape)
        mspace.select_hyperslab(tuple(mstart), tuple(count))
    (ds.id.write if write else ds.id.read)(mspace, fspace, buf, dxpl=dxpl)


def _move_distarray(ds, a, write, dxpl, memory=None):
    """:func:`_transfer` of DistArray ``a``'s owned block (``None``: nothing)."""
    if a is None:
        return _transfer(ds, None, (), (), (), write, dxpl, memory)
    d, nc = a.decomp, len(a.components)
    _transfer(ds, a.data, (d.ghost,) * d.ndim + (0,) * nc, tuple(d.lo) + (0,) * nc,
              tuple(d.local_shape) + a.components, write, dxpl)


def _direct_offset(ds, dtype, userblock):
    """The file offset of ``ds``'s raw data when a field may be written into it directly
    (contiguous storage already allocated, as parallel HDF5 allocates it at creation;
    numbers stored exactly as numpy holds them; a file without a user block, where
    H5Dget_offset is plainly the byte offset), else ``None``. The answer depends only on
    the file's metadata and the dtype: the same on every rank."""
    if not DIRECT or userblock or np.dtype(dtype).kind not in "biufc" or not np.dtype(dtype).isnative:
        return None
    if ds.id.get_create_plist().get_layout() != h5d.CONTIGUOUS:
        return None
    return ds.id.get_offset()  # None while no storage is allocated (an empty dataset too)


def _row_runs(a, offset):
    """``[(file offset, [rows], bytes)]``: DistArray ``a``'s owned block as rows of its last grid
    axis (with the components: each contiguous in memory, ghosts skipped in place), rows
    that follow each other in the file grouped, at most ``_IOV_MAX`` a group. Vectorised:
    a step's read of 8192 rows spent 2.3 ms here in a Python loop, a tenth of the
    transfer."""
    d, owned = a.decomp, a.owned
    lead = owned.shape[:d.ndim - 1]
    # the row views, made once per array (4096 of them took 0.3 ms) and kept with the
    # view they are rows of: an array whose owned view is replaced gets new ones
    kept = getattr(a, "_io_rows", None)
    if kept is None or kept[0] is not owned:
        rows = [owned] if not lead else list(owned) if len(lead) == 1 else [r for plane in owned for r in plane]
        a._io_rows = kept = (owned, rows)
    rows = kept[1]
    item = a.dtype.itemsize * int(np.prod(a.components, dtype=np.int64))
    gl = np.ravel_multi_index(tuple(np.indices(lead).reshape(len(lead), -1) + np.reshape(d.lo[:-1], (-1, 1))),
                              d.shape[:-1]) if lead else np.zeros(1, dtype=np.int64)
    starts = offset + (gl.astype(np.int64) * d.shape[-1] + d.lo[-1]) * item
    size = d.local_shape[-1] * item
    # a group starts where a row does not follow the one before in the file, and every
    # _IOV_MAX rows within a run of rows that do
    new = np.flatnonzero(np.diff(starts) != size) + 1
    cuts = []
    for lo, hi in zip([0, *new.tolist()], [*new.tolist(), len(rows)]):
        cuts.extend(range(lo, hi, _IOV_MAX))
    return [(int(starts[lo]), rows[lo:hi], (hi - lo) * size) for lo, hi in zip(cuts, [*cuts[1:], len(rows)])]


def _move_direct(path, a, offset, write, name):
    """This rank's share of field ``a`` between its ghosted array and the dataset
    ``name`` whose raw data starts at ``offset``: ``os.pwritev`` of the owned rows, or
    ``os.preadv`` into them, no copy. Why: a memory selection that skips the ghosts makes
    MPI-IO pack the block through its own buffer (a write at 0.78-0.92 of a raw
    ``Write_at_all`` at one rank, a read at 0.67 of ``Read_at_all`` at 1 and 2 ranks here;
    1.0 for a contiguous block); the kernel gathers and scatters the rows itself.
    Independent of the other ranks (each moves its own bytes); the error text, or
    ``None``."""
    if a is None or 0 in a.decomp.local_shape:
        return None
    verb = "write" if write else "read"
    try:
        fd = os.open(path, os.O_WRONLY if write else os.O_RDONLY)
    except OSError as e:
        return f"cannot {verb} {path}: {e}"
    move = os.pwritev if write else os.preadv
    try:
        for pos, rows, want in _row_runs(a, offset):
            while rows:  # a short transfer (a signal, a file system limit): the rest again
                done = move(fd, rows, pos)
                if done <= 0:
                    return (f"cannot write {path}: pwritev wrote nothing" if write else
                            f"cannot read {path}: the file ends inside dataset {name!r} (is it truncated?)")
                want -= done
                pos, rows = pos + done, _skip(rows, done) if want else []
        return None
    except OSError as e:
        return f"cannot {verb} {path}: {e}"
    finally:
        os.close(fd)


def _skip(rows, nbytes):
    """``rows`` (contiguous arrays) less their first ``nbytes`` bytes."""
    out = []
    for r in rows:
        b = memoryview(r).cast("B")
        if nbytes >= len(b):
            nbytes -= len(b)
            continue
        out.append(b[nbytes:])
        nbytes = 0
    return out


def _deliver(a, want, out):
    """``a`` (read in the stored type) as ``want``, in ``out`` if given (its owned cells):
    HDF5 reads into the stored type in native byte order (it swaps bytes on the way;
    big-endian files from other programs need it), a safe numpy cast then gives ``want``
    (HDF5 converts no integer to complex, nor its bool enum to numbers: numpy does)."""
    if out is None and a.dtype == want:
        return a
    b = out if out is not None else DistArray(a.decomp, want, a.components)
    if b is not a:
        b.owned[...] = a.owned
    return b


class _Parallel:
    """Every rank holds the file: one collective MPI-IO transfer per field."""

    def __init__(self, path, mode, comm):
        self.comm, self.path, self.mode = comm, path, mode
        # the mpio driver even on one rank: its collective path moves a ghosted block's
        # memory selection in one MPI-IO call (the serial driver goes through HDF5's
        # 1 MiB conversion buffer, half as fast here); without MPI in h5py (one rank) the
        # default driver
        mpio = {"driver": "mpio", "comm": comm} if HAVE_PARALLEL_H5PY else {}
        self.h5 = _h5open(path, mode, **mpio)
        self.userblock = self.h5.userblock_size  # every rank asks (a local property list)
        self.dxpl = None
        if HAVE_PARALLEL_H5PY:  # collective per call (``with ds.collective`` did not
            self.dxpl = h5p.create(h5p.DATASET_XFER)  # apply in some h5py, issue 2017)
            self.dxpl.set_dxpl_mpio(h5fd.MPIO_COLLECTIVE)

    def ask(self, fn):
        """Collective. ``fn(h5)``: every rank reads the same metadata, the same answer."""
        return fn(self.h5)

    def change(self, fn):
        """Collective. ``fn(h5)`` on every rank: metadata changes are collective in HDF5."""
        fn(self.h5)

    def write_field(self, name, a, shape, dtype, holder, attrs):
        """Collective. Write DistArray ``a`` (None: nothing) as dataset ``name``: straight
        into the dataset's storage where :func:`_direct_offset` allows (the same verdict on
        every rank), else one collective HDF5 transfer."""
        ds = _create(self.h5, name, attrs, shape=shape, dtype=dtype, fill_time="never")
        offset = _direct_offset(ds, dtype, self.userblock)
        if offset is None:
            return _move_distarray(ds, a, True, self.dxpl)
        err = _move_direct(self.path, a, offset, True, name)
        check_all(err is None, err, self.comm)  # every rank raises, none waits at close

    def write_rows(self, name, shape, dtype, lo, hi, fill, attrs):
        """Collective. Create dataset ``name``; this rank writes rows ``[lo, hi)`` slab by
        slab, each an independent transfer (ranks may have different numbers of slabs)."""
        ds = _create(self.h5, name, attrs, shape=shape, dtype=dtype, fill_time="never")
        if hi <= lo:
            return
        row = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
        buf = np.empty((min(hi - lo, max(1, SLAB_BYTES // max(row, 1))),) + tuple(shape[1:]), dtype=dtype)
        dxpl = None
        if HAVE_PARALLEL_H5PY:
            dxpl = h5p.create(h5p.DATASET_XFER)
            dxpl.set_dxpl_mpio(h5fd.MPIO_INDEPENDENT)
        for start in range(lo, hi, len(buf)):
            slab = buf[:min(len(buf), hi - start)]
            fill(slab, start)
            fspace = ds.id.get_space()
            fspace.select_hyperslab((start,) + (0,) * (len(shape) - 1), slab.shape)
            ds.id.write(h5s.create_simple(slab.shape), fspace, np.ascontiguousarray(slab), dxpl=dxpl)

    def write_block(self, name, shape, dtype, start, block, attrs):
        """Collective. Write each rank's ``block`` (None: nothing) at ``start``."""
        ds = _create(self.h5, name, attrs, shape=shape, dtype=dtype, fill_time="never")
        if int(np.prod(shape)) == 0:
            return  # nothing to transfer (and no storage to address): every rank knows
        count = block.shape if block is not None else ()
        _transfer(ds, block, (0,) * len(count), start, count, True, self.dxpl)

    def read_field(self, name, decomp, memory, want, comps, out):
        """Collective. Dataset ``name`` on ``decomp`` (None: this rank joins, gets None)."""
        ds = self.h5[name]
        offset = self._read_offset(ds)  # (the same verdict on every rank: metadata only)
        a = None
        if decomp is not None:
            a = out if (out is not None and out.dtype == memory) else DistArray(decomp, memory, comps)
        if offset is None:
            _move_distarray(ds, a, False, self.dxpl, memory)
        else:
            err = _move_direct(self.path, a, offset, False, name)
            check_all(err is None, err, self.comm)  # every rank raises, none waits at close
        return None if a is None else _deliver(a, want, out)

    def _read_offset(self, ds):
        """Where ``ds``'s bytes may be read straight from the file (:func:`_direct_offset`),
        or ``None``. Only in a file opened read-only: then nothing written through HDF5 in
        this open can still sit in a buffer of HDF5's or MPI-IO's rather than in the file.
        Only a dataset stored in this very file: an external link resolves to another file,
        where the offset points."""
        if self.mode != "r" or os.path.realpath(ds.file.filename) != os.path.realpath(self.h5.filename):
            return None
        return _direct_offset(ds, ds.dtype, self.userblock)

    def close(self):
        """Collective. Close the file."""
        self.h5.close()


class _SerialFallback:
    """Several ranks, h5py without MPI: rank 0 holds the file alone. Writes gather the
    data to rank 0, reads scatter from it, answers about the file are rank 0's."""

    def __init__(self, path, mode, comm):
        _warn_serial()
        self.comm = comm
        self.h5 = _h5open(path, mode) if comm.Get_rank() == 0 else None

    def ask(self, fn):
        """Collective. ``fn(h5)`` on rank 0, the answer (or its InputError) everywhere."""
        return on_root(lambda: fn(self.h5), self.comm)

    def change(self, fn):
        """Collective. ``fn(h5)`` on rank 0, where the file is."""
        if self.h5 is not None:
            fn(self.h5)

    def _hand(self, glob, src, dst, shape, dtype):
        """The global array, moved from rank ``src`` to rank ``dst`` (on the File's own
        communicator: no tag of the user's can match it)."""
        if src == dst:
            return glob
        if self.comm.Get_rank() == src:
            self.comm.Send(np.ascontiguousarray(glob), dest=dst)
        elif self.comm.Get_rank() == dst:
            glob = np.empty(shape, dtype=dtype)
            self.comm.Recv(glob, source=src)
        return glob

    def write_field(self, name, a, shape, dtype, holder, attrs):
        """Collective. Gather ``a`` on its root (``holder``), hand it to rank 0, write."""
        glob = a.gather(root=0) if a is not None else None
        glob = self._hand(glob, holder, 0, shape, dtype)
        if self.h5 is not None:
            _create(self.h5, name, attrs, data=glob)

    def write_block(self, name, shape, dtype, start, block, attrs):
        """Collective. Gather the blocks on rank 0, assemble, write."""
        parts = self.comm.gather(None if block is None else (start, block), root=0)
        if self.h5 is not None:
            glob = np.zeros(shape, dtype=dtype)
            for p in parts:
                if p is not None:
                    glob[tuple(slice(s, s + b) for s, b in zip(p[0], p[1].shape))] = p[1]
            _create(self.h5, name, attrs, data=glob)

    def write_rows(self, name, shape, dtype, lo, hi, fill, attrs):
        """Collective. Each rank fills its rows whole, then :meth:`write_block` (rank 0
        assembles the dataset anyway)."""
        block = None
        if hi > lo:
            block = np.empty((hi - lo,) + tuple(shape[1:]), dtype=dtype)
            fill(block, lo)
        self.write_block(name, shape, dtype, (lo,) + (0,) * (len(shape) - 1), block, attrs)

    def read_field(self, name, decomp, memory, want, comps, out):
        """Collective. Rank 0 reads, hands the array to ``decomp``'s root, which scatters."""
        glob = None
        if self.h5 is not None:  # h5py gives the stored byte order; astype: native, want
            glob = self.h5[name][...].astype(want, copy=False)
        roots = self.comm.allgather(decomp is not None and decomp.cart.Get_rank() == 0)
        # rank 0 hands the array over even when it is outside the field itself
        shape = None if decomp is None else tuple(decomp.shape) + tuple(comps)
        glob = self._hand(glob, 0, roots.index(True), shape, want)
        if decomp is None:
            return None
        a = DistArray.from_global(decomp, glob, root=0, dtype=want, components=comps)
        return _deliver(a, want, out)

    def close(self):
        """Collective. Rank 0 closes the file; every rank returns once it is closed (the
        others may read it then)."""
        if self.h5 is not None:
            self.h5.close()
        self.comm.Barrier()


def _dataset_info(h5, path, name):
    ds = h5[name] if name in h5 else None  # (one lookup: each costs tens of µs in parallel)
    if not isinstance(ds, h5py.Dataset):
        raise InputError(f"{path} has no dataset {name!r}")
    return ds.shape, ds.dtype.str


def _group_attrs(h5, path, group):
    if group not in h5:
        raise InputError(f"{path} has no group or dataset {group!r}")
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5[group].attrs.items()}


def _read_small(h5, path, name, dtype):
    _dataset_info(h5, path, name)
    ds = h5[name]
    # any stored type (strings too); numbers come back in native order
    _, want = read_dtypes(path, name, ds.dtype, dtype, supported_only=False)
    return ds[...].astype(want, copy=False)


def _block_error(name, shape, start, block):
    if len(start) != len(shape) or block.ndim != len(shape) or any(
            s < 0 or s + b > n for s, b, n in zip(start, block.shape, shape)):
        return f"write_block({name!r}): a block of shape {block.shape} at {start} does not fit in {shape}"
    return None


class File:
    """Collective. A shared HDF5 file opened by every rank of ``comm``.

    ``mode`` is ``"r"``, ``"r+"``, ``"w"`` (create, truncate), ``"x"`` (create, fail if
    it exists) or ``"a"``. New files get the pympc root attributes (format, version,
    provenance); ``params`` (a JSON-able dict, identical on every rank) is stored as
    ``parameters``. Use as a context manager or call :meth:`close`. Read-only opens take
    no HDF5 file lock (file systems without flock refuse a locked open). The File talks on
    a private duplicate of ``comm`` (freed by :meth:`close`).
    """

    def __init__(self, path, mode="r", comm=None, params=None, decomp: Decomposition | None = None):
        self.comm = get_comm(comm)
        self.path = str(path)
        if mode not in ("r", "r+", "w", "x", "a"):
            raise InputError(f"mode must be r, r+, w, x or a, got {mode!r}")
        self.mode = mode
        self._comm = self.comm.Dup()
        self._io = None
        try:
            self._io = self._open(mode)
            if mode == "r":  # (checked before the open in the other modes: _precheck)
                self._io.ask(lambda h5: _check_version(self.path, h5))
            if mode in ("w", "x") or (mode == "a" and not self._io.ask(lambda h5: "format" in h5.attrs)):
                self.set_attrs("/", self._root_attrs(params, decomp))
        except Exception:
            self.close()
            raise

    def _open(self, mode):
        """The strategy for this file, opened on every rank or on none (one verdict)."""
        _precheck(self.path, "r+" if mode == "a" and os.path.exists(self.path) else mode, self._comm)
        kind = _SerialFallback if not HAVE_PARALLEL_H5PY and self._comm.Get_size() > 1 else _Parallel
        store, err = None, None
        try:
            store = kind(self.path, mode, self._comm)
        except OSError as e:
            err = f"cannot open {self.path} (mode {mode}): {e}"
        try:
            check_all(err is None, err, self._comm)
        except InputError:
            if store is not None and store.h5 is not None:  # opened here, not on another rank
                store.h5.close()
            raise
        return store

    def _root_attrs(self, params, decomp):
        created = self._comm.bcast(datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                                   if self._comm.Get_rank() == 0 else None, root=0)
        attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "pympc_version": __version__,
                 "ranks": self.comm.Get_size(), "created": created,
                 "parameters": json.dumps(params or {}, sort_keys=True, default=str)}
        if decomp is not None:
            attrs["process_grid"] = np.array(decomp.dims, dtype=np.int64)
            attrs.update(grid_attrs(decomp))
        return attrs

    # -- metadata ------------------------------------------------------------------------
    def set_attrs(self, path: str, attrs: dict) -> None:
        """Collective. Set attributes on the group or dataset at ``path`` (identical
        values on every rank; dicts and lists of non-numbers are stored as JSON)."""
        def change(h5):
            obj = h5[path] if path != "/" else h5
            for k, v in attrs.items():
                obj.attrs[k] = _attr_value(v)
        self._io.change(change)

    def attrs(self, path: str = "/") -> dict:
        """Collective. The attributes of ``path`` as a dict, on every rank."""
        return self._io.ask(lambda h5: _group_attrs(h5, self.path, path))

    def __contains__(self, name):
        return self._io.ask(lambda h5: name in h5)

    def require_group(self, name: str) -> None:
        """Collective. Create the group ``name`` (and its parents) if missing."""
        self._io.change(lambda h5: h5.require_group(name))

    def delete(self, name: str) -> None:
        """Collective. Remove the group or dataset ``name`` if present."""
        def change(h5):
            if name in h5:
                del h5[name]
        self._io.change(change)

    def keys(self, group: str = "/") -> list:
        """Collective. Names in ``group``, sorted, on every rank."""
        return self._io.ask(lambda h5: sorted(h5[group].keys()) if group in h5 else [])

    # -- fields --------------------------------------------------------------------------
    def write(self, name: str, a: DistArray | None, attrs: dict | None = None) -> None:
        """Collective. Write DistArray ``a`` as the global dataset ``name``.

        Every rank of the file's communicator calls it; a rank that holds no part of the
        field (it is not in ``a``'s communicator) passes ``None`` and joins the
        collective transfer with an empty selection. The dataset gets the grid's
        geometry attributes plus ``attrs`` (e.g. time, step, units).
        """
        meta = None
        if a is not None and a.decomp.cart.Get_rank() == 0:
            # the field's root (rank 0 of its decomposition) describes it to every rank
            d = a.decomp
            meta = (d.shape + a.components, a.dtype.str, grid_attrs(d))
        metas = self._comm.allgather(meta)
        holder = next((r for r, m in enumerate(metas) if m is not None), None)
        if holder is None:
            raise InputError(f"write({name!r}): no rank holds the field")
        shape, dtype, gattrs = metas[holder]
        self._io.write_field(name, a, shape, dtype, holder, {**gattrs, **(attrs or {})})

    def read(self, name: str, decomp: Decomposition | None, dtype=None, out: DistArray | None = None):
        """Collective. Read the global dataset ``name`` into a new DistArray on ``decomp``
        (any decomposition of the dataset's shape; trailing extra axes become
        components), or into ``out`` (its owned cells; ghosts untouched). Ranks outside
        the field's communicator pass ``None`` and get ``None``. The dataset may come
        from any writer (serial h5py included) in either byte order: the array is always
        in native byte order. ``dtype`` (or ``out``'s dtype) may differ from the stored
        type only by a safe conversion (see :func:`read_dtypes`); an unsafe one raises
        :class:`~pympc.InputError` naming the file, the dataset and both types."""
        decomp, dtype = _read_target(decomp, dtype, out)
        shape, stored = self._io.ask(lambda h5: _dataset_info(h5, self.path, name))
        grid, dtype = self._agree_request(name, decomp, dtype)
        memory, want, comps = _check_request(self.path, name, shape, stored, grid, dtype, out)
        return self._io.read_field(name, decomp, memory, want, comps, out)

    def _agree_request(self, name, decomp, dtype):
        """The grid and dtype asked for, on every rank: the ranks that read the field say
        what they want, ranks outside it (decomp None) take that, so every rank reaches
        the same verdict on the dtype."""
        wants = self._comm.allgather(None if decomp is None else (decomp.shape, dtype))
        grid, dtype = next((w for w in wants if w is not None), (None, None))
        if grid is None:
            raise InputError(f"read({name!r}): no rank passed a decomposition")
        return grid, dtype

    def write_array(self, name: str, array, root: int = 0, attrs: dict | None = None) -> None:
        """Collective. Write a small array held by rank ``root`` only (others pass anything);
        the others take part with empty selections."""
        mine = self._comm.Get_rank() == root
        shape, dtype = self._comm.bcast((np.shape(array), np.asarray(array).dtype.str) if mine else None,
                                        root=root)
        self.write_block(name, shape, dtype, (0,) * len(shape), np.asarray(array) if mine else None, attrs)

    def write_block(self, name: str, shape, dtype, start, block, attrs: dict | None = None) -> None:
        """Collective. Create the dataset ``name`` of global ``shape`` and ``dtype`` and
        write each rank's ``block`` (a numpy array, or ``None`` for nothing) at offset
        ``start``, in one collective transfer. ``name``, ``shape``, ``dtype`` and ``attrs``
        are identical on every rank; the blocks must not overlap, and together they
        should cover the dataset (a cell no block covers is left unwritten). For data
        that is not a DistArray: each rank computes its own part (the XDMF mesh
        coordinates, say) and no rank holds the whole."""
        shape = tuple(int(n) for n in shape)
        dtype = np.dtype(dtype)
        err = None
        if block is not None:
            block = np.asarray(block, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
            start = tuple(int(i) for i in start)
            err = _block_error(name, shape, start, block)
        check_all(err is None, err, self._comm)  # a bad block on one rank: every rank raises
        if block is not None and block.size == 0:
            block = None
        self._io.write_block(name, shape, dtype, start, block, attrs or {})

    def write_rows(self, name: str, shape, dtype, lo: int, hi: int, fill, attrs: dict | None = None) -> None:
        """Collective. Create the dataset ``name`` of global ``shape`` and ``dtype`` and
        write rows ``[lo, hi)`` of its axis 0 from this rank (an empty range: none),
        computed by ``fill(out, start)``, which sets ``out`` to rows ``start`` to
        ``start + len(out)``. The rows go through one buffer of about ``SLAB_BYTES``
        (one row at least), slab by slab, so no rank holds its share whole (without a
        parallel h5py it does: rank 0 assembles the dataset). ``name``, ``shape``,
        ``dtype`` and ``attrs`` are identical on every rank; the ranges must not overlap."""
        shape = tuple(int(n) for n in shape)
        lo, hi = int(lo), int(hi)
        err = None
        if not shape or not 0 <= lo <= max(lo, hi) <= shape[0]:
            err = f"write_rows({name!r}): rows [{lo}, {hi}) do not fit in {shape}"
        check_all(err is None, err, self._comm)
        self._io.write_rows(name, shape, np.dtype(dtype), lo, hi, fill, attrs or {})

    def read_array(self, name: str, dtype=None) -> np.ndarray:
        """Collective. A small dataset, read whole by rank 0 and broadcast to every rank,
        in native byte order. ``dtype`` converts, safe conversions only (see
        :func:`read_dtypes`; an unsafe one raises the same :class:`~pympc.InputError` on
        every rank)."""
        return on_root(lambda: _read_small(self._io.h5, self.path, name, dtype), self._comm)

    def flush(self) -> None:
        """Collective. Push buffered data and metadata to the file system."""
        self._io.change(lambda h5: h5.flush())

    def close(self) -> None:
        """Collective. Close the file and free its private communicator (a second call
        does nothing)."""
        self._close_file()
        if self._comm is not None:
            comm, self._comm = self._comm, None
            comm.Free()

    def _close_file(self):
        if self._io is not None:
            io, self._io = self._io, None
            io.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_target(decomp, dtype, out):
    """``(decomp, dtype)`` of a read: ``out``'s when it is given (and ``decomp`` agrees)."""
    if out is None:
        return decomp, dtype
    why = None if decomp is None else out.decomp.mismatch(decomp)
    if why is not None:
        raise InputError(f"read(out=...): decomp= and out's decomposition differ: {why}")
    return out.decomp, out.dtype


def _check_request(path, name, shape, stored, grid, dtype, out):
    """``(memory, want, components)`` of a read of dataset ``name`` (``shape``, type
    ``stored``) onto ``grid`` as ``dtype``: InputError, the same on every rank, for a
    shape, component or type that does not fit."""
    if tuple(shape[:len(grid)]) != tuple(grid):
        raise InputError(f"dataset {name!r} has shape {tuple(shape)}, which does not match the "
                         f"decomposition's {tuple(grid)}")
    memory, want = read_dtypes(path, name, stored, dtype)
    comps = tuple(shape[len(grid):])
    if out is not None and out.components != comps:
        raise InputError(f"dataset {name!r} has components {comps}, out has {out.components}")
    return memory, want, comps


def write(path, fields: dict, comm=None, attrs: dict | None = None, params=None) -> None:
    """Collective. Write DistArrays ``{name: array}`` into a new file (datasets at the
    root), atomically: the file appears under ``path`` only once it is complete (it is
    written as ``path.tmp`` and renamed by rank 0), replacing any older one."""
    first = next(iter(fields.values()))
    comm = get_comm(comm or (first.decomp.comm if first is not None else None))
    path = str(path)
    tmp = path + ".tmp"
    with File(tmp, "w", comm=comm, params=params, decomp=first.decomp if first is not None else None) as f:
        for name, a in fields.items():
            f.write(name, a, attrs)
        f._close_file()  # complete on disk before it gets its name
        on_root(lambda: _rename(tmp, path), f._comm)


def _rename(tmp, path):
    try:
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e}") from None


def read(path, name: str, decomp: Decomposition | None = None, dtype=None, comm=None,
         out: DistArray | None = None) -> DistArray:
    """Collective. Read dataset ``name`` of ``path`` into a DistArray on ``decomp`` (or
    into ``out``)."""
    d = out.decomp if out is not None else decomp
    with File(path, "r", comm=comm or d.comm) as f:
        return f.read(name, decomp, dtype, out=out)
