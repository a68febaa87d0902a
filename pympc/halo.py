"""Halo exchange: fill ghost cells of DistArrays with their neighbours' owned values.

A :class:`HaloExchange` is a plan built once for a set of arrays of one decomposition
and reused every step:

* one message per neighbour and direction carries **all** the arrays (an MPI struct of
  subarray datatypes at the arrays' addresses: no packing in Python, no pickling);
* persistent requests (``Send_init``/``Recv_init``), so a step costs one ``Startall`` and
  one ``Waitall``;
* ``start()`` / ``wait()`` let interior compute overlap the messages;
* corners and edges of box stencils travel as diagonal messages, so every message is in
  flight at once (no per-axis phases) and periodic corners come out right;
* a periodic axis with one rank along it is a local numpy copy, not a message to self;
* ghosts at physical (non-periodic) boundaries are never written: they belong to the
  boundary conditions (:mod:`pympc.bc`).

Star stencils exchange the 2d faces only (their corner ghosts are unspecified); box
stencils all 3^d - 1 directions.
"""

from __future__ import annotations

from collections import OrderedDict
from time import perf_counter as _perf

import numpy as np
from mpi4py import MPI

from . import costlog as _costlog
from .array import DistArray, mpi_type, require_compatible, require_distarray
from .runtime import InputError
from .watchdog import watched as _watched

_TAG_BASE = 7200


def _tag(offset) -> int:
    # A direction's index among (-1, 0, 1)^d, as a message tag.
    t = 0
    for o in offset:
        t = 3 * t + (o + 1)
    return _TAG_BASE + t


def _region(decomp, offset, width, send):
    """Ghosted-array index ranges of the block sent towards ``offset`` (``send``) or of
    the ghost block received from the neighbour at ``offset``."""
    g = decomp.ghost
    out = []
    for a, o in enumerate(offset):
        n = decomp.local_shape[a]
        if o == 0:
            out.append((g, g + n))
        elif send:
            out.append((g + n - width, g + n) if o > 0 else (g, g + width))
        else:
            out.append((g + n, g + n + width) if o > 0 else (g - width, g))
    return out


class HaloExchange:
    """Collective. The plan of a halo exchange for ``arrays`` (building, starting and
    waiting are collective).

    ``HaloExchange(a, b, ...)`` with DistArrays of one decomposition; ``stencil`` defaults
    to the decomposition's, ``width`` to its ghost width (it may be smaller).
    ``exchange()`` is ``start()`` then ``wait()``. The plan keeps the arrays alive; call
    :meth:`close` (or use ``with``) to free its MPI objects.

    Performance note: build the plan once and reuse it; ``pympc.update_halo(a, b)``
    does that for you by caching plans on the decomposition.
    """

    def __init__(self, *arrays: DistArray, stencil=None, width=None, _where="HaloExchange"):
        _check_arrays(arrays, _where)
        d = arrays[0].decomp
        stencil = stencil or d.stencil
        if stencil not in ("star", "box"):
            raise InputError(f"stencil must be 'star' or 'box', got {stencil!r}")
        width = d.ghost if width is None else int(width)
        if not 1 <= width <= d.ghost:
            raise InputError(f"halo width must be in 1..{d.ghost} (the ghost width), got {width}")
        self.decomp, self.arrays, self.stencil, self.width = d, arrays, stencil, width
        comm = d.cart
        me = comm.Get_rank()
        self._requests = []
        self._types = []
        self.self_copies = []  # (receive, send) slices of periodic self-neighbours: public, the cost log counts them
        self.messages = 0
        self.bytes_sent = 0
        self._active = False
        for offset, nb in d.neighbours(stencil).items():
            if nb == MPI.PROC_NULL:
                continue
            recv = _region(d, offset, width, send=False)
            if nb == me:
                src = _region(d, tuple(-o for o in offset), width, send=True)
                ss = tuple(slice(lo, hi) for lo, hi in src)
                rs = tuple(slice(lo, hi) for lo, hi in recv)
                self.self_copies.append((rs, ss))
                continue
            send = _region(d, offset, width, send=True)
            st, nbytes = self._struct(send)
            rt, _ = self._struct(recv)
            self._requests.append(comm.Recv_init([MPI.BOTTOM, 1, rt], source=nb,
                                                 tag=_tag(tuple(-o for o in offset))))
            self._requests.append(comm.Send_init([MPI.BOTTOM, 1, st], dest=nb, tag=_tag(offset)))
            self.messages += 1
            self.bytes_sent += nbytes

    def _struct(self, region):
        types, displs = [], []
        nbytes = 0
        for a in self.arrays:
            comp = a.components
            full = a.data.shape
            sub = tuple(hi - lo for lo, hi in region) + comp
            starts = tuple(lo for lo, _ in region) + (0,) * len(comp)
            t = mpi_type(a.dtype).Create_subarray(list(full), list(sub), list(starts), order=MPI.ORDER_C)
            types.append(t)
            displs.append(MPI.Get_address(a.data))
            nbytes += int(np.prod(sub)) * a.dtype.itemsize
        st = MPI.Datatype.Create_struct([1] * len(types), displs, types).Commit()
        for t in types:
            t.Free()
        self._types.append(st)
        return st, nbytes

    def start(self) -> "HaloExchange":
        """Collective. Post every receive and send of the exchange and do the local
        (periodic, one rank along the axis) copies; returns at once."""
        if self._active:
            raise RuntimeError("halo exchange started twice without wait()")
        t0 = _perf()
        MPI.Prequest.Startall(self._requests)
        for rs, ss in self.self_copies:
            for a in self.arrays:
                a.data[rs] = a.data[ss]
        self._active = True
        self._t_start = _perf() - t0  # cost log: start's share of the exchange time
        return self

    @_watched("HaloExchange.wait")
    def wait(self) -> None:
        """Collective. Wait until every ghost cell of the exchange has arrived."""
        if self._active:
            t0 = _perf()
            MPI.Request.Waitall(self._requests)
            self._active = False
            _costlog.record_halo(self, self._t_start + _perf() - t0)

    def exchange(self) -> None:
        """Collective. ``start()`` then ``wait()``."""
        self.start()
        self.wait()

    def close(self) -> None:
        """Local. Free the plan's requests and datatypes (wait first if started)."""
        self.wait()
        for r in self._requests:
            r.Free()
        for t in self._types:
            t.Free()
        self._requests, self._types = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_MAX_CACHED = 16


