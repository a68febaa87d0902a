"""Checkpoint/restart: all fields plus solver state in one HDF5 file, written atomically.

A checkpoint is written to ``<prefix>_<step>.h5.tmp``, flushed and closed collectively;
then rank 0 fsyncs it, renames it to ``<prefix>_<step>.h5`` and fsyncs the directory.
A file with the final name is therefore always complete, and the previous checkpoint
stays valid until the new one is: a job killed at any moment (even by SIGKILL) leaves a
loadable checkpoint. The last ``keep`` checkpoints are kept (default 2); stray ``.tmp``
files from a killed job are ignored and removed at the next save.

Fields are stored as global arrays, so a run can restart on any number of ranks. An
explicit solver without global reductions (the heat equation) then continues
bit-identically; with reductions, results agree to round-off (sums are taken in another
order).

**Random streams.** Each rank's generator state is saved. On the same number of ranks
every rank gets its own stream back exactly. On a different number of ranks there is no
one-to-one map of streams: :meth:`Checkpointer.load` returns ``rngs=None`` for that case
and ``rng_seed``, and :func:`restart_rng` gives rank ``r`` the stream
``SeedSequence(seed, spawn_key=(step, r))``: deterministic for a given restart, but not
the numbers an uninterrupted run would have drawn.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import time

import numpy as np

from .array import DistArray
from .grid import Decomposition
from .io import FORMAT_VERSION, File
from .runtime import InputError, get_comm

CHECKPOINT_KIND = "pympc-checkpoint"


def _fsync_path(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_saves = [0]


def _test_pause(phase):
    """Tests kill jobs at exact phases: ``PYMPC_CHECKPOINT_PAUSE=phase:n`` makes the
    n-th save of this process announce the phase on stderr and wait to be killed."""
    want, _, nth = os.environ.get("PYMPC_CHECKPOINT_PAUSE", "").partition(":")
    if want == phase and _saves[0] == int(nth or 1):
        sys.stderr.write(f"pympc-checkpoint-phase {phase}\n")
        sys.stderr.flush()
        time.sleep(600)


class Checkpointer:
    """Collective. Checkpoints of a run in ``directory`` named ``<prefix>_<step>.h5``.

    ``save`` is collective and atomic; ``load``/``latest`` find the newest complete one.
    """

    def __init__(self, directory, prefix="checkpoint", keep=2, comm=None):
        self.comm = get_comm(comm)
        self.directory = str(directory)
        self.prefix = prefix
        if int(keep) < 1:
            raise InputError(f"keep must be >= 1, got {keep}")
        self.keep = int(keep)
        err = None
        if self.comm.Get_rank() == 0:
            try:
                os.makedirs(self.directory, exist_ok=True)
            except OSError as e:
                err = f"cannot create checkpoint directory {self.directory}: {e}"
        err = self.comm.bcast(err, root=0)
        if err:
            raise InputError(err)

    def path(self, step: int) -> str:
        """Local. The file name of the checkpoint of ``step``."""
        return os.path.join(self.directory, f"{self.prefix}_{int(step):08d}.h5")

    def steps(self) -> list:
        """Collective. Steps of the complete checkpoints present, oldest first."""
        found = None
        if self.comm.Get_rank() == 0:
            pat = re.compile(re.escape(self.prefix) + r"_(\d+)\.h5$")
            found = sorted(int(m.group(1)) for f in os.listdir(self.directory)
                           if (m := pat.match(f)))
        return self.comm.bcast(found, root=0)

    def save(self, step: int, fields: dict, state: dict | None = None, rngs=None) -> str:
        """Collective. Write a checkpoint of ``fields`` ({name: DistArray}) and ``state``
        (JSON-able: time, dt, parameters, ...) at ``step``; ``rngs`` is this rank's list
        of numpy Generators. Returns the checkpoint's path once it is complete."""
        comm = self.comm
        _saves[0] += 1
        final = self.path(step)
        tmp = final + ".tmp"
        if comm.Get_rank() == 0:
            for stray in glob.glob(os.path.join(glob.escape(self.directory), f"{self.prefix}_*.h5.tmp")):
                os.unlink(stray)
        comm.Barrier()
        first = next(iter(fields.values()))
        rng_states = comm.allgather([g.bit_generator.state for g in (rngs or [])])
        with File(tmp, "w", comm=comm, decomp=first.decomp,
                  params=(state or {}).get("params")) as f:
            f.set_attrs("/", {"kind": CHECKPOINT_KIND, "step": int(step),
                              "state": json.dumps(state or {}, sort_keys=True, default=_json_default),
                              "rng_states": json.dumps(rng_states, default=_json_default),
                              "fields": json.dumps(sorted(fields))})
            f.require_group("/fields")
            for i, (name, a) in enumerate(sorted(fields.items())):
                if i == 1 and comm.Get_rank() == 0:
                    _test_pause("write")  # one field written, the next not yet
                f.write(f"/fields/{name}", a)
            f.flush()
        if comm.Get_rank() == 0:
            _fsync_path(tmp)
            _test_pause("rename")
            os.replace(tmp, final)
            _fsync_path(self.directory, directory=True)
            for old in self.steps_local()[:-self.keep]:
                os.unlink(self.path(old))
        comm.Barrier()
        return final

    def steps_local(self) -> list:
        """Local. Like :meth:`steps`, read by this rank alone."""
        pat = re.compile(re.escape(self.prefix) + r"_(\d+)\.h5$")
        return sorted(int(m.group(1)) for f in os.listdir(self.directory) if (m := pat.match(f)))

    def latest(self):
        """Collective. The newest complete checkpoint's step, or None."""
        s = self.steps()
        return s[-1] if s else None

    def load(self, decomp: Decomposition, step: int | None = None, dtype=None):
        """Collective. Read checkpoint ``step`` (default the newest) onto ``decomp``.

        Returns a :class:`Restart` with ``step``, ``fields`` ({name: DistArray}),
        ``state`` (the dict given to save), ``rngs`` (this rank's Generators, or None
        when the rank count changed) and ``saved_ranks``.
        """
        if step is None:
            step = self.latest()
            if step is None:
                raise InputError(f"no checkpoint named {self.prefix}_*.h5 in {self.directory}")
        path = self.path(step)
        with File(path, "r", comm=self.comm) as f:
            attrs = f.attrs("/")
            if attrs.get("kind") != CHECKPOINT_KIND:
                raise InputError(f"{path} is not a pympc checkpoint")
            if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
                raise InputError(f"{path} has checkpoint format version {attrs.get('format_version')}; "
                                 f"this pympc reads version {FORMAT_VERSION}")
            names = json.loads(attrs["fields"])
            fields = {n: f.read(f"/fields/{n}", decomp, dtype) for n in names}
            state = json.loads(attrs["state"])
            saved = json.loads(attrs["rng_states"])
        rngs = None
        if len(saved) == self.comm.Get_size():
            rngs = []
            for st in saved[self.comm.Get_rank()]:
                g = np.random.Generator(getattr(np.random, st["bit_generator"])())
                g.bit_generator.state = st
                rngs.append(g)
        return Restart(int(step), fields, state, rngs, len(saved))


class Restart:
    """What :meth:`Checkpointer.load` returns."""

    def __init__(self, step, fields, state, rngs, saved_ranks):
        self.step, self.fields, self.state, self.rngs, self.saved_ranks = step, fields, state, rngs, saved_ranks


def restart_rng(seed, step: int, comm=None):
    """Collective. A fresh per-rank Generator after a restart on a different rank count:
    rank ``r`` gets ``SeedSequence(seed, spawn_key=(step, r))``."""
    comm = get_comm(comm)
    comm.Barrier()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(int(step), comm.Get_rank()))))


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


