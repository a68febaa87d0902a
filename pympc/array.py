"""DistArray: this rank's ghosted block of a global array on a :class:`Decomposition`.

``a.data`` is the ghosted local array (``ghosted_shape + components``); ``a.owned`` the
view of the owned block inside it. Scatter, gather (natural order), reductions fused into
one ``Allreduce``, and arithmetic on owned cells. Data moves through buffer-based MPI
calls with subarray datatypes: no pickling, and gather allocates the global array on the
receiving rank only.

Supported dtypes: :data:`SUPPORTED_DTYPES` (bool, int8-64, uint8-64, float16/32/64,
complex64/128, native byte order; not longdouble).
"""

from __future__ import annotations

import atexit
from time import perf_counter as _perf

import numpy as np
from mpi4py import MPI

from . import costlog as _costlog
from .kernels import vector
from .grid import Decomposition
from .runtime import InputError
from .watchdog import watched as _watched

_TAG_SCATTER, _TAG_GATHER = 7101, 7102

#: The dtypes a DistArray holds (native byte order), each tested through halo exchange,
#: scatter, gather, every reduction and HDF5 I/O. ``longdouble`` and ``clongdouble`` are
#: not among them: their size and precision differ between platforms (80-bit x87 padded
#: to 16 bytes on x86-64, IEEE quad on some aarch64, plain double elsewhere), so a file
#: or a reduction in them would not mean the same thing on every machine.
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.complex64, np.complex128))
"""The dtypes a DistArray holds: bool, int8-64, uint8-64, float16/32/64, complex64/128
(native byte order). Not longdouble/clongdouble (platform-dependent size)."""

_DTYPE_NAMES = ", ".join(str(t) for t in SUPPORTED_DTYPES)


