"""pympc's task farm: many independent tasks over the ranks of one MPI job.

``with pympc.farm.Pool(comm) as pool: results = pool.map(f, items)``: dynamic
scheduling with no idle master, tasks on groups of ranks, a durable ledger (a rerun does
only what is not done), failures recorded and the farm going on, a deadline respected,
results streamed to disk. See docs/farm.md.
"""

_LAZY = {"Pool": ".pool", "Results": ".results", "Future": ".results", "TaskFailed": ".results",
         "task_rng": ".context", "current": ".context", "stop_farm": ".context"}


def __getattr__(name):
    """Local. Load the module behind ``name`` on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    """Local. The farm's names."""
    return sorted(list(globals()) + list(_LAZY))
