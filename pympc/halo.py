"""Halo exchange: fill ghost cells of DistArrays with their neighbours' owned values.

Two calls, both neighbour-collective: :func:`update_halo` (exchange and wait) and
:func:`start_halo` (post the messages and return; ``.wait()`` on its result before
touching the ghosts). Behind them, a plan built once for a set of arrays and reused
every step:

* one message per neighbour rank carries **all** the arrays and every region that rank
  needs (an MPI struct of subarray datatypes at the arrays' addresses: no packing in
  Python, no pickling): two ranks along a periodic axis, or a box stencil's faces and
  corners on the same rank, exchange one message each way, not one per direction;
* persistent requests (``Send_init``/``Recv_init``), so a step costs one ``Startall`` and
  one ``Waitall``;
* ``start_halo(...)`` / ``.wait()`` let interior compute overlap the messages;
* corners and edges of box stencils travel as diagonal messages, so every message is in
  flight at once (no per-axis phases) and periodic corners come out right;
* a periodic axis with one rank along it is a local numpy copy, not a message to self;
* ghosts at physical (non-periodic) boundaries are never written: they belong to the
  boundary conditions (:mod:`pympc.bc`).

Star stencils exchange the 2d faces only (their corner ghosts are unspecified); box
stencils all 3^d - 1 directions.

The plans live in this module's cache, per decomposition (at most 16 each, the least
recently used closed first), keyed by the arrays' buffers, stencil and width; closing
the decomposition closes its plans (:func:`pympc.grid.on_close`). A plan holds its
arrays' buffers (its datatypes point into them) but only weak references to the
DistArrays, so an unclosed decomposition and its arrays are still garbage once dropped.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from time import perf_counter as _perf

import numpy as np
from mpi4py import MPI

from . import costlog as _costlog
from .array import DistArray, mpi_type, require_compatible, require_distarray
from .grid import on_close
from .runtime import InputError
from .watchdog import watched as _watched

_TAG = 7200  # every halo message (one per neighbour rank and exchange; MPI keeps their order)


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



def _pattern(offsets, width) -> str:
    """Local. The cost model's name for a halo exchange that moves ghost regions towards
    ``offsets`` (the directions with a neighbour, messages and local copies alike) of
    ``width`` layers: ``"box"`` when some direction is diagonal (edges, corners),
    else ``"cols"`` when some region is strided (it crosses the last axis: runs of
    ``width`` elements, a row stride apart), else ``"rows"`` (runs of whole owned rows);
    ``"/w<width>"`` is added for deep halos (``width`` > 1). The cost log records it with
    each exchange, and :mod:`pympc.bsp.report` predicts the exchange with the fit of that
    pattern (their costs per word differ several-fold once the caches are cold)."""
    offsets = list(offsets)
    if any(sum(1 for o in off if o) > 1 for off in offsets):
        shape = "box"
    elif any(len(off) > 1 and off[-1] for off in offsets):
        shape = "cols"
    else:
        shape = "rows"
    return shape if width == 1 else f"{shape}/w{width}"


def _slices(region):
    return tuple(slice(lo, hi) for lo, hi in region)


def _check_arrays(arrays, where):
    """DistArrays, all on decompositions compatible with the first one's (with the same
    ghost width and periodicity: the plan's regions and neighbours come from it)."""
    if not arrays:
        raise InputError(f"{where} needs at least one DistArray")
    for i, a in enumerate(arrays):
        require_distarray(a, f"array {i}", where)
        if i:
            require_compatible(arrays[0], a, where, halo=True, components=False)


def _check_options(d, stencil, width, where):
    """The stencil and width of an exchange on ``d`` (defaults: the decomposition's)."""
    stencil = stencil or d.stencil
    if stencil not in ("star", "box"):
        raise InputError(f"{where}: stencil must be 'star' or 'box', got {stencil!r}")
    width = d.ghost if width is None else int(width)
    if not 1 <= width <= d.ghost:
        raise InputError(f"{where}: halo width must be in 1..{d.ghost} (the ghost width), got {width}")
    if d.cart == MPI.COMM_NULL:
        raise InputError(f"{where}: the arrays' decomposition is closed")
    return stencil, width


