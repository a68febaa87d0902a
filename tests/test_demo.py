"""The first SPMD demo against its serial oracle: same seed, same rank count, same draws."""

import os
import re

import numpy as np
import pytest

from pympc.testing import run_mpi

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
