"""More ranks than cores: MPI's busy waits against pympc's yielding waits.

    ./run bench oversubscribe            # 2, 3 and 4 ranks, shim off and on
    python benchmarks/bench_oversubscribe.py --steps 1000 --n 512

Each run is a heat solve of ``--steps`` steps on an n x n grid (halo exchange, compiled
update, one Allreduce of the residual per step: the rhythm of every iterative solver),
timed on rank 0 between two barriers, launched with ``PYMPC_YIELD_WAIT=off`` and ``=on``.
The same total work at as many ranks as cores is the limit an oversubscribed run can
approach. Writes ``benchmarks/results/oversubscribe.{json,md}``. This process only
launches: it is not a rank and never initialises MPI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pympc.tools.launch import run_mpi, usable_cores, yield_wait_library  # noqa: E402

sys.path.insert(0, HERE)
from machine import describe  # noqa: E402

WORKER = r"""
import sys, time
import numpy as np
import pympc
from pympc import bc, kernels
n, steps = int(sys.argv[1]), int(sys.argv[2])
with pympc.Decomposition((n, n), ghost=1) as d:
    u = pympc.DistArray.from_function(d, lambda x, y: np.sin(x / n * 3.0) * np.cos(y / n * 2.0))
    v = u.empty_like()
    kernels.heat_step(u, v, 0.2)  # compile before the clock starts
    d.comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        pympc.update_halo(u)
        bc.dirichlet(u, 0.0)
        kernels.heat_step(u, v, 0.2)
        u, v = v, u
        total, = pympc.reduce_all(("sum", u))
    d.comm.Barrier()
    t = time.perf_counter() - t0
    if d.comm.rank == 0:
        print(f"TIME {t:.6f} SUM {total:.12e}")
"""


def one(n_ranks, mode, n, steps, script):
    env = dict(os.environ, PYMPC_YIELD_WAIT=mode)
    r = run_mpi(n_ranks, [script, str(n), str(steps)], timeout=600, env=env)
    if r.returncode != 0:
        raise SystemExit(f"the run at {n_ranks} ranks ({mode}) failed:\n{r.output}")
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("TIME "))
    _, t, _, s = line.split()
    return {"seconds": float(t), "sum": float(s)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--ranks", default="2,3,4")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args(argv)
    if yield_wait_library() is None:
        raise SystemExit("the yielding-wait shim is not built (./run setup builds it)")
    script = os.path.join(args.out, ".oversubscribe_worker.py")
    os.makedirs(args.out, exist_ok=True)
    with open(script, "w") as f:
        f.write(WORKER)
    cores = usable_cores()
    runs = []
    try:
        for k in [int(x) for x in args.ranks.split(",")]:
            off, on = one(k, "off", args.n, args.steps, script), one(k, "on", args.n, args.steps, script)
            runs.append({"ranks": k, "off": off, "on": on, "same_result": off["sum"] == on["sum"]})
            print(f"{k} ranks: off {off['seconds']:.3f} s, on {on['seconds']:.3f} s", flush=True)
    finally:
        os.unlink(script)
    limit = min((r["on"]["seconds"] for r in runs if r["ranks"] == cores), default=None)
    out = {"benchmark": "oversubscribe", "n": args.n, "steps": args.steps, "cores": cores,
           "machine": describe(), "platform": platform.platform(), "runs": runs,
           "limit_seconds": limit}
    with open(os.path.join(args.out, "oversubscribe.json"), "w") as f:
        json.dump(out, f, indent=1)
    lines = ["# More ranks than cores: busy waits against yielding waits\n",
             f"Heat solve, {args.n}² grid, {args.steps} steps (halo exchange + update + one "
             f"Allreduce per step), {cores} usable cores; one run each. The limit is the same "
             f"work at {cores} ranks (no core shared). Machine: {describe()} ({platform.platform()}).\n",
             "| ranks | busy waits (off) | yielding waits (on) | off / on | on / limit | same result |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lim = f"{r['on']['seconds'] / limit:.2f}" if limit else "-"
        lines.append(f"| {r['ranks']} | {r['off']['seconds']:.3f} s | {r['on']['seconds']:.3f} s | "
                     f"{r['off']['seconds'] / r['on']['seconds']:.1f} | {lim} | {r['same_result']} |")
    with open(os.path.join(args.out, "oversubscribe.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
