"""The Gray-Scott tutorial's measurement (docs/solvers/tutorial-grayscott.md): explicit
Euler at 0.9 of its stability limit against adaptive IMEX ARK2 at several tolerances, on
Pearson's box (2.5^2, periodic, F = 0.04, kappa = 0.06, Du = 2e-5, Dv = 1e-5) to
t = T; error = max |(u, v) - reference| with the reference an ARK2 run at tolerance 1e-6.
Prints a markdown table and writes docs/figures/grayscott_steps.png.

    flock -x /tmp/pympc-measure.lock .venv/bin/python docs/figures/grayscott_steps.py 256 512
"""

import json
import sys
import time

import numpy as np

import pympc
from solvers.grayscott import GrayScott

T = 200.0
TOLS = (1e-2, 1e-3, 1e-4)


def run(n, **kw):
    with pympc.Decomposition((n, n), spacing=2.5 / n, periodic=True) as d:
        s = GrayScott(d, **kw)
        s.advance()  # compile and build the hierarchy outside the timed run (the step is not kept)
        s = GrayScott(d, **kw)
        t0 = time.perf_counter()
        s.run(t_end=T, progress=None)
        wall = time.perf_counter() - t0
        out = np.concatenate([s.u[c].gather(root=None).ravel() for c in ("u", "v")])
        s.close()
        return out, s.stats["steps"], wall, s.stats


def measure(n):
    ref, *_ = run(n, scheme="ark2", rtol=1e-6, atol=1e-6)
    rows = []
    x, steps, wall, st = run(n, scheme="euler")
    rows.append({"n": n, "method": "euler", "tol": None, "steps": steps, "wall": wall,
                 "error": float(np.abs(x - ref).max()), "cg": 0})
    for tol in TOLS:
        x, steps, wall, st = run(n, scheme="ark2", rtol=tol, atol=tol)
        rows.append({"n": n, "method": "ark2", "tol": tol, "steps": steps, "wall": wall,
                     "error": float(np.abs(x - ref).max()), "cg": st["linear_iterations"],
                     "rejected": st["rejected"]})
    return rows


def figure(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for n in sorted({r["n"] for r in rows}):
        for ax, key in zip(axes, ("steps", "wall")):
            a = [r for r in rows if r["n"] == n and r["method"] == "ark2"]
            e = [r for r in rows if r["n"] == n and r["method"] == "euler"]
            line, = ax.loglog([r[key] for r in a], [r["error"] for r in a], "o-", label=f"ARK2 adaptive, {n}$^2$")
            ax.loglog([r[key] for r in e], [r["error"] for r in e], "s", color=line.get_color(), ms=9,
                      mfc="none", label=f"Euler at 0.9 x limit, {n}$^2$")
    axes[0].set_xlabel("steps to t = %g" % T)
    axes[1].set_xlabel("wall time (s, 1 rank)")
    for ax in axes:
        ax.set_ylabel("max error vs reference")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    rows = [r for n in map(int, sys.argv[1:] or ["256"]) for r in measure(n)]
    print("| grid | method | tol | steps | wall (s) | CG its | max error |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']}^2 | {r['method']} | {r['tol'] or '-'} | {r['steps']} | {r['wall']:.2f} | {r['cg']} | "
              f"{r['error']:.2e} |")
    json.dump(rows, open("docs/figures/grayscott_steps.json", "w"), indent=1)
    figure(rows, "docs/figures/grayscott_steps.png")


if __name__ == "__main__":
    main()
