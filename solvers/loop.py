"""The one interface of pympc's time-stepping (and relaxation) solvers, and the loop that
runs them: steps, output, checkpoints, restart, progress, BSP accounting, and a
checkpoint on a signal at a step boundary.

A solver subclasses :class:`TimeLoop`: its constructor is ``(decomp, **physics)`` and
calls ``super().__init__(decomp)``, sets ``self.dt`` and provides ``advance()`` (one
step), ``fields()`` and ``set_fields()`` (and, to be checked on restart, ``physics()``);
``run()`` does the rest. The guide is docs/solvers/timeloop.md.

Restart safety (the rules :meth:`TimeLoop.run` enforces, before it opens anything):

* ``restart=True`` continues from the newest checkpoint; with no checkpoint it raises
  :class:`pympc.InputError` naming the checkpoint directory, and touches no file;
* a fresh run (not a restart) never replaces an existing output file or the checkpoints
  of an earlier run: it refuses unless ``overwrite=True``;
* a checkpoint whose step is past the requested end (``steps`` or ``t_end``; an adaptive
  solver's: whose stored time is past ``t_end``) is refused
  (one exactly at the end: nothing to do, no file is touched);
* a checkpoint whose stored physics (:meth:`TimeLoop.parameters`) differ from the
  solver's is refused, listing the differing keys, unless ``allow_changed`` names them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

import pympc
from pympc import costlog
from pympc import env as _env
from pympc.io.checkpoint import Checkpointer, check_physics
from pympc.io.output import UNIT_KEYS, Output
from pympc.runtime import InputError, get_logger

from .boundary import Boundaries


@dataclass
class _Plan:
    """What a run() will do, decided before any file is touched."""

    at: int              # the step it starts from (a restart's checkpoint's, or the solver's)
    steps: int           # the step it ends at
    dt: float            # the time step it runs with
    fresh: bool          # a new run: no restart, the solver at step 0
    info: object = None  # the checkpoint a restart continues from (its CheckpointInfo)
    ended: bool = False  # an adaptive run whose start is already at its t_end


class TimeLoop:
    """Collective. Base of the time-stepping solvers (construction is collective).

    A subclass's ``__init__(decomp, **physics)`` calls ``super().__init__(decomp)`` and
    sets ``self.dt`` (the time step, a positive number); see docs/solvers/timeloop.md.
    The communicator is the decomposition's (``self.comm``).
    """

    name = "solver"
    #: The time step; a subclass sets it in ``__init__`` (run() refuses to start without).
    dt = None
    #: The largest stable time step, if the scheme has one: a restart whose checkpoint's
    #: ``dt`` exceeds it (the physics were changed with ``allow_changed``) is refused.
    dt_limit = None
    #: Whether run() writes the fields at step 0 (a relaxation's initial guess: no).
    write_initial = True
    #: Boundary conditions (a :class:`solvers.boundary.Boundaries`), if the solver has
    #: them: :meth:`parameters` stores them.
    bc = None
    #: Adaptive steps: the solver chooses each step's size and keeps the time itself
    #: (``self.time``, stored in checkpoints, never ``step_count * dt``); ``self.dt`` is
    #: its proposal for the next step. ``run(t_end=)`` then neither reshapes ``dt`` nor
    #: counts steps: it stops once ``time`` reaches ``t_end`` (``self.t_end``, None for
    #: a ``run(steps=)``: the solver shortens its last step to land on it, see
    #: :func:`solvers.adapt.final_step`), or after ``max_steps`` steps.
    adaptive = False
    max_steps = 10 ** 9
    t_end = None

    def __init__(self, decomp):
        self.decomp = decomp
        self.comm = decomp.comm
        self.step_count = 0
        self.time = 0.0  # the time of an adaptive solver (the others: step_count * dt)
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

    def physics(self) -> dict:
        """Local. The solver's own physics as JSON-able data: coefficients, the time-step
        rule, ... (``{}`` here). :meth:`parameters` adds the solver's name, its boundary
        conditions and the grid."""
        return {}

    # -- optional hooks --------------------------------------------------------------
    #: The most steps one :meth:`advance_steps` call takes (deep halos: one exchange for
    #: that many steps). run() never lets a call cross an output, checkpoint, signal
    #: check or :meth:`stop_every` step.
    steps_per_exchange = 1

    def advance_steps(self, m: int) -> None:
        """Collective. ``m`` steps (2 <= m <= ``steps_per_exchange``) from step
        ``step_count`` (run() adds ``m`` to it after): :meth:`advance` ``m`` times here;
        a solver with deep halos takes them with one exchange."""
        start = self.step_count
        try:
            for i in range(m):
                self.step_count = start + i  # advance() may look at the step it takes
                self.advance()
        finally:
            self.step_count = start

    def stop_every(self) -> tuple:
        """Local. Periods (in steps) at whose multiples a chunk of steps must end, besides
        outputs, checkpoints and signal checks: a relaxation's residual checks. ``()``."""
        return ()

    def output_fields(self) -> dict:
        """Local. ``{name: DistArray}`` an output step holds: :meth:`fields` (the state)
        here; a solver may add inputs worth seeing beside it (Poisson: ``f``)."""
        return self.fields()

    def done(self, end: int) -> bool:
        """Collective. Called before the first step of a run and after every step (``end``:
        the step the run ends at): True ends the run there (a relaxation that has
        converged). False here; every rank must answer the same."""
        return False

    def set_state(self, state: dict) -> None:
        """Local. Take back, on restart, what :meth:`state` stored beyond the fields, the
        step and ``dt`` (nothing here)."""

    # -- shared --------------------------------------------------------------------------
    def parameters(self) -> dict:
        """Local. What defines the problem, as stored in outputs and checkpoints and
        compared on restart: ``{"solver": name, **physics(), "bc": ..., "grid": ...}``
        (``bc`` when the solver has :class:`~solvers.boundary.Boundaries`)."""
        extra = {"bc": self.bc.parameters()} if isinstance(self.bc, Boundaries) else {}
        return {"solver": self.name, **self.physics(), **extra, "grid": grid_parameters(self.decomp)}

    @property
    def t(self) -> float:
        """Local. The current time, ``step_count * dt`` (never accumulated); an adaptive
        solver's own ``time``."""
        self._check_dt()
        return self.time if self.adaptive else self.step_count * self.dt

    def _at_end(self) -> bool:
        """Local. Whether an adaptive run has reached its ``t_end`` (the same on every
        rank: the time is computed alike everywhere)."""
        return self.adaptive and self.t_end is not None and self.time >= self.t_end * (1 - 1e-14)

    def superstep(self, label):
        """Local. A labelled superstep of this solver in the current cost log."""
        return costlog.superstep(f"{self.name}:{label}")

    def state(self, params=None) -> dict:
        """Local. What a checkpoint stores besides the fields: the step, time and time
        step, and the physics under ``"params"`` (``params``, or :meth:`parameters`).
        A solver with more to keep (a residual history) adds it, and takes it back in
        :meth:`set_state`."""
        return {"solver": self.name, "step": self.step_count, "time": self.t, "dt": self.dt,
                "params": self.parameters() if params is None else params}

    def _check_dt(self):
        if not hasattr(self, "step_count"):
            raise InputError(f"{type(self).__name__}.__init__ must call super().__init__(decomp) "
                             "(TimeLoop keeps the step count, communicator and decomposition)")
        dt = self.dt
        ok = isinstance(dt, (int, float, np.floating, np.integer)) and not isinstance(dt, bool)
        if not ok or not math.isfinite(float(dt)) or not float(dt) > 0:
            raise InputError(f"{type(self).__name__} has dt={dt!r}: a TimeLoop solver must set self.dt "
                             "(the time step, a positive number) in its __init__ before run()")

    def restore(self, ck: Checkpointer, allow_changed=(), step=None) -> bool:
        """Collective. Continue from the newest checkpoint in ``ck`` (``step``: the one of
        that step); raises :class:`pympc.InputError` when there is none, or when it is of
        another solver or of other physics (see :meth:`run`). Returns True."""
        info = self._checkpoint_info(ck, allow_changed, step)
        self._apply(info, ck.load(self.decomp, step=info))
        return True

    def _checkpoint_info(self, ck, allow_changed, step=None):
        """Collective. The newest intact checkpoint's description (read without its
        fields), checked against this solver: :class:`pympc.InputError` (the same on every
        rank) when there is none (naming the directory), when another solver wrote it,
        when its stored physics differ (see :func:`check_physics`) or its ``dt`` is beyond
        this solver's limit. Nothing is changed on the solver or on disk."""
        found = ck.checkpoints()
        if not found:
            raise InputError(f"restart requested, but the checkpoint directory {ck.directory} holds no "
                             f"intact checkpoint ({ck.prefix}_*.h5), or does not exist: nothing to continue "
                             "from (run without restart to start a new run)")
        info = found[-1]
        if step is not None:
            info = next((i for i in found if i.step == step), None)
            if info is None:
                raise InputError(f"{ck.directory} holds no intact checkpoint of step {step} (intact: "
                                 f"{[i.step for i in found]})")
        if info.state.get("solver") != self.name:
            raise InputError(f"checkpoint {info.path} is of solver {info.state.get('solver')!r}, not "
                             f"{self.name!r}")
        # physics as an attribute (pympc.io.checkpoint stores them since issue 12); before, in the state
        stored = info.physics if info.physics is not None else info.state.get("params")
        check_physics(info.path, stored, self.parameters(), allow_changed, get_logger(self.name))
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
        if self.adaptive:
            self.time = float(info.state["time"])
        self.set_state(info.state)

    def _save(self, ck, step):
        params = self.parameters()  # once per checkpoint: the state and the physics attribute
        ck.save(step, self.fields(), self.state(params), physics=params)

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
          refused (one exactly at it leaves nothing to do: no file is touched); so is one
          whose stored physics differ from :meth:`parameters` (the error lists the keys)
          unless ``allow_changed`` names them (a key, or its prefix: ``"bc"`` allows every
          ``"bc.x-"``...). The output series is continued (steps after the checkpoint's
          are dropped first). The time step is always the checkpoint's (``t = step * dt``).
        - A fresh run (``restart=False`` on a solver at step 0) refuses to replace an
          existing output file, or to write into a checkpoint directory that holds
          checkpoints, unless ``overwrite=True``: then the file is replaced and those
          checkpoints are deleted (so a later restart cannot pick up the old run's).
        - A signal in ``signals`` (SIGTERM, as Slurm sends before its time limit; SIGUSR1)
          makes the loop checkpoint at the next step boundary that is a multiple of
          ``signal_check_every`` (the ranks agree with one small reduction there) and
          return early with ``self.interrupted = True``.
        - ``progress`` (rank 0): ``"bar"`` (a live bar on stderr), ``"lines"`` (a log line
          every 10 s), seconds between lines, or ``"off"``/None; ``$PYMPC_PROGRESS``, when
          set, overrides the mode. Rates leave out the first step (start-up); bar and lines
          end with a summary line. See docs/solvers/timeloop.md.

        With ``t_end``, ``dt`` is shortened once at the start so that a whole number of
        steps ends exactly at ``t_end`` (it is restored, not recomputed, on restart); an
        :attr:`adaptive` solver instead steps until its stored time reaches ``t_end``
        (its checkpoints hold the time and the next step's proposal). A
        solver whose :meth:`done` says so (a converged relaxation) stops before ``steps``.
        """
        progress = _Progress.choose(progress)
        units, ck, plan = self._prepare(steps, t_end, checkpoint, restart, overwrite, allow_changed, units)
        r = ck.load(self.decomp, step=plan.info) if plan.info is not None else None  # reads, changes nothing
        if r is not None and (plan.at == plan.steps or plan.ended):  # already at the end: touch no file
            self._apply(plan.info, r)
            _Progress.nothing_to_do(self, plan.info.path, progress)
            return self
        out = self._open_output(output, plan, params, units, overwrite)
        # every check passed: from here on the run changes files and the solver
        if plan.fresh and ck is not None and overwrite:
            ck.clear()
        if r is not None:
            self._apply(plan.info, r)
        self.dt = plan.dt
        self.t_end = float(t_end) if self.adaptive and t_end is not None else None
        with _signals_caught(signals, self._on_signal), _Progress.closing(self):
            self._loop(plan, out, ck, output_every, checkpoint_every, progress,
                       signal_check_every if signals else None)
        return self

    def check_run(self, steps=None, t_end=None, checkpoint=None, restart=False, overwrite=False,
                  allow_changed=(), units=None, progress=None) -> None:
        """Collective. The checks :meth:`run` makes with these arguments before it touches
        a file or the solver, alone: raises the :class:`pympc.InputError` that ``run``
        would (no checkpoint to restart from, one past the end or of other physics, an
        earlier run's checkpoints in the way, ...), or returns. Changes nothing: the job
        layer calls it before it writes a run directory."""
        _Progress.choose(progress)
        self._prepare(steps, t_end, checkpoint, restart, overwrite, allow_changed, units)

    def _prepare(self, steps, t_end, checkpoint, restart, overwrite, allow_changed, units):
        """Collective. ``(units, checkpointer, plan)`` of a run, every check made."""
        self._check_dt()
        units = self._check_request(steps, t_end, units, restart, checkpoint)
        ck = checkpoint if checkpoint is None or isinstance(checkpoint, Checkpointer) else \
            Checkpointer(checkpoint, comm=self.comm)  # creates its directory at the first save
        return units, ck, self._plan(steps, t_end, ck, restart, overwrite, allow_changed)

    def _check_request(self, steps, t_end, units, restart, checkpoint) -> dict:
        """Local. The run's arguments that need no file: one end, known units, a
        checkpoint to restart from. Returns the units as a dict."""
        if steps is not None and t_end is not None:
            raise InputError("give steps or t_end, not both")
        if steps is None and t_end is None:
            raise InputError("run() needs steps or t_end")
        if t_end is not None and not (isinstance(t_end, (int, float)) and t_end > 0 and math.isfinite(t_end)):
            raise InputError(f"t_end must be a positive number, got {t_end!r}")
        units = dict(units or {})
        shown = sorted(self.output_fields())
        unknown = sorted(set(units) - set(shown) - set(UNIT_KEYS))
        if unknown:
            raise InputError(f"units for {unknown}: not a field of {self.name} ({shown}) "
                             f"nor one of {list(UNIT_KEYS)}")
        if restart and checkpoint is None:
            raise InputError("restart=True needs checkpoint= (the directory or Checkpointer to continue from)")
        return units

    def _plan(self, steps, t_end, ck, restart, overwrite, allow_changed) -> _Plan:
        """Collective. Where the run starts and ends and with which ``dt``, checked against
        the checkpoints (restart, or a fresh run over an earlier one); changes nothing."""
        info = self._checkpoint_info(ck, allow_changed) if restart else None
        dt = float(info.state["dt"]) if info is not None else float(self.dt)
        fresh = info is None and self.step_count == 0
        if t_end is not None and self.adaptive:  # the solver's steps end at t_end: no count
            steps = self.max_steps
        elif t_end is not None:
            if not t_end / dt < 1e15:  # ceil() of an infinite or absurd count would raise or run forever
                raise InputError(f"t_end={t_end:g} is {t_end / dt:.3g} steps of dt={dt:g}: too many")
            if fresh:  # a whole number of steps ends exactly at t_end
                dt = t_end / max(1, math.ceil(t_end / dt - 1e-9))
            steps = int(round(t_end / dt))
        at = info.step if info is not None else self.step_count
        now = (float(info.state["time"]) if info is not None else self.time) if self.adaptive else at * dt
        ended = self.adaptive and t_end is not None and now >= t_end * (1 - 1e-14)
        plan = _Plan(at, int(steps), dt, fresh, info, ended)
        if at > plan.steps or (ended and now > t_end * (1 + 1e-14)):
            where = f"checkpoint {info.path}" if info is not None else f"{self.name} solver"
            end = f"t_end={t_end:g}" if self.adaptive and t_end is not None else f"step {plan.steps}" + (
                f" (t_end={t_end:g})" if t_end is not None else "")
            raise InputError(f"{where} is at step {at} (t={now:.6g}), past the requested end: {end}"
                             "; nothing was run and no file was changed")
        if fresh and ck is not None and not overwrite and ck.steps():
            raise InputError(f"the checkpoint directory {ck.directory} already holds checkpoints "
                             f"{ck.steps()} of an earlier run: pass restart=True to continue it, or "
                             "overwrite=True to start afresh (deleting them)")
        return plan

    def _open_output(self, output, plan, params, units, overwrite):
        """Collective. ``output`` as an :class:`Output` (a path opens a new series, or
        continues the one this solver wrote last, or a restart's)."""
        if output is None or isinstance(output, Output):
            return output
        stored = {**self.parameters(), **({"job": params} if params is not None else {})}
        # a solver that has stepped continues the series it wrote last; any other file is
        # a new series (an existing one is refused unless overwrite=True), never one whose
        # later steps an append would cut off
        path = os.path.abspath(str(output))
        new = plan.fresh or (plan.info is None and path != getattr(self, "_series", None))
        out = Output(output, self.decomp, mode="w" if new else "a", params=stored, units=units,
                     overwrite=overwrite, restart_step=None if new else plan.at)
        self._series = path
        return out

    def _loop(self, plan, out, ck, output_every, checkpoint_every, progress, signal_every):
        """Collective. The steps, with output and checkpoints between them and at the end."""
        self.interrupted = False
        steps, first = plan.steps, self.step_count
        self.start_step = first  # where this run began (a restart: its checkpoint's step)
        meter = _Progress(self, steps, progress)
        if out is not None and self.step_count == 0 and self.write_initial:
            out.write(0, 0.0, **self.output_fields())
        stop = self.done(steps) or self._at_end()
        periods = [p for p in (output_every if out is not None else None,
                               checkpoint_every if ck is not None else None, signal_every,
                               *self.stop_every()) if p]
        while self.step_count < steps and not stop:
            m = self._chunk(steps, periods)
            if m == 1:
                self.advance()
            else:
                self.advance_steps(m)
            self.step_count += m
            n = self.step_count
            stop = self.done(steps) or self._at_end()
            if not stop and n < steps:
                if out is not None and output_every and n % output_every == 0:
                    out.write(n, self.t, **self.output_fields())
                if ck is not None and checkpoint_every and n % checkpoint_every == 0:
                    self._save(ck, n)
            if signal_every and n % signal_every == 0 and self._signal_agreed():
                if ck is not None:
                    self._save(ck, n)
                get_logger(self.name).warning("signal received: checkpointed at step %d (t=%g), stopping",
                                              n, self.t)
                self.interrupted = True
                return
            meter.step(n - first)
        advanced = self.step_count > first
        if out is not None and (advanced or self.step_count == 0):
            out.write(self.step_count, self.t, **self.output_fields())
        if ck is not None and (advanced or plan.fresh):
            self._save(ck, self.step_count)
        meter.finish(self.step_count - first)

    def _chunk(self, steps, periods) -> int:
        """Local. How many steps the next :meth:`advance_steps` takes: up to
        ``steps_per_exchange``, ending at the next output, checkpoint, signal check or
        :meth:`stop_every` step, and at the end."""
        n = self.step_count
        m = min(max(1, int(self.steps_per_exchange)), steps - n)
        for p in periods:
            m = min(m, p - n % p)
        return m

    def _signal_agreed(self) -> bool:
        """Collective. Whether a signal reached any rank (one small reduction)."""
        with self.superstep("signal"):
            return bool(pympc.reduce_all(("max", np.int64(self._signalled)), comm=self.comm)[0])


class _signals_caught:
    """Local. ``with _signals_caught(signals, handler):`` the handler on each signal for
    the block, the previous handlers back afterwards."""

    def __init__(self, signals, handler):
        self.signals, self.handler, self.old = tuple(signals or ()), handler, {}

    def __enter__(self):
        for s in self.signals:
            self.old[s] = signal.signal(s, self.handler)
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


#: Progress modes (``progress=`` and ``$PYMPC_PROGRESS``); seconds between lines in "lines"
#: mode when no number is given; how often the bar's postfix (t, Mcell/s) is refreshed.
_MODES = ("bar", "lines", "off")
_LINES_EVERY = 10.0
_BAR_EVERY = 0.25


class _Progress:
    """Local. What a run shows on rank 0 while it steps (a live bar, periodic lines with
    rate and ETA, or nothing) and its closing summary. ``progress`` is what
    :meth:`choose` made of run()'s argument: None (off), ``"bar"`` or seconds between
    lines. Other ranks draw nothing and no collective is added."""

    def __init__(self, solver, steps, progress):
        # an adaptive run to t_end has no step count to show: its progress is its time
        self.end = solver.t_end if solver.adaptive and solver.t_end is not None else None
        self.solver, self.steps = solver, None if self.end is not None else steps
        self.on = progress is not None
        self.every = None if progress is None or progress == "bar" else float(progress)
        self.cells = float(np.prod(solver.decomp.shape))
        self.log = get_logger(solver.name)
        self.rank0 = solver.comm.Get_rank() == 0
        self.t0 = self.last = self.t1 = time.monotonic()
        self.first = None  # steps done at the first step() call: the rates start there
        self.bar, self.swapped = None, []
        if progress == "bar" and self.rank0:
            self._open_bar()
        solver._meter = self  # run() closes a bar the loop leaves open (a signal, an error)

    @staticmethod
    def choose(progress):
        """Local. run()'s ``progress`` with ``$PYMPC_PROGRESS`` applied to its mode: None
        (off), ``"bar"`` or seconds between lines. :class:`pympc.InputError` for another
        argument or variable value (one line; the same on every rank)."""
        number = isinstance(progress, numbers.Real) and not isinstance(progress, bool)
        if isinstance(progress, str):
            ok = progress in _MODES
        else:
            ok = progress is None or (number and math.isfinite(progress) and progress >= 0)
        if not ok:
            raise InputError(f"progress={progress!r}: give 'bar', 'lines', 'off', None, or the seconds "
                             "between progress lines (a number >= 0)")
        try:
            mode = _env.value("PYMPC_PROGRESS")
        except _env.EnvError as e:
            raise InputError(str(e)) from None
        if mode is None:  # not chosen outside: the argument's own mode
            mode = "off" if progress is None else progress if isinstance(progress, str) else "lines"
        if mode == "off":
            return None
        return "bar" if mode == "bar" else float(progress) if number else _LINES_EVERY

    @staticmethod
    def nothing_to_do(solver, path, progress):
        """Local. The line of a restart whose checkpoint is already at the end (not when off)."""
        if progress is not None:
            get_logger(solver.name).info("nothing to do: checkpoint %s is at the requested end, step %d "
                                         "(t=%.6g)", path, solver.step_count, solver.t)

    @staticmethod
    @contextlib.contextmanager
    def closing(solver):
        """Local. ``with _Progress.closing(solver):`` a bar still open when the block ends
        (the loop returned on a signal, or raised) is closed, its last state left drawn."""
        try:
            yield
        finally:
            meter = solver.__dict__.pop("_meter", None)
            if meter is not None:
                meter.close()

    def _open_bar(self):
        """Local. The tqdm bar on stderr (rank 0), the pympc log lines written above it."""
        try:
            from tqdm import tqdm  # only when a bar is drawn: importing pympc stays light
        except ImportError:  # a dependency, but a run must not fail for want of a bar
            self.log.warning("progress bar: tqdm is not installed (pip install tqdm); progress lines instead")
            self.every = _LINES_EVERY
            return
        stream = sys.stderr
        width = None
        if not getattr(stream, "isatty", lambda: False)():
            # a pipe (mpiexec's): tqdm cannot ask it for its width; `pympc run -n` passes COLUMNS on
            columns = os.environ.get("COLUMNS", "").strip()
            width = int(columns) if columns.isdigit() and int(columns) > 0 else None
        s = self.solver
        self.bar = tqdm(total=self.steps, initial=s.step_count, desc=s.name, unit="step", file=stream,
                        ncols=width, mininterval=_BAR_EVERY, leave=True)
        # a log record (a checkpoint, a signal) while the bar is drawn: written above the
        # bar (tqdm clears and redraws it), not into its line
        for h in logging.getLogger("pympc").handlers:
            if getattr(h, "_pympc", False) and getattr(h, "stream", None) is stream:
                self.swapped.append((h, h.setStream(_AboveBar(stream, tqdm))))

    def step(self, done):
        """Local. After a step, ``done`` steps into the run: the bar moves on, or a line
        when one is due."""
        now = time.monotonic()
        # The rate is measured from the end of the first step, and the first line waits
        # for 3 steps after it and one interval: the first step is mostly start-up
        # (compiling the kernels, first-touch page faults; 0.5 s against 0.1 ms for a
        # 256^2 step here), and counting it gave "0.6 Mcell-updates/s, ETA 667 s" for a
        # run that took 0.8 s. The bar's clock restarts there too (tqdm's unpause), so
        # its rate and ETA leave the first step out as well.
        if self.first is None:
            self.first = done
            self.t1 = self.last = now
            if self.bar is not None:
                self.bar.unpause()
        elif self.every is not None and self.rank0 and done >= self.first + 3 and now - self.last >= self.every:
            s = self.solver
            n = s.step_count
            rate = (done - self.first) / max(now - self.t1, 1e-12)
            if self.end is not None:
                self.log.info("step %d t=%.6g/%.6g (%.0f%%)  %.1f Mcell-updates/s", n, s.t, self.end,
                              100.0 * s.t / self.end, rate * self.cells / 1e6)
            else:
                self.log.info("step %d/%d (%.0f%%) t=%.6g  %.1f Mcell-updates/s  ETA %.0f s", n, self.steps,
                              100.0 * n / self.steps, s.t, rate * self.cells / 1e6,
                              (self.steps - n) / max(rate, 1e-12))
            self.last = now
        elif self.bar is not None and now - self.last >= _BAR_EVERY:
            self._postfix(done, now)
        if self.bar is not None:
            self.bar.update(self.solver.step_count - self.bar.n)

    def _postfix(self, done, now):
        """Local. The bar's ``t=..., ... Mcell/s`` (shown at its next redraw)."""
        first = self.first or 0
        rate = (done - first) / max(now - self.t1, 1e-12) if done > first else 0.0
        self.bar.set_postfix_str(f"t={self.solver.t:.4g}, {rate * self.cells / 1e6:.1f} Mcell/s",
                                 refresh=False)
        self.last = now

    def close(self):
        """Local. Close the bar (its last state stays drawn) and give the log its stream
        back; nothing when no bar is open."""
        if self.bar is not None:
            self.bar.update(self.solver.step_count - self.bar.n)  # a signal's return skips step()
            self.bar.close()
            self.bar = None
        for h, old in self.swapped:
            h.setStream(old)
        self.swapped = []

    def finish(self, done):
        """Local. The end of the run: the bar closed, and the summary line (steps,
        seconds, rate, the time reached) unless progress is off."""
        if self.bar is not None:
            self._postfix(done, time.monotonic())  # the bar's last state: the run's own t and rate
        self.close()
        if self.on:
            elapsed = time.monotonic() - self.t0
            self.log.info("done: %d steps in %.2f s (%.1f Mcell-updates/s), t=%.6g", done, elapsed,
                          done * self.cells / max(elapsed, 1e-12) / 1e6, self.solver.t)


class _AboveBar:
    """Local. The stream a log handler writes to while a bar is drawn on ``stream``:
    each record goes through ``tqdm.write``, which clears the bar, writes the record and
    draws the bar again below it."""

    def __init__(self, stream, tqdm):
        self.stream, self.tqdm = stream, tqdm

    def write(self, text):
        """Local. Write ``text`` (a whole record, its newline included) above the bar."""
        self.tqdm.write(text, file=self.stream, end="")

    def flush(self):
        """Local. Flush the stream underneath."""
        self.stream.flush()


# -- helpers of every solver: initial fields, physics --------------------------------------
def initial_field(decomp, init, dtype=np.float64):
    """Collective. A new DistArray on ``decomp`` from ``init``: a DistArray (copied; on
    ``decomp`` or one built alike), a number, or ``f(*coords)`` of the grid coordinates
    (:meth:`pympc.DistArray.from_function`). A solver's ``u0=``, ``f=``, ... go through it."""
    if isinstance(init, pympc.DistArray):
        why = decomp.mismatch(init.decomp)
        if why is not None:
            raise InputError(f"the initial field must live on the solver's decomposition (or one built "
                             f"alike): {why}")
        u = pympc.DistArray(decomp, init.dtype, init.components)
        u.owned[...] = init.owned
        return u
    if callable(init):
        return pympc.DistArray.from_function(decomp, init, dtype=dtype)
    return pympc.DistArray(decomp, dtype).fill(float(init))


def grid_parameters(decomp) -> dict:
    """Local. The grid's geometry as plain data (part of every solver's physics: a
    different spacing is a different problem)."""
    return {"shape": [int(n) for n in decomp.shape], "origin": [float(x) for x in decomp.origin],
            "spacing": [float(h) for h in decomp.spacing], "periodic": [bool(p) for p in decomp.periodic],
            "centring": decomp.centring}


def field_checksum(a) -> str:
    """Collective. An exact fingerprint of a DistArray's values that does not depend on
    the decomposition (so a restart on another rank count compares equal): the sum,
    modulo 2**64, of each value's bit pattern times an odd weight from its global index.
    Integer sums are associative, so every rank count gives the same number; a float
    sum of the values would differ in the last bits across rank counts."""
    d = a.decomp
    own = np.ascontiguousarray(a.owned)
    if np.iscomplexobj(own):
        own = own.astype(np.complex128).view(np.float64).reshape(own.shape + (2,))
    vals = np.ascontiguousarray(own, dtype=np.float64).view(np.uint64)
    extra = vals.shape[d.ndim:]
    per_point = int(np.prod(extra)) if extra else 1
    # the global (C-order) index of every value, built by broadcasting one axis at a time
    # (no full-size index grid per axis)
    index = np.zeros((1,) * d.ndim, dtype=np.uint64)
    for a_, (lo, hi, n) in enumerate(zip(d.lo, d.hi, d.shape)):
        shape = [1] * d.ndim
        shape[a_] = hi - lo
        index = index * np.uint64(n) + np.arange(lo, hi, dtype=np.uint64).reshape(shape)
    index = (index.reshape(index.shape + (1,) * len(extra)) * np.uint64(per_point)
             + np.arange(per_point, dtype=np.uint64).reshape(extra or ()))
    index *= np.uint64(2)
    index += np.uint64(1)  # odd weights: invertible modulo 2**64
    local = np.sum(vals * index, dtype=np.uint64)
    total = pympc.reduce_all(("sum", local), comm=d.comm)[0]
    return f"{int(total) % 2 ** 64:016x}"
