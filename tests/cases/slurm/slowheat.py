"""The Slurm tests' solver: the heat solver, with a pause after each step and an optional
failure at a given step (a sweep point that fails). The field is the heat solver's, bit for
bit: the pause changes only how long a step takes.

The pause applies only before a Slurm job's first requeue (``SLURM_RESTART_COUNT`` unset or
0). Slurm sends the time-limit warning anywhere up to ~30 s before it is due, so a job that
must be interrupted exactly once needs a first run that cannot finish before any warning and
a resumed run that finishes before the next one could come."""

import os
import time

from solvers.heat import Heat


class SlowHeat(Heat):
    """Collective. :class:`solvers.heat.Heat` that sleeps ``pause`` seconds after each step
    and raises at step ``fail_at`` (never when negative)."""

    name = "slowheat"

    def __init__(self, decomp, alpha=1.0, u0=0.0, bc=None, dt=None, safety=0.9, pause=0.0, fail_at=-1):
        super().__init__(decomp, alpha=alpha, u0=u0, bc=bc, dt=dt, safety=safety)
        self.pause, self.fail_at = float(pause), int(fail_at)

    def advance(self):
        """Collective. One heat step, then the pause."""
        if self.step_count == self.fail_at:
            raise RuntimeError(f"slowheat: told to fail at step {self.fail_at}")
        super().advance()
        if self.pause and os.environ.get("SLURM_RESTART_COUNT", "0") == "0":
            time.sleep(self.pause)
