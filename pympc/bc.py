"""Boundary conditions: fill the ghost cells at physical (non-periodic) boundaries.

The halo exchange never writes those ghosts; these helpers do, after it. Boundaries are
filled axis by axis in order; each axis covers the ghost cells along the other axes that
are already valid (exchanged, or filled by an earlier axis), so edges and corners come
out exactly as ``numpy.pad`` applied to the global array one axis after another.

Sides are named by strings: ``"x-"``, ``"x+"``, ``"y-"``, ``"y+"``, ``"z-"``, ``"z+"``
(axis 0, 1, 2 — pympc's axis 0 is x —, low and high side; a fourth axis and beyond are
``"a3-"``, ...). ``sides=None`` means every physical boundary. The solvers' ``bc=``
dicts use the same names (:mod:`solvers.boundary`): one spelling, which a TOML job file
or a JSON parameter record carries as it is (``(axis, -1)`` tuples do not survive
either). :func:`side_name` and :func:`parse_side` convert.
"""

from __future__ import annotations

import functools

from .array import DistArray, require_distarray
from .runtime import InputError

AXES = "xyz"


def side_name(axis: int, side: int) -> str:
    """Local. The name of a side: ``"x-"``, ``"y+"``, ... for ``(axis, side)`` with side
    -1 (low) or +1 (high)."""
    return f"{AXES[axis] if axis < len(AXES) else f'a{axis}'}{'-' if side < 0 else '+'}"


def side_names(ndim: int) -> list:
    """Local. Every side's name of an ``ndim``-dimensional grid, axis by axis, low first."""
    return list(_known(ndim))


@functools.lru_cache(maxsize=None)
def _known(ndim: int) -> dict:
    # built once per dimension: solvers name their sides on every step
    return {side_name(a, s): (a, s) for a in range(ndim) for s in (-1, 1)}


def parse_side(name, decomp) -> tuple:
    """Local. ``(axis, side)`` of the side called ``name`` on ``decomp``;
    :class:`InputError` for a name that is not a side of this grid, or a side on a
    periodic axis (it has no physical boundary)."""
    known = _known(decomp.ndim)
    if not isinstance(name, str) or name not in known:
        raise InputError(f"unknown side {name!r}: the sides of this {decomp.ndim}-D grid are "
                         f"{side_names(decomp.ndim)}")
    if decomp.periodic[known[name][0]]:
        raise InputError(f"side {name!r} is on a periodic axis: it has no physical boundary "
                         "(and takes no boundary condition)")
    return known[name]


def physical_sides(decomp) -> list:
    """Local. ``(axis, side)`` of every physical (non-periodic) side, axis by axis."""
    return [(a, s) for a in range(decomp.ndim) if not decomp.periodic[a] for s in (-1, 1)]


def _sides(a: DistArray, sides, where):
    d = require_distarray(a, "a", where).decomp
    if sides is None:
        return physical_sides(d)
    if isinstance(sides, str):  # one side
        sides = [sides]
    return [parse_side(name, d) for name in sides]


def _region(a: DistArray, axis: int):
    """Index ranges along the other axes: ghosts included where they are valid before
    this axis is filled (exchanged, or a physical boundary of an earlier axis)."""
    d = a.decomp
    g = d.ghost
    region = []
    for b in range(d.ndim):
        n = d.local_shape[b]
        if b == axis:
            region.append(None)
            continue
        lo = 0 if (b < axis or not d.at_boundary(b, -1)) else g
        hi = n + 2 * g if (b < axis or not d.at_boundary(b, 1)) else g + n
        region.append(slice(lo, hi))
    return region


def _apply(a: DistArray, sides, fill):
    d = a.decomp
    for axis in range(d.ndim):
        for ax, side in sides:
            if ax != axis or not d.at_boundary(ax, side):
                continue
            region = _region(a, ax)
            fill(a.data, ax, side, region, d.ghost, d.local_shape[ax])


def dirichlet(a: DistArray, value=0.0, sides=None, face: bool = False) -> DistArray:
    """Local. Dirichlet data ``value`` at the given physical boundaries (``sides``: names
    such as ``["x-", "y+"]``, or one name; None: all).

    ``face=False``: set the ghost cells to ``value`` (``numpy.pad(mode="constant")``);
    on a vertex-centred grid the boundary points are owned points, which the solver
    keeps at ``value``. ``face=True`` (cell centring, the boundary is a face between a
    ghost and an owned cell): ghost k = 2 value - owned k, so the linear interpolant is
    ``value`` on the face."""
    sides = _sides(a, sides, "bc.dirichlet")

    def fill(data, ax, side, region, g, n):
        idx = list(region)
        if not face:
            idx[ax] = slice(0, g) if side < 0 else slice(g + n, n + 2 * g)
            data[tuple(idx)] = value
            return
        for k in range(g):
            dst, src = list(region), list(region)
            dst[ax], src[ax] = (g - 1 - k, g + k) if side < 0 else (g + n + k, g + n - 1 - k)
            data[tuple(dst)] = 2.0 * value - data[tuple(src)]
    _apply(a, sides, fill)
    return a


def neumann(a: DistArray, sides=None, flux=0.0) -> DistArray:
    """Local. Normal derivative ``flux`` (outward, default 0) at the given physical
    boundaries (``sides`` as for :func:`dirichlet`): mirror the owned cells into the
    ghosts and add ``distance * flux``.

    Cell centring mirrors about the boundary face (``numpy.pad(mode="symmetric")``:
    ghost k = owned k); vertex centring about the boundary point (``mode="reflect"``:
    ghost k = owned k + 1), so a centred difference across the boundary equals ``flux``
    (zero by default).
    """
    sides = _sides(a, sides, "bc.neumann")
    shift = 1 if a.decomp.centring == "vertex" else 0
    d = a.decomp
    # decided from the whole decomposition, so every rank raises or none does
    ranges = d.ownership_ranges()
    thin = [ax for ax, side in sides
            if shift and min(hi - lo for lo, hi in (ranges[ax][0], ranges[ax][-1])) < d.ghost + 1]
    if thin:
        raise InputError(f"Neumann on a vertex-centred grid reflects about the boundary point and "
                         f"needs boundary blocks of at least ghost+1 = {d.ghost + 1} points along "
                         f"axis {thin[0]}; use fewer ranks along it or a smaller ghost width")

    def fill(data, ax, side, region, g, n):
        h = d.spacing[ax]
        for k in range(g):
            dst, src = list(region), list(region)
            if side < 0:
                dst[ax], src[ax] = g - 1 - k, g + k + shift
            else:
                dst[ax], src[ax] = g + n + k, g + n - 1 - k - shift
            dist = (2 * k + 1 + shift) * h  # from the mirrored point to the ghost
            data[tuple(dst)] = data[tuple(src)] if flux == 0 else data[tuple(src)] + dist * flux
    _apply(a, sides, fill)
    return a
