"""Make docs/figures/newton_bratu.png (one rank, no timing):

    .venv/bin/python docs/figures/make_newton.py [N]

Newton-Krylov on the Bratu problem -lap u = lam e^u on the unit square, N x N vertices
(default 129), from ex5's initial guess, tol 1e-10: (a) ||F_k|| / ||F_0|| per Newton step
for lam from 1 up to just below the fold (lam* ~ 6.81), CG preconditioned by the shifted
multigrid, Eisenstat-Walker forcing terms; exact Newton (linear tol 1e-12) at lam = 6 for
the quadratic reference; (b) lam = 7, past the fold: CG stops when the Jacobian becomes
indefinite ("linear solve failed"), GMRES stalls at a local minimum of ||F|| until the
line search fails. Prints the table of docs/solvers/newton.md.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import pympc  # noqa: E402
from solvers.bratu import Bratu  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LAMS = (1.0, 3.0, 5.0, 6.0, 6.5, 6.8)


def run(d, lam, **options):
    with Bratu(d, lam) as p:
        r = p.solve(tol=1e-10, **options)
    print(f"| {lam} | {options.get('method', 'cg')}{' exact' if 'linear_tol' in options else ''} | "
          f"{r.reason} | {r.iterations} | {sum(r.linear_iterations)} | {r.linear_iterations} | "
          f"{r.x.norm(float('inf')):.4f} |")
    return r


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 129
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    print("| lam | linear solver | reason | Newton steps | linear iterations | per step | max u |")
    print("|---|---|---|---|---|---|---|")
    with pympc.Decomposition((n, n), spacing=1.0 / (n - 1)) as d:
        for lam in LAMS:
            r = run(d, lam)
            a.semilogy(range(len(r.history)), r.history, "o-", label=f"λ = {lam}")
        r = run(d, 6.0, ew=False, linear_tol=1e-12)
        a.semilogy(range(len(r.history)), r.history, "k--", label="λ = 6, exact Newton")
        for method, style in (("cg", "s-"), ("gmres", "o-")):
            r = run(d, 7.0, method=method)
            b.semilogy(range(len(r.history)), r.history, style, label=f"λ = 7, {method}: {r.reason}")
    a.set_title(f"Bratu {n}², CG + multigrid, Eisenstat-Walker")
    b.set_title(f"Bratu {n}², λ = 7 (past the fold): no solution")
    for ax in (a, b):
        ax.set_xlabel("Newton step k")
        ax.set_ylabel("||F(u_k)|| / ||F(u_0)||")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = os.path.join(HERE, "newton_bratu.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()
