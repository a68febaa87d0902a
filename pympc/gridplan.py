"""Planning a decomposition without MPI: the process grid, the block sizes and every check
of a request (:class:`pympc.grid.Decomposition` builds on it). Pure Python and numpy, so
the job layer validates a job file's grid for a rank count before any MPI starts
(``pympc check -n RANKS``), with the very checks the ranks will make.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

STENCILS = ("star", "box")
CENTRINGS = ("vertex", "cell")


def split_sizes(n: int, parts: int) -> list[int]:
    """Local. Sizes of ``parts`` blocks of ``n`` cells, the remainder spread over the first
    blocks (PETSc's rule): ``split_sizes(10, 3) == [4, 3, 3]``."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _divisors(n: int) -> list:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def _factorisations(n, k):
    if k == 1:
        yield (n,)
        return
    for d in _divisors(n):
        for rest in _factorisations(n // d, k - 1):
            yield (d,) + rest


def choose_dims(size: int, shape, dims, ghost: int = 1) -> tuple:
    """Local. A process grid for ``size`` ranks: the entries of ``dims`` that are > 0
    are kept, the zeros are chosen to minimise the halo surface among the grids whose
    blocks are at least ``ghost`` points thick (ties go to the most balanced grid, then to
    larger counts on earlier axes,
    as ``MPI_Dims_create``). With no valid choice, returns the most balanced grid (what
    ``MPI_Dims_create`` gives), which :func:`check_blocks` then rejects with a clear error."""
    free = [a for a, d in enumerate(dims) if d == 0]
    fixed = int(np.prod([d for d in dims if d > 0])) if len(free) < len(dims) else 1
    if not free:
        return tuple(dims)
    best = None
    for f in _factorisations(size // fixed, len(free)):
        cand = list(dims)
        for a, d in zip(free, f):
            cand[a] = d
        if any(cand[a] > shape[a] or (cand[a] > 1 and shape[a] // cand[a] < ghost) for a in range(len(shape))):
            continue
        local = [-(-shape[a] // cand[a]) for a in range(len(shape))]
        surface = sum(np.prod(local) / local[a] for a in range(len(shape)) if cand[a] > 1)
        key = (surface, max(cand), [-c for c in cand])
        if best is None or key < best[0]:
            best = (key, tuple(cand))
    return best[1] if best else _balanced(size // fixed, dims, free)


def per_axis(value, ndim, name, cast):
    """Local. ``value`` (a scalar, or one entry per axis) as a tuple of ``ndim``
    ``cast`` values; a wrong count is an :class:`InputError` naming ``name``."""
    if np.ndim(value) == 0:
        return tuple(cast(value) for _ in range(ndim))
    value = tuple(value)
    if len(value) != ndim:
        raise InputError(f"{name} has {len(value)} entries but the grid has {ndim} axes")
    return tuple(cast(v) for v in value)


def check_shape(shape) -> tuple:
    """Local. The global shape as a tuple of ints, each axis at least one point."""
    shape = tuple(int(n) for n in np.atleast_1d(shape))
    if len(shape) < 1:
        raise InputError("shape needs at least one axis")
    if any(n < 1 for n in shape):
        raise InputError(f"every axis needs at least one point, got shape {shape}")
    return shape


def requested_grid(shape, dims, sizes, size) -> tuple:
    """Local. ``(dims, sizes)`` as asked for, checked against each other and the rank count
    (zeros in dims are still free; sizes, if given, fix the grid)."""
    ndim = len(shape)
    dims = per_axis((0,) * ndim if dims is None else dims, ndim, "dims", int)
    if any(d < 0 for d in dims):
        raise InputError(f"dims must be >= 0 (0 = free), got {dims}")
    if sizes is not None:  # explicit block sizes per axis (e.g. a multigrid level aligned
        sizes = [[int(x) for x in s] for s in sizes]  # with the finer one)
        if len(sizes) != ndim or any(not s or sum(s) != n or min(s) < 1 for s, n in zip(sizes, shape)):
            raise InputError(f"sizes must give, per axis, positive block sizes that sum to {shape}")
        implied = tuple(len(s) for s in sizes)
        if any(d and d != i for d, i in zip(dims, implied)):
            raise InputError(f"sizes imply the process grid {implied}, which contradicts dims={dims}")
        # before the rank-count check below: a grid of the wrong size would leave ranks
        # out of the Cartesian communicator (MPI_COMM_NULL on them, an abort later)
        dims = implied
    fixed = int(np.prod([d for d in dims if d > 0])) if any(d > 0 for d in dims) else 1
    if size % fixed or (all(d > 0 for d in dims) and fixed != size):
        what = f"sizes= (block counts {dims})" if sizes is not None else f"dims={dims}"
        raise InputError(f"process grid {what} does not fit {size} ranks")
    return dims, sizes


def check_blocks(shape, dims, sizes, periodic, ghost) -> None:
    """Local. Every block at least one point and, where it has neighbours, ``ghost`` points thick."""
    for a in range(len(shape)):
        if dims[a] > shape[a]:
            raise InputError(f"axis {a} has {shape[a]} points but {dims[a]} ranks along it: "
                             f"more ranks than points (choose dims or fewer ranks)")
        thinnest = min(sizes[a]) if sizes is not None else shape[a] // dims[a]
        if dims[a] > 1 and thinnest < ghost:
            raise InputError(f"axis {a}: blocks of {thinnest} points are thinner than the ghost "
                             f"width {ghost} ({shape[a]} points over {dims[a]} ranks)")
        if dims[a] == 1 and periodic[a] and shape[a] < ghost:
            raise InputError(f"axis {a} is periodic with {shape[a]} points, fewer than the "
                             f"ghost width {ghost}")


def _balanced(n, dims, free) -> tuple:
    """The free entries of ``dims`` filled with the factorisation of ``n`` whose largest
    count is smallest (larger counts first), as ``MPI_Dims_create``."""
    best = min(_factorisations(n, len(free)), key=lambda f: (max(f), [-c for c in f]))
    cand = list(dims)
    for a, d in zip(free, best):
        cand[a] = d
    return tuple(cand)


def plan(shape, size: int, dims=None, periodic=False, ghost=1, sizes=None) -> tuple:
    """Local. Check a decomposition request for ``size`` ranks and choose its process
    grid: returns ``(shape, dims, sizes, periodic, ghost)`` (``sizes`` None for the even
    split), or raises the :class:`~pympc.errors.InputError` a
    :class:`~pympc.grid.Decomposition` of it would raise."""
    shape = check_shape(shape)
    if size > math.prod(shape):  # before any factorisation of a huge rank count
        raise InputError(f"{size} ranks for a grid of {math.prod(shape)} points: more ranks than points")
    dims, sizes = requested_grid(shape, dims, sizes, size)
    periodic = per_axis(periodic, len(shape), "periodic", bool)
    ghost = int(ghost)
    if ghost < 1:
        raise InputError(f"ghost width must be >= 1, got {ghost}")
    dims = choose_dims(size, shape, dims, ghost)
    check_blocks(shape, dims, sizes, periodic, ghost)
    return shape, dims, sizes, periodic, ghost
