"""Malformed job files (issue 14): each is refused before anything runs, with exit status 2
and one line on stderr that names the job file and the key at fault; no traceback, no run
directory, no hang.

Every case is one edit of a good small heat job (:data:`BASE`), checked three ways:

* ``pympc check`` (in-process, :func:`pympc.jobs.command.check_main`; one case also as a
  subprocess);
* ``pympc run -n RANKS`` as a subprocess: the parent checks the job without MPI and never
  launches;
* for a subset, directly under the launcher (``mpiexec -n 2 python -m pympc run JOB``),
  where the ranks check it (some cases only the ranks can see: a "solver class" that is
  not a class, or not a TimeLoop): the message is printed once, not once per rank.

All serial tests (no ``mpi`` marker); every subprocess has a hard timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pympc.jobs.command import check_main
from pympc.tools.launch import clean_env, mpiexec_command, run_mpi

TIMEOUT = 60  # seconds for any one subprocess: a refused job takes well under one

BASE = """\
name = "bad"
solver = "heat"

[grid]
shape = [16, 16]

[physics]
alpha = 1.0

[initial]
u0 = "sin(pi*x) * sin(pi*y)"

[boundary]
"x-" = ["dirichlet", 1.0]

[run]
steps = 4

[output]
every = 2

[checkpoint]
every = 2
"""

WAVE = BASE.replace('solver = "heat"', 'solver = "wave"').replace("alpha = 1.0", "c = 1.0")
POISSON = (BASE.replace('solver = "heat"', 'solver = "poisson"').replace("alpha = 1.0", 'method = "rbsor"')
           .replace("u0 =", "f ="))
SWEEP = BASE + '\n[sweep]\n"physics.alpha" = [0.5, 1.0]\n'
MYMOD = """\
from solvers.heat import Heat


class Mine(Heat):
    pass


Nope = 3


class NotALoop:
    def __init__(self, decomp, alpha=1.0, u0=0.0, bc=None):
        self.decomp = decomp
