"""Adaptive time steps: the step-size controller, its error norm and its last-step rule
(docs/solvers/timeloop.md, "Adaptive steps").

The controller is PETSc's ``TSADAPTBASIC`` (src/ts/adapt/impls/basic/adaptbasic.c), with
its default constants (src/ts/adapt/interface/tsadapt.c, ``TSAdaptCreate``):

* a step with weighted error ``err`` (:func:`wrms_norm` of the local error estimate) is
  accepted iff ``err <= 1`` (or the step is already at ``dt_min``);
* the next step is ``h * clip(s * err**(-1/order), clip)``, then clipped to
  ``[dt_min, dt_max]``, where ``s = safety`` (0.9), times ``reject_safety`` (0.5) when
  the previous try of this step was rejected too, and ``order`` is the exponent's
  denominator the scheme reports (its local error's order, e.g. 2 for backward Euler,
  3 for Crank-Nicolson and BDF2); ``err = 0`` proposes the largest growth, ``clip[1]``;
* a failed solve (the linear solver did not converge) retries with
  ``h * scale_solve_failed`` (0.25), and for ``increase_delay`` steps after it the
  step may not grow (PETSc's ``-ts_adapt_time_step_increase_delay``, default 0);
* after ``max_reject`` (10) rejections of one step the solver gives up;
* ``wnormtype``: the error norm over the grid, ``"2"`` (PETSc's default, the RMS of the
  weighted errors) or ``"infinity"`` (their maximum; PETSc's ``-ts_adapt_wnormtype
  infinity``). The RMS averages a local error over the whole grid: where the activity is
  local (a front, a spot), ``"infinity"`` holds every point to the tolerance.

:func:`final_step` is PETSc's rule for the end time (``TS_EXACTFINALTIME_MATCHSTEP``):
take the remainder when the step would overshoot it or come within 1% of it, half the
remainder when less than two steps remain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

import pympc
from pympc.runtime import InputError

#: the error norms over the grid (PETSc's ``-ts_adapt_wnormtype`` values)
NORMS = ("2", "infinity")

#: sqrt(machine epsilon): PETSc's slack for "the step is at dt_min".
_SQRT_EPS = math.sqrt(np.finfo(float).eps)


@dataclass
class Controller:
    """Local. PETSc's TSADAPTBASIC step-size controller (module doc), defaults as PETSc's.

    ``atol``/``rtol``: the tolerances of :func:`wrms_norm`; the rest are the controller's
    constants. ``just_decreased`` is its only state (steps left during which the step
    may not grow after a failed solve): :meth:`state`/:meth:`set_state` carry it through
    a checkpoint."""

    atol: float = 1e-4
    rtol: float = 1e-4
    safety: float = 0.9
    reject_safety: float = 0.5
    clip: tuple = (0.1, 10.0)
    dt_min: float = 1e-20
    dt_max: float = 1e20
    scale_solve_failed: float = 0.25
    max_reject: int = 10
    increase_delay: int = 0
    wnormtype: str = "2"
    just_decreased: int = 0

    def __post_init__(self):
        try:
            self.clip = (float(self.clip[0]), float(self.clip[1]))
        except (TypeError, ValueError, IndexError, KeyError):
            raise InputError(f"adapt: clip must be two numbers (lo, hi), got {self.clip!r}") from None
        reals = ("atol", "rtol", "safety", "reject_safety", "dt_min", "dt_max", "scale_solve_failed")
        for name in reals:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(float(value)) or float(value) < 0:
                raise InputError(f"adapt: {name} must be a finite number >= 0, got {value!r}")
            setattr(self, name, float(value))
        lo, hi = self.clip
        ok = (self.atol > 0 or self.rtol > 0) and 0 < self.safety and 0 < self.reject_safety <= 1 \
            and 0 < lo <= 1 <= hi and 0 < self.dt_min <= self.dt_max and 0 < self.scale_solve_failed < 1
        if not ok:
            raise InputError("adapt: need atol or rtol > 0, safety > 0, 0 < reject_safety <= 1, "
                             "0 < clip[0] <= 1 <= clip[1], 0 < dt_min <= dt_max, 0 < scale_solve_failed < 1; "
                             f"got {self.settings()}")
        if self.wnormtype not in NORMS:
            raise InputError(f"adapt: wnormtype must be one of {', '.join(NORMS)}, got {self.wnormtype!r}")
        for name in ("max_reject", "increase_delay", "just_decreased"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise InputError(f"adapt: {name} must be an integer >= 0, got {value!r}")
            setattr(self, name, int(value))

    @classmethod
    def make(cls, spec, **defaults) -> "Controller":
        """Local. A controller from ``spec``: a :class:`Controller` (copied), a dict of its
        fields (a job file's ``adapt = {...}``; ``defaults`` fill what it leaves out), or
        True (the defaults). :class:`pympc.InputError` for unknown keys."""
        if isinstance(spec, Controller):
            return cls(**asdict(spec))
        if spec is True:
            spec = {}
        if not isinstance(spec, dict):
            raise InputError(f"adapt must be a dict of controller settings, True or a Controller, got {spec!r}")
        known = [f.name for f in fields(cls) if f.name != "just_decreased"]
        unknown = sorted(set(spec) - set(known))
        if unknown:
            raise InputError(f"adapt: unknown setting(s) {unknown}; known: {known}")
        return cls(**{**defaults, **spec})

    def settings(self) -> dict:
        """Local. The constants as JSON-able data (a solver's physics), without the state."""
        d = asdict(self)
        d.pop("just_decreased")
        d["clip"] = list(self.clip)
        return d

    def choose(self, h, err, order, retry=False) -> tuple:
        """Local. ``(accept, h_next)`` for a step of size ``h`` whose weighted error is
        ``err`` (None or negative: no estimate, accept and keep ``h``), from a scheme whose
        local error is of order ``order``; ``retry``: the previous try of this step was
        rejected. PETSc's TSAdaptChoose_Basic, line for line, except that a non-finite
        ``err`` (a step that blew up) counts as infinite: rejected, the step cut by
        ``clip[0]``."""
        h = float(h)
        if err is None or err < 0:
            return True, h
        if not math.isfinite(err):  # a step that blew up (NaN or inf): reject, shrink most
            err = math.inf
        safety = self.safety
        if err > 1:
            if retry:
                safety *= self.reject_safety
            accept = h < (1 + _SQRT_EPS) * self.dt_min
        else:
            accept = True
        hfac = safety * err ** (-1.0 / order) if err > 0 else math.inf  # inf ** -x is 0
        if self.just_decreased:
            hfac = min(hfac, 1.0)
            self.just_decreased -= 1
        h_next = h * min(max(hfac, self.clip[0]), self.clip[1])
        return accept, min(max(h_next, self.dt_min), self.dt_max)

    def failed(self, h) -> float:
        """Local. The step to retry with after a failed solve: ``h * scale_solve_failed``;
        the step may not grow for the next ``increase_delay`` choices."""
        self.just_decreased += self.increase_delay
        return float(h) * self.scale_solve_failed

    def state(self) -> dict:
        """Local. The controller's state for a checkpoint (JSON: exact)."""
        return {"just_decreased": self.just_decreased}

    def set_state(self, state) -> None:
        """Local. Take back :meth:`state`."""
        self.just_decreased = int(state.get("just_decreased", 0))


def wrms_norm(u, y, atol, rtol, region=None, error=None, norm="2") -> float:
    """Collective. PETSc's weighted error norm (``TSErrorWeightedNorm``) of ``y`` against
    ``u`` (DistArrays on one decomposition: the accepted solution and the solution plus
    its local error estimate): with ``tol_i = atol + rtol max(|u_i|, |y_i|)`` and
    ``e_i = |y_i - u_i| / tol_i`` over the points of ``region`` (slices of ``.data``, e.g.
    an operator's ``unknowns``; default the owned points) whose ``tol_i > 0``:
    ``norm="2"``, ``sqrt(sum_i e_i^2 / n)`` with ``n`` their global count;
    ``norm="infinity"``, ``max_i e_i``. ``error``: a DistArray holding ``y - u`` already
    (then it is used for the difference). A NaN or infinity in any of them makes the norm
    infinite (a step that blew up is rejected). One Allreduce."""
    if norm not in NORMS:
        raise InputError(f"wrms_norm: norm must be one of {', '.join(NORMS)}, got {norm!r}")
    uu, yy = (u.owned, y.owned) if region is None else (u.data[region], y.data[region])
    diff = np.abs((yy - uu) if error is None else (error.owned if region is None else error.data[region]))
    tol = atol + rtol * np.maximum(np.abs(uu), np.abs(yy))
    ok = tol > 0
    weighted = diff[ok] / tol[ok]
    # a NaN or inf anywhere (a step that blew up) makes the norm infinite, never drops out
    blown = not (np.isfinite(diff).all() and np.isfinite(tol).all())
    if norm == "infinity":
        local = math.inf if blown else (float(weighted.max()) if weighted.size else 0.0)
        return float(pympc.reduce_all(("max", local), comm=u.decomp.cart)[0])
    local = math.inf if blown else (float(np.sum(np.square(weighted))) if weighted.size else 0.0)
    total, count = pympc.reduce_all(("sum", local), ("sum", int(np.count_nonzero(ok))), comm=u.decomp.cart)
    return math.sqrt(total / count) if count else 0.0


def final_step(t, h, t_end, a=1.01, b=2.0) -> float:
    """Local. The step to take from ``t`` when ``h`` is proposed and the run ends at
    ``t_end`` (PETSc's ``TSAdaptChoose`` with ``matchstepfac = (0.01, 2)``): the remainder
    when ``t + h`` would pass ``t_end`` or ``a h`` would reach it; half the remainder when
    ``b h`` would pass it (two steps would not fit); else ``h``."""
    t, h, t_end = float(t), float(h), float(t_end)
    rest = t_end - t
    if not t < t_end:
        return h
    out = h
    end = t + h
    if end > t_end:
        out = rest
    if end < t_end and h * b > rest:
        out = rest / 2
    if end < t_end and h * a > rest:
        out = rest
    return out
