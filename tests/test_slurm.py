"""``pympc slurm`` on a real Slurm cluster of two nodes (slurm/testcluster.sh): Debian's
slurmctld and two slurmd, each node in its own network, UTS, IPC and mount namespace, so
that an MPI job across them talks TCP over the veths.

These are serial tests (not ranks). They need root to start the cluster; without it they
skip and say why, and with ``PYMPC_REQUIRE_SLURM=1`` (``.ci/run``) that is a failure.
Slurm's client commands run "on the login node" (the controller's namespace) through
``testcluster.sh exec``. A session that started the cluster stops it at the end.

Order matters, and is the file's: the tests that need the cluster to themselves (the
network counters, the array's throttle) run first; then the long jobs are submitted at
once (the time-limit job, a sweep with a failing point) and the quick tests run while they
do; their checks come last. Each poll of Slurm has a deadline: no test waits forever.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from pympc.gridplan import choose_dims
from pympc.tools.probe import clean_env

pytestmark = pytest.mark.slurm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "slurm", "testcluster.sh")
CASES = os.path.join(ROOT, "tests", "cases", "slurm")
HEAT = os.path.join(CASES, "heat.toml")
ENDED = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE")


# -- the cluster: the `cluster` fixture is conftest.py's ----------------------------------------
def tc(*argv, cwd=None, timeout=60, env=None):
    """A command on the cluster's login node."""
    e = clean_env(env)
    e.setdefault("PYMPC_PROGRESS", "lines")
    return subprocess.run(["bash", CLUSTER, "exec", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=e)


def slurm(*args, cwd=CASES, env=None, timeout=60):
    """``pympc slurm ARGS`` on the login node (from tests/cases/slurm, where the test solver is)."""
    return tc(sys.executable, "-m", "pympc", "slurm", *args, cwd=cwd, env=env, timeout=timeout)


def submit(*args, env=None) -> str:
    r = slurm("submit", *args, env=env)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"\d+\n", r.stdout), r.stdout
    return r.stdout.strip()


def states(job_id: str) -> list:
    r = tc("squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%T")
    return r.stdout.split()


def wait(job_id: str, timeout: float, count: int = 1) -> list:
    """Poll squeue until the job (each of its ``count`` array elements) has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = states(job_id)
        if len(s) >= count and all(x in ENDED for x in s):
            return s
        time.sleep(1)
    raise AssertionError(f"Slurm job {job_id} not ended after {timeout} s: {states(job_id)}; "
                         f"{tc('scontrol', 'show', 'job', job_id).stdout[-1500:]}")


def status(target: str, **kw) -> list:
    r = slurm("status", target, "--json", **kw)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def attempts(d) -> list:
    with open(os.path.join(d, "run.json")) as f:
        return json.load(f)["attempts"]


def last_field(d):
    import h5py

    with h5py.File(os.path.join(d, "output.h5"), "r") as f:
        name = sorted(f["steps"])[-1]
        return int(name), f["steps"][name]["u"][...]


def rx_bytes(node: int) -> int:
    out = subprocess.run(["ip", "-n", f"pympc-n{node}", "-j", "-s", "link", "show", "eth0"], capture_output=True,
                         text=True, check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["bytes"])


def job_file(tmp_path, name: str, extra: str = "", **physics) -> str:
    """tests/cases/slurm/heat.toml renamed, with other physics and more keys."""
    text = open(HEAT).read().replace('name = "heat"', f'name = "{name}"')
    for k, v in physics.items():
        text = re.sub(rf"(?m)^{k} = .*$", f"{k} = {v}", text) if re.search(rf"(?m)^{k} = ", text) else \
            text.replace("[physics]\n", f"[physics]\n{k} = {v}\n")
    path = os.path.join(tmp_path, f"{name}.toml")
    with open(path, "w") as f:
        f.write(text + extra)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The heat job run here with ``mpiexec -n 2``, no Slurm: the field every Slurm run
    must equal bit for bit."""
    runs = tmp_path_factory.mktemp("local")
    e = clean_env()
    e["PYMPC_PROGRESS"] = "off"
    r = subprocess.run([sys.executable, "-m", "pympc", "run", "-n", "2", HEAT, "--runs-dir", str(runs)], cwd=CASES,
                       capture_output=True, text=True, timeout=300, env=e)
    assert r.returncode == 0, r.stderr
    step, u = last_field(runs / "heat")
    assert step == 300
    return u


