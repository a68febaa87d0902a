"""The time loop shared by the explicit solvers: steps, output, checkpoints, restart,
progress, BSP accounting, and a checkpoint on a signal at a step boundary.

A solver subclasses :class:`TimeLoop`, calls ``super().__init__(decomp)``, sets
``self.dt`` and provides ``advance()`` (one step), ``fields()`` and ``set_fields()``
(and, to be checked on restart, ``parameters()``); ``run()`` does the rest. The guide is
docs/solvers/timeloop.md.

Restart safety (the rules :meth:`TimeLoop.run` enforces, before it opens anything):

* ``restart=True`` continues from the newest checkpoint; with no checkpoint it raises
  :class:`pympc.InputError` naming the checkpoint directory, and touches no file;
* a fresh run (not a restart) never replaces an existing output file or the checkpoints
  of an earlier run: it refuses unless ``overwrite=True``;
* a checkpoint whose step is past the requested end (``steps`` or ``t_end``) is refused
  (one exactly at the end: nothing to do, no file is touched);
* a checkpoint whose stored physics (:meth:`TimeLoop.parameters`) differ from the
  solver's is refused, listing the differing keys, unless ``allow_changed`` names them.
"""

from __future__ import annotations

import math
import os
import signal
import time

import numpy as np
from mpi4py import MPI

from pympc import costlog
from pympc.io.checkpoint import Checkpointer, check_physics
from pympc.io.output import UNIT_KEYS, Output
from pympc.runtime import InputError, get_comm, get_logger


