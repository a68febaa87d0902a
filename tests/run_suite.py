"""The whole test suite: what ``./run test`` runs after the set-up.

1. the serial tests (``pytest -m "not mpi"``);
2. the MPI tests at 1, 2, 3 and 4 ranks (``mpiexec -n N python -m pytest -m mpi
   --with-mpi``), each run under a hard timeout that kills the whole job;
3. the documentation site, built with ``mkdocs build --strict``.

Extra arguments go to every pytest run (e.g. ``./run test -k halo``); ``--ranks 2,3``
picks the rank counts, ``--no-docs`` skips the site.  A run that collects no test, times
out, or leaves no JUnit report counts as failed.  The last line is the total
"N passed, N failed, N skipped". This process only launches: it is not a rank and never
initialises MPI.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pympc.tools.launch import run_mpi  # noqa: E402


def junit_counts(path: str) -> dict | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    c = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in suites:
        for k in c:
            c[k] += int(s.get(k, 0))
    c["passed"] = c["tests"] - c["failures"] - c["errors"] - c["skipped"]
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", default="1,2,3,4", help="MPI rank counts, comma-separated")
    ap.add_argument("--timeout", type=float, default=1200, help="hard timeout per MPI run (s)")
    ap.add_argument("--no-docs", action="store_true", help="skip building the docs")
    ap.add_argument("--no-serial", action="store_true", help="skip the serial tests")
    args, extra = ap.parse_known_args(argv)
    out = tempfile.mkdtemp(prefix="pympc-suite-")
    results = []  # (name, returncode, counts, seconds)

    def record(name, rc, xml, seconds):
        counts = junit_counts(xml)
        results.append((name, rc, counts, seconds))
        status = "ok" if rc == 0 and counts and counts["tests"] else "FAILED"
        print(f"\n=== {name}: {status} (exit {rc}, {seconds:.0f} s)", flush=True)

    if not args.no_serial:
        xml = os.path.join(out, "serial.xml")
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "pytest", "-m", "not mpi", f"--junitxml={xml}", *extra],
                             cwd=ROOT)
        record("serial tests", rc, xml, time.monotonic() - t0)

    for n in [int(x) for x in args.ranks.split(",") if x]:
        xml = os.path.join(out, f"mpi{n}.xml")
        print(f"\n=== MPI tests at {n} rank{'s' if n > 1 else ''} (hard timeout {args.timeout:.0f} s)",
              flush=True)
        r = run_mpi(n, ["-m", "pytest", "-m", "mpi", "--with-mpi", f"--junitxml={xml}", *extra],
                    timeout=args.timeout, capture=False, cwd=ROOT)
        if r.timed_out:
            print(f"=== MPI run at {n} ranks hit its hard timeout and was killed", flush=True)
        record(f"MPI tests, {n} rank{'s' if n > 1 else ''}", r.returncode, xml, r.seconds)

    docs_rc = 0
    if not args.no_docs:
        t0 = time.monotonic()
        mkdocs = os.path.join(os.path.dirname(sys.executable), "mkdocs")
        docs_rc = subprocess.call([mkdocs, "build", "--strict", "--quiet", "-d", os.path.join(out, "site")],
                                  cwd=ROOT)
        print(f"\n=== docs (mkdocs build --strict): {'ok' if docs_rc == 0 else 'FAILED'} "
              f"({time.monotonic() - t0:.0f} s)", flush=True)

    print("\n=== summary")
    total = {"passed": 0, "failed": 0, "skipped": 0}
    bad = docs_rc != 0
    for name, rc, c, secs in results:
        if c is None:
            print(f"  {name:<22} exit {rc:>3}  no JUnit report (aborted or killed)  {secs:6.0f} s")
            total["failed"] += 1
            bad = True
            continue
        failed = c["failures"] + c["errors"]
        total["passed"] += c["passed"]
        total["failed"] += failed
        total["skipped"] += c["skipped"]
        note = "  (no test collected)" if c["tests"] == 0 else ""
        print(f"  {name:<22} exit {rc:>3}  {c['passed']:4d} passed {failed:3d} failed "
              f"{c['skipped']:3d} skipped  {secs:6.0f} s{note}")
        bad |= rc != 0 or c["tests"] == 0 or failed > 0
    if not args.no_docs:
        print(f"  {'docs':<22} exit {docs_rc:>3}")
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
