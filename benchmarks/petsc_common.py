"""PETSc set-up shared by the issue-19 comparisons (bench_implicit, bench_newton,
bench_varmg): the 2-D DMDA laid out like pympc's ``dims=(P, 1)`` decomposition, the
5-point operator assembled from whole arrays (never a Python loop of ``setValues``),
KSPs and other PETSc objects configured from an option dictionary under a prefix of
their own (so configurations never leak into each other), and the ``-log_view`` row
parser for the compiled tutorials.

Layout: pympc's axis 0 (split over ranks with ``dims=(P, 1)``) is the DMDA's y axis
(``proc_sizes=(1, P)``), pympc's axis 1 the DMDA's x axis; each rank owns whole rows, so
PETSc's global numbering equals the natural (C-order) numbering of pympc's arrays, and an
owned block reshaped to ``(rows, n)`` is indexed as pympc's owned block is.

Only imported when petsc4py is installed (:func:`petsc` returns None otherwise).
"""

from __future__ import annotations

import itertools

import numpy as np

_prefixes = itertools.count()


def petsc():
    """Local. The PETSc module of petsc4py, or None when it is not installed."""
    try:
        from petsc4py import PETSc
    except ImportError:
        return None
    return PETSc


def dmda(n, ranks, ownership=None):
    """Collective. An ``n`` x ``n`` DMDA, stencil width 1, split ``(1, ranks)`` (whole rows
    per rank, as pympc's ``dims=(ranks, 1)``); ``ownership``: rows per rank (pympc's split),
    PETSc's own split when None."""
    PETSc = petsc()
    kw = {} if ownership is None else {"ownership_ranges": ([n], list(ownership))}
    return PETSc.DMDA().create([n, n], stencil_width=1, proc_sizes=(1, ranks), comm=PETSc.COMM_WORLD, **kw)


def owned_rows(da):
    """Local. (first, last + 1) of the grid rows (pympc's axis 0) this rank owns."""
    (_, _), (ys, ye) = da.getRanges()
    return ys, ye


def coordinates(da):
    """Local. (x0, x1): the coordinates along pympc's axes 0 and 1 of the owned points,
    each of shape (rows, n), on the unit square (spacing 1 / (n - 1))."""
    n = da.getSizes()[0]
    ys, ye = owned_rows(da)
    h = 1.0 / (n - 1)
    return np.meshgrid(np.arange(ys, ye) * h, np.arange(n) * h, indexing="ij")


def interior(da):
    """Local. Boolean (rows, n): owned points that are not on the boundary."""
    n = da.getSizes()[0]
    ys, ye = owned_rows(da)
    i = np.arange(ys, ye)[:, None]
    j = np.arange(n)[None, :]
    return (i > 0) & (i < n - 1) & (j > 0) & (j < n - 1)


def five_point(da, cx0, cx1, boundary_diag=1.0, diag=None):
    """Collective. AIJ of ``(2 cx0 + 2 cx1) u_ij - cx0 (u_i-1,j + u_i+1,j) - cx1 (u_i,j-1 +
    u_i,j+1)`` (+ ``diag``, an owned (rows, n) array, on the diagonal) on the interior
    points; boundary rows ``boundary_diag`` on the diagonal only, and no interior row
    refers to a boundary column (homogeneous Dirichlet eliminated: the matrix is
    symmetric, as pympc's operators on their unknowns). Built as one CSR."""
    import scipy.sparse as sp

    PETSc = petsc()
    n = da.getSizes()[0]
    ys, ye = owned_rows(da)
    inner = interior(da)
    gid = (np.arange(ys, ye)[:, None] * n + np.arange(n)[None, :])
    rows, cols, vals = [gid.ravel()], [gid.ravel()], []
    d = np.where(inner, 2 * cx0 + 2 * cx1, boundary_diag)
    if diag is not None:
        d = d + np.where(inner, diag, 0.0)
    vals.append(d.ravel())
    i = np.arange(ys, ye)[:, None] + 0 * gid
    j = np.arange(n)[None, :] + 0 * gid
    for di, dj, c in ((-1, 0, cx0), (1, 0, cx0), (0, -1, cx1), (0, 1, cx1)):
        ii, jj = i + di, j + dj
        keep = inner & (ii > 0) & (ii < n - 1) & (jj > 0) & (jj < n - 1)
        rows.append(gid[keep])
        cols.append((ii * n + jj)[keep])
        vals.append(np.full(int(keep.sum()), -c))
    r = np.concatenate(rows) - ys * n
    m = sp.csr_matrix((np.concatenate(vals), (r, np.concatenate(cols))), shape=((ye - ys) * n, n * n))
    m.sort_indices()
    nloc = (ye - ys) * n
    return PETSc.Mat().createAIJ(size=((nloc, n * n), (nloc, n * n)), comm=PETSc.COMM_WORLD,
                                 csr=(m.indptr.astype(PETSc.IntType), m.indices.astype(PETSc.IntType), m.data))


