"""Launching MPI jobs from Python (the test suite, benchmarks and job launcher use it).

Every launch has a hard timeout: the job runs in its own process session, and when the
time is up the whole session (mpiexec and every rank) is killed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from .. import env as _env


def mpiexec_command() -> list[str]:
    """Local. The launcher: ``$PYMPC_MPIEXEC`` (may hold options; ``./run`` sets it), else
    Debian's ``mpiexec.mpich``/``mpiexec.openmpi`` matching the libmpi mpi4py loaded, else
    ``mpiexec`` on PATH."""
    env = _env.value("PYMPC_MPIEXEC")
    if env:
        return shlex.split(env)
    # Debian installs both families side by side: pick the launcher of the MPI library
    # this process really loaded (mpiexec may point at the other family).
    from mpi4py import MPI  # noqa: F401  (loads libmpi)

    from .info import loaded_libraries

    libs = " ".join(os.path.basename(p) for p in loaded_libraries())
    family = "mpich" if "libmpich" in libs else "openmpi" if "libmpi.so.40" in libs else ""
    if family and shutil.which(f"mpiexec.{family}"):
        return [f"mpiexec.{family}"]
    return ["mpiexec"]


def _launcher_flags(cmd: list[str]) -> list[str]:
    # Open MPI refuses more ranks than cores without --oversubscribe; MPICH needs nothing.
    try:
        out = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return ["--oversubscribe"] if "Open MPI" in out or "OpenRTE" in out else []


@dataclass
class MPIResult:
    """The outcome of :func:`run_mpi`."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool

    @property
    def output(self) -> str:
        """Local. stdout and stderr together."""
        return self.stdout + self.stderr


def clean_env(env=None) -> dict:
    """Local. A copy of the environment without an enclosing MPI job's launcher
    variables, so that a child launched from inside a rank starts a job of its own."""
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in env.items()
            if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "OMPI_", "MPI_LOCALRANK"))}


def run_mpi(n: int, argv: list[str], timeout: float = 600, python: bool | str = True,
            capture: bool = True, env=None, cwd=None) -> MPIResult:
    """Local. Run ``mpiexec -n n [python] argv...`` with a hard timeout.

    ``python=True`` puts this interpreter before ``argv`` (a path: that interpreter).  On timeout the job's whole
    process session is killed and ``timed_out`` is set (returncode 124).
    """
    cmd = mpiexec_command()
    full = cmd + _launcher_flags(cmd) + ["-n", str(int(n))] + ([python if isinstance(python, str) else sys.executable] if python else []) + list(argv)
    start = time.monotonic()
    proc = subprocess.Popen(full, stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None, text=True,
                            start_new_session=True, env=clean_env(env), cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    return MPIResult(124 if timed_out else proc.returncode, out or "", err or "",
                     time.monotonic() - start, timed_out)
