"""The yielding-wait shim (pympc/tools/yieldwait.c) and when the launcher preloads it.

Serial tests: each launches its own MPI job through pympc's launcher (hard timeout).
tests/cases/yieldwait_calls.py calls every blocking MPI call the shim replaces and checks
the results against numpy on every rank; it runs with the shim and without it.
"""

import os
import sys

import pytest

from pympc import env as _env
from pympc.tools import launch

CASE = os.path.join(os.path.dirname(__file__), "cases", "yieldwait_calls.py")


def test_setup_builds_the_shim():
    lib = launch.yield_wait_library()
    assert lib is not None, "./run setup builds <venv>/lib/pympc-yieldwait.so"
    assert os.path.dirname(lib) == os.path.join(sys.prefix, "lib")


def _run(n, mode):
    env = dict(os.environ, PYMPC_YIELD_WAIT=mode)
    env.pop("LD_PRELOAD", None)
    r = launch.run_mpi(n, [CASE], timeout=120, env=env)
    assert not r.timed_out, r.output
    assert r.returncode == 0, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("OK polls=")]
    assert len(lines) == 1, r.output
    polls = lines[0].split("=", 1)[1].split(",")
    assert len(polls) == n, r.output
    return dict(enumerate(polls))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_every_replaced_call_with_the_shim(n):
    polls = _run(n, "on")
    assert all(p.isdigit() for p in polls.values()), polls  # the shim's symbol is there
    if n > 1:
        # ranks 1.. wait in a barrier while rank 0 sleeps: their waits gave the core away
        assert all(int(polls[k]) > 0 for k in range(1, n)), polls


@pytest.mark.parametrize("n", [1, 3])
def test_every_replaced_call_without_the_shim(n):
    assert set(_run(n, "off").values()) == {"absent"}


@pytest.fixture
def lib(monkeypatch, tmp_path):
    path = str(tmp_path / launch.YIELD_WAIT_LIB)
    monkeypatch.setattr(launch, "yield_wait_library", lambda: path)
    return path


def test_auto_preloads_only_beyond_the_cores(lib):
    cores = launch.usable_cores()
    assert launch.with_yield_wait(cores + 1, {})["LD_PRELOAD"] == lib
    assert "LD_PRELOAD" not in launch.with_yield_wait(cores, {})
    assert "LD_PRELOAD" not in launch.with_yield_wait(1, {"PYMPC_YIELD_WAIT": "auto"})


def test_on_and_off_override_auto_and_keep_other_preloads(lib):
    other = "/opt/tool/libtrace.so"
    on = launch.with_yield_wait(1, {"PYMPC_YIELD_WAIT": "on", "LD_PRELOAD": other})
    assert on["LD_PRELOAD"] == f"{lib} {other}"
    # an inherited shim (a job launched from a rank) is not preloaded twice, nor kept when off
    again = launch.with_yield_wait(1, dict(on))
    assert again["LD_PRELOAD"] == f"{lib} {other}"
    off = launch.with_yield_wait(64, {"PYMPC_YIELD_WAIT": "off", "LD_PRELOAD": f"{lib} {other}"})
    assert off["LD_PRELOAD"] == other
    assert "LD_PRELOAD" not in launch.with_yield_wait(64, {"PYMPC_YIELD_WAIT": "off", "LD_PRELOAD": lib})


def test_on_without_the_shim_is_a_clear_error_and_auto_falls_back(monkeypatch):
    monkeypatch.setattr(launch, "yield_wait_library", lambda: None)
    with pytest.raises(_env.EnvError, match="PYMPC_YIELD_WAIT=on.*not built"):
        launch.with_yield_wait(2, {"PYMPC_YIELD_WAIT": "on"})
    assert "LD_PRELOAD" not in launch.with_yield_wait(launch.usable_cores() + 1, {})


def test_a_bad_value_is_refused():
    with pytest.raises(_env.EnvError, match="PYMPC_YIELD_WAIT='maybe' is not one of auto, on, off"):
        launch.with_yield_wait(2, {"PYMPC_YIELD_WAIT": "maybe"})


def test_the_benchmark_runs_at_a_tiny_size(tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
    try:
        from bench_oversubscribe import main
    finally:
        sys.path.pop(0)
    main(["--n", "24", "--steps", "3", "--ranks", f"1,{launch.usable_cores() + 1}", "--out", str(tmp_path)])
    import json
    out = json.loads((tmp_path / "oversubscribe.json").read_text())
    assert [r["ranks"] for r in out["runs"]] == [1, launch.usable_cores() + 1]
    assert all(r["same_result"] for r in out["runs"]), out
    assert "| busy waits (off) |" in (tmp_path / "oversubscribe.md").read_text()
