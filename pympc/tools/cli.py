"""The ``pympc`` command: a table of sub-commands, each a module with a ``main(argv)``.

The dispatcher imports only the sub-command it runs: ``pympc --help``, ``pympc --version``,
``pympc info`` and ``pympc report`` never initialise MPI in their process (they are not
ranks); ``pympc bench`` runs under ``mpiexec`` and is a rank.
"""

from __future__ import annotations

import importlib
import sys

from .._version import __version__

#: sub-command -> (the module whose ``main(argv)`` runs it, or ``"module:function"``, one
#: line of help); a name
#: looked up at run time, so the dispatcher loads nothing of the core
COMMANDS = {
    "info": ("pympc.tools.info", "report the MPI + HDF5 stack and check that it is consistent"),
    "bench": ("pympc.bench", "measure BSP r, g, l and LogP parameters (run under mpiexec)"),
    "report": ("pympc.bsp.report", "report a profile log: BSP costs predicted vs measured"),
    "run": ("pympc.jobs.command:run_main", "run a job file (under mpiexec/srun, or -n RANKS to launch)"),
    "check": ("pympc.jobs.command:check_main", "check a job file without running it (no MPI starts)"),
    "slurm": ("pympc.slurm.command", "submit a job file to Slurm; status, cancel, logs (no MPI starts)"),
}


def main(argv=None) -> int:
    """Local. Entry point of the ``pympc`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"pympc {__version__}\n\nusage: pympc COMMAND [ARGS]\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<8} {text}")
        print("\n'pympc COMMAND --help' describes each command.")
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"pympc {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"pympc: unknown command {argv[0]!r}; try 'pympc --help'", file=sys.stderr)
        return 2
    module, _, function = COMMANDS[argv[0]][0].partition(":")
    return getattr(importlib.import_module(module), function or "main")(argv[1:])
