"""Checkpoint/restart: all fields plus solver state in one HDF5 file, written atomically.

A checkpoint is written to ``<prefix>_<step>.h5.tmp``, flushed and closed collectively;
then rank 0 fsyncs it, renames it to ``<prefix>_<step>.h5`` and fsyncs the directory.
A file with the final name is therefore always complete, and the previous checkpoint
stays valid until the new one is: a job killed at any moment (even by SIGKILL) leaves a
loadable checkpoint. Stray ``.tmp`` files from a killed job are ignored and removed at
the next save.

**Order of writing, not of steps.** Every checkpoint carries a ``sequence`` number, one
more than the highest in the directory when it was written (rank 0 reads it from the
files and broadcasts it, so every rank and every later program agrees). "Newest" means
the highest sequence: a shorter re-run into the same directory writes step 5 after step
30, and step 5 is then the newest. Saving keeps the ``keep`` newest written (default 2)
and never removes the file just written. The sequence lives in the file itself, written
before the rename, so a crash cannot leave it saying something else than the order the
files were completed in. Files written before pympc stored a sequence count as older than
any with one, ordered by step among themselves.

**Damaged checkpoints.** A file with a checkpoint's name that is empty, truncated, not
HDF5, or misses an attribute or a field dataset is damaged. :meth:`Checkpointer.load`
and :meth:`Checkpointer.latest` then use the newest intact checkpoint instead, with one
:class:`CheckpointWarning` per damaged file (rank 0, once per process) naming it and the
checkpoint used; loading a damaged checkpoint by its step is an error. pympc never
deletes a damaged file (it is yours to inspect); it does not count towards ``keep``, and a
new checkpoint of its step moves it aside to ``<name>.damaged`` rather than replacing it.

**Self-describing.** Besides ``state`` (any JSON-able dict), a checkpoint stores its
``step``, ``sequence`` and ``time`` as root attributes and the solver's ``physics`` (a dict
of parameters such as the diffusivity or the boundary conditions) as attributes of the
group ``/physics``; :meth:`Checkpointer.info` reads them back without the fields, and
:meth:`CheckpointInfo.check_physics` refuses a restart whose physics differ.

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

import json
import math
import os
import re
import sys
import warnings

import h5py
import numpy as np

from ..grid import Decomposition
from .file import FORMAT_VERSION, File, open_readonly
from ..runtime import InputError, check_all, get_comm, on_root

CHECKPOINT_KIND = "pympc-checkpoint"
# the root attributes without which a checkpoint cannot be loaded
_REQUIRED_ATTRS = ("step", "state", "rng_states", "fields")


class CheckpointWarning(UserWarning):
    """Local. A checkpoint file was skipped because it is damaged (rank 0 warns, once)."""


def _fsync_path(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_saves = [0]
# (path, reason, size, mtime) of the damaged files this process has warned about: a file
# is reported once, however many Checkpointers look at it, and again once it changes
_warned: set = set()


#: Fault-injection point for the kill tests: None (always, in production), or a callable
#: ``hook(phase, n)`` that a test program sets; :meth:`Checkpointer.save` calls it at the
#: phases ``write`` (one field written), ``rename`` (file complete, not yet renamed) and
#: ``prune`` (renamed, older ones not yet removed) of this process's ``n``-th save.
fault_hook = None


def _phase(name: str) -> None:
    if fault_hook is not None:
        fault_hook(name, _saves[0])


# ---------------------------------------------------------------------------------------
# Physics: stored, read back and compared
# ---------------------------------------------------------------------------------------
def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _physics_json(physics) -> str | None:
    """The canonical JSON text of ``physics`` (None stays None); InputError if it is not
    a dict of JSON-able values with string keys."""
    if physics is None:
        return None
    if not isinstance(physics, dict) or not all(isinstance(k, str) and k for k in physics):
        raise InputError(f"physics must be a dict with non-empty string keys, got {physics!r}")

    def strict(o):  # numpy numbers and arrays, nothing else (str(obj) would hide a mistake)
        if isinstance(o, (np.integer, np.floating, np.bool_, np.ndarray)):
            return _json_default(o)
        raise TypeError(f"{type(o).__name__} is not JSON-able")

    try:
        return json.dumps(physics, sort_keys=True, default=strict)
    except (TypeError, ValueError) as e:
        raise InputError(f"physics must hold numbers, strings, bools, lists and dicts: {e}") from None


def _physics_attr(v):
    """One physics value as an HDF5 attribute a reader sees as it is: numbers, bools,
    strings and lists of numbers natively, anything else as JSON text."""
    if isinstance(v, bool):
        return np.bool_(v)
    if isinstance(v, int):
        return np.int64(v)
    if isinstance(v, float):
        return np.float64(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return np.array(v, dtype=np.float64 if any(isinstance(x, float) for x in v) else np.int64)
    return json.dumps(v, sort_keys=True)


def _same(a, b) -> bool:
    """Equal physics values after a JSON round trip: 1 == 1.0, nan == nan, True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


