"""Parallel HDF5 I/O: DistArrays to and from one shared file, written collectively.

The file holds each field as one contiguous dataset of the **global** array in natural
layout, so h5py, h5dump, ParaView or any serial tool sees a plain array. Every rank writes
its own block (a hyperslab) in one collective MPI-IO transfer, straight from the ghosted
local array (the memory selection skips the ghosts: no copy of the block is made).

Hangs designed out:

* a rank with nothing to write (a field held by some ranks only, an array on rank 0) still
  takes part with an empty selection; h5py's high-level ``ds[...] = x`` would skip the
  call and leave the others waiting (h5py issue 965), so transfers use the low-level API;
* collective transfers are requested per call with a transfer property list, not with
  ``with ds.collective:`` (which did not apply in some h5py versions, h5py issue 2017);
* every metadata operation (create, attributes) runs on every rank with identical values;
  nothing asks an mpio file for properties on one rank only (even ``f.driver`` is
  collective there);
* a bad file is checked first by rank 0 alone and the verdict broadcast, so every rank
  raises the same :class:`~pympc.InputError` instead of some ranks failing inside a
  collective open.

Without an MPI-enabled h5py the same API works through rank 0 (gather, then a serial
write; read, then scatter), with one warning saying why it is slower.
"""

from __future__ import annotations

import datetime
import json
import os
import warnings

import h5py
import numpy as np
from h5py import h5fd, h5p, h5s

from .._version import __version__
from ..array import SUPPORTED_DTYPES, DistArray, check_dtype
from ..grid import Decomposition
from ..runtime import InputError, check_all, get_comm

FORMAT = "pympc"
FORMAT_VERSION = 1
HAVE_PARALLEL_H5PY = bool(h5py.get_config().mpi)
_warned = False


def _warn_serial():
    global _warned
    if not _warned:
        warnings.warn("h5py was built without MPI: pympc writes and reads HDF5 through rank 0 "
                      "(gather/scatter), which is slower and needs the global array in rank 0's "
                      "memory. Run 'pympc info' for how to get a parallel h5py.", RuntimeWarning,
                      stacklevel=3)
        _warned = True


def _precheck(path, mode, comm):
    """Collective. Rank 0 checks the file alone; every rank raises the same error."""
    msg = None
    if comm.Get_rank() == 0:
        try:
            if mode == "r" or mode == "r+":
                if not os.path.exists(path):
                    msg = f"no such file: {path}"
                elif not h5py.is_hdf5(path):
                    msg = f"{path} is not an HDF5 file (or it is truncated or corrupt)"
                else:
                    with h5py.File(path, "r") as f:
                        fmt = f.attrs.get("format")
                        ver = f.attrs.get("format_version")
                        if fmt == FORMAT and ver is not None and int(ver) > FORMAT_VERSION:
                            msg = (f"{path} has pympc format version {int(ver)}, newer than this "
                                   f"pympc ({__version__}) reads (<= {FORMAT_VERSION})")
            else:
                parent = os.path.dirname(os.path.abspath(path))
                if not os.path.isdir(parent):
                    msg = f"cannot create {path}: directory {parent} does not exist"
                elif not os.access(parent, os.W_OK):
                    msg = f"cannot create {path}: directory {parent} is not writable"
                elif mode == "x" and os.path.exists(path):
                    msg = f"{path} exists already"
        except OSError as e:  # unreadable, truncated, corrupt
            msg = f"cannot read {path}: {e}"
    msg = comm.bcast(msg, root=0)
    if msg:
        raise InputError(msg)


def _collective_dxpl():
    dxpl = h5p.create(h5p.DATASET_XFER)
    dxpl.set_dxpl_mpio(h5fd.MPIO_COLLECTIVE)
    return dxpl


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


