"""The pieces both multigrids share (:class:`solvers.multigrid.Multigrid`, the
rediscretised hierarchy, and :class:`solvers.mgops.GalerkinMultigrid`): the coarse
levels' lifecycle, the cycle itself (smoothing, coarse-grid correction, agglomeration onto
rank 0), the direct solve of the coarsest level and the solver's cycles."""

from __future__ import annotations

import numpy as np

import pympc
from pympc import costlog

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

    # -- the cycle: each multigrid supplies _pre_smooth, _post_smooth, _residual,
    # _restrict, _prolong_add and _agglomerates (whether the coarsest distributed level
    # hands the rest of the cycle to rank 0's serial levels)
    def _cycle(self, k, symmetric, levels):
        """One V- or W-cycle (``self.cycle``) on ``levels[k]`` and below; ``symmetric``:
        the preconditioner's cycle, whose post-smoother mirrors the pre-smoother."""
        lev = levels[k]
        last = k == len(levels) - 1
        if last and not (levels is self.levels and self._agglomerates()):
            with costlog.superstep("mg:coarse"):
                self._coarse_solve(lev)
            return
        with costlog.superstep("mg:smooth"):
            self._pre_smooth(lev, symmetric)
            self._residual(lev)
        if last:  # agglomerate: the rest of the cycle runs on rank 0 alone
            with costlog.superstep("mg:agglomerate"):
                self._agglomerated_correction(lev, symmetric)
        else:
            self._correct(levels, k, symmetric)
        with costlog.superstep("mg:smooth"):
            self._post_smooth(lev, symmetric)

    def _correct(self, levels, k, symmetric):
        """The coarse-grid correction of ``levels[k]`` from ``levels[k + 1]`` (twice in a
        W-cycle, but once from the coarsest level)."""
        lev, nxt = levels[k], levels[k + 1]
        with costlog.superstep("mg:restrict"):
            self._restrict(lev, nxt)
        nxt.u.data[...] = 0.0
        for _ in range(1 if self.cycle == "V" or k + 2 == len(levels) else 2):
            self._cycle(k + 1, symmetric, levels)
        with costlog.superstep("mg:prolong"):
            self._prolong_add(nxt, lev)

    def _agglomerated_correction(self, lev, symmetric):
        """Gather the last distributed level's residual onto rank 0, run the rest of the
        cycle there on the serial levels, and scatter the correction back into ``lev.u``."""
        r = lev.r.gather(root=0)
        e = None
        if self._root:
            top = self.serial[0]
            top.r.owned[...] = r
            top.u.data[...] = 0.0
            self._correct(self.serial, 0, symmetric)
            e = top.u.owned
        corr = pympc.DistArray.from_global(lev.d, e, root=0)
        lev.u.owned[...] += corr.owned

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
