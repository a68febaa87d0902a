"""Running a checked job in the ranks: each point in its run directory, resumed when it
can be, with the exit status of :mod:`pympc.jobs.status`.

Every rank runs :func:`run_job` (it is collective). The order of a point's run makes bad
input cost nothing: the run directory is read (rank 0), the decomposition and the solver
are built (a refused constructor writes nothing), and only then is the directory written
(``running``); a refusal by the solver's own checks after that (a checkpoint of other
physics) puts the directory back as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import signal
import socket
import sys
import time

import numpy as np

from .. import costlog
from .._version import __version__
from ..errors import InputError, PympcError
from ..runtime import agree, get_logger, on_root, print0
from . import rundir, spec
from .status import DONE, DONE_WITH_FAILURES, INTERRUPTED

#: the signals that checkpoint a run and stop it (exit 75)
SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def run_job(job, info, comm, runs_dir: str, sweep_index=None, fresh: bool = False) -> int:
    """Collective. Run the job's points (one, the ``sweep_index``-th, or every point of
    its sweep one after another) and return the exit status: 0 when every point is
    done, 75 when one was interrupted (the rest not started). A point that fails stops
    the sweep (exit 1, its directory says ``failed``); 3 is a rerun's status when some
    points ended ``done-with-failures`` earlier. Every point's run directory is checked
    before the first is written."""
    points = job.point(sweep_index)
    if job.swept and sweep_index is None:
        _prepare_sweep(job, comm, runs_dir, fresh)
        fresh = False
    codes = []
    with early_signals() as early:
        for point in points:
            code = run_point(job, point, info, comm, runs_dir, fresh, early)
            codes.append(code)
            if code == INTERRUPTED:
                return INTERRUPTED
    if any(c != DONE for c in codes):
        return DONE_WITH_FAILURES
    return DONE


def _prepare_sweep(job, comm, runs_dir, fresh) -> None:
    """Collective. Before a whole sweep runs: ``--fresh`` moves it aside at once, every
    point's directory is checked (read only), then the new points are queued."""
    if fresh:
        moved = on_root(lambda: rundir.move_aside_sweep(runs_dir, job.name), comm)
        if moved:
            print0(f"{job.name}: --fresh: the earlier sweep moved to {moved}", comm=comm)
    for point in job.points:
        on_root(lambda: rundir.decide(rundir.directory(runs_dir, point.job), point.job, False, job.path), comm)
    on_root(lambda: rundir.queue(job.points, job.text, runs_dir), comm)


def run_farm(job, info, comm, runs_dir: str, ranks_per_task: int, fresh: bool = False) -> int:
    """Collective. Run every point of the job's sweep as a task of a farm
    (:mod:`pympc.farm`) on groups of ``ranks_per_task`` ranks: points run side by side,
    a failed point is recorded and the others go on, a signal drains the farm. The farm's
    ledger is ``<runs-dir>/<name>/farm/``; a rerun runs the points not done. Exit status:
    0, 3 (some points failed), 75 (interrupted: run again to resume)."""
    if not job.swept:
        raise InputError(f"{job.path}: --farm runs the points of a [sweep]; this job has none")
    _prepare_sweep(job, comm, runs_dir, fresh)
    farm = spec.module("pympc.farm.pool")
    one = spec.module("mpi4py.MPI").COMM_SELF

    def task(*args):
        group, index = (args[0], args[1]) if len(args) == 2 else (one, args[0])
        with early_signals() as early:  # a signal while the point is set up still checkpoints it
            code = run_point(job, job.points[index], info, group, runs_dir, False, early)
        if code == INTERRUPTED or early.got:
            spec.module("pympc.farm.context").stop_farm()
        return code

    # the run directories decide what a point does (start, resume, done, extend); the
    # farm's ledger is per version of the sweep's resolved jobs, so an extended sweep gets
    # a new one, and failed points are retried (up to the farm's max_failures)
    digest = hashlib.sha256(json.dumps([p.job for p in job.points], sort_keys=True).encode()).hexdigest()
    store = os.path.join(runs_dir, job.name, "farm", digest[:12])
    with farm.Pool(comm, ranks_per_task=ranks_per_task, store=store, retry_failed=True) as pool:
        res = pool.map(task, range(len(job.points)))
    print0(f"{job.name}: farm of {len(job.points)} points on groups of {ranks_per_task} rank(s): {res.done} done, "
           f"{len(res.failed)} failed, {res.not_run} not run ({res.seconds:.1f} s; ledger {store}/ledger)", comm=comm)
    codes = [res.result(i) for i in range(len(job.points)) if i not in res.failed and res.status != INTERRUPTED]
    if res.status == INTERRUPTED or INTERRUPTED in codes:
        return INTERRUPTED
    return DONE_WITH_FAILURES if res.failed else DONE


