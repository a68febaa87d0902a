"""Newton-Krylov for ``F(u) = 0`` on DistArrays (``docs/solvers/newton.md``): PETSc's
``newtonls`` (SNES) restated for pympc's solver interface.

- **Problem**: any object with ``decomp`` and a Collective ``residual(u, F)`` that writes
  ``F(u)`` on the unknowns and 0 elsewhere (boundary data held) and returns ``||F||_2``
  or None (then Newton computes the norm); optionally ``jacobian(u)`` (an operator of the
  Krylov protocol at ``u``: ``apply(x, y)``, optionally ``apply_dot``/``restrict``) and
  ``preconditioner(u)`` (an object with ``apply(r, z)``, e.g. a multigrid on the
  linearised operator). Newton calls them in that order, once per Newton step, at the
  same ``u``.
- **Step**: solve ``J d = -F`` by a Krylov method of :mod:`solvers.linear` (CG for an SPD
  Jacobian, GMRES/BiCGStab else) to the relative tolerance ``eta`` (Eisenstat-Walker or
  fixed), from 0; then ``u += lam d`` with ``lam`` from PETSc's ``bt`` line search
  (:func:`line_search_bt`).
- **Jacobian-free** (:class:`FDJacobian`): ``J a = (F(u + h a) - F(u)) / h`` with the
  Walker-Pernice step ``h = e_r sqrt(1 + ||u||_2) / ||a||_2`` (PETSc's MFFD default,
  ``e_r = sqrt(machine eps)``).
- **Stopping** (``reason`` of the :class:`NewtonResult`): ``"converged"`` when
  ``||F|| <= max(tol ||F_0||, atol)``; ``"diverged"`` when ``||F||`` is not finite or above
  ``1e10 ||F_0||``; ``"linear solve failed"`` when the Krylov solve broke down or met an
  indefinite operator (CG); ``"line search failed"``; ``"stagnated"`` when the step
  ``||lam d||`` fell below ``stol ||u||`` (PETSc counts this as converged; pympc does not,
  so that a solve with no root cannot report success); ``"iteration limit"``.
  A Krylov solve that hits its iteration limit is accepted (inexact Newton), as in PETSc.
- **Ranks**: every branch is decided from global norms and dot products
  (:func:`pympc.reduce_all`), so all ranks take the same one and return the same reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import pympc
from pympc.array import require_distarray
from pympc.kernels import vector
from pympc.runtime import InputError

from . import linear
from .result import Result

FD_ERROR = math.sqrt(np.finfo(float).eps)
"""PETSc's default relative error of the function, ``e_r`` of the Walker-Pernice step."""

LINEAR_FAILURES = ("indefinite", "breakdown")


@dataclass
class NewtonResult(Result):
    """Local. The outcome of :func:`newton`: :class:`~solvers.result.Result`'s ``x`` (the
    last iterate), ``iterations`` (Newton steps), ``residual`` (``||F|| / ||F_0||`` at the
    end), ``reason`` and ``history`` (``||F_k|| / ||F_0||``, index 0: the initial guess),
    and per Newton step the Krylov solve's ``linear_iterations`` and ``linear_reasons``,
    the forcing term ``etas`` (the relative tolerance of the linear solve) and the step
    length ``lambdas``; ``function_evaluations`` counts every residual evaluation (line
    search and finite differences) and ``fnorm0`` is ``||F(u_0)||_2``."""

    linear_iterations: list = field(default_factory=list)
    linear_reasons: list = field(default_factory=list)
    etas: list = field(default_factory=list)
    lambdas: list = field(default_factory=list)
    function_evaluations: int = 0
    fnorm0: float = 0.0


