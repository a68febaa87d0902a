"""``pympc info``: what MPI and HDF5 this environment really uses, and whether they agree.

The usual ways an MPI + parallel-HDF5 Python stack breaks:

* **serial h5py**: pip installed PyPI's h5py wheel, whose bundled HDF5 has no MPI, so
  ``h5py.File(..., driver="mpio")`` is impossible;
* **mixed stack**: h5py's HDF5 links one MPI library (say Open MPI's ``libmpi.so.40``)
  and mpi4py another (MPICH's ``libmpich.so.12``): the job aborts at start-up or
  corrupts memory.

h5py is probed in a child process, so a stack that crashes when h5py loads still gets
a verdict.  The analysis itself (:func:`analyse`) is a pure function of the facts
gathered, so it is tested on recorded linker output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

# Sonames of MPI libraries: MPICH (libmpich, libmpi for Intel/Cray builds of MPICH),
# Open MPI (libmpi), MS-MPI, Intel MPI (libmpi / libmpifort).
_LIBMPI = re.compile(r"^lib(mpich|mpi|msmpi|impi)(\.so|-)[^/]*$")
_LIBHDF5 = re.compile(r"^libhdf5(_[a-z]+)?(-[0-9a-f]+)?\.so[^/]*$")

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


def loaded_libraries(pattern=_LIBMPI, maps="/proc/self/maps") -> list[str]:
    """Local. Real paths of the shared libraries mapped in this process whose file
    names match ``pattern`` (libmpi by default), from ``/proc/self/maps``."""
    found: list[str] = []
    try:
        with open(maps) as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    path = parts[5].strip()
                    if pattern.match(os.path.basename(path)):
                        real = os.path.realpath(path)
                        if real not in found:
                            found.append(real)
    except OSError:
        pass
    return found


def parse_ldd(text: str, pattern=_LIBMPI) -> list[tuple[str, str]]:
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


def _child_env():
    # A child python must not join this MPI job as a rank: drop the launcher's variables.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "MPIR_", "OMPI_", "SLURM_STEP", "MPI_LOCALRANK"))}


_H5PY_PROBE = r"""
import json, sys
out = {}
try:
    import h5py
    out["h5py_version"] = h5py.__version__
    out["hdf5_version"] = h5py.version.hdf5_version
    out["h5py_mpi"] = bool(h5py.get_config().mpi)
    out["h5py_path"] = h5py.__file__
except Exception as e:
    out["h5py_error"] = f"{type(e).__name__}: {e}"
import os, re
def loaded(pattern):
    found = []
    try:
        for line in open("/proc/self/maps"):
            parts = line.split(None, 5)
            if len(parts) == 6 and re.match(pattern, os.path.basename(parts[5].strip())):
                real = os.path.realpath(parts[5].strip())
                found += [real] if real not in found else []
    except OSError:
        pass
    return found
out["hdf5_loaded"] = loaded(sys.argv[1])
out["mpi_loaded_with_h5py"] = loaded(sys.argv[2])
print("PYMPC-PROBE " + json.dumps(out))
"""


def probe_h5py(python=sys.executable) -> dict:
    """Local. Import h5py in a child process and report what it loaded."""
    try:
        p = subprocess.run([python, "-c", _H5PY_PROBE, _LIBHDF5.pattern, _LIBMPI.pattern], capture_output=True, text=True,
                           timeout=120, env=_child_env())
    except subprocess.TimeoutExpired:
        return {"h5py_error": "importing h5py hung for 120 s"}
    for line in p.stdout.splitlines():
        if line.startswith("PYMPC-PROBE "):
            return json.loads(line[len("PYMPC-PROBE "):])
    tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
    return {"h5py_error": f"importing h5py failed (exit {p.returncode}): " + " | ".join(tail)}


def gather_facts() -> dict:
    """Local. Everything ``pympc info`` reports, as a JSON-able dict."""
    import mpi4py
    from mpi4py import MPI

    from .._version import __version__
    from .launch import mpiexec_command

    facts: dict = {
        "pympc_version": __version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "mpi4py_version": mpi4py.__version__,
        "launcher": " ".join(mpiexec_command()),
        "mpi_vendor": "%s %s" % (MPI.get_vendor()[0], ".".join(map(str, MPI.get_vendor()[1]))),
        "mpi_standard": "%d.%d" % MPI.Get_version(),
        "mpi_library": " ".join(MPI.Get_library_version().split("\n")[0].split()),
        "mpi_loaded": loaded_libraries(_LIBMPI),
        "ranks": MPI.COMM_WORLD.Get_size(),
    }
    facts.update(probe_h5py())
    libs = facts.get("hdf5_loaded") or []
    hdf5 = next((p for p in libs if not os.path.basename(p).startswith("libhdf5_hl")), "")
    facts["hdf5_library"] = hdf5
    facts["hdf5_ldd"] = _ldd(hdf5) if hdf5 else ""
    return facts


def _family(path_or_soname: str) -> str:
    base = os.path.basename(path_or_soname)
    return re.sub(r"\.so.*$", "", base)


def analyse(facts: dict) -> tuple[bool, list[str]]:
    """Local. ``(ok, findings)`` for the facts of :func:`gather_facts`.

    Broken: h5py missing or crashing, h5py without MPI, HDF5 linking no MPI library or
    a different one than mpi4py loaded, or two MPI libraries in one process.
    """
    problems: list[str] = []
    mpi = [p for p in facts.get("mpi_loaded", []) if p]
    if not mpi:
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
        same = any(real == m or (_family(soname) == _family(m)
                                 and not (os.path.exists(real) and os.path.exists(m)))
                   for m in mpi)
        if mpi and not same:
            problems.append(f"MIXED stack: HDF5 ({facts.get('hdf5_library')}) links {soname} "
                            f"({real}) but mpi4py loaded {', '.join(mpi)}. {FIX_MIXED}")
    two = sorted(set(facts.get("mpi_loaded_with_h5py", [])) | set(mpi))
    if len({_family(p) for p in two}) > 1:
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
    from mpi4py import MPI

    facts = gather_facts()
    ok, problems = analyse(facts)
    if MPI.COMM_WORLD.Get_rank() == 0:
        if args.json:
            print(json.dumps({"ok": ok, "problems": problems, **facts}, indent=2))
        elif args.quiet:
            print("pympc info: " + ("OK" if ok else "BROKEN: " + " / ".join(problems)))
        else:
            print(report(facts, ok, problems))
    return 0 if ok else 1
