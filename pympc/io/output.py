"""Time series output: one HDF5 file of output steps plus an XDMF file beside it.

    out = pympc.Output("run.h5", decomp, params={"alpha": 0.1}, units={"u": "K", "time": "s"})
    out.write(step, time, u=u, v=v)          # group /steps/00000010 with datasets u, v
    out.close()                               # run.xmf opens the whole series in ParaView

A new series never replaces an existing file silently: ``mode="w"`` on a path that
exists raises :class:`InputError` unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os

from ..array import require_distarray
from ..grid import Decomposition
from .file import File
from ..runtime import InputError, get_comm, get_logger, on_root
from ..fsutil import write_atomic
from .xdmf import render, unlisted_reason, write_meshes

#: ``units`` keys that are not field names: the unit of the step times and of the grid's
#: coordinates (origin, spacing).
UNIT_KEYS = ("time", "length")
AXIS_NAMES = "xyz"


def axis_labels(ndim: int, components=()) -> list:
    """Local. The names of a field dataset's axes: ``x``, ``y``, ``z`` for the grid's axes
    (pympc's axis 0 is x), then ``component`` for each trailing component axis."""
    return [AXIS_NAMES[a] for a in range(ndim)] + ["component"] * len(tuple(components))


def check_new_path(path, comm=None) -> None:
    """Collective. Raise :class:`InputError` (the same on every rank; rank 0 looks) if
    ``path`` exists: a new series must not replace an earlier one silently."""
    def look():
        if os.path.exists(str(path)):
            raise InputError(f"{path} exists already: a new output series would replace it. Continue it "
                             "(restart=True, or Output mode='a'), move it aside, or pass overwrite=True "
                             "to replace it")
    on_root(look, get_comm(comm))


def _field_meta(attrs) -> dict:
    """A field's entry in a step description (see :func:`~pympc.io.xdmf.render`), from
    its dataset attributes."""
    return {"shape": [int(x) for x in attrs["grid_shape"]], "dtype": attrs["dtype"],
            "centring": attrs["centring"], "origin": list(attrs["origin"]),
            "spacing": list(attrs["spacing"]), "components": json.loads(attrs.get("components", "[]"))}


def step_group(step: int) -> str:
    """Local. The HDF5 group name of output step ``step``."""
    return f"/steps/{int(step):08d}"


class Output:
    """Collective. A time series of fields in ``path`` (HDF5) and ``path`` with ``.xmf``.

    ``mode="w"`` starts a new series; ``mode="a"`` continues an existing one (after a
    restart): steps after ``restart_step``, and any step cut short (it lacks the
    ``complete`` attribute, set last), are removed first, so re-running them does not
    leave a mix; the XDMF file only ever lists complete steps. ``mode="w"`` refuses a
    path that exists (:class:`InputError`, nothing touched) unless ``overwrite=True``.

    ``units`` maps field names to unit strings, plus ``"time"`` (the steps' times) and
    ``"length"`` (the coordinates): every field dataset gets ``units``, ``time_units``,
    ``length_units`` and ``axes`` (``["x", "y", ...]``, see :func:`axis_labels`); the root
    gets ``axes`` and ``units`` (JSON) when the file is created.

    The HDF5 file is open only while a step is written: each :meth:`write` opens it,
    writes, and closes it, so between steps the file is complete and consistent, and a
    job killed later cannot damage the steps already written. (Keeping it open and
    flushing after each step would cost an ``fsync`` of the whole file per step: the
    MPI-IO driver syncs on every flush; closing does not.)
    """

    def __init__(self, path, decomp: Decomposition, mode="w", params=None, xdmf=True,
                 units=None, restart_step=None, overwrite=False):
        self.comm = decomp.comm  # the series is written by the ranks of its decomposition
        self.decomp = decomp
        self.path = str(path)
        self.units = dict(units or {})
        self.xdmf_path = os.path.splitext(self.path)[0] + ".xmf" if xdmf else None
        self._unlisted: set = set()  # fields already reported as not in the XDMF
        if mode not in ("w", "a"):
            raise InputError(f"Output mode must be 'w' or 'a', got {mode!r}")
        bad = sorted(k for k, v in self.units.items() if not isinstance(v, str))
        if bad:
            raise InputError(f"units must be strings; not for {bad}")
        if mode == "w" and not overwrite:
            check_new_path(self.path, self.comm)
        self.steps = []
        # "x" (HDF5 refuses a file that exists, atomically): nothing created between the
        # check above and the open is truncated
        fmode = "x" if mode == "w" and not overwrite else mode
        with File(self.path, fmode, comm=self.comm, params=params, decomp=decomp) as f:
            if mode == "w" or "axes" not in f.attrs("/"):
                f.set_attrs("/", {"axes": axis_labels(decomp.ndim), "units": self.units})
            if mode == "a":
                for name in f.keys("/steps"):
                    st = int(name)
                    complete = int(f.attrs(f"/steps/{name}").get("complete", 0)) == 1
                    if not complete or (restart_step is not None and st > restart_step):
                        f.delete(f"/steps/{name}")
                        continue
                    self.steps.append(self._describe(f, st))
            if self.xdmf_path:  # the XDMF's mesh coordinates (older files lack them)
                write_meshes(f, self.steps)
        self._write_xdmf()

    def _describe(self, f, step):
        grp = step_group(step)
        attrs = f.attrs(grp)
        fields = {}
        for name in f.keys(grp):
            fields[name] = _field_meta(f.attrs(f"{grp}/{name}"))
        return {"step": step, "time": float(attrs.get("time", step)), "group": grp, "fields": fields}

    def write(self, step: int, time: float, **fields) -> None:
        """Collective. Write ``fields`` (DistArrays) as output step ``step`` at ``time``."""
        if not fields:
            raise InputError("Output.write needs at least one field")
        for name, a in fields.items():  # before the file is opened: nothing is touched
            require_distarray(a, f"field {name!r}", "Output.write")
        grp = step_group(step)
        meta = {}
        time_units = self.units.get("time", "")
        with File(self.path, "r+", comm=self.comm) as f:
            f.delete(grp)
            f.require_group(grp)
            f.set_attrs(grp, {"step": int(step), "time": float(time), "time_units": time_units})
            for name, a in fields.items():
                attrs = {"step": int(step), "time": float(time), "units": self.units.get(name, ""),
                         "time_units": time_units, "length_units": self.units.get("length", ""),
                         "axes": axis_labels(a.decomp.ndim, a.components),
                         "dtype": a.dtype.str, "components": json.dumps(list(a.components))}
                f.write(f"{grp}/{name}", a, attrs)
                meta[name] = _field_meta({**attrs, "grid_shape": a.decomp.shape, "origin": a.decomp.origin,
                                          "spacing": a.decomp.spacing, "centring": a.decomp.centring})
            if self.xdmf_path:  # before 'complete': a step the XDMF lists has its mesh
                write_meshes(f, [{"fields": meta}])
            f.set_attrs(grp, {"complete": 1})  # last: a step cut short never has it
        if self.xdmf_path:
            self._warn_unlisted(meta)
        self.steps = [s for s in self.steps if s["step"] != step]
        self.steps.append({"step": int(step), "time": float(time), "group": grp, "fields": meta})
        self.steps.sort(key=lambda s: s["step"])
        self._write_xdmf()

    def _warn_unlisted(self, meta):
        # stored in the HDF5 file, but ParaView would not see it: say so once per field
        first = next(iter(meta.values()))
        for name, m in meta.items():
            why = unlisted_reason(m, first)
            if why is not None and name not in self._unlisted:
                self._unlisted.add(name)
                get_logger("pympc.output").warning(
                    "field %r is stored in %s but not listed in %s: %s", name, self.path, self.xdmf_path, why)

    def _write_xdmf(self):
        # rank 0 writes it; every rank returns once it is there, and a failure to write it
        # is an InputError on every rank
        def write():
            try:
                write_atomic(self.xdmf_path, render(os.path.basename(self.path), self.steps))
            except OSError as e:
                raise InputError(f"cannot write {self.xdmf_path}: {e}") from None
        if self.xdmf_path:
            on_root(write, self.comm)

    def close(self) -> None:
        """Local. Nothing is left open between steps (each :meth:`write` closes the file
        and rewrites the XDMF): kept for ``with`` blocks, it does nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
