"""What the iterative solvers return, and their one stopping rule."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Result:
    """The outcome of an iterative solve: the solution (``x``, also ``u``), the number of
    iterations (``cycles`` for multigrid), the final relative residual, why it stopped
    (``reason``) and the relative residual after each iteration (``history``)."""

    x: object
    iterations: int
    residual: float
    reason: str
    history: list = field(default_factory=list)

    @property
    def converged(self) -> bool:
        """Local. True when the stopping tolerance was met."""
        return self.reason == "converged"

    @property
    def u(self):
        """Local. The solution (the name the Poisson and multigrid guides use)."""
        return self.x

    @property
    def cycles(self) -> int:
        """Local. The iteration count under the name multigrid uses."""
        return self.iterations


def verdict(history, tol, it, maxiter, diverge=False):
    """Local. Why to stop after ``it`` iterations, or None to go on: ``"converged"`` when
    the last relative residual is below ``tol``; with ``diverge``, ``"diverged"`` when it
    is not finite or above 1e8 times the first; ``"iteration limit"`` at ``maxiter``."""
    last = history[-1]
    if last < tol:
        return "converged"
    if diverge and (not np.isfinite(last) or last > 1e8 * max(history[0], 1e-300)):
        return "diverged"
    if it >= maxiter:
        return "iteration limit"
    return None