_MISSING = "<absent>"


def _flatten(d, prefix=""):
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def physics_changes(stored, current) -> dict:
    """Local. ``{key: (stored value, current value)}`` for the physics that differ, keys
    sorted, nested keys dotted (``"bc.x-"``; a key present on one side only has the value
    ``"<absent>"`` on the other). Values are compared as a checkpoint stores them (JSON:
    tuples are lists, numpy numbers are Python numbers): ``1 == 1.0``, ``nan == nan``,
    ``True != 1``."""
    return _changes(_flat(stored), _flat(current))


def _flat(physics) -> dict:
    """``physics`` as a checkpoint stores it (JSON), nested keys dotted."""
    return _flatten(json.loads(_physics_json(physics) or "{}"))


def _changes(a, b) -> dict:
    """:func:`physics_changes` of two flattened physics dicts."""
    return {k: (a.get(k, _MISSING), b.get(k, _MISSING)) for k in sorted(set(a) | set(b))
            if k not in a or k not in b or not _same(a[k], b[k])}


def check_physics(where, stored, current, allow_changed=(), log=None) -> dict:
    """Local. Refuse (:class:`~pympc.InputError`) a restart from ``where`` (a checkpoint's
    description) whose ``stored`` physics differ from ``current`` in keys that
    ``allow_changed`` does not name: a key, or a prefix of dotted keys (``"bc"`` covers
    ``"bc.x-"``); ``"solver"`` can never change, and a name that is no key on either side
    is refused too (a typo would otherwise allow nothing, silently). The message lists
    each refused key with both values. The allowed changes are logged as warnings on
    ``log`` and returned (:func:`physics_changes`). ``stored=None`` (a checkpoint from
    before pympc stored physics) cannot be compared: a warning, and ``{}``. Identical on
    every rank when ``stored`` and ``current`` are."""
    allow = (allow_changed,) if isinstance(allow_changed, str) else tuple(allow_changed or ())
    now = _flat(current)
    then = _flat(stored) if stored is not None else {}
    known = set(now) | set(then)
    unknown = [k for k in allow if not any(key == k or key.startswith(k + ".") for key in known)]
    if unknown:
        raise InputError(f"allow_changed names {unknown}, which are not physics parameters here "
                         f"(they are {sorted(known)})")
    if stored is None:
        if log is not None:
            log.warning("%s stores no physics parameters (an older pympc wrote it): the restart cannot "
                        "check that the physics are the same", where)
        return {}
    changes = _changes(then, now)

    def allowed(k):
        return k != "solver" and any(k == a or k.startswith(a + ".") for a in allow)
    refused = [k for k in changes if not allowed(k)]
    if refused:
        listing = "; ".join(f"{k}: {json.dumps(changes[k][0])} in the checkpoint, "
                            f"{json.dumps(changes[k][1])} now" for k in refused)
        raise InputError(f"restart from {where}: the physics differ from the checkpoint's in {refused} "
                         f"({listing}). Restart with the checkpoint's values, or name the keys in "
                         f"allow_changed={tuple(refused)!r} to continue with the new ones")
    if log is not None:
        for k, (old, new) in changes.items():
            log.warning("restart from %s: %s changed from %s to %s (allowed)", where, k,
                        json.dumps(old), json.dumps(new))
    return changes