class TimeLoop:
    """Collective. Base of the time-stepping solvers (construction is collective).

    A subclass calls ``super().__init__(decomp, comm=comm)`` and sets ``self.dt`` (the
    time step, a positive number) in its ``__init__``; see docs/solvers/timeloop.md.
    """

    name = "solver"
    #: The time step; a subclass sets it in ``__init__`` (run() refuses to start without).
    dt = None
    #: The largest stable time step, if the scheme has one: a restart whose checkpoint's
    #: ``dt`` exceeds it (the physics were changed with ``allow_changed``) is refused.
    dt_limit = None

    def __init__(self, decomp, comm=None):
        self.decomp = decomp
        self.comm = get_comm(comm or decomp.comm)
        self.step_count = 0
        self.interrupted = False
        self._signalled = False

    # -- to provide ------------------------------------------------------------------
    def advance(self):
        """Collective. One time step (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must define advance(): one time step of the "
                                  "fields (TimeLoop.run increments step_count)")

    def fields(self) -> dict:
        """Local. ``{name: DistArray}`` of the state (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must define fields(): {{name: DistArray}} of "
                                  "the state that outputs and checkpoints hold")

    def set_fields(self, fields: dict) -> None:
        """Local. Restore the state from a checkpoint's fields (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} must define set_fields(fields): copy a "
                                  "checkpoint's fields into the state")

    def parameters(self) -> dict:
        """Local. The physics as JSON-able data (``{"solver": name}`` here; subclasses add
        their coefficients, boundary conditions, time-step rule, ...). Stored in outputs
        and checkpoints; a restart compares them (see :meth:`run`)."""
        return {"solver": self.name}

    # -- shared --------------------------------------------------------------------------
    @property
    def t(self) -> float:
        """Local. The current time, ``step_count * dt`` (never accumulated)."""
        self._check_dt()
        return self.step_count * self.dt

    def superstep(self, label):
        """Local. A labelled superstep of this solver in the current cost log."""
        return costlog.superstep(f"{self.name}:{label}")

    def state(self) -> dict:
        """Local. What a checkpoint stores besides the fields: the step, time and time
        step, and the physics under ``"params"`` (the checkpoint file's ``parameters``)."""
        return {"solver": self.name, "step": self.step_count, "time": self.t, "dt": self.dt,
                "params": self.parameters()}

    def _check_dt(self):
        if not hasattr(self, "step_count"):
            raise InputError(f"{type(self).__name__}.__init__ must call super().__init__(decomp, comm=comm) "
                             "(TimeLoop keeps the step count, communicator and decomposition)")
        dt = self.dt
        ok = isinstance(dt, (int, float, np.floating, np.integer)) and not isinstance(dt, bool)
        if not ok or not math.isfinite(float(dt)) or not float(dt) > 0:
            raise InputError(f"{type(self).__name__} has dt={dt!r}: a TimeLoop solver must set self.dt "
                             "(the time step, a positive number) in its __init__ before run()")

    def restore(self, ck: Checkpointer, allow_changed=()) -> bool:
        """Collective. Continue from the newest checkpoint in ``ck``; raises
        :class:`pympc.InputError` when there is none, or when it is of another solver or
        of other physics (see :meth:`run`). Returns True."""
        info = self._checkpoint_info(ck, allow_changed)
        self._apply(info, ck.load(self.decomp, step=info))
        return True

    def _checkpoint_info(self, ck, allow_changed):
        """Collective. The newest intact checkpoint's description (read without its
        fields), checked against this solver; nothing is changed on the solver or on
        disk, so a refusal leaves both as they were."""
        info = restart_point(ck, self.name, self.parameters(), allow_changed, get_logger(self.name))
        dt = float(info.state["dt"])
        if self.dt_limit is not None and dt > self.dt_limit * (1 + 1e-12):
            raise InputError(f"checkpoint {info.path} has dt={dt:g}, above this solver's stability limit "
                             f"{self.dt_limit:g} (the physics changed): a restart keeps the checkpoint's "
                             "dt, so it cannot continue stably")
        return info

    def _apply(self, info, r):
        self.set_fields(r.fields)
        self.step_count = int(info.step)
        self.dt = float(info.state["dt"])

    def _save(self, ck, step):
        ck.save(step, self.fields(), self.state(), physics=self.parameters())

    def _on_signal(self, signum, frame):
        self._signalled = True

    def run(self, steps=None, t_end=None, output=None, output_every=None, checkpoint=None,
            checkpoint_every=None, restart=False, progress=10.0, signals=(signal.SIGTERM, signal.SIGUSR1),
            signal_check_every=10, params=None, units=None, overwrite=False, allow_changed=()):
        """Collective. Advance to step ``steps`` or time ``t_end`` (counted from t = 0).

        - ``output``: a path (``.h5``, with ``.xmf`` beside it) or an :class:`Output`;
          fields are written every ``output_every`` steps and at the end. The file's
          ``parameters`` attribute holds :meth:`parameters` (and ``params``, a JSON-able
          dict of your own, under ``"job"``); ``units`` maps field names, ``"time"`` and
          ``"length"`` to unit strings, stored on every dataset.
        - ``checkpoint``: a directory or a :class:`Checkpointer`; saved every
          ``checkpoint_every`` steps and at the end.
        - ``restart=True`` continues from the newest checkpoint (bit-identical for
          explicit solvers). With no checkpoint it raises :class:`pympc.InputError`
          naming the directory and opens nothing; a checkpoint past the requested end is
          refused (one exactly at it leaves nothing to do: no file is touched); so is one whose stored physics differ from :meth:`parameters`
          (the error lists the keys) unless ``allow_changed`` names them (a key, or its
          prefix: ``"bc"`` allows every ``"bc.x-"``...). The output series is continued
          (steps after the checkpoint's are dropped first). The time step is always the
          checkpoint's (``t = step * dt``).
        - A fresh run (``restart=False`` on a solver at step 0) refuses to replace an
          existing output file, or to write into a checkpoint directory that holds
          checkpoints, unless ``overwrite=True``: then the file is replaced and those
          checkpoints are deleted (so a later restart cannot pick up the old run's).
        - A signal in ``signals`` (SIGTERM, as Slurm sends before its time limit; SIGUSR1)
          makes the loop checkpoint at the next step boundary that is a multiple of
          ``signal_check_every`` (the ranks agree with one small Allreduce there) and
          return early with ``self.interrupted = True``.
        - ``progress``: seconds between progress lines on rank 0 (None: silent). Rates
          and the ETA are measured from the end of the first step (which carries the
          start-up: compiling, first touch of memory), and the first line comes after at
          least 3 steps more and one interval.

        With ``t_end``, ``dt`` is shortened once at the start so that a whole number of
        steps ends exactly at ``t_end`` (it is restored, not recomputed, on restart).
        """
        self._check_dt()
        log = get_logger(self.name)
        if steps is not None and t_end is not None:
            raise InputError("give steps or t_end, not both")
        if steps is None and t_end is None:
            raise InputError("run() needs steps or t_end")
        if t_end is not None and not (isinstance(t_end, (int, float)) and t_end > 0 and math.isfinite(t_end)):
            raise InputError(f"t_end must be a positive number, got {t_end!r}")
        units = dict(units or {})
        unknown = sorted(set(units) - set(self.fields()) - set(UNIT_KEYS))
        if unknown:
            raise InputError(f"units for {unknown}: not a field of {self.name} ({sorted(self.fields())}) "
                             f"nor one of {list(UNIT_KEYS)}")
        if restart and checkpoint is None:
            raise InputError("restart=True needs checkpoint= (the directory or Checkpointer to continue from)")
        ck = open_checkpointer(checkpoint, self.comm, must_exist=restart)
        info = self._checkpoint_info(ck, allow_changed) if restart else None
        dt = float(info.state["dt"]) if info is not None else float(self.dt)
        fresh = info is None and self.step_count == 0
        if t_end is not None:
            if fresh:  # a whole number of steps ends exactly at t_end
                dt = t_end / max(1, math.ceil(t_end / dt - 1e-9))
            steps = int(round(t_end / dt))
        steps = int(steps)
        at = info.step if info is not None else self.step_count
        if at > steps:
            where = f"checkpoint {info.path}" if info is not None else f"{self.name} solver"
            raise InputError(f"{where} is at step {at} (t={at * dt:.6g}), past the requested end: step {steps}"
                             + (f" (t_end={t_end:g})" if t_end is not None else "")
                             + "; nothing was run and no file was changed")
        if fresh and ck is not None and not overwrite and ck.steps():
            raise InputError(f"the checkpoint directory {ck.directory} already holds checkpoints "
                             f"{ck.steps()} of an earlier run: pass restart=True to continue it, or "
                             "overwrite=True to start afresh (deleting them)")
        r = ck.load(self.decomp, step=info) if info is not None else None  # reads, changes nothing
        if r is not None and at == steps:  # already at the end: continue nothing, touch no file
            self._apply(info, r)
            if progress is not None:
                log.info("nothing to do: checkpoint %s is at the requested end, step %d (t=%.6g)",
                         info.path, self.step_count, self.t)
            return self
        out = output
        if output is not None and not isinstance(output, Output):
            stored = {**self.parameters(), **({"job": params} if params is not None else {})}
            # a solver that has stepped continues the series it wrote last; any other file
            # is a new series (an existing one is refused unless overwrite=True), never one
            # whose later steps an append would cut off
            path = os.path.abspath(str(output))
            new = fresh or (info is None and path != getattr(self, "_series", None))
            out = Output(output, self.decomp, mode="w" if new else "a", params=stored, units=units,
                         overwrite=overwrite, restart_step=None if new else at, comm=self.comm)
            self._series = path
        # every check passed: from here on the run changes files and the solver
        if fresh and ck is not None and overwrite:
            ck.clear()
        if r is not None:
            self._apply(info, r)
        self.dt = dt
        return self._loop(steps, out, ck, checkpoint_every, output_every, progress, signals,
                          signal_check_every, log, fresh)

    def _loop(self, steps, out, ck, checkpoint_every, output_every, progress, signals, signal_check_every,
              log, fresh):
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
                    self._save(ck, n)
                if signals and n % signal_check_every == 0:
                    flag = self.comm.allreduce(1 if self._signalled else 0, op=MPI.MAX)
                    if flag:
                        if ck is not None:
                            self._save(ck, n)
                        log.warning("signal received: checkpointed at step %d (t=%g), stopping", n, self.t)
                        self.interrupted = True
                        return self
                now = time.monotonic()
                done = n - start_step
                # The rate is measured from the end of the first step, and the first line
                # waits for 3 steps after it and one interval: the first step is mostly
                # start-up (compiling the kernels, first-touch page faults; 0.5 s against
                # 0.1 ms for a 256^2 step here), and counting it gave "0.6 Mcell-updates/s,
                # ETA 667 s" for a run that took 0.8 s
                if done == 1:
                    t1 = last = now
                elif progress is not None and self.comm.Get_rank() == 0 and done >= 4 and now - last >= progress:
                    rate = (done - 1) / max(now - t1, 1e-12)
                    log.info("step %d/%d (%.0f%%) t=%.6g  %.1f Mcell-updates/s  ETA %.0f s", n, steps,
                             100.0 * n / steps, self.t, rate * cells / 1e6, (steps - n) / max(rate, 1e-12))
                    last = now
            advanced = self.step_count > start_step
            if out is not None and (advanced or self.step_count == 0):
                out.write(self.step_count, self.t, **self.fields())
            if ck is not None and (advanced or fresh):
                self._save(ck, self.step_count)
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        if progress is not None:
            elapsed = time.monotonic() - t0
            log.info("done: %d steps in %.2f s (%.1f Mcell-updates/s), t=%.6g", self.step_count - start_step,
                     elapsed, (self.step_count - start_step) * cells / max(elapsed, 1e-12) / 1e6, self.t)
        return self


def open_checkpointer(checkpoint, comm, must_exist=False):
    """Collective. ``checkpoint`` as a :class:`Checkpointer` (None stays None). For a
    restart the directory must exist already: creating it would leave an empty
    directory behind a refused restart."""
    if checkpoint is None or isinstance(checkpoint, Checkpointer):
        return checkpoint
    if must_exist:
        missing = comm.bcast(not os.path.isdir(str(checkpoint)) if comm.Get_rank() == 0 else None, root=0)
        if missing:
            raise InputError(f"restart requested, but the checkpoint directory {checkpoint} does not exist: "
                             "nothing to continue from (run without restart to start a new run)")
    return Checkpointer(checkpoint, comm=comm)


def restart_point(ck, solver, physics, allow_changed=(), log=None):
    """Collective. The newest intact checkpoint in ``ck`` (its
    :class:`pympc.io.checkpoint.CheckpointInfo`; the fields are not read), checked before a
    restart: :class:`pympc.InputError` (the same on every rank; nothing is changed) when
    there is none (naming the directory), when it was written by another ``solver``, or
    when its stored physics differ from ``physics`` (see :func:`check_physics`)."""
    found = ck.checkpoints()
    if not found:
        raise InputError(f"restart requested, but the checkpoint directory {ck.directory} holds no intact "
                         f"checkpoint ({ck.prefix}_*.h5): nothing to continue from (run without restart "
                         "to start a new run)")
    info = found[-1]
    if info.state.get("solver") != solver:
        raise InputError(f"checkpoint {info.path} is of solver {info.state.get('solver')!r}, not {solver!r}")
    # physics as an attribute (pympc.io.checkpoint stores them since issue 12); before, in the state
    stored = info.physics if info.physics is not None else info.state.get("params")
    check_physics(info.path, stored, physics, allow_changed, log)
    return info


# -- physics: what a solver stores and a restart compares --------------------------------
def grid_parameters(decomp) -> dict:
    """Local. The grid's geometry as plain data (part of every solver's physics: a
    different spacing is a different problem)."""
    return {"shape": [int(n) for n in decomp.shape], "origin": [float(x) for x in decomp.origin],
            "spacing": [float(h) for h in decomp.spacing], "periodic": [bool(p) for p in decomp.periodic],
            "centring": decomp.centring}


def field_checksum(a, comm=None) -> str:
    """Collective. An exact fingerprint of a DistArray's values that does not depend on
    the decomposition (so a restart on another rank count compares equal): the sum,
    modulo 2**64, of each value's bit pattern times an odd weight from its global index.
    Integer sums are associative, so every rank count gives the same number; a float
    sum of the values would differ in the last bits across rank counts."""
    d = a.decomp
    comm = get_comm(comm or d.comm)
    own = np.ascontiguousarray(a.owned)
    if np.iscomplexobj(own):
        own = own.astype(np.complex128).view(np.float64).reshape(own.shape + (2,))
    vals = np.ascontiguousarray(own, dtype=np.float64).view(np.uint64)
    extra = vals.shape[d.ndim:]
    grids = np.meshgrid(*[np.arange(lo, hi, dtype=np.uint64) for lo, hi in zip(d.lo, d.hi)], indexing="ij")
    index = np.zeros(d.local_shape, dtype=np.uint64)
    for g, n in zip(grids, d.shape):
        index = index * np.uint64(n) + g
    per_point = int(np.prod(extra)) if extra else 1
    index = (index.reshape(d.local_shape + (1,) * len(extra)) * np.uint64(per_point)
             + np.arange(per_point, dtype=np.uint64).reshape(extra or ()))
    weight = index * np.uint64(2) + np.uint64(1)  # odd: invertible modulo 2**64
    local = np.array([np.sum(vals * weight, dtype=np.uint64)], dtype=np.uint64)
    total = np.zeros(1, dtype=np.uint64)
    comm.Allreduce(local, total, op=MPI.SUM)
    return f"{int(total[0]):016x}"


