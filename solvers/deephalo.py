"""Deep halos: several steps of an explicit solver per halo exchange.

With ghosts ``k`` wide, one exchange (corners included: ``stencil="box"``) serves ``k``
steps: step ``s`` updates the unknowns grown by ``k - s`` layers into the ghosts on every
side with a neighbour (or a periodic wrap) across, recomputing the ghost values the
next step reads exactly as the neighbour computes them. The boundary conditions are
applied before every step as in the one-step path, so the fields are bit-identical to
one step per exchange (docs/blocking.md). Messages per step drop ``k``-fold; the
redundant work is ``O(k / n)`` of a block of side ``n``.

The solvers keep their fields on a **work decomposition**: the user's when its ghosts
are wide enough, else one built alike with ghost width ``k`` (the same ranks, blocks and
geometry: outputs and checkpoints see the same fields).
"""

from __future__ import annotations

import weakref

import pympc
from pympc.grid import on_close
from pympc.runtime import InputError

# id(decomposition) -> {k: its work decomposition of ghost width k}
_works: dict = {}


def _close_works(decomp) -> None:
    for work in _works.pop(id(decomp), {}).values():
        work.close()


on_close(_close_works)

#: The most steps per exchange a solver takes (a ghost layer per step: memory and
#: redundant work grow with it, the gain does not: docs/blocking.md).
MAX_STEPS = 32


def steps_option(value, default) -> int:
    """Local. A solver's ``steps_per_exchange`` argument as a whole number of steps
    (``None``: ``default``); :class:`pympc.InputError` for anything else."""
    if value is None:
        return int(default)
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_STEPS
    if not ok:
        raise InputError(f"steps_per_exchange must be a whole number in 1..{MAX_STEPS} (or None: the "
                         f"default rule), got {value!r}")
    return value


def tile_option(tile, ndim: int):
    """Local. A solver's ``tile`` argument checked: None (the default tiles), False (no
    tiles: whole-block sweeps) or ``ndim`` whole numbers >= 1 (one repeated for every
    axis); returned as given, or as a tuple; :class:`pympc.InputError` otherwise."""
    if tile is None or tile is False:
        return tile
    sizes = [tile] * ndim if isinstance(tile, int) and not isinstance(tile, bool) else tile
    ok = isinstance(sizes, (list, tuple)) and len(sizes) == ndim and all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in sizes)
    if not ok:
        raise InputError(f"tile must be None (the default tiles), False (whole-block sweeps) or {ndim} "
                         f"whole numbers >= 1, one per axis; got {tile!r}")
    return tuple(sizes)


def work_decomposition(decomp, k: int):
    """Collective. ``decomp`` when its ghosts are at least ``k`` wide, else a new
    decomposition built alike (communicator, process grid, blocks, periodicity,
    geometry) with ghost width ``k``, made once per width and closed when ``decomp``
    is (``decomp.close()``, or a ``with`` block). A block thinner than ``k`` along an axis raises
    the decomposition's :class:`pympc.InputError` (pass fewer steps per exchange)."""
    if decomp.ghost >= k:
        return decomp
    works = _works.get(id(decomp))
    if works is None:
        works = _works[id(decomp)] = {}
        weakref.finalize(decomp, _works.pop, id(decomp), None).atexit = False
    if k not in works:  # one per width and decomposition, closed with it
        works[k] = _alike(decomp, k)
    return works[k]


def _alike(decomp, k):
    return pympc.Decomposition(decomp.shape, comm=decomp.comm, dims=decomp.dims, periodic=decomp.periodic,
                               ghost=k, stencil=decomp.stencil, origin=decomp.origin, spacing=decomp.spacing,
                               centring=decomp.centring, sizes=[[hi - lo for lo, hi in r] for r in decomp.ownership_ranges()])


def on(work, field):
    """Collective. ``field`` on the decomposition ``work`` (itself when it is there already;
    else a copy of its owned values)."""
    if field.decomp is work:
        return field
    why = work.mismatch(field.decomp)
    if why is not None:
        raise InputError(f"a field must live on the solver's decomposition (or one built alike): {why}")
    out = pympc.DistArray(work, field.dtype, field.components)
    out.owned[...] = field.owned
    return out


def grown(decomp, region, e: int):
    """Local. ``region`` (per axis ``(lo, hi)`` in owned coordinates) grown by ``e`` layers
    on every side with a neighbour or a periodic wrap across; physical sides stay."""
    out = []
    for a, (lo, hi) in enumerate(region):
        out.append((lo - (0 if decomp.at_boundary(a, -1) else e), hi + (0 if decomp.at_boundary(a, 1) else e)))
    return out
