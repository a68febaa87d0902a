"""The Gray-Scott model (solvers.grayscott): the reaction kernel's numba loop and numpy
reference bit for bit, Pearson's initial state on every rank count, rank-count
agreement of an adaptive ARK2 run, bit-identical SBDF2 restart, explicit Euler against
IMEX, and the job file."""

import os

import numpy as np
import pytest
from mpi4py import MPI

import pympc
from solvers import grayscott
from solvers.grayscott import GrayScott
from solvers.loop import field_checksum

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H = 0.01  # a small periodic box: 0.01 x (n0, n1); the square of Pearson's state spans ~3 points


@pytest.mark.parametrize("shape", [(13,), (9, 11), (5, 6, 7)])
def test_reaction_numba_equals_numpy_bit_for_bit(shape):
    """On views of ghosted arrays (not contiguous), 1-3 axes."""
    rng = np.random.default_rng(3)
    big = [rng.random(tuple(n + 2 for n in shape)) for _ in range(2)]
    inner = tuple(slice(1, -1) for _ in shape)
    u, v = big[0][inner], big[1][inner] * 0.5
    out = {b: (np.zeros(shape), np.zeros(shape)) for b in ("numba", "numpy")}
    for b, (ru, rv) in out.items():
        grayscott.reaction(u, v, ru, rv, 0.037, 0.061, backend=b)
    for x, y in zip(out["numba"], out["numpy"]):
        assert np.array_equal(x, y)
    np.testing.assert_allclose(out["numpy"][0], 0.037 * (1 - u) - u * v * v, rtol=1e-15)
    np.testing.assert_allclose(out["numpy"][1], u * v * v - 0.098 * v, rtol=1e-15)


def box(comm, shape=(37, 29)):
    return pympc.Decomposition(shape, comm=comm, spacing=H, periodic=True)


@pytest.mark.mpi
def test_pearson_state_is_the_same_on_every_rank_count(comm):
    with box(comm) as d, box(MPI.COMM_SELF) as d1:
        for which in ("u", "v"):
            a, b = grayscott.pearson(d, which), grayscott.pearson(d1, which)
            assert field_checksum(a) == field_checksum(b)
        u, v = (grayscott.pearson(d1, w).gather(root=None) for w in ("u", "v"))
    inside = v > 0.1
    assert 4 <= inside.sum() <= 64  # the centre square
    assert np.all(np.abs(u[inside] / 0.5 - 1) <= 0.01) and np.all(np.abs(u[~inside] - 1) <= 0.01)
    assert np.all(np.abs(v[inside] / 0.25 - 1) <= 0.01) and np.all(v[~inside] == 0)
    assert np.std(u[~inside]) > 1e-3  # noise, not a constant


def _run(comm, steps, **kw):
    with box(comm) as d:
        s = GrayScott(d, tol=1e-10, **kw)
        s.run(steps=steps, progress=None)
        return {c: s.u[c].gather(root=None) for c in ("u", "v")}, s


@pytest.mark.mpi
def test_rank_counts_agree_within_ten_times_tol(comm):
    """Adaptive ARK2 on 37 x 29 (periodic; no rank count divides both)."""
    # Jacobi: D dt / h^2 ~ 0.1 here, where it converges as fast as multigrid for a tenth
    # of the cost at 3-4 ranks; IMEX's multigrid path across ranks is test_imex's (sbdf2)
    kw = dict(scheme="ark2", adapt=True, rtol=1e-5, atol=1e-5, dt=0.5, mg=False)
    got, s = _run(comm, 10, **kw)
    ref, s1 = _run(MPI.COMM_SELF, 10, **kw)
    for c in ("u", "v"):
        assert np.abs(got[c] - ref[c]).max() <= 10 * 1e-10 * np.abs(ref[c]).max()
    assert s.t == pytest.approx(s1.t, rel=1e-12) and s.adaptive and s.t != 5.0  # the controller chose the steps


