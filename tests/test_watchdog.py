"""The hang watchdog (PYMPC_HANG_TIMEOUT): a collective that only some ranks call ends
the job with one report naming the waiting rank and call, with every rank's stack."""

import os
import shutil
import sys
import textwrap

import pytest

from pympc import watchdog
from pympc.tools.launch import run_mpi

# Rank 0 calls one collective alone; the other ranks either compute (sleep), wait in a
# different pympc collective (all ranks fire at about the same time: still one report),
# or finish the program.
MISUSE = textwrap.dedent("""
    import sys, time
    import pympc

    misuse, others = sys.argv[1], sys.argv[2]
    rank = pympc.WORLD.Get_rank()
    with pympc.Decomposition((13, 7)) as d, pympc.BSP() as bsp:
        a = pympc.DistArray.from_function(d, lambda i, j: i + j, coords=False)
        if rank == 0:
            if misuse == "reduce":
                a.sum()  # MISUSE on rank 0 only
            elif misuse == "halo":
                pympc.update_halo(a)  # MISUSE on rank 0 only
            elif misuse == "sync":
                bsp.sync()  # MISUSE on rank 0 only
            print("rank 0 passed the misuse", flush=True)
        elif others == "sleep":
            time.sleep(600)  # OTHERS compute
        elif others == "collective":
            if misuse == "reduce":
                pympc.update_halo(a)  # OTHERS wait elsewhere
            else:
                pympc.check_all(True, "unused")  # OTHERS wait elsewhere
        if others == "exit":
            sys.exit(0)
        time.sleep(600)  # AFTER the misuse
""")

CALL = {"reduce": "pympc.reduce_all", "halo": "pympc.update_halo", "sync": "BSP.sync"}


def run(tmp_path, n, args, limit, script=MISUSE, timeout=90):
    path = tmp_path / "prog.py"
    path.write_text(script)
    env = dict(os.environ, PYMPC_HANG_TIMEOUT=str(limit))
    return run_mpi(n, [str(path)] + list(args), timeout=timeout, env=env, cwd=str(tmp_path))


@pytest.mark.parametrize("n,others", [(2, "sleep"), (3, "collective")])
@pytest.mark.parametrize("misuse", ["reduce", "halo", "sync"])
def test_collective_on_one_rank_is_reported_once_and_aborts(tmp_path, misuse, n, others):
    r = run(tmp_path, n, [misuse, others], limit=3)
    out = r.output
    assert not r.timed_out, "the job hung until the hard timeout:\n" + out[-3000:]
    assert r.returncode != 0, out[-3000:]
    assert "rank 0 passed the misuse" not in out
    assert out.count("pympc: hang watchdog (PYMPC_HANG_TIMEOUT=3)") == 1, out  # once
    head = next(line for line in out.splitlines() if line.startswith("pympc: hang watchdog"))
    assert f"rank 0 of {n} has waited" in head and f"in {CALL[misuse]}" in head, head
    # the waiting rank, its call and the user's line that called it
    assert out.count("[rank 0] waiting") == 1, out
    assert f"in {CALL[misuse]}:" in out
    assert "MISUSE on rank 0 only" in "".join(line for line in out.splitlines()
                                              if line.startswith("[rank 0] ")), out
    # every other rank's stack, once
    for rank in range(1, n):
        tagged = [line for line in out.splitlines() if line.startswith(f"[rank {rank}] ")]
        assert tagged, out
        assert sum(" waiting " in t or " not in a pympc " in t for t in tagged) == 1, out
        assert any('prog.py", line' in t for t in tagged), out
        if others == "sleep":
            assert any("OTHERS compute" in t for t in tagged), out
    if others == "sleep":
        assert "[rank 1] not in a pympc collective" in out


def test_ranks_that_finished_are_listed_as_silent(tmp_path):
    r = run(tmp_path, 2, ["reduce", "exit"], limit=3)
    assert not r.timed_out and r.returncode != 0, r.output[-3000:]
    assert r.output.count("pympc: hang watchdog") == 1, r.output
    assert "rank 0 of 2 has waited" in r.output and "in pympc.reduce_all" in r.output
    assert "[rank 1] " in r.output, r.output


GIL_HOLDER = textwrap.dedent("""
    import ctypes
    import pympc

    with pympc.Decomposition((8,)) as d:
        a = pympc.DistArray(d)
        if pympc.WORLD.Get_rank() == 0:
            a.sum()
        else:  # compiled code that keeps the GIL: this rank's watchdog thread cannot run
            ctypes.PyDLL(None).sleep(600)
""")


