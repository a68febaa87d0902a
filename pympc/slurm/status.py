"""``pympc slurm status``: one view of a submitted run from Slurm and from its run
directories.

Slurm says where a job is (``squeue`` while Slurm still knows it; ``sacct``, or the job
completion log through ``sacct -c`` where there is no accounting database, once it has
ended). The run directory says what the run did: its marker is the ground truth. So a
terminal marker (``done``, ``done-with-failures``, ``failed``) wins; otherwise Slurm's
state decides, and a job gone from ``squeue`` is never taken for completed: a run whose
ranks were killed (time limit, node failure, ``scancel``) leaves ``running`` behind,
and the view says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass

from ..jobs import status as markers
from . import query, submit

TERMINAL = ("done", "done-with-failures", "failed")


@dataclass
class Row:
    """Local. One point (or the whole job) of a submission."""

    point: int | None
    directory: str
    marker: str | None
    slurm_job: str        # 123 or 123_4
    slurm_id: str         # the unique id, when known
    state: str            # Slurm's state, or UNKNOWN
    verdict: str          # what it means for the run
    restarts: int | None
    log: str
    source: str


def verdict(marker: str | None, state: str) -> str:
    """Local. What a point's marker and its Slurm job's state say together."""
    if marker in TERMINAL:
        return marker
    alive = query.live(state)
    if state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"):
        return "requeued: resumes from its checkpoint" if marker in ("interrupted", "running") else "pending"
    if alive:
        return {"running": "running", "interrupted": "resuming"}.get(marker, "starting")
    if state == "UNKNOWN":
        return f"{marker or 'no marker'}; Slurm knows no such job (purged, and no completion record)"
    ending = f"{state} ({query.STATES.get(state, (False, 'unknown state'))[1]})"
    if marker == "interrupted":
        return f"interrupted: {ending}; checkpointed, not requeued: submit again to resume"
    if marker == "running":
        return f"killed: {ending}; the ranks ended without a word: submit again to resume from the newest checkpoint"
    return f"never ran: {ending}"


def _starts(base: str, job_id: str) -> dict:
    """``{element or '-': its newest unique job id}`` of submission ``job_id``, from the
    batch script's start record (lines ``JOB ELEMENT ID RESTARTS TIME NODES``)."""
    out = {}
    try:
        with open(os.path.join(base, submit.STARTS)) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[0] == job_id:
                    out[parts[1]] = parts[2]
    except OSError:
        pass
    return out


def view(base: str) -> list:
    """Local. The rows of a run directory's newest submission."""
    sub = submit.latest(base)
    job_id, pack = sub["job_id"], sub.get("pack") or 0
    cfg = query.config()
    live = {r.job: r for r in query.squeue(job_id)}
    restarts = query.restarts(job_id) if live else {}
    starts = _starts(base, job_id)
    points = sub.get("points")
    if points is None:
        keys = [(None, base, job_id, None)]
    else:
        keys = []
        for k in points:
            element = (k // pack if pack else k) if sub.get("array") else None
            ref = f"{job_id}_{element}" if element is not None else job_id
            keys.append((k, os.path.join(base, str(k)), ref, element))

    def unique(ref, element):  # an array element's own job id: squeue's, else the start record's
        if ref in live:
            return live[ref].id
        return job_id if element is None else starts.get(str(element))
    ids = {ref: unique(ref, element) for k, d, ref, element in keys}
    done = query.ended(sorted({i for ref, i in ids.items() if i and not (ref in live and query.live(live[ref].state))}),
                       cfg)
    rows = []
    for k, d, ref, element in keys:
        rec = live.get(ref)
        uid = ids[ref]
        if (rec is None or not query.live(rec.state)) and uid in done:
            rec = done[uid]
        state = rec.state if rec else "UNKNOWN"
        log = sub.get("log", "").replace("%A", job_id).replace("%a", str(element)).replace("%j", job_id)
        marker = markers.read_marker(d)
        rows.append(Row(k, d, marker, ref, uid or "", state, verdict(marker, state),
                        restarts.get(uid, rec.restarts if rec else None), os.path.join(base, log),
                        rec.source if rec else ""))
    return rows


def for_job_id(job_id: str) -> str | None:
    """Local. The run directory a Slurm job id belongs to (from its log file's place,
    while Slurm still knows the job), or None."""
    jobs = query.show_jobs(job_id)
    out = jobs[0].get("StdOut", "") if jobs else ""
    if not out:
        return None
    d = os.path.dirname(out)
    return d if os.path.exists(os.path.join(d, submit.RECORD)) else None


def bare(job_id: str) -> list:
    """Local. Rows for a job id pympc did not submit (or whose run directory is unknown)."""
    live = query.squeue(job_id)

    def plain(r):  # no run directory, so no marker: Slurm's word only
        return verdict(None, r.state) if query.live(r.state) else \
            f"{r.state} ({query.STATES.get(r.state, (False, 'unknown state'))[1]})"
    rows = [Row(None, "", None, r.job, r.id, r.state, plain(r), None, "", r.source) for r in live]
    if not rows:
        rows = [Row(None, "", None, r.job, r.id, r.state, plain(r), r.restarts, "", r.source)
                for r in query.ended([job_id], query.config()).values()]
    if not rows:
        rows.append(Row(None, "", None, job_id, job_id, "UNKNOWN", verdict(None, "UNKNOWN"), None, "", ""))
    return rows


def summary(rows: list) -> str:
    """Local. One line: how many points are in which verdict (an array's overview)."""
    counts = {}
    for r in rows:
        key = re.split(r"[:;(]", r.verdict)[0].strip()
        counts[key] = counts.get(key, 0) + 1
    states = {}
    for r in rows:
        states[r.state] = states.get(r.state, 0) + 1
    return (f"{len(rows)} point(s): " + ", ".join(f"{n} {k}" for k, n in counts.items()) + "; Slurm: "
            + ", ".join(f"{n} {k}" for k, n in states.items()))


def table(rows: list) -> str:
    """Local. The rows as aligned text."""
    head = ("point", "slurm job", "state", "restarts", "marker", "verdict")
    body = [("-" if r.point is None else str(r.point), r.slurm_job, r.state,
             "" if r.restarts is None else str(r.restarts), r.marker or "-", r.verdict) for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(5)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(row[:5], widths)) + "  " + row[5] for row in [head, *body]]
    failed = [r for r in rows if r.state not in ("COMPLETED", "PENDING", "RUNNING") or r.marker == "failed"]
    for r in failed:
        if r.log:
            lines.append(f"{r.slurm_job}: {r.state}; log {r.log}")
    return "\n".join(lines)


def as_dicts(rows: list) -> list:
    """Local. The rows as plain data (``--json``)."""
    return [asdict(r) for r in rows]

