"""BSP supersteps on MPI: registered arrays with buffered put and get, message queues,
and :meth:`BSP.sync` as the superstep boundary (BSPlib semantics, Hill et al. 1998).

Semantics (see the BSP guide for the full rules and an example):

* **registration** (:meth:`BSP.register`) is collective and takes effect at the next
  sync. A registration is identified by its **order**: the k-th ``register`` call on
  every rank names one distributed variable (its local arrays may differ in size per
  rank but share the dtype). :meth:`BSP.deregister` also takes effect at the next sync.
  When the ranks' calls do not match, that sync delivers the superstep's communication,
  refuses every register/deregister call of the superstep on every rank (no index is
  used up, nothing is withdrawn) and raises :class:`~pympc.InputError` on every rank:
  the program may catch it and go on.
* :meth:`BSP.put` copies its source at once (it may change afterwards) and writes the
  destination at the next sync; its source must cast to the registration's dtype under
  numpy's ``"safe"`` rule, else :class:`~pympc.InputError` at the call.
  :meth:`BSP.hpput` reads its source during the sync (no copy: leave it alone until
  then). :meth:`BSP.get` reads the remote value during the sync.
* **every read of a sync sees memory as it was at the end of the computation phase**
  (BSPlib's order): first all get and hpput sources are read, then the get destinations
  are written (in issue order), then the puts (below). A get whose destination is
  another get's (or an hpput's) source, on this rank or another, still reads the old
  value; where a get's destination is also a put's, the put wins.
* **two puts to one location** in one superstep: the put from the highest-numbered
  source rank wins; among one rank's puts, the one issued last.
* :meth:`BSP.send` queues a message (an integer tag and a numeric array) for any rank;
  after the sync the receiver reads its queue (:meth:`BSP.qsize`, :meth:`BSP.move`,
  :meth:`BSP.messages`) in source-rank order, then send order. Payloads are views that
  stay valid until the next sync; messages not read by then are dropped.

Implementation: one sync is an MPI RMA fence epoch on a small window of counts (each rank
puts, into every rank it has traffic for, one row: record count, data bytes and up to 4
put/get/message records inline), then **one message per rank pair** carrying all the data
for that pair (plus one for the header when more than 4 records, and one reply when the
pair has gets). Data moves from the put sources (or the put buffers) straight into the
destination arrays through MPI derived datatypes, no packing in Python. Every value a
rank serves (get replies, its gets from itself) is copied before it posts a receive or
writes anything; writes that overlap (two puts, a put and a get destination, two get
destinations) go through a buffer and are applied in the order above, and an hpput
source that a write of the sync overlaps is copied first. An empty
superstep is one ``MPI_Win_fence``, about the cost of ``MPI_Barrier``. Every sync
records its compute, words, communication and sync time into the cost log
(:mod:`pympc.costlog`).
"""

from __future__ import annotations

import atexit
from bisect import bisect_left
from itertools import accumulate
from contextlib import contextmanager
from time import perf_counter as _perf

import numpy as np
from mpi4py import MPI

from .. import costlog as _costlog
from ..runtime import InputError, get_comm
from ..watchdog import watched as _watched

_PUT, _GET, _MSG = 1, 2, 3
_INLINE = 4                  # records carried in the count row itself
_HEAD = 3                    # row: record count, data bytes, registration mark
_ROW = _HEAD + 4 * _INLINE   # words per count row
_TAG_HDR, _TAG_DATA, _TAG_REPLY = 11, 13, 15   # + parity
_DTYPES = tuple(np.dtype(c) for c in "?bBhHiIlqLQefdgFDG")
_EMPTY = np.empty(0, np.uint8)


def _no_fence() -> None:
    """The fence of a one-rank BSP object: nothing to order or wait for."""


class Registration:
    """Local. A registered array: the handle that :meth:`BSP.put` and :meth:`BSP.get` name.

    ``index`` is the registration order (the same on every rank), ``array`` this rank's
    array, ``sizes`` the element count of every rank's array (known once active).
    """

    __slots__ = ("index", "array", "dtype", "bytes", "addr", "sizes", "active", "_dead", "_refused")

    def __init__(self, index, array):
        self.index = index
        self.array = array
        self.dtype = array.dtype
        self.bytes = array.reshape(-1).view(np.uint8)
        self.addr = MPI.Get_address(array) if array.size else 0
        self.sizes = None
        self.active = False
        self._dead = False
        self._refused = False

    def __repr__(self):
        state = "active" if self.active else "refused" if self._refused else \
            "deregistered" if self._dead else "pending"
        return f"Registration({self.index}, {self.dtype}, {self.array.shape}, {state})"


