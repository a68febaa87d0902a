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

from pympc.kernels import blocking

from . import deephalo
from .boundary import Boundaries
from .loop import TimeLoop, field_checksum, initial_field
from .stability import check_dt, heat_dt_limit


def default_steps(decomp, variable=False) -> int:
    """Local. The steps per exchange a :class:`Heat` solver takes when not told, the
    rule measured in docs/blocking.md: :data:`BLOCKED_STEPS` on a 2-D grid with a
    constant ``alpha`` when every block has at least :data:`BLOCKED_MIN` points along
    every axis (then the steps are blocked in cache), else 1."""
    smallest = min(hi - lo for ranges in decomp.ownership_ranges() for lo, hi in ranges)
    # 3-D: an overlapped tile small enough for the cache recomputes more than it saves
    return BLOCKED_STEPS if decomp.ndim == 2 and not variable and smallest >= BLOCKED_MIN else 1


#: The default steps per exchange of a blocked heat step, and the smallest block side it
#: is used on (ghosts 24 wide add 2 x 24 / 384 = 12.5% per axis to a 384-point block's
#: memory and recomputed ghost points; less on larger blocks). docs/blocking.md: 24 steps
#: in strips of whole rows gave the most Mcell/s at 1 and 2 ranks.
BLOCKED_STEPS = 24
BLOCKED_MIN = 384


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

    ``steps_per_exchange``: steps per halo exchange (deep halos; default
    :func:`default_steps`: 24 on 2-D grids whose blocks are large, else 1); ``tile``: the
    tile of the temporally blocked step (None: the default; False: whole-block sweeps).
    Neither changes a single bit of the result, only its speed (docs/blocking.md). With
    more steps than the decomposition has ghost layers the fields live on a copy of it
    with wider ghosts (``solver.u.decomp``).
    """

    name = "heat"
    #: the job layer's check of a job file's physics, before MPI starts
    job_check = "solvers.stability:heat"

    def __init__(self, decomp, alpha=1.0, u0=0.0, bc=None, dt=None, safety=0.9, steps_per_exchange=None,
                 tile=None):
        super().__init__(decomp)
        variable = isinstance(alpha, pympc.DistArray)
        self.steps_per_exchange = k = deephalo.steps_option(steps_per_exchange, default_steps(decomp, variable))
        self.tile = deephalo.tile_option(tile, decomp.ndim)
        self._work = work = deephalo.work_decomposition(decomp, k)
        self.bc = Boundaries(work, bc)
        self.u = initial_field(work, u0)
        self._v = self.u.empty_like()
        amax = self._take_alpha(alpha)
        self._dt_rule = {"dt": "auto" if dt is None else float(dt), "safety": float(safety)}
        stable = heat_dt_limit(decomp.spacing, amax)
        self.dt_limit = stable
        self.dt = safety * stable if dt is None else check_dt(dt, stable, "the explicit scheme")
        self._region = self.bc.unknown_region()
        self._edges = self.bc.edges()  # the blocked steps' boundary layers (fixed with bc)
        self.bc.fix_points(self.u)

    def _take_alpha(self, alpha) -> float:
        """Collective. Check and keep the diffusivity (a variable one with its values
        beyond the boundary filled); returns its maximum."""
        self.variable = isinstance(alpha, pympc.DistArray)
        if self.variable:
            # on the solver's decomposition or one built alike, ghosts included (then
            # copied onto the work decomposition when that has wider ghosts)
            why = self.decomp.mismatch(alpha.decomp, halo=True)
            if why is not None:
                raise InputError(f"alpha must live on the solver's decomposition (or one built alike): {why}")
            self.alpha = alpha = deephalo.on(self._work, alpha)
            amin, amax = pympc.reduce_all(("min", alpha), ("max", alpha))
            pympc.update_halo(alpha, stencil="box")  # every ghost layer a deep-halo step reads
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

    def _rates(self):
        h2 = np.array(self.decomp.spacing) ** 2
        return self.dt / h2 if self.variable else self.alpha * self.dt / h2

    def advance_steps(self, m):
        """Collective. ``m`` steps with one halo exchange of width ``m`` (deep halos):
        blocked in cache (:func:`pympc.kernels.blocking.heat_steps`), or, with a
        variable ``alpha`` or ``tile=False``, as ``m`` whole-block sweeps over a region
        shrinking by a layer per step. Bit-identical to ``m`` calls of :meth:`advance`."""
        u, v = self.u, self._v
        with self.superstep("halo"):
            pympc.update_halo(u, stencil="box", width=m)
        self.bc.apply(u)
        with self.superstep("update"):
            if self.variable or self.tile is False:
                u, v = self._sweeps(u, v, m)
            else:
                blocking.heat_steps(u, v, self._rates(), m, edges=self._edges, region=self._region,
                                    tile=self.tile)
                self.bc.fix_points(v)
                u, v = v, u
        self.u, self._v = u, v

    def _sweeps(self, u, v, m):
        """Local. ``m`` whole-block steps from ``u`` (ghosts valid to depth ``m``, the layer
        beyond each physical side filled), each over the unknowns grown by the layers the
        later steps read (one step: the unknowns); returns the new (u, v)."""
        r = self._rates()
        for s in range(1, m + 1):
            if s > 1:
                self.bc.apply(u)
            region = deephalo.grown(self._work, self._region, m - s)
            if self.variable:
                kernels.heat_step_variable(u, self.alpha, v, r, region=region)
            else:
                kernels.heat_step(u, v, r, region=region)
            self.bc.fix_points(v, ghosts=True)
            u, v = v, u
        return u, v

    def advance(self):
        """Collective. One time step."""
        u, v = self.u, self._v
        with self.superstep("halo"):
            pympc.update_halo(u, width=1)  # one step reads one layer, however wide the ghosts
        self.bc.apply(u)
        with self.superstep("update"):
            self.u, self._v = self._sweeps(u, v, 1)
