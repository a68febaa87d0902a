"""The Poisson equation ``-lap u = f`` by Jacobi and red-black SOR.

Discretisation: the (2d+1)-point Laplacian on the decomposition's grid. Dirichlet sides
hold the boundary points (vertex centring) at their values; periodic axes wrap. With every
axis periodic the problem is singular: the mean of ``f`` is removed (compatibility) and the
solution returned is the one with zero mean.

The solver follows the time-stepping interface (:class:`solvers.loop.TimeLoop`): one
step is one iteration (``dt = 1``, so ``t`` counts iterations), ``advance()`` is one
sweep, ``run(steps=maxiter, output=, checkpoint=, restart=, ...)`` iterates to
convergence or ``steps``; :meth:`Poisson.solve` is that run returning a :class:`Result`.

Stopping rule, for both methods: the relative residual ``||f - A u||_2 / ||f||_2`` over
the unknowns (or relative to the initial residual when ``f`` is zero there) is checked
every ``check_every`` iterations (one reduction each time). The result says why it
stopped: ``"converged"``, ``"iteration limit"`` or ``"diverged"`` (residual above 1e8
times the first one, or not finite).

Red-black SOR colours points by the parity of their global index sum (the same on every
decomposition): one iteration is a red half-sweep, a halo exchange, a black half-sweep and
another exchange. The default ``omega`` is the optimum for the model problem,
``2 / (1 + sqrt(1 - rho^2))`` with ``rho`` the Jacobi spectral radius of this grid.
"""

from __future__ import annotations

import numpy as np

import pympc
from pympc import kernels
from pympc.runtime import InputError

from . import deephalo
from .boundary import Boundaries
from .loop import TimeLoop, field_checksum, initial_field
from .result import Result, verdict

METHODS = ("jacobi", "rbsor")


def jacobi_radius(decomp) -> float:
    """Local. The spectral radius of the Jacobi iteration for this grid's Laplacian
    (the slowest mode: sin modes with Dirichlet, the first non-constant Fourier mode on
    periodic axes)."""
    w = 1.0 / np.array(decomp.spacing) ** 2
    cos = []
    for a in range(decomp.ndim):
        n = decomp.shape[a]
        cos.append(np.cos(2 * np.pi / n) if decomp.periodic[a] else np.cos(np.pi / max(n - 1, 2)))
    if all(decomp.periodic):
        # the constant mode is removed; the slowest is one axis' first Fourier mode
        return float(max((np.sum(w) - w[a] * (1 - cos[a])) / np.sum(w) for a in range(decomp.ndim)))
    return float(np.dot(w, cos) / np.sum(w))


def optimal_omega(decomp) -> float:
    """Local. The optimal SOR relaxation factor for the model problem on this grid."""
    rho = jacobi_radius(decomp)
    return float(2.0 / (1.0 + np.sqrt(max(0.0, 1.0 - rho * rho))))