class _Arena:
    """Bump allocator for put and message buffers, reused every other superstep."""

    __slots__ = ("buf", "used", "addr")

    def __init__(self):
        self.buf = np.empty(0, np.uint8)
        self.used = 0
        self.addr = 0

    def take(self, n, align=False):
        used = self.used
        if align:
            used = (used + 7) & ~7
        if used + n > self.buf.size:
            self.buf = np.empty(max(2 * self.buf.size, n, 1 << 16), np.uint8)
            self.addr = MPI.Get_address(self.buf)
            used = 0
        self.used = used + n
        return self.buf, used


class _Out:
    """Traffic of this superstep for one destination."""

    __slots__ = ("recs", "views", "nbytes", "hdr")

    def __init__(self):
        self.recs = []    # (kind, a, b, nbytes) in issue order
        self.views = []   # (buffer, offset, nbytes, address) of the data records
        self.nbytes = 0
        self.hdr = None


def _blocks_spec(blocks):
    """A receive/send spec for a list of (address, nbytes, buffer, offset) blocks:
    a plain buffer when they merge into one, else an hindexed type at MPI_BOTTOM."""
    merged = []
    for addr, n, buf, off in blocks:
        if n == 0:
            continue
        if merged and merged[-1][2] is buf and merged[-1][3] + merged[-1][1] == off:
            merged[-1][1] += n
        else:
            merged.append([addr, n, buf, off])
    if not merged:
        return [_EMPTY, MPI.BYTE], None
    if len(merged) == 1:
        _, n, buf, off = merged[0]
        return [buf[off:off + n], MPI.BYTE], None
    t = MPI.BYTE.Create_hindexed([m[1] for m in merged], [m[0] for m in merged]).Commit()
    return [MPI.BOTTOM, 1, t], t


class _Intervals:
    """The [start, end) address intervals of a sync's writes (none empty), sorted once:
    :attr:`overlap` says whether two of them overlap, :meth:`hit` whether an interval
    overlaps one of them (sorted starts and the running maximum of the ends: one
    bisection a query)."""

    __slots__ = ("starts", "reach", "overlap")

    def __init__(self, iv):
        iv = sorted(iv)
        self.starts = [a for a, _ in iv]
        self.reach = list(accumulate([e for _, e in iv], max))
        # sorted by start, interval k overlaps an earlier one iff it starts before the
        # furthest end among them
        self.overlap = any(a < r for a, r in zip(self.starts[1:], self.reach))

    def hit(self, a, e):
        k = bisect_left(self.starts, e)      # the intervals that start before this one ends
        return k > 0 and self.reach[k - 1] > a


class _Phase:
    """One sync's data phase: what the steps of :meth:`BSP._exchange` hand on."""

    __slots__ = ("par", "me", "srcs", "dbytes", "ra", "mark", "refused", "hdrs", "myviews", "plan", "writes",
                 "queue", "mine", "own", "replies", "sent", "recvd", "sends", "recvs", "keep", "staged",
                 "staged_rep")

    def __init__(self, par, me, srcs, dbytes, ra):
        self.par, self.me, self.srcs, self.dbytes, self.ra = par, me, srcs, dbytes, ra
        ra.used = 0
        self.hdrs = {}       # source -> its records (kind, a, b, bytes) in issue order
        self.plan = {}       # source -> receive blocks of its puts and messages
        self.writes = []     # [start, end) address of every write into this rank's memory
        self.queue = []      # (source, tag, payload) of the messages delivered
        self.mine = []       # this rank's own puts: (registration, byte offset, bytes, view index)
        self.own = []        # the bytes of this rank's gets from itself, in issue order
        self.replies = []    # (rank, the bytes it asked for)
        self.sent = self.recvd = 0
        self.sends, self.recvs, self.keep = [], [], []
        self.staged, self.staged_rep = {}, {}


def _disagreement(mark, marks):
    """Why this sync refuses the registrations (the ranks' marks differ), or None. Every
    rank sees every rank's mark (a rank with registration changes posts a row to all), so
    the decision and its message are the same on every rank."""
    P = len(marks)
    if (mark or any(marks)) and marks.count(mark) != P:
        return (f"register()/deregister() calls differ between ranks before this sync "
                f"(ranks {[r for r in range(P) if marks[r] != marks[0]]} differ from rank 0); "
                f"this superstep's register()/deregister() calls are refused on every rank")
    return None