class File:
    """Collective. A shared HDF5 file opened by every rank of ``comm``.

    ``mode`` is ``"r"``, ``"r+"``, ``"w"`` (create, truncate), ``"x"`` (create, fail if
    it exists) or ``"a"``. New files get the pympc root attributes (format, version,
    provenance); ``params`` (a JSON-able dict, identical on every rank) is stored as
    ``parameters``. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path, mode="r", comm=None, params=None, decomp: Decomposition | None = None):
        self.comm = comm = get_comm(comm)
        self.path = str(path)
        if mode not in ("r", "r+", "w", "x", "a"):
            raise InputError(f"mode must be r, r+, w, x or a, got {mode!r}")
        _precheck(self.path, "r" if mode == "a" and os.path.exists(self.path) else mode, comm)
        self.mode = mode
        # the mpio driver even on one rank: its collective path moves a ghosted block's
        # memory selection in one MPI-IO call (the serial driver goes through HDF5's
        # 1 MiB conversion buffer, half as fast here)
        self.parallel = HAVE_PARALLEL_H5PY
        self.serial_fallback = not HAVE_PARALLEL_H5PY and comm.Get_size() > 1
        if self.serial_fallback:
            _warn_serial()
        self.h5 = None
        err = None
        try:
            if self.parallel:
                self.h5 = h5py.File(self.path, mode, driver="mpio", comm=comm)
            elif comm.Get_rank() == 0:  # one rank, or the serial fallback's rank 0
                self.h5 = h5py.File(self.path, mode)
        except OSError as e:
            err = f"cannot open {self.path} (mode {mode}): {e}"
        check_all(err is None, err or "", comm)
        if mode in ("w", "x") or (mode == "a" and not self._has_attr("format")):
            created = comm.bcast(datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                                 if comm.Get_rank() == 0 else None, root=0)
            attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "pympc_version": __version__,
                     "ranks": comm.Get_size(), "created": created,
                     "parameters": json.dumps(params or {}, sort_keys=True, default=str)}
            if decomp is not None:
                attrs["process_grid"] = np.array(decomp.dims, dtype=np.int64)
                attrs.update(grid_attrs(decomp))
            self.set_attrs("/", attrs)

    # -- helpers -------------------------------------------------------------------------
    def _holds(self):
        return self.h5 is not None

    def _has_attr(self, name):
        has = self.h5 is not None and name in self.h5.attrs
        return self.comm.bcast(has, root=0) if self.serial_fallback else has

    def set_attrs(self, path: str, attrs: dict) -> None:
        """Collective. Set attributes on the group or dataset at ``path`` (identical
        values on every rank; dicts and lists of non-numbers are stored as JSON)."""
        if self._holds():
            obj = self.h5[path] if path != "/" else self.h5
            for k, v in attrs.items():
                obj.attrs[k] = _attr_value(v)

    def attrs(self, path: str = "/") -> dict:
        """Collective. The attributes of ``path`` as a dict, on every rank."""
        out = None
        if self._holds():
            if path not in self.h5:
                out = KeyError(path)
            else:
                obj = self.h5[path]
                out = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in obj.attrs.items()}
        if self.serial_fallback:
            out = self.comm.bcast(out, root=0)
        if isinstance(out, KeyError):
            raise InputError(f"{self.path} has no group or dataset {path!r}")
        return out

    def __contains__(self, name):
        has = self.h5 is not None and name in self.h5
        return self.comm.bcast(has, root=0) if self.serial_fallback else has

    def require_group(self, name: str) -> None:
        """Collective. Create the group ``name`` (and its parents) if missing."""
        if self._holds():
            self.h5.require_group(name)

    def delete(self, name: str) -> None:
        """Collective. Remove the group or dataset ``name`` if present."""
        if self._holds() and name in self.h5:
            del self.h5[name]

    def keys(self, group: str = "/") -> list:
        """Collective. Names in ``group``, sorted, on every rank."""
        keys = sorted(self.h5[group].keys()) if self._holds() and group in self.h5 else []
        return self.comm.bcast(keys, root=0) if self.serial_fallback else keys

    # -- fields --------------------------------------------------------------------------
    def write(self, name: str, a: DistArray | None, attrs: dict | None = None) -> None:
        """Collective. Write DistArray ``a`` as the global dataset ``name``.

        Every rank of the file's communicator calls it; a rank that holds no part of the
        field (it is not in ``a``'s communicator) passes ``None`` and joins the
        collective transfer with an empty selection. The dataset gets the grid's
        geometry attributes plus ``attrs`` (e.g. time, step, units).
        """
        comm = self.comm
        meta = None
        if a is not None:
            d = a.decomp
            meta = (d.shape + a.components, a.dtype.str, grid_attrs(d), a.components)
        # the field's root (rank 0 of its decomposition) describes it to every rank
        is_root = a is not None and a.decomp.cart.Get_rank() == 0
        metas = comm.allgather(meta if is_root else None)
        holder = next((r for r, m in enumerate(metas) if m is not None), None)
        if holder is None:
            raise InputError(f"write({name!r}): no rank holds the field")
        shape, dtype, gattrs, comps = metas[holder]
        all_attrs = {**gattrs, **(attrs or {})}
        if self.serial_fallback:
            glob = None
            if a is not None:
                glob = a.gather(root=0)
            if holder != 0:  # the field's root hands the global array to rank 0
                if comm.Get_rank() == holder:
                    comm.Send(np.ascontiguousarray(glob), dest=0, tag=7301)
                elif comm.Get_rank() == 0:
                    glob = np.empty(shape, dtype=dtype)
                    comm.Recv(glob, source=holder, tag=7301)
            if comm.Get_rank() == 0:
                if name in self.h5:
                    del self.h5[name]
                ds = self.h5.create_dataset(name, data=glob)
                for k, v in all_attrs.items():
                    ds.attrs[k] = _attr_value(v)
            comm.Barrier()
            return
        if name in self.h5:
            del self.h5[name]
        ds = self.h5.create_dataset(name, shape=shape, dtype=dtype, fill_time="never")
        for k, v in all_attrs.items():
            ds.attrs[k] = _attr_value(v)
        self._transfer(ds, a, write=True)

    def _transfer(self, ds, a, write, memory=None):
        fspace = ds.id.get_space()
        if a is None:
            fspace.select_none()
            mspace = h5s.create_simple((1,))
            mspace.select_none()
            # the memory type every other rank uses, so that all agree on the conversion
            buf = np.zeros(1, dtype=memory if memory is not None else ds.dtype)
        else:
            d, nc = a.decomp, len(a.components)
            fspace.select_hyperslab(tuple(d.lo) + (0,) * nc, tuple(d.local_shape) + a.components)
            mspace = h5s.create_simple(a.data.shape)
            mspace.select_hyperslab((d.ghost,) * d.ndim + (0,) * nc, tuple(d.local_shape) + a.components)
            buf = a.data
        dxpl = _collective_dxpl() if self.parallel else None
        if write:
            ds.id.write(mspace, fspace, buf, dxpl=dxpl)
        else:
            ds.id.read(mspace, fspace, buf, dxpl=dxpl)

    def read(self, name: str, decomp: Decomposition | None, dtype=None, out: DistArray | None = None):
        """Collective. Read the global dataset ``name`` into a new DistArray on ``decomp``
        (any decomposition of the dataset's shape; trailing extra axes become
        components), or into ``out`` (its owned cells; ghosts untouched). Ranks outside
        the field's communicator pass ``None`` and get ``None``. The dataset may come
        from any writer (serial h5py included) in either byte order: the array is always
        in native byte order. ``dtype`` (or ``out``'s dtype) may differ from the stored
        type only by a safe conversion (see :func:`read_dtypes`); an unsafe one raises
        :class:`~pympc.InputError` naming the file, the dataset and both types."""
        if out is not None:
            why = None if decomp is None else out.decomp.mismatch(decomp)
            if why is not None:
                raise InputError(f"read(out=...): decomp= and out's decomposition differ: {why}")
            decomp, dtype = out.decomp, out.dtype
        comm = self.comm
        info = None
        if self._holds():
            if name not in self.h5 or not isinstance(self.h5[name], h5py.Dataset):
                info = f"{self.path} has no dataset {name!r}"
            else:
                ds = self.h5[name]
                info = (ds.shape, ds.dtype.str)
        if self.serial_fallback:
            info = comm.bcast(info, root=0)
        if isinstance(info, str):
            raise InputError(info)
        shape, ds_dtype = info
        # the ranks that read the field say what they want; ranks outside it (decomp None)
        # take that, so every rank reaches the same verdict on the dtype below
        wants = comm.allgather(None if decomp is None else (decomp.shape, dtype))
        grid, dtype = next((w for w in wants if w is not None), (None, None))
        if grid is None:
            raise InputError(f"read({name!r}): no rank passed a decomposition")
        if tuple(shape[:len(grid)]) != tuple(grid):
            raise InputError(f"dataset {name!r} has shape {tuple(shape)}, which does not match the "
                             f"decomposition's {tuple(grid)}")
        memory, want = read_dtypes(self.path, name, ds_dtype, dtype)
        comps = tuple(shape[len(grid):])
        if out is not None and out.components != comps:
            raise InputError(f"dataset {name!r} has components {comps}, out has {out.components}")
        if self.serial_fallback:
            glob = None
            if comm.Get_rank() == 0:
                # h5py hands back the stored byte order; astype gives native order and want
                glob = self.h5[name][...].astype(want, copy=False)
            if decomp is None:
                comm.Barrier()
                return None
            root_in = decomp.cart.Get_rank() == 0
            # hand the global array to the decomposition's root when rank 0 is not in it
            holder = comm.allgather(root_in).index(True)
            if holder != 0:
                if comm.Get_rank() == 0:
                    comm.Send(np.ascontiguousarray(glob), dest=holder, tag=7302)
                elif comm.Get_rank() == holder:
                    glob = np.empty(shape, dtype=want)
                    comm.Recv(glob, source=0, tag=7302)
            a = DistArray.from_global(decomp, glob, root=0, dtype=want, components=comps)
            if out is not None:
                out.owned[...] = a.owned
                return out
            return a
        if decomp is None:
            self._transfer(self.h5[name], None, write=False, memory=memory)
            return None
        # HDF5 reads into the stored type in native byte order (it swaps bytes on the way;
        # big-endian files from other programs need it); a safe numpy cast then gives want.
        # (HDF5 converts no integer to complex, nor its bool enum to numbers: numpy does.)
        same = want == memory
        a = out if (out is not None and same) else DistArray(decomp, memory, comps)
        self._transfer(self.h5[name], a, write=False)
        if not same:
            b = out if out is not None else DistArray(decomp, want, comps)
            b.owned[...] = a.owned
            a = b
        return a

    def write_array(self, name: str, array, root: int = 0, attrs: dict | None = None) -> None:
        """Collective. Write a small array held by rank ``root`` only (others pass anything);
        the others take part with empty selections."""
        comm = self.comm
        mine = comm.Get_rank() == root
        shape, dtype = comm.bcast((np.shape(array), np.asarray(array).dtype.str) if mine else None, root=root)
        self.write_block(name, shape, dtype, (0,) * len(shape), np.asarray(array) if mine else None, attrs)

    def write_block(self, name: str, shape, dtype, start, block, attrs: dict | None = None) -> None:
        """Collective. Create the dataset ``name`` of global ``shape`` and ``dtype`` and
        write each rank's ``block`` (a numpy array, or ``None`` for nothing) at offset
        ``start``, in one collective transfer. ``name``, ``shape``, ``dtype`` and ``attrs``
        are identical on every rank; the blocks must not overlap, and together they
        should cover the dataset (a cell no block covers is left unwritten). For data
        that is not a DistArray: each rank computes its own part (the XDMF mesh
        coordinates, say) and no rank holds the whole."""
        comm = self.comm
        shape = tuple(int(n) for n in shape)
        dtype = np.dtype(dtype)
        err = None
        if block is not None:
            block = np.asarray(block, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
            start = tuple(int(i) for i in start)
            if len(start) != len(shape) or block.ndim != len(shape) or any(
                    s < 0 or s + b > n for s, b, n in zip(start, block.shape, shape)):
                err = f"write_block({name!r}): a block of shape {block.shape} at {start} does not fit in {shape}"
        check_all(err is None, err or "", comm)  # a bad block on one rank: every rank raises
        if self.serial_fallback:
            parts = comm.gather(None if block is None else (start, block), root=0)
            if comm.Get_rank() == 0:
                glob = np.zeros(shape, dtype=dtype)
                for p in parts:
                    if p is not None:
                        glob[tuple(slice(s, s + b) for s, b in zip(p[0], p[1].shape))] = p[1]
                if name in self.h5:
                    del self.h5[name]
                ds = self.h5.create_dataset(name, data=glob)
                for k, v in (attrs or {}).items():
                    ds.attrs[k] = _attr_value(v)
            comm.Barrier()
            return
        if name in self.h5:
            del self.h5[name]
        ds = self.h5.create_dataset(name, shape=shape, dtype=dtype, fill_time="never")
        for k, v in (attrs or {}).items():
            ds.attrs[k] = _attr_value(v)
        if int(np.prod(shape)) == 0:
            return  # nothing to transfer (and no storage to address): every rank knows
        fspace = ds.id.get_space()
        if block is None or block.size == 0:
            buf = np.zeros(1, dtype=dtype)
            fspace.select_none()
            mspace = h5s.create_simple((1,))
            mspace.select_none()
        elif block.shape == shape:  # the whole dataset (a scalar one included)
            buf = block
            fspace.select_all()
            mspace = h5s.create_simple(block.shape)
        else:
            buf = block
            fspace.select_hyperslab(start, block.shape)
            mspace = h5s.create_simple(block.shape)
        ds.id.write(mspace, fspace, buf, dxpl=_collective_dxpl() if self.parallel else None)

    def read_array(self, name: str, dtype=None) -> np.ndarray:
        """Collective. A small dataset, read whole by rank 0 and broadcast to every rank,
        in native byte order. ``dtype`` converts, safe conversions only (see
        :func:`read_dtypes`; an unsafe one raises the same :class:`~pympc.InputError` on
        every rank)."""
        arr = None
        if self.comm.Get_rank() == 0:
            if name not in self.h5 or not isinstance(self.h5[name], h5py.Dataset):
                arr = InputError(f"{self.path} has no dataset {name!r}")
            else:
                ds = self.h5[name]
                try:
                    # any stored type (strings too); numbers come back in native order
                    _, want = read_dtypes(self.path, name, ds.dtype, dtype, supported_only=False)
                    arr = ds[...].astype(want, copy=False)
                except InputError as e:
                    arr = e
        arr = self.comm.bcast(arr, root=0)
        if isinstance(arr, Exception):
            raise arr
        return arr

    def flush(self) -> None:
        """Collective. Push buffered data and metadata to the file system."""
        if self._holds():
            self.h5.flush()

    def close(self) -> None:
        """Collective. Close the file."""
        if self.h5 is not None:
            self.h5.close()
            self.h5 = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write(path, fields: dict, comm=None, attrs: dict | None = None, params=None) -> None:
    """Collective. Write DistArrays ``{name: array}`` into a new file (datasets at the
    root), atomically: the file appears under ``path`` only once it is complete (it is
    written as ``path.tmp`` and renamed by rank 0), replacing any older one."""
    first = next(iter(fields.values()))
    comm = get_comm(comm or (first.decomp.comm if first is not None else None))
    path = str(path)
    _precheck(path, "w", comm)
    tmp = path + ".tmp"
    with File(tmp, "w", comm=comm, params=params, decomp=first.decomp if first is not None else None) as f:
        for name, a in fields.items():
            f.write(name, a, attrs)
    if comm.Get_rank() == 0:
        os.replace(tmp, path)
    comm.Barrier()


def read(path, name: str, decomp: Decomposition | None = None, dtype=None, comm=None,
         out: DistArray | None = None) -> DistArray:
    """Collective. Read dataset ``name`` of ``path`` into a DistArray on ``decomp`` (or
    into ``out``)."""
    d = out.decomp if out is not None else decomp
    with File(path, "r", comm=comm or d.comm) as f:
        return f.read(name, decomp, dtype, out=out)
