"""The diffusion operator ``A u = -div(k grad u) + c u`` on vertex grids, matrix-free:
the one spatial operator of the implicit, IMEX and Newton solvers and of multigrid with
a shift (``docs/solvers/diffusion.md``).

- **Flux form**, 2d+1 points: the row of an unknown ``i`` is
  ``sum_a [kf_a(i+1/2) (u_i - u_{i+e_a}) + kf_a(i-1/2) (u_i - u_{i-e_a})] / h_a^2 + c_i u_i``.
- **Face rule**: ``face="arithmetic"`` (default) ``kf = (k_i + k_j) / 2``, the rule of
  :class:`solvers.heat.Heat` (its explicit step and this operator discretise the same
  semi-discrete problem); ``face="harmonic"``: ``2 k_i k_j / (k_i + k_j)`` (the better
  choice across jumps of ``k``).
- **Boundaries**: homogeneous Dirichlet (the boundary points are held, not unknowns) and
  periodic axes. Inhomogeneous data never enters the operator: solvers work on the
  correction (zero Dirichlet values). Neumann sides are refused (not implemented).
- ``k`` and ``shift`` (``c``) are each a number or a DistArray on ``decomp``. A number is
  not stored as an array: ``k`` and ``c`` numbers read only ``x`` per product (the
  constant operator's pass), a field ``c`` adds one array, field ``k`` the d face arrays.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

import pympc
from pympc import kernels
from pympc.runtime import InputError

from .boundary import Boundaries
from .krylov import StencilOperator

FACES = ("arithmetic", "harmonic")


def _face(a, b, rule):
    return 0.5 * (a + b) if rule == "arithmetic" else 2.0 * a * b / (a + b)


class DiffusionOperator(StencilOperator):
    """Collective. ``A u = -div(k grad u) + c u`` on the unknowns of ``decomp`` (a vertex
    grid; module doc): ``k`` > 0 a number or a DistArray (its halo is exchanged once,
    here), ``shift`` a number or a DistArray (read at the point only; the operator keeps
    a reference: change its values, or call :meth:`set_shift`), ``bc`` homogeneous
    Dirichlet (None) on every non-periodic side, ``face`` the face rule. The operator
    protocol of :mod:`solvers.krylov`: :meth:`apply`, :meth:`apply_dot` (the unknowns
    whose stencil reads no ghost are computed while the halo travels),
    :meth:`diagonal`, :meth:`restrict`, ``unknowns``."""

    def __init__(self, decomp, k=1.0, shift=0.0, bc=None, face="arithmetic"):
        if decomp.centring != "vertex":
            raise InputError("DiffusionOperator works on vertex-centred grids")
        if face not in FACES:
            raise InputError(f"face must be one of {list(FACES)}, got {face!r}")
        self.decomp, self.face = decomp, face
        self.bc = Boundaries(decomp, bc)
        if any(kind != "dirichlet" or v != 0 for kind, v in self.bc.conditions.values()):
            raise InputError("DiffusionOperator takes homogeneous Dirichlet or periodic boundaries (solve for "
                             "the correction, which has zero boundary values); Neumann sides are not implemented")
        self.h = np.array(decomp.spacing, dtype=float)
        self.velocity = np.zeros(decomp.ndim)
        self.region = self.bc.unknown_region()
        g = decomp.ghost
        self._sl = tuple(slice(g + lo, g + hi) for lo, hi in self.region)
        self._mask = None
        self._take_k(k)
        self.set_shift(shift)
        self._pieces()

    def _take_k(self, k):
        """Check ``k`` and build the face arrays ``s_a = kf_a / h_a^2`` of a field."""
        if not isinstance(k, pympc.DistArray):
            self.k = float(k)
            if not (self.k > 0 and np.isfinite(self.k)):
                raise InputError(f"k must be positive and finite, got {k}")
            self._s = None
            return
        why = self.decomp.mismatch(k.decomp, halo=True)
        if why is not None:
            raise InputError(f"k must live on the operator's decomposition (or one built alike): {why}")
        kmin, kmax = pympc.reduce_all(("min", k), ("max", k))
        if not (kmin > 0 and np.isfinite(kmax)):
            raise InputError(f"k must be positive and finite, got minimum {kmin}, maximum {kmax}")
        self.k = k
        kc = pympc.DistArray(self.decomp)
        kc.data[...] = 1.0  # 1 in the ghosts beyond physical sides: finite faces there
        kc.owned[...] = k.owned
        pympc.update_halo(kc)
        self._s = []
        for a, h in enumerate(self.h):
            lo = [slice(None)] * self.decomp.ndim
            hi = list(lo)
            lo[a], hi[a] = slice(0, -1), slice(1, None)
            s = np.zeros(kc.data.shape)
            s[tuple(lo)] = _face(kc.data[tuple(lo)], kc.data[tuple(hi)], self.face) / h ** 2
            self._s.append(s)

    def set_shift(self, shift) -> None:
        """Local. Set ``c``: a number or a DistArray on the operator's decomposition (kept
        by reference; only its owned values are read)."""
        if isinstance(shift, pympc.DistArray):
            why = self.decomp.mismatch(shift.decomp, halo=True)
            if why is not None:
                raise InputError(f"shift must live on the operator's decomposition (or one built alike): {why}")
            self.shift = shift
            c = shift.data
        else:
            self.shift = c = float(shift)
        self._kernel = kernels.Flux(self.decomp.ndim, self.h, self.k if self._s is None else self._s, c)

    def is_laplacian(self) -> bool:
        """Local. Whether this is the plain ``-lap`` (``k = 1``, ``shift = 0``)."""
        return self._s is None and self.k == 1.0 and not isinstance(self.shift, pympc.DistArray) \
            and self.shift == 0.0

    def face_coefficients(self) -> list:
        """Local. Per axis ``a`` a DistArray ``kf_a`` whose point ``i`` holds the face
        coefficient between ``i`` and ``i + e_a`` (not divided by ``h^2``; the last
        ghost layer along ``a`` holds 0)."""
        out = []
        for a, h in enumerate(self.h):
            f = pympc.DistArray(self.decomp)
            f.data[...] = self.k if self._s is None else self._s[a] * h ** 2
            out.append(f)
        return out

    def diagonal(self):
        """Local. The diagonal of A (1 on the points that are not unknowns)."""
        d = pympc.DistArray(self.decomp).fill(1.0)
        d.data[self._sl] = self._diag_local()
        return d

    def _diag_local(self):
        """The diagonal on this rank's unknowns (a numpy array of their shape)."""
        sl = self._sl
        shape = tuple(s.stop - s.start for s in sl)
        if self._s is None:
            diag = np.full(shape, 2.0 * float(np.sum(self.k / self.h ** 2)))
        else:
            diag = np.zeros(shape)
            for a, s in enumerate(self._s):
                back = list(sl)
                back[a] = slice(sl[a].start - 1, sl[a].stop - 1)
                diag += s[sl] + s[tuple(back)]
        c = self.shift.data[sl] if isinstance(self.shift, pympc.DistArray) else self.shift
        return diag + c

    def rows(self):
        """Local. This rank's rows of A as a scipy CSR matrix: one row per owned unknown
        (in C order of the owned block), columns the global C-order index of the grid
        point (the whole grid, boundary points included: their columns stay empty)."""
        d, sl = self.decomp, self._sl
        shape = tuple(s.stop - s.start for s in sl)
        gidx = np.meshgrid(*[np.arange(lo + s.start - d.ghost, lo + s.stop - d.ghost)
                             for lo, s in zip(d.lo, sl)], indexing="ij")
        me = np.ravel_multi_index(gidx, d.shape).ravel()
        rows, cols, vals = [np.arange(me.size)], [me], [self._diag_local().ravel()]
        for a in range(d.ndim):
            for step in (1, -1):
                nb = [g.copy() for g in gidx]
                nb[a] = nb[a] + step
                if d.periodic[a]:
                    nb[a] %= d.shape[a]
                src = list(sl)
                if step < 0:
                    src[a] = slice(sl[a].start - 1, sl[a].stop - 1)
                w = np.full(shape, self.k / self.h[a] ** 2) if self._s is None else self._s[a][tuple(src)]
                keep = self._is_unknown(nb)
                rows.append(np.arange(me.size)[keep.ravel()])
                cols.append(np.ravel_multi_index([g[keep] for g in nb], d.shape))
                vals.append(-w[keep])
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(me.size, int(np.prod(d.shape))))

    def _is_unknown(self, idx):
        """Whether the global points ``idx`` (per axis an index array) are unknowns."""
        d = self.decomp
        keep = np.ones(idx[0].shape, dtype=bool)
        for a in range(d.ndim):
            if not d.periodic[a]:
                keep &= (idx[a] > 0) & (idx[a] < d.shape[a] - 1)
        return keep