class EisenstatWalker:
    """Local. Eisenstat-Walker forcing terms, version 2 with PETSc's constants
    (``-snes_ksp_ew``): ``eta_0 = rtol_0``; then ``eta_k = gamma (||F_k|| /
    ||F_{k-1}||)^alpha``, raised to ``gamma eta_{k-1}^alpha`` when that safeguard exceeds
    ``threshold``; always at most ``rtol_max``. With ``alpha = (1 + sqrt 5) / 2`` Newton
    converges superlinearly with that order, not quadratically."""

    def __init__(self, rtol_0=0.3, rtol_max=0.9, gamma=1.0, alpha=(1.0 + math.sqrt(5.0)) / 2.0,
                 threshold=0.1):
        self.rtol_0, self.rtol_max, self.gamma = float(rtol_0), float(rtol_max), float(gamma)
        self.alpha, self.threshold = float(alpha), float(threshold)
        self.last = None  # (eta, ||F||) of the previous Newton step

    def forcing(self, fnorm: float) -> float:
        """Local. The relative tolerance of the next linear solve, at residual norm
        ``fnorm`` (the first call gives ``rtol_0``)."""
        if self.last is None:
            eta = self.rtol_0
        else:
            eta_last, fnorm_last = self.last
            eta = self.gamma * (fnorm / fnorm_last) ** self.alpha
            safe = self.gamma * eta_last ** self.alpha
            if safe > self.threshold:
                eta = max(eta, safe)
        eta = min(eta, self.rtol_max)
        self.last = (eta, fnorm)
        return eta


def walker_pernice(unorm: float, anorm: float, error: float = FD_ERROR) -> float:
    """Local. The Walker-Pernice differencing step ``h = error sqrt(1 + ||u||) / ||a||``
    for the product of the Jacobian at ``u`` with ``a`` (``anorm > 0``; both 2-norms)."""
    return error * math.sqrt(1.0 + unorm) / anorm


class FDJacobian:
    """Local. The Jacobian-free operator of ``problem`` at a base point (set by :meth:`at`):
    ``J a = (F(u + h a) - F(u)) / h`` with the Walker-Pernice ``h`` (:func:`walker_pernice`,
    relative error ``error``, default :data:`FD_ERROR`). ``||u||`` is computed once per
    base point, ``||a||`` once per product (one Allreduce); each product evaluates the
    residual once (counted in ``evaluations``). Construction is local."""

    def __init__(self, problem, error=None):
        self.problem = problem
        self.decomp = problem.decomp
        self.error = FD_ERROR if error is None else float(error)
        if not self.error > 0:
            raise InputError(f"fd_error must be > 0, got {error}")
        self.evaluations = 0
        self.u = self.F = self.work = None
        self.unorm = 0.0

    def at(self, u, F, unorm=None) -> "FDJacobian":
        """Collective. (One Allreduce when ``unorm`` is None.) Differentiate at ``u`` with
        ``F = F(u)`` already evaluated (both read, not copied: keep them unchanged while
        the operator is in use); ``unorm``: ``||u||_2`` if known."""
        self.u, self.F = u, F
        self.unorm = u.norm(2) if unorm is None else float(unorm)
        if self.work is None:
            self.work = u.empty_like()
        return self

    def apply(self, a, y) -> None:
        """Collective. ``y = J a`` on the unknowns (0 elsewhere, as the residual writes)."""
        (anorm,) = pympc.reduce_all(("norm2", a))
        if anorm == 0:
            y.fill(0.0)
            return
        h = walker_pernice(self.unorm, anorm, self.error)
        w = self.work
        w.owned[...] = self.u.owned
        vector.axpby(w.owned, h, a.owned, 1.0)  # w = u + h a
        self.problem.residual(w, y)
        self.evaluations += 1
        vector.axpby(y.owned, -1.0 / h, self.F.owned, 1.0 / h)  # y = (F(w) - F(u)) / h


def _clip(x, lo, hi):
    # PETSc's PetscClipInterval, comparisons included: a NaN fit gives hi
    m = x if x < hi else hi
    return m if lo < m else lo


def _cubic(f, slope, lam, g, lam_prev, g_prev):
    """The minimiser of the cubic through ``f``, ``slope`` at 0 and the last two trials
    (linesearchbt.c's formula)."""
    t1 = g - f - lam * slope
    t2 = g_prev - f - lam_prev * slope
    a = (t1 / (lam * lam) - t2 / (lam_prev * lam_prev)) / (lam - lam_prev)
    b = (-lam_prev * t1 / (lam * lam) + lam * t2 / (lam_prev * lam_prev)) / (lam - lam_prev)
    d = max(b * b - 3.0 * a * slope, 0.0)
    return -slope / (2.0 * b) if a == 0.0 else (-b + math.sqrt(d)) / (3.0 * a)


