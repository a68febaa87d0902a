"""Run pympc's NPB kernels and NASA's official MPI code side by side; write the table.

    ./run bench npb                                   # classes W and A at 1 and 2 ranks
    python benchmarks/npb/run.py --kernels ep,is --classes S --ranks 1,2,4

The official binaries come from benchmarks/npb/build_official.sh (``$NPB_BUILD/bin``,
default ``~/.cache/pympc-npb/bin``); without them the official columns are empty and
the script says how to build them. Every run is a separate ``mpiexec`` job, each rank
wrapped in ``/usr/bin/time`` for its peak resident size. pympc's memory is reported above
the interpreter's baseline after the same imports (a run that only imports); the official
code's is its whole peak. Results: ``benchmarks/results/npb.json`` and ``npb.md``. This
process only launches: it never initialises MPI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from pympc.tools.launch import run_mpi  # noqa: E402

sys.path.insert(0, os.path.dirname(HERE))
from machine import cpu_model  # noqa: E402

FILES = {"ep": "ep.py", "cg": "cg.py", "mg": "mg.py", "ft": "ft.py", "is": "is_.py"}
#: the issue's targets: pympc's Mop/s over the official code's
TARGETS = {"ep": 0.7, "is": 0.7, "cg": 0.5, "mg": 0.5, "ft": 0.5}
BASELINE = ("import sys; sys.path.insert(0, {here!r}); import numpy, numba, mpi4py.MPI, pympc, common")


def field(text: str, name: str):
    """Local. A line's value in NPB's report (``Mop/s total``), or None."""
    m = re.search(rf"^ {re.escape(name)}\s*=\s*(.*)$", text, re.M)
    return m.group(1).strip() if m else None


def timed(ranks: int, argv: list, timeout: float) -> dict:
    """Local. One mpiexec job, every rank under /usr/bin/time: its report's figures and the
    largest peak resident size of its ranks (KiB). On timeout the whole job is killed."""
    # /usr/bin/time writes into a file per rank: on stderr its line comes after the rank's
    # MPI_Finalize, and the launcher sometimes stops forwarding before it
    with tempfile.TemporaryDirectory(prefix="npb-rss-") as d:
        wrap = ["sh", "-c", f'exec /usr/bin/time -o "{d}/rss.$$" -f %M "$@"', "sh"]
        r = run_mpi(ranks, [*wrap, *argv], timeout=timeout, python=False,
                    env={**os.environ, "PYMPC_PROGRESS": "off"}, cwd=ROOT)
        rss = []
        for name in os.listdir(d):
            with open(os.path.join(d, name)) as f:
                rss += [int(x) for x in re.findall(r"^(\d+)$", f.read(), re.M)]
    if r.timed_out:
        return {"error": f"timed out after {timeout:g} s"}
    out = {"exit": r.returncode, "rss_kib": max(rss) if rss else None,
           "verification": field(r.stdout, "Verification"), "seconds": None, "mops": None}
    for key, name in (("seconds", "Time in seconds"), ("mops", "Mop/s total")):
        try:
            out[key] = float(field(r.stdout, name))
        except (TypeError, ValueError):
            pass
    if r.returncode != 0 and out["mops"] is None:
        out["error"] = (r.stderr or r.stdout).strip()[-400:]
    return out


def official_dir() -> str:
    """Local. Where build_official.sh put the official binaries."""
    base = os.environ.get("NPB_BUILD") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                       os.path.expanduser("~/.cache"), "pympc-npb")
    return os.path.join(base, "bin")


def measure(args) -> list:
    """Local. Every kernel, class and rank count: pympc's run, then the official binary's."""
    rows = []
    baseline = {}
    for n in args.ranks:
        b = timed(n, [sys.executable, "-c", BASELINE.format(here=HERE)], args.timeout)
        baseline[n] = b.get("rss_kib")
    for k in args.kernels:
        for cls in args.classes:
            for n in args.ranks:
                print(f"[npb] {k.upper()} class {cls} at {n} rank(s) ...", flush=True)
                mine = timed(n, [sys.executable, os.path.join(HERE, FILES[k]), "--class", cls], args.timeout)
                binary = os.path.join(args.official, f"{k}.{cls}.x")
                ref = timed(n, [binary], args.timeout) if os.path.exists(binary) else {"error": "not built"}
                rows.append({"kernel": k, "class": cls, "ranks": n, "pympc": mine, "official": ref,
                             "baseline_rss_kib": baseline[n]})
                print(f"       pympc {mine.get('mops')} Mop/s ({mine.get('verification')}), "
                      f"official {ref.get('mops')} Mop/s ({ref.get('verification')})", flush=True)
    return rows


def ratio(a, b):
    """Local. ``a / b`` to two decimals, or "-"."""
    return f"{a / b:.2f}" if a is not None and b else "-"


def table(rows: list) -> str:
    """Local. The rows as a Markdown table."""
    lines = ["| kernel | class | ranks | pympc Mop/s | official Mop/s | ratio | target | pympc verified | "
             "official verified | pympc peak MiB above baseline | official peak MiB | memory ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, o = r["pympc"], r["official"]
        above = (p["rss_kib"] - r["baseline_rss_kib"]) / 1024 if p.get("rss_kib") and r["baseline_rss_kib"] else None
        off = o["rss_kib"] / 1024 if o.get("rss_kib") else None
        lines.append(f"| {r['kernel'].upper()} | {r['class']} | {r['ranks']} | {p.get('mops') or '-'} | "
                     f"{o.get('mops') or '-'} | {ratio(p.get('mops'), o.get('mops'))} | "
                     f">= {TARGETS[r['kernel']]} | {p.get('verification') or p.get('error', '-')} | "
                     f"{o.get('verification') or o.get('error', '-')} | "
                     f"{'-' if above is None else f'{above:.1f}'} | {'-' if off is None else f'{off:.1f}'} | "
                     f"{ratio(above, off)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Local. ``benchmarks/npb/run.py``: measure, write npb.json and npb.md; exit 1 when a
    pympc run did not verify."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernels", default="ep,is,cg,mg,ft")
    ap.add_argument("--classes", default="W,A")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--official", default=official_dir(), help="where the official binaries are")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args(argv)
    args.kernels = [k.strip().lower() for k in args.kernels.split(",") if k.strip()]
    args.classes = [c.strip().upper() for c in args.classes.split(",") if c.strip()]
    args.ranks = [int(n) for n in args.ranks.split(",") if n.strip()]
    bad = [k for k in args.kernels if k not in FILES]
    if bad:
        print(f"npb: error: unknown kernel(s) {bad}: of {sorted(FILES)}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.official):
        print(f"[npb] no official binaries in {args.official}: build them with NPB_SRC=/path/NPB3.4-MPI "
              "benchmarks/npb/build_official.sh (the official columns stay empty)", flush=True)
    rows = measure(args)
    os.makedirs(args.out, exist_ok=True)
    machine = cpu_model()
    with open(os.path.join(args.out, "npb.json"), "w") as f:
        json.dump({"machine": machine, "cores": os.cpu_count(), "platform": platform.platform(), "rows": rows}, f,
                  indent=1)
    md = (f"# NPB: pympc against NASA's official MPI code\n\nMachine: {machine}, {os.cpu_count()} cores "
          f"({platform.platform()}). One run of each, one after the other in one session (sub-second timings are "
          f"noisy); Mop/s as each code reports it (NPB's operation counts). Memory: the largest rank's peak "
          f"resident size.\n\n{table(rows)}")
    with open(os.path.join(args.out, "npb.md"), "w") as f:
        f.write(md)
    print(md)
    failed = [r for r in rows if r["pympc"].get("verification") != "SUCCESSFUL"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
