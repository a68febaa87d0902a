"""Shared pieces of pympc's benchmarks: timing to the slowest rank, versions."""

from __future__ import annotations

import json
import platform
import time

import numpy as np
from mpi4py import MPI


def timed(fn, steps, reps, comm=MPI.COMM_WORLD, warmup=2, setup=None):
    """Collective. Seconds per call of ``fn``: (min, median, max) over ``reps`` batches of
    ``steps`` calls, each batch timed from a barrier to the slowest rank's end.
    ``setup()`` runs before each batch, outside the timed region (e.g. removing a file)."""
    for _ in range(warmup):  # plans built, kernels compiled, pages touched
        if setup:
            setup()
        fn()
    out = []
    for _ in range(reps):
        if setup:
            setup()
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        out.append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX) / steps)
    return {"min": min(out), "median": float(np.median(out)), "max": max(out)}


def versions() -> dict:
    """Local. Library versions for the results file."""
    import mpi4py

    import pympc

    v = {"python": platform.python_version(), "numpy": np.__version__, "mpi4py": mpi4py.__version__,
         "pympc": pympc.__version__, "mpi": " ".join(MPI.Get_library_version().split("\n")[0].split())}
    for mod in ("numba", "h5py"):
        try:
            v[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return v


def emit(res: dict, path=None) -> None:
    """Local. Write the results as JSON to ``path``, or print them (call on rank 0)."""
    text = json.dumps(res, indent=1)
    if path:
        with open(path, "w") as f:
            f.write(text)
    else:
        print(text)
