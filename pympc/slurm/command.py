"""``pympc slurm``: submit a job file to Slurm, watch it, cancel it, read its logs.

    pympc slurm submit JOB [--nodes N --ntasks-per-node T --time 2:00:00 ...] [--dry-run]
    pympc slurm status [RUN|JOBID|JOB]     one view: Slurm's state and the run's own markers
    pympc slurm cancel RUN|JOBID|JOB
    pympc slurm logs RUN|JOBID|JOB [--point K] [--lines N]
    pympc slurm outcome ...                the batch script's own: a finished step's exit status

It runs on a login node: nothing here starts MPI. Bad input (an option, the job file, a
run directory) is refused with one message and exit status 2 before anything is written or
submitted; a Slurm command that fails is exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys

from ..errors import InputError
from ..jobs.status import BAD_INPUT, DONE, FAILED
from . import options, query

HELP = "submit a job file to Slurm; status, cancel, logs of what was submitted"


class _Parser(argparse.ArgumentParser):
    """argparse whose error is one line (and exit 2), naming where help is."""

    def error(self, message):
        raise InputError(f"{self.prog}: {message} (see '{self.prog} --help')")


def submit_parser() -> argparse.ArgumentParser:
    """Local. The options of ``pympc slurm submit`` (made from :data:`pympc.slurm.options.OPTIONS`)."""
    ap = _Parser(prog="pympc slurm submit", allow_abbrev=False,
                 description="Render a batch script for a job file, keep it in the run directory, submit it "
                             "with sbatch; prints the job id (docs/slurm.md)")
    ap.add_argument("job", help="the job file (TOML; docs/jobs.md)")
    for o in options.OPTIONS:
        if o.kind == "flag":
            ap.add_argument(o.flag, dest=o.name, action="store_true", default=argparse.SUPPRESS,
                            help=o.doc.replace("%", "%%"))
        elif o.kind == "modules":
            ap.add_argument(o.flag, dest=o.name, action="append", default=argparse.SUPPRESS, metavar="NAME",
                            help=o.doc.replace("%", "%%"))
        else:
            ap.add_argument(o.flag, dest=o.name, default=argparse.SUPPRESS, metavar=o.name.upper(),
                            help=o.doc.replace("%", "%%"))
    ap.add_argument("--runs-dir", default="runs", help="where run directories go (default: ./runs)")
    ap.add_argument("--fresh", action="store_true", help="start over: the earlier run directory moves aside")
    ap.add_argument("--dry-run", action="store_true", help="print the batch script; write and submit nothing")
    ap.add_argument("--template", default=None, help="the batch-script template (default: slurm/pympc.sbatch)")
    return ap


def _target_parser(name: str, text: str) -> argparse.ArgumentParser:
    ap = _Parser(prog=f"pympc slurm {name}", allow_abbrev=False, description=text)
    ap.add_argument("target", nargs="?" if name == "status" else None, metavar="RUN|JOBID|JOB",
                    help="a run directory, a Slurm job id, or the job file (its run directory under --runs-dir)")
    ap.add_argument("--runs-dir", default="runs", help="where run directories go (default: ./runs)")
    return ap


def _error(message: str, code: int = BAD_INPUT) -> int:
    print(f"pympc slurm: error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv=None) -> int:
    """Local. ``pympc slurm SUBCOMMAND ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"submit": _submit, "status": _status, "cancel": _cancel, "logs": _logs, "outcome": _outcome}
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1] if argv else "usage: pympc slurm submit|status|cancel|logs ...")
        return DONE if argv else BAD_INPUT
    if argv[0] not in commands:
        return _error(f"unknown sub-command {argv[0]!r}: submit, status, cancel or logs")
    try:
        return commands[argv[0]](argv[1:])
    except InputError as e:
        return _error(str(e))
    except query.SlurmError as e:
        return _error(str(e), FAILED)


def _given(args) -> dict:
    return {o.name: getattr(args, o.name) for o in options.OPTIONS if hasattr(args, o.name)}


def _submit(argv) -> int:
    from . import submit

    args = submit_parser().parse_args(argv)
    def max_array():
        try:
            return query.max_array_size(query.config())
        except query.SlurmError:
            if not args.dry_run:
                raise
            return 1001  # Slurm's default: a dry run needs no cluster

    sub = submit.prepare(args.job, _given(args), args.runs_dir, args.fresh, args.template, max_array)
    if args.dry_run:
        sys.stdout.write(sub.script)
        print(f"# dry run: nothing written, nothing submitted (the run directory would be {sub.base})",
              file=sys.stderr)
        return DONE
    _refuse_twice(sub.base)  # --fresh too: the old job would run into the new directory
    job_id = submit.submit(sub, args.runs_dir, args.fresh)
    what = f"array {sub.array} ({len(sub.points)} points" + (f", {sub.pack} per element)" if sub.pack > 1 else ")") \
        if sub.array else f"{sub.opts['nodes']} node(s) x {sub.opts['ntasks_per_node']} rank(s)"
    print(f"{sub.job.name}: submitted as Slurm job {job_id}, {what}; run directory {sub.base}; "
          f"'pympc slurm status {job_id}'", file=sys.stderr)
    print(job_id, flush=True)
    return DONE


