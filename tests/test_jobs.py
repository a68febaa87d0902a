"""``pympc run`` end to end: each solver from a job file gives the Python API's field bit
for bit at 1-4 ranks; a solver of one's own runs from a job file; a sweep makes one run
directory per point; a run interrupted by SIGTERM (to mpiexec, or to one rank) checkpoints,
says ``interrupted``, exits 75 and resumes on another rank count to the uninterrupted
field; a finished run is not re-run; changed physics are refused; ``--fresh`` moves a run
aside. Malformed job files: tests/test_jobs_input.py.

These are serial tests that launch jobs (``pympc run -n N``, or ``mpiexec -n N pympc
run``), each with a hard timeout; the Python API's reference runs in its own one-rank
process.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pympc.jobs import rundir, status, sweep
from pympc.tools.launch import clean_env, run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 240


def pympc(*args, cwd=None, timeout=TIMEOUT, env=None):
    """``python -m pympc ARGS`` (not a rank: ``run -n`` launches mpiexec itself)."""
    e = clean_env(env)
    e.setdefault("PYMPC_PROGRESS", "off")
    return subprocess.run([sys.executable, "-m", "pympc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=e)


def last_fields(path):
    import h5py

    with h5py.File(path, "r") as f:
        name = sorted(f["steps"])[-1]
        group = f["steps"][name]
        return int(name), {k: group[k][...] for k in group}


# -- each solver: the job file and the Python API, bit for bit ---------------------------
CASES = {
    "heat": (
        'solver = "heat"\n[grid]\nshape = [23, 17]\nextent = [1.0, 0.7]\n[physics]\nalpha = 0.8\n'
        '[initial]\nu0 = "exp(-((x - 0.5)**2 + (y - 0.3)**2) / 0.02)"\n'
        '[boundary]\n"x-" = ["dirichlet", 1.0]\n"y+" = ["neumann", 0.5]\n[run]\nt_end = 0.004\n',
        "from solvers.heat import Heat as S\n"
        "d = pympc.Decomposition((23, 17), spacing=(1.0 / 22, 0.7 / 16))\n"
        "s = S(d, alpha=0.8, u0=lambda x, y: np.exp(-((x - 0.5)**2 + (y - 0.3)**2) / 0.02),\n"
        "      bc={'x-': ('dirichlet', 1.0), 'y+': ('neumann', 0.5)})\n"
        "s.run(t_end=0.004, progress=None)\n"),
    "wave": (
        'solver = "wave"\n[grid]\nshape = [20, 15]\nperiodic = [true, false]\n[physics]\nc = 1.2\ncfl = 0.6\n'
        '[initial]\nu0 = "sin(2 * pi * x) * y * (1 - y)"\nv0 = "0.5 * cos(2 * pi * x)"\n[run]\nsteps = 40\n',
        "from solvers.wave import Wave as S\n"
        "d = pympc.Decomposition((20, 15), periodic=(True, False), spacing=(1.0 / 20, 1.0 / 14))\n"
        "s = S(d, c=1.2, cfl=0.6, u0=lambda x, y: np.sin(2 * np.pi * x) * y * (1 - y),\n"
        "      v0=lambda x, y: 0.5 * np.cos(2 * np.pi * x))\n"
        "s.run(steps=40, progress=None)\n"),
    "poisson": (
        'solver = "poisson"\n[grid]\nshape = [17, 19]\n[physics]\ntol = 1e-30\n'
        '[initial]\nf = "2 * pi**2 * sin(pi * x) * sin(pi * y)"\n[run]\nsteps = 60\n',
        "from solvers.poisson import Poisson as S\n"
        "d = pympc.Decomposition((17, 19), spacing=(1.0 / 16, 1.0 / 18))\n"
        "s = S(d, tol=1e-30, f=lambda x, y: 2 * np.pi**2 * np.sin(np.pi * x) * np.sin(np.pi * y))\n"
        "s.run(steps=60, progress=None)\n"),
}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The Python API's final fields of each case, computed on one rank in a child."""
    out = tmp_path_factory.mktemp("ref")
    refs = {}
    for name, (_, code) in CASES.items():
        path = out / f"{name}.npz"
        program = ("import numpy as np, pympc\n" + code +
                   "got = {k: v.gather(root=0) for k, v in s.output_fields().items()}\n"
                   f"np.savez({str(path)!r}, step=s.step_count, **got)\n")
        r = run_mpi(1, ["-c", program], timeout=TIMEOUT, cwd=ROOT)
        assert r.returncode == 0, r.output[-3000:]
        with np.load(path) as z:
            refs[name] = {k: z[k] for k in z.files}
    return refs


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
@pytest.mark.parametrize("solver", sorted(CASES))
def test_each_solver_from_a_job_file_equals_the_python_api(solver, ranks, references, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(f'name = "{solver}"\n' + CASES[solver][0])
    r = pympc("run", "-n", ranks, job, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    d = tmp_path / "runs" / solver
    assert (d / "status").read_text() == "done\n"
    step, fields = last_fields(d / "output.h5")
    ref = references[solver]
    assert step == int(ref["step"])
    for name, value in fields.items():
        assert value.tobytes() == ref[name].tobytes(), f"{solver} at {ranks} ranks: field {name} differs"
    resolved = json.loads((d / "job.json").read_text())
    assert resolved["solver_class"] == f"solvers.{solver}:{solver.capitalize()}"
    meta = json.loads((d / "run.json").read_text())
    assert meta["attempts"][-1]["ranks"] == ranks and meta["attempts"][-1]["exit"] == "done"
    assert "mpi_library" in meta["versions"] and "hdf5_version" in meta["versions"]
    assert (d / "costs.json").exists() and (d / "costs.txt").exists() and (d / "output.xmf").exists()
    assert r.stdout.count(f"{solver}: done:") == 1, r.stdout  # the summary, once


# -- a solver of one's own --------------------------------------------------------------
USER_MODULE = '''
import numpy as np
from solvers.loop import TimeLoop, initial_field


def check(job):
    """Local. k in (0, 1)."""
    physics = job["physics"]
    from solvers.stability import bad
    if not 0 < physics.get("k", 0.5) < 1:
        raise bad("k", "k must be in (0, 1)")


class Decay(TimeLoop):
    """Collective. du/dt = -k u, forward Euler with dt = 1."""

    name = "decay"
    job_check = "mydecay:check"

    def __init__(self, decomp, k=0.5, u0=0.0):
        super().__init__(decomp)
        self.k = float(k)
        self.u = initial_field(decomp, u0)
        self.dt = 1.0

    def physics(self):
        return {"k": self.k}

    def fields(self):
        return {"u": self.u}

    def set_fields(self, fields):
        self.u.owned[...] = fields["u"].owned

    def advance(self):
        self.u.owned[...] *= 1.0 - self.k
'''


@pytest.mark.parametrize("ranks", [1, 3])
def test_a_user_solver_class_runs_from_a_job_file(ranks, tmp_path):
    (tmp_path / "mydecay.py").write_text(USER_MODULE)
    job = tmp_path / "decay.toml"
    job.write_text('name = "decay"\nsolver = "mydecay:Decay"\n[grid]\nshape = [9, 7]\n[physics]\nk = 0.25\n'
                   '[initial]\nu0 = "1 + x + 2 * y"\n[run]\nsteps = 12\n[output]\nevery = 4\n')
    assert pympc("check", job, "-n", ranks, cwd=tmp_path).returncode == 0
    r = pympc("run", "-n", ranks, job, "--runs-dir", tmp_path / "runs", cwd=ROOT)  # found beside the job
    assert r.returncode == 0, r.stdout + r.stderr
    step, fields = last_fields(tmp_path / "runs" / "decay" / "output.h5")
    x, y = np.meshgrid(np.linspace(0, 1, 9), np.linspace(0, 1, 7), indexing="ij")
    u = 1 + x + 2 * y
    for _ in range(12):
        u = u * (1.0 - 0.25)  # the serial oracle, the same operations
    assert step == 12 and fields["u"].tobytes() == u.tobytes()
    bad = tmp_path / "bad.toml"
    bad.write_text(job.read_text().replace("k = 0.25", "k = 1.5"))
    r = pympc("run", "-n", ranks, bad, "--runs-dir", tmp_path / "runs2")
    assert r.returncode == 2 and "physics.k" in r.stderr and not (tmp_path / "runs2").exists(), r.stderr


# -- sweeps ---------------------------------------------------------------------------------
def test_sweep_order_is_product_last_key_fastest_or_zip():
    doc = {"name": "s", "sweep": {"physics.alpha": [1, 2], "run.t_end": {"start": 0.1, "stop": 0.3, "num": 3}}}
    pts = [v for v, _ in sweep.expand(doc, "f")]
    assert [(p["physics.alpha"], round(p["run.t_end"], 12)) for p in pts] == \
        [(1, 0.1), (1, 0.2), (1, 0.3), (2, 0.1), (2, 0.2), (2, 0.3)]
    doc["sweep"] = {"mode": "zip", "physics.alpha": [1, 2, 3], "grid.shape": [[8, 8], [9, 9], [10, 10]]}
    pts = sweep.expand(doc, "f")
    assert [(v["physics.alpha"], d["grid"]["shape"]) for v, d in pts] == [(1, [8, 8]), (2, [9, 9]), (3, [10, 10])]
    assert [v for v, _ in sweep.expand({"name": "s", "sweep": {"run.steps": {"start": 2, "stop": 8, "step": 3}}},
                                       "f")] == [{"run.steps": 2}, {"run.steps": 5}, {"run.steps": 8}]


def test_a_sweep_of_4_points_makes_4_run_directories(tmp_path):
    import h5py

    job = tmp_path / "sweep.toml"
    job.write_text('name = "sw"\nsolver = "heat"\n[grid]\nshape = [12, 10]\n[initial]\nu0 = "x * y"\n'
                   '[run]\nsteps = 5\n[sweep]\n"physics.alpha" = [0.5, 1.0]\n"boundary.x-" = '
                   '[["dirichlet", 0.0], ["dirichlet", 2.0]]\n')
    r = pympc("run", "-n", 2, job, "--runs-dir", tmp_path / "runs")
    assert r.returncode == 0, r.stdout + r.stderr
    expect = [(0.5, 0.0), (0.5, 2.0), (1.0, 0.0), (1.0, 2.0)]
    assert sorted(os.listdir(tmp_path / "runs" / "sw")) == ["0", "1", "2", "3"]
    for k, (alpha, wall) in enumerate(expect):
        d = tmp_path / "runs" / "sw" / str(k)
        assert (d / "status").read_text() == "done\n"
        resolved = json.loads((d / "job.json").read_text())
        assert resolved["physics"]["alpha"] == alpha and resolved["boundary"]["x-"] == ["dirichlet", wall]
        assert resolved["sweep"] == {"index": k, "values": {"physics.alpha": alpha, "boundary.x-": ["dirichlet", wall]}}
        with h5py.File(d / "output.h5", "r") as f:
            stored = json.loads(f.attrs["parameters"])
        assert stored["alpha"] == alpha and stored["bc"]["x-"] == ["dirichlet", wall]
    # one point again, alone (what a Slurm array task runs): already done, nothing re-run
    r = pympc("run", "-n", 1, job, "--runs-dir", tmp_path / "runs", "--sweep-index", 2)
    assert r.returncode == 0 and "already done" in r.stdout, r.stdout + r.stderr


# -- signals, resume on another rank count ------------------------------------------------
SIGJOB = ('name = "sig"\nsolver = "heat"\n[grid]\nshape = [768, 768]\n[initial]\nu0 = "sin(pi * x) * sin(pi * y)"\n'
          '[boundary]\n"x-" = ["dirichlet", 1.0]\n[run]\nsteps = 600\n[output]\nenabled = false\n'
          '[checkpoint]\nevery = 100000\n')


def _rank_pid(rank, marker):
    """The pid of the rank ``rank`` of a job whose command line holds ``marker``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmd and f"PMI_RANK={rank}".encode() in env:
            return int(pid)
    return None


def _children(pid):
    out = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _interrupt(tmp_path, runs, target, signum=signal.SIGTERM):
    """Start ``pympc run -n 2`` on the job, wait until it runs, then send ``signum`` to
    ``target``: the parent (``pympc run -n``), its mpiexec, or rank 1 alone."""
    job = tmp_path / "sig.toml"
    job.write_text(SIGJOB)
    env = clean_env({**os.environ, "PYMPC_PROGRESS": "off"})
    proc = subprocess.Popen([sys.executable, "-m", "pympc", "run", "-n", "2", str(job), "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        marker = runs / "sig" / "status"
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text() == "running\n"):
            assert time.monotonic() < deadline and proc.poll() is None, "the job never started running"
            time.sleep(0.02)
        if target == "parent":
            pid = proc.pid
        elif target == "mpiexec":
            pid = next(p for p in _children(proc.pid))
        else:
            pid = _rank_pid(1, str(job))
        assert pid is not None, f"{target} not found"
        os.kill(pid, signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err, job


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    (tmp / "sig.toml").write_text(SIGJOB)
    r = pympc("run", "-n", 2, tmp / "sig.toml", "--runs-dir", tmp / "runs")
    assert r.returncode == 0, r.stdout + r.stderr
    ck = sorted(os.listdir(tmp / "runs" / "sig" / "checkpoints"))[-1]
    return _checkpoint_field(tmp / "runs" / "sig" / "checkpoints" / ck)


def _checkpoint_field(path):
    import h5py

    with h5py.File(path, "r") as f:
        return int(f.attrs["step"]), f["fields/u"][...]


@pytest.mark.parametrize("target,signum,again", [("mpiexec", signal.SIGTERM, 1), ("rank1", signal.SIGTERM, 3),
                                                 ("parent", signal.SIGTERM, 3), ("parent", signal.SIGINT, 1),
                                                 ("rank1", signal.SIGUSR1, 2)],
                         ids=["SIGTERM-mpiexec", "SIGTERM-rank1", "SIGTERM-parent", "SIGINT-parent", "SIGUSR1-rank1"])
def test_sigterm_checkpoints_exits_75_and_resumes_bit_identical(target, signum, again, uninterrupted, tmp_path):
    """A signal to the launcher's parent, to mpiexec, or to one rank: every rank
    checkpoints at the same step, ``interrupted``, exit 75; the job run again on another
    rank count ends with the uninterrupted run's field, bit for bit."""
    runs = tmp_path / "runs"
    rc, out, err, job = _interrupt(tmp_path, runs, target, signum)
    d = runs / "sig"
    assert rc == status.INTERRUPTED, out + err
    assert (d / "status").read_text() == "interrupted\n"
    meta = json.loads((d / "run.json").read_text())
    first = meta["attempts"][0]
    assert first["exit"] == "interrupted" and 0 < first["steps"][1] < 600, first
    assert "run the job again to resume" in out
    r = pympc("run", "-n", again, job, "--runs-dir", runs)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (d / "status").read_text() == "done\n"
    meta = json.loads((d / "run.json").read_text())
    assert [a["ranks"] for a in meta["attempts"]] == [2, again]
    assert meta["attempts"][1]["steps"] == [first["steps"][1], 600]
    ck = sorted(os.listdir(d / "checkpoints"))[-1]
    step, field = _checkpoint_field(d / "checkpoints" / ck)
    ref_step, ref = uninterrupted
    assert step == ref_step == 600 and field.tobytes() == ref.tobytes()


# -- the run directory's rules ----------------------------------------------------------
SMALL = 'name = "small"\nsolver = "heat"\n[grid]\nshape = [10, 10]\n[run]\nsteps = 6\n[initial]\nu0 = "x"\n'


def _snapshot(d):
    return {os.path.relpath(os.path.join(p, n), d): (os.stat(os.path.join(p, n)).st_mtime_ns,
                                                     open(os.path.join(p, n), "rb").read())
            for p, _, names in os.walk(d) for n in names}


def test_a_finished_run_is_not_rerun_changed_physics_refused_fresh_moves_aside(tmp_path):
    job = tmp_path / "small.toml"
    job.write_text(SMALL)
    runs = tmp_path / "runs"
    assert pympc("run", "-n", 2, job, "--runs-dir", runs).returncode == 0
    d = runs / "small"
    before = _snapshot(d)
    r = pympc("run", "-n", 2, job, "--runs-dir", runs)
    assert r.returncode == 0 and "already done" in r.stdout and _snapshot(d) == before
    job.write_text(SMALL.replace("shape = [10, 10]", "shape = [10, 10]\nperiodic = [true, false]"))
    r = pympc("run", "-n", 2, job, "--runs-dir", runs)
    assert r.returncode == 2 and "grid.periodic" in r.stderr and "--fresh" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and _snapshot(d) == before
    # a longer run of the same physics continues the finished one from its last checkpoint
    job.write_text(SMALL.replace("steps = 6", "steps = 9"))
    r = pympc("run", "-n", 1, job, "--runs-dir", runs)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((d / "run.json").read_text())["attempts"][-1]["steps"] == [6, 9]
    r = pympc("run", "-n", 2, job, "--runs-dir", runs, "--fresh")
    assert r.returncode == 0, r.stdout + r.stderr
    aside = [n for n in os.listdir(runs) if n.startswith("small.old-")]
    assert len(aside) == 1 and (runs / aside[0] / "output.h5").exists()
    assert len(json.loads((d / "run.json").read_text())["attempts"]) == 1


def test_the_same_job_under_mpiexec_directly(tmp_path):
    job = tmp_path / "small.toml"
    job.write_text(SMALL)
    r = run_mpi(3, ["-m", "pympc", "run", str(job), "--runs-dir", str(tmp_path / "runs")], timeout=TIMEOUT,
                env={"PYMPC_PROGRESS": "lines"})
    assert r.returncode == 0, r.output[-3000:]
    assert r.stdout.count("small: done:") == 1
    assert (tmp_path / "runs" / "small" / "status").read_text() == "done\n"


def test_status_table_and_markers():
    assert status.EXIT[status.INTERRUPTED][0] == "interrupted" and status.INTERRUPTED == 75
    text = status.table()
    for code in (0, 1, 2, 3, 75):
        assert re.search(rf"^\| {code} \|", text, re.M)
    for marker in status.MARKERS:
        assert f"`{marker}`" in text


def test_changed_allows_only_the_run_length_and_cadence():
    a = {"physics": {"alpha": 1.0}, "run": {"steps": 5, "t_end": None, "progress": 10.0},
         "output": {"every": 1}, "checkpoint": {"every": 2}, "decomposition": {"dims": [0, 0]}}
    b = json.loads(json.dumps(a))
    b["run"]["steps"], b["output"]["every"], b["checkpoint"]["every"], b["decomposition"]["dims"] = 9, 3, 4, [2, 1]
    assert rundir.changed(a, b) == []
    b["physics"]["alpha"] = 2.0
    assert rundir.changed(a, b) == ["physics.alpha"]


def test_restart_from_another_runs_checkpoint(tmp_path):
    """``run.restart_from``: a new run starts from another run's checkpoint (a run
    directory, a checkpoints directory or a file); with the same physics it reaches the
    straight run's field bit for bit; with other physics (not the grid) it branches."""
    base = SMALL.replace("steps = 6", "steps = {steps}").replace('name = "small"', 'name = "{name}"')
    runs = tmp_path / "runs"
    for name, steps, extra in (("a", 4, ""), ("straight", 9, "")):
        (tmp_path / f"{name}.toml").write_text(base.format(name=name, steps=steps) + extra)
        assert pympc("run", "-n", 2, tmp_path / f"{name}.toml", "--runs-dir", runs).returncode == 0
    sources = {"dir": "runs/a", "checkpoints": "runs/a/checkpoints",
               "file": "runs/a/checkpoints/" + sorted(os.listdir(runs / "a" / "checkpoints"))[-1]}
    for kind, src in sources.items():
        job = tmp_path / f"b-{kind}.toml"
        job.write_text(base.format(name=f"b-{kind}", steps=9).replace("[run]", f'[run]\nrestart_from = "{src}"'))
        r = pympc("run", "-n", 3, job, "--runs-dir", runs)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads((runs / f"b-{kind}" / "run.json").read_text())["attempts"][0]["steps"] == [4, 9]
        assert last_fields(runs / f"b-{kind}" / "output.h5")[1]["u"].tobytes() == \
            last_fields(runs / "straight" / "output.h5")[1]["u"].tobytes()
    job = tmp_path / "branch.toml"
    job.write_text(base.format(name="branch", steps=9).replace("[run]", '[run]\nrestart_from = "runs/a"')
                   + "[physics]\nalpha = 0.5\n")
    r = pympc("run", "-n", 1, job, "--runs-dir", runs)
    assert r.returncode == 0, r.stdout + r.stderr
    job.write_text(job.read_text().replace("shape = [10, 10]", "shape = [12, 10]").replace('"branch"', '"g"'))
    r = pympc("run", "-n", 2, job, "--runs-dir", runs)
    assert r.returncode == 2 and "run.restart_from" in r.stderr and "grid" in r.stderr, r.stderr
    assert not (runs / "g").exists()
    job.write_text(job.read_text().replace('restart_from = "runs/a"', 'restart_from = "runs/nowhere"'))
    r = pympc("check", job)
    assert r.returncode == 2 and "run.restart_from" in r.stderr and "no such" in r.stderr, r.stderr


def test_docs_hold_the_reference_the_status_table_and_every_option():
    """docs/jobs.md: the key reference and the exit-status table exactly as the code makes
    them (so they cannot drift), and every option of ``pympc run`` and ``pympc check``."""
    from pympc.jobs import command, schema

    text = open(os.path.join(ROOT, "docs", "jobs.md")).read()
    assert schema.reference() in text, "docs/jobs.md: regenerate the reference from pympc.jobs.schema"
    assert status.table() in text, "docs/jobs.md: regenerate the exit-status table from pympc.jobs.status"
    for parser in (command.run_parser(), command.check_parser()):
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text, f"{parser.prog} {flag} is not in docs/jobs.md"
    for key in schema.KEYS:
        assert f"`{key.path}`" in text


def test_the_json_schema_names_every_key():
    from pympc.jobs import schema

    r = pympc("check", "--schema")
    assert r.returncode == 0
    js = json.loads(r.stdout)
    for key in schema.KEYS:
        node = js
        for part in key.path.split("."):
            node = node["properties"][part] if part != "*" else node["additionalProperties"]
        assert node.get("description") == key.doc, key.path


def test_at_a_terminal_pympc_run_n_draws_a_bar_and_in_batch_lines(tmp_path):
    """Under mpiexec rank 0's output is a pipe: ``pympc run -n`` looks at its own terminal
    and passes the choice on (a bar at a terminal, lines otherwise)."""
    import pty

    job = tmp_path / "bar.toml"
    job.write_text(SMALL.replace("steps = 6", "steps = 400").replace('"small"', '"bar"'))
    env = {k: v for k, v in clean_env().items() if k not in ("PYMPC_PROGRESS", "COLUMNS")}
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pympc", "run", "-n", "2", str(job), "--runs-dir",
                             str(tmp_path / "runs")], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: every writer is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, seen.decode(errors="replace")[-3000:]
    text = seen.decode(errors="replace")
    assert "400/400" in text and "100%" in text and "\r" in text, text[-3000:]
    assert "bar: done:" in text
    r = pympc("run", "-n", 2, job, "--runs-dir", tmp_path / "runs2", env={**env, "PYMPC_PROGRESS": "lines"})
    assert r.returncode == 0 and "400/400" not in r.stderr and "bar: done:" in r.stdout, r.stdout + r.stderr


def test_a_run_in_progress_is_not_run_twice(tmp_path):
    """Rank 0 holds a lock on the run directory while it runs: a second run of the same
    job at the same time is refused (exit 2) and changes nothing."""
    import fcntl

    job = tmp_path / "small.toml"
    job.write_text(SMALL)
    runs = tmp_path / "runs"
    assert pympc("run", "-n", 1, job, "--runs-dir", runs).returncode == 0
    d = runs / "small"
    (d / "status").write_text("interrupted\n")
    before = _snapshot(d)
    with open(d / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # as a running attempt's rank 0 holds it
        r = pympc("run", "-n", 2, job.parent / "small.toml", "--runs-dir", runs)
    assert r.returncode == 2 and "in use" in r.stderr, r.stdout + r.stderr
    assert _snapshot(d) == before


def test_launcher_options_in_any_spelling_never_launch_twice(tmp_path):
    """The ranks' command line is rebuilt from the parsed options: an abbreviation of
    --ranks (``--rank``, ``--ran=``) does not make every rank launch mpiexec again."""
    job = tmp_path / "small.toml"
    job.write_text(SMALL)
    for i, spelling in enumerate((["--ranks=2"], ["-n2"], ["--ranks", "2"])):
        r = pympc("run", *spelling, job, "--runs-dir", tmp_path / f"runs{i}", timeout=120)
        assert r.returncode == 0 and r.stdout.count("small: done:") == 1, r.stdout + r.stderr
        meta = json.loads((tmp_path / f"runs{i}" / "small" / "run.json").read_text())
        assert meta["attempts"][0]["ranks"] == 2 and "-n" not in meta["attempts"][0]["command"]
    for spelling in (["--rank", "2"], ["--ran=2"]):  # abbreviations are refused, nothing launched
        r = pympc("run", *spelling, job, "--runs-dir", tmp_path / "abbrev", timeout=120)
        assert r.returncode == 2 and not (tmp_path / "abbrev").exists(), r.stdout + r.stderr
    r = pympc("run", job, "--timeout", 5, "--runs-dir", tmp_path / "t")
    assert r.returncode == 2 and "--timeout needs -n" in r.stderr and not (tmp_path / "t").exists()


def test_an_extended_run_is_done_after_its_extension(tmp_path):
    job = tmp_path / "small.toml"
    job.write_text(SMALL)
    runs = tmp_path / "runs"
    assert pympc("run", "-n", 1, job, "--runs-dir", runs).returncode == 0
    job.write_text(SMALL.replace("steps = 6", "steps = 8"))
    assert pympc("run", "-n", 2, job, "--runs-dir", runs).returncode == 0
    before = _snapshot(runs)
    r = pympc("run", "-n", 2, job, "--runs-dir", runs)
    assert r.returncode == 0 and "already done" in r.stdout and _snapshot(runs) == before, r.stdout + r.stderr
    assert json.loads((runs / "small" / "job.json").read_text())["run"]["steps"] == 8


def test_a_sweep_checks_every_point_before_writing_and_fresh_moves_it_whole(tmp_path):
    job = tmp_path / "sw.toml"
    job.write_text('name = "sw"\nsolver = "heat"\n[grid]\nshape = [8, 8]\n[run]\nsteps = 3\n'
                   '[sweep]\nphysics.alpha = [0.5, 1.0, 2.0]\n')  # an unquoted dotted key: a nested table
    runs = tmp_path / "runs"
    (runs / "sw" / "2").mkdir(parents=True)
    (runs / "sw" / "2" / "notes.txt").write_text("mine")  # not a run directory: point 2 refused
    r = pympc("run", "-n", 2, job, "--runs-dir", runs)
    assert r.returncode == 2 and "not a pympc run directory" in r.stderr, r.stdout + r.stderr
    assert sorted(os.listdir(runs / "sw")) == ["2"]  # nothing written for points 0 and 1
    r = pympc("run", "-n", 2, job, "--runs-dir", runs, "--fresh")
    assert r.returncode == 0, r.stdout + r.stderr
    (aside,) = [n for n in os.listdir(runs) if n.startswith("sw.old-")]
    assert (runs / aside / "2" / "notes.txt").read_text() == "mine"
    assert [json.loads((runs / "sw" / str(k) / "job.json").read_text())["physics"]["alpha"] for k in range(3)] \
        == [0.5, 1.0, 2.0]
    (runs / "file").write_text("x")
    r = pympc("run", "-n", 1, job, "--runs-dir", runs / "file")
    assert r.returncode == 2 and "not a directory" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_field_function_is_checked_in_the_ranks(tmp_path):
    """``"module:func"`` fields are evaluated on a sample of the grid in every rank before
    anything is written: a wrong shape or a NaN is one message, exit 2."""
    (tmp_path / "fields.py").write_text("import numpy as np\n"
                                        "def fixed(x, y):\n    return np.zeros((3, 3))\n"
                                        "def nan(x, y):\n    return np.where(x > 0.5, np.nan, 1.0) + 0 * y\n"
                                        "def fine(x, y):\n    return x + y\n")
    for name, ok in (("fixed", False), ("nan", False), ("fine", True)):
        job = tmp_path / f"{name}.toml"
        job.write_text(SMALL.replace('u0 = "x"', f'u0 = "fields:{name}"').replace('"small"', f'"{name}"'))
        r = run_mpi(2, ["-m", "pympc", "run", str(job), "--runs-dir", str(tmp_path / "runs")], timeout=TIMEOUT)
        assert (r.returncode == 0) == ok, r.output[-2000:]
        if not ok:
            assert r.returncode == 2 and r.stderr.count("pympc: error") == 1 and "initial.u0" in r.stderr
            assert not (tmp_path / "runs" / name).exists()


@pytest.mark.parametrize("edit,key", [("shape = [10, 10]", "grid.shape"), ("steps = 6", "run.steps"),
                                      ('u0 = "x"', "initial.u0"), ("[run]", "physics.alpha")])
def test_integers_of_any_size_are_one_message(edit, key, tmp_path):
    huge = "1" + "0" * 400
    text = {"shape = [10, 10]": SMALL.replace("shape = [10, 10]", f"shape = [{huge}, 10]"),
            "steps = 6": SMALL.replace("steps = 6", f"steps = {huge}"),
            'u0 = "x"': SMALL.replace('u0 = "x"', f"u0 = {huge}"),
            "[run]": SMALL.replace("[run]", f"[physics]\nalpha = {huge}\n[run]")}[edit]
    job = tmp_path / "big.toml"
    job.write_text(text)
    for args in (("check", job), ("run", "-n", 2, job, "--runs-dir", tmp_path / "runs")):
        r = pympc(*args)
        assert r.returncode == 2 and key in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and len(r.stderr) < 400, r.stderr


def test_the_json_schema_accepts_the_example_jobs_and_refuses_malformed_ones():
    import glob
    from pympc.jobs.spec import tomllib

    import jsonschema
    from pympc.jobs import schema

    validator = jsonschema.Draft202012Validator(schema.json_schema())
    for path in glob.glob(os.path.join(ROOT, "jobs", "*.toml")):
        with open(path, "rb") as f:
            errors = list(validator.iter_errors(tomllib.load(f)))
        assert not errors, (path, [e.message for e in errors])
    good = tomllib.loads(SMALL)
    for bad in ({**good, "nme": "x"}, {k: v for k, v in good.items() if k != "name"},
                {**good, "run": {"steps": 3, "t_end": 1.0}}, {**good, "grid": {"shape": "10"}},
                {**good, "name": "a/b"}, {**good, "grid": {"shape": [10], "extent": -1.0}}):
        assert list(validator.iter_errors(bad)), bad


FARMJOB = ('name = "fm"\nsolver = "heat"\n[grid]\nshape = [14, 10]\n[initial]\nu0 = "x * (1 - x) + y"\n'
           '[run]\nsteps = 20\n[sweep]\n"physics.alpha" = [0.25, 0.5, 0.75, 1.0]\n')


def test_a_sweep_as_a_farm_equals_the_sweep_run_point_by_point(tmp_path):
    """``pympc run --farm --ranks-per-task K``: the points run side by side on groups of
    K ranks, each point's field the same bit for bit as the sweep run point after point."""
    job = tmp_path / "fm.toml"
    job.write_text(FARMJOB)
    assert pympc("run", "-n", 1, job, "--runs-dir", tmp_path / "seq").returncode == 0
    for ranks, k in ((2, 1), (4, 2)):
        runs = tmp_path / f"farm{ranks}"
        r = pympc("run", "-n", ranks, job, "--runs-dir", runs, "--farm", "--ranks-per-task", k)
        assert r.returncode == 0, r.stdout + r.stderr
        for p in range(4):
            d = runs / "fm" / str(p)
            assert (d / "status").read_text() == "done\n"
            assert json.loads((d / "run.json").read_text())["attempts"][0]["ranks"] == k
            assert last_fields(d / "output.h5")[1]["u"].tobytes() == \
                last_fields(tmp_path / "seq" / "fm" / str(p) / "output.h5")[1]["u"].tobytes()
        before = _snapshot(runs / "fm" / "0")
        r = pympc("run", "-n", ranks, job, "--runs-dir", runs, "--farm", "--ranks-per-task", k)
        assert r.returncode == 0 and "4 done, 0 failed, 0 not run" in r.stdout, r.stdout + r.stderr
        assert _snapshot(runs / "fm" / "0") == before  # the ledger knew: nothing ran again
    r = pympc("run", "-n", 2, job, "--runs-dir", tmp_path / "x", "--farm", "--sweep-index", 1)
    assert r.returncode == 2 and "not both" in r.stderr


def test_a_failed_point_of_a_farm_is_recorded_and_the_others_run(tmp_path):
    (tmp_path / "flaky.py").write_text(USER_MODULE.replace("mydecay:check", "flaky:check").replace(
        "    def advance(self):\n", "    def advance(self):\n        if self.k == 0.5:\n"
        "            raise RuntimeError('k = 0.5 fails')\n"))
    job = tmp_path / "flaky.toml"
    job.write_text('name = "fl"\nsolver = "flaky:Decay"\n[grid]\nshape = [6, 6]\n[run]\nsteps = 4\n'
                   '[initial]\nu0 = 1.0\n[sweep]\n"physics.k" = [0.25, 0.5, 0.75]\n')
    r = pympc("run", "-n", 2, job, "--runs-dir", tmp_path / "runs", "--farm")
    assert r.returncode == 3, r.stdout + r.stderr
    status = [(tmp_path / "runs" / "fl" / str(p) / "status").read_text().strip() for p in range(3)]
    assert status == ["done", "failed", "done"], status
    from pympc.farm import ledger

    (version,) = os.listdir(tmp_path / "runs" / "fl" / "farm")  # one ledger per version of the sweep
    st = ledger.state(str(tmp_path / "runs" / "fl" / "farm" / version / "ledger"), 3)
    assert st[1]["status"] == "failed" and "k = 0.5 fails" in st[1]["record"]["traceback"]


def test_a_signal_drains_a_farm_and_the_rerun_finishes_it(tmp_path):
    """SIGTERM to ``pympc run -n 2 --farm``: the running points checkpoint, no further
    point starts, exit 75; the same command again finishes every point."""
    job = tmp_path / "sig.toml"
    job.write_text(SIGJOB.replace("steps = 600", "steps = 300") + '[sweep]\n"physics.alpha" = [0.5, 0.6, 0.7, 0.8]\n')
    runs = tmp_path / "runs"
    env = clean_env({**os.environ, "PYMPC_PROGRESS": "off"})
    proc = subprocess.Popen([sys.executable, "-m", "pympc", "run", "-n", "2", str(job), "--runs-dir", str(runs),
                             "--farm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any((runs / "sig" / str(p) / "status").exists() and
                      (runs / "sig" / str(p) / "status").read_text() == "running\n" for p in range(4)):
            assert time.monotonic() < deadline and proc.poll() is None, "no point started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 75, out + err
    markers = [(runs / "sig" / str(p) / "status").read_text().strip() for p in range(4)]
    assert "interrupted" in markers and "running" not in markers and markers.count("done") < 4, markers
    r = pympc("run", "-n", 2, job, "--runs-dir", runs, "--farm")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [(runs / "sig" / str(p) / "status").read_text().strip() for p in range(4)] == ["done"] * 4
