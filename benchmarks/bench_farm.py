"""Task-farm benchmark: pympc.farm against mpi4py.futures.MPICommExecutor (the SPMD
executor of mpi4py, no Spawn) on the same tasks in the same run, and the ledger's cost.
Run under mpiexec; rank 0 prints one JSON object (``--json FILE`` writes it).

    mpiexec -n 2 python benchmarks/bench_farm.py [--tiny 10000] [--busy 2000] [--dir /tmp]

* tiny tasks: ``--tiny`` tasks of a few microseconds each (a sum of a 64-element
  array): throughput (tasks/s) of ``pympc.farm.Pool.map`` (guided chunks, a ledger
  record per task) against ``MPICommExecutor.map`` with its default ``chunksize=1`` and
  with ``chunksize = tasks / (4 x workers)``. Each figure is a whole ``with`` block
  (setting up included), from a barrier to the slowest rank's end; the median of
  ``--reps``. Target: the farm at least 1.5x MPICommExecutor at 2 ranks;
* skewed tasks: ``--busy`` tasks that compute (a fixed amount of arithmetic each, not a
  sleep) for log-normal durations, mean ``--mean-ms`` and sigma 1 of the log; efficiency
  = the sum of the tasks' own measured times / (ranks x wall time). Target: >= 0.95 at 2
  ranks. MPICommExecutor's efficiency on the same tasks is reported beside it (its master
  rank computes nothing);
* the ledger: the time of ``ledger.Writer.write`` per record (the records of a real
  tiny-task run, written again into a new file), the farm's tiny-task time with the
  records' writes replaced by nothing, and the ledger's size per 10,000 tasks.

Absolute times drift on a shared machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from mpi4py import MPI
from mpi4py.futures import MPICommExecutor

from common import emit, timed, versions
from pympc.farm import Pool
from pympc.farm import ledger as farm_ledger

comm = MPI.COMM_WORLD
SMALL = np.arange(64, dtype=np.float64)
WORK = {"per_second": 1.0}  # busy-loop iterations per second, measured on rank 0


def tiny(i):
    """A task of a few microseconds."""
    return float(SMALL.sum()) + i


def busy(seconds):
    """A task that computes (no sleep) for about ``seconds``; returns its own measured time."""
    t0 = time.perf_counter()
    x = 1.0
    for _ in range(int(seconds * WORK["per_second"])):
        x = x * 1.0000001 + 1e-9
    return time.perf_counter() - t0


def calibrate():
    """Collective. Busy-loop iterations per second (rank 0's, for every rank: the same work
    per task wherever it runs)."""
    rate = None
    if comm.Get_rank() == 0:
        WORK["per_second"] = 1e6
        rates = []
        for _ in range(5):
            rates.append(1e6 * 0.02 / busy(0.02))
        rate = float(np.median(rates))
    WORK["per_second"] = comm.bcast(rate, root=0)


def timed_block(fn, reps, setup=None):
    """Collective. ``fn()``'s time from a barrier to the slowest rank's end (the median
    over ``reps``, no warm-up: each block is a whole farm), with ``setup()`` before each."""
    return timed(fn, steps=1, reps=reps, comm=comm, warmup=0, setup=setup)


def new_store(base, name):
    """Collective. An empty store directory (removed first if there)."""
    path = os.path.join(base, name)
    if comm.Get_rank() == 0 and os.path.exists(path):
        shutil.rmtree(path)
    comm.Barrier()
    return path


def farm_map(f, items, store):
    with Pool(comm, store=store) as pool:
        return pool.map(f, items)


def executor_map(f, items, chunksize=1):
    """Collective. MPICommExecutor.map over ``items`` (the results on rank 0, else None)."""
    with MPICommExecutor(comm, root=0) as ex:
        if ex is not None:
            return list(ex.map(f, items, chunksize=chunksize))
    return None


def bench_tiny(n, reps, base):
    P = comm.Get_size()
    workers = max(1, P - 1)  # MPICommExecutor: every rank but the master (at 1 rank: a thread)
    chunk = max(1, n // (4 * workers))
    store = os.path.join(base, "tiny")
    reset = lambda: new_store(base, "tiny")  # noqa: E731
    out = {"tasks": n, "executor_chunksize": chunk}
    out["farm"] = timed_block(lambda: farm_map(tiny, range(n), store), reps, reset)
    ledger_dir = os.path.join(store, "ledger")
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(ledger_dir, "*")))
    out["ledger_bytes"] = comm.bcast(size if comm.Get_rank() == 0 else None, root=0)
    out["ledger_bytes_per_10k"] = out["ledger_bytes"] * 1e4 / n
    out["records"] = read_records(ledger_dir) if comm.Get_rank() == 0 else None
    out["executor"] = timed_block(lambda: executor_map(tiny, range(n)), reps)
    out["executor_chunked"] = timed_block(lambda: executor_map(tiny, range(n), chunk), reps)
    # the farm once more, its ledger records not written (the rest of the farm unchanged)
    real = farm_ledger.Writer.write
    farm_ledger.Writer.write = lambda self, recs: None
    try:
        out["farm_no_ledger_writes"] = timed_block(lambda: farm_map(tiny, range(n), store), reps, reset)
    finally:
        farm_ledger.Writer.write = real
    for key in ("farm", "executor", "executor_chunked", "farm_no_ledger_writes"):
        out[key]["tasks_per_s"] = n / out[key]["median"]
    return out


def read_records(ledger_dir):
    """Local. The records of a ledger's files, as dicts."""
    recs = []
    for path in sorted(glob.glob(os.path.join(ledger_dir, "*.jsonl"))):
        with open(path) as f:
            recs += [json.loads(line) for line in f]
    return recs


