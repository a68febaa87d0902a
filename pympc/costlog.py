"""The cost log: where a run's time went, recorded superstep by superstep.

Every rank keeps a :class:`Log`. A **superstep** is the interval between two superstep
boundaries (:meth:`pympc.bsp.BSP.sync`, or the end of a ``with log.superstep(label)``
block); for each one the log records, on this rank:

* ``w``: compute time, the superstep's wall time less its communication and sync time;
* ``sent`` / ``recv``: words (8 bytes) moved out of and into this rank, copies a rank
  makes to itself included (a put to oneself, a periodic halo with one rank along an
  axis); ``h = max(sent, recv)``;
* ``comm``: time in communication calls (BSP data phase, halo exchanges, reductions);
* ``sync``: time in the superstep's synchronisation (the BSP fence: waiting for the
  slowest rank is in here).

Supersteps are aggregated per label (count, sums and maxima), so the log of a long run
stays a few numbers per label. Recording is always on: the module keeps a current log
(a default one, or the innermost ``with Log() as log``) and the halo exchange, the fused
reductions and the BSP layer call :func:`record_comm` (and :func:`record_sync`,
:func:`record_bsp_superstep` at a BSP superstep boundary) into it, which costs a few
hundred nanoseconds.

The cost log is the bottom layer: every layer records into it, and it imports nothing
of pympc's but the runtime, and that only when a log first needs its communicator
(:meth:`Log.gather`). Reading a saved log (:func:`load`) or building one starts no MPI:
``pympc report`` runs in a process that is not a rank.

:mod:`pympc.bsp.report` turns a gathered log (a dict, or the JSON file :meth:`Log.save`
writes) into the profile report: measured against predicted, imbalance, idle time, the
scaling fits (``pympc report LOG.json``).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from time import perf_counter

FORMAT = "pympc-profile/1"
OUTSIDE = "(outside)"  # communication recorded outside any labelled superstep
OPEN = "(open)"        # the superstep still open when the log was gathered

# aggregate slots per label: count, w, w_max, comm, sync, sent, recv, h, h_max, kinds,
# patterns
_N, _W, _WMAX, _COMM, _SYNC, _SENT, _RECV, _H, _HMAX, _KINDS, _PATTERNS = range(11)


def _new_agg():
    return [0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, {}, {}]


class Log:
    """Local. A per-rank cost log of supersteps, aggregated per label.

    ``Log(comm=None)`` starts recording at once (construction is local; the default
    communicator, the world, is looked up when :meth:`gather` first needs it). Use
    ``with Log() as log:`` to make it the current log for the block (halo exchanges,
    reductions and BSP syncs inside record into it); outside any such block the module's
    default log (:func:`current`) records. :meth:`gather` and :meth:`save` are collective.
    """

    def __init__(self, comm=None):
        if comm is not None:
            from .runtime import get_comm  # a communicator given: MPI runs already

            comm = get_comm(comm)
        self._comm = comm
        self.t_start = perf_counter()
        self.labels: dict = {}
        self._t0 = self.t_start
        self._kinds: dict = {}
        self._patterns: dict = {}
        self._in_block = False

    @property
    def comm(self):
        """Local. The communicator :meth:`gather` and :meth:`save` use."""
        if self._comm is None:
            from .runtime import get_comm

            self._comm = get_comm(None)
        return self._comm

    # -- recording ---------------------------------------------------------------------
    def record(self, kind: str, sent: int, recv: int, seconds: float, pattern: str | None = None) -> None:
        """Local. Add one communication of ``kind`` (``sent``/``recv`` words) to the open
        superstep (what :func:`record_comm` does on the current log); a ``pattern`` (a
        halo exchange's shape, the halo plan's pattern, ``pympc.halo._pattern``) is also counted under
        ``"kind:pattern"``, for the report to predict it with that pattern's fit."""
        _count(self._kinds, kind, sent, recv, seconds)
        if pattern is not None:
            _count(self._patterns, f"{kind}:{pattern}", sent, recv, seconds)

    def end_superstep(self, label="superstep", sync: float = 0.0, t_end: float | None = None) -> None:
        """Local. Close the open superstep under ``label`` (``sync`` seconds of it were
        synchronisation) and open the next one; BSP.sync calls it."""
        t = perf_counter() if t_end is None else t_end
        agg = self.labels.get(label)
        if agg is None:
            agg = self.labels[label] = _new_agg()
        if self._kinds:
            return self._close_comm(agg, t, sync)
        self._add(agg, t, 0.0, sync, 0, 0)

    def end_bsp_superstep(self, label, sync: float, comm: float, sent: int, recv: int, t: float) -> None:
        """Local. :meth:`record` of a ``"bsp"`` communication and :meth:`end_superstep`
        in one call (what BSP.sync does at the end of a superstep with traffic)."""
        self.record("bsp", sent, recv, comm)
        self.end_superstep(label, sync, t)

    def _close_comm(self, agg, t, sync):
        kinds = self._kinds
        self._kinds = {}
        comm = 0.0
        sent = recv = 0
        _merge_counts(agg[_KINDS], kinds)
        for k in kinds.values():
            comm += k[3]
            sent += k[1]
            recv += k[2]
        if self._patterns:
            _merge_counts(agg[_PATTERNS], self._patterns)
            self._patterns = {}
        self._add(agg, t, comm, sync, sent, recv)

    def _add(self, agg, t, comm, sync, sent, recv):
        # one superstep ending at t into the label's aggregate; the next starts at t
        w = t - self._t0 - comm - sync
        self._t0 = t
        agg[_N] += 1
        agg[_W] += w
        if w > agg[_WMAX]:
            agg[_WMAX] = w
        agg[_COMM] += comm
        agg[_SYNC] += sync
        agg[_SENT] += sent
        agg[_RECV] += recv
        h = sent if sent > recv else recv
        agg[_H] += h
        if h > agg[_HMAX]:
            agg[_HMAX] = h

    @contextmanager
    def superstep(self, label="superstep"):
        """Local. ``with log.superstep("heat"): ...``: the block is one superstep under
        ``label`` (no synchronisation is added; communication inside is recorded).

        Communication recorded since the last superstep boundary goes under the label
        ``"(outside)"``; time without communication outside blocks is not logged. A block
        opened inside another belongs to the enclosing superstep (a preconditioner's
        supersteps inside a Krylov iteration count as that iteration's).
        """
        if self._in_block:
            yield self
            return
        if self._kinds:
            self.end_superstep(OUTSIDE)
        else:
            self._t0 = perf_counter()
        self._in_block = True
        try:
            yield self
        finally:
            self._in_block = False
        self.end_superstep(label)

    def reset(self) -> None:
        """Local. Forget everything recorded; the clock restarts."""
        self.__init__(self._comm)

    # -- current log ---------------------------------------------------------------------
    def __enter__(self):
        _stack.append(self)
        _set_current()
        return self

    def __exit__(self, *exc):
        if self in _stack:
            _stack.remove(self)
        _set_current()

    # -- output --------------------------------------------------------------------------
    def local(self) -> dict:
        """Local. This rank's figures: ``{"elapsed", "labels": {label: {...}}}``; the
        superstep still open, if it recorded communication, appears as ``"(open)"``."""
        labels = {str(k): _agg_dict(v) for k, v in self.labels.items()}
        if self._kinds:
            tmp = Log.__new__(Log)
            tmp.labels, tmp._t0, tmp._kinds = {}, self._t0, {k: list(v) for k, v in self._kinds.items()}
            tmp._patterns = {k: list(v) for k, v in self._patterns.items()}
            tmp.end_superstep(OPEN)
            labels[OPEN] = _agg_dict(tmp.labels[OPEN])
        return {"elapsed": perf_counter() - self.t_start, "labels": labels}

    def gather(self, root: int = 0) -> dict | None:
        """Collective. The log of every rank as one dict on ``root`` (``None`` elsewhere):
        per label, per-rank lists of every figure. ``root=None`` gives it to all ranks."""
        mine = self.local()
        parts = self.comm.allgather(mine) if root is None else self.comm.gather(mine, root=root)
        if parts is None:
            return None
        return merge(parts)

    def save(self, path, root: int = 0) -> dict | None:
        """Collective. Gather and write the log as JSON on ``root``; returns the dict there."""
        data = self.gather(root)
        if data is not None:
            with open(path, "w") as f:
                json.dump(data, f, indent=1)
        return data


