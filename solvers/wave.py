"""The second-order wave equation ``u_tt = c^2 lap u`` by leapfrog.

``u^{n+1} = 2 u^n - u^{n-1} + (c dt)^2 lap_h u^n`` with the (2d+1)-point Laplacian;
the first step is the Taylor step ``u^1 = u^0 + dt v^0 + (c dt)^2/2 lap_h u^0``. Second
order in space and time; stable for ``c dt sqrt(sum 1/h_a^2) <= 1`` (the CFL number).
With periodic (or homogeneous Dirichlet) boundaries the discrete energy

    E^{n+1/2} = 1/2 |(u^{n+1} - u^n) / dt|^2 + c^2/2 sum_a <D_a u^{n+1}, D_a u^n> / h_a^2

(sums over points times the cell volume, ``D_a`` the forward difference) is conserved
exactly, up to round-off: :meth:`Wave.energy` computes it.
"""

from __future__ import annotations

import numpy as np

import pympc
from pympc import kernels
from pympc.runtime import InputError

from . import deephalo
from .boundary import Boundaries
from .loop import TimeLoop, initial_field
from .stability import check_dt, wave_dt_limit


class Wave(TimeLoop):
    """Collective. The wave equation on ``decomp`` with speed ``c``, initial displacement
    ``u0`` and velocity ``v0`` (DistArrays, numbers, or functions of the coordinates),
    boundaries ``bc`` (:mod:`solvers.boundary`) and time step ``dt`` (default from
    ``cfl``, default 0.5); a :class:`~solvers.loop.TimeLoop` solver. ``steps_per_exchange``:
    steps per halo exchange (deep halos, docs/blocking.md; default 1). :meth:`parameters` (stored in outputs and checkpoints,
    compared on restart) holds ``c``, the boundary conditions, the time-step rule and the
    grid."""

    name = "wave"
    #: the job layer's check of a job file's physics, before MPI starts
    job_check = "solvers.stability:wave"

    def __init__(self, decomp, c=1.0, u0=0.0, v0=0.0, bc=None, dt=None, cfl=0.5, steps_per_exchange=None):
        super().__init__(decomp)
        # deep halos (docs/blocking.md): k steps per exchange; 1 unless asked (the sweeps
        # save messages, not memory traffic: a gain only where latency dominates)
        self.steps_per_exchange = k = deephalo.steps_option(steps_per_exchange, 1)
        self._work = work = deephalo.work_decomposition(decomp, k)
        if not c > 0:
            raise InputError(f"wave speed c must be positive, got {c}")
        self.c = float(c)
        self.bc = Boundaries(work, bc)
        limit = wave_dt_limit(decomp.spacing, self.c)
        self.dt_limit = limit
        given = dt
        if dt is None:
            if not 0 < cfl <= 1:
                raise InputError(f"cfl must be in (0, 1], got {cfl}")
            dt = cfl * limit
        self.dt = check_dt(dt, limit, "leapfrog (the CFL limit)")
        self._dt_rule = {"dt": "auto" if given is None else float(given), "cfl": float(cfl)}
        self.u = initial_field(work, u0)   # u^n
        self.u_prev = self.u.empty_like()    # u^{n-1} (unused at n = 0)
        self.v0 = initial_field(work, v0)
        self._next = self.u.empty_like()
        self._region = self.bc.unknown_region()
        self.bc.fix_points(self.u)

    def _r(self):
        return (self.c * self.dt / np.array(self.decomp.spacing)) ** 2

    def physics(self):
        """Local. ``c`` and the time-step rule (``dt``: ``"auto"`` or the given step;
        ``cfl``); :meth:`parameters` adds ``bc`` (every non-periodic side) and the ``grid``."""
        return {"c": self.c, **self._dt_rule}

    def fields(self):
        """Local. What a restart needs: u^n, u^{n-1} and the initial velocity (used by
        the first step only)."""
        return {"u": self.u, "u_prev": self.u_prev, "v0": self.v0}

    def set_fields(self, fields):
        """Local. Take the fields of a restart."""
        for name in ("u", "u_prev", "v0"):
            getattr(self, name).owned[...] = fields[name].owned

    def advance(self):
        """Collective. One time step (the Taylor step first)."""
        u, up, nx = self.u, self.u_prev, self._next
        with self.superstep("halo"):
            pympc.update_halo(u, width=1)
        self.bc.apply(u)
        with self.superstep("update"):
            if self.step_count == 0:
                # u^1 = u^0 + dt v0 + (c dt)^2/2 lap u^0: a leapfrog step with r/2 from
                # the fictitious u^{-1} = u^0 - dt v0
                up.owned[...] = u.owned - self.dt * self.v0.owned
                kernels.leapfrog_step(u, up, nx, self._r() / 2.0, region=self._region)
            else:
                kernels.leapfrog_step(u, up, nx, self._r(), region=self._region)
        self.bc.fix_points(nx)
        self.u_prev, self.u, self._next = u, nx, up

    def advance_steps(self, m):
        """Collective. ``m`` steps with one exchange of ``u`` and ``u_prev`` of width ``m``
        (deep halos), each over the unknowns grown by the layers later steps read;
        bit-identical to ``m`` calls of :meth:`advance`. The Taylor step goes alone."""
        if self.step_count == 0:
            return super().advance_steps(m)
        u, up, nx = self.u, self.u_prev, self._next
        with self.superstep("halo"):
            pympc.update_halo(u, up, stencil="box", width=m)
        with self.superstep("update"):
            for s in range(1, m + 1):
                self.bc.apply(u)
                region = deephalo.grown(self._work, self._region, m - s)
                kernels.leapfrog_step(u, up, nx, self._r(), region=region)
                self.bc.fix_points(nx, ghosts=True)
                up, u, nx = u, nx, up
        self.u_prev, self.u, self._next = up, u, nx

    def energy(self) -> float:
        """Collective. The discrete energy E^{n-1/2} between ``u_prev`` and ``u`` (one
        reduction, :func:`pympc.reduce_all`); defined from step 1 on."""
        if self.step_count < 1:
            raise InputError("the leapfrog energy needs two time levels: advance at least one step")
        u, up = self.u, self.u_prev
        with self.superstep("energy"):
            pympc.update_halo(u, up, width=1)
            self.bc.apply(u)
            self.bc.apply(up)
            vol = float(np.prod(self.decomp.spacing))
            kin = np.sum(((u.owned - up.owned) / self.dt) ** 2)
            local = np.float64(0.5 * vol * (kin + self.c ** 2 * self._potential(u, up)))
            return pympc.reduce_all(("sum", local), comm=self.comm)[0]

    def _potential(self, u, up) -> float:
        """Local. This rank's sum over faces of ``<D_a u, D_a up> / h_a^2``."""
        d = u.decomp  # the work decomposition: its ghost width indexes the arrays
        pot = 0.0
        g = d.ghost
        for a in range(d.ndim):
            hi = [slice(g, g + n) for n in d.local_shape]
            lo = list(hi)
            hi[a] = slice(g + 1, g + d.local_shape[a] + 1)
            du = u.data[tuple(hi)] - u.data[tuple(lo)]
            dup = up.data[tuple(hi)] - up.data[tuple(lo)]
            if not d.periodic[a] and d.at_boundary(a, 1):  # no face beyond the boundary
                cut = [slice(None)] * d.ndim
                cut[a] = slice(0, -1)
                du, dup = du[tuple(cut)], dup[tuple(cut)]
            pot += np.sum(du * dup) / d.spacing[a] ** 2
        return pot
