"""``pympc run`` and ``pympc check``: a job file, run or checked.

    pympc check JOB [-n RANKS]          check only; starts no MPI (exit 0 or 2)
    pympc check --schema                the job file's JSON Schema
    pympc run -n 4 JOB                  check, then launch mpiexec -n 4 on this job
    mpiexec -n 4 pympc run JOB          the same under any launcher (srun pympc run JOB)
    pympc run JOB --sweep-index K       one point of a sweep (a Slurm array task)

Without ``-n`` the process is a rank (a launcher started it, or it is a one-rank run);
with ``-n`` it is a parent that checks the job without MPI, launches ``mpiexec`` and
passes signals on, and never initialises MPI itself. The exit statuses are
:mod:`pympc.jobs.status`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys

from .. import env as _env
from ..errors import InputError
from .status import BAD_INPUT, DONE

RUN_HELP = "run a job file (under mpiexec/srun, or -n RANKS to launch mpiexec here)"
CHECK_HELP = "check a job file without running it (no MPI starts)"


def _common(ap) -> None:
    ap.add_argument("job", nargs=None, help="the job file (TOML; docs/jobs.md)")
    ap.add_argument("-n", "--ranks", type=int, default=None,
                    help="run: launch mpiexec with RANKS ranks; check: check the grid for RANKS ranks")


def run_parser() -> argparse.ArgumentParser:
    """Local. The options of ``pympc run`` (docs/jobs.md lists each; a test checks it)."""
    # no abbreviations: an option is spelt out (a prefix of --ranks is no launcher option)
    ap = argparse.ArgumentParser(prog="pympc run", description=RUN_HELP, allow_abbrev=False)
    _common(ap)
    ap.add_argument("--sweep-index", type=int, default=None, metavar="K",
                    help="run only point K of the job's sweep (numbered from 0)")
    ap.add_argument("--runs-dir", default="runs", help="where run directories go (default: ./runs)")
    ap.add_argument("--fresh", action="store_true",
                    help="start over: rename the earlier run directory aside (never deleted)")
    ap.add_argument("--farm", action="store_true",
                    help="run the sweep's points side by side as a task farm (docs/farm.md)")
    ap.add_argument("--ranks-per-task", type=int, default=1, metavar="K",
                    help="with --farm: ranks per sweep point (default 1)")
    ap.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help="with -n: SIGTERM the job after SECONDS (it checkpoints and exits 75), kill it "
                         "60 s later")
    return ap


def check_parser() -> argparse.ArgumentParser:
    """Local. The options of ``pympc check``."""
    ap = argparse.ArgumentParser(prog="pympc check", description=CHECK_HELP, allow_abbrev=False)
    ap.add_argument("job", nargs="?", help="the job file (TOML; docs/jobs.md)")
    ap.add_argument("-n", "--ranks", type=int, default=None, help="check the grid for RANKS ranks")
    ap.add_argument("--schema", action="store_true", help="print the job file's JSON Schema and exit")
    return ap


def _error(message: str) -> int:
    print(f"pympc: error: {message}", file=sys.stderr, flush=True)
    return BAD_INPUT


def check_main(argv=None) -> int:
    """Local. ``pympc check``: exit 0 when the job file is good, 2 (one message) when not."""
    args = check_parser().parse_args(argv)
    from . import schema, spec

    if args.schema:
        print(json.dumps(schema.json_schema(), indent=1))
        return DONE
    if args.job is None:
        return _error("pympc check: give a job file (or --schema)")
    if args.ranks is not None and args.ranks < 1:
        return _error(f"-n must be >= 1, got {args.ranks}")
    try:
        job = spec.load(args.job, ranks=args.ranks)
    except InputError as e:
        return _error(str(e))
    ranks = f" on {args.ranks} rank(s)" if args.ranks else ""
    print(f"{args.job}: OK: {job.name}, {len(job.points)} run(s){ranks}; solver "
          f"{job.points[0].job['solver_class']}, grid {job.points[0].job['grid']['shape']}")
    return DONE


def run_main(argv=None) -> int:
    """Local. ``pympc run``: a parent that launches (``-n``) or a rank that runs."""
    args = run_parser().parse_args(argv)
    problem = _option_problem(args)
    if problem:
        return _error(problem)
    if args.ranks is not None:
        return _launch(args)
    if args.timeout is not None:
        return _error("--timeout needs -n (the launching process keeps the time; under another "
                      "launcher, use its own limit: srun --time, mpiexec's timeout)")
    return _rank(args)


def _option_problem(args) -> str | None:
    """What is wrong with a combination of ``pympc run``'s options, or None."""
    if args.ranks_per_task < 1:
        return f"--ranks-per-task must be >= 1, got {args.ranks_per_task}"
    if args.farm and args.sweep_index is not None:
        return "--farm runs every point of the sweep: give --farm or --sweep-index, not both"
    if not args.farm and args.ranks_per_task != 1:
        return "--ranks-per-task needs --farm"
    if args.farm and args.ranks is not None and args.ranks_per_task > args.ranks:
        return f"--ranks-per-task {args.ranks_per_task} is more than the {args.ranks} rank(s) of -n"
    return None