def _count(table, key, sent, recv, seconds):
    # one communication into a superstep's [count, sent, recv, seconds] of ``key``
    k = table.get(key)
    if k is None:
        k = table[key] = [0, 0, 0, 0.0]
    k[0] += 1
    k[1] += sent
    k[2] += recv
    k[3] += seconds


def _merge_counts(into, new):
    # add per-kind (or per-pattern) [count, sent, recv, seconds] of one superstep into a
    # label's aggregate
    for key, k in new.items():
        a = into.get(key)
        if a is None:
            into[key] = k
        else:
            a[0] += k[0]
            a[1] += k[1]
            a[2] += k[2]
            a[3] += k[3]


def _counts_dict(d) -> dict:
    return {k: {"count": v[0], "sent": v[1], "recv": v[2], "seconds": v[3]} for k, v in d.items()}


def _agg_dict(a) -> dict:
    return {"count": a[_N], "w": a[_W], "w_max": a[_WMAX], "comm": a[_COMM], "sync": a[_SYNC],
            "sent": a[_SENT], "recv": a[_RECV], "h": a[_H], "h_max": a[_HMAX],
            "kinds": _counts_dict(a[_KINDS]), "patterns": _counts_dict(a[_PATTERNS] if len(a) > _PATTERNS else {})}


