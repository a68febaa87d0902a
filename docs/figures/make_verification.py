"""Make the solvers' verification figures (docs/figures/*.png) on one rank:

    .venv/bin/python docs/figures/make_verification.py

Heat and wave: max error against the analytic solution on 4 grids (slope 2 = second
order). Poisson: error of Jacobi and RB-SOR against the manufactured solution, and RB-SOR
iterations against N. Wave: the drift of the discrete energy over 1000 steps.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import pympc  # noqa: E402
from solvers.heat import Heat  # noqa: E402
from solvers.poisson import Poisson  # noqa: E402
from solvers.wave import Wave  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


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
                out[m][0].append(np.abs(r.u.gather(root=None) - exact).max())
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


if __name__ == "__main__":
    print("heat", heat_fig())
    print("wave", wave_fig())
    print("poisson", poisson_fig())
