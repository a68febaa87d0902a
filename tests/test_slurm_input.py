"""``pympc slurm submit`` and bad input: each malformed invocation is exit 2 with one line
naming what is wrong, and nothing is written or submitted; every value that reaches the
batch script comes back literally (the settings block evaluated by bash) or is refused.

The malformed invocations run in-process (``pympc.slurm.command.main``) with fake
``sbatch``/``scontrol``/``squeue`` first on PATH that only record being called: a call at
all is the failure. The real submission path is the real cluster's (tests/test_slurm.py);
the tests marked ``slurm`` here run a few malformed submissions and one job with a hostile
run-directory name there.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pympc.slurm import command, options, render

# tests/ is no package: pytest puts it on sys.path, and the Slurm tests' helpers are theirs
from test_slurm import CASES, HEAT, status, tc, wait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = '\n[sweep]\n"physics.alpha" = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]\n'
#: a path with every character a shell would act on, but none sbatch cannot carry (" and %)
NASTY = "odd dir 'q' $(touch PWNED) `touch PWNED` ; x"
FAKE = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "{log}"
exit 1
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working directory holding the Slurm tests' heat job (and variants), with fake Slurm
    commands first on PATH that record every call in ``calls.log`` (outside it)."""
    bin_dir, wd = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    wd.mkdir()
    log = tmp_path / "calls.log"
    for name in ("sbatch", "scontrol", "squeue", "sacct", "scancel"):
        (bin_dir / name).write_text(FAKE.format(log=log))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for k in ("PYMPC_SLURM_TEMPLATE", "PYMPC_MPIEXEC"):
        monkeypatch.delenv(k, raising=False)
    heat = open(HEAT).read()
    shutil.copy(os.path.join(CASES, "slowheat.py"), wd)
    files = {
        "heat.toml": heat,
        "sweep.toml": heat.replace('name = "heat"', 'name = "sweep"') + SWEEP,
        "bad.toml": heat + "\n[run\n",
        "unknown.toml": heat + "\n[slurm]\nfrobnicate = 1\n",
        "nodesx.toml": heat + '\n[slurm]\nnodes = "x"\n',
        "notable.toml": 'slurm = 3\n' + heat,
        "small.toml": heat.replace("shape = [96, 256]", "shape = [4, 4]"),
    }
    for name, text in files.items():
        (wd / name).write_text(text)
    monkeypatch.chdir(wd)
    return wd, log


def listing(d) -> list:
    return sorted(os.path.relpath(os.path.join(r, n), d) for r, ds, fs in os.walk(d) for n in ds + fs)


def pwned(*dirs) -> list:
    """Files a hostile name would have made had a shell run it (``touch PWNED``)."""
    return [p for d in dirs for p in listing(d) if os.path.basename(p) == "PWNED"]


