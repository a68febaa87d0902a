"""The pieces both multigrids share (:class:`solvers.multigrid.Multigrid`, the
rediscretised hierarchy, and :class:`solvers.mgops.GalerkinMultigrid`): the coarse
levels' lifecycle, the direct solve of the coarsest level and the solver's cycles."""

from __future__ import annotations

import numpy as np

import pympc

from .result import Result, verdict


class _Cycles:
    """Local. What both multigrids share (this class and
    :class:`solvers.mgops.GalerkinMultigrid`): the coarse levels' lifecycle (``levels``,
    ``serial``), the direct solve of the coarsest level (rank 0 holds ``_keep`` and
    ``_lu``, or ``_dense`` when ``singular``) and the solver's cycles on a loaded finest
    level."""

    def close(self) -> None:
        """Collective. Free the coarse levels' decompositions."""
        for lev in self.levels[1:] + self.serial:
            lev.d.close()
        self.levels, self.serial = self.levels[:1], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _coarse_solve(self, lev):
        d = lev.d
        f = lev.f.gather(root=0)
        u = None
        if d.comm.Get_rank() == 0:
            b = f.ravel()[self._keep]
            x = self._dense @ (b - b.mean()) if self.singular else self._lu.solve(b)
            u = np.zeros(d.shape)
            u.ravel()[self._keep] = x
        lev.u.owned[...] = pympc.DistArray.from_global(d, u, root=0).owned

    def _iterate(self, fine, tol, maxiter) -> Result:
        """Cycles from ``fine.u`` on ``fine.f`` (loaded) until the relative residual is
        below ``tol`` or ``maxiter`` cycles; the zero-mean solution when ``singular``."""
        fnorm = fine.f.norm(2) or 1.0
        self._residual(fine)
        history = [fine.r.norm(2) / fnorm]
        reason, k = ("converged" if history[0] < tol else None), 0
        while reason is None:
            self._cycle(0, False, self.levels)
            k += 1
            self._residual(fine)
            history.append(fine.r.norm(2) / fnorm)
            reason = verdict(history, tol, k, maxiter, diverge=True)
        x = fine.u.copy()
        if self.singular:
            x.owned[...] -= x.sum() / np.prod(fine.d.shape)
        return Result(x, k, history[-1], reason, history)
