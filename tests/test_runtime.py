"""pympc.runtime: comm handling, collective checks, random streams, logging, threads,
and the no-hang error handling (child MPI jobs)."""

import io
import logging
import os
import sys

import numpy as np
import pytest

import pympc
from pympc.tools.launch import run_mpi

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.mpi
def test_rng_streams_are_per_rank_and_repeatable(comm):
    draws = pympc.rng(7, comm=comm).random(5)
    again = pympc.rng(7, comm=comm).random(5)
    np.testing.assert_array_equal(draws, again)
    # The oracle: child r of SeedSequence(7).spawn(P).
    child = np.random.SeedSequence(7).spawn(comm.Get_size())[comm.Get_rank()]
    np.testing.assert_array_equal(draws, np.random.Generator(np.random.PCG64(child)).random(5))
    everyone = comm.allgather(draws)
    for r, other in enumerate(everyone):
        if r != comm.Get_rank():
            assert not np.array_equal(other, draws)


@pytest.mark.mpi
def test_rng_without_seed_agrees_on_entropy(comm):
    g = pympc.rng(None, comm=comm)
    seeds = comm.allgather(g.bit_generator.seed_seq.entropy)
    assert len(set(seeds)) == 1


@pytest.mark.mpi
def test_check_all_raises_on_every_rank(comm):
    bad = comm.Get_size() - 1
    with pytest.raises(pympc.InputError) as err:
        pympc.check_all(comm.Get_rank() != bad, f"cannot open file on rank {bad}", comm=comm)
    assert f"cannot open file on rank {bad}" in str(err.value)
    pympc.check_all(True, "never raised", comm=comm)  # all good: no error


@pytest.mark.mpi
def test_get_comm(comm):
    from mpi4py import MPI

    assert pympc.get_comm() is pympc.WORLD
    assert pympc.get_comm(comm) is comm
    # usage errors are InputError (they were TypeError and ValueError)
    with pytest.raises(pympc.InputError, match="mpi4py communicator, got str"):
        pympc.get_comm("world")
    with pytest.raises(pympc.InputError, match="COMM_NULL"):
        pympc.get_comm(MPI.COMM_NULL)
    with pytest.raises(pympc.InputError, match="mpi4py communicator"):
        pympc.Decomposition((4,), comm="world")


@pytest.mark.mpi
def test_agree_on_an_input_error_one_rank_raises(comm):
    from pympc.runtime import agree

    rank, size = comm.Get_rank(), comm.Get_size()
    assert agree(lambda: rank * 2, comm) == rank * 2  # no error: each rank's own result

    def check():
        if rank == size - 1:
            raise pympc.InputError(f"block too thin on rank {rank}")
        return rank

    with pytest.raises(pympc.InputError) as err:
        agree(check, comm)
    msgs = comm.allgather(str(err.value))
    assert len(set(msgs)) == 1 and f"block too thin on rank {size - 1}" in msgs[0], msgs
    with pytest.raises(KeyError):  # a bug is not a usage error: not agreed on, not wrapped
        agree(lambda: {}["x"], comm)
    assert agree(lambda: "fine", comm) == "fine"  # (every rank raised above: still in step)


@pytest.mark.mpi
def test_on_root_runs_once_and_shares_its_result_or_error(comm):
    from pympc.runtime import on_root

    calls = []
    got = on_root(lambda: calls.append(1) or {"ranks": comm.Get_size()}, comm)
    assert got == {"ranks": comm.Get_size()}
    assert len(calls) == (1 if comm.Get_rank() == 0 else 0)
    root = comm.Get_size() - 1
    assert on_root(lambda: comm.Get_rank(), comm, root=root) == root

    def bad():
        raise pympc.InputError("cannot create /nowhere/x: directory /nowhere does not exist")

    with pytest.raises(pympc.InputError) as err:
        on_root(bad, comm)
    assert len(set(comm.allgather(str(err.value)))) == 1
    assert "directory /nowhere does not exist" in str(err.value)

    def bug():
        return 1 / 0

    expected = ZeroDivisionError if comm.Get_rank() == 0 else pympc.PympcError
    with pytest.raises(expected) as err:  # every rank raises: none waits
        on_root(bug, comm)
    if comm.Get_rank():
        assert "rank 0 failed: ZeroDivisionError" in str(err.value)


