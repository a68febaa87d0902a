"""Launch a job under mpiexec: what ``./run demo`` runs.

    ./run demo [-n RANKS] [job arguments...]     # the 2D heat demo (jobs/heat2d.py)

RANKS defaults to the number of cores.  The hard timeout (``--timeout``, seconds) ends
the whole job if it runs past it.  Job arguments go to the job: for the demo,
``./run demo --restart --t-end 0.05`` continues the last run to t = 0.05, and a run
without ``--restart`` first moves an earlier run's files aside (see jobs/heat2d.py).

This process only launches: it is not a rank and never initialises MPI
(``tests/test_light_import.py`` checks it).
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pympc.tools.launch import run_mpi  # noqa: E402

JOBS = {"demo": os.path.join(ROOT, "jobs", "heat2d.py"), "pi": os.path.join(ROOT, "jobs", "pi_demo.py")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("job", choices=sorted(JOBS))
    ap.add_argument("-n", "--ranks", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=3600)
    args, rest = ap.parse_known_args(argv)
    if args.ranks < 1:
        ap.error("-n must be >= 1")
    print(f"[pympc] running {args.job} on {args.ranks} rank(s)", flush=True)
    r = run_mpi(args.ranks, [JOBS[args.job], *rest], timeout=args.timeout, capture=False)
    if r.timed_out:
        print(f"[pympc] {args.job} hit the {args.timeout:.0f} s timeout and was stopped", file=sys.stderr)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
