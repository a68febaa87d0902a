"""The BSP machine model: the parameters ``pympc bench`` measures and the profile report
predicts with, and their file format (``pympc bench --json``, ``"pympc-machine/1"``).

A :class:`MachineParams` holds the computing rate ``r``, the cost per word ``g`` and the
synchronisation cost ``l`` of the main fit (BSP ``hpput`` h-relations), the fit of every
h-relation method measured back to back (``fit``) and after a compute phase
(``after_compute``), and the bench's other measurements as they were written
(``details``: timings, the empty sync, LogP, versions). :meth:`MachineParams.choose`
picks the ``g`` and ``l`` that predict one superstep (which layer it communicates
through, whether a long compute phase came before).

A file of another kind, or one without a number for ``g`` and ``l``, raises
:class:`~pympc.InputError` naming what is wrong. A file holding only ``g`` and ``l`` (and
``ranks``) is a valid machine: every superstep is then predicted with those two. The
module starts no MPI (the report runs outside any MPI job).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

FORMAT = "pympc-machine/1"
_NUMBER = (int, float)
# the keys a file may hold besides the fields, kept as they are in ``details``
_FIELDS = ("format", "ranks", "r", "g", "l", "g_flops", "l_flops", "g_method", "fit", "after_compute")


def _input_error(msg):
    from ..errors import InputError

    return InputError(msg)


def _check_fit(where, f):
    if not isinstance(f, dict) or not all(isinstance(f.get(k), _NUMBER) and not isinstance(f.get(k), bool)
                                          for k in ("g", "l")):
        raise _input_error(f"{where} needs numbers g and l, got {f!r:.200}")


@dataclass
class MachineParams:
    """Local. Machine parameters for the BSP cost model (``g`` seconds per word, ``l``
    seconds per superstep, ``r`` flop/s; ``ranks`` they were measured at), with the fit
    of every h-relation method (``fit``: method -> dict with at least ``g`` and ``l``)
    and the fits after a compute phase (``after_compute``: ``stream_bytes``,
    ``stream_seconds``, ``fit``, ``hrel``). Values are stored as measured: a fit made
    on a loaded machine may be negative (:func:`pympc.bsp.report.unphysical` says so)."""

    g: float
    l: float
    ranks: int | None = None
    r: float | None = None
    g_method: str | None = None
    fit: dict = field(default_factory=dict)
    after_compute: dict | None = None
    details: dict = field(default_factory=dict)

    # -- the file format -----------------------------------------------------------------
    @classmethod
    def from_json(cls, data) -> "MachineParams":
        """Local. A machine from the dict of a ``pympc bench`` file (or a MachineParams,
        returned as is); :class:`~pympc.InputError` when it is not one."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise _input_error(f"not a pympc machine file: a JSON object is needed, got {type(data).__name__}")
        if data.get("format", FORMAT) != FORMAT:
            raise _input_error(f"not a pympc machine file (format {data.get('format')!r}, expected {FORMAT!r}; "
                               f"write one with 'pympc bench --json')")
        _check_fit("a pympc machine file", data)
        fit = data.get("fit") or {}
        ac = data.get("after_compute") or None
        if not isinstance(fit, dict):
            raise _input_error(f"the machine file's 'fit' must map methods to fits, got {fit!r:.200}")
        for m, f in fit.items():
            _check_fit(f"the machine file's fit of {m!r}", f)
        if ac is not None:
            if not isinstance(ac, dict) or not isinstance(ac.get("stream_seconds"), _NUMBER) \
                    or not isinstance(ac.get("fit"), dict):
                raise _input_error("the machine file's 'after_compute' needs stream_seconds and fit")
            for m, f in ac["fit"].items():
                _check_fit(f"the machine file's after-compute fit of {m!r}", f)
        return cls(g=data["g"], l=data["l"], ranks=data.get("ranks"), r=data.get("r"),
                   g_method=data.get("g_method"), fit=dict(fit), after_compute=ac,
                   details={k: v for k, v in data.items() if k not in _FIELDS})

    def to_json(self) -> dict:
        """Local. The dict a ``pympc bench`` file holds (``g_flops`` and ``l_flops`` are
        ``g`` and ``l`` times ``r``, where ``r`` is known)."""
        out = {"format": FORMAT, "ranks": self.ranks, "r": self.r, "g": self.g, "l": self.l}
        if self.r is not None:
            out["g_flops"], out["l_flops"] = self.g * self.r, self.l * self.r
        if self.g_method is not None:
            out["g_method"] = self.g_method
        out["fit"] = self.fit
        if self.after_compute is not None:
            out["after_compute"] = self.after_compute
        out.update(self.details)
        return out

    @classmethod
    def load(cls, path) -> "MachineParams":
        """Local. Read a ``pympc bench --json`` file; :class:`~pympc.InputError` when it
        is not JSON or not a machine file."""
        with open(path) as f:
            try:
                data = json.load(f)
            except ValueError as e:
                raise _input_error(f"{path}: not a pympc machine file (not JSON: {e})") from None
        try:
            return cls.from_json(data)
        except ValueError as e:  # InputError is a ValueError
            raise _input_error(f"{path}: {e}") from None

    def save(self, path) -> None:
        """Local. Write the machine as a ``pympc bench --json`` file."""
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1)

    # -- the model -----------------------------------------------------------------------
    def choose(self, kinds, w_step: float):
        """Local. The ``(g, l, name)`` that predict a superstep's communication, chosen by
        how the superstep communicates and what came before:

        * **layer** (``kinds``: the kinds of communication the superstep recorded):
          supersteps with BSP puts, gets or messages (``"bsp"``) take the BSP h-relation
          fit (``hpput``); those with halo exchanges (``"halo"``) the decomposition
          layer's halo h-relation fit (``halo``: an exchange and an empty sync, as a
          stencil program runs them); the others (reductions, empty syncs) the raw
          ``MPI_Alltoallv`` fit. A machine without the halo fit (older files) gives halo
          supersteps the raw fit;
        * **cache state** (:meth:`cold`): a superstep whose compute phase has streamed
          more than the core's private caches hold takes the fit measured after such a
          phase: its communication runs with the caches and TLBs the compute phase has
          emptied, which costs several times the back-to-back figure. Shorter compute
          phases take the back-to-back (bspbench) fit.

        A machine without these fits (only ``g`` and ``l``) gives its ``g`` and ``l``."""
        cold = self.cold(w_step)
        ac = self.after_compute
        fits = ac.get("fit", {}) if cold else self.fit
        method = "hpput" if "bsp" in kinds else "halo" if "halo" in kinds and "halo" in fits else "raw"
        f = fits.get(method)
        if f:
            return f["g"], f["l"], f"{method}, {'after compute' if cold else 'back to back'}"
        f = self.fit.get(method)
        if f:
            return f["g"], f["l"], f"{method}, back to back"
        return self.g, self.l, "g, l"

    def cold(self, w_step: float) -> bool:
        """Local. Whether a superstep whose compute phase lasts ``w_step`` seconds (the
        slowest rank's mean) is predicted with the fits after a compute phase (see
        :meth:`choose`): whether it lasts as long as the bench's compute phase took to
        stream twice the core's private cache (``after_compute["private_cache_bytes"]``,
        the L2 where there is an L3), or, in a machine file without that figure, half
        the bench's compute phase (``stream_seconds / 2``).

        Why the private cache and not the last-level one: a server's last-level cache
        is shared with every core of the socket. On a 2-core VM of a Xeon with 300 MiB
        of it, the heat step's exchange after a 64 MiB sweep cost 57 µs, what the fits
        after a 600 MiB compute phase predict (58 µs), and thirteen times the
        back-to-back prediction (4 µs) the old rule (half of twice the last-level
        cache) chose. What stays warm is what the core keeps to itself."""
        ac = self.after_compute
        if not ac:
            return False
        secs, nbytes, private = ac.get("stream_seconds", math.inf), ac.get("stream_bytes"), \
            ac.get("private_cache_bytes")
        if isinstance(private, _NUMBER) and isinstance(nbytes, _NUMBER) and nbytes > 0:
            return w_step >= secs * min(1.0, 2.0 * private / nbytes)
        return w_step >= 0.5 * secs

    def choose_pattern(self, key: str, w_step: float):
        """Local. The ``(g, l, name, span)`` of the fit of the halo pattern ``key`` (a cost
        log's ``"halo:cols"``, ``"halo:box/w4"``: the halo plan's pattern,
        ``pympc.halo._pattern``), from the fits after a compute phase or back to back as
        :meth:`choose` picks them, or ``None`` where that set has no fit of the pattern's
        shape (the caller then predicts with :meth:`choose`: a pattern fitted in the other
        cache state would be off several-fold). A deep-halo width with no fit of its own
        takes the fit of the same shape whose deep width is nearest (named in ``name``).
        ``span``: the ``(h_min, h_max)`` words per exchange the fit was measured over, or
        ``None`` in a machine file that does not say (:func:`pympc.bsp.report.unphysical`
        accepts a negative ``l`` inside it)."""
        cold = self.cold(w_step)
        fits = self.after_compute.get("fit", {}) if cold else self.fit
        name = _nearest_pattern(key, fits)
        if name is None:
            return None
        f = fits[name]
        span = (f["h_min"], f["h_max"]) if isinstance(f.get("h_min"), _NUMBER) and isinstance(
            f.get("h_max"), _NUMBER) else None
        return (f["g"], f["l"], name + ("" if name == key else f" for {key}")
                + (", after compute" if cold else ", back to back"), span)


def _width(key):
    # a pattern key's shape and width: "halo:box/w4" -> ("halo:box", 4)
    shape, _, w = key.partition("/w")
    return shape, int(w) if w.isdigit() else 1


def _nearest_pattern(key, fits):
    # the fit of pattern key, or for a deep halo the fit of its shape at the nearest other
    # deep width (the smaller on a tie); a width-1 exchange has no nearest (its runs and
    # word counts differ in kind from a deep halo's)
    if key in fits:
        return key
    shape, w = _width(key)
    same = [(abs(math.log(_width(k)[1] / w)), _width(k)[1], k) for k in fits
            if _width(k)[0] == shape and _width(k)[1] > 1]
    return min(same)[2] if same and w > 1 and ":" in shape else None
