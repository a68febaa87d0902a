"""Make docs/figures/implicit_order.png (one rank, a few seconds; no timing):

    .venv/bin/python docs/figures/make_implicit.py

Left: the max-norm error at T = 1 of backward Euler, Crank-Nicolson and BDF2 against the
step on the manufactured solution u = (1 + sin 2t) x(1-x) y(1-y) (exact in space, so the
error is the time discretisation's; tests/test_implicit.py checks the orders). Right:
the accepted steps of the adaptive runs on the fast transient of the tests
(a(t) = 1 + sin t + exp(-t/0.005), atol = rtol = 1e-4), with the rejected ones marked.
"""

import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import pympc  # noqa: E402
from solvers.implicit import ImplicitHeat  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMES = (("be", "backward Euler", "o-"), ("cn", "Crank-Nicolson", "s-"), ("bdf2", "BDF2", "^-"))


def q(x, y):
    return x * (1 - x) * y * (1 - y)


class Logged(ImplicitHeat):
    """ImplicitHeat that notes each accepted step's (t, h, rejections so far)."""

    def _commit(self, t, h):
        self.log.append((t, h, self.stats["rejected"]))
        super()._commit(t, h)


def run(a, da, scheme, dt, T, log=None, **kw):
    """The max error at T of one run on 13 x 10 (and, with ``log``, its steps)."""
    shape = (13, 10)
    h = [1.0 / (n - 1) for n in shape]
    src = lambda t, x, y: da(t) * q(x, y) + 2.0 * a(t) * (y * (1 - y) + x * (1 - x))  # noqa: E731
    with pympc.Decomposition(shape, spacing=h) as d:
        s = Logged(d, u0=lambda x, y: a(0.0) * q(x, y), scheme=scheme, dt=dt, source=src, **kw)
        s.log = log if log is not None else []
        s.run(t_end=T, progress=None)
        xs = np.meshgrid(*[np.arange(n) * hh for n, hh in zip(shape, h)], indexing="ij")
        return np.abs(s.u.gather(root=None) - a(T) * q(*xs)).max()


def main():
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    a, da = (lambda t: 1.0 + np.sin(2 * t)), (lambda t: 2.0 * np.cos(2 * t))
    dts = 2.0 ** -np.arange(3, 9)
    for scheme, label, style in SCHEMES:
        errs = [run(a, da, scheme, dt, 1.0, tol=1e-13) for dt in dts]
        rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        left.loglog(dts, errs, style, label=f"{label} (last order {rates[-1]:.2f})")
    left.loglog(dts, 2e-3 * dts, "k:", lw=1, label="slope 1")
    left.loglog(dts, 4e-4 * dts ** 2, "k--", lw=1, label="slope 2")
    left.set_xlabel("dt")
    left.set_ylabel("max error at t = 1")
    left.set_title("temporal order (exact in space)")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    eps = 0.005
    a, da = (lambda t: 1.0 + np.sin(t) + np.exp(-t / eps)), (lambda t: np.cos(t) - np.exp(-t / eps) / eps)
    for scheme, label, style in SCHEMES:
        log = []
        err = run(a, da, scheme, 1e-4, 0.1, log=log, tol=1e-11, adapt={"atol": 1e-4, "rtol": 1e-4})
        t, h, rej = (np.array(c) for c in zip(*log))
        right.semilogy(t + h, h, style, ms=3, label=f"{label}: {len(t)} steps, {int(rej[-1])} rejected, "
                       f"error {err:.1e}")
    right.set_xlabel("t")
    right.set_ylabel("accepted step h")
    right.set_title("adaptive steps on a fast transient (exp(-t/0.005))")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "implicit_order.png"), dpi=110)


if __name__ == "__main__":
    main()
