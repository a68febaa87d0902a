"""The first SPMD demo against its serial oracle: same seed, same rank count, same draws."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from pympc.tools.launch import clean_env, run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "jobs", "pi_demo.py")


def oracle(samples, seed, size):
    import importlib.util

    spec = importlib.util.spec_from_file_location("pi_demo", DEMO)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    hits = 0
    for r in range(size):
        child = np.random.SeedSequence(seed).spawn(size)[r]
        hits += mod.count_hits(np.random.Generator(np.random.PCG64(child)), mod.split(samples, size, r))
    return 4.0 * hits / samples


@pytest.mark.parametrize("ranks", [1, 3])
def test_pi_demo_matches_serial_oracle(ranks):
    r = run_mpi(ranks, [DEMO, "--samples", "100003", "--seed", "5"], timeout=120)
    assert r.returncode == 0, r.output
    m = re.search(r"pi ~ ([0-9.]+)", r.stdout)
    assert m and r.stdout.count("pi ~") == 1, r.output  # printed once
    assert float(m.group(1)) == pytest.approx(oracle(100003, 5, ranks), abs=5e-7)
    assert abs(float(m.group(1)) - np.pi) < 0.05


def test_pi_demo_rejects_bad_input_once():
    r = run_mpi(2, [DEMO, "--samples", "0"], timeout=120)
    assert r.returncode != 0
    assert r.output.count("--samples must be >= 1") == 1, r.output
    assert "Traceback" not in r.output


LAUNCH = os.path.join(ROOT, "jobs", "launch.py")
DEMO_JOB = os.path.join(ROOT, "jobs", "heat2d.toml")


def snapshot(top):
    """{relative path: (bytes, mtime_ns)} of every file under ``top``."""
    out = {}
    for root, _, names in os.walk(top):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, top)] = (f.read(), os.stat(p).st_mtime_ns)
    return out


def launch(*args, cwd=None, timeout=300):
    """``jobs/launch.py ARGS`` (what ``./run demo`` runs), not a rank."""
    env = clean_env()
    env["PYMPC_PROGRESS"] = "lines"
    return subprocess.run([sys.executable, LAUNCH, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def test_the_demo_is_a_job_file_run_twice_it_keeps_the_first_run(tmp_path):
    """``./run demo``: jobs/heat2d.toml through ``pympc run -n``: HDF5 + XDMF + PNG +
    checkpoints in runs/heat2d; run again, it is done and changes nothing; ``--fresh``
    moves the first run aside (never deletes it)."""
    import h5py

    r = launch("demo", "-n", 2, "--runs-dir", tmp_path / "runs")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    d = tmp_path / "runs" / "heat2d"
    for name in ("output.h5", "output.xmf", "final.png", "job.json", "job.toml", "run.json", "log.txt"):
        assert (d / name).stat().st_size > 0, name
    assert (d / "status").read_text() == "done\n" and os.listdir(d / "checkpoints")
    assert r.stdout.count("heat2d: done:") == 1, r.stdout
    with h5py.File(d / "output.h5") as f:
        steps = sorted(f["steps"])
        final = f[f"steps/{steps[-1]}/u"][...]
        assert f["steps"][steps[-1]].attrs["time"] == pytest.approx(0.02)
    assert steps[0] == "00000000" and len(steps) >= 3
    assert final[0, 5] == 1.0 and final[-1, 5] == 0.0  # the hot wall x = 0, the cold x = 1
    first = snapshot(d)
    r = launch("demo", "-n", 2, "--runs-dir", tmp_path / "runs")
    assert r.returncode == 0 and "already done" in r.stdout and snapshot(d) == first, r.stdout + r.stderr
    r = launch("demo", "-n", 1, "--runs-dir", tmp_path / "runs", "--fresh", "--timeout", 1)
    # a 1 s timeout: the run is stopped by SIGTERM, checkpoints and says interrupted (75)
    assert r.returncode == 75, r.stdout[-2000:] + r.stderr[-2000:]
    (aside,) = [n for n in os.listdir(tmp_path / "runs") if n.startswith("heat2d.old-")]
    assert {k: v[0] for k, v in snapshot(tmp_path / "runs" / aside).items()} == {k: v[0] for k, v in first.items()}
    assert (d / "status").read_text() == "interrupted\n"


def small_demo(tmp_path, t_end):
    """The demo's job file on a 20x20 grid ending at ``t_end``."""
    text = open(DEMO_JOB).read().replace("shape = [256, 256]", "shape = [20, 20]")
    text = re.sub(r"t_end = [0-9.]+", f"t_end = {t_end}", text).replace("every = 500", "every = 10")
    path = tmp_path / "demo.toml"
    path.write_text(text.replace("every = 2000", "every = 15"))
    return path


def run_job(ranks, job, runs, ok=True):
    env = clean_env()
    env["PYMPC_PROGRESS"] = "off"
    r = subprocess.run([sys.executable, "-m", "pympc", "run", "-n", str(ranks), str(job), "--runs-dir", str(runs)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert (r.returncode == 0) == ok, r.stdout[-2000:] + r.stderr[-2000:]
    return r


def test_a_shorter_run_of_a_finished_job_is_refused_and_changes_nothing(tmp_path):
    """The README scenario: t_end=0.03 done, then the job with t_end=0.005 says its
    checkpoint is past the end and changes no file; a later t_end continues the run."""
    import h5py

    runs = tmp_path / "runs"
    run_job(2, small_demo(tmp_path, 0.03), runs)
    before = snapshot(runs)
    r = run_job(2, small_demo(tmp_path, 0.005), runs, ok=False)
    assert r.returncode == 2 and r.stderr.count("past the requested end") == 1, r.stderr
    assert "Traceback" not in r.stdout + r.stderr and snapshot(runs) == before
    run_job(3, small_demo(tmp_path, 0.04), runs)  # a later end continues
    with h5py.File(runs / "heat2d" / "output.h5") as f:
        last = sorted(f["steps"])[-1]
        assert f["steps"][last].attrs["time"] == pytest.approx(0.04, rel=0.02)


def test_a_failed_run_without_checkpoints_starts_again_keeping_its_files(tmp_path):
    """A run that failed before its first checkpoint: running it again starts from step
    0, and the failed attempt's output is moved into previous-*, not deleted."""
    runs = tmp_path / "runs"
    run_job(2, small_demo(tmp_path, 0.002), runs)
    d = runs / "heat2d"
    os.rename(d / "checkpoints", tmp_path / "elsewhere")
    (d / "status").write_text("failed\n")
    old = (d / "output.h5").read_bytes()
    r = run_job(2, small_demo(tmp_path, 0.002), runs)
    (prev,) = [n for n in os.listdir(d) if n.startswith("previous-")]
    assert (d / prev / "output.h5").read_bytes() == old and "starting again from step 0" in r.stdout
    assert (d / "status").read_text() == "done\n"