H, S = "heat.toml", "sweep.toml"
#: (id, argv after ``pympc slurm``, what the message must name)
MALFORMED = [
    ("time-abc", ["submit", H, "--time", "abc"], "--time: 'abc'"),
    ("time-four-fields", ["submit", H, "--time", "1:2:3:4"], "--time: '1:2:3:4'"),
    ("time-negative", ["submit", H, "--time", "-5"], "--time: '-5'"),
    ("time-zero", ["submit", H, "--time", "0"], "--time: '0'"),
    ("time-dash", ["submit", H, "--time", "1-"], "--time: '1-'"),
    ("time-newline", ["submit", H, "--time", "5\n#SBATCH --x"], "--time"),
    ("time-no-room-for-warning", ["submit", H, "--time", "1", "--signal-before", "90"], "--signal-before 90"),
    # Slurm warns when N + 30 s are left: a start could be told to stop as it begins
    ("time-warning-due-at-start", ["submit", H, "--time", "2", "--signal-before", "90"], "--signal-before + 60 s"),
    ("time-warning-one-second-short", ["submit", H, "--time", "1:30", "--signal-before", "31"], "after 29 s"),
    ("nodes-negative", ["submit", H, "--nodes", "-1"], "--nodes"),
    ("nodes-zero", ["submit", H, "--nodes", "0"], "--nodes"),
    ("nodes-word", ["submit", H, "--nodes", "two"], "--nodes"),
    ("ntasks-fraction", ["submit", H, "--ntasks-per-node", "1.5"], "--ntasks-per-node"),
    ("cpus-zero", ["submit", H, "--cpus-per-task", "0"], "--cpus-per-task"),
    ("signal-before-zero", ["submit", H, "--signal-before", "0"], "--signal-before"),
    ("unknown-option", ["submit", H, "--frobnicate"], "--frobnicate"),
    ("abbreviated-option", ["submit", H, "--tim", "5"], "--tim"),
    ("flag-with-value", ["submit", H, "--exclusive=yes"], "--exclusive"),
    ("partition-semicolon", ["submit", H, "--partition", "debug;rm -rf x"], "--partition"),
    ("partition-empty", ["submit", H, "--partition", ""], "--partition"),
    ("account-substitution", ["submit", H, "--account", "$(touch PWNED)"], "--account"),
    ("qos-backtick", ["submit", H, "--qos", "normal`touch PWNED`"], "--qos"),
    ("reservation-space", ["submit", H, "--reservation", "my resv"], "--reservation"),
    ("job-name-newline", ["submit", H, "--job-name", "a\n#SBATCH --partition=x"], "--job-name"),
    ("job-name-quote", ["submit", H, "--job-name", 'a"b'], "--job-name"),
    ("dependency-not-an-id", ["submit", H, "--dependency", "afterok:abc"], "--dependency"),
    ("dependency-injection", ["submit", H, "--dependency", "afterok:1;touch X"], "--dependency"),
    ("kill-on-invalid-dep-maybe", ["submit", H, "--kill-on-invalid-dep", "maybe"], "--kill-on-invalid-dep"),
    ("module-space", ["submit", H, "--module", "gcc 12"], "'gcc 12'"),
    ("module-substitution", ["submit", H, "--module", "gcc/$(id)"], "gcc/$(id)"),
    ("launcher-bash", ["submit", H, "--launcher", "bash"], "--launcher"),
    ("srun-mpi-semicolon", ["submit", H, "--srun-mpi", "pmi2;id"], "--srun-mpi"),
    ("mpiexec-unclosed-quote", ["submit", H, "--launcher", "mpiexec", "--mpiexec", "mpiexec 'x"], "--mpiexec"),
    ("mpiexec-newline", ["submit", H, "--launcher", "mpiexec", "--mpiexec", "mpiexec\nid"], "--mpiexec"),
    ("max-requeues-negative", ["submit", H, "--max-requeues", "-1"], "--max-requeues"),
    ("mem-unit", ["submit", H, "--mem", "4X"], "--mem"),
    ("array-throttle-zero", ["submit", S, "--array-throttle", "0"], "--array-throttle"),
    ("array-past-the-sweep", ["submit", S, "--array", "0-9"], "--array: index 9"),
    ("array-throttle-in-array", ["submit", S, "--array", "0-5%2"], "--array"),
    ("array-without-sweep", ["submit", H, "--array", "0-1"], "--array"),
    ("farm-without-sweep", ["submit", H, "--farm"], "--farm"),
    ("farm-and-array", ["submit", S, "--farm", "--array", "0-1"], "--farm"),
    ("ranks-per-task-without-farm", ["submit", S, "--ranks-per-task", "2"], "--ranks-per-task"),
    ("ranks-per-task-over-ranks", ["submit", S, "--farm", "--ranks-per-task", "2"], "--ranks-per-task 2"),
    ("runs-dir-double-quote", ["submit", H, "--runs-dir", 'my"runs'], 'my"runs'),
    ("runs-dir-percent", ["submit", H, "--runs-dir", "runs%j"], "runs%j"),
    ("runs-dir-newline", ["submit", H, "--runs-dir", "runs\n#SBATCH --x"], "#SBATCH --x"),
    ("missing-job-file", ["submit", "nosuch.toml"], "nosuch.toml"),
    ("job-file-is-a-directory", ["submit", "."], ".: cannot read the job file"),
    ("job-file-invalid-toml", ["submit", "bad.toml"], "bad.toml: not valid TOML"),
    ("slurm-table-unknown-key", ["submit", "unknown.toml"], "frobnicate"),
    ("slurm-table-nodes-word", ["submit", "nodesx.toml"], "nodes"),
    ("slurm-not-a-table", ["submit", "notable.toml"], "slurm"),
    ("grid-cannot-be-split", ["submit", "small.toml", "--ntasks-per-node", "64"], "small.toml"),
    ("no-job-argument", ["submit"], "job"),
    ("unknown-sub-command", ["frobnicate"], "frobnicate"),
]
#: cases that are not yet exit 2 with one line (defects reported to the lead), by id
DEFECTS = {}  # case -> why it fails: a strict xfail until the code is fixed