def test_a_rank_whose_gil_is_held_is_read_with_py_spy(tmp_path):
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    assert exe, "py-spy is missing: the test extra installs it (./run setup)"
    r = run(tmp_path, 2, [], limit=3, script=GIL_HOLDER)
    out = r.output
    assert not r.timed_out and r.returncode != 0, out[-3000:]
    assert out.count("pympc: hang watchdog") == 1, out
    assert "rank 0 of 2 has waited" in out and "in pympc.reduce_all" in out, out
    assert "[rank 1] no answer" in out and "py-spy dump of its process" in out, out
    assert "[rank 1]     <module> (prog.py:10)" in out, out


LONG_WAIT = textwrap.dedent("""
    import time
    import pympc

    with pympc.Decomposition((8,)) as d:
        a = pympc.DistArray(d).fill(1.0)
        if pympc.WORLD.Get_rank() == 1:
            time.sleep(4)  # a legitimately long wait for rank 0
        total = a.sum()
        pympc.print0(f"total {total}")
""")


@pytest.mark.parametrize("limit,finishes", [("0", True), ("60", True), ("1", False)])
def test_off_or_generous_limit_lets_a_long_wait_finish(tmp_path, limit, finishes):
    r = run(tmp_path, 2, [], limit=limit, script=LONG_WAIT)
    assert not r.timed_out, r.output[-3000:]
    if finishes:
        assert r.returncode == 0, r.output[-3000:]
        assert "total 8.0" in r.stdout and "hang watchdog" not in r.output, r.output
    else:  # the same program with a limit below its wait: the limit is really applied
        assert r.returncode != 0 and "total" not in r.stdout, r.output[-3000:]
        assert r.output.count("rank 0 of 2 has waited") == 1, r.output


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "5s"])
def test_bad_value_is_one_clear_error(value):
    env = dict(os.environ, PYMPC_HANG_TIMEOUT=value)
    r = run_mpi(1, ["-c", "import pympc; print('imported')"], timeout=60, env=env)
    assert r.returncode != 0 and "imported" not in r.stdout, r.output
    assert f"PYMPC_HANG_TIMEOUT={value!r} is not a number of seconds >= 0" in r.output, r.output


def test_bad_value_is_reported_once_by_every_rank_agreeing():
    env = dict(os.environ, PYMPC_HANG_TIMEOUT="ten")
    r = run_mpi(2, ["-c", "import pympc; print('imported')"], timeout=60, env=env)
    assert not r.timed_out and r.returncode != 0, r.output
    assert r.output.count("PYMPC_HANG_TIMEOUT='ten' is not a number of seconds") == 1, r.output
    assert "pympc: error on all ranks of 2: InputError" in r.output, r.output


def test_parse_timeout():
    assert watchdog.parse_timeout(None) == (300.0, None)
    assert watchdog.parse_timeout("") == (300.0, None)
    assert watchdog.parse_timeout(" 2.5 ") == (2.5, None)
    assert watchdog.parse_timeout("0") == (0.0, None)
    for bad in ("x", "-0.5", "nan", "inf", "1e999"):
        t, err = watchdog.parse_timeout(bad)
        assert t == 0.0 and err and "PYMPC_HANG_TIMEOUT" in err


def test_below_thread_multiple_it_stays_off_and_says_so_once(tmp_path):
    # the thread calls MPI, which only MPI_THREAD_MULTIPLE allows: a program that asks
    # mpi4py for less gets no watchdog (and a line saying so), not undefined behaviour
    script = textwrap.dedent("""
        import mpi4py
        mpi4py.rc.thread_level = "funneled"
        import pympc
        from pympc import watchdog
        with pympc.Decomposition((8, 8)) as d:
            total = pympc.DistArray(d).fill(1.0).sum()
        off = pympc.WORLD.allgather(watchdog._thread is None)
        pympc.print0("off on every rank:", all(off), total)
    """)
    r = run(tmp_path, 2, [], limit=3, script=script)
    assert r.returncode == 0, r.output[-3000:]
    assert "off on every rank: True 64.0" in r.stdout, r.output
    assert r.stderr.count("hang watchdog off") == 1, r.stderr


def test_one_rank_pays_nothing():
    # one rank cannot wait for another: the collectives are not even wrapped
    import pympc
    from pympc import bsp, halo

    assert not watchdog.active
    for fn in (pympc.reduce_all, pympc.update_halo, halo._HaloExchange.wait, bsp.BSP.sync,
               pympc.check_all, pympc.DistArray.gather):
        assert not hasattr(fn, "__wrapped__"), fn


@pytest.mark.mpi
def test_watchdog_runs_on_every_rank_of_an_mpi_run():
    import threading

    import pympc

    size = pympc.WORLD.Get_size()
    on = size > 1 and os.environ.get("PYMPC_HANG_TIMEOUT", "300") != "0"
    assert watchdog.active == on
    names = [t.name for t in threading.enumerate()]
    assert names.count("pympc-hang-watchdog") == (1 if on else 0)
    assert hasattr(pympc.reduce_all, "__wrapped__") == on
    assert pympc.check_all(True, "unused") is None
