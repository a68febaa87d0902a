"""IMEX time stepping for reaction-diffusion systems
``u_c' = div(D_c grad u_c) + R_c(t, u)`` (components ``c``): the diffusion implicit, the
reaction explicit.

Schemes (``scheme=``; docs/solvers/imex.md):

- ``"euler"``: forward Euler on everything (the explicit baseline; ``dt`` within the
  diffusion limit ``h^2 / (2 d D_max)``);
- ``"sbdf1"``: IMEX Euler, ``(u^{n+1} - u^n)/h = -A u^{n+1} + R(u^n)``; order 1;
- ``"sbdf2"``: semi-implicit BDF2 (Ascher, Ruuth & Wetton 1995) with the variable-step
  weights of Wang & Ruuth (2008), ``w = h_n / h_{n-1}``; its first step is SBDF1; order 2;
- ``"ark2"``: the additive Runge-Kutta pair PETSc registers as ``TSARKIMEX2D`` (three
  stages, an explicit first stage, SDIRK ``gamma = 1 - 1/sqrt 2``), order 2, with its
  embedded first-order solution: the error estimate of the adaptive steps (``adapt=``).

Here ``A = -div(D grad .)`` is the component's diffusion operator. Every implicit solve is
in delta form, ``(sigma I + A) delta = r`` (``delta`` 0 on Dirichlet points), by conjugate
gradients preconditioned by multigrid, started from a predicted ``delta``. The ``delta``
of a step, the history (SBDF2: ``u^{n-1}``, ``h_{n-1}``) and the controller's state are
checkpointed, so a restart at the same rank count continues bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from pympc.runtime import InputError, get_logger

from .boundary import Boundaries
from .diffusion import DiffusionOperator
from .krylov import Jacobi, cg
from .multigrid import Multigrid
from .loop import TimeLoop, initial_field
from .adapt import Controller, final_step, wrms_norm
from .stability import heat_dt_limit

SCHEMES = ("euler", "sbdf1", "sbdf2", "ark2")

# -- the ARK2 tableau (PETSc's TSARKIMEX2D, arkimex.c) --------------------------------------
_S2 = math.sqrt(2.0)
#: the SDIRK diagonal of the implicit part
GAMMA = 1.0 - 1.0 / _S2
#: explicit part (rows: stages; strictly lower triangular)
A_EXPLICIT = np.array([[0.0, 0.0, 0.0], [2.0 - _S2, 0.0, 0.0], [0.75, 0.25, 0.0]])
#: implicit part (an explicit first stage, then SDIRK with diagonal GAMMA)
A_IMPLICIT = np.array([[0.0, 0.0, 0.0], [GAMMA, GAMMA, 0.0], [1.0 / (2.0 * _S2), 1.0 / (2.0 * _S2), GAMMA]])
#: the weights of the solution (both parts; the implicit part's last row)
B = A_IMPLICIT[2].copy()
#: the weights of the embedded first-order solution
B_EMBEDDED = np.array([(4.0 - _S2) / 8.0, (4.0 - _S2) / 8.0, 1.0 / (2.0 * _S2)])
#: the stage times (row sums of either part)
C = A_EXPLICIT.sum(axis=1)


class _Diffusion:
    """Local. One component's diffusion part: the product ``A u = -D lap u`` (true
    boundary values read from ``u``) and the shifted solve ``(sigma I + A) x = r`` by CG
    preconditioned by multigrid (``mg``: its options; False: Jacobi instead), the
    hierarchy built on the first solve and re-shifted (:meth:`Multigrid.set_shift`)
    when ``sigma`` changes."""

    def __init__(self, decomp, D, bc, tol, maxiter, mg):
        self.D, self.tol, self.maxiter = float(D), tol, maxiter
        self.mg_options = mg
        self.op = DiffusionOperator(decomp, k=self.D, bc=bc)
        self._shifted = DiffusionOperator(decomp, k=self.D, bc=bc)
        self.sigma, self._M = None, None

    @property
    def unknowns(self):
        """Local. The slices of ``data`` that hold this rank's unknowns."""
        return self.op.unknowns

    def product(self, u, out) -> None:
        """Collective. ``out = A u`` on the unknowns (0 elsewhere)."""
        self.op.apply(u, out)

    def solve(self, sigma, r, x0):
        """Collective. ``(sigma I + A) x = r`` by preconditioned CG from ``x0``; the
        :class:`~solvers.result.Result`."""
        if sigma != self.sigma:
            self._shifted.set_shift(sigma)
            if self.mg_options is False:
                self._M = Jacobi(self._shifted)
            elif self._M is None:
                self._M = Multigrid.from_operator(self._shifted, **(self.mg_options or {}))
            else:
                self._M.set_shift(sigma)
            self.sigma = sigma
        return cg(self._shifted, r, M=self._M, x0=x0, tol=self.tol, maxiter=self.maxiter)

    def close(self) -> None:
        """Collective. Free the multigrid hierarchy's communicators."""
        if hasattr(self._M, "close"):
            self._M.close()
        self._M, self.sigma = None, None


