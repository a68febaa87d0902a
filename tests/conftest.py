"""The MPI test harness.

Serial run: ``pytest -m "not mpi"``.  MPI runs: ``mpiexec -n N python -m pytest -m mpi
--with-mpi`` for N = 1..4 (``tests/run_suite.py`` does all of it, each with a hard timeout).

Under MPI with more than one rank:

* a test that fails on any rank ABORTS THE WHOLE JOB at once: the failing rank prints the
  test's id and traceback, then calls ``MPI_Abort``.  The other ranks could otherwise wait
  forever in the test's next collective (or the next test's).  The rest of that rank
  count's tests do not run; the suite reports the run as failed;
* every rank has its own pytest temporary directory; ``shared_tmp_path`` is one
  directory that all ranks see (for shared HDF5 files);
* only rank 0 writes pytest's terminal output and the JUnit XML; other ranks write
  failures to stderr;
* pytest-timeout (thread method) ends a test that hangs, dumping every thread's stack.
"""

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest


def _comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _with_mpi(config):
    return bool(config.getoption("with_mpi", default=False))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not _with_mpi(config):
        return
    comm = _comm()
    rank = comm.Get_rank()
    if rank > 0:
        config.option.xmlpath = None
        sys.stdout = open(os.devnull, "w")
    if not config.option.basetemp:
        base = comm.bcast(tempfile.mkdtemp(prefix="pympc-pytest-") if rank == 0 else None, root=0)
        config._pympc_base = base
        config.option.basetemp = os.path.join(base, f"rank{rank}")


def pytest_unconfigure(config):
    base = getattr(config, "_pympc_base", None)
    if base:
        comm = _comm()
        comm.Barrier()
        if comm.Get_rank() == 0:
            shutil.rmtree(base, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _with_mpi(item.config):
        comm = _comm()
        rank, size = comm.Get_rank(), comm.Get_size()
        if size > 1:
            sys.stderr.write(
                f"\n[rank {rank}/{size}] FAILED {item.nodeid} (in {rep.when})\n"
                f"{rep.longreprtext}\n"
                f"[rank {rank}/{size}] FAILED {item.nodeid}: aborting the MPI job so that "
                f"no rank waits for this one\n")
            sys.stderr.flush()
            comm.Abort(1)


@pytest.fixture
def comm():
    """The world communicator."""
    return _comm()


@pytest.fixture
def shared_tmp_path(tmp_path):
    """Collective: one temporary directory that every rank of the job sees."""
    import pathlib

    c = _comm()
    path = c.bcast(str(tmp_path) if c.Get_rank() == 0 else None, root=0)
    return pathlib.Path(path)


@pytest.fixture(scope="session")
def serial_h5py_python(tmp_path_factory):
    """A throwaway environment with PyPI's serial h5py wheel that otherwise shares this
    environment's packages (numpy, mpi4py, pympc): the path of its python."""
    import site
    import subprocess

    import h5py

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    venv = tmp_path_factory.mktemp("serial-h5py")
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = str(venv / "bin" / "python")
    target = subprocess.run([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    # h5py from PyPI's binary wheel only (pip's cache keeps the download for next time)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                          "--only-binary", "h5py", "--no-deps", "--target", target,
                          f"h5py=={h5py.__version__}"], capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        pytest.fail("could not install PyPI's h5py wheel: " + pip.stderr[-2000:])
    # everything else comes from this environment, after the throwaway one on sys.path
    ours = [p for p in site.getsitepackages() if os.path.isdir(p)]
    with open(os.path.join(target, "zz_pympc_parent.pth"), "w") as f:
        f.write("\n".join(ours + [root]) + "\n")
    return vpy


@pytest.fixture
def records():
    """The pympc.heat logger's messages during the test."""
    got = []

    class Keep(logging.Handler):
        def emit(self, record):
            got.append(record.getMessage())
    log = logging.getLogger("pympc.heat")
    h = Keep()
    log.addHandler(h)
    yield got
    log.removeHandler(h)


# -- the Slurm test cluster (tests/test_slurm*.py) ------------------------------------------
SLURM_CLUSTER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "slurm", "testcluster.sh")


@pytest.fixture(scope="session")
def cluster():
    """The running Slurm test cluster: started here when it was not up (and then stopped at
    the end of the session); without root the tests skip, saying why, and with
    ``PYMPC_REQUIRE_SLURM=1`` (``.ci/run``) that is a failure."""
    require = os.environ.get("PYMPC_REQUIRE_SLURM") == "1"
    why = None
    if os.geteuid() != 0:
        why = "the Slurm test cluster needs root (network namespaces, unshare, mount): run the tests as root"
    elif not (shutil.which("slurmctld") or shutil.which("apt-get")):
        why = "no Slurm here and no apt-get to install Debian's"
    if why is None:
        was_up = subprocess.run(["bash", SLURM_CLUSTER, "status"], capture_output=True).returncode == 0
        t0 = time.monotonic()
        r = subprocess.run(["bash", SLURM_CLUSTER, "start"], capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            why = f"slurm/testcluster.sh start failed: {r.stderr.strip()[-800:]}"
        else:
            print(f"\n[test cluster {'was up' if was_up else 'started'} in {time.monotonic() - t0:.2f} s]")
    if why is not None:
        if require:
            pytest.fail(f"PYMPC_REQUIRE_SLURM=1, but {why}")
        pytest.skip(why)
    yield
    if not was_up:
        subprocess.run(["bash", SLURM_CLUSTER, "stop"], capture_output=True, timeout=120)
