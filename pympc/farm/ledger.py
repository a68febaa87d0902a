"""The farm's ledger: a durable record of every task, readable after any crash.

Format (a directory, ``<store>/ledger/`` by default):

* ``farm.json``: the farm's identity, written once, atomically: the number of tasks, a
  hash of the task list (each task's index and a hash of its arguments), the seed;
* ``<attempt>-<rank>.jsonl``: one append-only file per writer (a group leader of one
  attempt): one JSON object per line, ``{"task", "status", "rank", "attempt",
  "start", "seconds", ...}``, and for a failure the exception and its traceback, for a
  result either the value inline (pickled, base64) or the file it was written to.

Why not one HDF5 file: a process killed while HDF5 writes can leave the whole file
unreadable (HDF5 caches its metadata; SWMR needs one writer), and a shared file on
Lustre/GPFS/NFS needs locking between writers. Here every file has one writer and is
only appended to, each record in one ``write`` call of a whole line: a kill at any byte
leaves at most a torn last line, which readers skip. The operating system keeps what was
written when a process is killed; ``fsync`` (at the end of each attempt, and every few
seconds) covers a node that loses power.
"""

from __future__ import annotations

import glob
import json
import os
import time

from ..errors import InputError
from ..fsutil import DirLock, read_json, write_atomic

HEADER = "farm.json"
FORMAT = "pympc-farm-ledger/1"
#: the statuses that settle a task (a done record wins over failures); a task recorded
#: only as "interrupted" (it stopped part-way and checkpointed: stop_farm) runs again
STATUSES = ("done", "failed")


def read_header(directory: str) -> dict | None:
    """Local. The ledger's identity (``farm.json``), or None when there is no ledger."""
    return read_json(os.path.join(directory, HEADER), "the farm's ledger is damaged; move the ledger "
                     "directory aside to start the farm afresh")


def lock(directory: str) -> DirLock:
    """Local. On rank 0, for one run of a farm: the ledger's lock, so that a second run
    of the same farm at the same time (a requeued job while the first still drains) is
    refused instead of sharing attempt numbers and running tasks twice."""
    return DirLock(directory, f"{directory}: this farm's ledger is in use by another run (its lock is held)")


def open_ledger(directory: str, ntasks: int, tasks_hash: str, seed) -> dict:
    """Local. On rank 0: create the ledger for this task list, or check that an existing
    one belongs to it. A rerun whose task list changed is refused (:class:`InputError`):
    its records would name other tasks. Returns the header."""
    header = read_header(directory)
    if header is None:
        os.makedirs(directory, exist_ok=True)
        header = {"format": FORMAT, "tasks": ntasks, "tasks_hash": tasks_hash, "seed": seed,
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "attempts": 0}
    elif header.get("tasks_hash") != tasks_hash or header.get("tasks") != ntasks:
        raise InputError(f"{directory}: this ledger is of another task list ({header.get('tasks')} tasks, "
                         f"hash {str(header.get('tasks_hash'))[:12]}; now {ntasks} tasks, hash "
                         f"{tasks_hash[:12]}): a rerun must submit the same tasks in the same order. Use "
                         "another ledger (ledger=) or move this one aside")
    elif header.get("seed") != seed:
        raise InputError(f"{directory}: this ledger's farm had seed {header.get('seed')!r}, now {seed!r}: "
                         "its random streams would differ")
    header["attempts"] = int(header.get("attempts", 0)) + 1
    write_atomic(os.path.join(directory, HEADER), json.dumps(header, indent=1) + "\n")
    return header


def _lines(directory: str):
    """``(path, offset, line)`` of every whole line of every writer's file, read a line
    at a time (a torn last line, from a writer killed while writing it, is skipped)."""
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        with open(path, "rb") as f:
            pos = 0
            for line in f:
                if line.endswith(b"\n"):
                    yield path, pos, line[:-1]
                pos += len(line)


def records(directory: str):
    """Local. Every whole record of every writer, in no particular order."""
    for _, _, line in _lines(directory):
        try:
            yield json.loads(line)
        except ValueError:
            continue


def state(directory: str, ntasks: int) -> dict:
    """Local. Per task index, what the ledger knows: ``{"status": "done"|"failed",
    "failures": n, "record": the last record}``; tasks never recorded (or only recorded
    as interrupted) are absent. A done record wins over any failure. A record's inline
    result is not kept: ``record["at"]`` says where to read it (:func:`read_at`), so the
    state of a large farm is small."""
    out: dict = {}
    for path, pos, line in _lines(directory):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        t = rec.get("task")
        if not isinstance(t, int) or not 0 <= t < ntasks or rec.get("status") not in STATUSES:
            continue
        if "value" in rec:
            rec["value"], rec["at"] = None, (path, pos, len(line))
        cur = out.setdefault(t, {"status": None, "failures": 0, "record": None})
        if rec["status"] == "failed":
            cur["failures"] += 1
            if cur["status"] != "done":
                cur["status"], cur["record"] = "failed", rec
        else:
            cur["status"], cur["record"] = "done", rec
    return out


def read_at(at) -> dict:
    """Local. The whole record at ``(path, offset, length)`` (its inline result too)."""
    path, pos, length = at
    with open(path, "rb") as f:
        f.seek(pos)
        return json.loads(f.read(length))


class Writer:
    """Local. One writer's append-only ledger file (see the module doc): each
    :meth:`write` appends whole lines in one ``write`` call; :meth:`close` syncs."""

    SYNC_EVERY = 5.0  # seconds between fsyncs (a kill needs none: the kernel has the data)

    def __init__(self, directory: str, attempt: int, rank: int):
        self.path = os.path.join(directory, f"{attempt:04d}-{rank:06d}.jsonl")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.synced = time.monotonic()

    def write(self, recs) -> None:
        """Local. Append records (dicts), as one write of whole lines."""
        data = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in recs)
        if data:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
        if time.monotonic() - self.synced > self.SYNC_EVERY:
            os.fsync(self.fd)
            self.synced = time.monotonic()

    def close(self) -> None:
        """Local. Sync and close."""
        if self.fd is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
