"""The Gray-Scott tutorial's measurement (docs/solvers/tutorial-grayscott.md): explicit
Euler at 0.9 of its stability limit against adaptive IMEX ARK2 at several tolerances,
with the controller's RMS norm and with its max norm, on Pearson's box (2.5^2, periodic,
F = 0.04, kappa = 0.06, Du = 2e-5, Dv = 1e-5) to t = T; error = max |(u, v) - reference|
with the reference ARK2 at tolerance 1e-6 in the max norm. One rank; the first step of
each configuration (compilation, multigrid set-up) is taken outside the timing. Prints
a markdown table, writes docs/figures/grayscott_steps.json and grayscott_steps.png.

    flock -x /tmp/pympc-measure.lock .venv/bin/python docs/figures/grayscott_steps.py 256 512 1024:noref
    .venv/bin/python docs/figures/grayscott_steps.py --figure     # redraw from the .json
"""

import json
import sys
import time

import numpy as np

import pympc
from solvers.grayscott import GrayScott

T = 200.0
RUNS = [("2", 1e-2), ("2", 1e-3), ("2", 1e-4), ("infinity", 1e-2), ("infinity", 1e-3), ("infinity", 1e-4)]
REFERENCE = {"scheme": "ark2", "rtol": 1e-6, "atol": 1e-6, "adapt": {"wnormtype": "infinity"}}


def run(n, **kw):
    with pympc.Decomposition((n, n), spacing=2.5 / n, periodic=True) as d:
        with GrayScott(d, **kw) as s:
            s.advance()  # compile and build the hierarchy outside the timed run (the step is not kept)
        with GrayScott(d, **kw) as s:
            t0 = time.perf_counter()
            s.run(t_end=T, progress=None)
            wall = time.perf_counter() - t0
            out = np.concatenate([s.u[c].gather(root=None).ravel() for c in ("u", "v")])
            return out, wall, dict(s.stats), s.t, s.reason


def measure(n, reference=True, runs=RUNS):
    """The rows of grid ``n``: Euler and ARK2 at each (norm, tol) of ``runs``; errors
    against the reference unless ``reference`` is False (then None)."""
    ref = None
    if reference:
        ref, _, _, t_ref, why = run(n, **REFERENCE)
        assert abs(t_ref - T) < 1e-9 * T, f"the reference stopped at t = {t_ref}: {why}"
    rows = []

    def row(method, norm, tol, kw):
        x, wall, st, t, why = run(n, **kw)
        done = abs(t - T) < 1e-9 * T
        rows.append({"n": n, "method": method, "norm": norm, "tol": tol, "steps": st["steps"], "wall": wall,
                     "error": float(np.abs(x - ref).max()) if done and ref is not None else None,
                     "cg": st["linear_iterations"], "rejected": st["rejected"], "t_end": t,
                     "reason": None if done else why})
        print(rows[-1], flush=True)

    row("euler", None, None, {"scheme": "euler"})
    for norm, tol in runs:
        row("ark2", norm, tol, {"scheme": "ark2", "rtol": tol, "atol": tol, "adapt": {"wnormtype": norm}})
    return rows


def figure(rows, path):
    """Left: error against steps (grids with a reference); middle and right: steps and
    wall time against the grid, Euler against ARK2 (max norm) at each tolerance."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    grids = sorted({r["n"] for r in rows})
    for n in grids:
        color = None
        for norm, style in (("infinity", "o-"), ("2", "^:")):
            a = [r for r in rows if r["n"] == n and r["norm"] == norm and r["error"] is not None]
            if a:
                line, = axes[0].loglog([r["steps"] for r in a], [r["error"] for r in a], style, color=color,
                                       label=f"ARK2, {'max' if norm == 'infinity' else 'RMS'} norm, {n}$^2$")
                color = line.get_color()
        e = [r for r in rows if r["n"] == n and r["method"] == "euler" and r["error"] is not None]
        if e:
            axes[0].loglog([r["steps"] for r in e], [r["error"] for r in e], "s", color=color, ms=9, mfc="none",
                           label=f"Euler at 0.9 x limit, {n}$^2$")
    series = [("euler", None, "ks-", "Euler at 0.9 x limit")] + [
        ("ark2", tol, "o-", f"ARK2, max norm, tol {tol:g}") for tol in sorted({r["tol"] for r in rows if r["tol"]})]
    for ax, key in zip(axes[1:], ("steps", "wall")):
        for method, tol, style, label in series:
            pts = [(r["n"], r[key]) for r in rows if r["method"] == method and r["tol"] == tol
                   and r["norm"] in (None, "infinity") and r["reason"] is None]
            if pts:
                ax.loglog(*zip(*sorted(pts)), style, label=label, mfc="none" if method == "euler" else None)
        ax.set_xlabel("grid points per side")
        ax.set_xticks(grids, [str(n) for n in grids])
        ax.minorticks_off()
    axes[0].set_xlabel("steps to t = %g" % T)
    axes[0].set_ylabel("max error against the reference")
    axes[1].set_ylabel("steps to t = %g" % T)
    axes[2].set_ylabel("wall time (s, 1 rank)")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    if sys.argv[1:] == ["--figure"]:  # redraw from the saved measurements
        with open("docs/figures/grayscott_steps.json") as f:
            figure(json.load(f), "docs/figures/grayscott_steps.png")
        return
    rows = []
    for arg in sys.argv[1:] or ["256"]:  # "1024:noref": no reference (its run is the longest), max norm only
        n, _, flag = arg.partition(":")
        if flag == "noref":
            rows += measure(int(n), reference=False, runs=[r for r in RUNS if r[0] == "infinity"])
        else:
            rows += measure(int(n))
    print("| grid | method | norm | tol | steps | rejected | wall (s) | CG its | max error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        err = f"{r['error']:.1e}" if r["error"] is not None else (
            f"stopped at t = {r['t_end']:.1f}: {r['reason']}" if r["reason"] else "no reference")
        norm = {"2": "RMS", "infinity": "max", None: "-"}[r["norm"]]
        print(f"| {r['n']}² | {r['method']} | {norm} | {r['tol'] or '-'} | {r['steps']} | {r['rejected']} | "
              f"{r['wall']:.2f} | {r['cg']} | {err} |")
    with open("docs/figures/grayscott_steps.json", "w") as f:
        json.dump(rows, f, indent=1)
    figure(rows, "docs/figures/grayscott_steps.png")


if __name__ == "__main__":
    main()
