"""``import pympc`` is cheap and starts nothing; the processes that are not ranks (the
``pympc`` command's tools, the launchers' parents) never initialise MPI; a rank an MPI
launcher started initialises the runtime at import, so a first pympc call inside
``if rank == 0:`` cannot hang the job.

Each check runs a fresh Python in a clean environment (no launcher variables: the
process is not a rank) and reads what it loaded: ``mpi4py.MPI`` in ``sys.modules``,
a libmpi mapped in ``/proc/self/maps``, ``MPI.Is_initialized()``, h5py, numpy.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from pympc.tools.launch import clean_env, run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Appended to every program: one line saying what this process loaded.
STATE = r"""
import json as _j, sys as _s
def _libmpi():
    try:
        return any("libmpi" in line for line in open("/proc/self/maps"))
    except OSError:
        return False
_mpi = _s.modules.get("mpi4py.MPI")
# one write per line: ranks' lines arrive through the launcher, whole writes at a time
_s.stdout.write("STATE " + _j.dumps({"mpi4py.MPI": _mpi is not None, "libmpi": _libmpi(),
                                    "initialized": bool(_mpi and _mpi.Is_initialized()),
                                    "h5py": "h5py" in _s.modules, "numpy": "numpy" in _s.modules}) + "\n")
_s.stdout.flush()
"""

NOTHING = {"mpi4py.MPI": False, "libmpi": False, "initialized": False}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS", "PYMPC_THREADS")


def run_python(code: str, timeout: float = 120, cwd=ROOT):
    """``python -c code`` without a launcher; returns (process, the STATE lines as dicts)."""
    env = {k: v for k, v in clean_env().items() if k not in THREAD_VARS}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                       env=env, cwd=cwd)
    states = [json.loads(line[6:]) for line in p.stdout.splitlines() if line.startswith("STATE ")]
    return p, states


def loaded(state: dict, keys=NOTHING) -> dict:
    return {k: state[k] for k in keys}


def test_import_pympc_starts_nothing_and_sets_the_thread_default():
    p, [state] = run_python("import os, pympc\nprint('OMP', os.environ.get('OMP_NUM_THREADS'))" + STATE)
    assert p.returncode == 0, p.stderr
    assert loaded(state) == NOTHING, state
    assert not state["h5py"] and not state["numpy"], state
    # the thread default is in place before anything of pympc loads numpy's BLAS
    assert "OMP 1" in p.stdout


def test_the_face_lists_its_names_and_loads_them_on_first_use():
    code = ("import pympc\nnames = dir(pympc)\n" + STATE
            + "d = pympc.Decomposition((8, 6))\n"
              "print('FACE', sorted(set(pympc.__all__) - set(names)), hasattr(pympc, 'HaloExchange'),"
              " d.shape, pympc.WORLD.Get_size(), pympc.io.File.__name__, pympc.kernels.__name__)\n" + STATE)
    p, (before, after) = run_python(code)
    assert p.returncode == 0, p.stderr
    assert loaded(before) == NOTHING, before
    # a singleton: the runtime started on first use, and the face works
    assert after["initialized"] and after["h5py"], after
    assert "FACE [] False (8, 6) 1 File pympc.kernels" in p.stdout, p.stdout


def test_face_names_are_the_public_api():
    p, _ = run_python("import json, pympc\nprint('ALL', json.dumps(pympc.__all__))")
    names = set(json.loads(p.stdout.split("ALL ", 1)[1]))
    assert {"Decomposition", "DistArray", "reduce_all", "update_halo", "start_halo", "io", "Output",
            "Checkpointer", "BSP", "WORLD", "InputError", "PympcError", "check_all", "get_comm",
            "get_logger", "print0", "rng", "set_threads", "setup_logging", "SUPPORTED_DTYPES",
            "__version__"} <= names
    assert "HaloExchange" not in names  # one way to exchange halos: update_halo / start_halo


@pytest.fixture(scope="module")
def cost_log(tmp_path_factory):
    """A small cost-log JSON, written by pympc.costlog in a process of its own."""
    path = tmp_path_factory.mktemp("costlog") / "log.json"
    p, _ = run_python("from pympc import costlog\nlog = costlog.Log()\n"
                      "with log.superstep('step'):\n    pass\n"
                      f"log.save({str(path)!r})\n")
    assert p.returncode == 0 and path.exists(), p.stderr
    return str(path)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["info"], ["info", "--json"], ["report", "LOG"]],
                         ids=lambda a: " ".join(a))
def test_the_command_line_tools_start_no_mpi(argv, cost_log):
    argv = [cost_log if a == "LOG" else a for a in argv]
    code = ("import sys\nfrom pympc.tools.cli import main\n"
            f"rc = main({argv!r})\n" + STATE + "sys.exit(rc)\n")
    p, [state] = run_python(code)
    assert p.returncode == 0, p.stdout + p.stderr
    assert loaded(state) == NOTHING, f"pympc {' '.join(argv)} initialised MPI in its own process: {state}"
    if argv[0] == "info":
        assert not state["h5py"], "pympc info imported h5py in its own process (it probes it in a child)"
        assert "OK" in p.stdout or '"ok": true' in p.stdout, p.stdout


def test_python_m_pympc_help_starts_no_mpi():
    code = ("import runpy, sys\nsys.argv = ['pympc', '--help']\n"
            "try:\n    runpy.run_module('pympc', run_name='__main__')\nexcept SystemExit:\n    pass\n" + STATE)
    p, [state] = run_python(code)
    assert "usage: pympc COMMAND" in p.stdout and loaded(state) == NOTHING, p.stdout + p.stderr
    assert "more sub-commands join" not in p.stdout


@pytest.mark.parametrize("script", ["jobs/launch.py", "benchmarks/run.py", "tests/run_suite.py"])
def test_launcher_parents_start_no_mpi(script):
    path = os.path.join(ROOT, script)
    code = (f"import runpy, sys\nsys.argv = [{path!r}, '--help']\n"
            f"try:\n    runpy.run_path({path!r}, run_name='__main__')\nexcept SystemExit:\n    pass\n" + STATE)
    p, [state] = run_python(code)
    assert "usage:" in p.stdout, p.stdout + p.stderr
    assert loaded(state) == NOTHING, f"{script} initialised MPI in the parent: {state}"


def test_run_mpi_starts_no_mpi_in_the_parent():
    # mpiexec_command finds which MPI mpi4py loads (the launcher to use) without loading it here
    code = ("from pympc.tools.launch import mpiexec_command, run_mpi\n"
            "r = run_mpi(2, ['-c', 'print(\"child\")'], timeout=60)\n"
            "print('RUN', r.returncode, r.stdout.count('child'), mpiexec_command())\n" + STATE)
    p, [state] = run_python(code)
    assert "RUN 0 2" in p.stdout, p.stdout + p.stderr
    assert loaded(state) == NOTHING, state


def test_first_pympc_call_on_one_rank_does_not_hang():
    """Under a launcher ``import pympc`` starts the runtime on every rank, so a local call
    (it needs the runtime) first made on rank 0 only cannot wait for the other ranks."""
    code = ("import os, pympc\n" + STATE
            + "rank = int(os.environ.get('PMI_RANK') or os.environ.get('OMPI_COMM_WORLD_RANK') or 0)\n"
              "if rank == 0:\n"
              "    pympc.print0('first call on rank 0 of', pympc.WORLD.Get_size())\n"
              "    pympc.get_logger().info('logged on rank 0')\n")
    r = run_mpi(2, ["-c", code], timeout=90, cwd=ROOT)
    assert not r.timed_out, "the job hung:\n" + r.output[-3000:]
    assert r.returncode == 0, r.output
    assert "first call on rank 0 of 2" in r.stdout
    states = [json.loads(m) for m in re.findall(r"STATE (\{[^{}]*\})", r.stdout)]
    assert len(states) == 2 and all(s["initialized"] for s in states), states  # at import, every rank


@pytest.mark.parametrize("argv", [["check", "JOB", "-n", "4"], ["check", "--schema"], ["check", "BAD"],
                                  ["run", "-n", "2", "JOB", "--runs-dir", "RUNS"], ["run", "-n", "2", "BAD"]],
                         ids=lambda a: " ".join(a))
def test_the_job_commands_start_no_mpi_in_their_own_process(argv, tmp_path):
    """``pympc check`` never starts MPI; nor does the parent of ``pympc run -n`` (it
    checks the job, launches mpiexec and waits): only the ranks it launches do."""
    job = tmp_path / "job.toml"
    job.write_text('name = "light"\nsolver = "heat"\n[grid]\nshape = [12, 10]\n[run]\nsteps = 3\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "light"\nsolver = "heat"\n[grid]\nshape = [12, 10]\n[run]\nstep = 3\n')
    subs = {"JOB": str(job), "BAD": str(bad), "RUNS": str(tmp_path / "runs")}
    argv = [subs.get(a, a) for a in argv]
    code = ("import sys\nfrom pympc.tools.cli import main\n"
            f"rc = main({argv!r})\n" + STATE + "sys.exit(rc)\n")
    p, [state] = run_python(code)
    assert p.returncode == (2 if str(bad) in argv else 0), p.stdout + p.stderr
    assert loaded(state) == NOTHING, f"pympc {' '.join(argv)} initialised MPI in its own process: {state}"
    if argv[0] == "run" and str(job) in argv:
        assert (tmp_path / "runs" / "light" / "status").read_text() == "done\n", p.stdout + p.stderr
