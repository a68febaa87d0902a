"""Make docs/figures/multigrid_variable.png (one rank, about a minute; no timing):

    .venv/bin/python docs/figures/make_multigrid_variable.py

Left: V- and W-cycles and MG-PCG iterations to 1e-8 against the grid side, contrast 1e4
(checkerboard and layered 8 x 8 tiles, arithmetic faces), the cases of
tests/test_multigrid_var.py, whose ``tiles`` and ``rhs`` draw them. Right: the residual
per cycle on the layered 257^2 problem with Dendy's operator-dependent interpolation
against bilinear interpolation (the reason for operator-dependent P).
"""

import os
import sys

import matplotlib
from mpi4py import MPI

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))

import pympc  # noqa: E402
from solvers.krylov import cg  # noqa: E402
from solvers.mgops import GalerkinMultigrid  # noqa: E402
from test_multigrid_var import rhs, tiles  # noqa: E402

SIDES = (65, 129, 257, 513)


def solve(n, kind, cycle="V", interpolation="auto", pcg=True):
    """(standalone result, PCG result or None) on an n x n grid, one rank."""
    with pympc.Decomposition((n, n), comm=MPI.COMM_SELF, spacing=1 / (n - 1)) as d:
        b = rhs(d)
        with GalerkinMultigrid(d, k=tiles(d, kind), cycle=cycle, interpolation=interpolation) as mg:
            alone = mg.solve(b, tol=1e-8, maxiter=300)
            return alone, (cg(mg.op, b, M=mg, tol=1e-8, maxiter=300) if pcg else None)


def main():
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, colour in (("checker", "C0"), ("layered", "C1")):
        for cycle, style in (("V", "o-"), ("W", "s--")):
            runs = [solve(n, kind, cycle) for n in SIDES]
            left.plot(SIDES, [a.iterations for a, _ in runs], style, color=colour,
                      label=f"{kind}, {cycle}-cycles")
            left.plot(SIDES, [p.iterations for _, p in runs], style, color=colour, alpha=0.45,
                      label=f"{kind}, PCG with a {cycle}-cycle")
    left.set_xscale("log", base=2)
    left.set_xticks(SIDES, [str(n) for n in SIDES])
    left.set_xlabel("grid side n (n x n)")
    left.set_ylabel("iterations to 1e-8")
    left.set_title("contrast 1e4, Galerkin multigrid")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    for interp, style in (("operator", "o-"), ("bilinear", "s--")):
        alone, _ = solve(257, "layered", interpolation=interp, pcg=False)
        right.semilogy(range(len(alone.history)), alone.history, style, ms=3,
                       label=f"{interp} P: {alone.iterations} cycles ({alone.reason})")
    right.set_xlabel("V-cycle")
    right.set_ylabel("relative residual")
    right.set_title("layered 257^2, contrast 1e4: interpolation")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "multigrid_variable.png"), dpi=110)


if __name__ == "__main__":
    main()
