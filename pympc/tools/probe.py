"""The MPI environment probe: which MPI library this Python loads, its family, whether
this process is a rank an MPI launcher started, and a launcher-free environment.

Nothing here initialises MPI, and the module imports only the standard library: the
package face asks :func:`launched` at ``import pympc``, and the tools that are not ranks
(``pympc info``, the launchers) ask the rest. What MPI mpi4py loads is found in a child
process that imports ``mpi4py.MPI`` without initialising it (mpi4py's
``rc.initialize = False``): the parent never maps libmpi. The child runs this file as a
script (``python probe.py mpi|h5py``), so it needs neither pympc's import path nor
pympc itself.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys

# Sonames of MPI libraries: MPICH (libmpich, libmpi for Intel/Cray builds of MPICH),
# Open MPI (libmpi), MS-MPI, Intel MPI (libmpi / libmpifort).
LIBMPI = re.compile(r"^lib(mpich|mpi|msmpi|impi)(\.so|-)[^/]*$")
LIBHDF5 = re.compile(r"^libhdf5(_[a-z]+)?(-[0-9a-f]+)?\.so[^/]*$")

# A launcher gives each rank its rank in one of these (MPICH/Intel hydra and Slurm's pmi2:
# PMI_*, PMIx: PMIX_RANK, Open MPI, MVAPICH, Cray PALS) and hydra adds MPI_LOCALNRANKS.
# Not SLURM_PROCID: a batch script has it too, and it is no rank.
RANK_VARIABLES = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PALS_RANKID")
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_LOCAL_SIZE = "MPI_LOCALNRANKS"  # hydra: the ranks on this node (a rank, but not the job's size)
# What clean_env drops: everything an enclosing job's launcher sets for its ranks.
LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "OMPI_", "MPI_LOCALNRANKS", "MPI_LOCALRANKID",
                     "MV2_COMM_WORLD_", "PALS_")
_MARK = "PYMPC-PROBE "
_TIMEOUT = 120


def launched(env=None) -> bool:
    """Local. Whether this process (or ``env``) is a rank an MPI launcher started:
    ``mpiexec``, ``mpirun`` or ``srun`` with a PMI/PMIx plugin. A process without one is a
    singleton or a tool."""
    env = os.environ if env is None else env
    return any(v in env for v in RANK_VARIABLES + SIZE_VARIABLES + (_LOCAL_SIZE,))


def launcher_rank_size(env=None) -> tuple[int, int]:
    """Local. ``(rank, size)`` of this process in its launcher's job, read from the
    launcher's variables without MPI; ``(0, 1)`` outside a launcher (or when it does not
    say)."""
    env = os.environ if env is None else env

    def first(names, default):
        for name in names:
            try:
                return int(env[name])
            except (KeyError, ValueError):
                continue
        return default

    return first(RANK_VARIABLES, 0), first(SIZE_VARIABLES, 1)


def clean_env(env=None) -> dict:
    """Local. A copy of the environment without an enclosing MPI job's launcher
    variables, so that a child launched from inside a rank starts a job of its own (or
    runs as a singleton) instead of joining this one."""
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in env.items() if not k.startswith(LAUNCHER_PREFIXES)}


def loaded_libraries(pattern=LIBMPI, maps="/proc/self/maps") -> list[str]:
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


def mpi_family(path_or_soname: str) -> str:
    """Local. The MPI family of a library file or soname: ``"mpich"``, ``"openmpi"``, or
    the soname's stem for another (``"libmsmpi"``); two libraries of one family can
    serve one process's MPI, two families cannot."""
    base = os.path.basename(path_or_soname)
    if base.startswith("libmpich"):
        return "mpich"
    if base.startswith("libmpi.so.40"):
        return "openmpi"
    return re.sub(r"\.so.*$", "", base)


def _child(kind: str, python: str) -> dict:
    """The facts a child ``python probe.py kind`` prints, or ``{"<kind>_error": why}``."""
    what = {"mpi": "mpi4py.MPI"}.get(kind, kind)
    try:
        p = subprocess.run([python, os.path.abspath(__file__), kind], capture_output=True, text=True,
                           timeout=_TIMEOUT, env=clean_env())
    except subprocess.TimeoutExpired:
        return {f"{kind}_error": f"importing {what} hung for {_TIMEOUT} s"}
    except OSError as e:
        return {f"{kind}_error": f"cannot run {python}: {e}"}
    for line in p.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
    return {f"{kind}_error": f"importing {what} failed (exit {p.returncode}): " + " | ".join(tail)}


@functools.lru_cache(maxsize=None)
def probe_mpi(python: str = sys.executable) -> dict:
    """Local. What MPI ``python``'s mpi4py loads, found in a child that imports
    ``mpi4py.MPI`` without initialising MPI: ``mpi4py_version``, ``mpi_vendor``,
    ``mpi_standard``, ``mpi_library``, ``mpi_loaded`` (paths), or ``mpi_error``. Asked
    once per process and interpreter."""
    return _child("mpi", python)


def probe_h5py(python: str = sys.executable) -> dict:
    """Local. Import h5py in a child process (a stack that crashes when h5py loads still
    gets a verdict) and report its version, whether it has MPI, the HDF5 and MPI
    libraries it loaded (``hdf5_loaded``, ``mpi_loaded_with_h5py``), or ``h5py_error``."""
    return _child("h5py", python)


def mpi_libraries() -> list[str]:
    """Local. The libmpi this Python's mpi4py uses: the mapped one when this process has
    loaded mpi4py's MPI already (a rank), else the child probe's answer (no MPI here)."""
    if "mpi4py.MPI" in sys.modules:
        return loaded_libraries(LIBMPI)
    return list(probe_mpi().get("mpi_loaded", []))


def stack_facts() -> dict:
    """Local. The MPI and HDF5 this process uses (vendor, versions, libraries loaded):
    what a run directory records. In a rank, MPI is already running; elsewhere nothing
    starts it."""
    return {**_facts_mpi(), **_facts_h5py()}


def _facts_mpi() -> dict:
    import mpi4py

    mpi4py.rc.initialize = False  # the probe only asks questions MPI answers before MPI_Init
    mpi4py.rc.finalize = False
    from mpi4py import MPI

    name, version = MPI.get_vendor()
    return {"mpi4py_version": mpi4py.__version__,
            "mpi_vendor": "%s %s" % (name, ".".join(map(str, version))),
            "mpi_standard": "%d.%d" % MPI.Get_version(),
            "mpi_library": " ".join(MPI.Get_library_version().split("\n")[0].split()),
            "mpi_loaded": loaded_libraries(LIBMPI)}


def _facts_h5py() -> dict:
    out: dict = {}
    try:
        import h5py

        out.update(h5py_version=h5py.__version__, hdf5_version=h5py.version.hdf5_version,
                   h5py_mpi=bool(h5py.get_config().mpi), h5py_path=h5py.__file__)
    except Exception as e:
        out["h5py_error"] = f"{type(e).__name__}: {e}"
    out["hdf5_loaded"] = loaded_libraries(LIBHDF5)
    out["mpi_loaded_with_h5py"] = loaded_libraries(LIBMPI)
    return out


if __name__ == "__main__":
    # the child: this directory is on sys.path first; drop it before importing mpi4py/h5py
    sys.path.pop(0)
    print(_MARK + json.dumps({"mpi": _facts_mpi, "h5py": _facts_h5py}[sys.argv[1]]()), flush=True)
