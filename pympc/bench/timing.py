"""Timing the workloads (:mod:`pympc.bench.workloads`): the computing rate ``r``,
h-relations back to back (bspbench) or each after a compute phase, the empty superstep
against ``MPI_Barrier``, and LogP-style message parameters between two ranks. Every
figure is timed to the slowest rank, or, after a compute phase, to the rank that waited
least (the critical path), as the profile report times a program's supersteps.
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from ..bsp.core import BSP
from ..bsp.report import summarise
from ..costlog import Log
from ..runtime import InputError, get_comm
from .fits import fit, fit_method
from .workloads import (METHODS, PATTERN_SIDES, PATTERNS, HaloRelation, HRelation, PatternRelation, Stream,
                        check_methods, default_compute_bytes, private_cache_bytes)


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


def _time_by_log(comm, label, superstep, iters: int) -> float:
    # One batch of ``iters`` supersteps (``superstep()`` each, labelled ``label``) under a
    # cost log, timed as the profile report times a program's supersteps: the rank that
    # waited least, communication + sync.
    comm.Barrier()
    with Log(comm) as log:
        for _ in range(iters):
            superstep()
        data = log.gather(root=None)
    row = next(r for r in summarise(data)["rows"] if r["label"] == label)
    return row["measured"] / iters


def _time_halo(halo: HaloRelation, h: int, iters: int, compute) -> float:
    # One batch of halo supersteps, timed by the cost log
    return _time_by_log(halo.comm, HaloRelation.LABEL, lambda: halo.run(h, compute), iters)


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
    one that computed longest: the critical path), as :func:`pympc.bsp.report.summarise`
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
    check_methods(methods)
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
            t = _time_halo(halo, hs[i], iters, stream) if m == "halo" else _time_batch(hr, m, hs[i], iters, stream)
            samples[m][i].append(t)
    finally:
        if hr is not None:
            hr.close()
        if halo is not None:
            halo.close()
    return {m: [float(np.median(s)) for s in samples[m]] for m in methods}


def _time_batch(hr: HRelation, method: str, h: int, iters: int, stream) -> float:
    # One batch of h-relation supersteps: back to back, timed to the slowest rank; or
    # each after a compute phase, timed from its end to the end of the superstep, on the
    # rank that waited least (the one that computed longest: the critical path).
    comm = hr.comm
    comm.Barrier()
    if stream is None:
        t0 = time.perf_counter()
        for _ in range(iters):
            hr.run(method, h)
        return comm.allreduce((time.perf_counter() - t0) / iters, op=MPI.MAX)
    dt = 0.0
    for _ in range(iters):
        stream()
        t0 = time.perf_counter()
        hr.run(method, h)
        dt += time.perf_counter() - t0
    return comm.allreduce(dt / iters, op=MPI.MIN)


#: Untimed supersteps (with their compute phase) on a grid :func:`time_patterns` has just
#: built, before its first timed batch; a grid it holds already gets one. On a new grid
#: (a new communicator, halo plan and datatypes) the first supersteps' exchanges cost
#: more: the row halo of a 2048² grid at 2 ranks measured 58 µs after one superstep on a
#: new grid, 49 after four, 47 on a grid kept between batches (the heat step's own grids:
#: 51), in one run of interleaved batches on machine D.
FRESH_WARMUP = 4


def _time_pattern(pr: PatternRelation, n: int, iters: int, compute) -> float:
    # One batch of a halo pattern's supersteps on the grid of side n, after untimed
    # supersteps of the same kind (compute phase included: the first timed exchange
    # finds the caches as the others do), FRESH_WARMUP of them on a new grid; timed by
    # the cost log as _time_halo times its own.
    for _ in range(1 if pr.holds(n) else FRESH_WARMUP):
        pr.run(n, compute)
    return _time_by_log(pr.comm, PatternRelation.LABEL, lambda: pr.run(n, compute), iters)


def time_patterns(names=tuple(PATTERNS), sides=PATTERN_SIDES, iters: int = 10, reps: int = 5, seed: int = 0,
                  comm=None, compute=0, between=None, every: int = 0, stores=None) -> dict:
    """Collective. The halo patterns ``names`` (of :data:`PATTERNS`), each on square grids
    of the given ``sides`` (:class:`PatternRelation`), timed as :func:`time_hrelations`
    times the ``"halo"`` method (after a compute phase of ``compute`` bytes, or a
    :class:`Stream`; ``between`` and ``every`` likewise), fitted to ``T(h) = g*h + l``
    over the words each side moves. ``reps`` rounds, each one batch of every (pattern,
    side) in a random order: the patterns interleaved, so that every fit (and the
    ``between`` batches of a program it is to predict) samples the same minutes of a
    shared machine; one grid is held at a time. Returns, per pattern key the cost log
    records (``"halo:cols"``...), ``{"name", "sides", "words", "times", "fit"}``; two
    names with one key (possible at some rank counts) keep the first."""
    comm = get_comm(comm)
    stream = compute if isinstance(compute, Stream) else Stream(compute) if compute > 0 else None
    rng = np.random.default_rng(seed)
    prs = []
    try:
        for name in names:
            prs.append(PatternRelation(name, sides, comm, stores))
            prs[-1].drop()  # one grid at a time (the constructor keeps its last)
        jobs = [(p, n) for p in range(len(prs)) for n in prs[p].sides]
        samples = [{n: [] for n in pr.sides} for pr in prs]
        n_batch, held = 0, None
        for _ in range(reps):
            for j in rng.permutation(len(jobs)).tolist():
                p, n = jobs[j]
                if between is not None and every > 0 and n_batch % every == 0:
                    between()
                n_batch += 1
                if held is not None and held != p:
                    prs[held].drop()
                held = p
                samples[p][n].append(_time_pattern(prs[p], n, iters, stream))
    finally:
        for pr in prs:
            pr.close()
    out = {}
    for pr, smp in zip(prs, samples):
        if pr.key in out:
            continue
        words = [pr.words[n] for n in pr.sides]
        times = [float(np.median(smp[n])) for n in pr.sides]
        out[pr.key] = {"name": pr.name, "sides": pr.sides, "words": words, "times": times, "fit": fit(words, times)}
    return out


def after_compute(hs, methods=("hpput", "raw", "halo"), compute: int | None = None, comm=None,
                  **kw) -> dict:
    """Collective. The h-relations of ``methods`` for every ``h`` in ``hs``, each
    superstep after a compute phase of ``compute`` bytes per rank (default
    :func:`default_compute_bytes`), fitted: ``stream_bytes``, ``stream_seconds`` (one
    compute phase), ``private_cache_bytes`` (:func:`private_cache_bytes`: the model
    predicts a superstep with these fits once its compute phase has streamed twice
    that, see :meth:`pympc.bsp.MachineParams.cold`), ``fit`` per method and the
    timings ``hrel``. ``kw`` goes to :func:`time_hrelations` (``iters``, ``reps``,
    ``seed``, ``between``, ``every``)."""
    comm = get_comm(comm)
    stream = Stream(default_compute_bytes(comm) if compute is None else compute)
    ct = time_hrelations(hs, methods, comm=comm, compute=stream, **kw)
    return {"stream_bytes": stream.nbytes, "stream_seconds": stream_seconds(stream, comm),
            "private_cache_bytes": private_cache_bytes(),
            "fit": {m: fit_method(m, hs, ct[m]) for m in methods}, "hrel": {"h": list(hs), **ct}}


def empty_sync(comm=None, iters: int = 2000, reps: int = 7) -> dict:
    """Collective. Seconds of an empty superstep (``BSP.sync`` with nothing to send)
    and of ``MPI_Barrier``, alternated batch by batch: medians over ``reps`` batches."""
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
    small = np.zeros(1)
    large = np.zeros(big // 8)
    res = {"latency": [], "overhead": [], "overhead_recv": [], "gap": [], "bandwidth": []}
    _pingpong(comm, small, 10)
    for _ in range(5):
        res["latency"].append(_pingpong(comm, small, reps))
        res["bandwidth"].append(big / _pingpong(comm, large, max(2, reps // 20)))
        og = _send_overhead_and_gap(comm, small, reps)
        orecv = _recv_overhead(comm, small, reps)
        if comm.Get_rank() == 0:
            res["overhead"].append(og[0])
            res["gap"].append(og[1])
            res["overhead_recv"].append(orecv)
    vals = {k: float(np.median(v)) if v else None for k, v in res.items()}
    vals = comm.bcast(vals, root=0)
    vals["gap_per_byte"] = 1.0 / vals["bandwidth"]
    vals["pair"] = [0, 1]
    return vals


def _pingpong(comm, buf, n) -> float:
    # half the round trip of buf between ranks 0 and 1, the mean of n
    me = comm.Get_rank()
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


def _send_overhead_and_gap(comm, small, reps):
    # rank 0 streams reps messages to rank 1, which has posted its receives: the time
    # per Isend call (overhead) and per message until the stream has arrived (gap);
    # (overhead, gap) on rank 0, None elsewhere
    me = comm.Get_rank()
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
        return (t1 - t0) / reps, (t2 - t0) / reps
    if me == 1:
        MPI.Request.Waitall(reqs)
        comm.Send(small, 0, 3)
    return None


def _recv_overhead(comm, small, reps):
    # the time of a Recv of a message already there, on rank 0 (None elsewhere)
    me = comm.Get_rank()
    if me == 1:
        for _ in range(reps):
            comm.Send(small, 0, 4)
    comm.Barrier()
    if me != 0:
        return None
    while not comm.Iprobe(1, 4):
        pass
    time.sleep(0.002)
    t0 = time.perf_counter()
    for _ in range(reps):
        comm.Recv(small, 1, 4)
    return (time.perf_counter() - t0) / reps