def writer_cost(recs, base):
    """Local (rank 0). Seconds per ``Writer.write`` of one record: the records of a real
    run written again, one call per record as the farm does, into a new file."""
    d = tempfile.mkdtemp(dir=base)
    w = farm_ledger.Writer(d, 1, 0)
    t0 = time.perf_counter()
    for r in recs:
        w.write([r])
    seconds = time.perf_counter() - t0
    w.close()
    shutil.rmtree(d)
    return {"records": len(recs), "seconds_per_record": seconds / max(1, len(recs))}


def bench_busy(n, mean_ms, base, with_executor):
    P = comm.Get_size()
    sigma = 1.0
    mu = math.log(mean_ms * 1e-3) - sigma ** 2 / 2  # the log-normal's mean is mean_ms
    durations = np.random.default_rng(15).lognormal(mu, sigma, n).tolist()
    out = {"tasks": n, "mean_ms": mean_ms, "sigma": sigma, "nominal_seconds": float(sum(durations)),
           "longest_ms": 1e3 * max(durations)}
    store = new_store(base, "busy")
    comm.Barrier()
    t0 = time.perf_counter()
    res = farm_map(busy, durations, store)
    wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    work = float(sum(res))
    out["farm"] = {"wall": wall, "task_seconds": work, "efficiency": work / (P * wall), "status": res.status}
    if with_executor:
        comm.Barrier()
        t0 = time.perf_counter()
        got = executor_map(busy, durations)
        wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        work = comm.bcast(float(sum(got)) if got is not None else None, root=0)
        out["executor"] = {"wall": wall, "task_seconds": work, "efficiency": work / (P * wall)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", type=int, default=10000, help="tiny tasks")
    ap.add_argument("--busy", type=int, default=2000, help="skewed busy tasks")
    ap.add_argument("--mean-ms", type=float, default=5.0, help="mean duration of a busy task")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each tiny-task figure (median)")
    ap.add_argument("--no-executor-busy", action="store_true",
                    help="skip MPICommExecutor on the skewed tasks (it takes ranks/(ranks-1) times longer)")
    ap.add_argument("--dir", default=None, help="where the farms' stores go (default: a new temp dir)")
    ap.add_argument("--json", help="write the results here (rank 0)")
    args = ap.parse_args(argv)
    P, rank = comm.Get_size(), comm.Get_rank()
    base = comm.bcast(tempfile.mkdtemp(prefix="pympc-bench-farm-", dir=args.dir) if rank == 0 else None, root=0)
    calibrate()
    res = {"ranks": P, "reps": args.reps, "busy_iterations_per_s": WORK["per_second"]}
    try:
        res["tiny"] = bench_tiny(args.tiny, args.reps, base)
        recs = res["tiny"].pop("records")
        res["ledger_write"] = comm.bcast(writer_cost(recs, base) if rank == 0 else None, root=0)
        res["busy"] = bench_busy(args.busy, args.mean_ms, base, not args.no_executor_busy)
    finally:
        comm.Barrier()
        if rank == 0:
            shutil.rmtree(base, ignore_errors=True)
    t = res["tiny"]
    res["ratios"] = {
        "farm_over_executor_throughput": t["farm"]["tasks_per_s"] / t["executor"]["tasks_per_s"],
        "farm_over_executor_chunked_throughput": t["farm"]["tasks_per_s"] / t["executor_chunked"]["tasks_per_s"],
        "busy_efficiency": res["busy"]["farm"]["efficiency"],
        "ledger_write_us_per_task": 1e6 * res["ledger_write"]["seconds_per_record"],
        "ledger_writes_in_farm_us_per_task": 1e6 * (t["farm"]["median"] - t["farm_no_ledger_writes"]["median"]) / t["tasks"],
    }
    res["versions"] = versions()
    if rank == 0:
        emit(res, args.json)
    return res


if __name__ == "__main__":
    main()
    sys.stdout.flush()
