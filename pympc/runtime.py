"""The SPMD runtime: the world communicator, rank-aware logging, errors that never hang
the job, one thread per rank, and independent random streams per rank.

Importing this module is collective: it initialises MPI and duplicates the world
communicator once for its error handling (as PETSc does at initialisation), and the hang
watchdog's start gathers from every rank. ``import pympc`` imports it in a rank that an
MPI launcher started, so every rank does it in program order; a process without a
launcher imports it on first use (see :mod:`pympc`).
"""

from __future__ import annotations

import logging
from array import array as _array
import sys
import time
import traceback

from . import env as _env

# Threads: the package face (pympc/__init__) applied the default before anything of pympc
# imported numpy (pympc.threads); set_threads is part of the runtime's API.
from .threads import set_threads  # noqa: E402,F401

from mpi4py import MPI  # noqa: E402  (after the thread variables are set)

#: The world communicator: every API's ``comm=`` defaults to it.
WORLD = MPI.COMM_WORLD

# A private duplicate for the error machinery, so that nothing it does can match a
# user's own collective on the world communicator.
_ERRCOMM = WORLD.Dup()

# The hang watchdog marks the collectives (check_all below); its thread starts at the end
# of this module, once the exception hook can report a bad PYMPC_HANG_TIMEOUT.
from . import watchdog as _watchdog
from .errors import InputError, PympcError  # noqa: F401  (pympc.runtime.InputError stays)  # noqa: E402


def get_comm(comm=None):
    """Local. ``comm`` if given, else the world communicator (every ``comm=`` goes here);
    anything but an mpi4py communicator this rank belongs to is an :class:`InputError`."""
    if comm is None:
        return WORLD
    if not isinstance(comm, MPI.Comm):
        raise InputError(f"comm must be an mpi4py communicator, got {type(comm).__name__}")
    if comm == MPI.COMM_NULL:
        raise InputError("comm is MPI.COMM_NULL: this rank is not part of the communicator")
    return comm


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


@_watchdog.watched("pympc.check_all")
def check_all(ok, message: str, comm=None, exc=InputError) -> None:
    """Collective. Raise ``exc(message)`` on every rank if ``ok`` is false on any rank.

    For conditions that only some ranks can see (a file one rank cannot open, a block
    that is too thin on one rank): the ranks agree, so all raise together and none is
    left waiting in the next collective.  The message is the one of the lowest failing
    rank, with its rank number added when the communicator has several ranks.
    """
    comm = get_comm(comm)
    size = comm.Get_size()
    # a buffer Allreduce: it releases the GIL while it waits (mpi4py's pickled allreduce
    # holds it), so the hang watchdog's thread still runs on a rank stuck here
    buf = _array("q", [comm.Get_rank() if not ok else size])
    comm.Allreduce(MPI.IN_PLACE, [buf, MPI.INT64_T], op=MPI.MIN)
    bad = buf[0]
    if bad == size:
        return
    msg = comm.bcast(str(message) if comm.Get_rank() == bad else None, root=bad)
    raise exc(msg if size == 1 else f"{msg} (rank {bad})")


def agree(fn, comm=None):
    """Collective. ``fn()`` on every rank, its result returned; if it raises
    :class:`InputError` on any rank, every rank raises one (the lowest failing rank's
    message, as :func:`check_all` gives it). For checks only some ranks can make, written
    as code that raises: ``agree(lambda: check_block(a), comm)``. Other exceptions are
    bugs, not usage errors: they propagate on their rank only (the exception hook then
    ends the job)."""
    try:
        out, err = fn(), None
    except InputError as e:
        out, err = None, e
    check_all(err is None, str(err), comm)
    return out


@_watchdog.watched("pympc.on_root")
def on_root(fn, comm=None, root: int = 0):
    """Collective. ``fn()`` on ``root`` only (a file system check, reading a small file),
    its result (any picklable value) returned on every rank. If ``fn`` raises
    :class:`InputError` there, every rank raises it with the same message; another
    exception raises on ``root`` as it is and, elsewhere, a :class:`PympcError` naming it,
    so no rank waits for a result that never comes."""
    comm = get_comm(comm)
    if comm.Get_rank() == root:
        try:
            out, err = fn(), None
        except Exception as e:
            out, err = None, e
        failure = None if err is None else (isinstance(err, InputError), type(err).__name__, str(err))
        comm.bcast((failure, out), root=root)
        if err is not None:
            raise err
        return out
    failure, out = comm.bcast(None, root=root)
    if failure is None:
        return out
    usage, kind, message = failure
    raise InputError(message) if usage else PympcError(f"rank {root} failed: {kind}: {message}")