def line_search_bt(phi, f, slope, *, alpha=1e-4, max_cuts=40, min_lambda=1e-12, small_step=False):
    """Local. (Collective when ``phi`` is.) PETSc's ``bt`` backtracking line search on
    ``phi(lam) = 1/2 ||F(u + lam d)||^2`` (``f = phi(0)``, ``slope`` its derivative at 0,
    ``F . J d``: made negative if it is not). A trial is accepted when ``phi(lam) <= f +
    alpha lam slope``. First ``lam = 1`` (halved while ``phi`` is not finite), then the
    minimiser of the quadratic through ``f``, ``slope``, ``phi(1)``, then of the cubic
    through the last two trials, each clipped to ``[0.1, 0.5]`` times the last ``lam``.
    Returns ``(lam, phi(lam), evaluations, reason)``: reason None when accepted,
    ``"line search failed"`` after ``max_cuts`` cubic cuts or below ``min_lambda``, and
    ``"stagnated"`` when the full step fails and ``small_step`` (PETSc's
    ``||d|| < stol ||u||`` exit)."""
    slope = -abs(slope) if slope != 0 else -1.0
    lam, n = 1.0, 1
    g = phi(lam)
    while not math.isfinite(g):
        if lam <= min_lambda:
            return lam, g, n, "line search failed"
        lam *= 0.5
        g, n = phi(lam), n + 1
    if g <= f + lam * alpha * slope:
        return lam, g, n, None
    if small_step:
        return lam, g, n, "stagnated"
    lam_prev, g_prev = lam, g
    lam = _clip(-slope * lam * lam / (2.0 * (g - f - lam * slope)), 0.1 * lam, 0.5 * lam)
    g, n = phi(lam), n + 1
    if not math.isfinite(g):
        return lam, g, n, "line search failed"
    for _ in range(max_cuts):
        if g <= f + lam * alpha * slope:
            return lam, g, n, None
        if lam <= min_lambda:
            break
        trial = _cubic(f, slope, lam, g, lam_prev, g_prev)
        lam_prev, g_prev = lam, g
        lam = _clip(trial, 0.1 * lam, 0.5 * lam)
        g, n = phi(lam), n + 1
    if g <= f + lam * alpha * slope:
        return lam, g, n, None
    return lam, g, n, "line search failed"


