"""Machine parameters of the current machine and rank count: the BSP computing rate
``r``, the cost per word ``g`` and the synchronisation cost ``l`` (measured the way
Bisseling's ``bspbench`` does), and LogP-style message latency, overhead, gap and
bandwidth. ``pympc bench`` runs :func:`measure` under mpiexec and writes JSON.

The BSP parameters come from **h-relations**: supersteps in which every rank sends and
receives exactly ``h`` words (8 bytes), spread over all ranks as bspbench does (word
``i`` of rank ``s`` goes to rank ``(s + 1 + i) mod P``, one put per destination). The
superstep time ``T(h)``, timed to the slowest rank, is measured for ``h = 0..H`` in a
random order and fitted to ``T(h) = g*h + l`` with the Theil-Sen estimator (the median
of pairwise slopes: robust to the outliers a shared machine produces), with diagnostics
(least-squares fit, R², residuals, outliers). ``g`` and ``l`` are reported in seconds and
in flops (times ``r``).

The same h-relations are timed through :meth:`BSP.hpput` (the reported ``g``, ``l``),
:meth:`BSP.put` (one copy more per word, in the put call), :meth:`BSP.send`, a raw
``MPI_Alltoallv`` of the same data with the counts known in advance (the reference) and
one ``MPI_Put`` per rank pair in a fence epoch (the RMA design option), and through the
decomposition layer (``halo``: :class:`HaloRelation`, a halo exchange and an empty sync,
timed by the cost log as the profile report times programs).

Each layer gets its own fit because the profile report predicts a superstep with the
parameters of the layer it communicates through (:func:`pympc.report.model_parameters`):
after a long compute phase, most of a small superstep's cost is fetching that layer's
code and data back into the emptied caches, which differs from layer to layer. Those
parameters are measured too (``after_compute``).
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time

import numpy as np
from mpi4py import MPI

from ..runtime import InputError, get_comm

FORMAT = "pympc-machine/1"
METHODS = ("hpput", "put", "send", "raw", "rma")
ALL = METHODS + ("halo",)  # with the decomposition layer's halo h-relation (HaloRelation)


def compute_rate(comm=None, n: int = 4096, reps: int = 200) -> float:
    """Collective. ``r``: flop/s of an in-cache numpy ``y += a*x`` (2 flops per element,
    two vector operations) of ``n`` doubles, the best of 5 batches of ``reps``, on the
    slowest rank (every rank runs at once)."""
    comm = get_comm(comm)
    rng = np.random.default_rng(comm.Get_rank())
    x, y = rng.random(n), rng.random(n)
    t = np.empty(n)
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            np.multiply(x, 1e-9, out=t)
            np.add(y, t, out=y)
        best = min(best, (time.perf_counter() - t0) / reps)
    return comm.allreduce(2 * n / best, op=MPI.MIN)


def counts(h: int, src: int, dst: int, P: int) -> int:
    """Local. Words rank ``src`` sends to rank ``dst`` in an h-relation (bspbench's
    spread: word ``i`` to rank ``(src + 1 + i) mod P``)."""
    return len(range((dst - src - 1) % P, h, P))


class HRelation:
    """Collective. The buffers and registrations for timing h-relations up to ``hmax``
    words with each method of :data:`METHODS`; :meth:`run` does one superstep.
    :meth:`close` frees the BSP object and the RMA window."""

    def __init__(self, hmax: int, comm=None):
        from ..bsp import BSP

        comm = get_comm(comm)
        self.comm, self.P, self.me = comm, comm.Get_size(), comm.Get_rank()
        self.cap = -(-hmax // self.P) + 1
        self.src = np.arange(hmax + 1, dtype=np.float64) + 1000 * self.me
        self.dst = np.zeros(self.P * self.cap)
        self.bsp = BSP(comm)
        self.reg = self.bsp.register(self.dst)
        self.bsp.sync("bench setup")
        self.win = MPI.Win.Create(self.dst, 8, comm=comm)
        self.win.Fence()
        self._plans = {}

    def plan(self, h: int):
        """Local. Per destination ``(rank, src start, count, offset there)`` and the
        Alltoallv counts/displacements for ``h``."""
        p = self._plans.get(h)
        if p is None:
            P, me, cap = self.P, self.me, self.cap
            sc = [counts(h, me, d, P) for d in range(P)]
            rc = [counts(h, s, me, P) for s in range(P)]
            sd = np.concatenate([[0], np.cumsum(sc)[:-1]]).astype(int).tolist()
            blocks = [(d, sd[d], sc[d], me * cap) for d in range(P) if sc[d]]
            p = self._plans[h] = (blocks, (sc, sd), (rc, [s * cap for s in range(P)]))
        return p

    def run(self, method: str, h: int) -> None:
        """Collective. One superstep of an h-relation through ``method``."""
        blocks, sspec, rspec = self.plan(h)
        bsp, src, reg = self.bsp, self.src, self.reg
        if method == "hpput":
            for d, s0, c, off in blocks:
                bsp.hpput(d, src[s0:s0 + c], reg, off)
            bsp.sync("h-relation")
        elif method == "put":
            for d, s0, c, off in blocks:
                bsp.put(d, src[s0:s0 + c], reg, off)
            bsp.sync("h-relation")
        elif method == "send":
            for d, s0, c, _ in blocks:
                bsp.send(d, 0, src[s0:s0 + c])
            bsp.sync("h-relation")
        elif method == "raw":
            self.comm.Alltoallv([src, sspec, MPI.DOUBLE], [self.dst, rspec, MPI.DOUBLE])
        elif method == "rma":
            for d, s0, c, off in blocks:
                self.win.Put([src[s0:s0 + c], MPI.DOUBLE], d, (off, c, MPI.DOUBLE))
            self.win.Fence()
        else:
            raise InputError(f"unknown h-relation method {method!r}; use one of {METHODS}")

    def check(self, method: str, h: int) -> bool:
        """Collective. Run one h-relation into a cleared buffer and verify every word."""
        self.dst[...] = -1
        self.win.Fence()  # no rank's puts may land before every rank has cleared its buffer
        self.run(method, h)
        ok = True
        if method == "send":
            got = {s: p for s, _, p in self.bsp.messages()}
            for s in range(self.P):
                c = counts(h, s, self.me, self.P)
                if c:
                    start = sum(counts(h, s, d, self.P) for d in range(self.me))
                    ok &= np.array_equal(got.get(s), np.arange(start, start + c) + 1000.0 * s)
        else:
            for s in range(self.P):
                c = counts(h, s, self.me, self.P)
                start = sum(counts(h, s, d, self.P) for d in range(self.me))
                ok &= np.array_equal(self.dst[s * self.cap:s * self.cap + c],
                                     np.arange(start, start + c) + 1000.0 * s)
        return bool(self.comm.allreduce(ok, op=MPI.LAND))

    def close(self) -> None:
        """Collective. Free the window and the BSP object."""
        self.win.Fence()
        self.win.Free()
        self.bsp.close()


def cache_bytes() -> int:
    """Local. The size of the last-level cache in bytes (from Linux's sysfs; 32 MiB when
    it cannot be read)."""
    import glob

    best = 0
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            txt = open(path).read().strip()
        except OSError:
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(txt[-1:], 1)
        try:
            best = max(best, int(txt.rstrip("KMG")) * mult)
        except ValueError:
            continue
    return best or (32 << 20)


class Stream:
    """Local. A compute phase like a stencil program's: one sweep of the compiled 2-D
    five-point (FTCS) kernel of :mod:`pympc.kernels` from one square grid into another,
    ``nbytes`` of memory traffic in all (half read, half written with ordinary stores).
    Run before a superstep, it leaves the caches, TLBs and branch predictors as a real
    compute phase leaves them for the communication after it.

    (A plain ``copyto`` of the same size, the first version, left the communication
    after it about 15% cheaper than a stencil sweep does: large copies write around the
    cache, so fewer dirty lines are left to evict. The stencil predicts the heat step
    within a few per cent at one rank, the copy 0.8.)"""

    def __init__(self, nbytes: int):
        from .. import kernels

        side = max(3, math.isqrt(max(0, int(nbytes)) // 16))
        self.nbytes = int(nbytes)
        self.src, self.dst = np.ones((side, side)), np.ones((side, side))
        self._sweep = lambda: kernels.ftcs_array(self.src, self.dst, 0.1)

    def __call__(self) -> None:
        self._sweep()


class HaloRelation:
    """Collective. h-relations of the decomposition layer, run the way a pympc stencil
    program runs its supersteps: ``update_halo`` of one array, the compute phase (if any),
    then an empty :meth:`BSP.sync`. For each ``h`` the array has 4 rows per rank and
    ``h/2`` columns (rounded up, at least one), split along axis 0 over all ranks and
    periodic along it: every rank sends its first and last owned row to its two
    neighbours (at one rank: two local row copies) and receives two rows, ``h`` words
    each way (exactly :func:`words` ``("halo", h)``). :meth:`close` frees it all."""

    LABEL = "halo h-relation"

    def __init__(self, hs, comm=None):
        from ..array import DistArray
        from ..bsp import BSP
        from ..grid import Decomposition

        comm = get_comm(comm)
        self.comm, self.P, self.me = comm, comm.Get_size(), comm.Get_rank()
        self.arrays = {}
        for h in sorted(set(int(x) for x in hs)):
            d = Decomposition((4 * self.P, words("halo", h) // 2), comm=comm, dims=(self.P, 1),
                              periodic=(True, False))
            a = DistArray(d)
            a.owned[...] = np.arange(d.lo[0], d.hi[0], dtype=float)[:, None]  # each row its global index
            self.arrays[h] = a
        self.bsp = BSP(comm)

    def run(self, h: int, compute=None) -> None:
        """Collective. One superstep: the halo exchange, ``compute()``, the sync."""
        from ..halo import update_halo

        update_halo(self.arrays[h])
        if compute is not None:
            compute()
        self.bsp.sync(self.LABEL)

    def check(self, h: int) -> bool:
        """Collective. Run one superstep on cleared ghosts and verify them: the ghost row
        above holds the previous rank's last row, the one below the next rank's first."""
        a = self.arrays[h]
        g = a.decomp.ghost
        a.data[:g] = a.data[-g:] = -1.0
        self.run(h)
        lo, hi, N = a.decomp.lo[0], a.decomp.hi[0], 4 * self.P
        cols = slice(g, a.data.shape[1] - g)
        ok = bool(np.all(a.data[g - 1, cols] == (lo - 1) % N) and np.all(a.data[-g, cols] == hi % N))
        return bool(self.comm.allreduce(ok, op=MPI.LAND))

    def close(self) -> None:
        """Collective. Free the arrays' decompositions and the BSP object."""
        self.bsp.close()
        for a in self.arrays.values():
            a.decomp.close()
        self.arrays = {}