@pytest.mark.mpi
@pytest.mark.parametrize("kw", [dict(scheme="sbdf2", dt=2.0, mg=False),
                                dict(scheme="ark2", rtol=1e-4, atol=1e-4, mg=False)])
def test_restart_is_bit_identical(comm, shared_tmp_path, kw):
    """8 steps against 4 + checkpoint + restart + 4 (SBDF2's v^{n-1}, u^{n-1} and
    h_{n-1}; ARK2's step proposal and controller state)."""
    ck = str(shared_tmp_path / "ck")
    with box(comm) as d:
        s = GrayScott(d, **kw)
        s.run(steps=8, progress=None)
        want = [field_checksum(s.u[c]) for c in ("u", "v")]
        GrayScott(d, **kw).run(steps=4, checkpoint=ck, progress=None)
        r = GrayScott(d, **kw)
        r.run(steps=8, checkpoint=ck, restart=True, progress=None)
        assert [field_checksum(r.u[c]) for c in ("u", "v")] == want
        assert r.t == s.t and r.stats == s.stats


def test_explicit_euler_and_imex_agree():
    """t = 10 on 30 x 26: adaptive ARK2 (tolerance 1e-6) and forward Euler at a quarter
    of its limit differ by no more than Euler's own error (estimated by halving its
    step) plus the tolerance scale. One rank (a property of the schemes; the rank counts
    are test_rank_counts_agree_within_ten_times_tol's)."""
    shape, T = (30, 26), 10.0
    with box(MPI.COMM_SELF, shape) as d:
        out = {}
        for key, kw in (("e1", dict(scheme="euler", dt=0.25)), ("e2", dict(scheme="euler", dt=0.125)),
                        ("ark2", dict(scheme="ark2", rtol=1e-6, atol=1e-6, wnormtype="2", mg=False))):
            s = GrayScott(d, tol=1e-10, **kw)
            s.run(t_end=T, progress=None)
            assert s.t == pytest.approx(T, rel=1e-13)
            out[key] = np.concatenate([s.u[c].gather(root=None).ravel() for c in ("u", "v")])
            if key == "ark2":
                steps = s.stats["steps"]
    euler_err = np.abs(out["e1"] - out["e2"]).max()
    assert 1e-6 < euler_err < 1e-2  # the comparison is not vacuous
    assert np.abs(out["ark2"] - out["e2"]).max() <= 2 * euler_err + 1e-5
    assert steps < T / 0.125


def test_bad_input_is_one_clear_error():
    with box(MPI.COMM_SELF, (8, 8)) as d:
        with pytest.raises(pympc.InputError, match="kappa"):
            GrayScott(d, kappa=-1.0)
        with pytest.raises(pympc.InputError, match="stability limit"):
            GrayScott(d, scheme="euler", dt=10.0)
        with pytest.raises(pympc.InputError, match="needs dt"):
            GrayScott(d, scheme="sbdf2")
        with pytest.raises(pympc.InputError, match="wnormtype must be one of 2, infinity, got 'max'"):
            GrayScott(d, wnormtype="max")
        assert GrayScott(d).controller.wnormtype == "infinity"  # the default here (local activity)
        assert GrayScott(d, wnormtype="2").controller.wnormtype == "2"


def test_job_file_is_valid():
    from pympc.jobs import spec

    job = spec.load(os.path.join(ROOT, "jobs", "grayscott.toml"))
    assert job is not None
    assert job.points[0].job["physics"]["wnormtype"] == "infinity"


def test_job_file_with_an_unknown_norm_is_refused(tmp_path):
    from pympc.jobs import spec

    text = open(os.path.join(ROOT, "jobs", "grayscott.toml")).read()
    assert 'wnormtype = "infinity"' in text
    bad = tmp_path / "gs.toml"
    bad.write_text(text.replace('wnormtype = "infinity"', 'wnormtype = "max"'))
    with pytest.raises(pympc.InputError, match=r"physics.wnormtype: wnormtype must be one of \['2', 'infinity'\]"):
        spec.load(str(bad))
