"""A farm's results: written as each task finishes, read back by index, never all held
in memory.

A plain number (``int``, a finite ``float``, ``bool``, ``None``) or a short string travels
as JSON in its ledger record; any other result that pickles to at most :data:`INLINE`
bytes (4 KiB) travels inside its ledger record
(base64); a larger one is written to ``<store>/results/<index>.npy`` (a numpy array) or
``.pkl`` (anything else), atomically, before the record that names it.
"""

from __future__ import annotations

import base64
import math
import os
import pickle

import numpy as np

from ..errors import PympcError
from . import ledger as _ledger

#: results up to this many bytes (pickled) live in the ledger record itself (small, so
#: that the ledger stays small; larger ones get their own file)
INLINE = 4 * 1024


def store_result(store: str, results_dir: str, index: int, value) -> dict:
    """Local. Keep a task's result (a large one as a file in ``results_dir``): the fields
    of its ledger record that say where (paths relative to ``store``)."""
    if isinstance(value, np.ndarray) and value.nbytes > INLINE and value.dtype != object:
        path = os.path.join(results_dir, f"{index:08d}.npy")
        tmp = path + ".tmp.npy"
        with open(tmp, "wb") as f:
            np.save(f, value)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return {"file": os.path.relpath(path, store)}
    if value is None or type(value) in (bool, int, str) and len(str(value)) <= 256 or \
            (type(value) is float and math.isfinite(value)):
        return {"json": value}  # a plain number or short string: readable in the ledger, no pickle
    data = pickle.dumps(value, protocol=4)
    if len(data) <= INLINE:
        return {"value": base64.b64encode(data).decode()}
    path = os.path.join(results_dir, f"{index:08d}.pkl")
    with open(path + ".tmp", "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    return {"file": os.path.relpath(path, store)}


def load_result(store: str, rec: dict):
    """Local. The result a ledger record names (read from the ledger when it is inline)."""
    if rec.get("at") is not None and rec.get("value") is None:
        rec = _ledger.read_at(rec["at"])
    if "json" in rec:
        return rec["json"]
    if "value" in rec:
        return pickle.loads(base64.b64decode(rec["value"]))
    path = os.path.join(store, rec["file"])
    if path.endswith(".npy"):
        return np.load(path)
    with open(path, "rb") as f:
        return pickle.load(f)


class TaskFailed(PympcError):
    """Local. A task raised: its index, the exception's type and message, its traceback."""

    def __init__(self, index, error, message, tb):
        super().__init__(f"task {index} failed: {error}: {message}")
        self.index, self.error, self.message, self.traceback = index, error, message, tb


class Results:
    """Local. The outcome of a farm run (every rank has one): ``status`` (0 every task
    done, 3 some failed, 75 some not run: a deadline or a signal), counts, ``failed``
    (indices), ``quarantined``; ``result(i)``, iteration in index order (a failed task
    raises :class:`TaskFailed`), ``errors()`` for the failed ones. Values are read from the
    ledger and the result files when asked for."""

    def __init__(self, store, ledger_dir, ntasks, summary, seconds):
        self.store, self.ledger_dir, self.ntasks, self.seconds = store, ledger_dir, ntasks, seconds
        self.status = summary["status"]
        self.done, self.failed = summary["done"], summary["failed"]
        self.quarantined, self.not_run = summary["quarantined"], summary["not_run"]
        self._state = None

    def _records(self):
        if self._state is None:
            self._state = _ledger.state(self.ledger_dir, self.ntasks)
        return self._state

    def result(self, i: int):
        """Local. Task ``i``'s result; :class:`TaskFailed` if it failed, ``LookupError`` if
        it has not run."""
        known = self._records().get(i)
        if known is None:
            raise LookupError(f"task {i} has not run (the farm was interrupted): run the farm again")
        rec = known["record"]
        if known["status"] == "failed":
            raise TaskFailed(i, rec["error"], rec["message"], rec["traceback"])
        return load_result(self.store, rec)

    def __iter__(self):
        return (self.result(i) for i in range(self.ntasks))

    def __len__(self):
        return self.ntasks

    def errors(self) -> list:
        """Local. A :class:`TaskFailed` for every failed task, by index."""
        out = []
        for i in self.failed:
            rec = self._records()[i]["record"]
            out.append(TaskFailed(i, rec["error"], rec["message"], rec["traceback"]))
        return out


class Future:
    """Local. A submitted task's outcome (``concurrent.futures`` shape): ``done()``,
    ``result()``, ``exception()``. It is known once the pool has run it
    (:meth:`Pool.wait`, or the end of the ``with`` block)."""

    def __init__(self, pool, index):
        self.pool, self.index, self.results = pool, index, None

    def _outcome(self):
        if self.results is None:  # set by the pool.wait() that ran this future's batch
            raise PympcError("the farm has not run this task yet: call pool.wait() on every rank "
                             "(or leave the with block) first")
        return self.results

    def done(self) -> bool:
        """Local. Whether the task has run (done or failed)."""
        try:
            r = self._outcome()
        except PympcError:
            return False
        return self.index in r._records()

    def result(self):
        """Local. The task's result (raises :class:`TaskFailed` if it failed)."""
        return self._outcome().result(self.index)

    def exception(self):
        """Local. The :class:`TaskFailed` of a failed task, or None."""
        try:
            self.result()
        except TaskFailed as e:
            return e
        return None
