"""Every ``PYMPC_*`` environment variable pympc reads: one table, one reader.

No other module reads ``os.environ`` for a ``PYMPC_*`` name (a test checks it); each asks
:func:`value` here, which checks the text and says what is wrong with it in one line.
The table of :data:`VARIABLES` is the one in ``docs/runtime.md`` (a test keeps them equal).
This module imports nothing of pympc and never MPI: the launchers and the command-line
tools read it too.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass


class EnvError(ValueError):
    """Local. A ``PYMPC_*`` variable holds a value its reader refuses; the message names
    the variable, the value and what is accepted."""


@dataclass(frozen=True)
class Variable:
    """Local. One environment variable: its name, the kind of value it takes, its default
    (as text; ``""``: unset) and what it does."""

    name: str
    kind: str          # "int>=1", "seconds", "flag", "choice", "level", "command"
    default: str
    meaning: str
    choices: tuple = ()


VARIABLES = {v.name: v for v in (
    Variable("PYMPC_THREADS", "int>=1", "",
             "BLAS/OpenMP/numba threads per rank (unset: 1, unless OMP_NUM_THREADS or a "
             "similar variable is set)"),
    Variable("PYMPC_HANG_TIMEOUT", "seconds", "300",
             "the hang watchdog's limit: a rank waiting this long in a collective ends the "
             "job with a report (0 turns it off)"),
    Variable("PYMPC_ERROR_GRACE", "seconds", "3",
             "how long an uncaught exception waits for the other ranks to fail too before "
             "it aborts the job"),
    Variable("PYMPC_EXCEPTHOOK", "flag", "1",
             "0 leaves Python's exception hook alone (an error on one rank may then hang "
             "the job)"),
    Variable("PYMPC_DEBUG", "flag", "0",
             "1 adds the traceback to an input error's one-line message"),
    Variable("PYMPC_LOG_LEVEL", "level", "INFO",
             "the level of the pympc logger (DEBUG, INFO, WARNING, ERROR)"),
    Variable("PYMPC_LOG_ALL_RANKS", "flag", "0",
             "1 lets every rank log, not only rank 0"),
    Variable("PYMPC_KERNELS", "choice", "numba",
             "the kernels' backend: numba (compiled) or numpy (the reference)",
             ("numba", "numpy")),
    Variable("PYMPC_STREAMING_STORES", "choice", "auto",
             "the compiled 2-D heat step's stores: on streams them past the cache "
             "(non-temporal), off stores plainly, auto tries plain and streaming loops on "
             "the first steps of each large size and keeps the fastest (docs/kernels.md); "
             "the results are the same",
             ("auto", "on", "off")),
    Variable("PYMPC_PROGRESS", "choice", "",
             "what a solver's run shows on rank 0: bar (a live bar on stderr), lines "
             "(periodic log lines) or off; set, it overrides the run's progress= mode",
             ("bar", "lines", "off")),
    Variable("PYMPC_MPIEXEC", "command", "",
             "the launcher pympc's tools start ranks with, options allowed (unset: the "
             "mpiexec of the MPI library mpi4py loads)"),
    Variable("PYMPC_SLURM_TEMPLATE", "command", "",
             "the batch-script template `pympc slurm submit` renders (unset: slurm/pympc.sbatch "
             "of the checkout pympc runs from)"),
    Variable("PYMPC_IO_DIRECT", "flag", "1",
             "0 writes and reads fields through HDF5's collective MPI-IO transfer instead of "
             "straight into and out of their datasets' storage with pwritev/preadv (the same on "
             "every rank)"),
    Variable("PYMPC_YIELD_WAIT", "choice", "auto",
             "on: the ranks a pympc launcher starts wait for messages by yielding their core "
             "(a PMPI shim, docs/oversubscribe.md); auto: on when the job has more ranks than "
             "this machine's usable cores; off: MPI's own busy waits",
             ("auto", "on", "off")),
    Variable("PYMPC_REQUIRE_SLURM", "flag", "0",
             "1 (set by .ci/run): the Slurm tests fail, instead of skipping, where the test "
             "cluster cannot start (not root, no network namespaces)"),
)}

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def raw(name: str) -> str | None:
    """Local. The text of variable ``name`` (one of :data:`VARIABLES`), or None when it
    is unset or blank."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not a pympc environment variable")
    text = os.environ.get(name)
    return text if text is not None and text.strip() else None


def value(name: str):
    """Local. The value of ``name`` in this process's environment: :func:`parse` of
    its text."""
    return parse(name, raw(name))


def parse(name: str, text: str | None):
    """Local. ``text`` as a value of ``name``, checked and converted: ``int>=1`` -> int
    (None when unset), ``seconds`` -> float >= 0, ``flag`` -> bool, ``choice``/``level``
    -> str (a choice without a default: None when unset), ``command`` -> str or None;
    None or blank text gives the default. A value of the wrong kind raises
    :class:`EnvError`."""
    var = VARIABLES[name]
    text = (text if text is not None and text.strip() else var.default).strip()
    if var.kind == "int>=1":
        if not text:
            return None
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            raise EnvError(f"{name}={text!r} is not a whole number >= 1 ({var.meaning})")
        return n
    if var.kind == "seconds":
        try:
            t = float(text)
        except ValueError:
            t = math.nan
        if not (math.isfinite(t) and t >= 0):
            raise EnvError(f"{name}={text!r} is not a number of seconds >= 0 ({var.meaning}; "
                           f"default {var.default})")
        return t
    if var.kind == "flag":
        if text not in ("0", "1"):
            raise EnvError(f"{name}={text!r} is not 0 or 1 ({var.meaning})")
        return text == "1"
    if var.kind == "choice":
        if not text and not var.default:  # unset, no default: not chosen (the caller decides)
            return None
        if text not in var.choices:
            raise EnvError(f"{name}={text!r} is not one of {', '.join(var.choices)} ({var.meaning})")
        return text
    if var.kind == "level":
        if text.upper() not in _LEVELS:
            raise EnvError(f"{name}={text!r} is not one of {', '.join(_LEVELS)} ({var.meaning})")
        return text.upper()
    return text or None


def table() -> str:
    """Local. The Markdown table of every variable (the one in ``docs/runtime.md``)."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for v in VARIABLES.values():
        rows.append(f"| `{v.name}` | {f'`{v.default}`' if v.default else 'unset'} | {v.meaning} |")
    return "\n".join(rows) + "\n"
