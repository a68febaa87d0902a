"""Collective assertions for MPI tests: a check one rank makes reaches every rank, and an
error must be the same everywhere. (A failing test at more than one rank aborts the job,
see conftest.py, so every rank must reach the same verdict.)"""

import pytest

import pympc


def on_root(comm, fn):
    """Collective. Rank 0 runs ``fn()`` (serial h5py, VTK or file checks); its verdict
    reaches every rank."""
    err = None
    if comm.Get_rank() == 0:
        try:
            fn()
        except AssertionError as e:
            err = str(e) or "assertion failed"
    err = comm.bcast(err, root=0)
    assert err is None, err


def same_error(comm, fn, match=None, *words):
    """Collective. ``fn()`` raises one :class:`pympc.InputError` with the same message on
    every rank, matching the regular expression ``match`` (if given) and containing each
    of ``words``; returns the message."""
    with pytest.raises(pympc.InputError, match=match) as err:
        fn()
    msg = str(err.value)
    msgs = comm.allgather(msg)
    assert len(set(msgs)) == 1, msgs
    for w in words:
        assert w in msg, (w, msg)
    return msg