def _check_methods(methods) -> None:
    for m in methods:
        if m not in ALL:
            raise InputError(f"unknown h-relation method {m!r}; use one of {ALL}")


def h_values(hmax: int, points: int) -> list:
    """Local. ``points`` h values spread evenly over ``0..hmax`` (rounded, distinct)."""
    return sorted(set(np.linspace(0, hmax, points).round().astype(int).tolist()))


def default_compute_bytes(comm=None) -> int:
    """Collective. The memory traffic per rank of the compute phase before the
    after-compute h-relations: the ranks of a node together stream twice its last-level
    cache."""
    node = get_comm(comm).Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return 2 * cache_bytes() // node.Get_size()
    finally:
        node.Free()


def words(method: str, h: int) -> int:
    """Local. The words each rank sends and receives in an h-relation of ``method``:
    ``h``, except the halo layer's, which moves whole rows of ``ceil(h/2)`` (at least one)
    words: ``h`` rounded up to even, at least 2."""
    return 2 * max(1, -(-int(h) // 2)) if method == "halo" else int(h)


def _time_halo(halo: HaloRelation, h: int, iters: int, compute) -> float:
    # One batch of halo supersteps under a cost log, timed as the profile report times a
    # program's supersteps: the rank that waited least, communication + sync.
    from ..costlog import Log
    from ..bsp.report import summarise

    halo.comm.Barrier()
    with Log(halo.comm) as log:
        for _ in range(iters):
            halo.run(h, compute)
        data = log.gather(root=None)
    row = next(r for r in summarise(data)["rows"] if r["label"] == HaloRelation.LABEL)
    return row["measured"] / iters


def time_hrelations(hs, methods=METHODS, iters: int = 10, reps: int = 5, seed: int = 0, comm=None,
                    compute: int = 0, between=None, every: int = 0) -> dict:
    """Collective. Seconds per superstep of h-relations for every ``h`` in ``hs`` and
    every method (of :data:`METHODS`, or ``"halo"``: :class:`HaloRelation`): the median
    over ``reps`` batches of ``iters`` supersteps. Batches run in a random order (from
    ``seed``, the same on every rank), so drift of a shared machine does not bias the
    slope.

    ``compute=0``: supersteps back to back (bspbench), each batch timed to the slowest
    rank. ``compute > 0`` (or a :class:`Stream`): every superstep follows a compute
    phase, a :class:`Stream` of ``compute`` bytes, which is not timed: the time from the end of a rank's compute phase
    to the end of its superstep, summed over the batch, of the rank that waited least (the
    one that computed longest: the critical path), as :func:`pympc.report.summarise`
    measures a program's supersteps. The ``"halo"`` method is always timed that way, by
    the cost log itself (its compute phase sits between the exchange and the sync, as in a
    stencil program).

    ``between``: a collective callable run before every ``every``-th batch, to measure
    the parameters in the same time window as a program (``bench_bsp`` interleaves the
    heat step this way)."""
    comm = get_comm(comm)
    hs = [int(h) for h in hs]
    if not hs or min(hs) < 0:
        raise InputError("h values must be >= 0")
    _check_methods(methods)
    stream = compute if isinstance(compute, Stream) else Stream(compute) if compute > 0 else None
    mpi = [m for m in methods if m != "halo"]
    hr = HRelation(max(hs), comm) if mpi else None
    halo = HaloRelation(hs, comm) if "halo" in methods else None
    try:
        for m in mpi:  # warm-up: plans, buffers, first-touch pages
            hr.run(m, max(hs))
            hr.run(m, 0)
        if halo is not None:
            for h in hs:
                halo.run(h)
        jobs = [(m, i) for m in methods for i in range(len(hs)) for _ in range(reps)]
        order = np.random.default_rng(seed).permutation(len(jobs))
        samples = {m: [[] for _ in hs] for m in methods}
        for n, k in enumerate(order):
            if between is not None and every > 0 and n % every == 0:
                between()
            m, i = jobs[k]
            h = hs[i]
            if m == "halo":
                samples[m][i].append(_time_halo(halo, h, iters, stream))
                continue
            comm.Barrier()
            if stream is None:
                t0 = time.perf_counter()
                for _ in range(iters):
                    hr.run(m, h)
                dt = (time.perf_counter() - t0) / iters
                samples[m][i].append(comm.allreduce(dt, op=MPI.MAX))
            else:
                dt = 0.0
                for _ in range(iters):
                    stream()
                    t0 = time.perf_counter()
                    hr.run(m, h)
                    dt += time.perf_counter() - t0
                samples[m][i].append(comm.allreduce(dt / iters, op=MPI.MIN))
    finally:
        if hr is not None:
            hr.close()
        if halo is not None:
            halo.close()
    return {m: [float(np.median(s)) for s in samples[m]] for m in methods}


def after_compute(hs, methods=("hpput", "raw", "halo"), compute: int | None = None, comm=None,
                  **kw) -> dict:
    """Collective. The h-relations of ``methods`` for every ``h`` in ``hs``, each
    superstep after a compute phase of ``compute`` bytes per rank (default
    :func:`default_compute_bytes`), fitted: ``stream_bytes``, ``stream_seconds`` (one
    compute phase), ``fit`` per method and the timings ``hrel``. ``kw`` goes to
    :func:`time_hrelations` (``iters``, ``reps``, ``seed``, ``between``, ``every``)."""
    comm = get_comm(comm)
    stream = Stream(default_compute_bytes(comm) if compute is None else compute)
    ct = time_hrelations(hs, methods, comm=comm, compute=stream, **kw)
    return {"stream_bytes": stream.nbytes, "stream_seconds": stream_seconds(stream, comm),
            "fit": {m: fit_method(m, hs, ct[m]) for m in methods}, "hrel": {"h": list(hs), **ct}}


def fit_method(method: str, hs, times) -> dict:
    """Local. :func:`fit` of ``times`` against the words ``method`` moves for each ``h``
    (:func:`words`)."""
    return fit([words(method, h) for h in hs], times)


def fit(hs, times) -> dict:
    """Local. Fit ``T(h) = g*h + l``: Theil-Sen (``g`` the median pairwise slope, its
    95% interval, ``l`` the median of ``T - g*h``) and, for comparison, least squares (``g_ls``, ``l_ls``, ``r2``); residuals of the
    robust fit relative to ``T`` (``max_rel_residual``) and the ``outliers`` (h values
    whose residual exceeds 3 scaled median absolute deviations)."""
    from scipy import stats

    h = np.asarray(hs, float)
    t = np.asarray(times, float)
    if h.size < 3 or len(set(h.tolist())) < 2:
        raise InputError("a fit of T(h) needs 3 or more points with 2 or more h values")
    g, l, lo, hi = stats.theilslopes(t, h, method="joint")
    res = t - (g * h + l)
    mad = 1.4826 * np.median(np.abs(res - np.median(res)))
    out = h[np.abs(res) > max(3 * mad, 1e-6 * float(np.median(np.abs(t))))]
    ls = stats.linregress(h, t)
    return {"g": float(g), "l": float(l), "g_low": float(lo), "g_high": float(hi),
            "g_ls": float(ls.slope), "l_ls": float(ls.intercept), "r2": float(ls.rvalue ** 2),
            "max_rel_residual": float(np.max(np.abs(res) / t)), "outliers": out.astype(int).tolist()}


def empty_sync(comm=None, iters: int = 2000, reps: int = 7) -> dict:
    """Collective. Seconds of an empty superstep (``BSP.sync`` with nothing to send)
    and of ``MPI_Barrier``, alternated batch by batch: medians over ``reps`` batches."""
    from ..bsp import BSP

    comm = get_comm(comm)
    bsp = BSP(comm)
    fns = {"sync": bsp.sync, "barrier": comm.Barrier}
    out = {k: [] for k in fns}
    try:
        for f in fns.values():
            for _ in range(100):
                f()
        for _ in range(reps):
            for k, f in fns.items():
                comm.Barrier()
                t0 = time.perf_counter()
                for _ in range(iters):
                    f()
                out[k].append(comm.allreduce((time.perf_counter() - t0) / iters, op=MPI.MAX))
    finally:
        bsp.close()
    return {"l_empty": float(np.median(out["sync"])), "barrier": float(np.median(out["barrier"])),
            "l_empty_all": out["sync"], "barrier_all": out["barrier"]}


def logp(comm=None, reps: int = 200, big: int = 1 << 20) -> dict | None:
    """Collective. LogP-style parameters between ranks 0 and 1 (``None`` on one rank):
    ``latency`` (half the round trip of 8 bytes), send ``overhead`` (an ``Isend`` call),
    receive overhead ``overhead_recv`` (a ``Recv`` of a message already there), ``gap``
    (time per message in a stream of 8-byte messages) and ``bandwidth`` (bytes/s of a
    ``big``-byte ping-pong), medians of 5 batches."""
    comm = get_comm(comm)
    if comm.Get_size() < 2:
        return None
    me = comm.Get_rank()
    small = np.zeros(1)
    large = np.zeros(big // 8)
    res = {"latency": [], "overhead": [], "overhead_recv": [], "gap": [], "bandwidth": []}

    def pingpong(buf, n):
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(n):
            if me == 0:
                comm.Send(buf, 1, 1)
                comm.Recv(buf, 1, 1)
            elif me == 1:
                comm.Recv(buf, 0, 1)
                comm.Send(buf, 0, 1)
        return (time.perf_counter() - t0) / n / 2

    pingpong(small, 10)
    for _ in range(5):
        res["latency"].append(pingpong(small, reps))
        res["bandwidth"].append(big / pingpong(large, max(2, reps // 20)))
        # send overhead and gap: rank 0 streams reps messages, rank 1 has posted receives
        bufs = np.zeros(reps)
        if me == 1:
            reqs = [comm.Irecv(bufs[i:i + 1], 0, 2) for i in range(reps)]
        comm.Barrier()
        if me == 0:
            t0 = time.perf_counter()
            reqs = [comm.Isend(small, 1, 2) for _ in range(reps)]
            t1 = time.perf_counter()
            MPI.Request.Waitall(reqs)
            comm.Recv(small, 1, 3)  # the stream has arrived
            t2 = time.perf_counter()
            res["overhead"].append((t1 - t0) / reps)
            res["gap"].append((t2 - t0) / reps)
        elif me == 1:
            MPI.Request.Waitall(reqs)
            comm.Send(small, 0, 3)
        # receive overhead: messages already arrived
        if me == 1:
            for _ in range(reps):
                comm.Send(small, 0, 4)
        comm.Barrier()
        if me == 0:
            while not comm.Iprobe(1, 4):
                pass
            time.sleep(0.002)
            t0 = time.perf_counter()
            for _ in range(reps):
                comm.Recv(small, 1, 4)
            res["overhead_recv"].append((time.perf_counter() - t0) / reps)
    vals = {k: float(np.median(v)) if v else None for k, v in res.items()}
    vals = comm.bcast(vals, root=0)
    vals["gap_per_byte"] = 1.0 / vals["bandwidth"]
    vals["pair"] = [0, 1]
    return vals


def stream_seconds(stream: Stream, comm, reps: int = 5) -> float:
    """Collective. Seconds of one :class:`Stream` pass, the median of ``reps``, on the
    slowest rank (every rank streaming at once, as in a superstep)."""
    ts = []
    stream()
    for _ in range(reps):
        comm.Barrier()
        t0 = time.perf_counter()
        stream()
        ts.append(time.perf_counter() - t0)
    return float(comm.allreduce(float(np.median(ts)), op=MPI.MAX))


def measure(comm=None, hmax: int = 16384, points: int = 17, reps: int = 5, iters: int = 10,
            seed: int = 0, methods=ALL, with_logp: bool = True, compute: int | None = None) -> dict:
    """Collective. Everything ``pympc bench`` reports, as a dict (the same on every
    rank): ``r``, ``g``, ``l`` (from the hpput h-relations), ``g_flops``, ``l_flops``,
    ``l_empty`` and ``barrier``, the fit of every method, the raw timings, the ratios
    against the raw Alltoallv and the barrier, and ``logp``.

    ``after_compute``: the hpput, raw and halo h-relations again, each superstep after a compute
    phase streaming ``compute`` bytes per rank (default: twice the last-level cache shared
    among the node's ranks; 0 skips it):
    ``stream_bytes``, ``stream_seconds``, ``fit`` per method and the timings. The
    profile report predicts supersteps with long compute phases from these
    (:func:`pympc.report.model_parameters`)."""
    comm = get_comm(comm)
    if hmax < 2 or points < 3:
        raise InputError(f"need hmax >= 2 and points >= 3, got hmax={hmax}, points={points}")
    _check_methods(methods)
    hs = h_values(hmax, points)
    P = comm.Get_size()
    hr, halo = HRelation(max(hs), comm), HaloRelation([1, max(hs)], comm)
    try:
        checked = {m: hr.check(m, max(hs)) and hr.check(m, 1) for m in methods if m != "halo"}
        if "halo" in methods:
            checked["halo"] = halo.check(max(hs)) and halo.check(1)
    finally:
        hr.close()
        halo.close()
    if not all(checked.values()):
        raise RuntimeError(f"h-relation data check failed: {checked}")
    r = compute_rate(comm)
    times = time_hrelations(hs, methods, iters=iters, reps=reps, seed=seed, comm=comm)
    fits = {m: fit_method(m, hs, times[m]) for m in methods}
    es = empty_sync(comm)
    main = fits.get("hpput") or fits[methods[0]]
    out = {"format": FORMAT, "ranks": P, "r": r, "g": main["g"], "l": main["l"],
           "g_flops": main["g"] * r, "l_flops": main["l"] * r,
           "l_empty": es["l_empty"], "barrier": es["barrier"],
           "g_method": "hpput" if "hpput" in fits else methods[0],
           "fit": fits, "hrel": {"h": hs, **times},
           "empty": {"l_empty_all": es["l_empty_all"], "barrier_all": es["barrier_all"]},
           "settings": {"hmax": hmax, "points": points, "reps": reps, "iters": iters, "seed": seed}}
    ratios = {"l_empty_over_barrier": es["l_empty"] / es["barrier"]}
    if "raw" in fits:
        for m in methods:
            if m != "raw":
                ratios[f"g_{m}_over_raw"] = fits[m]["g"] / fits["raw"]["g"]
    out["ratios"] = ratios
    if compute is None or compute > 0:
        cold_methods = [m for m in ("hpput", "raw", "halo") if m in methods]
        out["after_compute"] = after_compute(hs, cold_methods, compute, comm, iters=iters, reps=reps,
                                             seed=seed + 1)
    out["logp"] = logp(comm) if with_logp else None
    out["versions"] = {"python": platform.python_version(), "numpy": np.__version__,
                       "mpi4py": __import__("mpi4py").__version__,
                       "mpi": " ".join(MPI.Get_library_version().split("\n")[0].split())}
    return out


def summary(res: dict) -> str:
    """Local. A few lines that say what :func:`measure` found."""
    us = 1e6
    lines = [f"pympc bench: {res['ranks']} rank(s)",
             f"  r = {res['r'] / 1e9:.3g} Gflop/s (numpy axpy, in cache)",
             f"  g = {res['g'] * 1e9:.3g} ns/word ({res['g_flops']:.3g} flops), "
             f"l = {res['l'] * us:.3g} µs ({res['l_flops']:.3g} flops)  [BSP h-relations, {res['g_method']}]",
             f"  empty sync {res['l_empty'] * us:.3g} µs, MPI_Barrier {res['barrier'] * us:.3g} µs "
             f"(ratio {res['ratios']['l_empty_over_barrier']:.2f})"]
    for m, f in res["fit"].items():
        lines.append(f"  {m:>6}: g = {f['g'] * 1e9:8.3g} ns/word  l = {f['l'] * us:8.3g} µs  "
                     f"R² {f['r2']:.3f}  max residual {f['max_rel_residual']:.0%}  outliers {f['outliers']}")
    for k, v in res["ratios"].items():
        lines.append(f"  {k} = {v:.3g}")
    ac = res.get("after_compute")
    if ac:
        lines.append(f"  after a compute phase streaming {ac['stream_bytes'] / 2**20:.0f} MiB "
                     f"({ac['stream_seconds'] * 1e3:.3g} ms), the superstep alone:")
        for m, f in ac["fit"].items():
            lines.append(f"  {m:>6}: g = {f['g'] * 1e9:8.3g} ns/word  l = {f['l'] * us:8.3g} µs  "
                         f"R² {f['r2']:.3f}  max residual {f['max_rel_residual']:.0%}")
    main = res["fit"][res["g_method"]]
    if main["g"] <= 0 or main["r2"] < 0.8:
        lines.append(f"  warning: T(h) is far from a line (g = {main['g']:.3g}, R² {main['r2']:.2f}): "
                     "use a larger --hmax and more --reps, on a quiet machine")
    lp = res.get("logp")
    if lp:
        lines.append(f"  LogP (ranks 0-1): latency {lp['latency'] * us:.3g} µs, overhead send "
                     f"{lp['overhead'] * us:.3g} µs / recv {lp['overhead_recv'] * us:.3g} µs, gap "
                     f"{lp['gap'] * us:.3g} µs/message, bandwidth {lp['bandwidth'] / 1e9:.3g} GB/s")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Collective. ``pympc bench [--json out.json] [--hmax H] [--points K] [--reps R]``
    under mpiexec: measure and print the machine parameters (rank 0), write JSON."""
    import argparse

    ap = argparse.ArgumentParser(prog="pympc bench", description="measure r, g, l and LogP parameters")
    ap.add_argument("--json", help="write the results here (rank 0)")
    ap.add_argument("--hmax", type=int, default=16384, help="largest h (words per rank) [16384]")
    ap.add_argument("--points", type=int, default=17, help="h values from 0 to hmax [17]")
    ap.add_argument("--reps", type=int, default=5, help="batches per h and method [5]")
    ap.add_argument("--iters", type=int, default=10, help="supersteps per batch [10]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random order [0]")
    ap.add_argument("--no-logp", action="store_true", help="skip the LogP measurements")
    ap.add_argument("--compute", type=int, default=None,
                    help="bytes per rank a compute phase streams before each after-compute "
                         "superstep [twice the last-level cache / ranks on the node]; 0 skips those")
    args = ap.parse_args(argv)
    res = measure(hmax=args.hmax, points=args.points, reps=args.reps, iters=args.iters, seed=args.seed,
                  with_logp=not args.no_logp, compute=args.compute)
    if MPI.COMM_WORLD.Get_rank() == 0:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
        print(summary(res) + (f"\n  written to {args.json}" if args.json else ""))
        sys.stdout.flush()
    return 0
