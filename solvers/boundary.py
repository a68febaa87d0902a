"""Boundary conditions of the solvers, per side of the domain.

``bc`` arguments accept:

* ``None`` or ``"dirichlet"``: homogeneous Dirichlet (0) on every non-periodic side;
* ``"neumann"``: zero normal derivative on every non-periodic side;
* a dict ``{side: spec}`` with sides named ``"x-"``, ``"x+"``, ``"y-"``, ``"y+"``,
  ``"z-"``, ``"z+"`` (axis 0, 1, 2; low and high: the names of :mod:`pympc.bc`), each
  spec ``("dirichlet", value)`` or ``("neumann", outward_derivative)`` (a list works
  too, as a TOML or JSON file gives it); sides left out are Dirichlet 0.

Periodic axes come from the decomposition and take no condition.
"""

from __future__ import annotations

from pympc import bc as _bc
from pympc.bc import parse_side, physical_sides, side_name
from pympc.kernels.blocking import Edge
from pympc.runtime import InputError

KINDS = ("dirichlet", "neumann")


def _condition(name, spec):
    """Local. ``(kind, value)`` from one side's spec, or a clear InputError."""
    ok = isinstance(spec, (tuple, list)) and len(spec) == 2 and spec[0] in KINDS
    try:
        value = float(spec[1]) if ok else None
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"the condition of side {name!r} must be (kind, value) with kind one of "
                         f"{list(KINDS)}, e.g. ('dirichlet', 1.0); got {spec!r}")
    return spec[0], value


class Boundaries:
    """Local. Parsed boundary conditions for a decomposition (see the module doc)."""

    def __init__(self, decomp, spec=None):
        self.decomp = decomp
        sides = physical_sides(decomp)
        if spec is None or spec == "dirichlet":
            spec = {}
        elif spec == "neumann":
            spec = {side_name(a, s): ("neumann", 0.0) for a, s in sides}
        elif not isinstance(spec, dict):
            raise InputError(f"bc must be None, 'dirichlet', 'neumann' or a dict {{side: (kind, value)}}, "
                             f"got {spec!r}")
        given = {parse_side(name, decomp): _condition(name, c) for name, c in spec.items()}
        self.conditions = {side: given.get(side, ("dirichlet", 0.0)) for side in sides}

    def parameters(self) -> dict:
        """Local. The conditions as plain data, ``{"x-": ["dirichlet", 1.0], ...}`` for
        every non-periodic side (the defaults spelled out), for outputs and checkpoints."""
        return {side_name(a, s): [kind, value] for (a, s), (kind, value) in sorted(self.conditions.items())}

    def dirichlet_sides(self):
        """Local. ``[(axis, side, value)]`` of the Dirichlet sides."""
        return [(a, s, v) for (a, s), (k, v) in self.conditions.items() if k == "dirichlet"]

    def apply(self, u) -> None:
        """Local. Fill ``u``'s ghosts at the physical boundaries (after a halo exchange)."""
        face = self.decomp.centring == "cell"
        for (a, s), (kind, value) in self.conditions.items():
            if kind == "dirichlet":
                _bc.dirichlet(u, value, sides=side_name(a, s), face=face)
            else:
                _bc.neumann(u, sides=side_name(a, s), flux=value)

    def edges(self) -> dict:
        """Local. ``{(axis, side): Edge}``: how :meth:`apply` fills the layer just beyond
        the unknowns at each physical side, as :func:`pympc.kernels.blocking.heat_steps`
        refills it before each of its steps (the same arithmetic: bit-identical)."""
        vertex = self.decomp.centring == "vertex"
        out = {}
        for (a, s), (kind, value) in self.conditions.items():
            if kind == "dirichlet":  # vertex: the held boundary point; cell: 2 value - x
                out[(a, s)] = Edge("value", value, 1) if vertex else Edge("minus", 2.0 * value, 1)
            else:  # the mirror of pympc.bc.neumann's first layer, plus distance * flux
                mirror = 2 if vertex else 1
                dist = mirror * self.decomp.spacing[a]
                out[(a, s)] = Edge("copy", 0.0, mirror) if value == 0 else Edge("plus", dist * value, mirror)
        return out

    def fix_points(self, u, ghosts=False) -> None:
        """Local. On a vertex-centred grid, hold the owned boundary points of Dirichlet
        sides at their values (they are not unknowns); ``ghosts=True``: along the other
        axes their ghost extensions too (what a deep-halo step reads there)."""
        d = self.decomp
        if d.centring != "vertex":
            return
        g = d.ghost
        for a, s, v in self.dirichlet_sides():
            if d.at_boundary(a, s):
                if ghosts:
                    idx = [slice(None)] * d.ndim
                    idx[a] = g if s < 0 else g + d.local_shape[a] - 1
                    u.data[tuple(idx)] = v
                else:
                    idx = [slice(None)] * d.ndim
                    idx[a] = 0 if s < 0 else -1
                    u.owned[tuple(idx)] = v

    def unknown_region(self):
        """Local. The owned region of unknowns: without the boundary points of Dirichlet
        sides on a vertex-centred grid (per axis ``(lo, hi)`` in owned coordinates)."""
        d = self.decomp
        region = [[0, n] for n in d.local_shape]
        if d.centring == "vertex":
            for a, s, _ in self.dirichlet_sides():
                if d.at_boundary(a, s):
                    if s < 0:
                        region[a][0] = 1
                    else:
                        region[a][1] = d.local_shape[a] - 1
        return [(lo, max(lo, hi)) for lo, hi in region]
