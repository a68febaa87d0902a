"""The sparse matrix-vector product of :class:`solvers.sparse.SparseOperator`: a CSR
product over runs of rows, fused with this rank's part of the dot product ``x . y``.

Computing the rows in runs lets a caller compute the rows that read no ghost value while
a halo exchange is in flight, and the others after it. Empty rows give 0, with no
separate zeroing pass.
"""

from __future__ import annotations

import numpy as np

from .backend import Kernel


def _csr_matvec_dot(indptr, indices, data, x, y, runs):
    """y = A x over the rows of ``runs`` (pairs [start, stop) of row ranges; empty rows
    give 0: no separate zeroing pass) and the sum of x[i] y[i] over their non-empty
    rows, in one pass. Pass the index arrays as unsigned views: with signed ones numba
    checks every x[indices[k]] for a negative (wrap-around) index, which made this loop
    1.6x slower than scipy's."""
    s = 0.0
    for j in range(runs.shape[0]):
        for i in range(runs[j, 0], runs[j, 1]):
            lo, hi = indptr[i], indptr[i + 1]
            acc = 0.0
            for k in range(lo, hi):
                acc += data[k] * x[indices[k]]
            y[i] = acc
            if hi > lo:
                s += x[i] * acc
    return s


def _run_rows(runs):
    # the rows of the runs, in order, without a Python loop over the runs
    runs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    lengths = runs[:, 1] - runs[:, 0]
    first = np.repeat(runs[:, 0] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return first + np.arange(int(lengths.sum()))


def _csr_matvec_dot_numpy(indptr, indices, data, x, y, runs):
    # Row by row as the loop adds: the k-th entries of every row at once, k = 0, 1, ...
    # (acc starts at 0.0 and adds them in order), so y is the loop's, bit for bit.
    rows = _run_rows(runs)
    lo = indptr[rows].astype(np.int64)
    count = indptr[rows + 1].astype(np.int64) - lo
    acc = np.zeros(len(rows))
    for k in range(int(count.max()) if len(rows) else 0):
        live = count > k
        pos = lo[live] + k
        acc[live] += data[pos] * x[indices[pos]]
    y[rows] = acc
    full = count > 0
    return float(np.dot(x[rows[full]], acc[full]))


CSR_MATVEC_DOT = Kernel(_csr_matvec_dot, _csr_matvec_dot_numpy)
"""``CSR_MATVEC_DOT(indptr, indices, data, x, y, runs, backend=None)``: ``y = A x`` over
the row ``runs`` (an (n, 2) array of [start, stop) ranges) and the sum of ``x[i] y[i]``
over their non-empty rows; ``A`` in CSR form (``indptr``, ``indices``, ``data``), ``x``
and ``y`` flat float64 arrays. Give numba the index arrays as unsigned views (no
wrap-around check per entry). The numpy reference adds each row's entries in the same
order (``y`` bit-identical); the sum agrees to a relative ``n * eps``."""


def unsigned(a: np.ndarray) -> np.ndarray:
    """Local. An int32/int64 index array viewed as uint32/uint64 (no copy), as
    :data:`CSR_MATVEC_DOT`'s compiled loop wants its indices."""
    return a.view(np.uint32 if a.dtype == np.int32 else np.uint64)