class _Newton:
    """One Newton solve's state: the iterate ``u`` and ``F = F(u)``, the trial pair
    ``w``, ``G``, the right-hand side ``b = -F``, ``Jd = J d``; the options; the record."""

    def __init__(self, problem, u0, opts):
        self.problem, self.o = problem, opts
        self.u = u0.copy()
        self.F, self.w, self.G, self.b, self.Jd = (self.u.empty_like() for _ in range(5))
        self.ew = EisenstatWalker() if opts["ew"] else None
        self.fd = FDJacobian(problem, opts["fd_error"]) if opts["jacobian"] == "fd" else None
        self.evaluations = 0
        self.r = NewtonResult(self.u, 0, 1.0, None)

    def evaluate(self, u, F) -> float:
        """``F = F(u)``; its 2-norm (from the problem when it returns it)."""
        self.evaluations += 1
        norm = self.problem.residual(u, F)
        return F.norm(2) if norm is None else float(norm)

    def verdict(self, fnorm) -> str | None:
        """Why to stop at ``||F|| = fnorm`` after ``r.iterations`` steps, or None."""
        o, f0 = self.o, self.r.fnorm0
        if not math.isfinite(fnorm) or fnorm > 1e10 * f0:
            return "diverged"
        if fnorm <= max(o["tol"] * f0, o["atol"]):
            return "converged"
        return "iteration limit" if self.r.iterations >= o["maxiter"] else None

    def linearise(self):
        """The Jacobian operator and the preconditioner (or None) at ``u``."""
        jac, p = self.o["jacobian"], self.problem
        if self.fd is not None:
            J = self.fd.at(self.u, self.F, self.unorm)
        elif callable(jac):
            J = jac(self.u)
        else:
            J = p.jacobian(self.u)
        M = p.preconditioner(self.u) if hasattr(p, "preconditioner") else None
        return J, M

    def direction(self, J, M, fnorm):
        """Solve ``J d = -F`` to the forcing term; ``d``, or None when the solve failed."""
        o = self.o
        eta = self.ew.forcing(fnorm) if self.ew is not None else o["linear_tol"]
        np.negative(self.F.owned, out=self.b.owned)
        res = linear.solve(J, self.b, o["method"], M=M, tol=eta, maxiter=o["linear_maxiter"], **o["krylov"])
        r = self.r
        r.etas.append(eta)
        r.linear_iterations.append(res.iterations)
        r.linear_reasons.append(res.reason)
        if res.reason in LINEAR_FAILURES or not math.isfinite(res.residual):
            return None
        return res.x

    def search(self, J, d, fnorm):
        """The line search along ``d`` from ``u``: ``(lam, ||F(u + lam d)||, reason)``,
        the accepted trial left in ``w``, ``G``."""
        o, u, w = self.o, self.u, self.w

        def phi(lam):
            w.owned[...] = u.owned
            vector.axpby(w.owned, lam, d.owned, 1.0)
            return 0.5 * self.evaluate(w, self.G) ** 2

        if o["line_search"] == "basic":
            return 1.0, math.sqrt(2.0 * phi(1.0)), None
        J.apply(d, self.Jd)
        slope, dnorm = pympc.reduce_all(("dot", self.F, self.Jd), ("norm2", d))
        lam, g, _, why = line_search_bt(phi, 0.5 * fnorm ** 2, slope, alpha=o["alpha"], max_cuts=o["max_cuts"],
                                        min_lambda=o["min_lambda"], small_step=dnorm < o["stol"] * self.unorm)
        self.dnorm = dnorm
        return lam, math.sqrt(2.0 * g), why

    def step(self, fnorm):
        """One Newton step from ``u``: the new ``||F||`` and the reason to stop (or None)."""
        J, M = self.linearise()
        d = self.direction(J, M, fnorm)
        if d is None:
            return fnorm, "linear solve failed"
        self.dnorm = None
        lam, gnorm, why = self.search(J, d, fnorm)
        if why is not None:
            return fnorm, why
        self.u, self.w, self.F, self.G = self.w, self.u, self.G, self.F
        r = self.r
        r.iterations += 1
        r.lambdas.append(lam)
        r.history.append(gnorm / r.fnorm0 if r.fnorm0 > 0 else 0.0)
        self.unorm = self.u.norm(2)
        if self.o["monitor"] is not None:
            self.o["monitor"](r.iterations, self.u, gnorm)
        why = self.verdict(gnorm)
        dnorm = self.dnorm if self.dnorm is not None else d.norm(2)
        if why is None and lam * dnorm < self.o["stol"] * self.unorm:
            why = "stagnated"
        return gnorm, why

    def run(self) -> NewtonResult:
        """Newton steps until a verdict; the result."""
        r = self.r
        fnorm = r.fnorm0 = self.evaluate(self.u, self.F)
        self.unorm = self.u.norm(2)
        r.history.append(1.0 if fnorm > 0 else 0.0)
        if self.o["monitor"] is not None:
            self.o["monitor"](0, self.u, fnorm)
        reason = "converged" if fnorm == 0 else self.verdict(fnorm)
        while reason is None:
            fnorm, reason = self.step(fnorm)
        r.x, r.reason = self.u, reason
        r.residual = fnorm / r.fnorm0 if r.fnorm0 > 0 else 0.0
        r.function_evaluations = self.evaluations + (self.fd.evaluations if self.fd else 0)
        return r