class IMEX(TimeLoop):
    """Collective. ``u_c' = D_c lap u_c + R_c(t, u)`` for the components ``c`` on
    ``decomp``, a :class:`~solvers.loop.TimeLoop` solver (docs/solvers/imex.md).

    ``components``: ``{name: initial field}`` (a DistArray, a number or ``f(*coords)``);
    ``diffusivity``: ``{name: D_c > 0}``; ``bc``: boundary conditions shared by the
    components (periodic axes, homogeneous Dirichlet); ``scheme``: one of
    :data:`SCHEMES`; ``dt``: the step (required with fixed steps; with ``adapt`` the first
    step, default the explicit diffusion limit); ``tol``, ``maxiter``: of each CG solve;
    ``adapt``: None (fixed steps) or the controller's settings (a dict of
    :class:`solvers.adapt.Controller` fields, or a Controller), ``"ark2"`` only;
    ``mg``: options of the multigrid preconditioner.

    A subclass defines :meth:`reaction`. ``solver.u`` is ``{name: DistArray}``;
    ``solver.stats`` counts steps, implicit solves, CG iterations and rejected steps.
    """

    name = "imex"

    def __init__(self, decomp, components, diffusivity, bc=None, dt=None, scheme="sbdf2", tol=1e-8,
                 maxiter=500, adapt=None, mg=None):
        super().__init__(decomp)
        self._check(components, diffusivity, scheme, tol)
        self.scheme, self.tol, self.maxiter = scheme, float(tol), int(maxiter)
        self.bc = Boundaries(decomp, bc)
        self.names = tuple(components)
        self.D = {c: float(diffusivity[c]) for c in self.names}
        self.u = {c: initial_field(decomp, components[c]) for c in self.names}
        for u in self.u.values():
            self.bc.fix_points(u)
        self.diffusion = {c: _Diffusion(decomp, self.D[c], bc, self.tol, self.maxiter, mg) for c in self.names}
        self._unk = self.diffusion[self.names[0]].unknowns
        # scratch: products and right-hand sides, initial guesses, reaction values, a stage
        self._tmp, self._guess, self._out, self._stage = ({c: self.u[c].empty_like() for c in self.names}
                                                          for _ in range(4))
        self.prev = {c: self.u[c].copy() for c in self.names} if scheme == "sbdf2" else {}
        self.dt_prev, self.history = None, 0
        self.stats = {"steps": 0, "solves": 0, "linear_iterations": 0, "rejected": 0}
        self.reason = None
        self._setup_steps(dt, adapt)

    @staticmethod
    def _check(components, diffusivity, scheme, tol):
        if scheme not in SCHEMES:
            raise InputError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if not isinstance(components, dict) or not components:
            raise InputError("components must be a non-empty dict {name: initial field}")
        if not isinstance(diffusivity, dict) or set(diffusivity) != set(components):
            raise InputError(f"diffusivity must give one D per component {sorted(components)}, got "
                             f"{diffusivity!r}")
        for c, D in diffusivity.items():
            if not isinstance(D, (int, float)) or isinstance(D, bool) or not D > 0 or not math.isfinite(D):
                raise InputError(f"diffusivity[{c!r}] must be a positive number, got {D!r}")
        if not isinstance(tol, (int, float)) or not 0 < tol < 1:
            raise InputError(f"tol must be a number in (0, 1), got {tol!r}")

    def _setup_steps(self, dt, adapt):
        """Local. The time-step rule: fixed ``dt``, or the controller of ``adapt``."""
        self.dt_limit = heat_dt_limit(self.decomp.spacing, max(self.D.values()))
        self.controller = None
        if adapt is not None:
            if self.scheme != "ark2":
                raise InputError(f"adapt needs an error estimate: scheme 'ark2' has one, {self.scheme!r} "
                                 "takes fixed steps")
            self.controller = Controller.make(adapt)
            self.adaptive = True
        if dt is None and adapt is None:
            if self.scheme != "euler":
                raise InputError(f"scheme {self.scheme!r} with fixed steps needs dt (or adapt=... for 'ark2')")
            dt = 0.9 * self.dt_limit
        dt = self.dt_limit if dt is None else dt
        if not isinstance(dt, (int, float)) or isinstance(dt, bool) or not dt > 0 or not math.isfinite(dt):
            raise InputError(f"dt must be a positive number, got {dt!r}")
        if self.scheme == "euler" and dt > self.dt_limit * (1 + 1e-12):
            raise InputError(f"dt={dt:g} exceeds the stability limit {self.dt_limit:g} of forward Euler")
        if self.scheme != "euler":
            self.dt_limit = None  # implicit diffusion: no limit on a restart's dt
        self.dt = float(dt)
        self._dt_rule = {"dt": self.dt, "adapt": None if self.controller is None else self.controller.settings()}

    # -- the interface of a reaction-diffusion model -----------------------------------
    def reaction(self, t, fields, out) -> None:
        """Local. ``out[c] = R_c(t, u)`` on the owned points, for every component ``c``
        (``fields``, ``out``: ``{name: DistArray}``); subclasses."""
        raise NotImplementedError(f"{type(self).__name__} must define reaction(t, fields, out)")

    def physics(self) -> dict:
        """Local. Diffusivities, scheme, solver tolerance and the time-step rule (a
        subclass adds its reaction's parameters)."""
        return {"diffusivity": dict(self.D), "scheme": self.scheme, "tol": self.tol, **self._dt_rule}

    def fields(self) -> dict:
        """Local. The state a checkpoint holds: the components, and SBDF2's ``u^{n-1}``
        (``<name>_prev``)."""
        return {**self.u, **{f"{c}_prev": p for c, p in self.prev.items()}}

    def output_fields(self) -> dict:
        """Local. The components (the history is state, not output)."""
        return dict(self.u)

    def set_fields(self, fields) -> None:
        """Local. Take a checkpoint's fields."""
        for c in self.names:
            self.u[c].owned[...] = fields[c].owned
            if c in self.prev:
                self.prev[c].owned[...] = fields[f"{c}_prev"].owned

    def state(self, params=None) -> dict:
        """Local. The loop's state plus the history (``dt_prev``, ``history``), the
        statistics and the controller's state."""
        extra = {"dt_prev": self.dt_prev, "history": self.history, "stats": dict(self.stats)}
        if self.controller is not None:
            extra["controller"] = self.controller.state()
        return {**super().state(params), **extra}

    def set_state(self, state) -> None:
        """Local. Take back what :meth:`state` stored."""
        self.dt_prev = None if state["dt_prev"] is None else float(state["dt_prev"])
        self.history = int(state["history"])
        self.stats = {k: int(v) for k, v in state["stats"].items()}
        if self.controller is not None:
            self.controller.set_state(state["controller"])

    def close(self) -> None:
        """Collective. Free the multigrid hierarchies (their coarse levels hold
        communicators); the solver may step on (they are rebuilt on demand)."""
        for part in self.diffusion.values():
            part.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def done(self, end) -> bool:
        """Collective. True once a step failed for good (``solver.reason``), as the
        loop's own rule otherwise."""
        return self.reason is not None or super().done(end)

    # -- the steps ---------------------------------------------------------------------
    def advance(self) -> None:
        """Collective. One (accepted) step of the scheme."""
        if self.scheme == "euler":
            self._euler()
        elif self.scheme == "ark2":
            self._ark2()
        else:
            self._sbdf()
        self.stats["steps"] += 1

    def _reaction(self, t, fields) -> dict:
        """Collective in name only (local work): ``{c: R_c(t, fields)}`` on the unknowns."""
        out = self._out
        with self.superstep("reaction"):
            self.reaction(t, fields, out)
        return {c: out[c].data[self._unk].copy() for c in self.names}

    def _product(self, c, u) -> np.ndarray:
        """Collective. ``A_c u`` on the unknowns (a new array)."""
        with self.superstep("diffusion"):
            self.diffusion[c].product(u, self._tmp[c])
        return self._tmp[c].data[self._unk].copy()

    def _solve(self, c, sigma, rhs, guess):
        """Collective. ``(sigma I + A_c) delta = rhs`` from ``guess`` (arrays on the
        unknowns): ``(delta, converged)``."""
        r, x0 = self._tmp[c], self._guess[c]
        r.data[...] = 0.0
        r.data[self._unk] = rhs
        x0.data[self._unk] = guess
        with self.superstep("solve"):
            res = self.diffusion[c].solve(sigma, r, x0)
        self.stats["solves"] += 1
        self.stats["linear_iterations"] += res.iterations
        return res.x.data[self._unk].copy(), res.converged

    def _failed(self, why) -> None:
        """Local. Stop the run (:meth:`done`) with ``why`` (the same on every rank:
        decided from reduced quantities)."""
        if self.reason is None:
            self.reason = why
            get_logger(self.name).warning("%s at t=%g: the run stops", why, self.t)

    def _euler(self) -> None:
        """Collective. Forward Euler: ``u += h (R(u) - A u)``."""
        h = self.dt
        R = self._reaction(self.t, self.u)
        for c in self.names:
            rate = R[c] - self._product(c, self.u[c])
            self.u[c].data[self._unk] += h * rate

    def _sbdf(self) -> None:
        """Collective. One SBDF1 step, or a variable-step SBDF2 step once a history exists."""
        h, t = self.dt, self.t
        two = self.scheme == "sbdf2" and self.history > 0
        Rn = self._reaction(t, self.u)
        if two:
            w = h / self.dt_prev
            Rp = self._reaction(t - self.dt_prev, self.prev)
        ok = True
        for c in self.names:
            u = self.u[c].data[self._unk]
            rhs = Rn[c] - self._product(c, self.u[c])
            if two:
                diff = u - self.prev[c].data[self._unk]
                rhs += w * (Rn[c] - Rp[c]) + (w * w / ((1.0 + w) * h)) * diff
                sigma, guess = (1.0 + 2.0 * w) / ((1.0 + w) * h), w * diff
            else:
                sigma, guess = 1.0 / h, h * rhs
            d, conv = self._solve(c, sigma, rhs, guess)
            ok = ok and conv
            if c in self.prev:
                self.prev[c].owned[...] = self.u[c].owned
            u += d
        self.dt_prev = h
        self.history = 1 if self.scheme == "sbdf2" else 0
        if not ok:
            self._failed("linear solve failed")

    def _ark2_stages(self, h):
        """Collective. The three stages of ARK2 from ``u^n`` with step ``h``:
        ``(slopes, converged)``, ``slopes[c]`` the list of ``R(U_j) - A U_j``. The implicit
        stages solve ``(sigma + A) delta_i = S_i / gamma - A u^n``, ``U_i = u^n + delta_i``
        (``S_i = sum_j<i a_ij R_j - a~_ij A U_j``, ``sigma = 1/(gamma h)``), and take
        ``A U_i = (h S_i - delta_i) / (gamma h)`` from the stage equation (no product)."""
        t, names, unk = self.t, self.names, self._unk
        R = {c: [v] for c, v in self._reaction(t, self.u).items()}
        AU = {c: [self._product(c, self.u[c])] for c in names}
        sigma, ok, delta = 1.0 / (GAMMA * h), True, {}
        stage = {c: self._stage[c] for c in names}
        for i in (1, 2):
            for c in names:
                S = sum(A_EXPLICIT[i, j] * R[c][j] - A_IMPLICIT[i, j] * AU[c][j] for j in range(i))
                # predicted delta: explicit Euler to the first stage, then scaled to c_3
                guess = C[1] * h * (R[c][0] - AU[c][0]) if i == 1 else (C[2] / C[1]) * delta[c]
                delta[c], conv = self._solve(c, sigma, S / GAMMA - AU[c][0], guess)
                ok = ok and conv
                AU[c].append((h * S - delta[c]) / (GAMMA * h))
                stage[c].owned[...] = self.u[c].owned
                stage[c].data[unk] += delta[c]
            for c, v in self._reaction(t + C[i] * h, stage).items():
                R[c].append(v)
        return {c: [R[c][j] - AU[c][j] for j in range(3)] for c in names}, ok

    def _ark2_try(self, h):
        """Collective. One ARK2 step of size ``h`` without committing it:
        ``(new, err, converged)``: the new values on the unknowns per component, the
        weighted RMS norm of the embedded error estimate (None with fixed steps)."""
        slopes, ok = self._ark2_stages(h)
        new, est = {}, {}
        for c in self.names:
            s = slopes[c]
            new[c] = self.u[c].data[self._unk] + h * (B[0] * s[0] + B[1] * s[1] + B[2] * s[2])
            if self.controller is not None:
                d = B - B_EMBEDDED
                est[c] = h * (d[0] * s[0] + d[1] * s[1] + d[2] * s[2])
        err = self._error_norm(new, est) if self.controller is not None and ok else None
        return new, err, ok

    def _commit(self, new) -> None:
        """Local. Take the new values of a step."""
        for c in self.names:
            self.u[c].data[self._unk] = new[c]

    def _ark2(self) -> None:
        """Collective. One ARK2 step: fixed, or tried and retried as the controller says."""
        if self.controller is None:
            new, _, ok = self._ark2_try(self.dt)
            self._commit(new)
            if not ok:
                self._failed("linear solve failed")
            return
        self._adaptive_step()

    def _error_norm(self, new, est) -> float:
        """Collective. PETSc's weighted norm (:func:`solvers.adapt.wrms_norm`, the
        controller's ``wnormtype``) of the embedded error over every component's unknowns
        (one reduction per component; the components have the same unknowns, so the RMS
        of all of them is the root of the mean of their squares, the max their max)."""
        ctrl, norms = self.controller, []
        for c in self.names:
            x, y, e = self._stage[c], self._guess[c], self._tmp[c]
            x.data[self._unk] = new[c]
            e.data[self._unk] = est[c]
            y.data[self._unk] = new[c] - est[c]  # the embedded (first-order) solution
            norms.append(wrms_norm(x, y, ctrl.atol, ctrl.rtol, region=self._unk, error=e, norm=ctrl.wnormtype))
        if ctrl.wnormtype == "infinity":
            return max(norms)
        return math.sqrt(sum(v * v for v in norms) / len(norms))

    def _adaptive_step(self) -> None:
        """Collective. Try ARK2 steps until the controller accepts one (at most
        ``max_reject`` rejections, then the run stops: ``solver.reason``); the last step
        is cut to land on ``t_end`` (:func:`solvers.adapt.final_step`)."""
        ctrl, h, retry = self.controller, self.dt, False
        for _ in range(ctrl.max_reject + 1):
            if self.t_end is not None:
                h = final_step(self.time, h, self.t_end)
            new, err, ok = self._ark2_try(h)
            if ok:
                accept, h_next = ctrl.choose(h, err, 2, retry)
            else:
                accept, h_next = False, ctrl.failed(h)
            if accept:
                self._commit(new)
                self.time += h
                self.dt_prev, self.dt = h, h_next
                return
            self.stats["rejected"] += 1
            h, retry = h_next, True
        self._failed("step rejected")