"""


def sub(old: str, new: str, base: str = BASE) -> str:
    """``base`` with the one occurrence of ``old`` replaced by ``new``."""
    assert base.count(old) == 1, old
    return base.replace(old, new)


def top(line: str, base: str = BASE) -> str:
    """``base`` with a top-level key added (before the first table)."""
    return line + "\n" + base


def in_table(table: str, line: str, base: str = BASE) -> str:
    """``base`` with ``line`` added at the top of ``[table]``."""
    return sub(f"[{table}]\n", f"[{table}]\n{line}\n", base)


# (id, the job file's text, the key path (or words) that must appear in the message,
#  the rank count to check for, extra arguments of `pympc run`)
CASES = [
    ("unknown-top-key", top('solvr = "heat"'), ["solvr", "did you mean 'solver'"], 2, []),
    ("unknown-grid-key", in_table("grid", "extnt = 2.0"), ["grid.extnt", "did you mean 'extent'"], 2, []),
    ("unknown-run-key", in_table("run", "stpes = 3"), ["run.stpes", "did you mean 'steps'"], 2, []),
    ("unknown-output-key", in_table("output", "evry = 3"), ["output.evry", "did you mean 'every'"], 2, []),
    ("unknown-table", sub("[checkpoint]", "[checkpiont]"), ["checkpiont", "did you mean 'checkpoint'"], 2, []),
    ("misspelt-physics-key", sub("alpha = 1.0", "alpah = 1.0"), ["physics.alpah", "did you mean 'alpha'"], 2, []),
    ("physics-wrong-type", sub("alpha = 1.0", 'alpha = "fast"'), ["physics.alpha"], 2, []),
    ("shape-as-string", sub("shape = [16, 16]", 'shape = "16x16"'), ["grid.shape"], 2, []),
    ("steps-float", sub("steps = 4", "steps = 4.5"), ["run.steps", "integer"], 2, []),
    ("periodic-yes", in_table("grid", 'periodic = "yes"'), ["grid.periodic", "true or false"], 2, []),
    ("output-every-negative", sub("every = 2\n\n[checkpoint]", "every = -1\n\n[checkpoint]"),
     ["output.every", ">= 0"], 2, []),
    ("bad-toml", sub("alpha = 1.0", "alpha = 1.0.0"), ["not valid TOML", "line 8"], 2, []),
    ("bad-toml-unclosed", sub("shape = [16, 16]", "shape = [16, 16"), ["not valid TOML", "line"], 2, []),
    ("bad-toml-duplicate-key", in_table("run", "steps = 5"), ["not valid TOML", "line"], 2, []),
    ("missing-name", sub('name = "bad"\n', ""), ["name", "required"], 2, []),
    ("missing-solver", sub('solver = "heat"\n', ""), ["solver", "required"], 2, []),
    ("unknown-solver", sub('solver = "heat"', 'solver = "haet"'), ["solver", "did you mean 'heat'"], 2, []),
    ("name-with-slash", sub('name = "bad"', 'name = "a/b"'), ["name", "'a/b'"], 2, []),
    ("name-not-a-string", sub('name = "bad"', "name = 7"), ["name", "string"], 2, []),
    ("negative-size", sub("shape = [16, 16]", "shape = [-4, 16]"), ["grid.shape", ">= 1"], 2, []),
    ("zero-size", sub("shape = [16, 16]", "shape = [16, 0]"), ["grid.shape", ">= 1"], 2, []),
    ("four-axes", sub("shape = [16, 16]", "shape = [4, 4, 4, 4]"), ["grid.shape", "1 to 3"], 2, []),
    ("grid-smaller-than-ranks", sub("shape = [16, 16]", "shape = [2, 2]\n\n[decomposition]\ndims = [4, 1]"),
     ["decomposition", "[2, 2]", "4 rank"], 4, []),
    ("1d-grid-smaller-than-ranks", sub("shape = [16, 16]", "shape = [3]").replace('"x-" = ["dirichlet", 1.0]', ""),
     ["decomposition", "[3]", "4 rank"], 4, []),
    ("dims-do-not-divide", sub("shape = [16, 16]", "shape = [16, 16]\n\n[decomposition]\ndims = [3, 1]"),
     ["decomposition", "2 rank"], 2, []),
    ("dims-wrong-length", sub("shape = [16, 16]", "shape = [16, 16]\n\n[decomposition]\ndims = [2, 1, 1]"),
     ["decomposition.dims", "3 entries"], 2, []),
    ("heat-unstable-dt", in_table("physics", "dt = 0.01"), ["physics.dt", "stability limit"], 2, []),
    ("heat-safety-above-1", in_table("physics", "safety = 1.5"), ["physics.safety"], 2, []),
    ("wave-unstable-dt", in_table("physics", "dt = 0.5", WAVE), ["physics.dt", "stability limit"], 2, []),
    ("wave-cfl-above-1", in_table("physics", "cfl = 1.5", WAVE), ["physics.cfl", "(0, 1]"], 2, []),
    ("poisson-omega-2.5", in_table("physics", "omega = 2.5", POISSON), ["physics.omega", "0 < omega < 2"], 2, []),
    ("formula-syntax-error", sub('u0 = "sin(pi*x) * sin(pi*y)"', 'u0 = "sin(pi*x"'), ["initial.u0"], 2, []),
    ("formula-unknown-function", sub('u0 = "sin(pi*x) * sin(pi*y)"', 'u0 = "foo(x)"'),
     ["initial.u0", "foo"], 2, []),
    ("formula-import", sub('u0 = "sin(pi*x) * sin(pi*y)"', '''u0 = "__import__('os').system('touch PWNED')"'''),
     ["initial.u0"], 2, []),
    ("formula-import-call", sub('u0 = "sin(pi*x) * sin(pi*y)"', "u0 = \"__import__('os')\""),
     ["initial.u0", "'__import__' is not allowed"], 2, []),
    ("formula-overflow", sub('u0 = "sin(pi*x) * sin(pi*y)"', 'u0 = "10**10**10"'), ["initial.u0", "not finite"], 2, []),
    ("formula-attribute", sub('u0 = "sin(pi*x) * sin(pi*y)"', '''u0 = "x.__class__"'''), ["initial.u0"], 2, []),
    ("formula-1-over-x", sub('u0 = "sin(pi*x) * sin(pi*y)"', 'u0 = "1/x"'), ["initial.u0", "not finite"], 2, []),
    ("formula-log-x", sub('u0 = "sin(pi*x) * sin(pi*y)"', 'u0 = "log(x)"'), ["initial.u0", "not finite"], 2, []),
    ("formula-wrong-axis", sub('u0 = "sin(pi*x) * sin(pi*y)"', 'u0 = "z"'), ["initial.u0", "z"], 2, []),
    ("initial-not-finite", sub('u0 = "sin(pi*x) * sin(pi*y)"', "u0 = inf"), ["initial.u0", "finite"], 2, []),
    ("poisson-missing-f", sub('f = "sin(pi*x) * sin(pi*y)"\n', "", POISSON), ["initial.f", "required"], 2, []),
    ("initial-unknown-field", sub('u0 = "sin(pi*x) * sin(pi*y)"', "v0 = 0.0"), ["initial.v0"], 2, []),
    ("steps-and-t_end", in_table("run", "t_end = 0.1"), ["run", "not both"], 2, []),
    ("neither-steps-nor-t_end", sub("steps = 4", "progress = 1.0"), ["run", "steps", "t_end"], 2, []),
    ("t_end-zero", sub("steps = 4", "t_end = 0.0"), ["run.t_end", "> 0"], 2, []),
    ("user-class-missing", sub('solver = "heat"', 'solver = "mymod:Nope2"'),
     ["solver", "Nope2", "mymod"], 2, []),
    ("user-module-missing", sub('solver = "heat"', 'solver = "nosuchmod:Solver"'),
     ["solver", "nosuchmod"], 2, []),
    ("user-function-missing", sub('u0 = "sin(pi*x) * sin(pi*y)"', 'u0 = "mymod:nofunc"'),
     ["initial.u0", "nofunc"], 2, []),
    ("user-function-is-a-class", sub('u0 = "sin(pi*x) * sin(pi*y)"', 'u0 = "mymod:Mine"'),
     ["initial.u0", "mymod:Mine is a class"], 2, []),
    ("user-module-syntax-error", sub('solver = "heat"', 'solver = "broken:Solver"'),
     ["solver", "'broken' has a syntax error", "line 1"], 2, []),
    ("boundary-side-w", sub('"x-" = ["dirichlet", 1.0]', '"w-" = ["dirichlet", 1.0]'),
     ["boundary.w-", "x-"], 2, []),
    ("boundary-side-z-on-2d", sub('"x-" = ["dirichlet", 1.0]', '"z+" = ["dirichlet", 1.0]'),
     ["boundary.z+"], 2, []),
    ("boundary-on-periodic-axis", in_table("grid", "periodic = [true, false]"), ["boundary.x-", "periodic"], 2, []),
    ("boundary-bad-kind", sub('"x-" = ["dirichlet", 1.0]', '"x-" = ["robin", 1.0]'), ["boundary.x-"], 2, []),
    ("boundary-bad-word", top('boundary = "neuman"', sub('[boundary]\n"x-" = ["dirichlet", 1.0]\n', "")),
     ["boundary", "did you mean 'neumann'"], 2, []),
    ("units-not-a-string", in_table("output", "units = { u = 3 }"), ["output.units.u", "string"], 2, []),
    ("sweep-unknown-key", SWEEP + '"grid.shap" = [[8, 8]]\n', ["sweep.grid.shap"], 2, []),
    ("sweep-misspelt-physics", SWEEP.replace('"physics.alpha"', '"physics.alpah"'),
     ["physics.alpah", "sweep point 0"], 2, []),
    ("sweep-zip-lengths", SWEEP + 'mode = "zip"\n"run.steps" = [2, 3, 4]\n',
     ["sweep", "one length", "physics.alpha: 2", "run.steps: 3"], 2, []),
    ("sweep-empty-list", SWEEP.replace("[0.5, 1.0]", "[]"), ["sweep.physics.alpha", "empty"], 2, []),
    ("sweep-bad-point", SWEEP.replace("[0.5, 1.0]", "[0.5, -1.0]"), ["physics.alpha", "sweep point 1"], 2, []),
    ("sweep-index-out-of-range", SWEEP, ["--sweep-index 5", "out of range"], 2, ["--sweep-index", "5"]),
    ("sweep-index-without-sweep", BASE, ["--sweep-index 0", "no [sweep]"], 2, ["--sweep-index", "0"]),
]
RUN_ONLY = {"sweep-index-out-of-range", "sweep-index-without-sweep"}  # `pympc check` takes no --sweep-index


def write_case(tmp_path, text: str, name: str = "job.toml"):
    """The job file (and the user module beside it) in ``tmp_path/jobs``; returns its path."""
    d = tmp_path / "jobs"
    d.mkdir(exist_ok=True)
    (d / "mymod.py").write_text(MYMOD)
    (d / "broken.py").write_text("class Solver(:\n    pass\n")
    job = d / name
    job.write_text(text)
    return job


def files(root) -> dict:
    """Every file under ``root`` (relative path -> (bytes, mtime_ns)), but bytecode caches."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for n in filenames:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = (f.read(), os.stat(p).st_mtime_ns)
    return out