def _check_ranks(args, size: int) -> int:
    """The rank count one point runs on: a farm's group, or the whole job."""
    return args.ranks_per_task if args.farm else size


def _child_argv(args) -> list:
    """What the ranks run: this command without the launcher's options, rebuilt from
    the parsed options (every spelling of -n is gone, so no rank launches again)."""
    out = ["run", os.path.abspath(args.job), "--runs-dir", os.path.abspath(args.runs_dir)]
    if args.sweep_index is not None:
        out += ["--sweep-index", str(args.sweep_index)]
    if args.farm:
        out += ["--farm", "--ranks-per-task", str(args.ranks_per_task)]
    return out + (["--fresh"] if args.fresh else [])


def _launch(args) -> int:
    """The parent of ``pympc run -n``: check the job without MPI, then launch."""
    from . import spec
    from ..tools.launch import exec_mpi

    if args.ranks < 1:
        return _error(f"-n must be >= 1, got {args.ranks}")
    try:
        _env.value("PYMPC_PROGRESS")  # a bad value: refused here, before anything starts
        job = spec.load(args.job, ranks=_check_ranks(args, args.ranks))
        job.point(args.sweep_index)
    except (InputError, _env.EnvError) as e:
        return _error(str(e))
    env = dict(os.environ)
    if not _env.raw("PYMPC_PROGRESS"):
        # under mpiexec rank 0's stdout is a pipe: the choice is made here, where the user is
        env["PYMPC_PROGRESS"] = "bar" if sys.stderr.isatty() else "lines"
    env.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    code, passed = exec_mpi(args.ranks, ["-m", "pympc", *_child_argv(args)], env=env, timeout=args.timeout)
    return outcome(job, args, code, passed)


def outcome(job, args, code: int, passed) -> int:
    """Local. The exit status of a launched run. The ranks exit 75 when a signal interrupted
    them, but MPICH's mpiexec, once it has passed a SIGTERM on (from us, or sent to it
    directly), exits 0 or 15 whatever its ranks did: then the run directories' markers,
    written by the ranks, say what happened."""
    if code in (2, 3) or (code not in (0, 15, 128 + 15, -15) and not passed):
        return code  # the ranks' own verdict (bad input; done with failed points)
    from . import rundir, status

    markers = [status.read_marker(rundir.directory(args.runs_dir, p.job)) for p in job.point(args.sweep_index)]
    if "interrupted" in markers or ((passed or code == 0) and "queued" in markers and "running" not in markers):
        return status.INTERRUPTED  # checkpointed, or drained before some points started: run again
    if markers and all(m in ("done", "done-with-failures") for m in markers):
        return DONE if all(m == "done" for m in markers) else status.DONE_WITH_FAILURES
    # killed before a marker said how it ended ("running"), or failed: never report success
    return code if code not in (0, 75) else status.FAILED


def _rank(args) -> int:
    """A rank: the job read by rank 0 and shared, checked on every rank, then run."""
    from ..runtime import WORLD, agree, on_root
    from . import runner, solverinfo, spec

    comm = WORLD
    try:
        text = on_root(lambda: spec.read_text(args.job), comm)
        job = agree(lambda: spec.load(args.job, ranks=_check_ranks(args, comm.Get_size()), imports=True,
                                      text=text), comm)
        job.point(args.sweep_index)
        base = os.path.dirname(os.path.abspath(args.job))
        with solverinfo.search_path([base, os.getcwd()]):
            if args.farm:
                return runner.run_farm(job, job.info, comm, args.runs_dir, args.ranks_per_task, args.fresh)
            return runner.run_job(job, job.info, comm, args.runs_dir, args.sweep_index, args.fresh)
    except InputError as e:
        if comm.Get_rank() == 0:
            # every rank checks the same text: the rank check_all names adds nothing here
            _error(re.sub(r" \(rank \d+\)$", "", str(e)))
        return BAD_INPUT


def main(argv=None) -> int:
    """Local. ``python -m pympc.jobs.command run|check ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":
        return check_main(argv[1:])
    if argv and argv[0] == "run":
        return run_main(argv[1:])
    return _error("usage: pympc run|check JOB ...")