def _options(problem, u0, kw) -> dict:
    """The checked options of :func:`newton` (one InputError line for bad input)."""
    if not hasattr(problem, "residual") or not hasattr(problem, "decomp"):
        raise InputError("newton: problem must have decomp and residual(u, F)")
    require_distarray(u0, "u0", "newton")
    why = problem.decomp.mismatch(u0.decomp, halo=True)
    if why is not None:
        raise InputError(f"newton: u0 must live on the problem's decomposition: {why}")
    if kw["method"] not in linear.KRYLOV:
        raise InputError(f"newton: method must be one of {list(linear.KRYLOV)}, got {kw['method']!r}")
    if kw["line_search"] not in ("bt", "basic"):
        raise InputError(f"newton: line_search must be 'bt' or 'basic', got {kw['line_search']!r}")
    jac = kw["jacobian"]
    if jac == "auto":
        kw["jacobian"] = "exact" if hasattr(problem, "jacobian") else "fd"
    elif jac == "exact" and not hasattr(problem, "jacobian"):
        raise InputError("newton: jacobian='exact' needs a problem with jacobian(u)")
    elif jac not in ("exact", "fd") and not callable(jac):
        raise InputError(f"newton: jacobian must be 'auto', 'exact', 'fd' or a callable u -> operator, got {jac!r}")
    if kw["ew"] is None:
        kw["ew"] = kw["linear_tol"] is None
    if kw["linear_tol"] is None:
        kw["linear_tol"] = 1e-5  # PETSc's KSP rtol, when EW is off
    if not (kw["tol"] >= 0 and kw["atol"] >= 0 and kw["linear_tol"] > 0 and int(kw["maxiter"]) >= 0):
        raise InputError("newton: tol, atol must be >= 0, linear_tol > 0 and maxiter >= 0")
    kw["krylov"] = {"restart": kw["restart"]} if "restart" in linear.options(kw["method"]) else {}
    return kw


def newton(problem, u0, *, tol=1e-8, atol=0.0, stol=1e-8, maxiter=50, method="cg", restart=30,
           linear_tol=None, ew=None, linear_maxiter=1000, line_search="bt", alpha=1e-4,
           max_cuts=40, min_lambda=1e-12, jacobian="auto", fd_error=None, monitor=None) -> NewtonResult:
    """Collective. Solve ``problem.residual(u) = 0`` by Newton-Krylov from ``u0`` (read,
    not written) and return a :class:`NewtonResult` (see the module doc for the problem
    protocol and the reasons).

    ``tol``/``atol``: stop when ``||F|| <= max(tol ||F_0||, atol)``; ``stol``: stagnation
    when a step is shorter than ``stol ||u||`` (0: never); ``maxiter``: Newton steps.
    ``method``: the Krylov method (``"cg"``, ``"cg_single"``, ``"bicgstab"``, ``"gmres"``
    with ``restart``) preconditioned by ``problem.preconditioner(u)`` when the problem has
    one; ``linear_maxiter``: its iteration limit. ``ew``: Eisenstat-Walker forcing terms
    (:class:`EisenstatWalker`; default: on unless ``linear_tol`` is given, the fixed
    relative tolerance otherwise, 1e-5 when neither). ``line_search``: ``"bt"``
    (:func:`line_search_bt` with ``alpha``, ``max_cuts``, ``min_lambda``) or ``"basic"``
    (full steps). ``jacobian``: ``"exact"`` (``problem.jacobian(u)``), ``"fd"``
    (:class:`FDJacobian` with ``fd_error``), a callable ``u -> operator``, or ``"auto"``
    (exact when the problem has one). ``monitor``: called as ``monitor(k, u, ||F||)`` at the
    initial guess (k = 0) and after each Newton step (``u`` is Newton's iterate: read it,
    do not keep it)."""
    kw = dict(tol=tol, atol=atol, stol=stol, maxiter=maxiter, method=method, restart=restart,
              linear_tol=linear_tol, ew=ew, linear_maxiter=linear_maxiter, line_search=line_search,
              alpha=alpha, max_cuts=max_cuts, min_lambda=min_lambda, jacobian=jacobian, fd_error=fd_error,
              monitor=monitor)
    return _Newton(problem, u0, _options(problem, u0, kw)).run()
