"""The contract every linear solver shares (see ``docs/solvers/linear.md``): the
arguments it checks (:func:`check_arguments`), what it returns (:class:`Result`) and
its stopping rule (:func:`verdict`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pympc.array import require_distarray
from pympc.runtime import InputError


@dataclass
class Result:
    """Local. The outcome of an iterative solve, the same for every method (Krylov,
    multigrid, Poisson's sweeps): the solution ``x``, the number of ``iterations``
    (Krylov iterations, multigrid cycles, sweeps), the final relative ``residual``, why it
    stopped (``reason``) and the relative residual after each iteration (``history``,
    index 0: the initial guess). Each concept has one name: there are no aliases."""

    x: object
    iterations: int
    residual: float
    reason: str
    history: list = field(default_factory=list)

    @property
    def converged(self) -> bool:
        """Local. True when the stopping tolerance was met."""
        return self.reason == "converged"


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


def check_arguments(decomp, b, x0, tol, maxiter, who) -> None:
    """Local. Refuse, with the same :class:`~pympc.InputError` on every rank, a
    right-hand side ``b`` or initial guess ``x0`` that is not a DistArray on a
    decomposition compatible with ``decomp`` (built alike: they pair point for point),
    ``tol <= 0`` or ``maxiter < 1``; ``who`` names the solver in the message."""
    require_distarray(b, "b", who)
    if x0 is not None:
        require_distarray(x0, "x0", who)
    why = decomp.mismatch(b.decomp, halo=True)
    if why is not None:
        raise InputError(f"b must live on the operator's decomposition: {why}")
    if not tol > 0 or int(maxiter) < 1:
        raise InputError("tol must be > 0 and maxiter >= 1")
    why = None if x0 is None else decomp.mismatch(x0.decomp, halo=True)
    if why is not None:
        raise InputError(f"x0 must live on the operator's decomposition: {why}")
