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
