"""pympc: SPMD scientific computing on MPI.

The package face is lazy (PEP 562): ``import pympc`` sets the thread defaults and loads
nothing heavy; ``pympc.Decomposition``, ``pympc.io``, ... import their module on first
access. The runtime's initialisation (``MPI_Init``, the error communicator's duplicate,
the hang watchdog's gather) is collective, so when it runs matters:

* in a rank an MPI launcher started (``mpiexec``, ``mpirun``, ``srun`` with PMI/PMIx:
  :func:`pympc.tools.probe.launched`), ``import pympc`` initialises the runtime at once,
  as every rank imports pympc in the same place of the program; a first pympc call
  inside ``if rank == 0:`` therefore cannot leave the other ranks out of it;
* in a process without a launcher (a singleton run, the command-line tools, the
  launchers' parents) it waits for the first name that needs it: such a process is its
  own whole job, so nothing can wait for it, and a tool never starts MPI.

A rank started by a launcher pympc does not recognise is lazy: import a name
(``from pympc import WORLD``) at the top of the program, on every rank.
"""

from ._version import __version__
from . import threads as _threads

# before anything of pympc imports numpy, so that BLAS starts its pool with the default
_threads.apply_default()

# name -> the module (relative) that defines it
_LAZY = {
    "Decomposition": ".grid",
    "DistArray": ".array", "SUPPORTED_DTYPES": ".array", "reduce_all": ".array",
    "start_halo": ".halo", "update_halo": ".halo",
    "io": ".io",
    "Output": ".io.output", "Checkpointer": ".io.checkpoint",
    "BSP": ".bsp",
    "WORLD": ".runtime", "InputError": ".errors", "PympcError": ".errors",
    "check_all": ".runtime", "get_comm": ".runtime", "get_logger": ".runtime",
    "print0": ".runtime", "rng": ".runtime", "setup_logging": ".runtime",
    "set_threads": ".threads",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    """Local. Import the module behind ``name`` on first access and keep the value: a
    name of the face, or a submodule (``pympc.kernels``, ``pympc.bc``) as if imported.
    Local because a launched rank started the runtime at import already, and a process
    without a launcher is its own whole job."""
    import importlib
    import importlib.util

    module = _LAZY.get(name)
    if module is None:
        if name.startswith("_") or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module = f".{name}"
    mod = importlib.import_module(module, __name__)
    value = mod if module == f".{name}" else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    """Local. The face's names, loaded or not."""
    return sorted(set(globals()) | set(_LAZY))


def _eager() -> None:
    from .tools.probe import launched

    if launched():
        from . import runtime  # noqa: F401  (collective: every rank, in program order)


_eager()
