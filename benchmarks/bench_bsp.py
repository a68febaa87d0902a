"""BSP-layer benchmark: the cost of pympc's superstep against plain MPI, and the BSP cost
model against measurement, all in one run. Run under mpiexec; rank 0 prints one JSON
object (``--json FILE`` writes it).

    mpiexec -n 2 python benchmarks/bench_bsp.py

* ``l``: an empty superstep (``BSP.sync`` with nothing queued) against ``MPI_Barrier``
  (target: at most 2x);
* ``g``: the cost per word of h-relations (every rank sends and receives h words,
  h = 0..H, random order, Theil-Sen fit of T(h) = g*h + l) through ``BSP.hpput``,
  ``BSP.put`` and ``BSP.send``, against a raw ``MPI_Alltoallv`` of the same data with
  the counts known (target: hpput at most 1.2x) and one ``MPI_Put`` per rank pair in a
  fence epoch (the RMA design option);
* the heat step (``update_halo`` + the compiled FTCS kernel + ``BSP.sync`` per step, on
  a ``--size``² grid) periodic along axis 0 (row halos), periodic on both axes (strided
  column copies too) and with deep halos (``--deep``: ghost width k, one box exchange of
  width k and k FTCS updates of the owned region per superstep, k = 2, 4, 8): the
  predicted communication cost ``g*h + l`` of its supersteps against the measured
  communication + sync time, the median over batches of their ratio (target: within
  20% for one and both periodic axes and k = 4). ``g`` and ``l`` are the ones the profile
  report picks: the fit of the halo pattern each superstep ran (``rows``, ``cols``,
  ``box``, ``box/w2``, ``box/w4``, ``box/w8``, each measured on square grids of its own
  shape near ``--size``, :func:`pympc.bench.time_patterns`), after a compute phase (sweeps
  of the pattern's grid with the heat step's own 2-D loop, :func:`program_stores`). The
  heat batches run interleaved with those pattern batches, so that model and program
  see the same minutes of a shared machine. The ratio with the single row-halo fit (the
  model before the pattern fits), the raw ``MPI_Alltoallv`` fit and bspbench's
  back-to-back hpput fit are reported for comparison.

Ratios are what to compare; absolute times drift between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from mpi4py import MPI

import pympc
from common import emit, versions
from pympc import bench, costlog, kernels
from pympc.bsp import BSP, report
from pympc.bsp.model import MachineParams

comm = MPI.COMM_WORLD
R = 0.2


class Heat:
    """Collective. The heat step on a ``n``² grid (``update_halo`` + the compiled FTCS
    kernel + ``BSP.sync`` per superstep): :meth:`batch` profiles ``steps`` supersteps and
    keeps the gathered log; :meth:`result` summarises the batches with a machine model."""

    def __init__(self, n, steps, periodic, k=0):
        # k > 0: the deep-halo step, ghost width k, one box exchange of width k per
        # superstep and k FTCS updates of the owned region (the communication is the
        # deep-halo path's; its arithmetic is not checked here)
        P = comm.Get_size()
        self.d = pympc.Decomposition((n, n), dims=MPI.Compute_dims(P, 2), periodic=periodic, ghost=max(1, k),
                                     stencil="box" if k else "star")
        self.state = [pympc.DistArray(self.d), pympc.DistArray(self.d)]
        self.state[0].fill(1.0)
        self.steps, self.periodic, self.k, self.logs = steps, periodic, k, []
        self.bsp = BSP(comm)
        for _ in range(3):
            self.step()  # warm-up: plan built, kernel compiled

    def step(self):
        if self.k:
            pympc.update_halo(self.state[0], stencil="box", width=self.k)
        else:
            pympc.update_halo(self.state[0])
        for _ in range(max(1, self.k)):
            kernels.heat_step(self.state[0], self.state[1], R)
            self.state.reverse()
        self.bsp.sync("heat")

    def batch(self):
        # one superstep untimed first: the batches run between other programs' (the
        # h-relations, the pattern fits, the other heat runs), and a program's supersteps
        # follow each other; the pattern fits skip their first superstep alike
        self.step()
        comm.Barrier()
        with costlog.Log(comm) as log:
            for _ in range(self.steps):
                self.step()
            self.logs.append(log.gather(root=None))

    def result(self, mach, models):
        """Local. The batch with the median measured communication + sync: its h, steps,
        measured, predicted with the parameters the report picks from ``mach``, and the
        ratio with each alternative model of ``models`` (name -> MachineParams)."""
        runs = []
        for data in self.logs:
            # the bench reports what its own fits predict, even a noisy one below zero
            # (tiny runs); pympc report itself predicts nothing from such a fit
            row = {r["label"]: r for r in report.summarise(data, mach, allow_unphysical=True)["rows"]}["heat"]
            for name, m in models.items():
                row[f"ratio_{name}"] = {r["label"]: r for r in report.summarise(
                    data, m, allow_unphysical=True)["rows"]}["heat"]["ratio"]
            runs.append(row)
        runs.sort(key=lambda r: r["measured"])
        best = runs[len(runs) // 2]
        keep = ("steps", "h", "w_max", "w_imbalance", "measured", "comm", "sync", "predicted", "ratio",
                "idle_fraction", "model", "patterns") + tuple(f"ratio_{name}" for name in models)
        out = {k: best[k] for k in keep}
        out["batches"] = len(runs)
        out["ratios_all"] = sorted(r["ratio"] for r in runs)
        # the figure: the median over batches of predicted / measured
        out["ratio_median"] = float(np.median(out["ratios_all"]))
        out["k"] = self.k
        out["dims"] = list(self.d.dims)
        out["periodic"] = list(self.periodic)
        return out

    def close(self):
        self.bsp.close()
        self.d.close()


def program_stores(heat, limit=200):
    """Collective. The 2-D loop (a name of :data:`pympc.kernels.LOOPS`) ``heat_step`` runs
    on ``heat``'s grid on this rank, once ``auto`` has chosen it (the heat step runs until
    every rank's trial is over, at most ``limit`` steps): the pattern fits sweep their
    grids with it. Their sides lie in other size classes, where ``auto`` could choose
    another loop, and the stores of a compute phase move the exchange after it up to 2x
    (docs/bsp.md)."""
    from pympc.kernels import streaming

    d, g = heat.d, heat.d.ghost
    args = (g, g + d.local_shape[0], g, g + d.local_shape[1], R, R)
    for _ in range(limit):
        name = streaming.chosen(heat.state[0].data, heat.state[1].data, args)
        if comm.allreduce(name is not None, op=MPI.LAND):
            return name
        heat.step()
    raise SystemExit(f"bench_bsp: heat_step's loop not chosen after {limit} steps")


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048, help="heat grid size (n x n)")
    ap.add_argument("--steps", type=int, default=10, help="heat supersteps per batch")
    ap.add_argument("--heat-reps", type=int, default=31,
                    help="heat batches (many short ones: the median batch is robust to the "
                         "millisecond stalls a shared machine inserts)")
    ap.add_argument("--reps", type=int, default=11, help="batches (h-relations: per h and method)")
    ap.add_argument("--hmax", type=int, default=65536, help="largest h of the h-relations (words)")
    ap.add_argument("--points", type=int, default=17, help="h values from 0 to hmax")
    ap.add_argument("--cold-hmax", type=int, default=16384,
                    help="largest h of the h-relations after a compute phase (pympc bench's default)")
    ap.add_argument("--iters", type=int, default=10, help="supersteps per h-relation batch")
    ap.add_argument("--deep", type=lambda s: [int(x) for x in s.split(",") if x], default=[2, 4, 8],
                    help="ghost widths k of the deep-halo heat runs (one exchange per k updates)")
    ap.add_argument("--sides", type=lambda s: [int(x) for x in s.split(",") if x], default=None,
                    help="grid sides of the halo pattern fits [0.75, 0.875, 1.125 and 1.25 times --size: "
                         "T(h) of a strided pattern bends upwards with the grid, so fit near the "
                         "program's size, as pympc bench's --hmax near its h]")
    ap.add_argument("--pattern-reps", type=int, default=21,
                    help="batches per grid side of the halo pattern fits (their h span is narrow: "
                         "the slope needs more batches than the h-relations')")
    ap.add_argument("--json", help="write the results here (rank 0)")
    return ap.parse_args(argv)


def _alternatives(mach, fits, after, P):
    # the models the heat rows are also predicted with, for comparison: without the halo
    # layer's own fits (raw MPI after compute), with the one row-halo fit and no pattern
    # fits (the model before them), and bspbench's back-to-back hpput g and l alone
    no_halo = dataclasses.replace(
        mach, fit={k: v for k, v in fits.items() if not k.startswith("halo")},
        after_compute={**after, "fit": {k: v for k, v in after["fit"].items() if not k.startswith("halo")}})
    no_patterns = dataclasses.replace(
        mach, after_compute={**after, "fit": {k: v for k, v in after["fit"].items() if ":" not in k}})
    return {"raw_after_compute": no_halo, "halo_fit_only": no_patterns,
              "back_to_back": MachineParams(g=fits["hpput"]["g"], l=fits["hpput"]["l"], ranks=P)}


def _ratios(res, es, fits, after, deep):
    # the figures the results table shows as ratios
    return {
        "l_empty_over_barrier": es["l_empty"] / es["barrier"],
        "g_hpput_over_raw": fits["hpput"]["g"] / fits["raw"]["g"],
        "g_put_over_raw": fits["put"]["g"] / fits["raw"]["g"],
        "g_send_over_raw": fits["send"]["g"] / fits["raw"]["g"],
        "g_rma_over_raw": fits["rma"]["g"] / fits["raw"]["g"],
        "heat_predicted_over_measured": res["heat"]["ratio"],
        "heat_both_predicted_over_measured": res["heat_periodic_both"]["ratio"],
        "heat_median_predicted_over_measured": res["heat"]["ratio_median"],
        "heat_both_median_predicted_over_measured": res["heat_periodic_both"]["ratio_median"],
        **{f"heat_deep_k{k}_median_predicted_over_measured": res[f"heat_deep_k{k}"]["ratio_median"]
           for k in deep},
        "heat_both_halo_fit_only_predicted_over_measured": res["heat_periodic_both"]["ratio_halo_fit_only"],
        "heat_back_to_back_predicted_over_measured": res["heat"]["ratio_back_to_back"],
        "heat_raw_after_compute_predicted_over_measured": res["heat"]["ratio_raw_after_compute"],
        "g_halo_over_raw": fits["halo"]["g"] / fits["raw"]["g"],
        "g_raw_after_compute_over_back_to_back": after["fit"]["raw"]["g"] / fits["raw"]["g"],
        "l_raw_after_compute_over_back_to_back": after["fit"]["raw"]["l"] / fits["raw"]["l"],
    }


def main(argv=None):
    args = _parse(argv)
    P = comm.Get_size()
    res = {"ranks": P, "size": args.size, "steps": args.steps, "reps": args.reps, "heat_reps": args.heat_reps,
           "pattern_reps": args.pattern_reps, "hmax": args.hmax, "cold_hmax": args.cold_hmax,
           "points": args.points, "iters": args.iters}

    # l: empty superstep against MPI_Barrier
    es = bench.empty_sync(comm, reps=args.reps)
    res["empty"] = es
    # g: h-relations through every path, one randomised run
    hs = bench.h_values(args.hmax, args.points)
    times = bench.time_hrelations(hs, bench.ALL, iters=args.iters, reps=args.reps, seed=1, comm=comm)
    fits = {m: bench.fit_method(m, hs, times[m]) for m in bench.ALL}
    res["hrel"] = {"h": hs, **times}
    res["fit"] = fits
    r = bench.compute_rate(comm)
    # the hpput, raw and halo h-relations after a compute phase (a stencil sweep of twice
    # the last-level cache, as pympc bench does, with its default h range): the models the
    # heat rows are compared with besides the pattern fits
    heats = {"heat": Heat(args.size, args.steps, (True, False)),
             "heat_periodic_both": Heat(args.size, args.steps, (True, True))}
    for k in args.deep:
        heats[f"heat_deep_k{k}"] = Heat(args.size, args.steps, (True, True), k)

    def heat_batches():
        for hb in heats.values():
            hb.batch()

    cold_methods = ("hpput", "raw", "halo")
    hc = bench.h_values(args.cold_hmax, args.points)
    stream = bench.Stream(bench.default_compute_bytes(comm))
    after = bench.after_compute(hc, cold_methods, comm=comm, compute=stream.nbytes, iters=args.iters,
                                reps=args.reps, seed=2)
    # the halo patterns the layer runs (rows, strided columns, box corners, deep halos),
    # each fitted on grids of its own shape after the same compute phase, with the heat
    # batches interleaved: the fits that predict them sample the same minutes (the heat
    # batches once ran through the after-compute h-relations too, a window of the run
    # the pattern fits did not see)
    sides = args.sides or [max(16, 8 * round(args.size * f / 8)) for f in (0.75, 0.875, 1.125, 1.25)]
    every = max(1, len(bench.PATTERNS) * len(sides) * args.pattern_reps // args.heat_reps)
    res["pattern_sides"] = sides
    res["fresh_warmup"] = bench.timing.FRESH_WARMUP
    stores = program_stores(heats["heat"])  # every heat run's grid is in the same size class
    res["pattern_stores"] = comm.allgather(stores)
    pats = bench.time_patterns(sides=sides, comm=comm, compute=stream, iters=args.iters, reps=args.pattern_reps,
                               seed=3, between=heat_batches, every=every, stores=stores)
    after["fit"].update({key: p["fit"] for key, p in pats.items()})
    after["patterns"] = {key: {k: v for k, v in p.items() if k != "fit"} for key, p in pats.items()}
    while len(heats["heat"].logs) < args.heat_reps:  # fewer h-relation batches than heat batches
        heat_batches()
    mach = MachineParams(g=fits["hpput"]["g"], l=fits["hpput"]["l"], ranks=P, r=r, g_method="hpput", fit=fits,
                         after_compute=after, details={"l_empty": es["l_empty"]})
    res["machine"] = {k: v for k, v in mach.to_json().items() if k != "fit"}
    models = _alternatives(mach, fits, after, P)
    for name, hb in heats.items():
        res[name] = hb.result(mach, models)
        hb.close()

    res["ratios"] = _ratios(res, es, fits, after, args.deep)
    res["kernel_backend"] = kernels.BACKEND
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)
    return res


if __name__ == "__main__":
    main()
    sys.stdout.flush()
