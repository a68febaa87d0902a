"""Launching MPI jobs from Python (the test suite, benchmarks and job launcher use it).

The process that launches is not a rank and never initialises MPI: which launcher
matches mpi4py's MPI is found by :mod:`pympc.tools.probe` in a child process.

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
from . import probe as _probe
from .probe import clean_env  # noqa: F401  (part of the launcher's API)


def mpiexec_command() -> list[str]:
    """Local. The launcher: ``$PYMPC_MPIEXEC`` (may hold options; ``./run`` sets it), else
    Debian's ``mpiexec.mpich``/``mpiexec.openmpi`` matching the libmpi mpi4py loads, else
    ``mpiexec`` on PATH. Starts no MPI here (the library is found by the probe)."""
    env = _env.value("PYMPC_MPIEXEC")
    if env:
        return shlex.split(env)
    # Debian installs both families side by side: pick the launcher of the MPI library
    # mpi4py really loads (mpiexec may point at the other family).
    families = {_probe.mpi_family(p) for p in _probe.mpi_libraries()}
    family = next((f for f in ("mpich", "openmpi") if f in families), "")
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


def mpi_command(n: int, argv: list[str], python: bool | str = True) -> list[str]:
    """Local. The command line ``mpiexec [flags] -n n [python] argv...`` (``python=True``:
    this interpreter; a path: that one)."""
    cmd = mpiexec_command()
    interp = [python if isinstance(python, str) else sys.executable] if python else []
    return cmd + _launcher_flags(cmd) + ["-n", str(int(n))] + interp + list(argv)


#: the yielding-wait shim ``./run setup`` builds from ``pympc/tools/yieldwait.c``
YIELD_WAIT_LIB = "pympc-yieldwait.so"


def _yield_wait_path() -> str:
    return os.path.join(sys.prefix, "lib", YIELD_WAIT_LIB)


def yield_wait_library() -> str | None:
    """Local. The path of the yielding-wait shim in this interpreter's environment
    (``<prefix>/lib/pympc-yieldwait.so``), or None where it was not built."""
    path = _yield_wait_path()
    return path if os.path.isfile(path) else None


def usable_cores() -> int:
    """Local. The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def with_yield_wait(n: int, env: dict) -> dict:
    """Local. ``env`` for a job of ``n`` ranks on this machine, with the yielding-wait shim
    first in ``LD_PRELOAD`` where ``PYMPC_YIELD_WAIT`` asks for it (``auto``: more ranks
    than :func:`usable_cores`) and the shim is built, and without it otherwise. A blocked
    rank then gives its core to a rank with work instead of spinning until the kernel's
    next tick (docs/oversubscribe.md). ``PYMPC_YIELD_WAIT=on`` without the shim raises."""
    mode = _env.parse("PYMPC_YIELD_WAIT", env.get("PYMPC_YIELD_WAIT"))
    lib = yield_wait_library()
    keep = [p for p in env.get("LD_PRELOAD", "").split() if os.path.basename(p) != YIELD_WAIT_LIB]
    want = mode == "on" or (mode == "auto" and int(n) > usable_cores())
    if want and lib is None:
        if mode == "on":
            raise _env.EnvError(f"PYMPC_YIELD_WAIT=on but {_yield_wait_path()} is not built "
                                "(./run setup builds it)")
        want = False
    out = dict(env)
    preload = ([lib] if want else []) + keep
    if preload:
        out["LD_PRELOAD"] = " ".join(preload)
    else:
        out.pop("LD_PRELOAD", None)
    return out


#: what a launching parent passes on to mpiexec, which passes them on to every rank
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)


def exec_mpi(n: int, argv: list[str], env=None, timeout: float | None = None, grace: float = 60.0) -> tuple:
    """Local. Run ``mpiexec -n n python argv...`` in the foreground (its output is this
    process's) and return its exit status. A signal this process receives
    (:data:`FORWARDED`) is passed on to mpiexec, which passes it to every rank (MPICH's
    Hydra does, for SIGTERM, SIGINT and SIGUSR1). ``timeout``: seconds after which the job
    gets SIGTERM (a pympc run checkpoints and exits 75), and ``grace`` seconds later the
    whole job is killed (status 124). Returns ``(status, signals)``: mpiexec's exit
    status and the signals passed on (MPICH's mpiexec exits 0 or 15, not the ranks'
    status, after passing on a SIGTERM: the caller may need to look further)."""
    proc = subprocess.Popen(mpi_command(n, argv), env=with_yield_wait(n, clean_env(env)),
                            start_new_session=True)
    passed = []

    def forward(signum, frame):
        passed.append(signum)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass
    old = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        try:
            return proc.wait(timeout=timeout), passed
        except subprocess.TimeoutExpired:
            print(f"[pympc] the job ran past its {timeout:g} s timeout: SIGTERM sent (checkpoint and stop)",
                  file=sys.stderr, flush=True)
            forward(signal.SIGTERM, None)
        try:
            return proc.wait(timeout=grace), passed
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return 124, passed
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclass
class MPIResult:
    """Local. The outcome of :func:`run_mpi`."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool

    @property
    def output(self) -> str:
        """Local. stdout and stderr together."""
        return self.stdout + self.stderr


def run_mpi(n: int, argv: list[str], timeout: float = 600, python: bool | str = True,
            capture: bool = True, env=None, cwd=None) -> MPIResult:
    """Local. Run ``mpiexec -n n [python] argv...`` with a hard timeout.

    ``python=True`` puts this interpreter before ``argv`` (a path: that interpreter).  On timeout the job's whole
    process session is killed and ``timed_out`` is set (returncode 124).
    """
    full = mpi_command(n, argv, python)
    start = time.monotonic()
    proc = subprocess.Popen(full, stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None, text=True,
                            start_new_session=True, env=with_yield_wait(n, clean_env(env)), cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    return MPIResult(124 if timed_out else proc.returncode, out or "", err or "",
                     time.monotonic() - start, timed_out)
