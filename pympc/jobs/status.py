"""Exit statuses and status markers: one table for ``pympc run``, the task farm and the
Slurm layer (docs/jobs.md holds :func:`table`; a test keeps them equal).

A batch script requeues on :data:`INTERRUPTED` (75, ``EX_TEMPFAIL`` of sysexits.h):
the run checkpointed and running it again resumes it.
"""

from __future__ import annotations

import os

from ..fsutil import write_atomic

DONE, FAILED, BAD_INPUT, DONE_WITH_FAILURES, INTERRUPTED = 0, 1, 2, 3, 75

#: exit status -> (the run directory's marker, meaning)
EXIT = {
    DONE: ("done", "every step ran; the output and the final checkpoint are complete"),
    FAILED: ("failed", "an error stopped the run (the log says which); run it again to resume from the "
                       "newest checkpoint"),
    BAD_INPUT: (None, "bad input: the job file, an option or the run directory was refused before any "
                      "rank computed; nothing was written"),
    DONE_WITH_FAILURES: ("done-with-failures", "finished, but some tasks (sweep points, farm tasks) failed"),
    INTERRUPTED: ("interrupted", "a signal (SIGTERM, SIGUSR1, SIGINT) or the wall-time limit stopped the "
                                 "run at a step boundary after a checkpoint: run it again to resume"),
}
#: the markers a run directory's ``status`` file holds, in a run's order
MARKERS = ("queued", "running", "done", "done-with-failures", "interrupted", "failed")
MARKER_MEANING = {
    "queued": "created (by a sweep, a farm or a Slurm submission), not started yet",
    "running": "a run is in progress, or one ended without a word (killed): run again to resume",
}


def table() -> str:
    """Local. The exit statuses and markers as a Markdown table."""
    rows = ["| exit status | marker | meaning |", "|---|---|---|"]
    for code, (marker, meaning) in EXIT.items():
        rows.append(f"| {code} | {'`' + marker + '`' if marker else '(none)'} | {meaning} |")
    for marker, meaning in MARKER_MEANING.items():
        rows.append(f"| | `{marker}` | {meaning} |")
    return "\n".join(rows) + "\n"


def write_marker(directory: str, marker: str) -> None:
    """Local. Set a run directory's status marker (the file ``status``)."""
    if marker not in MARKERS:
        raise ValueError(f"unknown status marker {marker!r}")
    write_atomic(os.path.join(directory, "status"), marker + "\n")


def read_marker(directory: str) -> str | None:
    """Local. A run directory's status marker, or None when it has none."""
    try:
        with open(os.path.join(directory, "status")) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None
