"""``pympc info``: what MPI and HDF5 this environment really uses, and whether they agree.

The usual ways an MPI + parallel-HDF5 Python stack breaks:

* **serial h5py**: pip installed PyPI's h5py wheel, whose bundled HDF5 has no MPI, so
  ``h5py.File(..., driver="mpio")`` is impossible;
* **mixed stack**: h5py's HDF5 links one MPI library (say Open MPI's ``libmpi.so.40``)
  and mpi4py another (MPICH's ``libmpich.so.12``): the job aborts at start-up or
  corrupts memory.

mpi4py and h5py are probed in child processes (:mod:`pympc.tools.probe`): this process
never initialises MPI (it is not a rank), and a stack that crashes when h5py loads still
gets a verdict.  The analysis itself (:func:`analyse`) is a pure function of the facts
gathered, so it is tested on recorded linker output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from .._version import __version__
from .launch import mpiexec_command
from .probe import LIBMPI, launcher_rank_size, mpi_family, probe_h5py, probe_mpi

FIX_SERIAL = (
    "h5py was built without MPI (PyPI's h5py wheel bundles a serial HDF5). Rebuild it against "
    "a parallel HDF5 with the same MPI as mpi4py: './run setup', or by hand "
    "'CC=mpicc HDF5_MPI=ON HDF5_DIR=<parallel hdf5> pip install --no-binary h5py "
    "--no-build-isolation --force-reinstall h5py'"
)
FIX_MIXED = (
    "h5py's HDF5 and mpi4py use different MPI libraries. Rebuild both against one MPI: set "
    "MPICC to that MPI's compiler wrapper and HDF5_DIR to an HDF5 built with it, then run "
    "'./run setup' (or rebuild mpi4py and h5py with --no-binary and --force-reinstall)"
)


def parse_ldd(text: str, pattern=LIBMPI) -> list[tuple[str, str]]:
    """Local. ``(soname, resolved path)`` for each library in ``ldd`` output whose
    soname matches ``pattern`` (libmpi by default); path is "" when not found."""
    out = []
    for line in text.splitlines():
        m = re.match(r"\s*(\S+)\s*=>\s*(\S*)", line)
        if m and pattern.match(m.group(1)):
            path = m.group(2)
            out.append((m.group(1), "" if path in ("not", "") else path))
    return out


def _ldd(path: str) -> str:
    try:
        return subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def gather_facts() -> dict:
    """Local. Everything ``pympc info`` reports, as a JSON-able dict (MPI is probed in a
    child process: no MPI is initialised here)."""
    facts: dict = {
        "pympc_version": __version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "launcher": " ".join(mpiexec_command()),
        # under mpiexec every rank runs pympc info: the launcher says how many
        "ranks": launcher_rank_size()[1],
    }
    facts.update(probe_mpi())
    facts.update(probe_h5py())
    libs = facts.get("hdf5_loaded") or []
    hdf5 = next((p for p in libs if not os.path.basename(p).startswith("libhdf5_hl")), "")
    facts["hdf5_library"] = hdf5
    facts["hdf5_ldd"] = _ldd(hdf5) if hdf5 else ""
    return facts


def analyse(facts: dict) -> tuple[bool, list[str]]:
    """Local. ``(ok, findings)`` for the facts of :func:`gather_facts`.

    Broken: h5py missing or crashing, h5py without MPI, HDF5 linking no MPI library or
    a different one than mpi4py loaded, or two MPI libraries in one process.
    """
    problems: list[str] = []
    mpi = [p for p in facts.get("mpi_loaded", []) if p]
    if facts.get("mpi_error"):
        problems.append(f"mpi4py: {facts['mpi_error']}")
    elif not mpi:
        problems.append("could not tell which libmpi mpi4py loaded (no /proc/self/maps?)")
    if facts.get("h5py_error"):
        problems.append(f"h5py: {facts['h5py_error']}. {FIX_SERIAL}")
        return False, problems
    if not facts.get("h5py_mpi"):
        problems.append(f"SERIAL h5py {facts.get('h5py_version')} (HDF5 "
                        f"{facts.get('hdf5_version')} without MPI). {FIX_SERIAL}")
        return False, problems
    linked = parse_ldd(facts.get("hdf5_ldd", ""))
    if facts.get("hdf5_library") and not linked:
        problems.append(f"h5py says MPI, but its HDF5 ({facts['hdf5_library']}) links no MPI "
                        f"library that ldd can resolve. {FIX_MIXED}")
    for soname, path in linked:
        if not path:
            problems.append(f"HDF5 needs {soname}, which the loader cannot find. {FIX_MIXED}")
            continue
        real = os.path.realpath(path)
        same = any(real == m or (mpi_family(soname) == mpi_family(m)
                                 and not (os.path.exists(real) and os.path.exists(m)))
                   for m in mpi)
        if mpi and not same:
            problems.append(f"MIXED stack: HDF5 ({facts.get('hdf5_library')}) links {soname} "
                            f"({real}) but mpi4py loaded {', '.join(mpi)}. {FIX_MIXED}")
    two = sorted(set(facts.get("mpi_loaded_with_h5py", [])) | set(mpi))
    if len({mpi_family(p) for p in two}) > 1:
        problems.append(f"MIXED stack: several MPI libraries in one process: {', '.join(two)}. {FIX_MIXED}")
    return (not problems), problems


def report(facts: dict, ok: bool, problems: list[str]) -> str:
    """Local. The human-readable report of ``pympc info``."""
    rows = [
        ("pympc", facts.get("pympc_version")),
        ("python", f"{facts.get('python')} ({facts.get('python_executable')})"),
        ("MPI", f"{facts.get('mpi_library')} (vendor {facts.get('mpi_vendor')}, "
                f"MPI {facts.get('mpi_standard')})"),
        ("mpi4py", facts.get("mpi4py_version")),
        ("launcher", facts.get("launcher")),
        ("libmpi loaded", ", ".join(facts.get("mpi_loaded", [])) or "?"),
        ("h5py", f"{facts.get('h5py_version', '-')} (HDF5 {facts.get('hdf5_version', '-')}, "
                 f"MPI: {'yes' if facts.get('h5py_mpi') else 'no'})"),
        ("HDF5 library", facts.get("hdf5_library") or "?"),
        ("HDF5 links", ", ".join(f"{s} => {p or 'not found'}"
                                 for s, p in parse_ldd(facts.get("hdf5_ldd", ""))) or "no MPI library"),
        ("ranks", facts.get("ranks")),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("verdict".ljust(width) + "  " + ("OK: mpi4py and parallel h5py share one MPI"
                                                  if ok else "BROKEN"))
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Local. ``pympc info [--json] [--quiet]``; exit status 0 when the stack is OK, 1 if not."""
    import argparse

    ap = argparse.ArgumentParser(prog="pympc info", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the facts and verdict as JSON")
    ap.add_argument("--quiet", action="store_true", help="print the verdict line only")
    args = ap.parse_args(argv)
    facts = gather_facts()
    ok, problems = analyse(facts)
    if launcher_rank_size()[0] == 0:
        if args.json:
            print(json.dumps({"ok": ok, "problems": problems, **facts}, indent=2))
        elif args.quiet:
            print("pympc info: " + ("OK" if ok else "BROKEN: " + " / ".join(problems)))
        else:
            print(report(facts, ok, problems))
    return 0 if ok else 1
