"""The first SPMD demo against its serial oracle: same seed, same rank count, same draws."""

import os
import re

import numpy as np
import pytest

from pympc.tools.launch import run_mpi

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


HEAT = os.path.join(ROOT, "jobs", "heat2d.py")


def test_heat2d_demo_writes_h5_xdmf_png_and_restarts(tmp_path):
    import h5py

    def run(ranks, out, t_end, *extra):
        r = run_mpi(ranks, [HEAT, "--n", "40", "--t-end", t_end, "--out", str(out), "--output-every", "10",
                            "--checkpoint-every", "15", *extra], timeout=180)
        assert r.returncode == 0, r.output[-3000:]
        return r

    out = tmp_path / "o"
    r = run(3, out, "0.004")
    assert r.stdout.count("heat2d: done") == 1
    for name in ("heat2d.h5", "heat2d.xmf", "heat2d.png"):
        assert (out / name).stat().st_size > 0
    with h5py.File(out / "heat2d.h5") as f:
        steps = sorted(f["steps"])
        final = f[f"steps/{steps[-1]}/u"][...]
        assert f["steps"][steps[-1]].attrs["time"] == pytest.approx(0.004)
    assert steps[0] == "00000000" and len(steps) >= 3
    assert final[0, 5] == 1.0 and final[-1, 5] == 0.0  # the walls
    # half the run on 2 ranks, then a restart from its checkpoint: the same field, bit for bit
    run(2, tmp_path / "p", "0.002")
    run(2, tmp_path / "p", "0.004", "--restart")
    with h5py.File(tmp_path / "p" / "heat2d.h5") as f:
        assert set(steps) <= set(f["steps"])  # plus step 14, where the first half ended
        np.testing.assert_array_equal(f[f"steps/{steps[-1]}/u"][...], final)


def test_heat2d_demo_bad_input(tmp_path):
    r = run_mpi(2, [HEAT, "--n", "2", "--out", str(tmp_path)], timeout=120)
    assert r.returncode != 0 and r.output.count("--n must be >= 3") == 1, r.output


def demo(ranks, out, t_end, *extra, ok=True):
    r = run_mpi(ranks, [HEAT, "--n", "20", "--t-end", t_end, "--out", str(out), "--output-every", "10",
                        "--checkpoint-every", "15", "--progress", "1000", *extra], timeout=180)
    assert (r.returncode == 0) == ok, r.output[-3000:]
    return r


def snapshot(top):
    """{relative path: (bytes, mtime_ns)} of every file under ``top``."""
    out = {}
    for root, _, names in os.walk(top):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, top)] = (f.read(), os.stat(p).st_mtime_ns)
    return out


def test_heat2d_demo_twice_moves_the_first_run_aside(tmp_path):
    """Point 8: the README's main command run twice works, and keeps the first run:
    its files are moved (not deleted, not truncated) to a previous-* directory."""
    out = tmp_path / "o"
    demo(2, out, "0.002")
    first = snapshot(out)
    r = demo(2, out, "0.003")
    assert r.stdout.count("moved the earlier run's files") == 1, r.output
    (prev,) = [p for p in os.listdir(out) if p.startswith("previous-")]
    assert {k: v[0] for k, v in snapshot(out / prev).items()} == {k: v[0] for k, v in first.items()}
    r = demo(1, out, "0.001", "--fresh")  # the explicit form, a third run
    assert r.stdout.count("moved the earlier run's files") == 1, r.output
    assert len([p for p in os.listdir(out) if p.startswith("previous-")]) == 2
    assert {"heat2d.h5", "heat2d.xmf", "heat2d.png", "checkpoints"} <= set(os.listdir(out))


def test_heat2d_demo_restart_without_checkpoint_changes_nothing(tmp_path):
    """Point 8: --restart with no checkpoint stops with one error naming the checkpoint
    directory; the earlier output (h5, xmf, png) keeps its bytes and mtime."""
    out = tmp_path / "o"
    demo(2, out, "0.002")
    os.rename(out / "checkpoints", tmp_path / "elsewhere")
    before = snapshot(out)
    r = demo(2, out, "0.004", "--restart", ok=False)
    assert r.output.count(str(out / "checkpoints")) == 1 and "Traceback" not in r.output, r.output
    assert snapshot(out) == before and not (out / "checkpoints").exists()


def test_heat2d_demo_restart_past_the_end_refuses(tmp_path):
    """Point 13, the README scenario: t_end=0.03, then --restart --t-end 0.005 into the
    same directory says the checkpoint is past the end and overwrites nothing (it used to
    report 0 steps at t=0.03 and overwrite the PNG)."""
    out = tmp_path / "o"
    demo(2, out, "0.03")
    before = snapshot(out)
    r = demo(2, out, "0.005", "--restart", ok=False)
    assert r.output.count("past the requested end") == 1 and "Traceback" not in r.output, r.output
    assert "t_end=0.005" in r.output
    assert snapshot(out) == before
    demo(3, out, "0.04", "--restart")  # a later end continues
    import h5py

    with h5py.File(out / "heat2d.h5") as f:
        last = sorted(f["steps"])[-1]
        assert f["steps"][last].attrs["time"] == pytest.approx(0.04, rel=0.02)
