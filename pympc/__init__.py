"""pympc: SPMD scientific computing on MPI.

``import pympc`` is collective (every rank imports it): it sets one thread per rank,
installs the no-hang error handling and duplicates the world communicator once.
"""

from ._version import __version__
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

__all__ = [
    "__version__", "WORLD", "InputError", "PympcError", "check_all", "get_comm",
    "get_logger", "print0", "rng", "set_threads", "setup_logging",
]
