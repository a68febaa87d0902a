"""Run directories: one per run (``<runs-dir>/<name>/``, or ``<name>/<k>/`` for sweep
point k), holding everything about it.

=================  ==========================================================
``job.json``       the resolved job (every default filled in)
``job.toml``       the job file as it was when the run began
``run.json``       versions, the MPI/HDF5 stack, and each attempt: command, ranks, host,
                   start and end times, exit reason, steps
``status``         the marker (:mod:`pympc.jobs.status`), replaced atomically
``log.txt``        rank 0's log of every attempt
``output.h5``      the fields (with ``output.xmf`` for ParaView)
``checkpoints/``   the checkpoints a resume continues from
``costs.json``     the BSP cost log, and ``costs.txt`` its report (``pympc report``)
=================  ==========================================================

:func:`decide` (rank 0, reads only) says what running a job again does: start, resume
from the newest checkpoint (any rank count), nothing (done), or refuse (exit 2: the
physics changed, the directory is in use or is not a run directory). Only the run length
(``run.steps``/``run.t_end``), the progress interval, the decomposition, the description
and the ``[output]``/``[checkpoint]`` tables may change between attempts. ``--fresh``
renames an earlier run's directory aside, never deletes it.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass, field

from ..errors import InputError
from ..fsutil import DirLock, read_json, write_atomic
from . import status

OUTPUT, CHECKPOINTS, LOG = "output.h5", "checkpoints", "log.txt"
#: the keys of a resolved job that may change when a run is resumed
MAY_CHANGE = ("run.steps", "run.t_end", "run.progress", "output.", "checkpoint.", "decomposition.",
              "description", "sweep")


def now() -> str:
    """Local. The local time, ISO 8601 with its offset, to the second."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def directory(runs_dir: str, job: dict) -> str:
    """Local. A point's run directory."""
    d = os.path.join(runs_dir, job["name"])
    return d if job.get("sweep") is None else os.path.join(d, str(job["sweep"]["index"]))


@dataclass
class Plan:
    """Local. What running a point does: ``action`` is ``"start"``, ``"resume"`` or
    ``"done"``; ``restart``: continue from the newest checkpoint; ``aside``: earlier files
    to move out of the way first (``--fresh``: the whole directory)."""

    directory: str
    action: str
    restart: bool = False
    marker: str | None = None
    aside: list = field(default_factory=list)
    note: str = ""


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed(old: dict, new: dict) -> list:
    """Local. The key paths whose values differ between two resolved jobs, but for the
    ones a resumed run may change (:data:`MAY_CHANGE`)."""
    a, b = _flatten(old), _flatten(new)
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k) != b.get(k) and not any(k == m or k.startswith(m) for m in MAY_CHANGE)]


def _read_json(path):
    return read_json(path, "the run directory is damaged; --fresh starts over (renaming it aside)")


def move_aside_sweep(runs_dir: str, name: str) -> str | None:
    """Local. ``--fresh`` for a whole sweep: its directory ``<runs-dir>/<name>`` renamed
    aside at once (never deleted); where it went, or None when there was none."""
    d = os.path.join(runs_dir, name)
    if not os.path.lexists(d):
        return None
    if locked_anywhere(d):
        raise InputError(f"{d}: a point of this sweep is running (its lock is held): --fresh refused")
    return move_aside([d], d)


def locked_anywhere(d: str) -> bool:
    """Local. Whether a run holds the lock of ``d`` or of a directory in it (a sweep's
    point)."""
    return DirLock.held(d) or any(DirLock.held(os.path.join(d, n)) for n in os.listdir(d)
                             if os.path.isdir(os.path.join(d, n)))


def _check_parents(d: str, where: str) -> None:
    """Every directory above ``d`` that exists must be a directory (not a file)."""
    p = os.path.dirname(os.path.abspath(d))
    while p and p != os.path.dirname(p):
        if os.path.lexists(p) and not os.path.isdir(p):
            raise InputError(f"{where}: {p} is not a directory: the run directory {d} cannot be made there")
        p = os.path.dirname(p)


