"""The BSP subsystem: supersteps and their wire protocol (:mod:`pympc.bsp.core`), the
machine model (:mod:`pympc.bsp.model`) and the cost report (:mod:`pympc.bsp.report`).

The face is lazy (PEP 562): ``pympc.bsp.BSP`` imports the core (and so MPI) on first
access, so that ``pympc report`` (:mod:`pympc.bsp.report`), which runs in a process that
is not a rank, loads this package without starting MPI.
"""

_LAZY = {"BSP": ".core", "Registration": ".core", "MachineParams": ".model"}
_MODULES = ("core", "model", "report")

__all__ = list(_LAZY)


def __getattr__(name: str):
    """Local. Import the module behind ``name`` (a name of the face, or a submodule) on
    first access."""
    import importlib

    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    """Local. The face's names, loaded or not."""
    return sorted(set(globals()) | set(_LAZY))
