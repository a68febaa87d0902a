"""A solver of your own, run from a job file (jobs/fisher.toml): the Fisher-KPP
reaction-diffusion equation ``u_t = D lap u + r u (1 - u)`` by forward Euler.

It follows the time-stepping interface (docs/solvers/timeloop.md): a
:class:`solvers.loop.TimeLoop` subclass whose constructor takes the decomposition and
the physics by keyword; ``pympc run`` builds it, runs it, writes its output and
checkpoints and resumes it. ``job_check`` names a function that checks a job file's
physics before MPI starts (here: the explicit step's stability).
"""

import numpy as np

import pympc
from solvers.loop import TimeLoop, initial_field
from solvers.stability import bad, check_dt, heat_dt_limit


def check(job):
    """Local. The job-file check: positive D and r, and a stable dt if given."""
    physics, spacing = job["physics"], job["grid"]["spacing"]
    for key in ("D", "r"):
        if not isinstance(physics.get(key, 1.0), (int, float)) or not physics.get(key, 1.0) > 0:
            raise bad(key, f"{key} must be a positive number, got {physics.get(key)}")
    if physics.get("dt") is not None:
        check_dt(physics["dt"], heat_dt_limit(spacing, physics.get("D", 1.0)), "forward Euler")


class Fisher(TimeLoop):
    """Collective. Fisher-KPP on ``decomp`` with diffusivity ``D``, growth rate ``r``,
    initial field ``u0``; zero-flux (Neumann) walls; ``dt`` defaults to 0.4 of the
    diffusion limit."""

    name = "fisher"
    job_check = "fisher:check"

    def __init__(self, decomp, D=1.0, r=1.0, u0=0.0, dt=None):
        super().__init__(decomp)
        self.D, self.r = float(D), float(r)
        self.u = initial_field(decomp, u0)
        self._lap = self.u.empty_like()
        self.dt = 0.4 * heat_dt_limit(decomp.spacing, self.D) if dt is None else float(dt)

    def physics(self):
        """Local. The coefficients (stored in outputs and checkpoints)."""
        return {"D": self.D, "r": self.r}

    def fields(self):
        """Local. The state."""
        return {"u": self.u}

    def set_fields(self, fields):
        """Local. Take a checkpoint's state."""
        self.u.owned[...] = fields["u"].owned

    def advance(self):
        """Collective. One forward-Euler step."""
        u = self.u
        pympc.update_halo(u)
        pympc.bc.neumann(u)  # zero flux through every wall
        g, d = u.decomp.ghost, u.decomp
        core = tuple(slice(g, g + n) for n in d.local_shape)
        lap = np.zeros(d.local_shape)
        for a in range(d.ndim):
            lo, hi = list(core), list(core)
            lo[a] = slice(g - 1, g - 1 + d.local_shape[a])
            hi[a] = slice(g + 1, g + 1 + d.local_shape[a])
            lap += (u.data[tuple(lo)] - 2 * u.data[core] + u.data[tuple(hi)]) / d.spacing[a] ** 2
        own = u.owned
        own += self.dt * (self.D * lap + self.r * own * (1.0 - own))