class Poisson(TimeLoop):
    """Collective. ``-lap u = f`` on ``decomp``: ``f`` and the initial guess ``u0`` are
    DistArrays, numbers or functions of the coordinates; ``bc`` as in
    :mod:`solvers.boundary` (Dirichlet values are held on the boundary points; Neumann
    sides are not supported by these solvers); ``method`` ``"rbsor"`` (default) or
    ``"jacobi"``, ``omega`` the SOR factor (default: :func:`optimal_omega`); ``tol`` and
    ``check_every``: the stopping rule (see the module doc); ``steps_per_exchange``:
    Jacobi sweeps per halo exchange (deep halos, docs/blocking.md; default 1). A
    :class:`~solvers.loop.TimeLoop` solver whose step is one iteration.
    :meth:`parameters` (stored in outputs and checkpoints, compared on restart) holds a
    fingerprint of ``f``, the method and ``omega``, the boundary conditions and the grid.
    """

    name = "poisson"
    #: the job layer's check of a job file's physics, before MPI starts
    job_check = "solvers.stability:poisson"
    write_initial = False  # the initial guess is not worth an output step

    method, omega, tol, check_every = "rbsor", None, 1e-8, 1  # configure() replaces them

    def __init__(self, decomp, f, bc=None, u0=0.0, method="rbsor", omega=None, tol=1e-8, check_every=1,
                 steps_per_exchange=None):
        super().__init__(decomp)
        if decomp.centring != "vertex":
            raise InputError("the Poisson solvers work on vertex-centred grids")
        # Jacobi sweeps per halo exchange (deep halos, docs/blocking.md); RB-SOR takes 1
        self.steps_per_exchange = k = deephalo.steps_option(steps_per_exchange, 1)
        self._work = work = deephalo.work_decomposition(decomp, k)
        self.bc = Boundaries(work, bc)
        if any(k == "neumann" for k, _ in self.bc.conditions.values()):
            raise InputError("Jacobi/RB-SOR here take Dirichlet and periodic boundaries only")
        self.dt = 1.0  # one iteration
        self.configure(method, omega, tol, check_every)
        self.f = initial_field(work, f)
        self.u = initial_field(work, u0)
        self.bc.fix_points(self.u)
        self.h2inv = 1.0 / np.array(decomp.spacing) ** 2
        self.region = self.bc.unknown_region()
        self.singular = all(decomp.periodic)
        self._spare = None
        # the fingerprint of the f given: the mean removed below is a global sum, whose last
        # bits depend on the rank count (a restart on another count must compare equal)
        self._f_param = field_checksum(self.f)
        if self.singular:
            mean = self.f.sum() / np.prod(decomp.shape)
            self.f.owned[...] -= mean  # compatibility: the mean of f is removed
        # the stopping rule's scale and the residuals checked, from the initial guess
        fnorm = self._norm_f()
        r0 = self._residual()
        self.scale = fnorm if fnorm > 0 else (r0 if r0 > 0 else 1.0)
        self.history = [r0 / self.scale]
        self._checked = 0  # the iteration whose residual history[-1] is
        self.reason = None

    def configure(self, method=None, omega=None, tol=None, check_every=None) -> None:
        """Local. Change the method, ``omega``, ``tol`` or ``check_every`` (None keeps
        one; a new method without ``omega`` takes its default)."""
        if omega is None and (method not in (None, self.method) or self.omega is None):
            omega = optimal_omega(self.decomp) if (method or self.method) == "rbsor" else 1.0
        method = self.method if method is None else method
        omega = self.omega if omega is None else omega
        tol = self.tol if tol is None else tol
        check_every = self.check_every if check_every is None else check_every
        if method not in METHODS:
            raise InputError(f"method must be 'jacobi' or 'rbsor', got {method!r}")
        if method == "rbsor" and not 0 < omega < 2:
            raise InputError(f"SOR needs 0 < omega < 2, got {omega}")
        if not tol > 0 or int(check_every) < 1:
            raise InputError("tol must be > 0 and check_every >= 1")
        self.method, self.omega, self.tol, self.check_every = method, float(omega), float(tol), int(check_every)

    def physics(self) -> dict:
        """Local. A fingerprint of ``f`` (exact, the same on every rank count), the
        ``method`` and ``omega``; :meth:`parameters` adds ``bc`` and the ``grid``."""
        return {"f": self._f_param, "method": self.method, "omega": self.omega}

    def fields(self) -> dict:
        """Local. The state: the iterate ``u`` (``f`` is physics, checked on restart by its
        fingerprint)."""
        return {"u": self.u}

    def output_fields(self) -> dict:
        """Local. An output step holds the iterate ``u`` and the right-hand side ``f``."""
        return {"u": self.u, "f": self.f}

    def set_fields(self, fields) -> None:
        """Local. Take the iterate of a restart."""
        self.u.owned[...] = fields["u"].owned
        self._checked = None  # its residual is not known here (set_state brings it)

    def state(self, params=None) -> dict:
        """Local. :meth:`TimeLoop.state` and the stopping rule's: the residual history,
        its scale and ``tol``."""
        return {**super().state(params), "history": list(self.history), "scale": self.scale, "tol": self.tol}

    def set_state(self, state) -> None:
        """Local. Take back the residual history and its scale of a restart."""
        self.history = [float(x) for x in state["history"]]
        self.scale = float(state["scale"])
        self._checked = self.step_count

    def _residual(self):
        pympc.update_halo(self.u, width=1)
        self.bc.apply(self.u)
        local = kernels.residual_sumsq(self.u, self.f, self.h2inv, self.region)
        return float(np.sqrt(pympc.reduce_all(("sum", np.float64(local)), comm=self.comm)[0]))

    def _norm_f(self):
        sl = tuple(slice(lo, hi) for lo, hi in self.region)
        local = float(np.sum(self.f.owned[sl] ** 2))
        return float(np.sqrt(pympc.reduce_all(("sum", np.float64(local)), comm=self.comm)[0]))

    def done(self, end) -> bool:
        """Collective. The stopping rule, after each iteration (and before the first): the
        residual every ``check_every`` iterations and at ``end``; True when converged or
        diverged (``self.reason`` says which; ``"iteration limit"`` at ``end``). The
        singular (all-periodic) problem's solution is then shifted to zero mean."""
        n = self.step_count
        if n == self._checked:  # the start of a run: this iterate's residual is known
            self.reason = "converged" if self.history[-1] < self.tol else None
        elif n % self.check_every == 0 or n >= end:
            with self.superstep("residual"):
                self.history.append(self._residual() / self.scale)
            self._checked = n
            self.reason = verdict(self.history, self.tol, n, end, diverge=True)
        else:
            return False
        if self.reason is not None and self.singular:
            self.u.owned[...] -= self.u.sum() / np.prod(self.decomp.shape)  # the zero-mean solution
        return self.reason is not None

    def result(self) -> Result:
        """Local. The outcome so far: the iterate, the iteration count, the last relative
        residual, why it stopped, the residuals checked."""
        reason = self.reason
        if reason is None:
            reason = "interrupted" if self.interrupted else verdict(self.history, self.tol, self.step_count,
                                                                     self.step_count, diverge=True)
        return Result(self.u, self.step_count, self.history[-1], reason, list(self.history))

    def solve(self, method=None, tol=None, maxiter=100000, omega=None, check_every=None, progress=None,
              **run) -> Result:
        """Collective. Iterate until converged (or ``maxiter``, counted from iteration 0
        like ``steps``) and return the :class:`Result`: ``run(steps=maxiter, **run)``
        after :meth:`configure` with the settings given here. ``run`` takes
        :meth:`~solvers.loop.TimeLoop.run`'s options: ``output`` (the solution and ``f``
        at the end, as step = iterations), ``checkpoint``, ``restart``, ``overwrite``,
        ``allow_changed``, ``units``, ``params``, ..."""
        if int(maxiter) < 1:
            raise InputError(f"maxiter must be >= 1, got {maxiter}")
        self.configure(method, omega, tol, check_every)
        self.run(steps=int(maxiter), progress=progress, **run)
        return self.result()

    def stop_every(self) -> tuple:
        """Local. Chunks of sweeps end at the residual checks."""
        return (self.check_every,)

    def advance_steps(self, m) -> None:
        """Collective. ``m`` Jacobi sweeps with one exchange of ``u`` and ``f`` of width
        ``m`` (deep halos), each over the unknowns grown by the layers later sweeps
        read; bit-identical to ``m`` calls of :meth:`advance`. RB-SOR: one at a time."""
        if self.method != "jacobi":
            return super().advance_steps(m)
        u = self.u
        spare = self._spare if self._spare is not None else u.empty_like()
        with self.superstep("sweep"):
            pympc.update_halo(u, self.f, stencil="box", width=m)
            for s in range(1, m + 1):
                self.bc.apply(u)
                region = deephalo.grown(self._work, self.region, m - s)
                kernels.jacobi_step(u, self.f, spare, self.h2inv, region=region)
                self.bc.fix_points(spare, ghosts=True)
                u, spare = spare, u
        self.u, self._spare = u, spare

    def advance(self) -> None:
        """Collective. One iteration of the method on ``self.u``, without a residual check:
        a Jacobi sweep (one halo exchange), or a red and a black SOR half-sweep (two)."""
        u = self.u
        with self.superstep("sweep"):
            if self.method == "jacobi":
                spare = self._spare
                if spare is None:
                    spare = self._spare = u.empty_like()
                pympc.update_halo(u, width=1)
                self.bc.apply(u)
                kernels.jacobi_step(u, self.f, spare, self.h2inv, region=self.region)
                self.bc.fix_points(spare)
                self.u, self._spare = spare, u
            else:
                for color in (0, 1):
                    pympc.update_halo(u, width=1)
                    self.bc.apply(u)
                    kernels.rbsor_sweep(u, self.f, self.h2inv, self.omega, color, region=self.region)