class early_signals:
    """Local. ``with early_signals() as got:`` records :data:`SIGNALS` that arrive
    outside a solver's own run loop (while a point is set up, or between points), so
    that a signal sent as soon as the run directory says ``running`` still ends in a
    checkpoint and exit 75 rather than killing the rank."""

    def __init__(self):
        self.got, self.old, self.solver = [], {}, None

    def __enter__(self):
        self.old = {s: signal.signal(s, self._handler) for s in SIGNALS}
        return self

    def _handler(self, signum, frame):
        self.got.append(signum)
        if self.solver is not None:  # set up, not yet in its loop: the loop sees it at its first check
            self.solver._signalled = True

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


#: what a Slurm job's attempt records (``slurm.restart_count`` counts its requeues)
SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
                   "SLURM_JOB_NODELIST", "SLURM_STEP_ID")


def _attempt(comm, hosts) -> dict:
    from ..tools.probe import stack_facts

    record = {"start": rundir.now(), "command": sys.argv, "ranks": comm.Get_size(), "host": socket.gethostname(),
              "hosts": hosts, "pid": os.getpid(),
              "versions": {"pympc": __version__, "python": platform.python_version(), "numpy": np.__version__,
                           **stack_facts()}}
    slurm = {k[6:].lower(): os.environ[k] for k in SLURM_VARIABLES if k in os.environ}
    if slurm:
        slurm.setdefault("restart_count", "0")  # Slurm sets it from the first requeue on
        record["slurm"] = slurm
    return record


def run_point(job, point, info, comm, runs_dir, fresh, early=None) -> int:
    """Collective. One point: decide, build the solver, begin the directory, run, close."""
    d = rundir.directory(runs_dir, point.job)
    plan = on_root(lambda: rundir.decide(d, point.job, fresh, job.path), comm)
    if plan.action == "done":
        print0(f"{point.job['name']}: already {plan.marker} in {d}: nothing to run (--fresh starts over)",
               comm=comm)
        return DONE if plan.marker == "done" else DONE_WITH_FAILURES
    pympc = spec.module("pympc")
    g = point.job["grid"]
    with pympc.Decomposition(g["shape"], comm=comm, dims=point.job["decomposition"]["dims"],
                             periodic=g["periodic"], origin=g["origin"], spacing=g["spacing"],
                             centring=g["centring"]) as decomp:
        solver = agree(lambda: _build(info, decomp, point.job, job.path), comm)
        source = point.job["run"]["restart_from"]
        if source is not None and not plan.restart:
            _branch(solver, source, job.path)
        solver.check_run(**_length(point.job), checkpoint=os.path.join(d, rundir.CHECKPOINTS),
                         restart=plan.restart, units=point.job["output"]["units"] or None,
                         overwrite=bool(plan.aside),  # what is in the way moves aside first
                         progress=point.job["run"]["progress"])
        held = {}
        hosts = comm.allgather(socket.gethostname())  # rank -> host, into the attempt's record
        moved = on_root(lambda: _begin(plan, point, job, comm, held, hosts), comm)
        if moved:
            print0(f"{point.job['name']}: {plan.note}; earlier files moved to {moved}", comm=comm)
        if early is not None:
            early.solver = solver
            if early.got:
                solver._signalled = True  # the loop checkpoints at its first signal check and stops
        try:
            return _run(solver, plan, point.job, comm, held)
        finally:
            if early is not None:
                early.solver = None


def _build(info, decomp, job, where):
    """The solver of a point; its constructor's refusal names the job file."""
    try:
        return info.cls(decomp, **spec.solver_kwargs(job, info, decomp.ndim))
    except InputError as e:
        raise InputError(f"{where}: solver: {info.target} refused the job: {e}") from None


def _branch(solver, source: str, where: str) -> None:
    """Collective. Start ``solver`` from another run's checkpoint (``run.restart_from``:
    a checkpoint file, a checkpoints directory or a run directory). Its physics may differ
    (the point of a branch), its grid may not; it keeps the checkpoint's step and dt."""
    step, prefix, directory = None, "checkpoint", source
    if os.path.isfile(source):
        directory, name = os.path.split(source)
        m = re.match(r"^(.*)_(\d+)\.h5$", name)
        if m is None:
            raise InputError(f"{where}: run.restart_from: {source} is not named <prefix>_<step>.h5")
        prefix, step = m.group(1), int(m.group(2))
    elif os.path.isdir(os.path.join(source, rundir.CHECKPOINTS)):
        directory = os.path.join(source, rundir.CHECKPOINTS)
    ck = spec.module("pympc.io.checkpoint").Checkpointer(directory, prefix=prefix, comm=solver.comm)
    allow = tuple(k for k in solver.parameters() if k not in ("solver", "grid"))
    try:
        solver.restore(ck, allow_changed=allow, step=step)
    except InputError as e:
        raise InputError(f"{where}: run.restart_from: {e}") from None
    get_logger(solver.name).info("starting from %s at step %d (t=%g)", source, solver.step_count, solver.t)