def _refuse_twice(base: str) -> None:
    """A run directory whose newest submission Slurm still runs or holds is not submitted
    again (two jobs would share its checkpoints)."""
    from . import submit

    try:
        sub = submit.latest(base)
    except InputError:
        return
    busy = [r for r in query.squeue(sub["job_id"]) if query.live(r.state)]
    if busy:
        raise InputError(f"{base}: already submitted as Slurm job {sub['job_id']} ({busy[0].state}): wait for it, "
                         f"or 'pympc slurm cancel {sub['job_id']}' first")


def _resolve(target: str | None, runs_dir: str):
    """``(run directory or None, job id or None, point or None)`` of a target."""
    from . import status, submit

    if target is None:
        return None, None, None
    if os.path.isdir(target):
        d = os.path.abspath(target)
        if os.path.exists(os.path.join(d, submit.RECORD)):
            return d, None, None
        parent = os.path.dirname(d)
        if os.path.basename(d).isdigit() and os.path.exists(os.path.join(parent, submit.RECORD)):
            return parent, None, int(os.path.basename(d))
        raise InputError(f"{target}: not a run directory pympc slurm submitted (no {submit.RECORD})")
    if re.fullmatch(r"\d+(_\d+)?", target):
        return status.for_job_id(target.split("_")[0]), target, None
    if os.path.isfile(target):
        import tomllib

        from ..jobs import spec

        try:
            name = tomllib.loads(spec.read_text(target)).get("name")
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"{target}: not valid TOML: {e}") from None
        d = os.path.abspath(os.path.join(runs_dir, str(name)))
        if not os.path.exists(os.path.join(d, submit.RECORD)):
            raise InputError(f"{target}: its run directory {d} holds no Slurm submission")
        return d, None, None
    raise InputError(f"{target!r} is no run directory, Slurm job id or job file")


def _status(argv) -> int:
    from . import status, submit

    ap = _target_parser("status", "Where a submitted run stands: Slurm's state and the run directory's marker")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    base, job_id, point = _resolve(args.target, args.runs_dir)
    if args.target is None:
        bases = sorted(os.path.join(args.runs_dir, n) for n in os.listdir(args.runs_dir)
                       if os.path.exists(os.path.join(args.runs_dir, n, submit.RECORD))) \
            if os.path.isdir(args.runs_dir) else []
        if not bases:
            print(f"no Slurm submissions under {args.runs_dir}/")
        for b in bases:
            print(f"{b}: job {submit.latest(b)['job_id']}: {status.summary(status.view(b))}")
        return DONE
    rows = status.view(base) if base else status.bare(job_id)
    if point is not None:
        rows = [r for r in rows if r.point == point]
    if job_id and "_" in job_id:
        rows = [r for r in rows if r.slurm_job == job_id] or rows
    if args.json:
        print(json.dumps(status.as_dicts(rows), indent=1))
        return DONE
    if base:
        print(f"{base}: Slurm job {submit.latest(base)['job_id']}")
    print(status.table(rows))
    if len(rows) > 1:
        print(status.summary(rows))
    return DONE


def _cancel(argv) -> int:
    from . import submit

    args = _target_parser("cancel", "Cancel a submitted run (its ranks checkpoint and stop; not requeued)") \
        .parse_args(argv)
    base, job_id, point = _resolve(args.target, args.runs_dir)
    if point is not None:  # a sweep point's directory: its array element, never the whole array
        from . import status

        row = next((r for r in status.view(base) if r.point == point), None)
        if row is None or "_" not in row.slurm_job:
            raise InputError(f"{args.target}: point {point} is not an array element of {base}'s newest submission "
                             "(its points run in one job): cancel the run directory instead")
        job_id = row.slurm_job
    job_id = job_id or submit.latest(base)["job_id"]
    query.scancel(job_id)
    print(f"cancelled Slurm job {job_id}" + (f" ({base})" if base else ""))
    return DONE


def _logs(argv) -> int:
    from . import status

    ap = _target_parser("logs", "Print a submitted run's Slurm log (the batch script's and rank 0's output)")
    ap.add_argument("--point", type=int, default=None, help="an array's sweep point (default: every element)")
    ap.add_argument("--lines", type=int, default=None, help="only the last N lines of each")
    args = ap.parse_args(argv)
    if args.lines is not None and args.lines < 1:
        raise InputError(f"--lines must be >= 1, got {args.lines}")
    base, job_id, point = _resolve(args.target, args.runs_dir)
    if base is None:
        raise InputError(f"{args.target}: Slurm no longer knows where its log is: give the run directory")
    rows = status.view(base)
    point = args.point if args.point is not None else point
    if point is not None:
        rows = [r for r in rows if r.point == point]
        if not rows:
            raise InputError(f"{base}: no sweep point {point} in its newest submission")
    for path in dict.fromkeys(r.log for r in rows):
        print(f"==> {path} <==")
        try:
            with open(path, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            print("(no log yet: the job has not started)")
            continue
        sys.stdout.writelines(lines[-args.lines:] if args.lines else lines)
    return DONE


def _outcome(argv) -> int:
    """The batch script's: the exit status of a finished ``pympc run`` step, as the run
    directories' markers say (a launcher's own status after a signal is not reliable)."""
    from ..jobs import command, spec

    ap = command.run_parser()
    ap.prog = "pympc slurm outcome"
    ap.add_argument("--code", type=int, required=True)
    ap.add_argument("--signalled", type=int, default=0)
    args = ap.parse_args(argv)
    job = spec.load(args.job)
    # the batch script passed the warning (SIGUSR1) or a SIGTERM on to the launcher
    return command.outcome(job, args, args.code, [signal.SIGUSR1] if args.signalled else [])
