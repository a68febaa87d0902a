"""The ``pympc`` command: ``pympc info`` (more sub-commands join as the parts land)."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    """Local. Entry point of the ``pympc`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from .._version import __version__

    commands = {
        "info": ("pympc.tools.info", "report the MPI + HDF5 stack and check that it is consistent"),
        "bench": ("pympc.bench", "measure BSP r, g, l and LogP parameters (run under mpiexec)"),
        "report": ("pympc.bsp.report", "report a profile log: BSP costs predicted vs measured"),
    }
    if not argv or argv[0] in ("-h", "--help"):
        print(f"pympc {__version__}\n\nusage: pympc COMMAND [ARGS]\n\ncommands:")
        for name, (_, text) in commands.items():
            print(f"  {name:<8} {text}")
        print("\n'pympc COMMAND --help' describes each command.")
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"pympc {__version__}")
        return 0
    if argv[0] not in commands:
        print(f"pympc: unknown command {argv[0]!r}; try 'pympc --help'", file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(commands[argv[0]][0]).main(argv[1:])