def _begin(plan, point, job, comm, held, hosts):
    lock, moved = rundir.begin(plan, point.job, job.text, _attempt(comm, hosts))
    held.update(lock=lock, log=_log_file(plan.directory))
    return moved


def _log_file(d):
    handler = logging.FileHandler(os.path.join(d, rundir.LOG))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    get_logger("pympc")  # the pympc logger configured (rank prefix on stderr) before the file joins it
    logging.getLogger("pympc").addHandler(handler)
    return handler


def _release(held) -> None:
    if "log" in held:
        logging.getLogger("pympc").removeHandler(held["log"])
        held["log"].close()
    if "lock" in held:
        held["lock"].release()


def _run(solver, plan, job, comm, held) -> int:
    """Collective. The run itself and its record: the marker, run.json, the cost report."""
    d = plan.directory
    out = job["output"]
    first, t0 = solver.step_count, time.monotonic()
    log = get_logger(job["name"])
    log.info("%s %s in %s on %d rank(s), process grid %s", "resuming" if plan.restart else "starting",
             job["name"], d, comm.Get_size(), solver.decomp.dims)
    try:
        with costlog.Log(comm) as clog:
            solver.run(**_length(job), output=os.path.join(d, rundir.OUTPUT) if out["enabled"] else None,
                       output_every=out["every"], units=out["units"] or None,
                       checkpoint=os.path.join(d, rundir.CHECKPOINTS), checkpoint_every=job["checkpoint"]["every"],
                       restart=plan.restart, progress=job["run"]["progress"], signals=SIGNALS, params=job)
    except BaseException as e:
        # check_run passed: whatever stops the run now is a failure of the run, not bad input
        rundir.finish(d, "failed", f"{type(e).__name__}: {e}", None)  # any rank that sees it
        _release(held)
        if isinstance(e, InputError):
            raise PympcError(f"{job['name']}: the run failed: {e}") from e
        raise
    marker = "interrupted" if solver.interrupted else "done"
    first = getattr(solver, "start_step", first)  # a resumed run starts at its checkpoint's step
    data = clog.save(os.path.join(d, "costs.json"))
    seconds = time.monotonic() - t0
    if job["output"]["png"] and solver.decomp.ndim == 2 and not solver.interrupted:
        _picture(solver, job, d)
    if comm.Get_rank() == 0:
        _report(d, data)
        reason = (f"signal: checkpointed at step {solver.step_count}" if solver.interrupted
                  else f"finished at step {solver.step_count}")
        rundir.finish(d, marker, reason, [first, solver.step_count])
        _summary(solver, job, d, first, seconds, marker, held["log"])
        _release(held)
    return INTERRUPTED if solver.interrupted else DONE


def _picture(solver, job, d) -> None:
    """Collective. ``final.png`` of the first output field (gathered on rank 0)."""
    name, field = next(iter(solver.output_fields().items()))
    whole = field.gather(root=0)
    if whole is not None:
        spec.module("pympc.jobs.picture").draw(whole, job["grid"], os.path.join(d, "final.png"),
                                               f"{job['name']}: {name} at t = {solver.t:.4g}")


def _length(job) -> dict:
    run = job["run"]
    return {"steps": run["steps"]} if run["steps"] is not None else {"t_end": run["t_end"]}


def _report(d, data) -> None:
    try:
        text = spec.module("pympc.bsp.report").report(data)
    except Exception as e:  # the report is a convenience: never fail a finished run over it
        text = f"(no cost report: {type(e).__name__}: {e})\n"
    with open(os.path.join(d, "costs.txt"), "w") as f:
        f.write(text)


def _summary(solver, job, d, first, seconds, marker, handler) -> None:
    """The closing line: on stdout, and into the run's log file (not the stderr log)."""
    steps = solver.step_count - first
    cells = float(np.prod(job["grid"]["shape"]))
    what = f"output {os.path.join(d, rundir.OUTPUT)} (+ .xmf), " if job["output"]["enabled"] else ""
    line = (f"{job['name']}: {marker}: {steps} steps in {seconds:.2f} s "
            f"({steps * cells / max(seconds, 1e-12) / 1e6:.1f} Mcell-updates/s), step {solver.step_count}, "
            f"t={solver.t:.6g}; {what}checkpoints in {os.path.join(d, rundir.CHECKPOINTS)}, log {os.path.join(d, rundir.LOG)}")
    if marker == "interrupted":
        line += f"; run the job again to resume (exit status {INTERRUPTED})"
    handler.emit(logging.LogRecord(f"pympc.{job['name']}", logging.INFO, __file__, 0, line, None, None))
    print(line, flush=True)