@pytest.mark.parametrize("argv,names", [
    pytest.param(argv, names, id=case,
                 marks=[pytest.mark.xfail(strict=True, reason=DEFECTS[case])] if case in DEFECTS else [])
    for case, argv, names in MALFORMED])
def test_a_malformed_submission_is_exit_2_one_line_and_nothing_submitted(work, capsys, argv, names):
    wd, calls = work
    before = listing(wd)
    code = command.main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert (code, len(lines)) == (2, 1), (code, err)
    assert lines[0].startswith("pympc slurm: error: ") and names in lines[0], lines[0]
    assert out == ""
    assert listing(wd) == before  # no runs/, nothing else
    assert not calls.exists(), calls.read_text()  # no sbatch, scontrol, squeue


def test_there_are_enough_malformed_cases():
    assert len(MALFORMED) >= 25 and len({c for c, _, _ in MALFORMED}) == len(MALFORMED)


def test_the_fakes_see_a_well_formed_submission(work, capsys):
    """The fake sbatch is called by a well-formed submission (so the tests above would see
    one); it refuses the job: exit 2, one line."""
    wd, calls = work
    assert command.main(["submit", "heat.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pympc slurm: error: sbatch refused the job") and len(err.splitlines()) == 1, err
    assert calls.read_text().startswith(f"sbatch --parsable {wd}/runs/heat/slurm.sbatch")


@pytest.mark.parametrize("time,before", [("2", "60"), ("1:30", "30"), ("1:00:00", "3540"), ("1-0", "90")])
def test_a_time_limit_with_room_for_the_warning_is_accepted(work, capsys, time, before):
    """The least --time the warning allows (--signal-before + 60 s) and more: rendered as given."""
    assert command.main(["submit", "heat.toml", "--time", time, "--signal-before", before, "--dry-run"]) == 0
    script = capsys.readouterr().out
    assert f"#SBATCH --time={time}\n" in script and f"#SBATCH --signal=B:USR1@{before}\n" in script, script


def test_a_submission_sbatch_refuses_leaves_nothing(work):
    wd, _ = work
    before = listing(wd)
    assert command.main(["submit", "heat.toml"]) == 2
    assert listing(wd) == before


def test_every_option_of_the_reference_is_an_option_of_submit():
    known = {s for a in command.submit_parser()._actions for s in a.option_strings}
    assert [o.flag for o in options.OPTIONS if o.flag not in known] == []


# -- rendered literally --------------------------------------------------------------------
def settings_block(script: str) -> str:
    start, end = script.index(render.SETTINGS_START), script.index(render.SETTINGS_END)
    return script[start:end]


def evaluate(block: str, names: list, cwd) -> list:
    """The settings block run by bash: each of ``names`` (arrays whole) as it comes back."""
    words = " ".join(f'"${{{n}[@]}}"' for n in names)
    r = subprocess.run(["bash", "-c", f"{block}\nprintf '%s\\0' {words}"], capture_output=True, cwd=cwd,
                       timeout=30)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    return r.stdout.decode().split("\0")[:-1]


ENV_VALUE = "mpiexec -n \"two words\" 'q' $(touch PWNED) `touch PWNED` ; echo x\nsecond line"


def test_hostile_paths_and_environment_are_rendered_literally(work, capsys, monkeypatch):
    """A working directory, job file path and run directory with spaces, quotes, $( ),
    backticks and ; and a job file path and an environment value with a newline too: bash evaluating the
    settings block gets each back as it was and runs nothing; #SBATCH --output holds the
    path in double quotes; bash -n accepts the script."""
    wd, calls = work
    nasty = wd / NASTY
    jobs_dir = nasty / "job\nfiles $(touch PWNED)"  # a newline in the job file's path: only a shell word
    jobs_dir.mkdir(parents=True)
    for f in ("heat.toml", "slowheat.py"):
        shutil.copy(wd / f, jobs_dir)
    monkeypatch.chdir(nasty)
    monkeypatch.setenv("PYMPC_MPIEXEC", ENV_VALUE)
    runs = os.path.join(str(nasty), NASTY)
    assert command.main(["submit", str(jobs_dir / "heat.toml"), "--runs-dir", NASTY, "--dry-run"]) == 0
    script, err = capsys.readouterr()
    assert "dry run" in err
    assert not os.path.exists(runs)  # a dry run writes nothing
    got = evaluate(settings_block(script), ["WORKDIR", "JOB", "RUNS_DIR", "RECORD_DIR", "ENVIRONMENT"], wd)
    assert got[:4] == [str(nasty), str(jobs_dir / "heat.toml"), runs, os.path.join(runs, "heat")]
    assert f"PYMPC_MPIEXEC={ENV_VALUE}" in got[4:], got
    assert f'#SBATCH --output="{runs}/heat/slurm-%j.out"\n' in script
    path = wd.parent / "script.sh"
    path.write_text(script)
    r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert pwned(wd.parent) == []
    # a dry run may ask scontrol for MaxArraySize (the fake fails: Slurm's default); nothing else
    assert not calls.exists() or {line.split()[0] for line in calls.read_text().splitlines()} == {"scontrol"}


def test_a_hostile_mpiexec_command_reaches_the_script_as_its_words(work, capsys):
    """--mpiexec's words (shell-split, as a user writes them) come back word by word."""
    wd, _ = work
    cmd = "mpiexec -genv X '$(touch PWNED)' \"`touch PWNED`\" ';' 'a b'"
    assert command.main(["submit", "heat.toml", "--launcher", "mpiexec", "--mpiexec", cmd, "--dry-run"]) == 0
    script = capsys.readouterr().out
    got = evaluate(settings_block(script), ["LAUNCHER", "MPIEXEC"], wd)
    assert got[0] == "mpiexec" and got[2:] == ["-genv", "X", "$(touch PWNED)", "`touch PWNED`", ";", "a b"], got
    assert os.path.basename(got[1]).startswith("mpiexec")
    assert pwned(wd.parent) == []


def test_the_reference_in_docs_is_the_options_table():
    with open(os.path.join(ROOT, "docs", "slurm.md")) as f:
        assert options.reference() in f.read()


# -- on the real cluster -------------------------------------------------------------------
@pytest.fixture(scope="module")
def login_node(request):
    """The test cluster, used as it is when it is up; else the Slurm tests' own fixture
    (which starts it, or skips saying why, or fails under PYMPC_REQUIRE_SLURM=1)."""
    up = os.geteuid() == 0 and subprocess.run(["bash", os.path.join(ROOT, "slurm", "testcluster.sh"), "status"],
                                              capture_output=True, timeout=60).returncode == 0
    if not up:
        request.getfixturevalue("cluster")


def jobs() -> dict:
    """Every job Slurm knows (any state): ``{id: its batch script}``."""
    r = tc("squeue", "-h", "-r", "-t", "all", "-o", "%i|%o")
    assert r.returncode == 0, r.stderr
    return dict(line.split("|", 1) for line in r.stdout.splitlines())


@pytest.mark.slurm
def test_malformed_submissions_on_the_login_node_submit_nothing(login_node, tmp_path):
    """Through the real login node (a real sbatch on PATH): exit 2, one line, no new job
    from these submissions (other tests' jobs may come and go meanwhile: only jobs whose
    script lies under this test's run directory would be ours), nothing written."""
    runs = tmp_path / "runs"
    cases = [["--time", "abc"], ["--nodes", "-1"], ["--partition", "debug;rm -rf x"],
             ["--account", "$(touch PWNED)"], ["--frobnicate"], ["--dependency", "afterok:1;touch X"]]
    before = jobs()
    for extra in cases + [None]:
        job = os.path.join(tmp_path, "nosuch.toml") if extra is None else HEAT
        r = tc(sys.executable, "-m", "pympc", "slurm", "submit", job, "--runs-dir", runs, *(extra or []), cwd=CASES)
        assert r.returncode == 2 and r.stdout == "", (extra, r.returncode, r.stdout, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("pympc slurm: error: "), r.stderr
    new = {i: s for i, s in jobs().items() if i not in before}
    assert not [i for i, s in new.items() if str(tmp_path) in s], new
    assert not runs.exists() and not os.path.exists(os.path.join(CASES, "PWNED"))


@pytest.mark.slurm
def test_a_job_with_a_hostile_run_directory_runs_there_literally(login_node, tmp_path):
    """sbatch reads the quoted --output path literally, the batch script's settings give
    the ranks the same path: the run directory with the hostile name is done, its log is
    there, and nothing was executed from the name."""
    runs = tmp_path / f"{NASTY} {uuid.uuid4().hex[:6]}"
    r = tc(sys.executable, "-m", "pympc", "slurm", "submit", HEAT, "--runs-dir", runs, "--time", "5", cwd=CASES)
    assert r.returncode == 0 and re.fullmatch(r"\d+\n", r.stdout), r.stderr
    job_id = r.stdout.strip()
    assert wait(job_id, 120) == ["COMPLETED"]
    d = runs / "heat"
    assert os.path.exists(d / f"slurm-{job_id}.out")
    assert [row["verdict"] for row in status(str(d))] == ["done"]
    assert pwned(tmp_path) == [] and not os.path.exists(os.path.join(CASES, "PWNED"))


def test_pympc_slurm_starts_no_mpi_on_the_login_node(tmp_path):
    """A submission's checks and rendering (a dry run, the srun launcher) run without MPI:
    the login node's process never loads mpi4py.MPI."""
    code = ("import sys; from pympc.slurm import command; "
            f"rc = command.main(['submit', {HEAT!r}, '--dry-run', '--runs-dir', {str(tmp_path)!r}]); "
            "print('MPI' if 'mpi4py.MPI' in sys.modules else 'no MPI', rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CASES, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "no MPI 0", (r.stdout[-300:], r.stderr[-500:])
    assert os.listdir(tmp_path) == []


ACCEPT = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "{log}"
echo 4242
"""


def test_a_warning_before_the_ranks_are_ready_still_ends_in_a_checkpoint(work, monkeypatch):
    """Slurm may send the time-limit warning as the job starts (it did, on a loaded machine:
    the USR1 reached the batch script before it launched the ranks, which then ran into the
    limit and were killed). The script holds the signal until the run directory says
    "running" and passes it on then: the ranks checkpoint at their first step and exit 75.
    Run here without Slurm: the rendered script under bash, one rank through mpiexec, the
    USR1 sent as soon as the script has printed its first line (before the ranks exist)."""
    wd, _ = work
    bin_dir = wd.parent / "bin"
    (bin_dir / "sbatch").write_text(ACCEPT.format(log=wd.parent / "calls.log"))
    slow = open(HEAT).read().replace('name = "heat"', 'name = "early"').replace("pause = 0.0", "pause = 0.2")
    slow = slow.replace("steps = 300", "steps = 60").replace("every = 100", "every = 10")
    (wd / "early.toml").write_text(slow)
    monkeypatch.setenv("PYMPC_MPIEXEC", "mpiexec.mpich")
    assert command.main(["submit", "early.toml", "--launcher", "mpiexec", "--ntasks-per-node", "1",
                         "--max-requeues", "0"]) == 0
    run_dir = wd / "runs" / "early"
    env = {**os.environ, "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "PYMPC_PROGRESS": "lines"}
    env.pop("SLURM_RESTART_COUNT", None)
    p = subprocess.Popen(["bash", str(run_dir / "slurm.sbatch")], cwd=wd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        first = p.stdout.readline()
        assert "start 1" in first, first
        time.sleep(0.3)  # the traps are set a few lines later; the ranks need seconds to start
        assert (run_dir / "status").read_text().strip() != "running"
        p.send_signal(signal.SIGUSR1)
        out = first + p.stdout.read()
        code = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert code == 75, out
    assert "SIGUSR1 (the time limit is near)" in out and "checkpointed at step" in out, out
    assert "interrupted after 0 requeues" in out, out
    assert (run_dir / "status").read_text().strip() == "interrupted"
    assert list((run_dir / "checkpoints").glob("*.h5")), out
