"""Make docs/figures/imex_order.png (one rank, a few seconds; no timing):

    .venv/bin/python docs/figures/make_imex.py

Left: the max-norm error at T = 1 of SBDF1, SBDF2 and ARK2 against the fixed step on the
manufactured reaction-diffusion problem of tests/test_imex.py (u = (1 + sin 2t) x(1-x)y(1-y),
exact in space; the test's ``errors`` computes them and checks the orders). Right: adaptive
ARK2's global error at T = 1 against the requested tolerance (atol = rtol), with its steps.
"""

import os
import sys

import matplotlib
import numpy as np
from mpi4py import MPI

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))

from test_imex import Manufactured, errors, exact, grid  # noqa: E402

SCHEMES = (("sbdf1", "SBDF1 (IMEX Euler)", "o-"), ("sbdf2", "SBDF2", "s-"), ("ark2", "ARK2 (PETSc's 2D)", "^-"))


def adaptive(tol, shape=(9, 9)):
    """(max error at T = 1, accepted steps) of adaptive ARK2 at atol = rtol = tol."""
    with grid(MPI.COMM_SELF, shape) as d:
        s = Manufactured(d, scheme="ark2", dt=1e-3, tol=1e-13, adapt={"rtol": tol, "atol": tol}, mg=False)
        s.run(t_end=1.0, progress=None)
        return np.abs(s.u["u"].gather(root=None) - exact(shape, 1.0)).max(), s.step_count


def main():
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    js = np.arange(3, 9)
    for scheme, label, style in SCHEMES:
        e, p = errors(scheme, js)
        left.loglog(2.0 ** -js, e, style, label=f"{label} (last order {p[-1]:.2f})")
    dts = 2.0 ** -js
    left.loglog(dts, 2e-3 * dts, "k:", lw=1, label="slope 1")
    left.loglog(dts, 2e-1 * dts ** 2, "k--", lw=1, label="slope 2")
    left.set_xlabel("dt")
    left.set_ylabel("max error at t = 1")
    left.set_title("IMEX temporal order (exact in space)")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    tols = 10.0 ** -np.arange(3, 8)
    got = [adaptive(t) for t in tols]
    right.loglog(tols, [g[0] for g in got], "o-", label="adaptive ARK2: error at t = 1")
    right.loglog(tols, tols, "k:", lw=1, label="error = tolerance")
    for t, (err, steps) in zip(tols, got):
        right.annotate(f"{steps} steps", (t, err), fontsize=7, textcoords="offset points", xytext=(4, -10))
    right.set_xlabel("requested tolerance (atol = rtol)")
    right.set_ylabel("max error at t = 1")
    right.set_title("the controller (PETSc's basic, WRMS norm)")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "imex_order.png"), dpi=110)


if __name__ == "__main__":
    main()
