"""Distributed sparse matrices assembled from scipy.sparse rows, and block-Jacobi.

Each rank holds the rows of its owned points as one CSR matrix whose **columns index
the rank's ghosted local array** (C order over the ghosted block). A product is then one
halo exchange (the decomposition's cached plan fills the ghost values the off-rank
columns need) and one local CSR product written straight into the output array: no
gathering of vector entries, no index translation at run time. The price: every column
must lie within the ghost width of the row's block (stencil-like matrices), checked at
assembly with a clear error.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

import pympc
from pympc.kernels.backend import resolve
from pympc.kernels.sparse import CSR_MATVEC_DOT, unsigned
from pympc.runtime import InputError, check_all

from .boundary import Boundaries


def _runs(flags):
    """[start, stop) ranges of the True entries of a boolean vector, as an (n, 2) array."""
    f = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(f))
    return edges.reshape(-1, 2).astype(np.uint64)


def _owned_global_flat(d):
    """Global flat (natural order) indices of the owned points, in local C order."""
    grids = np.meshgrid(*[np.arange(lo, hi) for lo, hi in zip(d.lo, d.hi)], indexing="ij")
    return np.ravel_multi_index([g.ravel() for g in grids], d.shape)


def _ghosted_positions(d, global_flat):
    """Ghosted-local flat positions of global flat indices (-1 where out of reach)."""
    idx = np.unravel_index(np.asarray(global_flat, dtype=np.int64), d.shape)
    g = d.ghost
    pos = []
    ok = np.ones(len(np.atleast_1d(global_flat)), dtype=bool)
    for a, ia in enumerate(idx):
        n_g = d.local_shape[a] + 2 * g
        p = ia - d.lo[a] + g
        if d.periodic[a]:  # reach across the wrap: a neighbour at N-1 of the point at 0
            for alt in (p + d.shape[a], p - d.shape[a]):
                p = np.where(((p < 0) | (p >= n_g)) & (alt >= 0) & (alt < n_g), alt, p)
        good = (p >= 0) & (p < n_g)
        ok &= good
        pos.append(np.where(good, p, 0))
    flat = np.ravel_multi_index(pos, d.ghosted_shape)
    return np.where(ok, flat, -1)


def _ghosted_csr(d, rows):
    """The owned ``rows`` (global columns) as a square CSR matrix over the ghosted block:
    rows and columns indexed by ghosted-local position, so the product lands in
    ``y.data`` directly. Collective: every rank learns whether some column is out of
    reach."""
    cols = _ghosted_positions(d, rows.indices) if rows.nnz else np.zeros(0, np.int64)
    check_all(bool((cols >= 0).all()), "a matrix column lies beyond the ghost width of its row's block "
              "(only stencil-like matrices are supported)", d.comm)
    ng = int(np.prod(d.ghosted_shape))
    owned_pos = np.ravel_multi_index(
        np.meshgrid(*[np.arange(d.ghost, d.ghost + n) for n in d.local_shape], indexing="ij"),
        d.ghosted_shape).ravel()
    counts = np.zeros(ng, dtype=np.int64)
    counts[owned_pos] = np.diff(rows.indptr)
    indptr = np.concatenate([[0], np.cumsum(counts)])  # owned positions increase with k
    itype = np.int32 if ng < 2 ** 31 - 1 and rows.nnz < 2 ** 31 - 1 else np.int64
    A = sp.csr_matrix((rows.data.astype(np.float64), cols.astype(itype), indptr.astype(itype)),
                      shape=(ng, ng))
    A.sort_indices()
    return A


def _split_rows(d, A):
    """The runs of rows that read no ghost value and of those that do: the product
    computes the first kind while the halo messages travel."""
    ng = A.shape[0]
    ghost_pos = np.ones(d.ghosted_shape, dtype=bool)
    ghost_pos[d.owned_slices()] = False
    reads_ghost = np.zeros(ng, dtype=bool)
    row_of_entry = np.repeat(np.arange(ng), np.diff(A.indptr))
    reads_ghost[row_of_entry[ghost_pos.reshape(-1)[A.indices]]] = True
    return _runs(~reads_ghost), _runs(reads_ghost)


class SparseOperator:
    """Collective. A matrix on a decomposition (its construction is collective: every
    rank learns whether some column is out of reach): ``rows`` is this rank's owned rows
    as a scipy sparse matrix with **global** column indices in natural (C) order; row
    ``k`` is the owned point ``k`` in local C order. ``apply(x, y)`` is collective (one
    halo exchange).

    ``unknown_mask``: a boolean array of the owned block's shape, True at the unknowns;
    :meth:`restrict` zeroes the other points of a right-hand side (None: every point is
    an unknown). ``backend``: the product's kernel, ``"numba"`` or ``"numpy"`` (None:
    ``PYMPC_KERNELS``; see :mod:`pympc.kernels.backend`)."""

    def __init__(self, decomp, rows, unknown_mask=None, backend=None):
        self.decomp = d = decomp
        n_owned = int(np.prod(d.local_shape))
        rows = sp.csr_matrix(rows)
        if rows.shape != (n_owned, int(np.prod(d.shape))):
            raise InputError(f"rows must be {n_owned} x {int(np.prod(d.shape))} (owned points x global "
                             f"points), got {rows.shape}")
        if unknown_mask is not None and np.shape(unknown_mask) != tuple(d.local_shape):
            raise InputError(f"unknown_mask must have the owned block's shape {tuple(d.local_shape)}, "
                             f"got {np.shape(unknown_mask)}")
        resolve(backend)  # a wrong name fails here, not at the first product
        self.backend = backend
        self._unknown = None if unknown_mask is None else np.asarray(unknown_mask, dtype=bool)
        self.A = A = _ghosted_csr(d, rows)
        self._uptr, self._uidx = unsigned(A.indptr), unsigned(A.indices)
        self._inner, self._outer = _split_rows(d, A)
        self.rows = rows
        self._diag = rows[np.arange(n_owned), _owned_global_flat(d)].A1 if n_owned else np.zeros(0)
        self.nnz = rows.nnz

    @classmethod
    def laplacian(cls, decomp, velocity=None, shift=0.0, bc=None, backend=None):
        """Collective. The assembled twin of :class:`solvers.krylov.StencilOperator`:
        ``-lap + v.grad + shift`` with homogeneous Dirichlet sides (their boundary points
        have empty rows, and are not unknowns) or periodic axes."""
        d = decomp
        b = Boundaries(d, bc)
        if any(k != "dirichlet" or v != 0 for k, v in b.conditions.values()):
            raise InputError("laplacian takes homogeneous Dirichlet or periodic boundaries")
        h = np.array(d.spacing, dtype=float)
        vel = np.zeros(d.ndim) if velocity is None else np.broadcast_to(np.asarray(velocity, float), (d.ndim,))
        region = b.unknown_region()
        local = np.meshgrid(*[np.arange(n) for n in d.local_shape], indexing="ij")
        unknown = np.ones(d.local_shape, dtype=bool)
        for a, (lo, hi) in enumerate(region):
            unknown &= (local[a] >= lo) & (local[a] < hi)
        rows_k = np.flatnonzero(unknown.ravel())
        gidx = [(local[a].ravel()[rows_k] + d.lo[a]) for a in range(d.ndim)]
        r_list = [rows_k]
        c_list = [np.ravel_multi_index(gidx, d.shape)]
        v_list = [np.full(len(rows_k), 2.0 * np.sum(1.0 / h ** 2) + shift)]
        for a in range(d.ndim):
            for s in (-1, 1):
                nb = [g.copy() for g in gidx]
                nb[a] = nb[a] + s
                if d.periodic[a]:
                    nb[a] %= d.shape[a]
                    keep = np.ones(len(rows_k), dtype=bool)
                else:
                    # neighbours that are Dirichlet boundary points hold 0: no column
                    keep = (nb[a] >= 1) & (nb[a] <= d.shape[a] - 2)
                val = -1.0 / h[a] ** 2 + s * vel[a] / (2.0 * h[a])
                r_list.append(rows_k[keep])
                c_list.append(np.ravel_multi_index([x[keep] for x in nb], d.shape))
                v_list.append(np.full(int(keep.sum()), val))
        rows = sp.csr_matrix((np.concatenate(v_list), (np.concatenate(r_list), np.concatenate(c_list))),
                             shape=(int(np.prod(d.local_shape)), int(np.prod(d.shape))))
        return cls(d, rows, unknown_mask=unknown, backend=backend)

    def apply(self, x, y) -> None:
        """Collective. ``y = A x`` (one halo exchange; owned rows only; y's ghosts are 0)."""
        self.apply_dot(x, y)

    def apply_dot(self, x, y) -> float:
        """Collective. ``y = A x`` as :meth:`apply`, and this rank's part of ``x . y``
        (reduce it with :func:`pympc.reduce_all`), computed in the same pass: conjugate
        gradients needs ``p . A p`` right after the product. The rows that read no ghost
        value are computed while the halo exchange is in flight."""
        product = CSR_MATVEC_DOT.select(self.backend)
        xv, out, data = x.data.reshape(-1), y.data.reshape(-1), self.A.data
        plan = pympc.start_halo(x)  # rows without ghost columns while messages travel
        s = product(self._uptr, self._uidx, data, xv, out, self._inner)
        plan.wait()
        return float(s + product(self._uptr, self._uidx, data, xv, out, self._outer))

    def diagonal(self):
        """Local. The diagonal of the owned rows (1 where a row is empty)."""
        dg = pympc.DistArray(self.decomp)
        diag = self._diag.reshape(self.decomp.local_shape)
        dg.owned[...] = np.where(diag == 0, 1.0, diag)
        return dg

    def restrict(self, b, out=None):
        """Local. ``b`` with the points that are not unknowns (``unknown_mask``) set to 0,
        into ``out`` (a new DistArray when None)."""
        out = b.empty_like() if out is None else out
        mask = self._unknown
        if mask is None:
            out.owned[...] = b.owned
        else:
            out.owned[...] = 0.0
            np.copyto(out.owned, b.owned, where=mask)
        return out


class BlockJacobi:
    """Local. Block-Jacobi: each rank solves with its own diagonal block
    (owned rows x owned columns), by a sparse LU (``"lu"``, exact) or an incomplete LU
    (``"ilu"``, scipy's spilu). Empty rows (Dirichlet points) are identity rows."""

    def __init__(self, op: SparseOperator, factor="lu", drop_tol=1e-4, fill_factor=10):
        d = op.decomp
        own = _owned_global_flat(d)
        local = op.rows[:, own].tocsc()
        empty = np.diff(op.rows.indptr) == 0
        local = local + sp.diags(empty.astype(float))
        if factor == "lu":
            self.solver = sp.linalg.splu(local.tocsc())
        elif factor == "ilu":
            self.solver = sp.linalg.spilu(local.tocsc(), drop_tol=drop_tol, fill_factor=fill_factor)
        else:
            raise InputError(f"factor must be 'lu' or 'ilu', got {factor!r}")
        self.shape = d.local_shape

    def apply(self, r, z) -> None:
        """Local. ``z = B^-1 r`` with this rank's block ``B``."""
        z.owned[...] = self.solver.solve(np.ascontiguousarray(r.owned).reshape(-1)).reshape(self.shape)
