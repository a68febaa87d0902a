"""Small files that must never be seen half-written or used twice at once: the XDMF
beside a time series, a run directory's records and marker, a farm's ledger header; the
lock a run or a farm holds on its directory. Imports only :mod:`pympc.errors`."""

from __future__ import annotations

import fcntl
import json
import os

from .errors import InputError


def write_atomic(path: str, text: str) -> None:
    """Local. Replace ``path`` with ``text`` atomically (a temporary file beside it,
    flushed to disk, then renamed over it): a reader sees the old or the new file whole."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str, damaged: str):
    """Local. The JSON in ``path``, or None when there is no such file; a file that
    cannot be read or parsed is an :class:`InputError` saying so, then ``damaged`` (what
    to do about it)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read it ({e}): {damaged}")


class DirLock:
    """Local. An exclusive ``flock`` on ``<directory>/.lock`` for as long as a run lasts
    (the directory is created if need be); ``busy`` is the :class:`InputError`'s message
    when another process holds it. The kernel drops the lock when the process dies."""

    def __init__(self, directory: str, busy: str):
        os.makedirs(directory, exist_ok=True)
        self.f = open(os.path.join(directory, ".lock"), "a")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise InputError(busy)

    @staticmethod
    def held(directory: str) -> bool:
        """Local. Whether another process holds the lock of ``directory`` now."""
        try:
            with open(os.path.join(directory, ".lock")) as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return True
                fcntl.flock(f, fcntl.LOCK_UN)
        except FileNotFoundError:
            pass
        return False

    def release(self) -> None:
        """Local. Drop the lock."""
        if not self.f.closed:
            fcntl.flock(self.f, fcntl.LOCK_UN)
            self.f.close()