def check_dtype(dtype) -> np.dtype:
    """Local. ``dtype`` as a native-byte-order numpy dtype if it is one of
    :data:`SUPPORTED_DTYPES` (``">f8"`` gives ``float64``), else an
    :class:`~pympc.InputError` that lists them."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise InputError(f"DistArray needs a numeric dtype ({_DTYPE_NAMES}); {dtype!r} is not a dtype") from e
    if dt.kind in "biufc" and not dt.isnative:
        dt = dt.newbyteorder("=")
    if dt not in SUPPORTED_DTYPES:
        why = " (longdouble is not supported: its size differs between platforms)" \
            if dt.kind in "fc" else ""
        raise InputError(f"DistArray needs a numeric dtype among pympc.array.SUPPORTED_DTYPES "
                         f"({_DTYPE_NAMES}), got {dt}{why}")
    return dt


# Data moves as bytes: an unsigned integer type of the element's size (complex: MPI's
# complex types, predefined, so nothing to free). MPICH's subarray datatypes over its
# FLOAT16 type move zeros (measured: every float16 halo and gather came back 0.0), and
# bits moved as integers arrive unchanged for every dtype, NaN payloads included.
_MOVE = {1: MPI.UINT8_T, 2: MPI.UINT16_T, 4: MPI.UINT32_T, 8: MPI.UINT64_T}


def mpi_type(dtype) -> MPI.Datatype:
    """Local. The predefined MPI datatype that moves one element of a supported dtype
    (for halo exchange, scatter and gather: it carries the bits, it is not for
    arithmetic)."""
    dt = check_dtype(dtype)
    if dt.kind == "c":
        return MPI.C_FLOAT_COMPLEX if dt.itemsize == 8 else MPI.C_DOUBLE_COMPLEX
    return _MOVE[dt.itemsize]


def block_type(base: MPI.Datatype, full_shape, block_shape, starts) -> MPI.Datatype:
    """Local. A committed subarray datatype (C order) for a block of ``block_shape`` at
    ``starts`` inside an array of ``full_shape``; the caller frees it."""
    t = base.Create_subarray(list(full_shape), list(block_shape), list(starts), order=MPI.ORDER_C)
    return t.Commit()


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        # no shape in the message: a rank's block differs from its neighbour's, and the
        # error must read the same on every rank
        return (f"a {x.ndim}-D numpy array of {x.dtype} (a DistArray holds "
                f"one rank's block: scatter a global array with DistArray.from_global(decomp, "
                f"array), or wrap a ghosted block with DistArray(decomp, dtype, data=block))")
    return f"{type(x).__module__}.{type(x).__qualname__}" if type(x).__module__ != "builtins" \
        else type(x).__name__


def require_distarray(x, name: str = "argument", where: str = "") -> "DistArray":
    """Local. ``x`` if it is a :class:`DistArray`, else an :class:`~pympc.InputError`
    that names ``where``, the argument and what came instead (the one check behind every
    call that needs a DistArray)."""
    if not isinstance(x, DistArray):
        raise InputError(f"{where + ': ' if where else ''}{name} must be a pympc.DistArray, "
                         f"got {_describe(x)}")
    return x


def require_compatible(a: "DistArray", b: "DistArray", where: str, halo: bool = False,
                       components: bool = True) -> None:
    """Local. An :class:`~pympc.InputError` naming ``where`` unless DistArrays ``a`` and
    ``b`` pair point for point: compatible decompositions
    (:meth:`Decomposition.compatible`, with ``halo`` as there) and, with ``components``,
    the same components."""
    why = a.decomp.mismatch(b.decomp, halo=halo)
    if why is None and components and a.components != b.components:
        why = f"their components differ ({a.components} and {b.components})"
    if why is not None:
        raise InputError(f"{where}: the DistArrays are not on one decomposition: {why}")


class DistArray:
    """Local. This rank's block of a distributed array on a
    :class:`~pympc.grid.Decomposition`, with ghost cells around it (construction is
    local; the methods say whether they are collective).

    ``DistArray(decomp, dtype=np.float64, components=(), data=None)`` allocates the
    ghosted local block (zeros), or wraps ``data`` (a C-contiguous array of that shape
    and dtype). ``components`` adds trailing axes per point, e.g. ``(3,)`` for a vector
    field (never split). ``dtype`` is one of :data:`SUPPORTED_DTYPES`.

    :ivar decomp: the :class:`~pympc.grid.Decomposition` it lives on.
    :ivar data: the ghosted local numpy array, ``decomp.ghosted_shape + components``.
        Owned point ``i`` (global index ``decomp.lo + i``) is at ``data[decomp.ghost +
        i]`` on each axis.
    :ivar owned: the view of the owned block inside ``data`` (``decomp.local_shape +
        components``); writing into it writes ``data``.
    :ivar dtype: the element type.
    :ivar components: the trailing per-point axes.

    Operations on two DistArrays (``+``, ``dot``, ``axpy``, halo exchange, kernels) need
    them on compatible decompositions (:meth:`~pympc.grid.Decomposition.compatible`).
    """

    def __init__(self, decomp: Decomposition, dtype=np.float64, components=(), data=None):
        if not isinstance(decomp, Decomposition):
            raise InputError(f"DistArray needs a pympc.Decomposition, got {_describe(decomp)}")
        self.decomp = decomp
        self.dtype = check_dtype(dtype)
        self.components = tuple(int(c) for c in np.atleast_1d(components)) if np.size(components) else ()
        shape = decomp.ghosted_shape + self.components
        if data is None:
            data = np.zeros(shape, dtype=self.dtype)
        elif (not isinstance(data, np.ndarray) or data.shape != shape or data.dtype != self.dtype
              or not data.flags.c_contiguous):
            raise InputError(f"data must be a C-contiguous {self.dtype} array of shape {shape}")
        self.data = data
        self.owned = data[decomp.owned_slices()]

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_function(cls, decomp, func, dtype=np.float64, components=(), coords=True):
        """Local. Fill the owned block from ``func(*coordinate_grids)`` (the points'
        coordinates, :meth:`Decomposition.coordinates`), or ``func(*index_grids)`` (global
        indices) with ``coords=False``; the result broadcasts to the block's shape (with
        components as trailing axes)."""
        a = cls(decomp, dtype, components)
        if coords:
            axes = [decomp.coordinates(ax) for ax in range(decomp.ndim)]
        else:
            axes = [np.arange(lo, hi) for lo, hi in zip(decomp.lo, decomp.hi)]
        grids = np.meshgrid(*axes, indexing="ij", sparse=True)
        a.owned[...] = np.broadcast_to(np.asarray(func(*grids)), a.owned.shape)
        return a

    @classmethod
    @_watched("DistArray.from_global")
    def from_global(cls, decomp, array, root=0, dtype=None, components=()):
        """Collective. Scatter a global array held on ``root`` (ignored elsewhere) into a
        new DistArray. Only ``root`` needs the global array. ``dtype=`` converts it as
        numpy's ``astype`` does (the caller asks for the conversion; reading files, by
        contrast, allows only safe ones)."""
        comm = decomp.cart
        rank = comm.Get_rank()
        if rank == root:
            array = np.ascontiguousarray(array)
            meta = (array.dtype.str, array.shape)
        else:
            meta = None
        dt, shape = comm.bcast(meta, root=root)
        dtype = check_dtype(dtype or dt)  # every rank: the same error, or a native dtype
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
    @_watched("DistArray.gather")
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
        """Collective. ``sum(conj(self) * other)`` over owned cells (``vdot``); ``other``
        must be on a compatible decomposition with the same components."""
        return reduce_all(("dot", self, other))[0]

    # -- arithmetic on owned cells ---------------------------------------------------
    def _binary(self, other, op, inplace=False):
        if isinstance(other, DistArray):
            require_compatible(self, other, f"DistArray {op.__name__}")
            rhs, rhs_type = other.owned, other.dtype
        else:
            rhs = other
            # Python numbers are "weak" (NEP 50): float32 array * 2.0 stays float32
            rhs_type = type(other) if type(other) in (int, float, complex) else np.asarray(other).dtype
        if inplace:
            op(self.owned, rhs, out=self.owned)
            return self
        try:  # the dtype numpy's own operation gives (int / int is float64)
            dtype = op.resolve_dtypes((self.dtype, rhs_type, None))[-1]
        except (TypeError, ValueError) as e:
            raise InputError(f"DistArray {op.__name__}: no result dtype for {self.dtype} and {rhs_type}: {e}") from e
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
        require_compatible(self, require_distarray(x, "x", "axpy"), "axpy")
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
# Every value travels in 8-byte slots of one uint64 buffer, grouped by how it combines:
#   "f+" float64 sum (a complex value takes two), "i+" 64-bit integer sum (wrapping, as
#   numpy's: signed values travel as their two's-complement bits), "f>" float64 max
#   (NaN wins, as in numpy; a min travels negated), "i>"/"i<" int64 max/min, "u>"/"u<"
#   uint64 max/min. Integers never pass through float64, so they stay exact in any mix;
#   float16/float32 values are exact in float64 (and MPICH's MPI_MAX on float16 asserts).
_SLOTS = ("f+", "i+", "f>", "i>", "i<", "u>", "u<")
_KIND = {"sum": "sum", "dot": "sum", "norm1": "sum", "norm2": "sum", "min": "min", "max": "max",
         "norminf": "max"}
_HEADER = len(_SLOTS)


def _combine(inbuf, inoutbuf, datatype):
    # The buffer starts with the slot counts (the same on every rank and left alone), so
    # one operation serves every layout.
    i = np.frombuffer(inbuf, dtype=np.uint64)
    o = np.frombuffer(inoutbuf, dtype=np.uint64)
    p = _HEADER
    for kind, n in zip(_SLOTS, o[:_HEADER].tolist()):
        if not n:
            continue
        a, b = i[p:p + n], o[p:p + n]
        if kind == "f+":
            b.view(np.float64)[...] += a.view(np.float64)
        elif kind == "i+":
            b += a
        elif kind == "f>":
            np.maximum(b.view(np.float64), a.view(np.float64), out=b.view(np.float64))
        else:
            t = np.int64 if kind[0] == "i" else np.uint64
            f = np.maximum if kind[1] == ">" else np.minimum
            f(b.view(t), a.view(t), out=b.view(t))
        p += n


_OP: list = []
_WHOLE: dict = {}  # buffer length -> its committed contiguous datatype, built once


@atexit.register  # before mpi4py finalizes MPI (registered earlier, so run later): no leak
def _free_whole():
    for t in _WHOLE.values():
        if not MPI.Is_finalized():
            t.Free()
    _WHOLE.clear()


def _f(v):
    return float(v.view(np.float64)[0])


def _sumprod(x, y, dtype):
    # sum(x * y) accumulated in dtype, without a full-size temporary
    idx = "abcdefghijklmnop"[:x.ndim]
    return np.einsum(f"{idx},{idx}->", x, y, dtype=dtype)


def _operand(op, v, b=None):
    """This rank's part of one request: ``[(slot kind, np.float64 | np.int64 |
    np.uint64)]``, and a function that makes the result from the reduced slots (given
    as 1-element uint64 arrays)."""
    if isinstance(v, DistArray):
        x, dtype = v.owned, v.dtype
    else:
        x = _local_value(op, v)
        dtype = x.dtype
    if op in ("min", "max"):
        return _order_operand(op, x, dtype)
    if op in ("sum", "dot"):
        return _sum_operand(op, x, dtype, v, b)
    if op in ("norm1", "norm2", "norminf"):
        return _norm_operand(op, x, dtype)
    raise InputError(f"unknown reduction {op!r}; use one of {sorted(_KIND)}")


def _local_value(op, v) -> np.ndarray:
    """A partial value this rank computed itself, as a 0-d array: a number, never an
    array (an Allreduce of an array would be element-wise, not the reduction asked for)."""
    if op not in ("sum", "min", "max"):
        raise InputError(f"reduce_all: {op!r} takes a pympc.DistArray, got {_describe(v)}; a "
                         f"local value can be reduced by sum, min or max, not {op!r}")
    if np.ndim(v) != 0:
        raise InputError(f"reduce_all: ({op!r}, ...) takes a pympc.DistArray or one number this "
                         f"rank computed (its partial {op}), got {_describe(v)}; reduce a local "
                         f"numpy array first, e.g. ({op!r}, arr.{op}())")
    x = np.asarray(v)
    if x.dtype.kind not in "biufc":
        raise InputError(f"reduce_all: a local value must be a number, got {_describe(v)}")
    return x


def _order_operand(op, x, dtype):
    """min or max: floats as a float64 max (a min negated), integers in 64 bits."""
    kind = dtype.kind
    if kind == "c":
        raise InputError(f"{op}() of a complex array: complex numbers have no order "
                         f"(reduce the real part, the imaginary part or norm(np.inf))")
    sign = 1 if op == "max" else -1
    if kind == "f":  # min as the max of the negated values
        val = -np.inf if x.size == 0 else np.float64(x.max() if op == "max" else -x.min())
        return [("f>", np.float64(val))], (lambda s: dtype.type(sign * _f(s[0])))
    t = np.uint64 if kind == "u" else np.int64
    slot = ("u" if kind == "u" else "i") + (">" if op == "max" else "<")
    if x.size == 0:
        val = t(np.iinfo(t).min if op == "max" else np.iinfo(t).max)
    else:
        val = t(x.max() if op == "max" else x.min())
    return [(slot, val)], (lambda s: dtype.type(s[0].view(t)[0]))


def _sum_operand(op, x, dtype, v, b):
    """sum or dot: integers exact in 64 bits, floats in float64, complex in two slots."""
    kind = dtype.kind
    if op == "dot":
        y = require_distarray(b, "the second array of 'dot'", "reduce_all").owned
        require_compatible(v, b, "dot")
        rt = np.result_type(x.dtype, y.dtype)
        if rt.kind in "biu":  # exact, in 64 bits (numpy's vdot would stay in int8)
            s = _sumprod(x, y, np.uint64 if rt.kind == "u" else np.int64)
        elif rt == np.float16:
            s = _sumprod(x, y, np.float64)
        else:
            s = vector.dot(x, y)  # (numpy's vdot when it cannot compile)
    else:
        rt = dtype
        if kind in "biu":
            s = x.sum(dtype=np.uint64 if kind == "u" else np.int64)
        else:  # float16 partial sums would overflow at 65504
            s = x.sum(dtype=np.float64 if rt == np.float16 else None)
    if rt.kind in "biu":
        t = np.uint64 if rt.kind == "u" else np.int64
        return [("i+", t(s))], (lambda r: int(r[0].view(t)[0]))
    if rt.kind == "c":
        s = complex(s)
        return ([("f+", np.float64(s.real)), ("f+", np.float64(s.imag))],
                (lambda r: complex(_f(r[0]), _f(r[1]))))
    return [("f+", np.float64(s))], (lambda r: _f(r[0]))


def _norm_operand(op, x, dtype):
    """norm1, norm2 or norminf, in float64."""
    kind = dtype.kind
    native = dtype in (np.float32, np.float64) or kind == "c"
    if op == "norm1":  # bool, integers, float16 in float64 (abs(int8(-128)) is -128)
        s = np.abs(x).sum() if native else np.abs(x, dtype=np.float64).sum()
        return [("f+", np.float64(s))], (lambda r: _f(r[0]))
    if op == "norm2":
        if vector.fast(x):
            s = vector.dot(x, x)
        elif kind == "c":
            s = np.vdot(x, x).real
        elif native:
            s = np.dot(x.ravel(), x.ravel())
        else:  # an int8 or float16 square overflows in its own type
            s = _sumprod(x, x, np.float64)
        return [("f+", np.float64(s))], (lambda r: float(np.sqrt(_f(r[0]))))
    if x.size == 0:
        s = 0.0
    else:
        s = np.abs(x).max() if native else np.abs(x, dtype=np.float64).max()
    return [("f>", np.float64(s))], (lambda r: _f(r[0]))


def _parse(req):
    if not isinstance(req, tuple) or not req or req[0] not in _KIND:
        op = req[0] if isinstance(req, tuple) and req else req
        raise InputError(f"reduce_all: each request is (op, a) or ('dot', a, b) with op one of "
                         f"{sorted(_KIND)}, got {op!r}")
    n = 3 if req[0] == "dot" else 2
    if len(req) != n:
        raise InputError(f"reduce_all: {req[0]!r} takes {n - 1} operand(s), got {len(req) - 1}")
    return req


def _same_ranks(c1, c2) -> bool:
    # the same set of ranks (in any order: each request is reduced on its own; a dot's
    # two arrays are checked point for point by require_compatible)
    return c1 is c2 or MPI.Comm.Compare(c1, c2) != MPI.UNEQUAL


@_watched("pympc.reduce_all")
def reduce_all(*requests, comm=None):
    """Collective. Several global reductions in one ``Allreduce``.

    Each request is ``(op, a)`` or ``("dot", a, b)`` with op one of ``sum``, ``min``,
    ``max``, ``norm1``, ``norm2``, ``norminf``, ``dot``. Returns the values in order.
    ``a`` may also be one number this rank computed itself (its partial sum, min or
    max, e.g. from a fused kernel) with op ``sum``, ``min`` or ``max``; ``comm`` is then
    needed when no request names a DistArray. A numpy array is refused (an Allreduce
    of it would be element-wise): reduce it locally first, or make it a DistArray.

    Every DistArray of one call must live on the same set of ranks; ``dot``'s two on
    compatible decompositions (:meth:`~pympc.grid.Decomposition.compatible`).

    Results, for every dtype of :data:`SUPPORTED_DTYPES`: ``sum`` and ``dot`` of
    bool/integer arrays are exact Python ints (wrapping at 64 bits like numpy's sums;
    a ``dot`` of integers is computed in 64 bits, not in the arrays' dtype); of floats a
    float (float16 summed in float64), of complex a complex. ``min``/``max`` give a
    numpy scalar of the array's dtype (a NaN anywhere gives NaN, as numpy; for bool,
    ``max`` is any and ``min`` is all); complex arrays have no order and raise
    :class:`~pympc.InputError`. Norms are floats (bool, integer and float16 arrays
    are measured in float64). Integer values are exact in any mix of requests.
    """
    if not requests:
        return []
    requests = [_parse(r) for r in requests]
    arrays = _arrays_of(requests)
    parts = [_operand(*r) for r in requests]  # local; refuses bad operands first
    if comm is None:
        if not arrays:
            raise InputError("reduce_all of local values only needs comm= (the communicator "
                             "whose ranks' partial values are combined)")
        comm = arrays[0].decomp.cart
    buf, where, used = _pack(parts)
    body = buf[_HEADER:]
    t0 = _perf()
    _allreduce(comm, buf, used)
    _costlog.record_comm("reduce", body.size, body.size, _perf() - t0)
    return [make([buf[i:i + 1] for i in idx]) for (_, make), idx in zip(parts, where)]


def _arrays_of(requests) -> list:
    """The DistArrays the requests name, refused unless they all live on one set of ranks."""
    arrays = [x for r in requests for x in r[1:] if isinstance(x, DistArray)]
    if arrays:
        c0 = arrays[0].decomp.cart
        for x in arrays[1:]:
            if x.decomp is not arrays[0].decomp and not _same_ranks(c0, x.decomp.cart):
                raise InputError("reduce_all: the DistArrays of one call live on different sets of "
                                 "ranks (decompositions over communicators of different groups)")
    return arrays


def _pack(parts):
    """The uint64 buffer (header of slot counts, then the slots grouped by kind), each
    request's slot indices in it, and the kinds used."""
    counts = dict.fromkeys(_SLOTS, 0)
    for slots, _ in parts:
        for kind, _v in slots:
            counts[kind] += 1
    fill, p = {}, _HEADER
    for kind in _SLOTS:
        fill[kind], p = p, p + counts[kind]
    buf = np.zeros(p, dtype=np.uint64)
    buf[:_HEADER] = [counts[k] for k in _SLOTS]
    where = []
    for slots, _ in parts:
        idx = []
        for kind, v in slots:
            i = fill[kind]
            fill[kind] += 1
            buf[i:i + 1].view(type(v))[0] = v
            idx.append(i)
        where.append(idx)
    return buf, where, [k for k in _SLOTS if counts[k]]