# -- the cluster to ourselves --------------------------------------------------------------
def test_the_cluster_has_two_idle_nodes(cluster):
    """Both nodes idle, each with every core of the machine (the throttle test below
    counts on more free cores than its %2)."""
    r = tc("sinfo", "-h", "-N", "-o", "%N %T %c")
    cores = str(os.cpu_count())
    assert r.stdout.split() == ["node1", "idle", cores, "node2", "idle", cores], r.stdout


@pytest.mark.parametrize("launcher", ["srun", "mpiexec"])
def test_two_ranks_run_on_two_nodes_over_tcp_and_equal_a_local_run(cluster, reference, launcher, tmp_path):
    """One rank per node (the attempt's record names each rank's host); node 2's interface
    receives at least the ghost layers of every step (so the ranks talked TCP, not shared
    memory); the field equals the local run's bit for bit."""
    before = rx_bytes(2)
    job_id = submit(HEAT, "--nodes", "2", "--ntasks-per-node", "1", "--launcher", launcher,
                    "--runs-dir", tmp_path, "--time", "5")
    assert wait(job_id, 120) == ["COMPLETED"]
    received = rx_bytes(2) - before
    d = tmp_path / "heat"
    record = attempts(d)[-1]
    assert record["hosts"] == ["node1", "node2"], record["hosts"]
    assert record["slurm"]["job_id"] == job_id and record["slurm"]["restart_count"] == "0"
    # the ghost layer the rank on node 2 receives every step: the cut of the process grid
    # pympc chose for the 96 x 256 grid (a column of 96 at (1, 2), a row of 256 at (2, 1))
    dims = choose_dims(2, (96, 256), (0, 0))
    halo = 300 * (96 if dims == (1, 2) else 256) * 8
    print(f"\n[{launcher}: node2's eth0 received {received} bytes; the halo layers alone are {halo}]")
    assert received >= halo, f"node2 received {received} bytes, less than the halo traffic ({halo})"
    step, u = last_field(d)
    assert step == 300 and u.tobytes() == reference.tobytes()
    rows = status(str(d))
    assert [(r["state"], r["verdict"], r["source"]) for r in rows] == [("COMPLETED", "done", "sacct -c")]
    assert open(d / "slurm.sbatch").read().count(f"LAUNCHER={launcher}\n") == 1


def test_an_array_of_six_runs_two_at_a_time_and_all_complete(cluster, tmp_path):
    """A sweep of 6 points is an array (point k = element k) throttled to %2: with four free
    cores, never more than two points run at once."""
    path = job_file(tmp_path, "six", '\n[sweep]\n"physics.alpha" = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]\n', pause=0.01)
    job_id = submit(path, "--runs-dir", tmp_path, "--array-throttle", "2")
    wait(job_id, 180, count=6)
    rows = status(job_id)
    assert [(r["point"], r["slurm_job"], r["state"], r["verdict"]) for r in rows] == \
        [(k, f"{job_id}_{k}", "COMPLETED", "done") for k in range(6)]
    spans = []
    for k in range(6):
        a = attempts(tmp_path / "six" / str(k))[-1]
        spans.append((_seconds(a["start"]), _seconds(a["end"])))
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    print(f"\n[array %2: at most {most} points at once; {max(e for _, e in spans) - min(s for s, _ in spans):.0f} s]")
    assert most <= 2, f"{most} points ran at once under %2: {spans}"
    text = slurm("status", tmp_path / "six").stdout
    assert "6 point(s): 6 done; Slurm: 6 COMPLETED" in text, text