def configure(obj, options):
    """Local. Give the PETSc object ``obj`` (KSP, SNES, TS) a fresh option prefix, set
    ``options`` (names without the leading dash; None for a flag) under it and call its
    ``setFromOptions``. The options stay in the database: objects created later at set-up
    (PCMG's level KSPs) read them there, and the prefix is used once, so nothing leaks
    into another configuration."""
    PETSc = petsc()
    prefix = f"e19c{next(_prefixes)}_"
    obj.setOptionsPrefix(prefix)
    opts = PETSc.Options()
    for k, v in options.items():
        opts[prefix + k] = "" if v is None else v
    obj.setFromOptions()
    return obj


def ksp(A, options, da=None):
    """Collective. A KSP on ``A`` (and, for PCMG, the DMDA ``da`` for its interpolation,
    never to compute operators), configured by ``options`` (as :func:`configure`), set up.
    Defaults: CG, unpreconditioned 2-norm, atol 0 (pympc's stopping rule)."""
    PETSc = petsc()
    k = PETSc.KSP().create(comm=PETSc.COMM_WORLD)
    k.setOperators(A)
    if da is not None:
        k.setDM(da)
        k.setDMActive(PETSc.KSP.DMActive.ALL, False)
    configure(k, {"ksp_type": "cg", "ksp_norm_type": "unpreconditioned", "ksp_atol": 0, **options})
    k.setUp()
    return k


def mg_levels(n, coarsest=5):
    """Local. PCMG levels for an n = m 2^k + 1 grid down to about ``coarsest`` points."""
    levels = 1
    while (n - 1) % 2 == 0 and (n - 1) // 2 + 1 >= coarsest:
        n = (n - 1) // 2 + 1
        levels += 1
    return levels


def log_view_time(text, event):
    """Local. Max time over ranks (seconds) of ``event`` in a ``-log_view`` report, or None."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == event and len(parts) > 3:
            return float(parts[3])
    return None


def compare(mine, configs, ok=lambda v: True):
    """Local. Ratios of pympc's figures ``mine`` (``median``, ``setup``) to the best PETSc
    configuration of ``configs`` (name -> figures; those with an ``error``, or that ``ok``
    rejects (not converged), left out): on the solve time, and on setup + solve (each
    side's best by that sum). Empty when no configuration ran."""
    good = {k: v for k, v in configs.items() if "median" in v and ok(v)}
    if not good:
        return {}
    best = min(good, key=lambda k: good[k]["median"])
    both = min(good, key=lambda k: good[k]["median"] + good[k].get("setup", 0.0))
    return {"best_petsc": best, "pympc_over_best_petsc": mine["median"] / good[best]["median"],
            "best_petsc_setup_plus_solve": both,
            "setup_plus_solve_pympc_over_best_petsc": (mine["median"] + mine.get("setup", 0.0)) /
            (good[both]["median"] + good[both].get("setup", 0.0))}
