"""Asking Slurm: ``sbatch``, ``squeue``, ``scontrol``, ``sacct`` (or ``sacct -c``, the job
completion log, where there is no accounting database) and ``scancel``, each run as a
command with a timeout, their output parsed here.

:data:`STATES` maps every Slurm job state to what it means for a pympc run. A job that
is no longer in ``squeue`` has *not* therefore completed: its end state comes from
``sacct`` (or the completion log), and a run directory's terminal marker wins over both
(:mod:`pympc.slurm.status`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import InputError

#: Slurm job state -> (live: the job may still run; what it means)
STATES = {
    "PENDING": (True, "waiting for resources, a dependency or its begin time"),
    "CONFIGURING": (True, "its nodes are being set up"),
    "RUNNING": (True, "running"),
    "COMPLETING": (True, "ending: Slurm is cleaning up"),
    "SUSPENDED": (True, "suspended by an administrator or preemption"),
    "REQUEUED": (True, "requeued: it will start again"),
    "REQUEUE_HOLD": (True, "requeued and held: `scontrol release` it"),
    "REQUEUE_FED": (True, "requeued by the federation"),
    "RESIZING": (True, "changing size"),
    "SIGNALING": (True, "being signalled"),
    "STAGE_OUT": (True, "staging out files"),
    "STOPPED": (True, "stopped (SIGSTOP)"),
    "RESV_DEL_HOLD": (True, "held: its reservation was deleted"),
    "COMPLETED": (False, "the batch script exited 0"),
    "FAILED": (False, "the batch script exited non-zero"),
    "TIMEOUT": (False, "killed at its time limit"),
    "PREEMPTED": (False, "preempted by another job"),
    "NODE_FAIL": (False, "one of its nodes failed"),
    "OUT_OF_MEMORY": (False, "killed for exceeding its memory"),
    "CANCELLED": (False, "cancelled (scancel, or its dependency can never be met)"),
    "BOOT_FAIL": (False, "its nodes failed to boot"),
    "DEADLINE": (False, "ended at its --deadline"),
    "SPECIAL_EXIT": (False, "held after a special exit"),
    "REVOKED": (False, "revoked (federation)"),
}
#: the timeout of every Slurm command (a controller that does not answer must not hang us)
TIMEOUT = 30


class SlurmError(Exception):
    """Local. A Slurm command failed or is missing (not bad input: exit 1)."""


def base_state(text: str) -> str:
    """Local. ``CANCELLED by 0`` -> ``CANCELLED``; ``RUNNING+`` -> ``RUNNING``."""
    return re.split(r"[ +]", text.strip(), maxsplit=1)[0].upper() if text.strip() else "UNKNOWN"


def live(state: str) -> bool:
    """Local. Whether a job in ``state`` may still run."""
    return STATES.get(state, (False, ""))[0]


def run(argv: list, check: bool = True) -> subprocess.CompletedProcess:
    """Local. A Slurm command with a timeout; :class:`SlurmError` when it is missing, hangs
    or (``check``) fails."""
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"{argv[0]} is not on PATH: is this a Slurm login node (or module load slurm)?")
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(argv[:2])} did not answer within {TIMEOUT} s: is slurmctld up?") from None
    if check and r.returncode != 0:
        raise SlurmError(f"{' '.join(argv[:2])} failed: {(r.stderr or r.stdout).strip() or f'exit {r.returncode}'}")
    return r


def config() -> dict:
    """Local. ``scontrol show config`` as ``{name: value}``."""
    out = {}
    for line in run(["scontrol", "show", "config"]).stdout.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def max_array_size(cfg: dict) -> int:
    """Local. Array indices run from 0 to MaxArraySize - 1."""
    try:
        return int(cfg.get("MaxArraySize", "1001"))
    except ValueError:
        return 1001


def accounting(cfg: dict) -> bool:
    """Local. Whether ``sacct`` has a database behind it."""
    return cfg.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none"


def sbatch(script_path: str) -> str:
    """Local. Submit a batch script; its job id. Slurm's refusal of the job (an unknown
    partition, a limit) is the user's input: :class:`InputError`."""
    r = run(["sbatch", "--parsable", script_path], check=False)
    if r.returncode != 0:
        message = " ".join(line.strip() for line in (r.stderr or r.stdout).splitlines() if line.strip())
        raise InputError(f"sbatch refused the job: {message or f'exit {r.returncode}'}")
    job_id = r.stdout.strip().split(";")[0]
    if not re.fullmatch(r"\d+", job_id):
        raise SlurmError(f"sbatch --parsable printed {r.stdout.strip()!r}, not a job id")
    return job_id