def _seconds(stamp: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(stamp).timestamp()


# -- long jobs in the background -------------------------------------------------------------
@pytest.fixture(scope="module")
def background(cluster, tmp_path_factory):
    """Submitted at once, checked at the end: the time-limit job and a packed sweep with a
    failing point."""
    runs = tmp_path_factory.mktemp("background")
    # slurmctld warns once at most N + 30 s are left, looking every 30 s, and warns every start
    # again (a requeue clears its "warned" flag): with --time 2 and @45 each start is warned
    # 45-75 s in. The first run's 300 steps take over 105 s (0.35 s each, slowheat.py), so it
    # is warned; the resumed run (no pause) is done in seconds, long before its own warning.
    # (--time 1 with @30, used before, warned each start at once: the resumed run was warned as
    # it began and interrupted again, request after request.)
    limit = job_file(runs, "limit", pause=0.35)
    seven = job_file(runs, "seven", '\n[sweep]\n"physics.fail_at" = [-1, -1, -1, 5, -1, -1, -1]\n')
    return {
        "runs": runs, "t0": time.time(),
        "limit": submit(limit, "--nodes", "2", "--time", "2", "--signal-before", "45", "--runs-dir", runs),
        "seven": submit(seven, "--runs-dir", runs),
    }


def test_a_dependency_waits_and_an_impossible_one_is_cancelled(background, tmp_path):
    """afterok on a job that fails: never satisfiable, so --kill-on-invalid-dep=yes (the
    default) cancels the dependent job; afterany on it runs once it ends."""
    failing = submit(job_file(tmp_path, "boom", fail_at=3), "--runs-dir", tmp_path)
    never = submit(job_file(tmp_path, "never"), "--runs-dir", tmp_path, "--dependency", f"afterok:{failing}")
    after = submit(job_file(tmp_path, "after"), "--runs-dir", tmp_path / "b", "--dependency", f"afterany:{failing}")
    assert wait(failing, 120) == ["FAILED"]
    assert wait(never, 60) == ["CANCELLED"]
    assert wait(after, 120) == ["COMPLETED"]
    assert [r["verdict"] for r in status(str(tmp_path / "never"))][0].startswith("never ran: CANCELLED")
    boom = status(str(tmp_path / "boom"))[0]
    assert boom["state"] == "FAILED" and boom["marker"] == "failed" and boom["verdict"] == "failed"
    assert len(attempts(tmp_path / "boom")) == 1  # a failed run (exit 1) is not retried
    assert "requeueing" not in _read(tmp_path / "boom" / f"slurm-{failing}.out")


def test_cancel_stops_a_running_job_and_logs_print_it(background, tmp_path):
    path = job_file(tmp_path, "cancelme", pause=0.2)
    job_id = submit(path, "--runs-dir", tmp_path)
    d = tmp_path / "cancelme"
    until_running(d)
    time.sleep(2)
    r = slurm("cancel", d)
    assert r.returncode == 0 and f"cancelled Slurm job {job_id}" in r.stdout, r.stderr
    assert wait(job_id, 60) == ["CANCELLED"]
    row = status(str(d))[0]
    # the ranks got SIGTERM, checkpointed and stopped; a cancelled job is not requeued
    assert row["state"] == "CANCELLED" and row["marker"] == "interrupted", row
    assert row["verdict"].startswith("interrupted: CANCELLED")
    logs = slurm("logs", d)
    assert logs.returncode == 0 and f"==> {d}/slurm-{job_id}.out <==" in logs.stdout
    assert "no requeue" in logs.stdout and "requeueing" not in logs.stdout


def test_no_requeue_past_max_requeues_and_a_resubmission_resumes(background, reference, tmp_path):
    """The warning sent by hand (scancel --batch --signal=USR1, what Slurm sends before the
    limit): with --max-requeues 0 the interrupted run is not requeued (the batch script
    exits 75: FAILED, marker interrupted); submitting the job again resumes it from its
    checkpoint, bit-identical to an uninterrupted run."""
    path = job_file(tmp_path, "heat", pause=0.1)
    job_id = submit(path, "--nodes", "2", "--max-requeues", "0", "--runs-dir", tmp_path)
    d = tmp_path / "heat"
    until_running(d)
    time.sleep(2)  # the ranks are stepping (30 s of steps in all)
    r = tc("scancel", "--batch", "--signal=USR1", job_id)
    assert r.returncode == 0, (r.stderr, states(job_id))
    assert wait(job_id, 90) == ["FAILED"]
    row = status(str(d))[0]
    assert row["marker"] == "interrupted" and row["verdict"].startswith("interrupted: FAILED"), row
    assert "not requeued" in row["verdict"]
    assert "after 0 requeues (--max-requeues 0)" in _read(d / f"slurm-{job_id}.out")
    again = submit(path, "--nodes", "2", "--runs-dir", tmp_path)
    assert again != job_id and wait(again, 120) == ["COMPLETED"]
    tries = attempts(d)
    assert [a["exit"] for a in tries] == ["interrupted", "done"] and tries[1]["steps"][0] == tries[0]["steps"][1]
    step, u = last_field(d)
    assert step == 300 and u.tobytes() == reference.tobytes()


def until_running(d, timeout=180) -> None:
    """Wait until a run directory says ``running`` (its job may first wait for cores)."""
    deadline = time.monotonic() + timeout
    while _read(os.path.join(d, "status")).strip() != "running":
        assert time.monotonic() < deadline, f"{d} not running after {timeout} s: {_read(os.path.join(d, 'status'))}"
        time.sleep(0.5)


def _read(path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def evidence(job_id: str, d) -> str:
    """What a failed Slurm job left: its batch log, the run's attempts and log, Slurm's view."""
    parts = [f"--- {name}\n{_read(os.path.join(d, name))[-3000:]}" for name in
             (f"slurm-{job_id}.out", "run.json", "log.txt", "status")]
    parts.append(f"--- scontrol show job\n{tc('scontrol', 'show', 'job', job_id).stdout[-1500:]}")
    return "\n".join(parts)


def test_an_array_element_requeues_alone_under_mpiexec(background, tmp_path):
    """The warning reaches one element of an array (launched by MPICH's mpiexec, which
    passes SIGUSR1 on to its rank): that element checkpoints and requeues by its own
    name; the other element runs on untouched (one attempt, never requeued)."""
    path = job_file(tmp_path, "pair", '\n[sweep]\n"physics.alpha" = [0.8, 1.0]\n', pause=0.05)
    job_id = submit(path, "--launcher", "mpiexec", "--runs-dir", tmp_path)
    d = tmp_path / "pair"
    until_running(d / "0")
    until_running(d / "1")
    time.sleep(2)
    r = tc("scancel", "--batch", "--signal=USR1", f"{job_id}_1")
    assert r.returncode == 0, r.stderr
    assert wait(job_id, 180, count=2) == ["COMPLETED", "COMPLETED"]
    first, second = attempts(d / "0"), attempts(d / "1")
    assert [(a["exit"], a["slurm"]["restart_count"]) for a in first] == [("done", "0")], first
    assert [(a["exit"], a["slurm"]["restart_count"]) for a in second] == [("interrupted", "0"), ("done", "1")]
    assert "requeueing (restart 1" in _read(d / f"slurm-{job_id}_1.out")
    assert "requeueing" not in _read(d / f"slurm-{job_id}_0.out")


def test_an_array_subset_then_the_rest_in_one_job_then_a_farm(background, tmp_path):
    """--array picks points (one per element); status with no target lists the runs;
    logs --point finds an element's log; --no-array runs the rest in one job (the done
    points are skipped); --farm --fresh runs them all again side by side in one job."""
    path = job_file(tmp_path, "four", '\n[sweep]\n"physics.alpha" = [0.6, 0.7, 0.8, 0.9]\n')
    job_id = submit(path, "--array", "1,3", "--runs-dir", tmp_path)
    d = tmp_path / "four"
    wait(job_id, 180, count=2)
    assert [(r["point"], r["slurm_job"], r["verdict"]) for r in status(str(d))] == \
        [(1, f"{job_id}_1", "done"), (3, f"{job_id}_3", "done")]
    assert [_read(d / str(k) / "status").strip() for k in range(4)] == ["queued", "done", "queued", "done"]
    listing = slurm("status", "--runs-dir", tmp_path)
    assert f"{d}: job {job_id}: 2 point(s): 2 done" in listing.stdout, listing.stdout + listing.stderr
    logs = slurm("logs", d, "--point", "3")
    assert logs.stdout.startswith(f"==> {d}/slurm-{job_id}_3.out <==") and "exit 0" in logs.stdout
    rest = submit(path, "--no-array", "--runs-dir", tmp_path)
    assert wait(rest, 180) == ["COMPLETED"]
    assert [r["verdict"] for r in status(str(d))] == ["done"] * 4
    assert [len(attempts(d / str(k))) for k in range(4)] == [1, 1, 1, 1]  # 1 and 3 were not run again
    farm = submit(path, "--farm", "--fresh", "--nodes", "2", "--runs-dir", tmp_path)
    assert wait(farm, 180) == ["COMPLETED"]
    assert [_read(d / str(k) / "status").strip() for k in range(4)] == ["done"] * 4
    assert [n for n in os.listdir(tmp_path) if n.startswith("four.old-")], "--fresh moved the old sweep aside"
    assert {attempts(d / str(k))[0]["hosts"][0] for k in range(4)} <= {"node1", "node2"}


def test_fresh_is_refused_while_submitted_cancel_takes_a_point_and_a_refused_fresh_is_undone(background,
                                                                                               tmp_path):
    path = job_file(tmp_path, "duo", '\n[sweep]\n"physics.alpha" = [0.8, 1.0]\n', pause=0.2)
    job_id = submit(path, "--array-throttle", "1", "--runs-dir", tmp_path)
    d = tmp_path / "duo"
    twice = slurm("submit", path, "--fresh", "--runs-dir", tmp_path)
    assert twice.returncode == 2 and f"already submitted as Slurm job {job_id}" in twice.stderr, twice.stderr
    until_running(d / "0")
    one = slurm("cancel", d / "1")
    assert one.returncode == 0 and f"cancelled Slurm job {job_id}_1" in one.stdout, one.stderr
    rest = slurm("cancel", job_id)
    assert rest.returncode == 0, rest.stderr
    assert wait(job_id, 90, count=2) == ["CANCELLED", "CANCELLED"]
    assert [_read(d / k / "status").strip() for k in ("0", "1")] == ["interrupted", "queued"]
    before = open(d / "slurm.json").read()
    refused = slurm("submit", path, "--fresh", "--partition", "nosuch", "--runs-dir", tmp_path)
    assert refused.returncode == 2 and "sbatch refused the job" in refused.stderr, refused.stderr
    assert open(d / "slurm.json").read() == before and sorted(os.listdir(tmp_path)) == ["duo", "duo.toml"]


def test_the_template_runs_by_hand(background, reference, tmp_path):
    """slurm/pympc.sbatch as a user would use it without pympc slurm: copied, its settings
    lines and its log path edited, and given to sbatch as it is."""
    import shlex

    text = open(os.path.join(ROOT, "slurm", "pympc.sbatch")).read()
    for name, value in (("PYTHON", sys.executable), ("WORKDIR", CASES), ("JOB", HEAT), ("RUNS_DIR", tmp_path),
                        ("RECORD_DIR", tmp_path / "heat")):
        text, n = re.subn(rf"(?m)^{name}=\S*", lambda m: f"{name}={shlex.quote(str(value))}", text)
        assert n == 1, name
    text = text.replace("#SBATCH --output=slurm-%j.out", f"#SBATCH --output={tmp_path}/by-hand-%j.out")
    script = tmp_path / "by-hand.sbatch"
    script.write_text(text)
    r = tc("sbatch", "--parsable", script, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    assert wait(job_id, 180) == ["COMPLETED"]
    assert _read(tmp_path / "heat" / "status").strip() == "done"
    step, u = last_field(tmp_path / "heat")
    assert step == 300 and u.tobytes() == reference.tobytes()
    assert "exit 0" in _read(tmp_path / f"by-hand-{job_id}.out")


def test_a_failing_point_of_a_packed_array_shows_failed_with_its_log(background):
    """MaxArraySize is 6 on the test cluster: 7 points are packed two per element (4
    elements); point 3 fails, so element 1 (points 2 and 3) is FAILED."""
    job_id, runs = background["seven"], background["runs"]
    wait(job_id, 240, count=4)
    rows = status(job_id)
    assert [(r["point"], r["slurm_job"]) for r in rows] == [(k, f"{job_id}_{k // 2}") for k in range(7)]
    for r in rows:
        want = ("FAILED", "failed") if r["point"] == 3 else ("FAILED" if r["point"] == 2 else "COMPLETED", "done")
        assert (r["state"], r["verdict"]) == want, r
    text = slurm("status", runs / "seven").stdout
    assert f"{job_id}_1: FAILED; log {runs}/seven/slurm-{job_id}_1.out" in text, text
    assert os.path.exists(runs / "seven" / f"slurm-{job_id}_1.out")


def test_a_job_past_its_time_limit_checkpoints_requeues_and_resumes_bit_identical(background, reference):
    """--time=2 with the warning 45 s before: the batch script passes SIGUSR1 on, the ranks
    checkpoint, the script requeues the job (same id, SLURM_RESTART_COUNT=1), the second
    run resumes from the checkpoint and finishes; the field equals the uninterrupted run's."""
    job_id, d = background["limit"], background["runs"] / "limit"
    ended = wait(job_id, 300)
    assert ended == ["COMPLETED"], evidence(job_id, d)
    print(f"\n[time limit: submitted to completed in {time.time() - background['t0']:.0f} s]")
    tries = attempts(d)
    assert [a["exit"] for a in tries] == ["interrupted", "done"], tries
    assert [a["slurm"]["restart_count"] for a in tries] == ["0", "1"]
    assert {a["slurm"]["job_id"] for a in tries} == {job_id}
    assert tries[1]["steps"][0] == tries[0]["steps"][1] > 0  # resumed where it stopped
    log = open(d / f"slurm-{job_id}.out").read()
    assert "SLURM_RESTART_COUNT=0" in log and "SLURM_RESTART_COUNT=1" in log
    assert "SIGUSR1 (the time limit is near)" in log and "requeueing (restart 1 of at most 10)" in log
    step, u = last_field(d)
    assert step == 300 and u.tobytes() == reference.tobytes()
    assert status(str(d))[0]["verdict"] == "done"