def assert_refused(code: int, out: str, err: str, job, keys) -> None:
    """Exit status 2 and one line on stderr naming the job file and every one of ``keys``."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err
    assert "Traceback" not in out + err, out + err
    assert str(job) in lines[0], lines[0]
    for key in keys:
        assert key in lines[0], (key, lines[0])


def pympc_env() -> dict:
    env = clean_env()
    env["PYMPC_MPIEXEC"] = " ".join(mpiexec_command())
    return env


def pympc(args, cwd):
    """``python -m pympc ARGS`` with a hard timeout."""
    return subprocess.run([sys.executable, "-m", "pympc", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=pympc_env(), cwd=cwd)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] not in RUN_ONLY], ids=lambda c: c[0])
def test_check_refuses(case, tmp_path, capsys, monkeypatch):
    ident, text, keys, ranks, _ = case
    job = write_case(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    before = files(tmp_path)
    code = check_main([str(job), "-n", str(ranks)])
    captured = capsys.readouterr()
    assert_refused(code, captured.out, captured.err, job, keys)
    assert files(tmp_path) == before  # pympc check writes nothing
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_run_parent_refuses_without_launching(case, tmp_path):
    ident, text, keys, ranks, extra = case
    job = write_case(tmp_path, text)
    runs = tmp_path / "runs"
    p = pympc(["run", "-n", ranks, job, "--runs-dir", runs, *extra], cwd=tmp_path)
    assert_refused(p.returncode, p.stdout, p.stderr, job, keys)
    assert not runs.exists()
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "jobs" / "PWNED").exists()


def test_check_as_a_command(tmp_path):
    """``python -m pympc check``: a good job passes (exit 0), a bad one is refused in one line."""
    good = write_case(tmp_path, BASE, "good.toml")
    p = pympc(["check", good, "-n", 2], cwd=tmp_path)
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr
    for ident in ("unknown-grid-key", "formula-import", "grid-smaller-than-ranks"):
        _, text, keys, ranks, _ = next(c for c in CASES if c[0] == ident)
        job = write_case(tmp_path, text, f"{ident}.toml")
        p = pympc(["check", job, "-n", ranks], cwd=tmp_path)
        assert_refused(p.returncode, p.stdout, p.stderr, job, keys)
    assert sorted(os.listdir(tmp_path)) == ["jobs"]


@pytest.mark.parametrize("what", ["missing", "directory"])
@pytest.mark.parametrize("how", ["check", "run -n 2", "mpiexec -n 2"])
def test_a_job_file_that_cannot_be_read(tmp_path, what, how):
    job = tmp_path / "jobs" / "job.toml"
    job.parent.mkdir()
    if what == "directory":
        job.mkdir()
    runs = tmp_path / "runs"
    if how == "check":
        p = pympc(["check", job], cwd=tmp_path)
        code, out, err = p.returncode, p.stdout, p.stderr
    elif how == "run -n 2":
        p = pympc(["run", "-n", 2, job, "--runs-dir", runs], cwd=tmp_path)
        code, out, err = p.returncode, p.stdout, p.stderr
    else:
        r = run_mpi(2, ["-m", "pympc", "run", str(job), "--runs-dir", str(runs)], timeout=TIMEOUT, cwd=tmp_path)
        code, out, err = r.returncode, r.stdout, r.stderr
    assert_refused(code, out, err, job, ["no such job file" if what == "missing" else "cannot read"])
    assert not runs.exists()


# Under the launcher the ranks check the job (imported, not read from source): the cases
# the parent cannot see are here too, and the message comes once, from rank 0.
RANKS_ONLY = [
    ("user-class-assigned", sub('solver = "heat"', 'solver = "mymod:Nope"'),
     ["solver", "mymod:Nope", "not a solvers.loop.TimeLoop subclass"], 2, []),
    ("user-class-not-a-timeloop", sub('solver = "heat"', 'solver = "mymod:NotALoop"'),
     ["solver", "mymod:NotALoop", "not a solvers.loop.TimeLoop subclass"], 2, []),
]
UNDER_LAUNCHER = ["user-class-missing", "user-module-missing", "user-module-syntax-error",
                  "user-function-is-a-class", "formula-import", "formula-1-over-x",
                  "heat-unstable-dt", "dims-do-not-divide", "poisson-missing-f", "sweep-index-out-of-range"]


@pytest.mark.parametrize("case", RANKS_ONLY, ids=lambda c: c[0])
def test_check_cannot_see_what_the_ranks_refuse(case, tmp_path, capsys):
    """A "class" that is not one, or not a TimeLoop, is found only by importing it: the
    parent (no imports) lets it through, the ranks refuse it (below)."""
    job = write_case(tmp_path, case[1])
    assert check_main([str(job), "-n", "2"]) == 0, capsys.readouterr().err


# Refused by the solver's constructor in the ranks (its own InputError): exit 2, once,
# nothing written; the message does not name the job file and the key yet (runner.py).
BY_CONSTRUCTOR = [
    ("poisson-neumann", sub('"x-" = ["dirichlet", 1.0]', '"x-" = ["neumann", 0.0]', POISSON), ["boundary"], 2, []),
    ("poisson-cell-centred", in_table("grid", 'centring = "cell"', POISSON), ["grid.centring"], 2, []),
]


@pytest.mark.parametrize("case", RANKS_ONLY + [c for c in CASES if c[0] in UNDER_LAUNCHER], ids=lambda c: c[0])
def test_ranks_refuse_under_the_launcher(case, tmp_path):
    ident, text, keys, ranks, extra = case
    assert ranks == 2
    job = write_case(tmp_path, text)
    runs = tmp_path / "runs"
    before = files(tmp_path)
    r = run_mpi(2, ["-m", "pympc", "run", str(job), "--runs-dir", str(runs), *extra], timeout=TIMEOUT,
                cwd=tmp_path)
    assert not r.timed_out, r.output
    assert_refused(r.returncode, r.stdout, r.stderr, job, keys)
    assert r.output.count("pympc: error") == 1, r.output  # once, not once per rank
    assert not runs.exists()
    assert files(tmp_path) == before  # nothing written (but Python's bytecode cache of mymod)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "jobs" / "PWNED").exists()


def test_changed_physics_leaves_a_finished_run_untouched(tmp_path):
    """A finished run, then the same job with other physics: refused (exit 2) before
    anything is written; every file of the run directory keeps its bytes and mtime."""
    job = write_case(tmp_path, sub('name = "bad"', 'name = "good"'))
    runs = tmp_path / "runs"
    p = pympc(["run", "-n", 2, job, "--runs-dir", runs], cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (runs / "good" / "status").read_text().strip() == "done"
    before = files(runs)
    listing = sorted(os.listdir(runs))
    job.write_text(sub("alpha = 1.0", "alpha = 0.5", job.read_text()))
    p = pympc(["run", "-n", 2, job, "--runs-dir", runs], cwd=tmp_path)
    assert_refused(p.returncode, p.stdout, p.stderr, job, ["physics.alpha", "--fresh"])
    r = run_mpi(2, ["-m", "pympc", "run", str(job), "--runs-dir", str(runs)], timeout=TIMEOUT, cwd=tmp_path)
    assert_refused(r.returncode, r.stdout, r.stderr, job, ["physics.alpha", "--fresh"])
    assert files(runs) == before
    assert sorted(os.listdir(runs)) == listing


@pytest.mark.parametrize("case", BY_CONSTRUCTOR, ids=lambda c: c[0])
def test_solver_constructor_refusals(case, tmp_path):
    """What only the solver's constructor checks still costs nothing: exit 2, one message
    printed once, no run directory."""
    ident, text, keys, ranks, extra = case
    job = write_case(tmp_path, text)
    runs = tmp_path / "runs"
    r = run_mpi(2, ["-m", "pympc", "run", str(job), "--runs-dir", str(runs)], timeout=TIMEOUT, cwd=tmp_path)
    assert r.returncode == 2 and r.output.count("pympc: error") == 1, r.output
    assert "Traceback" not in r.output and not runs.exists(), r.output
    if str(job) not in r.stderr:
        pytest.xfail("a solver constructor's InputError reaches the user without the job file and the key")
    assert_refused(r.returncode, r.stdout, r.stderr, job, keys)