@dataclass
class Record:
    """Local. One Slurm job (or array element) as Slurm reports it."""

    job: str             # 123, or 123_4 for an array element
    id: str              # the unique id (an array element has its own)
    state: str
    reason: str = ""
    nodes: str = ""
    exit_code: str = ""
    restarts: int | None = None
    source: str = ""     # squeue, sacct, sacct -c


def squeue(job_id: str) -> list:
    """Local. The jobs (array elements one per line) ``squeue`` still knows, in any state."""
    r = run(["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%i|%A|%T|%r|%N"], check=False)
    if r.returncode != 0:
        if "Invalid job id" in r.stderr:
            return []
        raise SlurmError(f"squeue failed: {r.stderr.strip()}")
    out = []
    for line in r.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 5:
            out.append(Record(parts[0], parts[1], base_state(parts[2]), parts[3], parts[4], source="squeue"))
    return out


def show_jobs(job_id: str) -> list:
    """Local. ``scontrol show job`` as one ``{key: value}`` per job (an array: per
    element; values may hold spaces), or [] when Slurm no longer knows it."""
    r = run(["scontrol", "-o", "show", "job", job_id], check=False)
    lines = r.stdout.splitlines() if r.returncode == 0 else []
    return [{m.group(1): m.group(2) for m in re.finditer(r"(?:^| )(\w+)=(.*?)(?= \w+=|$)", line)}
            for line in lines if line.strip()]


def restarts(job_id: str) -> dict:
    """Local. ``{unique id: Restarts}`` of a job's elements (live jobs only)."""
    return {j["JobId"]: int(j["Restarts"]) for j in show_jobs(job_id)
            if j.get("JobId", "").isdigit() and j.get("Restarts", "").isdigit()}


def ended(ids: list, cfg: dict) -> dict:
    """Local. ``{unique id: Record}`` of finished jobs: from ``sacct`` when there is an
    accounting database, else from the job completion log (``sacct -c``); the last record
    of a job wins (a requeued job has one per run)."""
    if not ids:
        return {}
    fields = "State,ExitCode,NodeList"
    if accounting(cfg):  # JobIDRaw: an array element's own id (JobID would say 123_4)
        argv, source = ["sacct", "-X", "-n", "-P", "-o", f"JobIDRaw,{fields},Restarts", "-j", ",".join(ids)], "sacct"
    elif cfg.get("JobCompType", "jobcomp/none") != "jobcomp/none":  # the completion log holds own ids
        argv, source = ["sacct", "-c", "-n", "-P", "-o", f"JobID,{fields}", "-j", ",".join(ids)], "sacct -c"
    else:
        return {}
    r = run(argv, check=False)
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 4 or not re.fullmatch(r"\d+(_\d+)?", parts[0]):
            continue
        rec = Record(parts[0], parts[0], base_state(parts[1]), exit_code=parts[2], nodes=parts[3], source=source)
        if len(parts) > 4 and parts[4].isdigit():
            rec.restarts = int(parts[4])
        out[parts[0]] = rec
    return out


def scancel(job_id: str) -> None:
    """Local. Cancel a job (the ranks get SIGTERM, checkpoint and stop; it is not requeued)."""
    run(["scancel", job_id])
