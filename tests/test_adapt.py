"""The adaptive step-size controller (solvers.adapt): PETSc TSADAPTBASIC's choice against
values worked out by hand, its weighted RMS norm against numpy, its final-step rule."""

import json
import math

import numpy as np
import pytest

import pympc
from solvers.adapt import Controller, final_step, wrms_norm


def test_choose_accepts_and_grows_by_the_error_power():
    c = Controller()
    # err = 0.5, order 2: 0.9 * 0.5**(-1/2) = 1.2727922...
    assert c.choose(0.1, 0.5, 2) == (True, pytest.approx(0.1 * 0.9 * math.sqrt(2), rel=1e-15))
    # err = 1 exactly is accepted; the factor is the safety alone
    assert c.choose(2.0, 1.0, 3) == (True, pytest.approx(1.8, rel=1e-15))


def test_choose_rejects_and_retries_more_cautiously():
    c = Controller()
    ok, h = c.choose(0.1, 8.0, 3)          # 0.9 * 8**(-1/3) = 0.45
    assert not ok and h == pytest.approx(0.045, rel=1e-14)
    ok, h = c.choose(0.1, 8.0, 3, retry=True)  # reject_safety: 0.45 * 0.5
    assert not ok and h == pytest.approx(0.0225, rel=1e-14)


def test_choose_clips_the_factor_and_the_step():
    c = Controller()
    assert c.choose(1.0, 0.0, 2) == (True, 10.0)           # err 0: the largest growth
    assert c.choose(1.0, 1e-12, 2) == (True, 10.0)         # 0.9e6 clipped to 10
    assert c.choose(1.0, 1e12, 2) == (False, pytest.approx(0.1))  # clipped to 0.1
    c = Controller(dt_max=0.5, clip=(0.1, 2.0))
    assert c.choose(1.0, 1e-12, 2) == (True, 0.5)
    assert c.choose(0.1, 1e-12, 2) == (True, pytest.approx(0.2))


def test_choose_at_dt_min_accepts_anyway():
    c = Controller(dt_min=1e-3)
    assert c.choose(1e-3, 50.0, 2)[0]
    assert not c.choose(2e-3, 50.0, 2)[0]
    assert c.choose(2e-3, 1e6, 2)[1] == 1e-3  # never below dt_min


def test_a_step_that_blew_up_is_rejected_and_cut_most():
    for err in (math.nan, math.inf):
        assert Controller().choose(0.5, err, 2) == (False, pytest.approx(0.05))
    assert Controller(dt_min=0.5).choose(0.5, math.nan, 2)[0]  # at dt_min: accepted, as any error


def test_wnormtype_is_checked():
    assert Controller(wnormtype="infinity").settings()["wnormtype"] == "infinity"
    with pytest.raises(pympc.InputError, match="wnormtype must be one of 2, infinity"):
        Controller.make({"wnormtype": "max"})


def test_choose_without_estimate_keeps_the_step():
    assert Controller().choose(0.25, None, 2) == (True, 0.25)
    assert Controller().choose(0.25, -1.0, 2) == (True, 0.25)


def test_failed_solve_and_increase_delay():
    c = Controller(increase_delay=2)
    assert c.failed(0.4) == pytest.approx(0.1)
    assert c.state() == {"just_decreased": 2}
    assert c.choose(0.1, 1e-6, 2) == (True, 0.1)  # may not grow for 2 choices
    saved = json.loads(json.dumps(c.state()))
    d = Controller(increase_delay=2)
    d.set_state(saved)
    assert d.choose(0.1, 1e-6, 2) == c.choose(0.1, 1e-6, 2) == (True, 0.1)
    assert c.choose(0.1, 1e-6, 2) == (True, pytest.approx(1.0))


def test_settings_and_bad_input():
    c = Controller.make({"atol": 1e-6}, clip=(0.1, 2.0))
    assert c.atol == 1e-6 and c.clip == (0.1, 2.0) and c.rtol == 1e-4
    assert Controller.make({"clip": [0.2, 3]}, clip=(0.1, 2.0)).clip == (0.2, 3.0)
    assert json.loads(json.dumps(c.settings())) == c.settings()
    assert Controller.make(c) == c and Controller.make(c) is not c
    for bad in ({"atl": 1}, {"safety": -1}, {"clip": (2, 3)}, {"max_reject": 1.5}, {"atol": 0, "rtol": 0},
                {"scale_solve_failed": 1.0}, "fast"):
        with pytest.raises(pympc.InputError, match="adapt"):
            Controller.make(bad)