def _allreduce(comm, buf, used) -> None:
    """Combine ``buf`` in place on every rank: one kind alone through MPI's own
    operation, a mix through :func:`_combine`."""
    body = buf[_HEADER:]
    if used == ["f+"]:
        comm.Allreduce(MPI.IN_PLACE, [body.view(np.float64), MPI.DOUBLE], op=MPI.SUM)
    elif used == ["i+"]:
        comm.Allreduce(MPI.IN_PLACE, [body, MPI.UINT64_T], op=MPI.SUM)
    elif len(used) == 1 and used[0] != "f>":
        t = MPI.INT64_T if used[0][0] == "i" else MPI.UINT64_T
        comm.Allreduce(MPI.IN_PLACE, [body, t], op=MPI.MAX if used[0][1] == ">" else MPI.MIN)
    else:
        if not _OP:
            _OP.append(MPI.Op.Create(_combine, commute=True))
        # one element of a contiguous type: MPI cannot split the buffer between calls of
        # the operation (which reads the layout from the buffer's start)
        whole = _WHOLE.get(buf.size)
        if whole is None:  # one per buffer length, built once (requests come in a few shapes)
            whole = _WHOLE[buf.size] = MPI.UINT64_T.Create_contiguous(buf.size).Commit()
        comm.Allreduce(MPI.IN_PLACE, [buf, 1, whole], op=_OP[0])
