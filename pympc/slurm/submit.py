"""``pympc slurm submit``: a job file checked, its batch script rendered, its run
directory prepared and the script submitted with ``sbatch --parsable``.

The order makes bad input cost nothing: every option and the job file are checked, the
run directories are read (not written) and the script is rendered in memory first. Only
then is anything written: the run directory with its resolved job (marker ``queued``),
the rendered script ``slurm.sbatch`` and ``slurm.json`` (every submission: its options,
job id, versions). Should ``sbatch`` refuse the job, what this call made is removed again.

A job with a ``[sweep]`` becomes an array job: element k runs sweep point k. Above
Slurm's ``MaxArraySize`` consecutive points are packed into one element and run one after
another.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import shutil
import sys
from dataclasses import dataclass, field

from .. import env as _env
from .._version import __version__
from ..errors import InputError
from ..fsutil import read_json, write_atomic
from ..jobs import rundir, spec
from . import options, query, render

SCRIPT, RECORD, STARTS = "slurm.sbatch", "slurm.json", "slurm-starts.txt"


@dataclass
class Submission:
    """Local. A checked submission, ready to write and submit."""

    job: object                 # the checked job (:class:`pympc.jobs.spec.Job`)
    opts: dict                  # every option's value
    base: str                   # the run directory (a sweep's: the directory of its points)
    script: str                 # the rendered batch script
    array: str | None = None    # the --array value (with %N)
    pack: int = 0               # points per array element (0: no array)
    points: list = field(default_factory=list)  # the points submitted


def _ranks(o: dict) -> int:
    return o["nodes"] * o["ntasks_per_node"]


def prepare(job_path: str, given: dict, runs_dir: str, fresh: bool = False, template: str | None = None,
            max_array=None) -> Submission:
    """Local. Check everything and render the script; writes nothing. ``given``: the
    options given on the command line; ``max_array``: Slurm's MaxArraySize, or a function
    that gives it (asked only for an array; from ``scontrol`` when None)."""
    text = spec.read_text(job_path)
    import tomllib

    try:
        table = tomllib.loads(text).get("slurm", {})
    except tomllib.TOMLDecodeError:
        table = {}  # spec.load says what is wrong with the file
    o = options.merge(table, given, job_path)
    job = spec.load(job_path, ranks=o["ranks_per_task"] if o["farm"] else _ranks(o), text=text)
    if o["farm"] and o["ranks_per_task"] > _ranks(o):
        raise InputError(f"--ranks-per-task {o['ranks_per_task']} is more than the job's {_ranks(o)} rank(s)")
    as_array = job.swept and not (o["no_array"] or o["farm"])
    if not job.swept and (o["array"] or o["array_throttle"] or o["farm"] or o["no_array"]):
        what = next(f for f in ("array", "array_throttle", "farm", "no_array") if o[f])
        raise InputError(f"{job_path}: {options.BY_NAME[what].flag} is for a job with a [sweep]; this job has none")
    if job.swept and not as_array and (o["array"] or o["array_throttle"]):
        raise InputError("--array and --array-throttle make an array job: not with --no-array or --farm")
    base = os.path.abspath(os.path.join(runs_dir, job.name))
    render.log_path(os.path.join(base, "x"), "--runs-dir")
    _check_directories(job, runs_dir, fresh)
    sub = Submission(job, o, base, "")
    sub.points = options.array_indices(o["array"], len(job.points)) if o["array"] else \
        list(range(len(job.points)))
    if as_array:
        limit = max_array() if callable(max_array) else max_array
        limit = limit if limit is not None else query.max_array_size(query.config())
        if o["array"]:
            if max(sub.points) >= limit:
                raise InputError(f"--array {o['array']}: index {max(sub.points)} is past Slurm's MaxArraySize "
                                 f"({limit}): leave --array out and pympc packs the points into fewer elements")
            sub.array, sub.pack = o["array"], 1
        else:
            sub.pack = math.ceil(len(job.points) / limit)
            sub.array = f"0-{math.ceil(len(job.points) / sub.pack) - 1}"
        if o["array_throttle"]:
            sub.array += f"%{o['array_throttle']}"
    sub.script = render.render(render.read_template(template or render.template_path()),
                               _directives(sub), _settings(sub, runs_dir))
    return sub


def _check_directories(job, runs_dir: str, fresh: bool) -> None:
    """Every point's run directory, read only: in use, another job's, changed physics."""
    if fresh:
        d = os.path.join(runs_dir, job.name)
        if os.path.isdir(d) and rundir.locked_anywhere(d):
            raise InputError(f"{d}: a run is in progress there (its lock is held): --fresh refused")
        return
    for point in job.points:
        rundir.decide(rundir.directory(runs_dir, point.job), point.job, False, job.path)


def _directives(sub: Submission) -> list:
    o = sub.opts
    out = [("--job-name", o["job_name"] or sub.job.name)]
    for opt in options.OPTIONS:
        if opt.sbatch in (None, "--job-name", "--kill-on-invalid-dep") or o[opt.name] in (None, False):
            continue
        out.append((opt.sbatch, None if opt.kind == "flag" else str(o[opt.name])))
        if opt.name == "dependency":
            out.append(("--kill-on-invalid-dep", o["kill_on_invalid_dep"]))
    if sub.array:
        out.append(("--array", sub.array))
    out += [("--signal", f"B:USR1@{o['signal_before']}"), ("--requeue", None), ("--open-mode", "append"),
            ("--output", os.path.join(sub.base, "slurm-%A_%a.out" if sub.array else "slurm-%j.out"))]
    return out


def _settings(sub: Submission, runs_dir: str) -> dict:
    o = sub.opts
    # pympc's settings travel with the job (as they are here), the template's own stays here
    given = {k: _env.raw(k) for k in _env.VARIABLES if k not in ("PYMPC_SLURM_TEMPLATE", "PYMPC_REQUIRE_SLURM")}
    env = {k: v for k, v in given.items() if v is not None}
    env.setdefault("PYMPC_PROGRESS", "lines")
    if o["mpiexec"]:
        mpiexec = shlex.split(o["mpiexec"])
    elif o["launcher"] == "mpiexec":
        from ..tools.launch import mpiexec_command

        mpiexec = mpiexec_command()
    else:
        mpiexec = ["mpiexec"]
    mpiexec[0] = shutil.which(mpiexec[0]) or mpiexec[0]
    run_options = ["--farm", "--ranks-per-task", str(o["ranks_per_task"])] if o["farm"] else []
    return {
        "PYTHON": sys.executable, "WORKDIR": os.getcwd(), "JOB": os.path.abspath(sub.job.path),
        "RUNS_DIR": os.path.abspath(runs_dir), "RECORD_DIR": sub.base, "LAUNCHER": o["launcher"],
        "SRUN_MPI": o["srun_mpi"], "MPIEXEC": mpiexec,
        "MAX_REQUEUES": o["max_requeues"], "PACK": sub.pack if sub.array else 0,
        "NPOINTS": len(sub.job.points), "RUN_OPTIONS": run_options, "MODULES": list(o["modules"]),
        "ENVIRONMENT": [f"{k}={v}" for k, v in env.items()],
    }


def _versions() -> dict:
    """What the login node has installed, read without loading MPI (the ranks' own
    versions go into run.json when they start)."""
    from importlib import metadata

    out = {"pympc": __version__, "python": platform.python_version()}
    for name in ("numpy", "mpi4py", "h5py"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        from ..tools.probe import mpi_libraries

        out["mpi_libraries"] = mpi_libraries()  # found by a child process, as pympc info does
    except Exception as e:  # worth recording, not worth failing a submission over
        out["mpi_libraries"] = f"unknown ({type(e).__name__}: {e})"
    return out


def submit(sub: Submission, runs_dir: str, fresh: bool = False) -> str:
    """Local. Write the run directory and submit; returns the Slurm job id."""
    made = []
    moved = None
    if fresh and os.path.lexists(sub.base):
        moved = rundir.move_aside([sub.base], sub.base)
    try:
        for d in (os.path.abspath(runs_dir), sub.base):
            if not os.path.lexists(d):
                made.append(d)
        made += rundir.queue(sub.job.points, sub.job.text, runs_dir)
        os.makedirs(sub.base, exist_ok=True)
        script_path = os.path.join(sub.base, SCRIPT)
        record_path = os.path.join(sub.base, RECORD)
        old_script = _read(script_path)
        write_atomic(script_path, sub.script)
        os.chmod(script_path, 0o755)
        job_id = query.sbatch(script_path)
    except BaseException:
        _undo(made, locals().get("script_path"), locals().get("old_script"))
        if moved:  # --fresh had moved the earlier run aside: it comes back
            os.rename(moved, sub.base)
        raise
    record = read_json(record_path, "") if os.path.exists(record_path) else None
    record = record if isinstance(record, dict) else {"submissions": []}
    record["submissions"].append({
        "job_id": job_id, "submitted": rundir.now(), "job_file": os.path.abspath(sub.job.path),
        "array": sub.array, "pack": sub.pack, "points": sub.points if sub.job.swept else None,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in sub.opts.items()},
        "script": SCRIPT, "log": "slurm-%A_%a.out" if sub.array else "slurm-%j.out",
        "moved_aside": moved, "versions": _versions()})
    write_atomic(record_path, json.dumps(record, indent=1) + "\n")
    return job_id


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _undo(made: list, script_path, old_script) -> None:
    """Remove what a refused submission made (only that: a directory this call created)."""
    for d in sorted(made, key=len, reverse=True):
        shutil.rmtree(d, ignore_errors=True)
    if script_path and os.path.exists(script_path) and not any(script_path.startswith(d + os.sep) for d in made):
        if old_script is None:
            os.unlink(script_path)
        else:
            write_atomic(script_path, old_script)


def latest(base: str) -> dict:
    """Local. The newest submission recorded in a run directory, or an InputError."""
    record = read_json(os.path.join(base, RECORD), f"{base}/{RECORD} is damaged")
    if not isinstance(record, dict) or not record.get("submissions"):
        raise InputError(f"{base}: no Slurm submission recorded here ({RECORD}): submit it with "
                         "'pympc slurm submit JOB'")
    return record["submissions"][-1]
