"""Explicit diffusion: ``u_t = div(alpha grad u)`` in 1, 2 or 3 dimensions.

Discretisation: the (2d+1)-point Laplacian (flux form with face coefficients the mean of
the two neighbours when ``alpha`` varies) and forward Euler in time (FTCS). Second order
in space, first in time; with the automatic step ``dt = safety * h_min^2 / (2 d alpha_max)``
the time error is O(h^2) too. Boundaries per side (Dirichlet, Neumann, periodic; see
:mod:`solvers.boundary`). The update has no global reduction, so every rank count gives
the same field bit for bit.
"""

from __future__ import annotations

import numpy as np

import pympc
from pympc import kernels
from pympc.runtime import InputError

from .boundary import Boundaries
from .loop import TimeLoop, field_checksum, initial_field
from .stability import check_dt, heat_dt_limit


class Heat(TimeLoop):
    """Collective. The heat equation on ``decomp`` (a :class:`pympc.Decomposition`), a
    :class:`~solvers.loop.TimeLoop` solver (docs/solvers/timeloop.md).

    ``alpha``: a positive number or a DistArray (variable coefficient); ``u0``: a
    DistArray, a number, or ``f(*coords)`` of the grid coordinates; ``bc``: see
    :mod:`solvers.boundary`; ``dt``: the time step (default: ``safety`` times the
    stability limit). ``solver.u`` is the current field, ``solver.t`` the time,
    ``solver.step_count``. :meth:`parameters` (stored in outputs and checkpoints,
    compared on restart) holds ``alpha`` (a fingerprint of the field when it varies), the
    boundary conditions, the time-step rule and the grid.
    """

    name = "heat"
    #: the job layer's check of a job file's physics, before MPI starts
    job_check = "solvers.stability:heat"

    def __init__(self, decomp, alpha=1.0, u0=0.0, bc=None, dt=None, safety=0.9):
        super().__init__(decomp)
        self.bc = Boundaries(decomp, bc)
        self.u = initial_field(decomp, u0)
        self._v = self.u.empty_like()
        amax = self._take_alpha(alpha)
        self._dt_rule = {"dt": "auto" if dt is None else float(dt), "safety": float(safety)}
        stable = heat_dt_limit(decomp.spacing, amax)
        self.dt_limit = stable
        self.dt = safety * stable if dt is None else check_dt(dt, stable, "the explicit scheme")
        self._region = self.bc.unknown_region()
        self.bc.fix_points(self.u)

    def _take_alpha(self, alpha) -> float:
        """Collective. Check and keep the diffusivity (a variable one with its values
        beyond the boundary filled); returns its maximum."""
        decomp = self.decomp
        self.variable = isinstance(alpha, pympc.DistArray)
        if self.variable:
            self.alpha = alpha
            why = decomp.mismatch(alpha.decomp, halo=True)
            if why is not None:
                raise InputError(f"alpha must live on the solver's decomposition (or one built alike): {why}")
            amin, amax = pympc.reduce_all(("min", alpha), ("max", alpha))
            pympc.update_halo(alpha)
            pympc.bc.neumann(alpha)  # coefficients beyond every physical boundary
        else:
            amin = amax = float(alpha)
            self.alpha = amax
        if not amin > 0:
            raise InputError(f"alpha must be positive, got minimum {amin}")
        self._alpha_param = (float(amax) if not self.variable else
                             {"field": field_checksum(alpha), "min": float(amin), "max": float(amax)})
        return amax

    def physics(self):
        """Local. ``alpha`` (a fingerprint of the field when it varies) and the time-step
        rule (``dt``: ``"auto"`` or the given step; ``safety``); :meth:`parameters` adds
        ``bc`` (every non-periodic side) and the ``grid``."""
        return {"alpha": self._alpha_param, **self._dt_rule}

    def fields(self):
        """Local. The fields a checkpoint or output step holds."""
        return {"u": self.u}

    def set_fields(self, fields):
        """Local. Take the fields of a restart."""
        self.u.owned[...] = fields["u"].owned

    def advance(self):
        """Collective. One time step."""
        u, v = self.u, self._v
        with self.superstep("halo"):
            pympc.update_halo(u)
        self.bc.apply(u)
        with self.superstep("update"):
            if self.variable:
                kernels.heat_step_variable(u, self.alpha, v, self.dt / np.array(self.decomp.spacing) ** 2,
                                           region=self._region)
            else:
                kernels.heat_step(u, v, self.alpha * self.dt / np.array(self.decomp.spacing) ** 2,
                                  region=self._region)
        self.bc.fix_points(v)
        self.u, self._v = v, u