def _all_ranks_failing(grace: float) -> bool:
    """True if every rank reaches the error handler within ``grace`` seconds."""
    req = _ERRCOMM.Ibarrier()
    deadline = time.monotonic() + grace
    while not req.Test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _excepthook(etype, value, tb):
    size, rank = WORLD.Get_size(), WORLD.Get_rank()
    text = "".join(traceback.format_exception(etype, value, tb))
    if size == 1 or issubclass(etype, KeyboardInterrupt):
        sys.__excepthook__(etype, value, tb)
        return
    grace = _env.value("PYMPC_ERROR_GRACE")
    if _all_ranks_failing(grace):
        # Every rank failed: report each distinct error once, from rank 0, exit cleanly.
        summary = f"{etype.__name__}: {value}"
        reports = _ERRCOMM.gather((rank, summary, text), root=0)
        if rank == 0:
            groups: dict[str, list] = {}
            for r, s, t in reports:
                groups.setdefault(s, [r, [], t])[1].append(r)
            for s, (_, ranks, t) in groups.items():
                where = "all ranks" if len(ranks) == size else f"ranks {ranks}"
                if issubclass(etype, InputError) and not _env.value("PYMPC_DEBUG"):
                    # bad input: the message says it all (PYMPC_DEBUG=1 adds the traceback)
                    sys.stderr.write(f"pympc: error on {where} of {size}: {s}\n")
                else:
                    sys.stderr.write(f"pympc: error on {where} of {size}:\n{t}")
            sys.stderr.flush()
        return  # Python exits with status 1; MPI finalizes on every rank
    sys.stderr.write(
        f"pympc: uncaught exception on rank {rank} of {size}; aborting the whole job\n"
        + "".join(f"[rank {rank}] {line}\n" for line in text.rstrip("\n").split("\n"))
    )
    _watchdog.abort(WORLD, 1)


def install_excepthook() -> None:
    """Local. Make an uncaught exception end the whole job instead of hanging it.

    Installed at import unless ``PYMPC_EXCEPTHOOK=0``.  If every rank raises within
    ``$PYMPC_ERROR_GRACE`` seconds (default 3) the error is printed once by rank 0 and
    the job exits with status 1; otherwise the failing rank prints its traceback and
    calls ``MPI_Abort``, which ends every rank.
    """
    sys.excepthook = _excepthook


if _env.value("PYMPC_EXCEPTHOOK"):
    install_excepthook()

if _watchdog.config_error is not None:  # a bad PYMPC_HANG_TIMEOUT: the same on every rank
    raise InputError(_watchdog.config_error)
_watchdog.start()


# ---------------------------------------------------------------------------------------
# Rank-aware logging and printing
# ---------------------------------------------------------------------------------------
class _RankFilter(logging.Filter):
    def __init__(self, comm, all_ranks):
        super().__init__()
        self.comm, self.all_ranks = comm, all_ranks

    def filter(self, record):
        record.rank = self.comm.Get_rank()
        record.size = self.comm.Get_size()
        return self.all_ranks or record.rank == 0 or getattr(record, "all_ranks", False)


def setup_logging(level=None, all_ranks: bool | None = None, comm=None, stream=None):
    """Local. Configure the ``pympc`` logger: a ``[rank/size]`` prefix, rank 0 only.

    ``all_ranks=True`` (or ``$PYMPC_LOG_ALL_RANKS=1``) lets every rank log; a single
    record can pass with ``logger.info(..., extra={"all_ranks": True})``.  ``level``
    defaults to ``$PYMPC_LOG_LEVEL`` or INFO.  Returns the logger.
    """
    comm = get_comm(comm)
    if all_ranks is None:
        all_ranks = _env.value("PYMPC_LOG_ALL_RANKS")
    if level is None:
        level = _env.value("PYMPC_LOG_LEVEL")
    logger = logging.getLogger("pympc")
    for h in list(logger.handlers):
        if getattr(h, "_pympc", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._pympc = True
    handler.addFilter(_RankFilter(comm, all_ranks))
    handler.setFormatter(logging.Formatter("[%(rank)d/%(size)d] %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def get_logger(name: str = "pympc"):
    """Local. A logger under ``pympc`` (configured by :func:`setup_logging` on first use)."""
    root = logging.getLogger("pympc")
    if not any(getattr(h, "_pympc", False) for h in root.handlers):
        setup_logging()
    return logging.getLogger(name if name.startswith("pympc") else f"pympc.{name}")


def print0(*args, comm=None, all_ranks: bool = False, **kwargs) -> None:
    """Local. ``print`` on rank 0 only (every rank with ``all_ranks=True``, prefixed by its rank)."""
    comm = get_comm(comm)
    rank = comm.Get_rank()
    kwargs.setdefault("flush", True)
    if all_ranks:
        print(f"[{rank}/{comm.Get_size()}]", *args, **kwargs)
    elif rank == 0:
        print(*args, **kwargs)


# ---------------------------------------------------------------------------------------
# Random streams
# ---------------------------------------------------------------------------------------
def rng(seed=None, comm=None):
    """Collective. An independent numpy Generator for this rank, from one seed for the job.

    Rank ``r`` of ``P`` gets ``SeedSequence(seed, spawn_key=(r,))``, the r-th child of
    ``SeedSequence(seed).spawn(P)``: streams are independent across ranks and repeatable
    for a given (seed, rank).  A run on a different number of ranks therefore draws
    different numbers; checkpoints store each generator's state (see the I/O guide).
    With ``seed=None`` rank 0 draws fresh entropy and broadcasts it.
    """
    import numpy as np

    comm = get_comm(comm)
    if seed is None:
        seed = comm.bcast(np.random.SeedSequence().entropy if comm.Get_rank() == 0 else None, root=0)
    ss = np.random.SeedSequence(seed, spawn_key=(comm.Get_rank(),))
    return np.random.Generator(np.random.PCG64(ss))
