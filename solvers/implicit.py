"""Implicit diffusion: ``u_t = div(alpha grad u) + s(x, t)`` by backward Euler,
Crank-Nicolson or variable-step BDF2, fixed or adaptive steps (docs/solvers/implicit.md).

Space: the same (2d+1)-point flux form as :class:`solvers.heat.Heat` (face coefficient the
mean of the two neighbours' ``alpha``), so the explicit and the implicit solvers integrate
the same semi-discrete system ``u' = -A u + s``. Boundaries as Heat's (Dirichlet values
fixed in time, Neumann fluxes, periodic axes).

Each step solves for the increment ``delta = u^{n+1} - u^n`` (the "delta form"):
``(sigma I + A) delta = r`` with homogeneous boundary data (``delta`` is 0 on Dirichlet
points and has zero Neumann flux), by preconditioned conjugate gradients warm-started
from an extrapolation of the history:

* backward Euler: ``sigma = 1/h``, ``r = -A u^n + s^{n+1}``;
* Crank-Nicolson: ``sigma = 2/h``, ``r = -2 A u^n + s^n + s^{n+1}``;
* BDF2 (``w = h_n / h_{n-1}``): ``sigma = (1 + 2w) / ((1 + w) h)``,
  ``r = -A u^n + s^{n+1} + w^2 / ((1 + w) h) (u^n - u^{n-1})``; its first step is
  backward Euler (one local error of O(h^2): the global order stays 2).

Adaptive steps (``adapt=``): the local error estimates are PETSc's for BE and BDF2 (the
difference of the Lagrange derivative weights of order k and k+1, ``TSBDF``'s) and the
TR-AB2 estimate for CN (Gresho and Sani); the controller is
:class:`solvers.adapt.Controller` (PETSc's TSADAPTBASIC). A rejected step is retried
inside :meth:`ImplicitHeat.advance`: the time loop sees accepted steps only.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

import pympc
from pympc.bc import side_name
from pympc.runtime import InputError, get_logger

from . import krylov
from .adapt import Controller, final_step, wrms_norm
from .boundary import Boundaries
from .loop import TimeLoop, field_checksum, initial_field

SCHEMES = ("be", "cn", "bdf2")
#: the order of each scheme's local error estimate (the controller's exponent is -1/order)
_ORDER = {"be": 2, "cn": 3, "bdf2": 3}


class _Flux:
    """Local. ``A x = sigma x - div(alpha grad x)`` on the unknowns of ``decomp`` (Heat's
    flux form), 0 elsewhere, with the ghosts of ``x`` filled by ``bc`` (Boundaries).
    ``weights``: each Neumann boundary point's row is halved per Neumann axis it lies on
    (the half control volume), which makes the mirrored rows symmetric for CG; the
    right-hand side must then be scaled alike (:meth:`scale`). :meth:`apply` is
    collective (one halo exchange)."""

    def __init__(self, decomp, bc, alpha, shift=0.0, weights=False):
        self.decomp, self.bc, self.alpha, self.shift = decomp, bc, alpha, float(shift)
        self.variable = isinstance(alpha, pympc.DistArray)
        self.h2inv = [1.0 / h ** 2 for h in decomp.spacing]
        region = bc.unknown_region()
        g = decomp.ghost
        self.unknowns = tuple(slice(g + lo, g + hi) for lo, hi in region)
        self.w = self._weights() if weights else None

    def _weights(self):
        d = self.decomp
        neumann = any(kind == "neumann" for kind, _ in self.bc.conditions.values())
        if d.centring != "vertex" or not neumann:  # a cell grid's mirrored rows are symmetric already
            return None
        w = np.ones(d.local_shape)
        g = d.ghost
        for (a, s), (kind, _) in self.bc.conditions.items():
            if kind == "neumann" and d.at_boundary(a, s):
                idx = [slice(None)] * d.ndim
                idx[a] = 0 if s < 0 else -1
                w[tuple(idx)] *= 0.5
        return w[tuple(slice(sl.start - g, sl.stop - g) for sl in self.unknowns)]

    def set_shift(self, shift):
        """Local. The new ``sigma``."""
        self.shift = float(shift)

    def laplacian(self, x, out):
        """Collective. ``out = div(alpha grad x)`` on the unknowns (ghosts of ``x`` filled
        here: halo exchange, then ``bc``), 0 elsewhere."""
        pympc.update_halo(x, width=1)
        self.bc.apply(x)
        c = x.data[self.unknowns]
        acc = np.zeros(c.shape)
        for a in range(self.decomp.ndim):
            lo, hi = _shifted(self.unknowns, a, -1), _shifted(self.unknowns, a, 1)
            if self.variable:
                k = self.alpha.data
                kc = k[self.unknowns]
                acc += (0.5 * (kc + k[hi]) * (x.data[hi] - c) - 0.5 * (kc + k[lo]) * (c - x.data[lo])) * self.h2inv[a]
            else:
                acc += self.alpha * self.h2inv[a] * ((x.data[lo] - 2.0 * c) + x.data[hi])
        out.data[...] = 0.0
        out.data[self.unknowns] = acc

    def apply(self, x, y):
        """Collective. ``y = W (sigma x - div(alpha grad x))`` on the unknowns, 0 elsewhere."""
        self.laplacian(x, y)
        yy = y.data[self.unknowns]
        yy *= -1.0
        yy += self.shift * x.data[self.unknowns]
        if self.w is not None:
            yy *= self.w

    def diagonal(self):
        """Local. The diagonal of W A (1 off the unknowns)."""
        d = pympc.DistArray(self.decomp).fill(1.0)
        diag = np.full(d.data[self.unknowns].shape, self.shift)
        for a in range(self.decomp.ndim):
            if self.variable:
                k = self.alpha.data
                lo, hi = _shifted(self.unknowns, a, -1), _shifted(self.unknowns, a, 1)
                diag += (0.5 * (k[self.unknowns] + k[hi]) + 0.5 * (k[self.unknowns] + k[lo])) * self.h2inv[a]
            else:
                diag += 2.0 * self.alpha * self.h2inv[a]
        d.data[self.unknowns] = diag if self.w is None else diag * self.w
        return d

    def restrict(self, b, out=None):
        """Local. ``b`` on the unknowns, 0 elsewhere (into ``out``, or a new array)."""
        out = b.empty_like() if out is None else out
        out.data[...] = 0.0
        out.data[self.unknowns] = b.data[self.unknowns]
        return out

    def scale(self, b):
        """Local. ``b *= W`` on the unknowns (the right-hand side of a weighted system)."""
        if self.w is not None:
            b.data[self.unknowns] *= self.w


def _shifted(slices, axis, by):
    out = list(slices)
    out[axis] = slice(slices[axis].start + by, slices[axis].stop + by)
    return tuple(out)


def lagrange_lte_weights(times, k) -> list:
    """Local. PETSc's BDF local-error weights (``TSBDF_VecLTE``): with ``times`` =
    ``[t_{n+1}, t_n, ...]`` (at least k + 2 of them), the coefficients ``c_i`` of
    ``LTE = sum_i c_i u_i``: ``(a_i - b_i) / a_0`` with ``a`` (``b``) the derivative
    weights at ``t_{n+1}`` of the Lagrange interpolant through the first k + 1 (k + 2)
    points. For k = 1 and uniform steps: ``-(u^{n+1} - 2 u^n + u^{n-1}) / 2``; k = 2:
    ``-(2/9) (u^{n+1} - 3 u^n + 3 u^{n-1} - u^{n-2})``."""
    a = _derivative_weights(times[:k + 1]) + [0.0]
    b = _derivative_weights(times[:k + 2])
    return [(ai - bi) / a[0] for ai, bi in zip(a, b)]


def _derivative_weights(t) -> list:
    """Local. ``dL_i(t_0)``: the derivatives at ``t[0]`` of the Lagrange basis through ``t``."""
    n = len(t)
    out = []
    for i in range(n):
        s = 0.0
        for j in range(n):
            if j == i:
                continue
            p = 1.0 / (t[i] - t[j])
            for m in range(n):
                if m != i and m != j:
                    p *= (t[0] - t[m]) / (t[i] - t[m])
            s += p
        out.append(s)
    return out


class ImplicitHeat(TimeLoop):
    """Collective. ``u_t = div(alpha grad u) + source`` on ``decomp`` with an implicit
    scheme (module doc), a :class:`~solvers.loop.TimeLoop` solver.

    ``alpha``, ``u0``, ``bc``: as :class:`solvers.heat.Heat`'s. ``scheme``: ``"be"``,
    ``"cn"`` or ``"bdf2"``. ``source``: None, a number, a DistArray or ``f(*coords)``
    (constant in time), or ``f(t, *coords)`` (exactly d + 1 parameters, no ``*args``). ``dt``: the step (fixed steps), or the first step's (adaptive;
    then required too). ``adapt``: None (fixed steps) or the controller, a
    :class:`~solvers.adapt.Controller`, a dict of its settings (``{"atol": 1e-5}``), a
    number (``atol = rtol``; a job file's ``adapt = 1e-4``) or True (the defaults;
    BDF2's default step growth is capped at 2, its zero-stability limit being
    1 + sqrt(2)). ``tol``/``maxiter``: of each CG solve (relative residual); ``mg``:
    its preconditioner, multigrid (:class:`~solvers.multigrid.Multigrid` of
    :class:`~solvers.diffusion.DiffusionOperator`) where it applies (vertex grids without
    Neumann sides: None), Jacobi (False, and on other grids), or a dict of multigrid
    options. :meth:`close` (or ``with``) frees the multigrid's communicators.

    ``solver.stats``: ``{"steps", "rejected", "solves", "linear_iterations"}`` (kept in
    checkpoints); ``solver.reason``: None, or why the run stopped early (``"step
    rejected"``: ``max_reject`` rejections of one step; ``"linear solve failed"``)."""

    name = "implicit_heat"

    def __init__(self, decomp, alpha=1.0, u0=0.0, bc=None, dt=None, scheme="cn", source=None,
                 tol=1e-8, maxiter=200, adapt=None, mg=None):
        super().__init__(decomp)
        if scheme not in SCHEMES:
            raise InputError(f"scheme must be one of {list(SCHEMES)}, got {scheme!r}")
        if dt is None or isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0 < dt < math.inf:
            raise InputError(f"dt must be a positive number (the step, or an adaptive run's first step), got {dt!r}")
        if not 0 < tol < 1 or int(maxiter) < 1:
            raise InputError(f"tol must be in (0, 1) and maxiter >= 1, got tol={tol!r}, maxiter={maxiter!r}")
        self.scheme, self.tol, self.maxiter = scheme, float(tol), int(maxiter)
        self.dt = self._dt_given = float(dt)
        self.bc = Boundaries(decomp, bc)
        homogeneous = Boundaries(decomp, {side_name(a, s): (k, 0.0) for (a, s), (k, _) in self.bc.conditions.items()})
        self._alpha_param, alpha = _take_alpha(decomp, alpha)
        self._rates = _Flux(decomp, self.bc, alpha)           # -A u with the true boundary data
        self._op = _Flux(decomp, homogeneous, alpha, weights=True)  # the solves' sigma I + A (delta)
        self.controller = None
        if adapt is not None and adapt is not False:
            extra = {"clip": (0.1, 2.0)} if scheme == "bdf2" else {}
            if isinstance(adapt, (int, float)) and not isinstance(adapt, bool):  # a job file's number
                adapt = {"atol": adapt, "rtol": adapt}
            self.controller = Controller.make(adapt, **extra)
            self.adaptive = True
        self._source_param, self._source = _take_source(decomp, source)
        self.u = initial_field(decomp, u0)
        # last: the multigrid holds communicators (close()), nothing may raise after it
        self._mg = self._multigrid(alpha, mg)
        self.preconditioner = "jacobi" if self._mg is None else "multigrid"
        self.bc.fix_points(self.u)
        self._history_fields()
        self.dt_prev = self.dt_prev2 = self.dt
        self.history = 0  # past solutions held: u_prev (1), u_prev2 (2); CN: du_prev (1)
        self.reason = None
        self.stats = {"steps": 0, "rejected": 0, "solves": 0, "linear_iterations": 0}

    def _history_fields(self):
        """Local. The history arrays the scheme needs (all of them checkpointed)."""
        self.u_prev = self.u.empty_like().fill(0.0) if self.scheme != "cn" else None
        self.u_prev2 = self.u.empty_like().fill(0.0) if self.scheme == "bdf2" and self.adaptive else None
        self.du_prev = self.u.empty_like().fill(0.0) if self.scheme == "cn" else None
        self._lu, self._r, self._delta, self._new = (self.u.empty_like() for _ in range(4))

    # -- TimeLoop interface ---------------------------------------------------------------
    def physics(self):
        """Local. ``alpha`` (a fingerprint when it varies), the scheme, the step rule
        (``dt``; ``adapt``: the controller's settings or None), the CG tolerance and the
        source's description."""
        return {"alpha": self._alpha_param, "scheme": self.scheme, "dt": self._dt_given,
                "adapt": self.controller.settings() if self.controller else None, "tol": self.tol,
                "source": self._source_param}

    def fields(self):
        """Local. ``u`` and the history the next step reads (restart: bit-identical)."""
        out = {"u": self.u}
        for name in ("u_prev", "u_prev2", "du_prev"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def output_fields(self):
        """Local. ``u`` alone (the history is state, not output)."""
        return {"u": self.u}

    def set_fields(self, fields):
        """Local. Take a checkpoint's fields."""
        for name, a in self.fields().items():
            a.owned[...] = fields[name].owned

    def state(self, params=None):
        """Local. The loop's state plus the step history, controller and statistics."""
        st = super().state(params)
        st.update({"dt_prev": self.dt_prev, "dt_prev2": self.dt_prev2, "history": self.history,
                   "stats": dict(self.stats), "reason": self.reason,
                   "controller": self.controller.state() if self.controller else None})
        return st

    def set_state(self, state):
        """Local. Take back :meth:`state`."""
        self.dt_prev, self.dt_prev2 = float(state["dt_prev"]), float(state["dt_prev2"])
        self.history, self.reason = int(state["history"]), state.get("reason")
        self.stats = {k: int(v) for k, v in state["stats"].items()}
        if self.controller is not None and state.get("controller") is not None:
            self.controller.set_state(state["controller"])

    def done(self, end):
        """Collective. True once a step failed for good (:attr:`reason`, logged)."""
        return self.reason is not None

    # -- the step ---------------------------------------------------------------------------
    def advance(self):
        """Collective. One accepted step (adaptive: retried with smaller steps until the
        controller accepts, at most ``max_reject`` times)."""
        t = self.t
        self._rates.laplacian(self.u, self._lu)  # div(alpha grad u^n), the true boundary data
        if not self.adaptive:
            if not self._solve(t, self.dt):
                self._fail("linear solve failed")
            else:
                self._commit(t, self.dt)
            return
        ctl, h, retry = self.controller, self.dt, False
        for _ in range(ctl.max_reject + 1):
            if self.t_end is not None:
                h = final_step(t, h, self.t_end)
            if not self._solve(t, h):
                h, retry = ctl.failed(h), True
                self.stats["rejected"] += 1
                continue
            accept, h_next = ctl.choose(h, self._error(h), self._order(), retry)
            if accept:
                self._commit(t, h)
                self.dt = h_next
                return
            h, retry = h_next, True
            self.stats["rejected"] += 1
        self.dt = h
        self._fail("step rejected")

    def _fail(self, reason):
        self.reason = reason
        self.step_count -= 1  # the loop counts the step advance() returns from: not taken
        get_logger(self.name).warning("%s at t=%g (step %d): the run stops here", reason, self.t, self.step_count)

    def _multigrid(self, alpha, mg):
        """Collective. ``(DiffusionOperator, Multigrid)`` for the solves, or None (then
        :class:`_Flux` with Jacobi): multigrid needs a vertex grid without Neumann sides;
        ``mg``: None (multigrid where it applies), False (Jacobi), or a dict of
        :class:`~solvers.multigrid.Multigrid` options (then it must apply)."""
        if mg is False or self._op.w is not None or self.decomp.centring != "vertex":
            if mg:
                raise InputError("mg: multigrid needs a vertex-centred grid without Neumann sides")
            return None
        if mg is not None and not isinstance(mg, dict):
            raise InputError(f"mg must be None, False or a dict of Multigrid options, got {mg!r}")
        try:
            from .diffusion import DiffusionOperator
            from .multigrid import Multigrid
        except ImportError as e:  # a checkout without the variable-coefficient multigrid
            if mg:
                raise InputError(f"mg: multigrid with a shift is not available ({e})") from None
            return None
        op = DiffusionOperator(self.decomp, k=alpha, shift=0.0)
        try:
            return op, Multigrid.from_operator(op, **(mg or {}))
        except InputError:  # a grid it does not take (3-D variable alpha): Jacobi
            if mg:
                raise
            return None

    def _preconditioned(self, sigma):
        """Collective. ``(operator, preconditioner)`` of ``sigma I + A`` (the multigrid's
        shift is set only when it changes: the hierarchy equals one built with it)."""
        if self._mg is None:
            self._op.set_shift(sigma)
            return self._op, krylov.Jacobi(self._op)
        op, mg = self._mg
        if op.shift != sigma:
            op.set_shift(sigma)
            mg.set_shift(sigma)
        return op, mg

    def close(self):
        """Collective. Free the multigrid's coarse levels (their communicators)."""
        if self._mg is not None:
            self._mg[1].close()
            self._mg = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _omega(self, h):
        return h / self.dt_prev

    def _solve(self, t, h) -> bool:
        """Collective. ``self._new = u^n + delta`` for a step of ``h`` from ``t``; whether
        the linear solve converged."""
        sigma, r, guess = self._system(t, h)
        op, M = self._preconditioned(sigma)
        self._op.scale(r)
        res = krylov.cg(op, r, M=M, x0=guess, tol=self.tol, maxiter=self.maxiter)
        self.stats["solves"] += 1
        self.stats["linear_iterations"] += res.iterations
        self.last_iterations = res.iterations
        np.add(self.u.owned, res.x.owned, out=self._new.owned)
        self._delta = res.x
        return res.converged

    def _system(self, t, h):
        """Local. ``(sigma, r, guess)`` of the delta-form system of a step of ``h`` from
        ``t`` (module doc); ``guess``: the extrapolated increment (None: 0)."""
        r, lu, u = self._r, self._lu.owned, self.u.owned
        s1 = self._source_at(t + h)
        w = self._omega(h)
        guess = self._delta if self.history else None
        if self.scheme == "cn":
            s0 = self._source_at(t)
            du = lu + s0  # u'^n (the AB2 predictor's, and the next step's u'^{n-1})
            self._du = du
            r.owned[...] = 2.0 * lu + s0 + s1
            if self.history:  # AB2 predictor: delta = (h/2)((2 + w) u'^n - w u'^{n-1})
                self._delta.owned[...] = 0.5 * h * ((2.0 + w) * du - w * self.du_prev.owned)
            else:  # forward Euler
                self._delta.owned[...] = h * du
            return 2.0 / h, r, self._delta
        bdf2 = self.scheme == "bdf2" and self.history
        r.owned[...] = lu + s1
        if bdf2:
            r.owned[...] += (w * w / ((1.0 + w) * h)) * (u - self.u_prev.owned)
        if self.history:  # linear extrapolation of the last increment
            self._delta.owned[...] = w * (u - self.u_prev.owned)
        sigma = (1.0 + 2.0 * w) / ((1.0 + w) * h) if bdf2 else 1.0 / h
        return sigma, r, guess

    def _order(self):
        if self.scheme == "bdf2" and self.history < 2:
            return 2  # PETSc: the order-1 estimate until BDF2 has a third past point
        return _ORDER[self.scheme]

    def _error(self, h):
        """Collective. The weighted norm of the step's local error estimate (None: no
        estimate, the first step)."""
        if not self.history:
            return None
        est, new, u = self._r, self._new.owned, self.u.owned  # _r is free after the solve
        if self.scheme == "cn":  # TR-AB2: (u^{n+1} - u^p) / (3 (1 + h_{n-1} / h_n))
            w = self._omega(h)
            pred = u + 0.5 * h * ((2.0 + w) * self._du - w * self.du_prev.owned)
            est.owned[...] = (new - pred) / (3.0 * (1.0 + 1.0 / w))
        else:
            k = 2 if self.scheme == "bdf2" and self.history >= 2 else 1
            times = [0.0, -h, -h - self.dt_prev, -h - self.dt_prev - self.dt_prev2][:k + 2]
            c = lagrange_lte_weights(times, k)
            past = [new, u, self.u_prev.owned] + ([self.u_prev2.owned] if k == 2 else [])
            est.owned[...] = sum(ci * p for ci, p in zip(c, past))
        est.owned[...] += new  # PETSc's y = u^{n+1} + LTE
        ctl = self.controller
        return wrms_norm(self._new, est, ctl.atol, ctl.rtol, self._op.unknowns, norm=ctl.wnormtype)

    def _commit(self, t, h):
        """Local. Accept the step: the history moves on, ``u = u^{n+1}``, the time."""
        if self.u_prev2 is not None:
            self.u_prev2.owned[...] = self.u_prev.owned
        if self.u_prev is not None:
            self.u_prev.owned[...] = self.u.owned
        if self.du_prev is not None:
            self.du_prev.owned[...] = self._du
        self.u, self._new = self._new, self.u
        self.dt_prev2, self.dt_prev = self.dt_prev, h
        self.history = min(self.history + 1, 2)
        self.stats["steps"] += 1
        if self.adaptive:  # the last step lands on t_end exactly (final_step took the rest)
            end = self.t_end
            self.time = end if end is not None and h == end - t else t + h

    def _source_at(self, t):
        """Local. The source's owned values at time ``t`` (a number or an array)."""
        s = self._source
        if s is None:
            return 0.0
        if callable(s):
            return s(t)
        return s


def _take_alpha(decomp, alpha):
    """Collective. ``(parameter, alpha)``: a positive number, or a DistArray copied with
    its ghosts filled (box halo, mirrored beyond physical sides, as Heat does)."""
    if isinstance(alpha, pympc.DistArray):
        why = decomp.mismatch(alpha.decomp)
        if why is not None:
            raise InputError(f"alpha must live on the solver's decomposition (or one built alike): {why}")
        k = initial_field(decomp, alpha)
        amin, amax = pympc.reduce_all(("min", k), ("max", k))
        if not amin > 0:
            raise InputError(f"alpha must be positive, got minimum {amin}")
        pympc.update_halo(k, stencil="box")
        pympc.bc.neumann(k)
        return {"field": field_checksum(k), "min": float(amin), "max": float(amax)}, k
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < math.inf:
        raise InputError(f"alpha must be a positive number or a DistArray, got {alpha!r}")
    return float(alpha), float(alpha)


def _takes_time(fn, ndim) -> bool:
    """Local. Whether ``fn`` takes ``(t, *coords)``: ndim + 1 positional parameters, none
    of them ``*args`` (a formula's ``*coords``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == ndim + 1


def _take_source(decomp, source):
    """Collective. ``(parameter, source)``: None; a number; an owned array (a DistArray's
    values, constant in time); or ``f(t)`` returning the owned values of the callable
    ``source(t, *coords)`` (``source(*coords)``, e.g. a job file's formula: constant)."""
    if source is None:
        return None, None
    if isinstance(source, pympc.DistArray):
        s = initial_field(decomp, source)
        return {"field": field_checksum(s)}, s.owned.copy()
    if callable(source):
        name = getattr(source, "__qualname__", type(source).__name__)
        desc = {"function": f"{getattr(source, '__module__', '?')}.{name}"}
        if not _takes_time(source, decomp.ndim):  # f(*coords): constant in time (a job's formula)
            return desc, initial_field(decomp, source).owned.copy()

        def at(t):
            return pympc.DistArray.from_function(decomp, lambda *x: source(t, *x)).owned
        return desc, at
    if isinstance(source, bool) or not isinstance(source, (int, float)) or not math.isfinite(source):
        raise InputError(f"source must be None, a number, a DistArray or f(t, *coords), got {source!r}")
    return float(source), float(source)