@pytest.mark.parametrize("t,h,end,expected", [
    (0.0, 0.3, 1.0, 0.3),       # plenty left
    (0.8, 0.3, 1.0, 0.2),       # overshoots: the remainder
    (0.5, 0.3, 1.0, 0.25),      # two steps do not fit: half the remainder
    (0.5, 0.496, 1.0, 0.5),     # within 1%: the remainder
    (0.5, 0.5, 1.0, 0.5),       # lands on it
    (1.0, 0.5, 1.0, 0.5),       # already there: unchanged
])
def test_final_step(t, h, end, expected):
    assert final_step(t, h, end) == pytest.approx(expected, rel=1e-15)


@pytest.mark.mpi
@pytest.mark.parametrize("shape,periodic", [((13, 10), (False, False)), ((9, 7, 5), (True, False, False))])
def test_wrms_norm_against_numpy(comm, shape, periodic):
    rng = np.random.default_rng(3)
    gu, gy = rng.standard_normal(shape), rng.standard_normal(shape)
    gy[0] = gu[0]  # some points with no error
    atol, rtol = 1e-3, 1e-2
    tol = atol + rtol * np.maximum(np.abs(gu), np.abs(gy))
    want = math.sqrt(np.mean(((gy - gu) / tol) ** 2))
    with pympc.Decomposition(shape, comm=comm, periodic=periodic) as d:
        root = comm.Get_rank() == 0
        u = pympc.DistArray.from_global(d, gu if root else None)
        y = pympc.DistArray.from_global(d, gy if root else None)
        assert wrms_norm(u, y, atol, rtol) == pytest.approx(want, rel=1e-12)
        e = y.empty_like()
        e.owned[...] = y.owned - u.owned
        assert wrms_norm(u, y, atol, rtol, error=e) == pytest.approx(want, rel=1e-12)
        # only relative tolerance: points where u = y = 0 do not count
        z = u.empty_like().fill(0.0)
        assert wrms_norm(z, z, 0.0, 1.0) == 0.0
        g = d.ghost
        inner = tuple(slice(g + (d.lo[a] == 0), g + d.local_shape[a]) for a in range(d.ndim))
        sub = tuple(slice(1, None) for _ in shape)
        want_inner = math.sqrt(np.mean(((gy - gu)[sub] / tol[sub]) ** 2))
        assert wrms_norm(u, y, atol, rtol, region=inner) == pytest.approx(want_inner, rel=1e-12)
        # the max norm (PETSc's -ts_adapt_wnormtype infinity): exactly numpy's max, wherever it lies
        assert wrms_norm(u, y, atol, rtol, norm="infinity") == np.max(np.abs(gy - gu) / tol)
        assert wrms_norm(u, y, atol, rtol, error=e, norm="infinity") == np.max(np.abs(gy - gu) / tol)
        assert wrms_norm(u, y, atol, rtol, region=inner, norm="infinity") == \
            np.max(np.abs(gy - gu)[sub] / tol[sub])
        assert wrms_norm(z, z, 0.0, 1.0, norm="infinity") == 0.0
        # one bad point on one rank: the max sees it on every rank (NaN as infinity)
        spot = tuple(s // 2 for s in shape)
        for bad, seen in ((1e9, 1e9 / atol), (np.nan, math.inf)):
            gb = gy.copy()
            gb[spot] = gu[spot] + bad
            b = pympc.DistArray.from_global(d, gb if root else None)
            assert wrms_norm(u, b, atol, 0.0, norm="infinity") == pytest.approx(seen, rel=1e-12)
            if bad != bad:  # NaN: the RMS is infinite too (not the RMS of the other points)
                assert wrms_norm(u, b, atol, rtol) == math.inf
                assert wrms_norm(b, u, atol, rtol, region=inner, norm="infinity") == math.inf
        with pytest.raises(pympc.InputError, match="norm must be one of 2, infinity"):
            wrms_norm(u, y, atol, rtol, norm="max")
