"""pympc: SPMD scientific computing on MPI.

``import pympc`` is collective (every rank imports it): it sets one thread per rank,
installs the no-hang error handling and duplicates the world communicator once.
"""

from ._version import __version__
# runtime first: it sets the thread variables before numpy loads its BLAS
from .runtime import (
    WORLD,
    InputError,
    PympcError,
    check_all,
    get_comm,
    get_logger,
    print0,
    rng,
    set_threads,
    setup_logging,
)
from .array import SUPPORTED_DTYPES, DistArray, reduce_all
from .grid import Decomposition
from .halo import HaloExchange, start_halo, update_halo
from . import io  # noqa: E402  (pympc.io.File, read, write)
from .io.checkpoint import Checkpointer
from .io.output import Output
from .bsp import BSP

__all__ = [
    "Decomposition", "DistArray", "SUPPORTED_DTYPES", "HaloExchange", "reduce_all", "start_halo", "update_halo",
    "io", "Output", "Checkpointer", "BSP",
    "__version__", "WORLD", "InputError", "PympcError", "check_all", "get_comm",
    "get_logger", "print0", "rng", "set_threads", "setup_logging",
]
