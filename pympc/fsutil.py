"""Writing small files so that a reader never sees half of one: the XDMF beside a time
series, a run directory's status marker and records. Imports nothing of pympc's."""

from __future__ import annotations

import os


def write_atomic(path: str, text: str) -> None:
    """Local. Replace ``path`` with ``text`` atomically (a temporary file beside it,
    flushed to disk, then renamed over it): a reader sees the old or the new file whole."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
