"""``pympc bench``: measure the machine parameters (:func:`measure`) under mpiexec, print
them (:func:`summary`) and write them as a machine file
(:class:`~pympc.bsp.model.MachineParams`, read by ``pympc report --machine``).
"""

from __future__ import annotations

import platform
import sys

import numpy as np
from mpi4py import MPI

from ..bsp.model import MachineParams
from ..kernels.loops import LOOPS, check_stores
from ..runtime import InputError, get_comm
from .fits import fit_method
from .timing import after_compute, compute_rate, empty_sync, logp, time_hrelations, time_patterns
from .workloads import ALL, PATTERN_SIDES, PATTERNS, HaloRelation, HRelation, check_methods, h_values


def measure(comm=None, hmax: int = 16384, points: int = 17, reps: int = 5, iters: int = 10,
            seed: int = 0, methods=ALL, with_logp: bool = True, compute: int | None = None,
            patterns=(), sides=PATTERN_SIDES, stores=None) -> MachineParams:
    """Collective. Everything ``pympc bench`` reports, as a
    :class:`~pympc.bsp.model.MachineParams` (the same on every rank): ``r``, ``g``,
    ``l`` (from the hpput h-relations), the fit of every method, and in ``details``
    ``l_empty`` and ``barrier``, the raw timings, the ratios against the raw Alltoallv
    and the barrier, and ``logp``.

    ``after_compute``: the hpput, raw and halo h-relations again, each superstep after a compute
    phase streaming ``compute`` bytes per rank (default: twice the last-level cache shared
    among the node's ranks; 0 skips it):
    ``stream_bytes``, ``stream_seconds``, ``fit`` per method and the timings. The
    profile report predicts supersteps with long compute phases from these
    (:meth:`MachineParams.choose <pympc.bsp.model.MachineParams.choose>`). ``patterns``
    (names of :data:`~pympc.bench.workloads.PATTERNS`) adds, after the same compute phase,
    the fit of each halo pattern on square grids of ``sides`` (:func:`time_patterns`)
    to ``after_compute["fit"]`` under the key the cost log records (``"halo:cols"``...),
    with which the report predicts the exchanges of that pattern; ``stores`` (a name of
    :data:`pympc.kernels.LOOPS`) pins the 2-D loop of their sweeps to your program's
    (None: each grid's as ``heat_step`` chooses it; the stores of a compute phase move
    the exchange after it up to 2x, docs/bsp.md)."""
    comm = get_comm(comm)
    check_stores(stores)
    if hmax < 2 or points < 3:
        raise InputError(f"need hmax >= 2 and points >= 3, got hmax={hmax}, points={points}")
    check_methods(methods)
    hs = h_values(hmax, points)
    _check_paths(hs, methods, comm)
    r = compute_rate(comm)
    times = time_hrelations(hs, methods, iters=iters, reps=reps, seed=seed, comm=comm)
    fits = {m: fit_method(m, hs, times[m]) for m in methods}
    es = empty_sync(comm)
    g_method = "hpput" if "hpput" in fits else methods[0]
    details = {"l_empty": es["l_empty"], "barrier": es["barrier"], "hrel": {"h": hs, **times},
               "empty": {"l_empty_all": es["l_empty_all"], "barrier_all": es["barrier_all"]},
               "settings": {"hmax": hmax, "points": points, "reps": reps, "iters": iters, "seed": seed,
                            "stores": stores},
               "ratios": _ratios(fits, es)}
    ac = None
    if compute is None or compute > 0:
        cold_methods = [m for m in ("hpput", "raw", "halo") if m in methods]
        ac = after_compute(hs, cold_methods, compute, comm, iters=iters, reps=reps, seed=seed + 1)
        if patterns:
            pats = time_patterns(patterns, sides, iters=iters, reps=reps, seed=seed + 2, comm=comm,
                                 compute=ac["stream_bytes"], stores=stores)
            ac["fit"].update({key: p["fit"] for key, p in pats.items()})
            ac["patterns"] = {key: {k: v for k, v in p.items() if k != "fit"} for key, p in pats.items()}
    details["logp"] = logp(comm) if with_logp else None
    details["versions"] = {"python": platform.python_version(), "numpy": np.__version__,
                           "mpi4py": __import__("mpi4py").__version__,
                           "mpi": " ".join(MPI.Get_library_version().split("\n")[0].split())}
    return MachineParams(g=fits[g_method]["g"], l=fits[g_method]["l"], ranks=comm.Get_size(), r=r,
                         g_method=g_method, fit=fits, after_compute=ac, details=details)


def _check_paths(hs, methods, comm) -> None:
    # every path moves the right words, at the largest h and at h = 1, before any timing
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


def _ratios(fits, es) -> dict:
    # the empty sync against MPI_Barrier, every method's g against the raw Alltoallv's
    ratios = {"l_empty_over_barrier": es["l_empty"] / es["barrier"]}
    if "raw" in fits:
        for m in fits:
            if m != "raw":
                ratios[f"g_{m}_over_raw"] = fits[m]["g"] / fits["raw"]["g"]
    return ratios


def summary(machine: MachineParams) -> str:
    """Local. A few lines that say what :func:`measure` found."""
    res = machine.to_json()
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
                     f"({ac['stream_seconds'] * 1e3:.3g} ms), the superstep alone"
                     + (f" (the model uses these once a superstep's compute phase streams twice the "
                        f"{ac['private_cache_bytes'] / 2**20:.3g} MiB private cache)"
                        if ac.get("private_cache_bytes") else "") + ":")
        for m, f in ac["fit"].items():
            lines.append(f"  {m:>6}: g = {f['g'] * 1e9:8.3g} ns/word  l = {f['l'] * us:8.3g} µs  "
                         f"R² {f['r2']:.3f}  max residual {f['max_rel_residual']:.0%}"
                         + (f"  over h = {f['h_min']:.0f}..{f['h_max']:.0f} words"
                            + (" (l < 0: predicts there only)" if f["l"] < 0 else "") if ":" in m else ""))
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
    ap.add_argument("--patterns", default=",".join(PATTERNS),
                    help="halo patterns to fit after the compute phase, comma-separated ('' for none) "
                         f"[{','.join(PATTERNS)}]")
    ap.add_argument("--sides", default=",".join(map(str, PATTERN_SIDES)),
                    help="grid sides of the pattern fits: near your program's grid "
                         f"[{','.join(map(str, PATTERN_SIDES))}]")
    ap.add_argument("--stores", choices=list(LOOPS), default=None,
                    help="the 2-D loop of the pattern fits' sweeps: your program's "
                         "(pympc.kernels.streaming.chosen says which its heat_step runs) "
                         "[each grid's, as heat_step chooses]")
    args = ap.parse_args(argv)
    patterns = [p for p in args.patterns.split(",") if p]
    bad = [p for p in patterns if p not in PATTERNS]
    if bad:
        raise InputError(f"unknown halo pattern(s) {bad}; use some of {list(PATTERNS)}")
    res = measure(hmax=args.hmax, points=args.points, reps=args.reps, iters=args.iters, seed=args.seed,
                  with_logp=not args.no_logp, compute=args.compute, patterns=patterns,
                  sides=[int(x) for x in args.sides.split(",") if x], stores=args.stores)
    if get_comm(None).Get_rank() == 0:
        if args.json:
            res.save(args.json)
        print(summary(res) + (f"\n  written to {args.json}" if args.json else ""))
        sys.stdout.flush()
    return 0
