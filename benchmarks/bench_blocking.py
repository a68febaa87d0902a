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

import numpy as np
from mpi4py import MPI

import pympc
from bench_decomp import copy_bandwidth
from common import emit, timed, versions
from pympc import costlog, halo
from pympc.kernels.blocking import DEFAULT_TILES
from pympc.kernels.loops import ftcs_array
from solvers.heat import BLOCKED_STEPS, Heat

comm = MPI.COMM_WORLD


def heat_rate(decomp, k, tile, steps, reps):
    """Collective. Mcell/s of ``steps`` heat steps taken ``k`` per exchange (the solver's
    own chunks: advance_steps), and the messages per step: the halo exchanges per step
    the cost log recorded times the messages of one exchange (its plan's count)."""
    heat = Heat(decomp, alpha=1.0, u0=1.0, steps_per_exchange=k, tile=tile)

    def run():
        for _ in range(steps // k):
            heat.advance_steps(k) if k > 1 else heat.advance()
    t = timed(run, 1, reps)
    with costlog.Log() as log:
        run()
    exchanges = sum(lab["kinds"].get("halo", {}).get("count", 0) for lab in log.local()["labels"].values())
    plan = halo._plan_for((heat.u,), "box" if k > 1 else None, 1 if k == 1 else k, "bench")
    t["Mcells"] = float(np.prod(decomp.shape)) * steps / t["median"] / 1e6
    t["k"], t["tile"] = k, "whole block" if tile is False else tile
    t["exchanges_per_step"] = exchanges / steps
    t["messages_per_step"] = exchanges / steps * plan.messages
    return t


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
    ap.add_argument("--steps", type=int, default=48, help="steps per batch (a multiple of every k)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ks", default="1,2,4,8,16")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    n, steps, reps, P = args.size, args.steps, args.reps, comm.Get_size()
    res = {"ranks": P, "size": n, "size3": args.size3, "steps": steps, "reps": reps}
    res["roofline_Mcells"] = copy_bandwidth(max(8 << 20, (160 << 20) // P), reps) / 16 / 1e6
    d = pympc.Decomposition((n, n), dims=MPI.Compute_dims(P, 2), periodic=True)
    k = BLOCKED_STEPS
    res["one_step"] = heat_rate(d, 1, None, steps, reps)
    res["deep_halo"] = heat_rate(d, k, False, steps, reps)
    res["blocked"] = heat_rate(d, k, None, steps, reps)
    res["blocked_by_k"] = [heat_rate(d, kk, None, steps, reps) for kk in map(int, args.ks.split(","))]
    res["deep_by_k"] = [heat_rate(d, kk, False, steps, reps) for kk in map(int, args.ks.split(","))]
    d.close()
    tile = DEFAULT_TILES[2]
    res["in_cache_shape"] = [tile[0] + 2 * (k + 1), tile[1] + 2 * (k + 1)]
    res["in_cache_Mcells"] = in_cache(tuple(res["in_cache_shape"]), reps)
    m = args.size3
    d3 = pympc.Decomposition((m, m, m), dims=MPI.Compute_dims(P, 3), periodic=True)
    res["one_step_3d"] = heat_rate(d3, 1, None, 8, reps)
    res["blocked_3d"] = heat_rate(d3, 4, None, 8, reps)
    d3.close()
    roof = res["roofline_Mcells"]
    res["ratios"] = {
        "one_step_over_roofline": res["one_step"]["Mcells"] / roof,
        "deep_halo_over_roofline": res["deep_halo"]["Mcells"] / roof,
        "blocked_over_roofline": res["blocked"]["Mcells"] / roof,
        "in_cache_over_roofline": res["in_cache_Mcells"] / roof,
        "messages_one_step_over_deep": (res["one_step"]["messages_per_step"]
                                        / max(res["deep_halo"]["messages_per_step"], 1e-300)),
        "blocked_3d_over_one_step_3d": res["blocked_3d"]["Mcells"] / res["one_step_3d"]["Mcells"],
    }
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)


if __name__ == "__main__":
    main()
