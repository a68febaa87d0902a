"""Serial numpy oracles shared by the decomposition, halo, boundary, kernel and solver
tests (and by docs/figures/make_verification.py)."""

import numpy as np

SENTINEL = -7777  # outside the tests' value range (|x| < 2000)


def pad(glob, ghost, periodic, modes=None, ncomp=0):
    """``glob`` padded by ``ghost`` on every spatial axis, one axis after another:
    periodic axes wrap, the others use ``modes[axis]`` (a ``np.pad`` mode, or
    ("constant", value)); default constant SENTINEL."""
    out = glob
    for a, p in enumerate(periodic):
        width = [(0, 0)] * out.ndim
        width[a] = (ghost, ghost)
        if p:
            out = np.pad(out, width, mode="wrap")
            continue
        mode = (modes or {}).get(a, ("constant", SENTINEL))
        if isinstance(mode, tuple):
            out = np.pad(out, width, mode="constant", constant_values=mode[1])
        else:
            out = np.pad(out, width, mode=mode)
    return out


def local_block(padded, decomp):
    """The rank's ghosted block cut out of the padded global array."""
    g = decomp.ghost
    return padded[tuple(slice(lo, hi + 2 * g) for lo, hi in zip(decomp.lo, decomp.hi))]


def ghost_mask(decomp, width, stencil, ncomp=0):
    """True where a ghosted point is compared: owned points, and ghosts within ``width``
    (for star stencils, only ghosts off the owned block along a single axis)."""
    g = decomp.ghost
    outside = []
    for a, n in enumerate(decomp.local_shape):
        i = np.arange(n + 2 * g)
        dist = np.maximum(g - i, i - (g + n - 1))  # > 0 in the ghost zone
        shape = [1] * decomp.ndim
        shape[a] = -1
        outside.append(dist.reshape(shape))
    too_far = sum((o > width).astype(int) for o in outside) > 0
    n_ghost_axes = sum((o > 0).astype(int) for o in outside)
    mask = ~too_far
    if stencil == "star":
        mask &= n_ghost_axes <= 1
    mask = np.broadcast_to(mask, tuple(n + 2 * g for n in decomp.local_shape))
    return mask.reshape(mask.shape + (1,) * ncomp) if ncomp else mask


def ftcs(padded, r, ghost):
    """Reference FTCS step on a padded global array: the owned (unpadded) result."""
    nd = len(r)
    core = tuple(slice(ghost, s - ghost) for s in padded.shape[:nd])
    c = padded[core]
    acc = None
    for a in range(nd):
        lo = list(core)
        hi = list(core)
        lo[a] = slice(ghost - 1, padded.shape[a] - ghost - 1)
        hi[a] = slice(ghost + 1, padded.shape[a] - ghost + 1)
        term = r[a] * (padded[tuple(lo)] - 2.0 * c + padded[tuple(hi)])
        acc = term if acc is None else acc + term
    return c + acc


def stencil_matrix(n, velocity=None):
    """The matrix of solvers.krylov.StencilOperator on an n x n Dirichlet grid of spacing
    h = 1/(n-1) (interior unknowns, natural order), assembled with scipy: the 5-point
    Laplacian, plus central convection ``velocity`` if given. Returns ``(h, A)``."""
    import scipy.sparse as sp

    h = 1.0 / (n - 1)
    m = n - 2
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(m, m))
    eye = sp.eye(m)
    A = (sp.kron(T, eye) + sp.kron(eye, T)) / h ** 2
    if velocity is not None:
        D = sp.diags([-1.0, 0.0, 1.0], [-1, 0, 1], shape=(m, m)) / (2 * h)
        A = A + velocity[0] * sp.kron(D, eye) + velocity[1] * sp.kron(eye, D)
    return h, A.tocsc()


def mode_ramp_rhs(d):
    """A DistArray on decomposition ``d``: a sine mode plus a ramp, every frequency
    present (the multigrid tests' right-hand side)."""
    import pympc

    def f(*x):
        modes, ramp = 1.0, 1.0
        for a, xi in enumerate(x):
            modes = modes * np.sin(np.pi * (a + 1) * xi)
            ramp = ramp * xi
        return modes + ramp
    return pympc.DistArray.from_function(d, f)