class _HaloExchange:
    """The plan of one halo exchange of ``arrays`` (built, started and waited for by
    neighbours together): persistent requests over MPI struct datatypes that point into
    the arrays' buffers. Only :func:`update_halo` and :func:`start_halo` make them (a
    caller gets one back from :func:`start_halo`, to ``wait()`` on)."""

    def __init__(self, arrays, stencil, width, where):
        _check_arrays(arrays, where)
        d = arrays[0].decomp
        stencil, width = _check_options(d, stencil, width, where)
        # the DistArrays only to recognise them (weakly: the cache must not keep an
        # unclosed decomposition alive); their buffers strongly: the datatypes point there
        self.fields = tuple(weakref.ref(a) for a in arrays)
        self.buffers = tuple(a.data for a in arrays)
        self.requests, self.types, self.self_copies = [], [], []
        self.messages = 0   # to other ranks, per exchange
        self.words = 0      # 8-byte words moved per exchange, local copies included (cost log)
        self.pattern = "rows"  # the cost model's name for this exchange's shape (_pattern)
        self.active = False
        self.t_start = 0.0
        self._build(d, arrays, stencil, width)

    def _build(self, d, arrays, stencil, width):
        comm = d.cart
        me = comm.Get_rank()
        nbytes = 0
        used = [o for o, nb in d.neighbours(stencil).items() if nb != MPI.PROC_NULL]
        self.pattern = _pattern(used, width)
        peers = {}  # neighbour rank -> the directions it lies in (several: a periodic axis of 2 ranks, corners)
        for offset, nb in d.neighbours(stencil).items():
            if nb == MPI.PROC_NULL:
                continue
            if nb == me:  # a periodic axis with one rank along it: a local copy
                back = tuple(-o for o in offset)
                rs = _slices(_region(d, offset, width, send=False))
                self.self_copies.append((rs, _slices(_region(d, back, width, send=True))))
                nbytes += sum(b[rs].nbytes for b in self.buffers)
                continue
            peers.setdefault(nb, []).append(offset)
        # one message each way per neighbour rank, carrying every region it needs: the
        # sender lists its regions by direction, the receiver its ghosts by the direction
        # they were sent in (the opposite of its own): the same order on both sides
        for nb, offsets in peers.items():
            sends = sorted(offsets)
            recvs = sorted(offsets, key=lambda o: tuple(-x for x in o))
            st, sent = self._struct(arrays, [_region(d, o, width, send=True) for o in sends])
            rt, _ = self._struct(arrays, [_region(d, o, width, send=False) for o in recvs])
            self.requests.append(comm.Recv_init([MPI.BOTTOM, 1, rt], source=nb, tag=_TAG))
            self.requests.append(comm.Send_init([MPI.BOTTOM, 1, st], dest=nb, tag=_TAG))
            self.messages += 1
            nbytes += sent
        self.words = (nbytes + 7) // 8

    def _struct(self, arrays, regions):
        # one struct datatype over every array's subarray of every region, at the arrays'
        # addresses; returns it with its size in bytes
        types, displs = [], []
        nbytes = 0
        for region in regions:
            for a in arrays:
                comp = a.components
                sub = tuple(hi - lo for lo, hi in region) + comp
                starts = tuple(lo for lo, _ in region) + (0,) * len(comp)
                t = mpi_type(a.dtype).Create_subarray(list(a.data.shape), list(sub), list(starts),
                                                      order=MPI.ORDER_C)
                types.append(t)
                displs.append(MPI.Get_address(a.data))
                nbytes += int(np.prod(sub)) * a.dtype.itemsize
        st = MPI.Datatype.Create_struct([1] * len(types), displs, types).Commit()
        for t in types:
            t.Free()
        self.types.append(st)
        return st, nbytes

    def start(self) -> "_HaloExchange":
        """Neighbour-collective. Post every receive and send and do the local (periodic,
        one rank along the axis) copies; returns at once."""
        if self.active:
            raise InputError("the halo exchange of these arrays is started already (start_halo) "
                             "and not waited for: call .wait() on it first")
        t0 = _perf()
        MPI.Prequest.Startall(self.requests)
        for rs, ss in self.self_copies:
            for b in self.buffers:
                b[rs] = b[ss]
        self.active = True
        self.t_start = _perf() - t0  # start's share of the time the cost log records
        return self

    @_watched("pympc.start_halo(...).wait")
    def wait(self) -> None:
        """Neighbour-collective. Wait until every ghost cell of the exchange has arrived
        (at once if it is not started)."""
        if self.active:
            t0 = _perf()
            MPI.Request.Waitall(self.requests)
            self.active = False
            _costlog.record_comm("halo", self.words, self.words, self.t_start + _perf() - t0, self.pattern)

    def close(self) -> None:
        """Neighbour-collective. Wait if started, then free the requests and datatypes."""
        self.wait()
        self.free()

    def free(self) -> None:
        """Local. Free the requests and datatypes of a plan that is not started."""
        for r in self.requests:
            r.Free()
        for t in self.types:
            t.Free()
        self.requests, self.types = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# The plan cache: id(decomposition) -> OrderedDict((buffer ids, stencil, width) -> plan).
