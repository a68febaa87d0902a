"""Make the solvers' verification figures (docs/figures/*.png) on one rank:

    .venv/bin/python docs/figures/make_verification.py                   # all of them
    .venv/bin/python docs/figures/make_verification.py cg multigrid  # only these

The optional arguments name the figures to make (heat, wave, poisson, cg, bicgstab,
gmres, preconditioners, multigrid); without any, all are made.

Heat and wave: max error against the analytic solution on 4 grids (slope 2 = second
order). Poisson: error of Jacobi and RB-SOR against the manufactured solution, and RB-SOR
iterations against N. Wave: the drift of the discrete energy over 1000 steps.
CG, BiCGStab, GMRES: relative residual histories on 65², with the final error against
scipy's sparse direct solve. Preconditioners: iterations against N with and without.
Multigrid: the residual reduction factor of each V(1,1) cycle (2D 33²..513², 3D
17³..129³), and V-cycles and MG-preconditioned CG iterations to 1e-8 against N.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402

import pympc  # noqa: E402
from solvers.heat import Heat  # noqa: E402
import solvers  # noqa: E402
from solvers.krylov import Jacobi, StencilOperator  # noqa: E402
from solvers.multigrid import Multigrid  # noqa: E402
from solvers.poisson import Poisson  # noqa: E402
from solvers.sparse import BlockJacobi, SparseOperator  # noqa: E402
from solvers.wave import Wave  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
from oracle import mode_ramp_rhs, stencil_matrix  # noqa: E402  (the tests' serial oracles)


def mesh(n, periodic=False):
    h = 1.0 / (n if periodic else n - 1)
    x = np.arange(n) * h
    return h, np.meshgrid(x, x, indexing="ij")


def loglog(ax, ns, errs, label):
    ax.loglog(ns, errs, "o-", label=label)


def slope2(ax, ns, errs):
    ns = np.array(ns, dtype=float)
    ax.loglog(ns, errs[0] * (ns[0] / ns) ** 2, "k--", lw=0.8, label="slope 2")


def heat_fig():
    ns, errs = [17, 33, 65, 129], []
    for n in ns:
        h, (x, y) = mesh(n)
        with pympc.Decomposition((n, n), spacing=h) as d:
            s = Heat(d, u0=lambda x, y: np.sin(np.pi * x) * np.sin(np.pi * y))
            s.run(t_end=0.01, progress=None)
            exact = np.sin(np.pi * x) * np.sin(np.pi * y) * np.exp(-2 * np.pi ** 2 * 0.01)
            errs.append(np.abs(s.u.gather(root=None) - exact).max())
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    loglog(ax, ns, errs, "heat, FTCS")
    slope2(ax, ns, errs)
    ax.set_xlabel("N (points per axis)")
    ax.set_ylabel("max error at t = 0.01")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "heat_order.png"), dpi=90)
    return ns, errs


def wave_fig():
    ns, errs = [16, 32, 64, 128], []
    ex = lambda x, y, t: np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y) * np.cos(2 * np.pi * np.sqrt(2) * t)  # noqa
    for n in ns:
        h, (x, y) = mesh(n, True)
        with pympc.Decomposition((n, n), spacing=h, periodic=True) as d:
            w = Wave(d, u0=lambda x, y: ex(x, y, 0.0), cfl=0.5)
            w.run(t_end=0.1, progress=None)
            errs.append(np.abs(w.u.gather(root=None) - ex(x, y, 0.1)).max())
    n = 32
    h, _ = mesh(n, True)
    drift = []
    with pympc.Decomposition((n, n), spacing=h, periodic=True) as d:
        w = Wave(d, u0=lambda x, y: np.exp(-40 * ((x - 0.5) ** 2 + (y - 0.4) ** 2)), cfl=0.5)
        w.run(steps=1, progress=None)
        e0 = w.energy()
        for _ in range(100):
            w.run(steps=w.step_count + 10, progress=None)
            drift.append(abs(w.energy() - e0) / e0)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.5))
    loglog(a1, ns, errs, "wave, leapfrog")
    slope2(a1, ns, errs)
    a1.set_xlabel("N")
    a1.set_ylabel("max error at t = 0.1")
    a1.legend()
    a2.semilogy(np.arange(1, 101) * 10, np.maximum(drift, 1e-17))
    a2.set_xlabel("steps")
    a2.set_ylabel("|E - E0| / E0")
    a2.set_title("discrete energy, CFL 0.5, periodic")
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "wave_order_energy.png"), dpi=90)
    return ns, errs, max(drift)


def poisson_fig():
    ns = [17, 33, 65, 129]
    out = {"jacobi": ([], []), "rbsor": ([], [])}
    for n in ns:
        h, (x, y) = mesh(n)
        exact = np.sin(np.pi * x) * np.sin(2 * np.pi * y)
        with pympc.Decomposition((n, n), spacing=h) as d:
            for m in ("jacobi", "rbsor"):
                if m == "jacobi" and n > 65:
                    continue
                f = pympc.DistArray.from_global(d, 5 * np.pi ** 2 * exact)
                r = Poisson(d, f).solve(m, tol=1e-10, check_every=10)
                out[m][0].append(np.abs(r.x.gather(root=None) - exact).max())
                out[m][1].append(r.iterations)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.5))
    for m, (errs, _) in out.items():
        loglog(a1, ns[:len(errs)], errs, m)
    slope2(a1, ns, out["rbsor"][0])
    a1.set_xlabel("N")
    a1.set_ylabel("max error")
    a1.legend()
    for m, (_, its) in out.items():
        a2.loglog(ns[:len(its)], its, "o-", label=m)
    a2.loglog(ns, out["rbsor"][1][0] * np.array(ns) / ns[0], "k--", lw=0.8, label="~ N")
    a2.loglog(ns[:3], out["jacobi"][1][0] * (np.array(ns[:3]) / ns[0]) ** 2, "k:", lw=0.8, label="~ N^2")
    a2.set_xlabel("N")
    a2.set_ylabel("iterations to 1e-10")
    a2.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "poisson_order_iterations.png"), dpi=90)
    return out


KRYLOV_N, KRYLOV_TOL, KRYLOV_VEL = 65, 1e-10, (20.0, -10.0)


def history_fig(fname, title, velocity, methods, note=None):
    """Relative residual histories of ``methods`` (name, solve(op, b), line style) on the
    65² problem (random right-hand side) with the final error against scipy's sparse
    direct solve of the same matrix in the legend."""
    n, tol = KRYLOV_N, KRYLOV_TOL
    B = np.random.default_rng(3).random((n, n))
    x_ref = spla.spsolve(stencil_matrix(n, velocity)[1], B[1:-1, 1:-1].ravel())
    out = {}
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    with pympc.Decomposition((n, n), spacing=1.0 / (n - 1)) as d:
        b = pympc.DistArray.from_global(d, B)
        op = StencilOperator(d, velocity=velocity)
        for name, method, style in methods:
            r = method(op, b)
            x = r.x.gather(root=None)[1:-1, 1:-1].ravel()
            err = np.linalg.norm(x - x_ref) / np.linalg.norm(x_ref)
            out[name] = (r.reason, r.iterations, err)
            ax.semilogy(r.history, lw=1.2, ms=4, **style, label=f"{name}: {r.iterations} it., err {err:.1e}")
    ax.axhline(tol, color="k", lw=0.6, ls="-.")
    ax.set_title(f"{title}, {n}² grid, random right-hand side, tol {tol:g}", fontsize=8)
    if note:
        ax.text(0.97, 0.97, note, transform=ax.transAxes, ha="right", va="top", fontsize=7)
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative residual |b - Ax| / |b|")
    ax.legend(fontsize=7, title="err = |x - x_scipy| / |x_scipy|", title_fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, fname), dpi=90)
    plt.close(fig)
    return out


def cg_fig():
    tol = KRYLOV_TOL
    return history_fig("krylov_cg.png", "SPD: Dirichlet Laplacian", None, [
        ("CG", lambda op, b: solvers.solve(op, b, "cg", tol=tol), dict(ls="-")),
        ("single-reduction CG", lambda op, b: solvers.solve(op, b, "cg_single", tol=tol),
         dict(ls="--", marker="x", markevery=(0, 25))),
        ("PCG, Jacobi", lambda op, b: solvers.solve(op, b, "cg", M=Jacobi(op), tol=tol),
         dict(ls=":", marker="o", mfc="none", markevery=(12, 25)))],
        note="the three curves coincide:\nJacobi scales a constant diagonal")


def bicgstab_fig():
    tol = KRYLOV_TOL
    return history_fig("krylov_bicgstab.png", f"convection-diffusion, v = {KRYLOV_VEL}", KRYLOV_VEL, [
        ("BiCGStab", lambda op, b: solvers.solve(op, b, "bicgstab", tol=tol), dict(ls="-"))],
        note="BiCGStab's residual is not monotone:\nthe stopping rule reads the last one")


def gmres_fig():
    tol = KRYLOV_TOL
    return history_fig("krylov_gmres.png", f"convection-diffusion, v = {KRYLOV_VEL}", KRYLOV_VEL, [
        (f"GMRES({m})", (lambda m: lambda op, b: solvers.solve(op, b, "gmres", tol=tol, restart=m))(m), dict(ls=ls))
        for m, ls in ((30, "-"), (60, "--"), (120, ":"))],
        note="the same counts as\nscipy.sparse.linalg.gmres")


def preconditioners_fig():
    """Iterations to 1e-8 against N on assembled matrices: CG on the Laplacian without
    and with the multigrid preconditioner; GMRES(30) on convection-diffusion without and
    with block-Jacobi ILU (on one rank the one block is the whole matrix)."""
    tol, ns = 1e-8, [17, 33, 65, 129]
    rows = {"CG": [], "CG + multigrid": [], "GMRES(30)": [], "GMRES(30) + block-Jacobi ILU": []}
    for n in ns:
        with pympc.Decomposition((n, n), spacing=1.0 / (n - 1)) as d:
            f = mode_ramp_rhs(d)
            A = SparseOperator.laplacian(d)
            C = SparseOperator.laplacian(d, velocity=KRYLOV_VEL)
            mg = Multigrid(d)
            rows["CG"].append(solvers.solve(A, f, "cg", tol=tol).iterations)
            rows["CG + multigrid"].append(solvers.solve(A, f, "cg", M=mg, tol=tol).iterations)
            rows["GMRES(30)"].append(solvers.solve(C, f, "gmres", tol=tol, restart=30).iterations)
            rows["GMRES(30) + block-Jacobi ILU"].append(
                solvers.solve(C, f, "gmres", M=BlockJacobi(C, "ilu"), tol=tol, restart=30).iterations)
            mg.close()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for (name, its), style in zip(rows.items(), ("o-", "s-", "o--", "s--")):
        ax.loglog(ns, its, style, ms=5, label=name)
    ax.set_xticks(ns)
    ax.xaxis.set_major_formatter(mticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlabel("N (points per axis)")
    ax.set_ylabel("iterations to 1e-8")
    ax.set_title("assembled 2-D operators, one rank", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "preconditioners.png"), dpi=90)
    plt.close(fig)
    return dict(zip(ns, zip(*rows.values())))


def multigrid_fig():
    tol, tol_text = 1e-8, "1e-8"
    grids = {2: [33, 65, 129, 257, 513], 3: [17, 33, 65, 129]}
    out = {}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    for dim, ns in grids.items():
        cycles, pcg = [], []
        colours = plt.cm.viridis(np.linspace(0, 0.85, len(ns)))
        for n, c in zip(ns, colours):
            with pympc.Decomposition((n,) * dim, spacing=1.0 / (n - 1)) as d:
                mg = Multigrid(d)
                f = mode_ramp_rhs(d)
                r = mg.solve(f, tol=tol)
                p = solvers.solve(StencilOperator(d), f, "cg", M=mg, tol=tol)
                mg.close()
            h = np.array(r.history)
            rates = h[1:] / h[:-1]
            a1.plot(np.arange(1, len(h)), rates, "o-" if dim == 2 else "s--", color=c, ms=3,
                    lw=1, label=f"{n}{'²' if dim == 2 else '³'}")
            cycles.append(r.iterations)
            pcg.append(p.iterations)
            out[(dim, n)] = (r.reason, r.iterations, rates.max(), p.iterations)
        a2.semilogx(ns, cycles, "o-" if dim == 2 else "s-", ms=7, label=f"{dim}D V(1,1) cycles")
        a2.semilogx(ns, pcg, "x:" if dim == 2 else "+:", ms=8, mew=1.5,
                    label=f"{dim}D MG-PCG iterations")
    a1.axhline(0.1, color="k", ls="--", lw=0.8)
    a1.set_ylim(0, 0.15)
    a1.set_xlabel("cycle")
    a1.set_ylabel("residual reduction factor of the cycle")
    a1.set_title("(a) V(1,1): 2D (circles), 3D (squares, dashed)", fontsize=9)
    a1.legend(fontsize=7, ncol=2, loc="upper right")
    a2.set_xlabel("N (points per axis)")
    a2.set_ylabel(f"iterations to {tol_text}")
    a2.set_ylim(0, 16)
    a2.set_xticks(sorted(set(grids[2] + grids[3])))
    a2.xaxis.set_major_formatter(mticker.ScalarFormatter())
    a2.xaxis.set_minor_formatter(mticker.NullFormatter())
    a2.set_title("(b) counts against N", fontsize=9)
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "multigrid_cycles.png"), dpi=90)
    return out


FIGURES = {"heat": heat_fig, "wave": wave_fig, "poisson": poisson_fig, "cg": cg_fig,
           "bicgstab": bicgstab_fig, "gmres": gmres_fig, "preconditioners": preconditioners_fig,
           "multigrid": multigrid_fig}


def main(names):
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        sys.exit(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    for name in names or FIGURES:
        print(name, FIGURES[name]())


if __name__ == "__main__":
    main(sys.argv[1:])