class BSP:
    """Collective. A BSP computer on ``comm`` (default: the world): supersteps of local
    compute, buffered communication and :meth:`sync`.

    ``with BSP(comm) as bsp: ...`` (or call :meth:`close`). ``bsp.pid`` is this rank,
    ``bsp.nprocs`` the number of ranks. The BSP object works on a duplicate of ``comm``,
    so its messages never match the program's own.
    """

    def __init__(self, comm=None):
        comm = get_comm(comm)
        self.comm = comm.Dup()
        self.pid = self.comm.Get_rank()
        self.nprocs = P = self.comm.Get_size()
        # Fences that end an epoch act as barriers (MPI 4.0, 12.5.1): the two count sets
        # alternate by parity, so a set is cleared one epoch before it is written again.
        # count window: a doorbell word per parity, then the rows, field-major:
        # _cnt[parity, field, source]. A sender ORs its row and the doorbell in one
        # MPI_Accumulate; an empty sync reads only its doorbell.
        self._win = MPI.Win.Allocate((8 + 2 * P * _ROW) * 8, 8, comm=self.comm)
        mem = np.frombuffer(self._win.tomemory(), np.int64)
        mem[...] = 0
        self._bell = memoryview(mem[:2])
        self._bells = mem[:2]
        self._cnt = mem[8:].reshape(2, _ROW, P)
        self._rowbuf = np.zeros((P, 1 + _ROW), np.int64)
        self._rowbuf[:, 0] = 1
        self._rowtypes = {}
        self._parity = 0
        self._regs: dict = {}
        self._nreg = 0
        self._pend_reg: list = []
        self._pend_dereg: list = []
        self._out: dict = {}
        self._gets: dict = {}     # source rank -> [(issue number, destination bytes, address)]
        self._ngets = 0
        self._hp: list = []       # (_Out, index into its views) of each hpput with data
        self._busy = False
        self._queue: list = []
        self._qpos = 0
        self._arena = _Arena()
        self._rarena = (_Arena(), _Arena())
        self._t_start = _perf()
        self._fence = self._win.Fence
        self._fence()
        if P == 1:  # no other rank touches the window: a sync needs no fence (0.5 -> 0.1 µs,
            self._fence = _no_fence  # and 22 -> ~1 µs right after a memory-bound compute phase)
        _live.append(self)

    # -- registration ------------------------------------------------------------------
    def register(self, array) -> Registration:
        """Collective. Register a numpy array (C-contiguous, numeric, writable) for remote
        access; it takes effect at the next :meth:`sync`. Every rank registers its own
        array of the variable, in the same order as the others: the order identifies it."""
        if not isinstance(array, np.ndarray):
            raise InputError(f"register needs a numpy array, got {type(array).__name__}")
        if array.dtype.kind not in "biufc" or not array.dtype.isnative:
            raise InputError(f"register needs a native numeric dtype, got {array.dtype}")
        if not array.flags.c_contiguous or not array.flags.writeable:
            raise InputError("register needs a C-contiguous, writable array")
        reg = Registration(self._nreg, array)
        self._nreg += 1
        self._pend_reg.append(reg)
        self._busy = True
        return reg

    def deregister(self, reg: Registration) -> None:
        """Collective. Withdraw a registration at the next :meth:`sync` (its index is not
        reused); puts and gets of this superstep may still use it."""
        if not isinstance(reg, Registration) or not reg.active or reg in self._pend_dereg:
            raise InputError(f"deregister needs an active registration, got {reg!r}")
        self._pend_dereg.append(reg)
        self._busy = True

    def _target(self, pid, reg, offset, n):
        if isinstance(reg, Registration) and reg._refused:
            raise InputError(f"{reg!r} is not active: the sync after register() refused it "
                             f"(the ranks' register()/deregister() calls did not match)")
        if not isinstance(reg, Registration) or not reg.active:
            raise InputError(f"{reg!r} is not active: a registration takes effect at the next sync")
        if not 0 <= pid < self.nprocs:
            raise InputError(f"rank {pid} is outside 0..{self.nprocs - 1}")
        if offset < 0 or offset + n > reg.sizes[pid]:
            raise InputError(f"elements {offset}..{offset + n} are outside registration {reg.index} "
                             f"on rank {pid} (size {reg.sizes[pid]})")

    def _dest(self, pid):
        o = self._out.get(pid)
        if o is None:
            o = self._out[pid] = _Out()
        self._busy = True
        return o

    # -- one-sided communication -----------------------------------------------------------
    def put(self, pid: int, src, reg: Registration, offset: int = 0) -> None:
        """Local. Write ``src`` into rank ``pid``'s array of ``reg`` at element ``offset``,
        at the next sync. ``src`` is copied now, cast to the registration's dtype where
        numpy's ``"safe"`` rule allows (int32 into int64, float32 into float64, ...); any
        other dtype raises :class:`~pympc.InputError` naming both, and nothing is queued."""
        if type(src) is not np.ndarray:
            src = np.asarray(src)
        n = src.size
        if type(reg) is not Registration or not reg.active or not 0 <= pid < self.nprocs \
                or not 0 <= offset <= reg.sizes[pid] - n:
            self._target(pid, reg, offset, n)
        if src.dtype != reg.dtype:
            self._check_cast(src.dtype, reg)
        isz = reg.dtype.itemsize
        nbytes = n * isz
        o = self._out.get(pid)
        if o is None:
            o = self._out[pid] = _Out()
            self._busy = True
        o.recs.append((_PUT, reg.index, int(offset) * isz, nbytes))
        if nbytes:
            ar = self._arena
            buf, off = ar.take(nbytes)
            np.copyto(buf[off:off + nbytes].view(reg.dtype).reshape(src.shape), src, casting="safe")
            o.views.append((buf, off, nbytes, ar.addr + off))
            o.nbytes += nbytes

    def hpput(self, pid: int, src, reg: Registration, offset: int = 0) -> None:
        """Local. :meth:`put` without the copy: ``src`` is read during the next sync, so
        the program must not change it until the sync returns. It is read as it was at
        the end of the computation phase even where it is a destination of this
        superstep's puts or gets (the sync then copies it before writing). A source that
        is not a C-contiguous array of the registration's dtype is copied as by
        :meth:`put` (and cast by the same safe rule)."""
        if type(src) is not np.ndarray or type(reg) is not Registration or src.dtype != reg.dtype \
                or not src.flags.c_contiguous:
            return self.put(pid, src, reg, offset)
        n = src.size
        if not reg.active or not 0 <= pid < self.nprocs or not 0 <= offset <= reg.sizes[pid] - n:
            self._target(pid, reg, offset, n)
        nbytes = src.nbytes
        o = self._out.get(pid)
        if o is None:
            o = self._out[pid] = _Out()
            self._busy = True
        o.recs.append((_PUT, reg.index, int(offset) * reg.dtype.itemsize, nbytes))
        if nbytes:
            b = src.view(np.uint8) if src.ndim == 1 else src.reshape(-1).view(np.uint8)
            self._hp.append((o, len(o.views)))
            o.views.append((b, 0, nbytes, MPI.Get_address(b)))
            o.nbytes += nbytes

    def get(self, pid: int, reg: Registration, offset: int, out):
        """Local. Read elements ``offset ...`` of rank ``pid``'s array of ``reg`` into
        ``out`` (an array of the registration's dtype, or an element count: a new array
        is made). The value read is the one at the end of the computation phase, before
        any get or put of the superstep writes; ``out`` is written when the sync returns
        (gets in issue order, then puts: a put to the same place wins). Returns ``out``."""
        if isinstance(reg, Registration) and isinstance(out, (int, np.integer)):
            out = np.empty(int(out), reg.dtype)
        if (not isinstance(out, np.ndarray) or not isinstance(reg, Registration)
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise InputError("get needs a writable C-contiguous array of the registration's dtype "
                             "(or an element count)")
        if out.dtype != reg.dtype:
            raise InputError(f"get from registration {reg.index} ({reg.dtype}) into an array of {out.dtype}: "
                             f"gets move the registration's bytes, so out must be of dtype {reg.dtype}")
        offset = int(offset)
        self._target(pid, reg, offset, out.size)
        o = self._dest(pid)
        o.recs.append((_GET, reg.index, offset * reg.dtype.itemsize, out.nbytes))
        v = out.reshape(-1).view(np.uint8)
        self._gets.setdefault(pid, []).append((self._ngets, v, MPI.Get_address(v) if v.size else 0))
        self._ngets += 1
        return out

    @staticmethod
    def _check_cast(dtype, reg):
        # The registration's dtype is the same on every rank (the sync that activated it
        # checked), so the sender decides here, at the call, for the receiver.
        if not np.can_cast(dtype, reg.dtype, "safe"):
            raise InputError(f"put of {dtype} into registration {reg.index} ({reg.dtype}) needs an unsafe "
                             f"cast: only safe casts are allowed (numpy's 'safe' rule); convert the "
                             f"source to {reg.dtype} yourself if the values fit")

    # -- messages ------------------------------------------------------------------------------
    def send(self, pid: int, tag: int, payload) -> None:
        """Local. Queue a message for rank ``pid``: an integer ``tag`` and a numeric array
        (copied now, delivered flat at the next sync)."""
        if not 0 <= pid < self.nprocs:
            raise InputError(f"rank {pid} is outside 0..{self.nprocs - 1}")
        payload = np.asarray(payload)
        if payload.dtype.kind not in "biufc":
            raise InputError(f"message payloads must be numeric arrays, got dtype {payload.dtype}")
        dt = payload.dtype.newbyteorder("=")
        code = _DTYPES.index(dt)
        nbytes = payload.nbytes
        o = self._dest(pid)
        o.recs.append((_MSG, int(tag), code, nbytes))
        if nbytes:
            ar = self._arena
            buf, off = ar.take(nbytes, align=True)
            np.copyto(buf[off:off + nbytes].view(dt).reshape(payload.shape), payload)
            o.views.append((buf, off, nbytes, ar.addr + off))
            o.nbytes += nbytes

    def qsize(self) -> tuple:
        """Local. ``(messages, payload bytes)`` still in the queue."""
        q = self._queue[self._qpos:]
        return len(q), sum(m[2].nbytes for m in q)

    def move(self):
        """Local. The next message of the queue as ``(source, tag, payload)``, or ``None``
        when the queue is empty. ``payload`` is a flat array valid until the next sync."""
        if self._qpos >= len(self._queue):
            return None
        self._qpos += 1
        return self._queue[self._qpos - 1]

    def messages(self):
        """Local. Iterate over (and empty) the queue: ``(source, tag, payload)`` tuples."""
        while self._qpos < len(self._queue):
            self._qpos += 1
            yield self._queue[self._qpos - 1]

    # -- the superstep boundary ---------------------------------------------------------------
    @_watched("BSP.sync")
    def sync(self, label="sync") -> None:
        """Collective. End the superstep: deliver every put, get and message, apply the
        registrations, and record the superstep under ``label`` in the cost log."""
        t0 = _perf()
        if self._busy:
            self._post_rows()
            self._fence()
            return self._exchange(label, t0, _perf())
        self._fence()
        t1 = _perf()
        par = self._parity
        if self._bell[par]:
            return self._exchange(label, t0, t1)
        # empty superstep: the fence was all (this path is the machine's l)
        self._parity = 1 - par
        if self._queue:
            self._queue, self._qpos = [], 0
        _costlog.record_sync(label, t0, t1)

    @contextmanager
    def superstep(self, label="sync"):
        """Collective. ``with bsp.superstep("label"): ...`` runs the block and then
        :meth:`sync` (not when the block raises)."""
        yield self
        self.sync(label)

    def time(self) -> float:
        """Local. Seconds since this BSP object was made (``bsp_time``)."""
        return _perf() - self._t_start

    def _mark(self):
        """This superstep's registration mark, which the ranks compare at the sync: 0
        without register()/deregister() calls, else 1 + registrations + 2**20 *
        deregistrations."""
        if self._pend_reg or self._pend_dereg:
            return 1 + len(self._pend_reg) + (len(self._pend_dereg) << 20)
        return 0

    def _post_rows(self):
        """Accumulate this superstep's count rows (and doorbells) into the windows of
        the ranks it has traffic for (all ranks when registrations change)."""
        P, me, par = self.nprocs, self.pid, self._parity
        mark = self._mark()
        rowbuf = self._rowbuf
        base = 8 + par * P * _ROW + me
        out = self._out
        for j in (range(P) if mark else list(out)):
            if j == me:
                continue
            o = out.get(j)
            if o is None:
                vals = [0, 0, mark]
            else:
                vals = [len(o.recs), o.nbytes, mark]
                if len(o.recs) <= _INLINE:
                    for rec in o.recs:
                        vals.extend(rec)
            k = len(vals)
            rowbuf[j, 1:1 + k] = vals
            t = self._rowtypes.get((par, k))
            if t is None:
                t = MPI.INT64_T.Create_indexed_block(1, [par] + [base + f * P for f in range(k)]).Commit()
                self._rowtypes[(par, k)] = t
            self._win.Accumulate([rowbuf[j, :1 + k], MPI.INT64_T], j, (0, 1, t), op=MPI.BOR)

    def _exchange(self, label, t0, t1):
        """The data phase of a sync with traffic somewhere (the fence showed it): the
        headers, every read, the transfers, the writes in BSPlib's order, then the
        registrations and the cost log."""
        x = self._begin()
        self._read(x)
        writes = x.writes
        iv = _Intervals(writes) if len(writes) > 1 or (self._hp and writes) else None
        if self._hp and iv is not None:
            self._protect_hpput_sources(iv)
        self._post_sends(x)
        ordered = iv is not None and iv.overlap
        self._post_receives(x, ordered)
        if not ordered:
            self._write_own(x)
        MPI.Request.Waitall(x.recvs + x.sends)
        for t in x.keep:
            if type(t) is MPI.Datatype:
                t.Free()
        if ordered:
            self._write_ordered(x)
        refused = self._end_exchange(x)
        t2 = _perf()
        _costlog.record_bsp_superstep(label, t1 - t0, t2 - t1, (x.sent + 7) >> 3, (x.recvd + 7) >> 3, t2)
        if refused:
            raise InputError(refused)

    def _begin(self):
        """Plan: read the count rows (records, data bytes, registration mark per source),
        agree on the registrations, and collect every source's record headers."""
        P, me, par = self.nprocs, self.pid, self._parity
        rows = self._cnt[par]
        if P <= 64:  # one numpy call for every row
            cols = rows.T.tolist()
            nrecs, dbytes, marks = [c[0] for c in cols], [c[1] for c in cols], [c[2] for c in cols]
        else:
            cols = None
            nrecs, dbytes, marks = rows[:_HEAD].tolist()
        mark = self._mark()
        o = self._out.get(me)  # this rank's own traffic never goes through the window
        nrecs[me], dbytes[me], marks[me] = (len(o.recs), o.nbytes, mark) if o else (0, 0, mark)
        x = _Phase(par, me, [s for s in range(P) if nrecs[s]], dbytes, self._rarena[par])
        x.mark, x.refused = mark, _disagreement(mark, marks)
        x.myviews = o.views if o else None
        self._headers(x, nrecs, cols, rows)
        return x

    def _headers(self, x, nrecs, cols, rows):
        """Count exchange, second half: the record headers, inline in the count rows (up
        to 4) or one message per pair; clears this parity's rows for the sync after next."""
        comm, me, par = self.comm, self.pid, x.par
        hdrs, hreqs = x.hdrs, []
        for s in x.srcs:
            n = nrecs[s]
            if s == me:
                hdrs[s] = self._out[me].recs
            elif n <= _INLINE:
                c = cols[s] if cols else rows[:, s].tolist()
                hdrs[s] = [c[k:k + 4] for k in range(_HEAD, _HEAD + 4 * n, 4)]
            else:
                hdrs[s] = np.empty((n, 4), np.int64)
                hreqs.append(comm.Irecv([hdrs[s], MPI.INT64_T], s, _TAG_HDR + par))
        rows[...] = 0
        self._bells[par] = 0
        for j, o in self._out.items():
            if j != me and len(o.recs) > _INLINE:
                o.hdr = np.array(o.recs, np.int64)
                x.sends.append(comm.Isend([o.hdr, MPI.INT64_T], j, _TAG_HDR + par))
        if hreqs:
            MPI.Request.Waitall(hreqs)
            for s in x.srcs:
                if isinstance(hdrs[s], np.ndarray):
                    hdrs[s] = hdrs[s].tolist()

    def _read(self, x):
        """Every read of the sync, before anything is written on this rank (BSPlib: get
        sources are read at the end of the computation phase): the values this rank serves
        to other ranks' gets and to its own are copied out now. Nothing arrives earlier:
        all writes into this rank's memory are its own receives, posted later. Also lists
        the receive blocks per source and the address interval of every write."""
        k = 0  # this rank's next own data view
        for s in x.srcs:
            k = self._read_records(x, s, k)
            x.recvd += x.dbytes[s]
        writes = x.writes
        for lst in self._gets.values():
            for _, v, addr in lst:
                if v.size:
                    writes.append((addr, addr + v.size))

    def _read_records(self, x, s, k):
        """:meth:`_read` of the records from source ``s``; ``k`` counts this rank's own
        data views (returned, advanced)."""
        regs, me, ra = self._regs, self.pid, x.ra
        blocks, want = [], []
        for kind, a, b, n in x.hdrs[s]:
            if kind == _MSG:
                buf, off = ra.take(n, align=True)
                q = buf[off:off + n]
                if s != me:
                    blocks.append((ra.addr + off, n, buf, off))
                elif n:
                    v = x.myviews[k]
                    k += 1
                    q[...] = v[0][v[1]:v[1] + n]  # copied: the put buffers are reused
                x.queue.append((s, a, q.view(_DTYPES[b])))
                continue
            r = regs.get(a)
            if r is None or not r.active or b < 0 or b + n > r.bytes.size:
                what = "put into" if kind == _PUT else "get from"
                raise RuntimeError(f"pympc.bsp: bad {what} registration {a} (bytes {b}..{b + n})")
            if kind == _GET:
                want.append((r.bytes, b, n))
            elif n:
                x.writes.append((r.addr + b, r.addr + b + n))
                if s == me:
                    x.mine.append((r, b, n, k))
                    k += 1
                else:
                    blocks.append((r.addr + b, n, r.bytes, b))
        if want:
            self._serve_gets(x, s, want)
        x.plan[s] = blocks
        return k

    @staticmethod
    def _serve_gets(x, s, want):
        """Copy the values rank ``s`` gets from this rank (``want``: registration bytes,
        offset, count): its own gets' values, or one reply message for another rank."""
        if s == x.me:
            x.own = [rb[b:b + n].copy() for rb, b, n in want]
            nb = sum(w[2] for w in want)
            x.sent += nb
            x.recvd += nb
            return
        rep = np.empty(sum(w[2] for w in want), np.uint8)
        pos = 0
        for rb, b, n in want:
            rep[pos:pos + n] = rb[b:b + n]
            pos += n
        x.replies.append((s, rep))
        x.sent += rep.nbytes

    def _protect_hpput_sources(self, iv):
        """hpput sources are read while receives write: copy those a write overlaps."""
        ar = self._arena
        for o, i in self._hp:
            b, off, n, addr = o.views[i]
            if iv.hit(addr, addr + n):
                buf, boff = ar.take(n)
                buf[boff:boff + n] = b[off:off + n]
                o.views[i] = (buf, boff, n, ar.addr + boff)

    def _post_sends(self, x):
        """Transfer, out: this rank's data (one message per destination, straight from the
        put buffers or hpput sources) and the replies to other ranks' gets."""
        comm, me, tag = self.comm, self.pid, _TAG_DATA + x.par
        for j, o in self._out.items():
            x.sent += o.nbytes
            if j == me or not o.nbytes:
                continue
            if len(o.views) == 1:
                b, off, n, _ = o.views[0]
                spec = [b[off:off + n], MPI.BYTE]
            else:
                spec, t = _blocks_spec([(v[3], v[2], v[0], v[1]) for v in o.views])
                x.keep.append(t)
            x.sends.append(comm.Isend(spec, j, tag))
        for s, rep in x.replies:
            x.keep.append(rep)
            x.sends.append(comm.Isend([rep, MPI.BYTE], s, _TAG_REPLY + x.par))

    def _post_receives(self, x, ordered):
        """Transfer, in: straight into place when no two writes overlap, else into
        buffers (``x.staged``, ``x.staged_rep``) that :meth:`_write_ordered` applies."""
        comm, me, ra = self.comm, self.pid, x.ra
        for s, lst in self._gets.items():
            if s == me:
                continue
            nb = sum(v.size for _, v, _ in lst)
            x.recvd += nb
            if ordered:
                buf, off = ra.take(nb)
                spec = [x.staged_rep.setdefault(s, buf[off:off + nb]), MPI.BYTE]
            else:
                spec, t = _blocks_spec([(addr, v.size, v, 0) for _, v, addr in lst])
                x.keep.append(t)
            x.recvs.append(comm.Irecv(spec, s, _TAG_REPLY + x.par))
        for s in x.srcs:
            n = x.dbytes[s]
            if s == me or not n:
                continue
            if ordered:
                buf, off = ra.take(n)
                spec = [x.staged.setdefault(s, buf[off:off + n]), MPI.BYTE]
            elif len(x.plan[s]) == 1:
                _, n, buf, off = x.plan[s][0]
                spec = [buf[off:off + n], MPI.BYTE]
            else:
                spec, t = _blocks_spec(x.plan[s])
                x.keep.append(t)
            x.recvs.append(comm.Irecv(spec, s, _TAG_DATA + x.par))

    def _write_own(self, x):
        """This rank's gets from itself and its puts to itself (no two writes overlap)."""
        for (_, v, _), val in zip(self._gets.get(self.pid, ()), x.own):
            v[...] = val
        self._write_mine(x)

    @staticmethod
    def _write_mine(x):
        for r, b, n, i in x.mine:
            vb, voff, _, _ = x.myviews[i]
            r.bytes[b:b + n] = vb[voff:voff + n]

    def _write_ordered(self, x):
        """Delivery when writes overlap: get destinations in issue order, then puts by
        source rank, each rank's in issue order (messages from the same buffers)."""
        me, regs = self.pid, self._regs
        done = []
        for s, lst in self._gets.items():
            if s == me:
                done += [(seq, v, val) for (seq, v, _), val in zip(lst, x.own)]
                continue
            stream, pos = x.staged_rep[s], 0
            for seq, v, _ in lst:
                done.append((seq, v, stream[pos:pos + v.size]))
                pos += v.size
        done.sort(key=lambda d: d[0])
        for _, v, val in done:
            v[...] = val
        for s in x.srcs:
            if s == me:
                self._write_mine(x)
            elif s in x.staged:
                stream, pos = x.staged[s], 0
                qi = iter(q for q in x.queue if q[0] == s)
                for kind, a, b, n in x.hdrs[s]:
                    if kind == _PUT:
                        regs[a].bytes[b:b + n] = stream[pos:pos + n]
                    elif kind == _MSG:
                        next(qi)[2].view(np.uint8)[...] = stream[pos:pos + n]
                    else:
                        continue
                    pos += n

    def _end_exchange(self, x):
        """Message delivery and the next superstep: the queue is this sync's messages;
        the registrations are applied (or refused: the reason is returned)."""
        self._queue, self._qpos = x.queue, 0
        self._out, self._gets, self._hp = {}, {}, []
        self._ngets = 0
        self._busy = False
        self._parity = 1 - x.par
        self._arena.used = 0
        if x.mark or x.refused:
            return self._apply_registrations(x.refused)
        return None

    def _apply_registrations(self, refused):
        """Apply this superstep's register/deregister calls, or refuse all of them
        (leaving no trace: indices are not used up, nothing is withdrawn). Returns the
        reason of a refusal, the same on every rank, or None."""
        new, dereg = self._pend_reg, self._pend_dereg
        self._pend_reg, self._pend_dereg = [], []
        if refused is None:  # the marks agree and are not 0: every rank is here
            info = self.comm.allgather(([(r.array.size, r.dtype.str) for r in new], [r.index for r in dereg]))
            if any(x[1] != info[0][1] for x in info):
                refused = "deregister() was called for different registrations on different ranks"
            else:
                for i, reg in enumerate(new):
                    dts = {x[0][i][1] for x in info}
                    if len(dts) > 1:
                        refused = (f"registration {reg.index} has different dtypes on different ranks: "
                                   f"{sorted(dts)}")
                        break
            if refused:
                refused += "; this superstep's register()/deregister() calls are refused on every rank"
        if refused:
            self._nreg -= len(new)
            for reg in new:
                reg._refused = True
            return refused
        for i, reg in enumerate(new):
            reg.sizes = [x[0][i][0] for x in info]
            reg.active = True
            self._regs[reg.index] = reg
        for reg in dereg:
            reg.active = False
            reg._dead = True
        return None

    # -- lifetime ------------------------------------------------------------------------------
    @_watched("BSP.close")
    def close(self) -> None:
        """Collective. Free the window and the duplicated communicator (pending traffic
        of an unfinished superstep is dropped)."""
        if self._win is not None:
            if self in _live:
                _live.remove(self)
            self._win.Fence()
            self._win.Free()
            for t in self._rowtypes.values():
                t.Free()
            self._win = None
            self._cnt = self._bell = self._bells = None
            self.comm.Free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"BSP(pid={self.pid}, nprocs={self.nprocs})"


_live: list = []


@atexit.register
def _close_at_exit():
    # A BSP object left open would make MPI_Finalize fail on its window: close the
    # remaining ones, in reverse order of creation (the same on every rank).
    for bsp in reversed(list(_live)):
        bsp.close()
