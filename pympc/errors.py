"""pympc's exception classes, in a module that imports nothing: the command-line tools,
the report and the environment checks raise them without starting MPI."""


class PympcError(Exception):
    """Local. Base class of pympc's own errors."""


class InputError(PympcError, ValueError):
    """Local. Bad input (a usage error) that every rank sees: raised identically on all
    ranks; :func:`pympc.runtime.check_all`, :func:`~pympc.runtime.agree` and
    :func:`~pympc.runtime.on_root` make it so when only some ranks can see the problem.

    An uncaught InputError (like any exception raised on every rank) is reported once,
    by rank 0, and the job exits with status 1 without an MPI abort.
    """


def brief(value) -> str:
    """Local. ``repr(value)`` cut to 60 characters, for a message about a bad value (a
    TOML integer may have hundreds of digits: the message stays one short line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