# Keyed by id, not by the object: a plain dict lookup on the hot path; the entry goes
# when the decomposition closes (on_close) or is collected (weakref.finalize, which runs
# before the id can be reused).
# ---------------------------------------------------------------------------------------
_MAX_CACHED = 16
_plans: dict = {}


def _new_cache(d) -> OrderedDict:
    cache = _plans[id(d)] = OrderedDict()
    weakref.finalize(d, _collected, id(d)).atexit = False
    return cache


def _close_plans(d) -> None:
    for plan in _plans.pop(id(d), {}).values():
        plan.close()


def _collected(key) -> None:
    # a decomposition dropped unclosed: free what can be freed without a neighbour (a
    # started plan is left as it is: waiting here, inside the garbage collector, could hang)
    for plan in _plans.pop(key, {}).values():
        if not plan.active and not MPI.Is_finalized():
            plan.free()


on_close(_close_plans)


def _plan_for(arrays, stencil, width, where) -> _HaloExchange:
    """The cached plan for these arrays (built on first use; every rank calls with the same
    arrays in the same order, so the caches agree)."""
    if not arrays or not isinstance(arrays[0], DistArray):
        _check_arrays(arrays, where)  # raises, saying what was expected
    d = arrays[0].decomp
    cache = _plans.get(id(d))
    key = (tuple(id(getattr(a, "data", a)) for a in arrays), stencil, width)
    plan = None if cache is None else cache.get(key)
    # a cached plan holds these very arrays, checked when it was built: a step pays no check
    if plan is None or any(f() is not a for f, a in zip(plan.fields, arrays)):
        fresh = _HaloExchange(arrays, stencil, width, where)
        if cache is None:  # (only now: a refused request leaves no entry behind)
            cache = _new_cache(d)
        if plan is not None:  # the same buffers in other DistArrays: the old plan goes
            plan.close()
        plan = cache[key] = fresh
        while len(cache) > _MAX_CACHED:
            cache.popitem(last=False)[1].close()
    cache.move_to_end(key)
    return plan


@_watched("pympc.update_halo")
def update_halo(*fields: DistArray, stencil=None, width=None) -> None:
    """Neighbour-collective. Fill the ghost cells of one or more DistArrays (of compatible
    decompositions) with their neighbours' owned values: one message per neighbour rank
    carries all of them, every region that rank needs. ``stencil`` (``"star"``: faces; ``"box"``: faces,
    edges, corners) defaults to the decomposition's, ``width`` to its ghost width (it may
    be smaller). Ghosts at a physical boundary are left to :mod:`pympc.bc`."""
    plan = _plan_for(fields, stencil, width, "update_halo")
    plan.start()
    plan.wait()


def start_halo(*fields: DistArray, stencil=None, width=None):
    """Neighbour-collective. Start the exchange :func:`update_halo` does and return at
    once with a handle: compute what needs no ghosts, then call ``handle.wait()`` before
    touching them. Starting the same fields again before ``wait()`` raises
    :class:`~pympc.InputError`."""
    return _plan_for(fields, stencil, width, "start_halo").start()