_FIELDS = ("count", "w", "w_max", "comm", "sync", "sent", "recv", "h", "h_max")


def merge(parts) -> dict:
    """Local. One gathered log from per-rank :meth:`Log.local` dicts (rank order)."""
    P = len(parts)
    order = []
    for p in parts:
        for lab in p["labels"]:
            if lab not in order:
                order.append(lab)
    labels = {}
    for lab in order:
        d = {f: [p["labels"].get(lab, {}).get(f, 0) for p in parts] for f in _FIELDS}
        d["kinds"] = _merge_per_rank(parts, lab, "kinds")
        d["patterns"] = _merge_per_rank(parts, lab, "patterns")
        labels[lab] = d
    return {"format": FORMAT, "ranks": P, "elapsed": max(p["elapsed"] for p in parts),
            "elapsed_per_rank": [p["elapsed"] for p in parts], "labels": labels}


def _merge_per_rank(parts, lab, what) -> dict:
    # a label's per-kind (or per-pattern) counts of every rank as per-rank lists
    P = len(parts)
    out = {}
    for r, p in enumerate(parts):
        for key, v in p["labels"].get(lab, {}).get(what, {}).items():
            k = out.setdefault(key, {f: [0] * P for f in ("count", "sent", "recv", "seconds")})
            for f in k:
                k[f][r] = v[f]
    return out


# ---------------------------------------------------------------------------------------
# the current log
# ---------------------------------------------------------------------------------------
_default = Log()
_stack: list = []
_current = _default


def _set_current():
    global _current
    _current = _stack[-1] if _stack else _default


def current() -> Log:
    """Local. The log that records now: the innermost ``with Log()``, else the default."""
    return _current


def record_comm(kind: str, sent: int, recv: int, seconds: float, pattern: str | None = None) -> None:
    """Local. Record a communication (``sent``/``recv`` words, ``seconds``) of ``kind``
    (``"halo"``, ``"reduce"``, ``"bsp"``, ...) into the current log's open superstep;
    ``pattern``: its shape, for the cost model (a halo exchange's,
    the halo plan's pattern, ``pympc.halo._pattern``: ``"rows"``, ``"cols"``, ``"box"``, ``"box/w4"``...)."""
    _current.record(kind, sent, recv, seconds, pattern)


def record_sync(label, t0: float, t1: float) -> None:
    """Local. Close the current log's open superstep under ``label``: a synchronisation
    from ``t0`` to ``t1`` and no communication of its own (an empty BSP sync).

    BSP.sync's empty path calls it on every superstep and its cost is the machine's ``l``
    (a fraction of a microsecond), so it updates a few slots of the label's aggregate
    here, in one call, instead of going through :meth:`Log.end_superstep`."""
    log = _current
    agg = log.labels.get(label)
    if agg is None or log._kinds:
        return log.end_superstep(label, t1 - t0, t1)
    w = t0 - log._t0
    log._t0 = t1
    agg[0] += 1           # _N
    agg[1] += w           # _W
    agg[4] += t1 - t0     # _SYNC
    if w > agg[2]:        # _WMAX
        agg[2] = w


def record_bsp_superstep(label, sync: float, comm: float, sent: int, recv: int, t: float) -> None:
    """Local. Close the current log's open superstep under ``label`` at ``t``, with a
    BSP data phase of ``comm`` seconds moving ``sent``/``recv`` words and ``sync``
    seconds of synchronisation (a BSP sync with traffic)."""
    _current.end_bsp_superstep(label, sync, comm, sent, recv, t)


def superstep(label="superstep"):
    """Local. ``with costlog.superstep("heat"):`` on the current log (:meth:`Log.superstep`)."""
    return _current.superstep(label)


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------
def load(path) -> dict:
    """Local. A gathered log from its JSON file (as a dict; no MPI is involved).
    :func:`pympc.bsp.report.summarise` checks its format."""
    with open(path) as f:
        return json.load(f)
