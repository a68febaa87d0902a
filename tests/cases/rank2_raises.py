"""A 4-rank job in which only rank 2 raises: the others wait in a barrier."""
import pympc  # noqa: F401  (installs the no-hang excepthook)
from mpi4py import MPI

comm = MPI.COMM_WORLD
if comm.Get_rank() == 2:
    raise RuntimeError("boom on rank 2 only")
comm.Barrier()  # would wait forever without pympc's handler