def decide(d: str, job: dict, fresh: bool, where: str) -> Plan:
    """Local. Read ``d`` and say what running ``job`` there does (see the module doc);
    changes nothing. Raises :class:`InputError` to refuse."""
    _check_parents(d, where)
    if not os.path.lexists(d):
        return Plan(d, "start")
    if not os.path.isdir(d):
        raise InputError(f"{where}: the run directory {d} exists and is not a directory")
    if DirLock.held(d):
        raise InputError(f"{where}: the run directory {d} is in use by another run (its lock is held)")
    stored = _read_json(os.path.join(d, "job.json"))
    if stored is None:
        # a batch script may have put its log there first (slurm-*.out: #SBATCH --output)
        if [n for n in os.listdir(d) if not n.startswith("slurm-")]:
            raise InputError(f"{where}: {d} exists but is not a pympc run directory (no job.json): "
                             "choose another --runs-dir or name")
        return Plan(d, "start")
    if fresh:
        return Plan(d, "start", aside=[d], note=f"--fresh: the earlier run in {d} moves aside")
    diff = changed(stored, job)
    if diff:
        old, new = _flatten(stored), _flatten(job)
        what = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
        raise InputError(f"{where}: the job changed since its run in {d} began ({what}): a resumed run "
                         "may change only the run length and the output/checkpoint cadence. Use --fresh "
                         "to start over (the earlier run is renamed aside, not deleted)")
    marker = status.read_marker(d)
    ck = _checkpoints(d)
    if marker in ("done", "done-with-failures") and _same_length(stored, job):
        return Plan(d, "done", marker=marker)
    if ck:
        return Plan(d, "resume", restart=True, marker=marker)
    leftovers = [os.path.join(d, n) for n in (OUTPUT, OUTPUT[:-3] + ".xmf", CHECKPOINTS)
                 if os.path.lexists(os.path.join(d, n))]
    return Plan(d, "resume", restart=False, marker=marker, aside=leftovers,
                note="no checkpoint to resume from: starting again from step 0")


def _same_length(a: dict, b: dict) -> bool:
    return a["run"]["steps"] == b["run"]["steps"] and a["run"]["t_end"] == b["run"]["t_end"]


def _checkpoints(d: str) -> list:
    try:
        return sorted(n for n in os.listdir(os.path.join(d, CHECKPOINTS)) if re.match(r"checkpoint_\d+\.h5$", n))
    except OSError:
        return []


def move_aside(paths: list, d: str) -> str | None:
    """Local. Rename ``paths`` out of the way: a whole run directory to a sibling
    ``<d>.old-<date>-<time>``; files of an attempt into ``<d>/previous-<date>-<time>/``.
    Returns where they went. Never deletes."""
    if not paths:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    whole = paths == [d]
    dest = f"{d}.old-{stamp}" if whole else os.path.join(d, f"previous-{stamp}")
    k = 1
    while os.path.lexists(dest):
        k += 1
        dest = f"{d}.old-{stamp}-{k}" if whole else os.path.join(d, f"previous-{stamp}-{k}")
    if whole:
        os.rename(d, dest)
    else:
        os.makedirs(dest)
        for p in paths:
            os.rename(p, os.path.join(dest, os.path.basename(p)))
    return dest


def begin(plan: Plan, job: dict, text: str, attempt: dict) -> tuple:
    """Local. On rank 0, once every check has passed: make the run directory ready for
    an attempt: earlier files moved aside, the resolved job written (and the job file, for
    a new run), the attempt appended to ``run.json``, the marker ``running``. Returns
    ``(lock, moved)``: the directory's lock, held until :meth:`Lock.release`, and where
    earlier files went (or None)."""
    d = plan.directory
    moved = move_aside(plan.aside, d)
    os.makedirs(d, exist_ok=True)
    lock = DirLock(d, f"the run directory {d} is in use by another run (its lock is held)")
    meta_path = os.path.join(d, "run.json")
    meta = _read_json(meta_path) or {"attempts": []}
    if plan.action == "start":
        prepare_files(d, job, text)
    else:  # what may change between attempts (the run length, the cadence) is the latest
        write_atomic(os.path.join(d, "job.json"), json.dumps(job, indent=1) + "\n")
    meta["attempts"].append(attempt)
    meta["versions"] = attempt.get("versions", meta.get("versions"))
    write_atomic(meta_path, json.dumps(meta, indent=1) + "\n")
    status.write_marker(d, "running")
    return lock, moved


def prepare_files(d: str, job: dict, text: str) -> None:
    """Local. Write a new run directory's resolved job (``job.json``) and job file
    (``job.toml``)."""
    write_atomic(os.path.join(d, "job.json"), json.dumps(job, indent=1) + "\n")
    write_atomic(os.path.join(d, "job.toml"), text)


def queue(points, text: str, runs_dir: str) -> list:
    """Local. On rank 0 (or in ``pympc slurm submit``): create the run directory of every
    point that has none, with its resolved job, its job file and the marker ``queued``:
    the whole plan is on disk before the first point runs. Returns the directories made."""
    made = []
    for point in points:
        d = directory(runs_dir, point.job)
        if not os.path.lexists(d):
            os.makedirs(d)
            prepare_files(d, point.job, text)
            status.write_marker(d, "queued")
            made.append(d)
    return made


def finish(d: str, marker: str, reason: str, steps) -> None:
    """Local. Close an attempt: its end time, exit reason and steps in ``run.json``, then
    the marker."""
    meta_path = os.path.join(d, "run.json")
    meta = _read_json(meta_path) or {"attempts": [{}]}
    meta["attempts"][-1].update({"end": now(), "exit": marker, "reason": reason, "steps": steps})
    write_atomic(meta_path, json.dumps(meta, indent=1) + "\n")
    status.write_marker(d, marker)
