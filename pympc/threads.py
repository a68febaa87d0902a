"""Threads per rank: ranks x threads must not oversubscribe the cores.

``import pympc`` applies the default (:func:`apply_default`: one thread per rank, or
``$PYMPC_THREADS``, unless the user set one of the usual variables) before anything of
pympc imports numpy, so BLAS starts its pool with it; :func:`set_threads` also limits
pools already running. This module imports nothing of pympc but :mod:`pympc.env`, and
never MPI: the package face calls it in every process, tools included.
"""

from __future__ import annotations

import os
import sys

from . import env as _env

_THREAD_VARS = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS",
)
# modules whose thread pools may already run (then the variables alone come too late)
_POOLS = ("numpy", "scipy", "numba", "numexpr")


def _default_threads() -> int | None:
    n = _env.value("PYMPC_THREADS")
    if n is not None:
        return n
    if any(v in os.environ for v in _THREAD_VARS):
        return None  # the user chose already: respect it
    return 1


def _set_variables(n: int) -> None:
    numba = sys.modules.get("numba")
    for var in _THREAD_VARS:
        # numba re-reads its variables at each compile and refuses a changed
        # NUMBA_NUM_THREADS once loaded: set its pool through its API instead
        if not (var == "NUMBA_NUM_THREADS" and numba is not None):
            os.environ[var] = str(n)


def set_threads(n: int) -> None:
    """Local. Limit BLAS/OpenMP/numba thread pools of this rank to ``n`` threads.

    pympc does this at import with ``n = 1`` (or ``$PYMPC_THREADS``) unless one of the
    usual variables (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ...) is already set.
    Call it to give a rank more threads when you run fewer ranks than cores.
    """
    from .errors import InputError

    n = int(n)
    if n < 1:
        raise InputError(f"thread count must be >= 1, got {n}")
    _set_variables(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        except Exception:  # pragma: no cover - numba without a threading layer
            pass


def apply_default() -> None:
    """Local. The default of ``import pympc``: :func:`set_threads` with one thread (or
    ``$PYMPC_THREADS``) unless the user chose; when no thread pool is loaded yet, the
    variables alone do it (and ``import pympc`` stays cheap: no threadpoolctl)."""
    n = _default_threads()
    if n is None:
        return
    if any(m in sys.modules for m in _POOLS):
        set_threads(n)
    else:
        _set_variables(int(n))
