"""What ``./run demo`` runs: the main job, a job file, under mpiexec.

    ./run demo [-n RANKS] [pympc run options...]   # pympc run -n RANKS jobs/heat2d.toml
    ./run demo --fresh                             # start over (the earlier run moves aside)
    .venv/bin/python jobs/launch.py pi -n 4        # the first SPMD example (Monte Carlo pi)

RANKS defaults to the number of cores. The demo's run directory is ``runs/heat2d``; run
it again and it says it is done (or resumes it, if it was interrupted). A hard timeout
(``--timeout``, seconds) stops the job: first with SIGTERM (it checkpoints, exit 75),
then by force.

This process only launches: it is not a rank and never initialises MPI
(``tests/test_light_import.py`` checks it).
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pympc.jobs.command import run_main  # noqa: E402
from pympc.tools.launch import run_mpi  # noqa: E402

DEMO = os.path.join(ROOT, "jobs", "heat2d.toml")
PI = os.path.join(ROOT, "jobs", "pi_demo.py")


def main(argv=None):
    """Local. Launch the demo (a job file) or the pi example; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("job", choices=("demo", "pi"))
    ap.add_argument("-n", "--ranks", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=3600)
    args, rest = ap.parse_known_args(argv)
    if args.ranks < 1:
        ap.error("-n must be >= 1")
    print(f"[pympc] running {args.job} on {args.ranks} rank(s)", flush=True)
    if args.job == "demo":
        return run_main(["-n", str(args.ranks), DEMO, "--timeout", str(args.timeout), *rest])
    r = run_mpi(args.ranks, [PI, *rest], timeout=args.timeout, capture=False)
    if r.timed_out:
        print(f"[pympc] {args.job} hit the {args.timeout:.0f} s timeout and was stopped", file=sys.stderr)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
