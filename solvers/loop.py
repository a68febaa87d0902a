"""The time loop shared by the explicit solvers: steps, output, checkpoints, restart,
progress, BSP accounting, and a checkpoint on a signal at a step boundary.

A solver subclasses :class:`TimeLoop` and provides ``advance()`` (one step),
``fields()`` and ``set_fields()``; ``run()`` does the rest.
"""

from __future__ import annotations

import math
import signal
import time

import numpy as np
from mpi4py import MPI

from pympc import profile
from pympc.checkpoint import Checkpointer
from pympc.output import Output
from pympc.runtime import InputError, get_comm, get_logger


class TimeLoop:
    """Collective. Base of the time-stepping solvers (construction is collective)."""

    name = "solver"

    def __init__(self, decomp, comm=None):
        self.decomp = decomp
        self.comm = get_comm(comm or decomp.comm)
        self.step_count = 0
        self.dt = None
        self._signalled = False

    # -- to provide ------------------------------------------------------------------
    def advance(self):  # pragma: no cover - abstract
        """Collective. One time step (subclasses)."""
        raise NotImplementedError

    def fields(self) -> dict:  # pragma: no cover - abstract
        """Local. ``{name: DistArray}`` of the state (subclasses)."""
        raise NotImplementedError

    def set_fields(self, fields: dict) -> None:  # pragma: no cover - abstract
        """Local. Restore the state from a checkpoint's fields (subclasses)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------
    @property
    def t(self) -> float:
        """Local. The current time, ``step_count * dt`` (never accumulated)."""
        return self.step_count * self.dt

    def superstep(self, label):
        """Local. A labelled superstep of this solver in the current cost log."""
        return profile.superstep(f"{self.name}:{label}")

    def state(self) -> dict:
        """Local. What a checkpoint stores besides the fields."""
        return {"solver": self.name, "step": self.step_count, "time": self.t, "dt": self.dt}

    def restore(self, ck: Checkpointer) -> bool:
        """Collective. Continue from the newest checkpoint in ``ck`` if there is one."""
        if ck.latest() is None:
            return False
        r = ck.load(self.decomp)
        if r.state.get("solver") != self.name:
            raise InputError(f"checkpoint {ck.path(r.step)} is of solver {r.state.get('solver')!r}, "
                             f"not {self.name!r}")
        self.set_fields(r.fields)
        self.step_count = int(r.state["step"])
        self.dt = float(r.state["dt"])
        return True

    def _on_signal(self, signum, frame):
        self._signalled = True

    def run(self, steps=None, t_end=None, output=None, output_every=None, checkpoint=None,
            checkpoint_every=None, restart=False, progress=10.0, signals=(signal.SIGTERM, signal.SIGUSR1),
            signal_check_every=10, params=None):
        """Collective. Advance to step ``steps`` or time ``t_end`` (counted from t = 0).

        - ``output``: a path (``.h5``, with ``.xmf`` beside it) or an :class:`Output`;
          fields are written every ``output_every`` steps and at the end.
        - ``checkpoint``: a directory or a :class:`Checkpointer`; saved every
          ``checkpoint_every`` steps and at the end. ``restart=True`` first continues
          from its newest checkpoint, if any (bit-identical for explicit solvers).
        - A signal in ``signals`` (SIGTERM, as Slurm sends before its time limit; SIGUSR1)
          makes the loop checkpoint at the next step boundary that is a multiple of
          ``signal_check_every`` (the ranks agree with one small Allreduce there) and
          return early with ``self.interrupted = True``.
        - ``progress``: seconds between progress lines on rank 0 (None: silent).

        With ``t_end``, ``dt`` is shortened once at the start so that a whole number of
        steps ends exactly at ``t_end`` (it is restored, not recomputed, on restart).
        """
        log = get_logger(self.name)
        ck = checkpoint if (checkpoint is None or isinstance(checkpoint, Checkpointer)) \
            else Checkpointer(checkpoint, comm=self.comm)
        restarted = restart and ck is not None and self.restore(ck)
        if t_end is not None:
            if steps is not None:
                raise InputError("give steps or t_end, not both")
            if not restarted and self.step_count == 0:
                n = max(1, math.ceil(t_end / self.dt - 1e-9))
                self.dt = t_end / n
            steps = int(round(t_end / self.dt))
        if steps is None:
            raise InputError("run() needs steps or t_end")
        out = output
        if output is not None and not isinstance(output, Output):
            out = Output(output, self.decomp, mode="a" if restarted else "w", params=params,
                         restart_step=self.step_count if restarted else None, comm=self.comm)
        handlers = {}
        for s in signals or ():
            handlers[s] = signal.signal(s, self._on_signal)
        self.interrupted = False
        cells = float(np.prod(self.decomp.shape))
        t0 = last = time.monotonic()
        start_step = self.step_count
        try:
            if out is not None and self.step_count == 0:
                out.write(0, 0.0, **self.fields())
            while self.step_count < steps:
                self.advance()
                self.step_count += 1
                n = self.step_count
                if out is not None and output_every and n % output_every == 0 and n < steps:
                    out.write(n, self.t, **self.fields())
                if ck is not None and checkpoint_every and n % checkpoint_every == 0 and n < steps:
                    ck.save(n, self.fields(), self.state())
                if signals and n % signal_check_every == 0:
                    flag = self.comm.allreduce(1 if self._signalled else 0, op=MPI.MAX)
                    if flag:
                        if ck is not None:
                            ck.save(n, self.fields(), self.state())
                        log.warning("signal received: checkpointed at step %d (t=%g), stopping", n, self.t)
                        self.interrupted = True
                        return self
                now = time.monotonic()
                if progress is not None and self.comm.Get_rank() == 0 and now - last >= progress:
                    done = n - start_step
                    rate = done / (now - t0)
                    log.info("step %d/%d (%.0f%%) t=%.6g  %.1f Mcell-updates/s  ETA %.0f s", n, steps,
                             100.0 * n / steps, self.t, rate * cells / 1e6, (steps - n) / max(rate, 1e-12))
                    last = now
            if out is not None and (self.step_count > start_step or self.step_count == 0):
                out.write(self.step_count, self.t, **self.fields())
            if ck is not None:
                ck.save(self.step_count, self.fields(), self.state())
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        if progress is not None:
            elapsed = time.monotonic() - t0
            log.info("done: %d steps in %.2f s (%.1f Mcell-updates/s), t=%.6g", self.step_count - start_step,
                     elapsed, (self.step_count - start_step) * cells / max(elapsed, 1e-12) / 1e6, self.t)
        return self
