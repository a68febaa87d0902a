"""Run by tests/test_harness.py under mpiexec -n 4: a test that fails on rank 1 only,
followed by a collective the failing rank never reaches."""
import pytest


@pytest.mark.mpi(min_size=2)
def test_fails_on_rank_one_only(comm):
    assert comm.Get_rank() != 1, "rank 1 disagrees"
    comm.Barrier()


@pytest.mark.mpi(min_size=2)
def test_after_the_failure(comm):
    comm.Barrier()
