"""Deep halos and temporal blocking: the heat solver's step on SIZE² (periodic) one step
per exchange, k steps per exchange as whole-block sweeps (deep halo), and k steps per
exchange tile by tile in cache (temporal blocking), each in Mcell/s and as a ratio to
the copy-bandwidth roofline measured in the same run; Mcell/s against k; messages per
step from the cost log; the FTCS step on a block that stays in cache (the compute
ceiling any blocking meets); and a 3-D grid, where the default rule keeps one step.

    mpiexec -n 2 python benchmarks/bench_blocking.py --size 4096
"""

from __future__ import annotations

import argparse
from time import perf_counter

import numpy as np
from mpi4py import MPI

import pympc
from common import emit, timed, versions
from pympc import costlog, halo
from pympc.kernels.blocking import DEFAULT_TILES
from pympc.kernels.stencils import ftcs_array
from solvers.heat import BLOCKED_STEPS, Heat

comm = MPI.COMM_WORLD


def heat_case(decomp, k, tile, steps):
    """Collective. ``(run, facts)``: ``run()`` takes ``steps`` heat steps ``k`` per exchange
    (the solver's own chunks: advance_steps) after two warm-up runs; ``facts``: ``k``, the
    tile, and the halo exchanges and messages per step (the exchanges the cost log
    recorded in one run, times the messages of one exchange: its plan's count)."""
    if steps % k:
        raise SystemExit(f"--steps {steps} is not a multiple of k = {k}: the cases would take different step counts")
    heat = Heat(decomp, alpha=1.0, u0=1.0, steps_per_exchange=k, tile=tile)

    def run():
        for _ in range(steps // k):
            heat.advance_steps(k) if k > 1 else heat.advance()
    run()
    with costlog.Log() as log:
        run()
    exchanges = sum(lab["kinds"].get("halo", {}).get("count", 0) for lab in log.local()["labels"].values())
    plan = halo._plan_for((heat.u,), "box" if k > 1 else None, 1 if k == 1 else k, "bench")
    return run, {"k": k, "tile": "whole block" if tile is False else tile or list(DEFAULT_TILES[decomp.ndim]),
                 "exchanges_per_step": exchanges / steps, "messages_per_step": exchanges / steps * plan.messages}


def interleaved(cases, reps):
    """Collective. Seconds of each case's ``run()`` in each of ``reps`` rounds, every case
    once per round in an order rotated each round (so a disturbance of the machine hits
    the cases alike), each timed from a barrier to the slowest rank."""
    names = list(cases)
    times = {name: [] for name in names}
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            comm.Barrier()
            t0 = perf_counter()
            cases[name]()
            times[name].append(comm.allreduce(perf_counter() - t0, op=MPI.MAX))
    return times


def rates(times, cells, roof):
    """Local. Per case: median Mcell/s, and the median over rounds of its Mcell/s over the
    same round's roofline (paired ratios)."""
    out = {}
    for name, ts in times.items():
        m = [cells / t / 1e6 for t in ts]
        out[name] = {"Mcells": float(np.median(m)), "over_roofline": float(np.median(np.array(m) / roof)),
                     "seconds": ts}
    return out


def in_cache(shape, reps):
    """Collective. Mcell/s of one FTCS step on a block of ``shape`` (a default tile with
    its margins: what the blocked kernel sweeps), repeated on data already in cache, on
    every rank at once (summed): the compute ceiling of temporal blocking."""
    a = np.random.default_rng(1).random(shape)
    b = a.copy()
    inner = max(1, int(5e7 // a.size))

    def run():
        for _ in range(inner):
            ftcs_array(a, b, 0.1)
            ftcs_array(b, a, 0.1)
    t = timed(run, 1, reps)
    return (shape[0] - 2) * (shape[1] - 2) * 2 * inner * comm.Get_size() / t["median"] / 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--size3", type=int, default=256, help="the 3-D grid per axis")
    ap.add_argument("--steps", type=int, default=96, help="steps per batch (a multiple of every k)")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--ks", default="1,2,4,8,16,24,32")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    n, steps, reps, P = args.size, args.steps, args.reps, comm.Get_size()
    res = {"ranks": P, "size": n, "size3": args.size3, "steps": steps, "reps": reps}
    a = np.ones(max(8 << 20, (160 << 20) // P) // 8)
    b = np.empty_like(a)
    np.copyto(b, a)  # its pages touched: the timed copies move data, not page faults
    d = pympc.Decomposition((n, n), dims=MPI.Compute_dims(P, 2), periodic=True)
    ks = [int(x) for x in args.ks.split(",") if int(x) > 1]
    cases, facts = {"copy": lambda: np.copyto(b, a)}, {}
    for name, k, tile in ([("one_step", 1, None)] + [(f"blocked_{k}", k, None) for k in ks]
                          + [(f"deep_{k}", k, False) for k in ks]):
        cases[name], facts[name] = heat_case(d, k, tile, steps)
    times = interleaved(cases, reps)
    roof = np.array([2 * a.nbytes * P / t / 16 / 1e6 for t in times.pop("copy")])
    got = rates(times, n * n * steps, roof)
    for name in got:
        got[name].update(facts[name])
    res["roofline_Mcells"] = float(np.median(roof))
    res["roofline_by_round"] = roof.tolist()
    k = BLOCKED_STEPS
    res["one_step"], res["blocked"], res["deep_halo"] = got["one_step"], got[f"blocked_{k}"], got[f"deep_{k}"]
    res["blocked_by_k"] = [got["one_step"]] + [got[f"blocked_{k}"] for k in ks]
    res["deep_by_k"] = [got["one_step"]] + [got[f"deep_{k}"] for k in ks]
    d.close()
    # a ring's worth of rows of the block's width: what the 2-D wavefront sweeps
    res["in_cache_shape"] = [6 * (k - 1), min(DEFAULT_TILES[2][1], n) + 2 * (k + 1)]
    res["in_cache_Mcells"] = in_cache(tuple(res["in_cache_shape"]), reps)
    m = args.size3
    d3 = pympc.Decomposition((m, m, m), dims=MPI.Compute_dims(P, 3), periodic=True)
    cases3 = {"one_step_3d": heat_case(d3, 1, None, 8)[0], "blocked_3d": heat_case(d3, 4, None, 8)[0]}
    res.update(rates(interleaved(cases3, reps), m ** 3 * 8, np.ones(reps)))
    d3.close()
    res["ratios"] = {
        "one_step_over_roofline": res["one_step"]["over_roofline"],
        "deep_halo_over_roofline": res["deep_halo"]["over_roofline"],
        "blocked_over_roofline": res["blocked"]["over_roofline"],
        "in_cache_over_roofline": res["in_cache_Mcells"] / res["roofline_Mcells"],
        "messages_one_step_over_deep": (res["one_step"]["messages_per_step"]
                                        / max(res["deep_halo"]["messages_per_step"], 1e-300)),
        "blocked_3d_over_one_step_3d": res["blocked_3d"]["Mcells"] / res["one_step_3d"]["Mcells"],
    }
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)


if __name__ == "__main__":
    main()
