"""The Poisson equation ``-lap u = f`` by Jacobi and red-black SOR.

Discretisation: the (2d+1)-point Laplacian on the decomposition's grid. Dirichlet sides
hold the boundary points (vertex centring) at their values; periodic axes wrap. With every
axis periodic the problem is singular: the mean of ``f`` is removed (compatibility) and the
solution returned is the one with zero mean.

Stopping rule, for both methods: the relative residual ``||f - A u||_2 / ||f||_2`` over
the unknowns (or relative to the initial residual when ``f`` is zero there) is checked
every ``check_every`` iterations (one Allreduce each time). The result says why it
stopped: ``"converged"``, ``"iteration limit"`` or ``"diverged"`` (residual above 1e8
times the first one, or not finite).

Red-black SOR colours points by the parity of their global index sum (the same on every
decomposition): one iteration is a red half-sweep, a halo exchange, a black half-sweep and
another exchange. The default ``omega`` is the optimum for the model problem,
``2 / (1 + sqrt(1 - rho^2))`` with ``rho`` the Jacobi spectral radius of this grid.
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

import pympc
from pympc import kernels, costlog
from pympc.io.output import Output, check_new_path
from pympc.runtime import InputError, get_comm, get_logger

from .boundary import Boundaries
from .heat import _field
from .loop import field_checksum, grid_parameters, open_checkpointer, restart_point
from .result import Result, verdict


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


class Poisson:
    """Collective. ``-lap u = f`` on ``decomp``: ``f`` and the initial guess ``u0`` are
    DistArrays, numbers or functions of the coordinates; ``bc`` as in
    :mod:`solvers.boundary` (Dirichlet values are held on the boundary points; Neumann
    sides are not supported by these solvers). :meth:`parameters` (stored in outputs and
    checkpoints, compared on restart) holds a fingerprint of ``f``, the boundary
    conditions and the grid."""

    def __init__(self, decomp, f, bc=None, u0=0.0, comm=None):
        self.decomp = decomp
        self.comm = get_comm(comm or decomp.comm)
        if decomp.centring != "vertex":
            raise InputError("the Poisson solvers work on vertex-centred grids")
        self.bc = Boundaries(decomp, bc)
        if any(k == "neumann" for k, _ in self.bc.conditions.values()):
            raise InputError("Jacobi/RB-SOR here take Dirichlet and periodic boundaries only")
        self.f = _field(decomp, f)
        self.u = _field(decomp, u0)
        self.bc.fix_points(self.u)
        self.h2inv = 1.0 / np.array(decomp.spacing) ** 2
        self.region = self.bc.unknown_region()
        self.singular = all(decomp.periodic)
        self._spare = None
        if self.singular:
            mean = self.f.sum() / np.prod(decomp.shape)
            self.f.owned[...] -= mean  # compatibility: the mean of f is removed
        self._f_param = field_checksum(self.f, self.comm)

    def parameters(self) -> dict:
        """Local. The physics: a fingerprint of ``f`` (exact, the same on every rank
        count), ``bc`` and the ``grid``."""
        return {"solver": "poisson", "f": self._f_param, "bc": self.bc.parameters(),
                "grid": grid_parameters(self.decomp)}

    def _residual(self):
        pympc.update_halo(self.u)
        self.bc.apply(self.u)
        local = np.array([kernels.residual_sumsq(self.u, self.f, self.h2inv, self.region)])
        total = np.empty(1)
        self.comm.Allreduce(local, total, op=MPI.SUM)
        return float(np.sqrt(total[0]))

    def _norm_f(self):
        sl = tuple(slice(lo, hi) for lo, hi in self.region)
        local = np.array([float(np.sum(self.f.owned[sl] ** 2))])
        total = np.empty(1)
        self.comm.Allreduce(local, total, op=MPI.SUM)
        return float(np.sqrt(total[0]))

    def solve(self, method="rbsor", tol=1e-8, maxiter=100000, omega=None, check_every=1, output=None,
              checkpoint=None, checkpoint_every=None, restart=False, overwrite=False, allow_changed=(),
              units=None, params=None) -> Result:
        """Collective. Iterate with ``method`` (``"jacobi"`` or ``"rbsor"``) until the
        relative residual is below ``tol`` (see the module doc).

        ``output``: an HDF5 path (``.xmf`` beside it) or a :class:`pympc.Output`; the
        solution and ``f`` are written at the end as step = iterations (``units`` maps
        ``"u"``, ``"f"``, ``"length"`` to unit strings; ``params``, your own JSON-able
        dict, is stored under ``"job"`` beside :meth:`parameters`). ``checkpoint``: a
        directory or :class:`pympc.Checkpointer`, saved every ``checkpoint_every``
        iterations and at the end; ``restart=True`` continues from its newest checkpoint
        (the iterate, iteration count and residual history) and continues the output
        series. The rules of :meth:`solvers.loop.TimeLoop.run` hold: a restart with no
        checkpoint, past ``maxiter``, or with other physics (unless ``allow_changed``
        names the keys) raises :class:`pympc.InputError` before any file is touched; a
        fresh solve refuses an existing output file or checkpoints unless
        ``overwrite=True`` (which replaces the file and deletes those checkpoints)."""
        if method not in ("jacobi", "rbsor"):
            raise InputError(f"method must be 'jacobi' or 'rbsor', got {method!r}")
        if not tol > 0 or int(maxiter) < 1 or int(check_every) < 1:
            raise InputError("tol must be > 0, maxiter and check_every >= 1")
        if omega is None:
            omega = optimal_omega(self.decomp) if method == "rbsor" else 1.0
        if method == "rbsor" and not 0 < omega < 2:
            raise InputError(f"SOR needs 0 < omega < 2, got {omega}")
        units = dict(units or {})
        unknown = sorted(set(units) - {"u", "f", "length"})
        if unknown:
            raise InputError(f"units for {unknown}: the Poisson output holds 'u' and 'f' (and 'length')")
        if restart and checkpoint is None:
            raise InputError("restart=True needs checkpoint= (the directory or Checkpointer to continue from)")
        label = f"poisson-{method}"
        ck = open_checkpointer(checkpoint, self.comm, must_exist=restart)
        info = None
        if restart:
            info = restart_point(ck, label, self.parameters(), allow_changed, get_logger("poisson"))
            if int(info.state["iteration"]) > int(maxiter):
                raise InputError(f"checkpoint {info.path} is at iteration {int(info.state['iteration'])}, past "
                                 f"the requested end maxiter={int(maxiter)}; nothing was run and no file was "
                                 "changed")
        fresh = info is None
        if fresh and ck is not None and not overwrite and ck.steps():
            raise InputError(f"the checkpoint directory {ck.directory} already holds checkpoints "
                             f"{ck.steps()} of an earlier solve: pass restart=True to continue it, or "
                             "overwrite=True to start afresh (deleting them)")
        if output is not None and not isinstance(output, Output) and fresh and not overwrite:
            check_new_path(output, self.comm)  # now, not after the iterations
        r = ck.load(self.decomp, step=info) if info is not None else None
        # every check passed: from here on the solve changes files and the iterate
        if fresh and ck is not None and overwrite:
            ck.clear()
        fnorm = self._norm_f()
        r0 = self._residual()
        scale = fnorm if fnorm > 0 else (r0 if r0 > 0 else 1.0)
        history = [r0 / scale]
        it = 0
        if r is not None:
            self.u.owned[...] = r.fields["u"].owned
            it, history = int(r.state["iteration"]), list(r.state["history"])
        start = it
        reason = "converged" if history[-1] < tol else ("iteration limit" if it >= int(maxiter) else None)
        physics = self.parameters()

        def save(n):
            ck.save(n, {"u": self.u}, {"solver": label, "iteration": n, "history": history, "tol": tol,
                                       "params": physics}, physics=physics)
        while reason is None:
            self.iterate(method, omega)
            it += 1
            if ck is not None and checkpoint_every and it % checkpoint_every == 0:
                save(it)
            if it % check_every == 0 or it >= maxiter:
                with costlog.superstep(f"{label}:residual"):
                    rel = self._residual() / scale
                history.append(rel)
                reason = verdict(history, tol, it, maxiter, diverge=True)
        u = self.u
        if self.singular:
            u.owned[...] -= u.sum() / np.prod(self.decomp.shape)  # the zero-mean solution
        if ck is not None and (it > start or fresh):
            save(it)
        if output is not None:
            stored = {**physics, "method": method, "tol": tol, "omega": float(omega),
                      **({"job": params} if params is not None else {})}
            out = output if isinstance(output, Output) else Output(
                output, self.decomp, comm=self.comm, mode="w" if fresh else "a", params=stored, units=units,
                overwrite=overwrite, restart_step=None if fresh else start)
            out.write(it, float(it), u=u, f=self.f)
        return Result(u, it, history[-1], reason, history)

    def iterate(self, method="rbsor", omega=None) -> None:
        """Collective. One iteration of ``method`` on ``self.u``, without a residual check:
        a Jacobi sweep (one halo exchange), or a red and a black SOR half-sweep (two)."""
        u = self.u
        label = f"poisson-{method}:sweep"
        with costlog.superstep(label):
            if method == "jacobi":
                spare = self._spare
                if spare is None:
                    spare = self._spare = u.empty_like()
                pympc.update_halo(u)
                self.bc.apply(u)
                kernels.jacobi_step(u, self.f, spare, self.h2inv, region=self.region)
                self.bc.fix_points(spare)
                self.u, self._spare = spare, u
            elif method == "rbsor":
                w = optimal_omega(self.decomp) if omega is None else omega
                for color in (0, 1):
                    pympc.update_halo(u)
                    self.bc.apply(u)
                    kernels.rbsor_sweep(u, self.f, self.h2inv, w, color, region=self.region)
            else:
                raise InputError(f"method must be 'jacobi' or 'rbsor', got {method!r}")
