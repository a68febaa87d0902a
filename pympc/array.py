"""DistArray: this rank's ghosted block of a global array on a :class:`Decomposition`.

``a.data`` is the ghosted local array (``ghosted_shape + components``); ``a.owned`` the
view of the owned block inside it. Scatter, gather (natural order), reductions fused into
one ``Allreduce``, and arithmetic on owned cells. Data moves through buffer-based MPI
calls with subarray datatypes: no pickling, and gather allocates the global array on the
receiving rank only.
"""

from __future__ import annotations

from time import perf_counter as _perf

import numpy as np
from mpi4py import MPI
from mpi4py.util.dtlib import from_numpy_dtype

from . import profile as _profile
from . import vector
from .grid import Decomposition
from .runtime import InputError

_TAG_SCATTER, _TAG_GATHER = 7101, 7102

#: The dtypes a DistArray holds (native byte order), each tested through halo exchange,
#: scatter, gather, every reduction and HDF5 I/O. ``longdouble`` and ``clongdouble`` are
#: not among them: their size and precision differ between platforms (80-bit x87 padded
#: to 16 bytes on x86-64, IEEE quad on some aarch64, plain double elsewhere), so a file
#: or a reduction in them would not mean the same thing on every machine.
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.complex64, np.complex128))


def mpi_type(dtype) -> MPI.Datatype:
    """Local. The MPI datatype of a numpy dtype (any numeric dtype)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufc":
        raise InputError(f"DistArray needs a numeric dtype, got {dtype}")
    t = _MPI_TYPES.get(dtype.str)
    if t is None:
        # mpi4py's predefined type for the dtype's code when it has one (dtlib's
        # from_numpy_dtype builds a new datatype on every call, which would leak)
        t = MPI._typedict.get(dtype.char) if dtype.isnative else None
        if t is None:
            t = from_numpy_dtype(dtype).Commit()
        _MPI_TYPES[dtype.str] = t
    return t


_MPI_TYPES: dict = {}


def block_type(base: MPI.Datatype, full_shape, block_shape, starts) -> MPI.Datatype:
    """Local. A committed subarray datatype (C order) for a block of ``block_shape`` at
    ``starts`` inside an array of ``full_shape``; the caller frees it."""
    t = base.Create_subarray(list(full_shape), list(block_shape), list(starts), order=MPI.ORDER_C)
    return t.Commit()


class DistArray:
    """A distributed array on a decomposition.

    ``DistArray(decomp, dtype=float, components=())`` allocates the ghosted local block
    (zeros). ``components`` adds trailing axes per point, e.g. ``(3,)`` for a vector field.
    Construction is local; methods say whether they are collective.
    """

    def __init__(self, decomp: Decomposition, dtype=np.float64, components=(), data=None):
        self.decomp = decomp
        self.dtype = np.dtype(dtype)
        mpi_type(self.dtype)  # validates
        self.components = tuple(int(c) for c in np.atleast_1d(components)) if np.size(components) else ()
        shape = decomp.ghosted_shape + self.components
        if data is None:
            data = np.zeros(shape, dtype=self.dtype)
        elif data.shape != shape or data.dtype != self.dtype or not data.flags.c_contiguous:
            raise InputError(f"data must be a C-contiguous {self.dtype} array of shape {shape}")
        self.data = data
        self.owned = data[decomp.owned_slices()]

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_function(cls, decomp, func, dtype=np.float64, components=(), coords=False):
        """Local. Fill the owned block from ``func(*index_grids)`` (global indices), or
        ``func(*coordinate_grids)`` with ``coords=True``; the result broadcasts to the
        block's shape (with components as trailing axes)."""
        a = cls(decomp, dtype, components)
        if coords:
            axes = [decomp.coordinates(ax) for ax in range(decomp.ndim)]
        else:
            axes = [np.arange(lo, hi) for lo, hi in zip(decomp.lo, decomp.hi)]
        grids = np.meshgrid(*axes, indexing="ij", sparse=True)
        a.owned[...] = np.broadcast_to(np.asarray(func(*grids)), a.owned.shape)
        return a

    @classmethod
    def from_global(cls, decomp, array, root=0, dtype=None, components=()):
        """Collective. Scatter a global array held on ``root`` (ignored elsewhere) into a
        new DistArray. Only ``root`` needs the global array."""
        comm = decomp.cart
        rank = comm.Get_rank()
        if rank == root:
            array = np.ascontiguousarray(array)
            meta = (array.dtype.str, array.shape)
        else:
            meta = None
        dt, shape = comm.bcast(meta, root=root)
        dtype = np.dtype(dtype or dt)
        comps = tuple(shape[decomp.ndim:])
        if components and tuple(np.atleast_1d(components)) != comps:
            comps = None
        if tuple(shape[:decomp.ndim]) != decomp.shape or comps is None:
            raise InputError(f"global array of shape {tuple(shape)} does not match the "
                             f"decomposition's shape {decomp.shape}"
                             + (f" with components {tuple(components)}" if components else ""))
        a = cls(decomp, dtype, comps)
        if rank == root and array.dtype != dtype:
            array = array.astype(dtype)
        a._scatter_or_gather(array if rank == root else None, root, scatter=True)
        return a

    def _scatter_or_gather(self, glob, root, scatter):
        d, comm = self.decomp, self.decomp.cart
        base = mpi_type(self.dtype)
        comp = self.components
        mine = block_type(base, self.data.shape, d.local_shape + comp, (d.ghost,) * d.ndim + (0,) * len(comp))
        reqs, types = [], [mine]
        try:
            if comm.Get_rank() == root:
                for r in range(comm.Get_size()):
                    rng = d.ranges(r)
                    t = block_type(base, d.shape + comp, tuple(hi - lo for lo, hi in rng) + comp,
                                   tuple(lo for lo, _ in rng) + (0,) * len(comp))
                    types.append(t)
                    if scatter:
                        reqs.append(comm.Isend([glob, 1, t], dest=r, tag=_TAG_SCATTER))
                    else:
                        reqs.append(comm.Irecv([glob, 1, t], source=r, tag=_TAG_GATHER))
            if scatter:
                comm.Recv([self.data, 1, mine], source=root, tag=_TAG_SCATTER)
            else:
                comm.Send([self.data, 1, mine], dest=root, tag=_TAG_GATHER)
            MPI.Request.Waitall(reqs)
        finally:
            for t in types:
                t.Free()

    # -- gather ------------------------------------------------------------------------
    def gather(self, root=0):
        """Collective. The global array in natural order on ``root`` (``None`` on the
        others, which allocate nothing); ``root=None`` gives it to every rank."""
        d = self.decomp
        comm = d.cart
        r0 = 0 if root is None else root
        glob = np.empty(d.shape + self.components, dtype=self.dtype) if comm.Get_rank() == r0 else None
        self._scatter_or_gather(glob, r0, scatter=False)
        if root is None:
            if glob is None:
                glob = np.empty(d.shape + self.components, dtype=self.dtype)
            comm.Bcast([glob, mpi_type(self.dtype)], root=0)
        return glob

    # -- views and indices -------------------------------------------------------------
    @property
    def ghosted(self) -> np.ndarray:
        """Local. The whole local array, ghosts included (same as ``data``)."""
        return self.data

    def global_indices(self, axis: int) -> np.ndarray:
        """Local. Global indices along ``axis`` of the owned block."""
        return np.arange(self.decomp.lo[axis], self.decomp.hi[axis])

    def copy(self) -> "DistArray":
        """Local. A new DistArray with a copy of this one's data, ghosts included."""
        return DistArray(self.decomp, self.dtype, self.components, self.data.copy())

    def empty_like(self, dtype=None) -> "DistArray":
        """Local. A new zero-filled DistArray on the same decomposition."""
        return DistArray(self.decomp, dtype or self.dtype, self.components)

    def fill(self, value) -> "DistArray":
        """Local. Set every owned cell to ``value`` (ghosts are left alone)."""
        self.owned[...] = value
        return self

    # -- reductions ------------------------------------------------------------------
    def sum(self):
        """Collective. Sum over all owned cells of all ranks."""
        return reduce_all(("sum", self))[0]

    def min(self):
        """Collective. Minimum over all owned cells."""
        return reduce_all(("min", self))[0]

    def max(self):
        """Collective. Maximum over all owned cells."""
        return reduce_all(("max", self))[0]

    def norm(self, ord=2):
        """Collective. The 1-, 2- or inf-norm of the owned cells (as one global vector)."""
        key = {1: "norm1", 2: "norm2", np.inf: "norminf", "inf": "norminf"}.get(ord)
        if key is None:
            raise InputError(f"norm order must be 1, 2 or inf, got {ord!r}")
        return reduce_all((key, self))[0]

    def dot(self, other: "DistArray"):
        """Collective. ``sum(conj(self) * other)`` over owned cells (``vdot``)."""
        return reduce_all(("dot", self, other))[0]

    # -- arithmetic on owned cells ---------------------------------------------------
    def _binary(self, other, op, inplace=False):
        if isinstance(other, DistArray):
            if other.decomp is not self.decomp or other.components != self.components:
                raise InputError("DistArrays must share a decomposition and components")
            rhs = other.owned
        else:
            rhs = other
        if inplace:
            op(self.owned, rhs, out=self.owned)
            return self
        dtype = np.result_type(self.dtype, other.dtype if isinstance(other, DistArray) else np.asarray(other).dtype)
        out = DistArray(self.decomp, dtype, self.components)
        op(self.owned, rhs, out=out.owned)
        return out

    def __add__(self, o): return self._binary(o, np.add)
    def __sub__(self, o): return self._binary(o, np.subtract)
    def __mul__(self, o): return self._binary(o, np.multiply)
    def __truediv__(self, o): return self._binary(o, np.true_divide)
    def __iadd__(self, o): return self._binary(o, np.add, True)
    def __isub__(self, o): return self._binary(o, np.subtract, True)
    def __imul__(self, o): return self._binary(o, np.multiply, True)
    def __itruediv__(self, o): return self._binary(o, np.true_divide, True)
    __radd__ = __add__
    __rmul__ = __mul__

    def __neg__(self):
        out = self.empty_like()
        np.negative(self.owned, out=out.owned)
        return out

    def axpy(self, alpha, x: "DistArray") -> "DistArray":
        """Local. ``self += alpha * x`` on owned cells, without a temporary array."""
        if x.decomp is not self.decomp:
            raise InputError("axpy needs DistArrays on one decomposition")
        if vector.fast(self.owned, x.owned):
            vector.axpby(self.owned, alpha, x.owned, 1.0)
        elif alpha == 1:
            np.add(self.owned, x.owned, out=self.owned)
        else:
            # owned += alpha * x by chunks of rows: no full-size temporary
            rows = self.owned.shape[0]
            step = max(1, (1 << 16) // max(1, self.owned[0].size))
            for i in range(0, rows, step):
                self.owned[i:i + step] += alpha * x.owned[i:i + step]
        return self

    def __repr__(self):
        c = f", components={self.components}" if self.components else ""
        return f"DistArray({self.decomp.shape}, dtype={self.dtype}{c}, owned {self.owned.shape} on rank {self.decomp.rank})"


# ---------------------------------------------------------------------------------------
# Fused reductions
# ---------------------------------------------------------------------------------------
_KIND = {"sum": "sum", "dot": "sum", "norm1": "sum", "norm2": "sum", "min": "min", "max": "max",
         "norminf": "max"}


def _local(op, a, b=None):
    if not isinstance(a, DistArray):  # a partial value this rank computed itself
        if op not in ("sum", "min", "max"):
            raise InputError(f"a local value can be reduced by sum, min or max, not {op!r}")
        return a
    x = a.owned
    if op == "sum":
        return x.sum()
    if op == "dot":
        return vector.dot(x, b.owned) if vector.fast(x, b.owned) else np.vdot(x, b.owned)
    if op == "norm1":
        return np.abs(x).sum()
    if op == "norm2":
        if vector.fast(x):
            return vector.dot(x, x)
        return np.vdot(x, x).real if np.iscomplexobj(x) else np.dot(x.ravel(), x.ravel())
    if op == "norminf":
        return np.abs(x).max() if x.size else -np.inf
    if op == "min":
        return x.min() if x.size else np.inf
    if op == "max":
        return x.max() if x.size else -np.inf
    raise InputError(f"unknown reduction {op!r}; use one of {sorted(_KIND)}")


def _fused_op(nsum):
    def fn(inbuf, inoutbuf, datatype):
        i = np.frombuffer(inbuf, dtype=np.float64)
        io = np.frombuffer(inoutbuf, dtype=np.float64)
        io[:nsum] += i[:nsum]
        np.maximum(io[nsum:], i[nsum:], out=io[nsum:])
    return fn


_OPS: dict = {}


def reduce_all(*requests, comm=None):
    """Collective. Several global reductions in one ``Allreduce``.

    Each request is ``(op, a)`` or ``("dot", a, b)`` with op one of ``sum``, ``min``,
    ``max``, ``norm1``, ``norm2``, ``norminf``, ``dot``. Returns the values in order.
    ``a`` may also be a number this rank computed itself (its partial sum, min or max,
    e.g. from a fused kernel) with op ``sum``, ``min`` or ``max``; ``comm`` is then needed
    when no request names a DistArray.
    Sums of one kind go through ``MPI_SUM``; a mix of sums and min/max travels in one
    float64 buffer with a combined operation (min as max of the negative). Complex values
    take two slots. Integer sums are exact while below 2**53 in a mixed request.
    """
    if not requests:
        return []
    if comm is None:
        comm = next((r[1].decomp.cart for r in requests if isinstance(r[1], DistArray)), None)
        if comm is None:
            raise InputError("reduce_all of local values only needs comm=")
    vals, layout = [], []  # layout: (kind, complex?, index)
    for req in requests:
        op = req[0]
        if op not in _KIND:
            raise InputError(f"unknown reduction {op!r}; use one of {sorted(_KIND)}")
        v = _local(op, *req[1:])
        layout.append((op, np.iscomplexobj(v)))
        vals.append(v)
    kinds = {_KIND[op] for op, _ in layout}
    if len(layout) == 1 and layout[0][0] in ("min", "max"):
        a0 = requests[0][1]
        buf = np.array([vals[0]], dtype=a0.dtype if isinstance(a0, DistArray) else np.asarray(a0).dtype)
        t0 = _perf()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MIN if layout[0][0] == "min" else MPI.MAX)
        _profile.record_comm("reduce", 1, 1, _perf() - t0)
        return [buf[0]]
    if kinds == {"sum"} and not any(c for _, c in layout):
        dtypes = [np.asarray(v).dtype for v in vals]
        dt = np.result_type(*dtypes) if all(d.kind in "iu" for d in dtypes) else np.float64
        if all(d.kind in "iu" for d in dtypes):
            dt = np.int64
        buf = np.array(vals, dtype=dt)
        t0 = _perf()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        _profile.record_comm("reduce", buf.size, buf.size, _perf() - t0)
        out = buf.tolist()
        return [np.sqrt(x) if op == "norm2" else x for (op, _), x in zip(layout, out)]
    sums, maxs = [], []
    where = []
    for (op, cplx), v in zip(layout, vals):
        if _KIND[op] == "sum":
            where.append(("s", len(sums), cplx))
            sums += [float(np.real(v)), float(np.imag(v))] if cplx else [float(v)]
        else:
            where.append(("m", len(maxs), False))
            maxs.append(-float(v) if op == "min" else float(v))
    nsum = len(sums)
    buf = np.array(sums + maxs, dtype=np.float64)
    if nsum not in _OPS:
        _OPS[nsum] = MPI.Op.Create(_fused_op(nsum), commute=True)
    t0 = _perf()
    comm.Allreduce(MPI.IN_PLACE, [buf, MPI.DOUBLE], op=_OPS[nsum])
    _profile.record_comm("reduce", buf.size, buf.size, _perf() - t0)
    out = []
    for (op, _), (kind, i, cplx) in zip(layout, where):
        if kind == "s":
            x = complex(buf[i], buf[i + 1]) if cplx else buf[i]
            out.append(np.sqrt(x) if op == "norm2" else x)
        else:
            x = buf[nsum + i]
            out.append(-x if op == "min" else x)
    return out