class CheckpointInfo:
    """Local. What a checkpoint says about itself, read without its fields.

    ``step``, ``sequence`` (its place in the order of writing; 0 for a checkpoint from
    before pympc stored one), ``time`` (None if it was saved without one), ``physics``
    (the dict given to save, None if it was saved without), ``state``, ``path``,
    ``saved_ranks`` (the rank count that wrote it) and ``field_names``.
    """

    def __init__(self, step, sequence, time, physics, state, path, saved_ranks, field_names):
        self.step, self.sequence, self.time, self.physics = step, sequence, time, physics
        self.state, self.path, self.saved_ranks, self.field_names = state, path, saved_ranks, field_names

    def check_physics(self, physics, allow_changed=(), log=None) -> dict:
        """Local. :func:`check_physics` of this checkpoint's stored physics against
        ``physics`` (the run's own): an :class:`~pympc.InputError` listing the keys that
        differ and are not named in ``allow_changed``; returns the allowed changes."""
        return check_physics(f"checkpoint {self.path} (step {self.step})", self.physics, physics,
                             allow_changed, log)

    def __repr__(self):
        return (f"CheckpointInfo(step={self.step}, sequence={self.sequence}, time={self.time}, "
                f"path={self.path!r})")


class Restart(CheckpointInfo):
    """Local. What :meth:`Checkpointer.load` returns: a :class:`CheckpointInfo` plus
    ``fields`` ({name: DistArray}) and ``rngs`` (this rank's Generators, or None when
    the rank count changed)."""

    def __init__(self, info: CheckpointInfo, fields, rngs):
        super().__init__(info.step, info.sequence, info.time, info.physics, info.state, info.path,
                         info.saved_ranks, info.field_names)
        self.fields, self.rngs = fields, rngs


# ---------------------------------------------------------------------------------------
# Inspecting the files (rank 0 alone; the verdict is broadcast)
# ---------------------------------------------------------------------------------------
def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _inspect(path: str, step: int):
    """A CheckpointInfo for an intact checkpoint, else the reason it is damaged (str)
    together with its sequence if that much can be read: ``(info, None)`` or
    ``(sequence_or_None, reason)``."""
    seq = None
    try:
        if os.path.getsize(path) == 0:
            return None, "empty file (0 bytes)"
        if not h5py.is_hdf5(path):
            return None, "not an HDF5 file"
        # without HDF5's file lock (open_readonly): a checkpoint has its name only once it
        # is complete and nobody writes it afterwards
        with open_readonly(path) as f:  # HDF5 refuses a truncated file here
            a = f.attrs
            if "sequence" in a:
                seq = int(a["sequence"])
            kind = _text(a.get("kind"))
            if kind != CHECKPOINT_KIND:
                return seq, f"not a pympc checkpoint (kind {kind!r})"
            ver = a.get("format_version")
            if ver is None or int(ver) != FORMAT_VERSION:
                return seq, (f"checkpoint format version {None if ver is None else int(ver)}; "
                             f"this pympc reads version {FORMAT_VERSION}")
            missing = [k for k in _REQUIRED_ATTRS if k not in a]
            if missing:
                return seq, "missing attribute " + ", ".join(missing)
            if int(a["step"]) != step:
                return seq, f"its step attribute ({int(a['step'])}) is not the step in its name"
            state = json.loads(_text(a["state"]))
            saved_ranks = len(json.loads(_text(a["rng_states"])))
            names = json.loads(_text(a["fields"]))
            grid = a.get("grid_shape")
            for n in names:
                ds = f.get(f"fields/{n}")
                if not isinstance(ds, h5py.Dataset):
                    return seq, f"missing dataset /fields/{n}"
                if grid is not None and tuple(ds.shape[:len(grid)]) != tuple(int(x) for x in grid):
                    return seq, f"dataset /fields/{n} has shape {ds.shape}, not the grid's {tuple(grid)}"
                if ds.chunks is None and ds.id.get_storage_size() < ds.size * ds.dtype.itemsize:
                    return seq, f"dataset /fields/{n} has no data"
            t = a.get("time")
            physics = json.loads(_text(a["physics"])) if "physics" in a else None
            return CheckpointInfo(step, seq or 0, None if t is None else float(t), physics, state, path,
                                  saved_ranks, list(names)), None
    except OSError as e:  # HDF5 names the cause ("truncated file: eof = ...")
        return seq, f"truncated or corrupt ({e})"
    except Exception as e:  # noqa: BLE001 - any failure to read it makes it damaged
        return seq, f"unreadable ({type(e).__name__}: {e})"