@pytest.mark.mpi
def test_sub_communicator_rng_and_check(comm):
    sub = comm.Split(comm.Get_rank() % 2, comm.Get_rank())
    try:
        a = pympc.rng(3, comm=sub).random()
        child = np.random.SeedSequence(3).spawn(sub.Get_size())[sub.Get_rank()]
        assert a == np.random.Generator(np.random.PCG64(child)).random()
        with pytest.raises(pympc.InputError):
            pympc.check_all(sub.Get_rank() != 0, "x", comm=sub)
    finally:
        sub.Free()


@pytest.mark.mpi
def test_logging_rank0_only_by_default(comm):
    buf = io.StringIO()
    log = pympc.setup_logging(level="INFO", stream=buf, comm=comm)
    log.info("hello")
    log.info("from all", extra={"all_ranks": True})
    text = buf.getvalue()
    rank, size = comm.Get_rank(), comm.Get_size()
    assert (f"[0/{size}] INFO pympc: hello" in text) == (rank == 0)
    assert f"[{rank}/{size}] INFO pympc: from all" in text
    buf2 = io.StringIO()
    log = pympc.setup_logging(level="INFO", all_ranks=True, stream=buf2, comm=comm)
    pympc.get_logger("solver").warning("w")
    assert f"[{rank}/{size}] WARNING pympc.solver: w" in buf2.getvalue()
    pympc.setup_logging(stream=sys.stderr, comm=comm)


def test_threads_default_to_one(tmp_path):
    code = ("import os, pympc; from threadpoolctl import threadpool_info;"
            "print(os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'],"
            " max([p['num_threads'] for p in threadpool_info()] or [1]))")
    from pympc.threads import _THREAD_VARS

    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARS and k != "PYMPC_THREADS"}
    r = run_mpi(1, ["-c", code], timeout=60, env=env)
    assert r.returncode == 0, r.output
    assert r.stdout.split() == ["1", "1", "1"]
    env["PYMPC_THREADS"] = "2"
    r = run_mpi(1, ["-c", code], timeout=60, env=env)
    assert r.stdout.split()[:2] == ["2", "2"], r.output
    env.pop("PYMPC_THREADS")
    env["OMP_NUM_THREADS"] = "3"
    r = run_mpi(1, ["-c", "import os, pympc; print(os.environ['OMP_NUM_THREADS'])"], timeout=60, env=env)
    assert r.stdout.split() == ["3"], r.output


def test_exception_on_one_rank_aborts_the_job_quickly():
    r = run_mpi(4, [os.path.join(HERE, "cases", "rank2_raises.py")], timeout=90)
    assert not r.timed_out, "the job hung"
    assert r.returncode != 0
    assert r.seconds < 30, f"took {r.seconds:.1f} s"
    assert r.output.count("RuntimeError: boom on rank 2 only") == 1, r.output
    assert r.output.count("Traceback (most recent call last)") == 1, r.output
    assert "uncaught exception on rank 2 of 4" in r.output


def test_same_error_on_every_rank_is_reported_once_without_abort():
    r = run_mpi(4, [os.path.join(HERE, "cases", "all_ranks_input_error.py")], timeout=90)
    assert not r.timed_out
    assert r.returncode != 0
    assert r.output.count("grid size must be positive, got -3") == 1, r.output
    assert "pympc: error on all ranks of 4: InputError: grid size must be positive" in r.output
    assert "Traceback" not in r.output  # bad input: a message, not a traceback
    assert "MPI_Abort" not in r.output and "aborting" not in r.output, r.output


def test_numba_imported_before_pympc_still_compiles():
    code = ("import numba, numpy as np, pympc\n"
            "f = numba.njit(lambda x: x + 1)\n"
            "print(f(np.float64(1.0)), numba.get_num_threads())")
    r = run_mpi(1, ["-c", code], timeout=120)
    assert r.returncode == 0, r.output
    assert r.stdout.split() == ["2.0", "1"]