def _check_arrays(arrays, where):
    """DistArrays, all on decompositions compatible with the first one's (with the same
    ghost width and periodicity: the plan's regions and neighbours come from it)."""
    if not arrays:
        raise InputError(f"{where} needs at least one DistArray")
    for i, a in enumerate(arrays):
        require_distarray(a, f"array {i}", where)
        if i:
            require_compatible(arrays[0], a, where, halo=True, components=False)


def plan_for(*arrays: DistArray, stencil=None, width=None) -> HaloExchange:
    """Collective. The cached :class:`HaloExchange` for these arrays (built on first use).

    Plans are cached on the decomposition, keyed by the arrays' buffers, stencil and
    width; the least recently used beyond 16 is closed. Every rank calls it with the same
    arrays in the same order, so the caches agree.
    """
    if not arrays or not isinstance(arrays[0], DistArray):
        _check_arrays(arrays, "update_halo")  # raises, saying what was expected
    d = arrays[0].decomp
    key = (tuple(id(getattr(a, "data", a)) for a in arrays), stencil, width)
    cache = d._halo_plans
    if not isinstance(cache, OrderedDict):
        cache = d._halo_plans = OrderedDict(cache)
    plan = cache.get(key)
    # a cached plan holds these very arrays, checked when it was built: a step pays no check
    if plan is None or any(p is not a for p, a in zip(plan.arrays, arrays)):
        plan = HaloExchange(*arrays, stencil=stencil, width=width, _where="update_halo")
        cache[key] = plan
        while len(cache) > _MAX_CACHED:
            _, old = cache.popitem(last=False)
            old.close()
    cache.move_to_end(key)
    return plan


@_watched("pympc.update_halo")
def update_halo(*arrays: DistArray, stencil=None, width=None) -> None:
    """Collective. Exchange the ghost cells of one or more DistArrays (one message per
    neighbour and direction for all of them), with a plan cached on the decomposition."""
    plan_for(*arrays, stencil=stencil, width=width).exchange()


def start_halo(*arrays: DistArray, stencil=None, width=None) -> HaloExchange:
    """Collective. Start the cached exchange and return its plan: compute on the interior,
    then call ``plan.wait()`` before touching the ghosts."""
    return plan_for(*arrays, stencil=stencil, width=width).start()