def _caller_level():
    """The ``stacklevel`` that makes a warning raised by this module's caller of this
    function point at the first frame outside this module (the user's line)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


class _Scan:
    """What rank 0 found in the directory: intact checkpoints oldest written first,
    damaged ones as (path, reason), the highest sequence any file shows, and whether the
    directory exists."""

    def __init__(self, intact, damaged, top, present):
        self.intact, self.damaged, self.top, self.present = intact, damaged, top, present


class Checkpointer:
    """Collective. Checkpoints of a run in ``directory`` named ``<prefix>_<step>.h5``.

    ``save`` is collective and atomic; ``load``/``latest``/``info`` find the newest
    written intact one (see the module doc for the order and for damaged files).
    """

    def __init__(self, directory, prefix="checkpoint", keep=2, comm=None):
        self.comm = get_comm(comm)
        self.directory = str(directory)
        self.prefix = prefix
        if int(keep) < 1:
            raise InputError(f"keep must be >= 1, got {keep}")
        # the directory is created by the first save, not here: a refused restart (or a
        # run that stops before its first checkpoint) leaves no empty directory behind
        self.keep = int(keep)

    def path(self, step: int) -> str:
        """Local. The file name of the checkpoint of ``step``."""
        return os.path.join(self.directory, f"{self.prefix}_{int(step):08d}.h5")

    # -- finding checkpoints -------------------------------------------------------------
    def _listing(self) -> list:
        # a directory that does not exist (yet: the first save creates it) holds nothing
        try:
            return os.listdir(self.directory)
        except FileNotFoundError:
            return []

    def _scan_local(self, listing=None) -> _Scan:
        """What this rank finds in the directory (``listing``: its names, if listed)."""
        pat = re.compile(re.escape(self.prefix) + r"_(\d+)\.h5$")
        names = sorted((int(m.group(1)), os.path.join(self.directory, f))
                       for f in (self._listing() if listing is None else listing) if (m := pat.match(f)))
        intact, damaged, top = [], [], 0
        for step, path in names:
            info, reason = _inspect(path, step)
            if reason is None:
                intact.append(info)
                top = max(top, info.sequence)
            else:
                damaged.append((path, reason))
                top = max(top, info or 0)
        intact.sort(key=lambda i: (i.sequence, i.step))
        return _Scan(intact, damaged, top, os.path.isdir(self.directory))

    def _scan(self) -> _Scan:
        """Collective. Rank 0 inspects the directory, every rank gets its verdict; rank
        0 warns once about each damaged file."""
        def look():
            try:
                scan = self._scan_local()
            except OSError as e:
                raise InputError(f"cannot list checkpoint directory {self.directory}: {e}") from None
            self._warn_damaged(scan)
            return scan
        return on_root(look, self.comm)

    def _warn_damaged(self, scan):
        for path, reason in scan.damaged:
            try:
                st = os.stat(path)
                key = (os.path.abspath(path), reason, st.st_size, st.st_mtime_ns)
            except OSError:
                key = (os.path.abspath(path), reason)
            if key in _warned:
                continue
            _warned.add(key)
            use = (f"the newest intact one is step {scan.intact[-1].step} ({scan.intact[-1].path})"
                   if scan.intact else f"no intact checkpoint is left in {self.directory}")
            warnings.warn(f"damaged checkpoint {path} skipped: {reason}; {use}. pympc does not "
                          "delete it.", CheckpointWarning, stacklevel=_caller_level())

    def checkpoints(self) -> list:
        """Collective. :class:`CheckpointInfo` of every intact checkpoint present,
        oldest written first."""
        return self._scan().intact

    def steps(self) -> list:
        """Collective. Steps of the intact checkpoints present, oldest written first
        (a re-run that wrote step 5 after step 30 lists ``[30, 5]``)."""
        return [i.step for i in self.checkpoints()]

    def steps_local(self) -> list:
        """Local. Like :meth:`steps`, read by this rank alone (no warnings)."""
        return [i.step for i in self._scan_local().intact]

    def latest(self):
        """Collective. The step of the newest written intact checkpoint, or None."""
        s = self.checkpoints()
        return s[-1].step if s else None

    def info(self, step: int | None = None) -> CheckpointInfo:
        """Collective. The :class:`CheckpointInfo` (step, sequence, time, physics, state)
        of checkpoint ``step``, by default the newest written intact one, read without
        its fields: what a solver checks before it restarts (and before it opens its
        output). Raises :class:`~pympc.InputError`, naming the directory, if there is
        none, and naming the file if checkpoint ``step`` is damaged or absent."""
        scan = self._scan()
        if step is None:
            if scan.intact:
                return scan.intact[-1]
            bad = "".join(f"; {p} is damaged: {r}" for p, r in scan.damaged)
            none = " (the directory has none)" if scan.present else " (the directory does not exist)"
            raise InputError(f"no checkpoint named {self.prefix}_*.h5 in {self.directory} to restart "
                             f"from{bad or none}")
        step = int(step)
        for i in scan.intact:
            if i.step == step:
                return i
        path = self.path(step)
        for p, reason in scan.damaged:
            if p == path:
                raise InputError(f"checkpoint {path} cannot be loaded: {reason} (intact checkpoints "
                                 f"in {self.directory}: steps {[i.step for i in scan.intact]})")
        raise InputError(f"no checkpoint of step {step} in {self.directory} (intact checkpoints: steps "
                         f"{[i.step for i in scan.intact]})")

    def clear(self) -> list:
        """Collective. Remove every file of this prefix in the directory: intact and
        damaged checkpoints and ``.tmp`` leftovers (for a run that is told to start
        afresh). Returns the paths removed; an error raises InputError everywhere."""
        def remove():
            pat = re.compile(re.escape(self.prefix) + r"_\d+\.h5(\.tmp)?$")
            try:
                out = sorted(os.path.join(self.directory, f) for f in self._listing() if pat.match(f))
                for p in out:
                    os.unlink(p)
            except OSError as e:
                raise InputError(f"cannot remove the checkpoints in {self.directory}: {e}") from None
            return out
        return on_root(remove, self.comm)

    # -- writing -------------------------------------------------------------------------
    def save(self, step: int, fields: dict, state: dict | None = None, rngs=None, *,
             time: float | None = None, physics: dict | None = None) -> str:
        """Collective. Write a checkpoint of ``fields`` ({name: DistArray}) and ``state``
        (JSON-able: time, dt, parameters, ...) at ``step``; ``rngs`` is this rank's list
        of numpy Generators. ``time`` (default ``state["time"]`` if it is a number) is
        stored as the root attribute ``time``; ``physics`` (a dict of the solver's
        parameters: numbers, strings, bools, lists) as attributes of ``/physics``, for
        :meth:`CheckpointInfo.check_physics` at restart. ``step``, ``time`` and
        ``physics`` must be the same on every rank.

        The new checkpoint is the newest, whatever its step; the oldest written beyond
        ``keep`` are removed afterwards. The first save creates the directory. Returns
        its path once it is complete."""
        _saves[0] += 1
        state = state or {}
        time, pjson = self._check_save(step, fields, state, time, physics)
        final = self.path(step)
        # rank 0 decides the sequence from the files themselves (a restarted program, or
        # another rank count, sees the same numbers) and removes a killed save's leftovers
        sequence, older = on_root(lambda: self._prepare(final), self.comm)
        attrs = {"kind": CHECKPOINT_KIND, "step": int(step), "sequence": int(sequence),
                 "state": json.dumps(state, sort_keys=True, default=_json_default),
                 "rng_states": json.dumps(self.comm.allgather([g.bit_generator.state for g in (rngs or [])]),
                                          default=_json_default),
                 "fields": json.dumps(sorted(fields))}
        if time is not None:
            attrs["time"] = np.float64(time)
        if pjson is not None:
            attrs["physics"] = pjson
        self._write(final + ".tmp", fields, attrs, state.get("params"))
        on_root(lambda: self._commit(final, older), self.comm)
        return final

    def _check_save(self, step, fields, state, time, physics):
        """``(time, physics JSON)`` of a save, checked: the same on every rank."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise InputError(f"checkpoint step must be an integer >= 0, got {step!r}")
        if not fields:
            raise InputError("save() needs at least one field")
        if time is None and isinstance(state.get("time"), (int, float, np.number)) \
                and not isinstance(state.get("time"), bool):
            time = state["time"]
        time = None if time is None else float(time)
        pjson = _physics_json(physics)
        mine = (int(step), time, pjson)
        root = self.comm.bcast(mine if self.comm.Get_rank() == 0 else None, root=0)
        check_all(repr(mine) == repr(root), f"save(): step, time or physics differ between ranks: "
                  f"{mine} here, {root} on rank 0", self.comm)
        return time, pjson

    def _prepare(self, final):
        """Rank 0, before a save: the directory made, a killed save's ``.tmp`` leftovers
        removed, a damaged file of the new one's name moved aside; returns the new
        sequence number and the intact checkpoints, oldest written first."""
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create checkpoint directory {self.directory}: {e}") from None
        try:
            listing = self._listing()  # once, for the leftovers and the scan
            for stray in listing:
                if stray.startswith(self.prefix + "_") and stray.endswith(".h5.tmp"):
                    os.unlink(os.path.join(self.directory, stray))
            scan = self._scan_local(listing)
            self._warn_damaged(scan)
            for path, _ in scan.damaged:  # the new file takes a damaged one's name:
                if os.path.abspath(path) == os.path.abspath(final):  # keep it beside, never delete it
                    aside, k = final + ".damaged", 1
                    while os.path.lexists(aside):
                        k += 1
                        aside = f"{final}.damaged-{k}"
                    os.rename(final, aside)
        except OSError as e:
            raise InputError(f"cannot prepare checkpoint {final}: {e}") from None
        return scan.top + 1, [i.path for i in scan.intact]

    def _write(self, tmp, fields, attrs, params):
        """Collective. The checkpoint file ``tmp``: root attributes, physics, fields."""
        first = next(iter(fields.values()))
        with File(tmp, "w", comm=self.comm, decomp=first.decomp, params=params) as f:
            f.set_attrs("/", attrs)
            if "physics" in attrs:
                f.require_group("/physics")
                f.set_attrs("/physics", {k: _physics_attr(v) for k, v in json.loads(attrs["physics"]).items()})
            f.require_group("/fields")
            for i, (name, a) in enumerate(sorted(fields.items())):
                if i == 1 and self.comm.Get_rank() == 0:
                    _phase("write")  # one field written, the next not yet
                f.write(f"/fields/{name}", a)
            f.flush()

    def _commit(self, final, older):
        """Rank 0, after the file is complete: fsync, rename, fsync the directory, then
        remove the oldest written beyond ``keep``."""
        tmp = final + ".tmp"
        try:
            _fsync_path(tmp)
            _phase("rename")
            os.replace(tmp, final)
            _fsync_path(self.directory, directory=True)
            _phase("prune")
            # the oldest written go first; the new file (which may have replaced an
            # older one of the same step) is never among them, damaged ones are never
            # touched
            older = [p for p in older if p != final]
            for old in older[:max(0, len(older) - (self.keep - 1))]:
                os.unlink(old)
        except OSError as e:
            raise InputError(f"checkpoint {final}: {e}") from None

    # -- reading -------------------------------------------------------------------------
    def load(self, decomp: Decomposition, step: int | None = None, dtype=None) -> Restart:
        """Collective. Read checkpoint ``step`` (a step number, or a :class:`CheckpointInfo`
        from :meth:`info` or :meth:`checkpoints`; default: the newest written intact one,
        with a :class:`CheckpointWarning` on rank 0 naming any damaged file skipped)
        onto ``decomp``. A damaged or absent ``step``, or no checkpoint at all, raises
        :class:`~pympc.InputError` naming the file or the directory.

        Returns a :class:`Restart`: ``step``, ``fields`` ({name: DistArray}), ``state``
        (the dict given to save), ``time``, ``physics``, ``sequence``, ``path``,
        ``rngs`` (this rank's Generators, or None when the rank count changed) and
        ``saved_ranks``.
        """
        # a CheckpointInfo the caller has (checkpoints(), info()) saves scanning the directory again
        info = step if isinstance(step, CheckpointInfo) else self.info(step)
        with File(info.path, "r", comm=self.comm) as f:
            fields = {n: f.read(f"/fields/{n}", decomp, dtype) for n in info.field_names}
            saved = json.loads(f.attrs("/")["rng_states"])
        rngs = None
        if len(saved) == self.comm.Get_size():
            rngs = []
            for st in saved[self.comm.Get_rank()]:
                g = np.random.Generator(getattr(np.random, st["bit_generator"])())
                g.bit_generator.state = st
                rngs.append(g)
        return Restart(info, fields, rngs)


def restart_rng(seed, step: int, comm=None):
    """Local. A fresh per-rank Generator after a restart on a different rank count:
    rank ``r`` of ``comm`` gets ``SeedSequence(seed, spawn_key=(step, r))``."""
    comm = get_comm(comm)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(int(step), comm.Get_rank()))))
