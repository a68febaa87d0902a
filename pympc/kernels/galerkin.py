"""The loops of the Galerkin (variable-coefficient) multigrid of :mod:`solvers.mgops`,
each beside its numpy reference (:class:`~pympc.kernels.backend.Kernel`: the same
arguments, the same operations in the same order, so pointwise results are
bit-identical; the sums two of them return are added pairwise by numpy).

2-D only. A level's operator is a **symmetric 9-point stencil** stored as five arrays
``C[0..4]`` on the level's ghosted block (``C[e][i, j] = A[(i, j), (i, j) + e]`` for the
centre and the four forward offsets ``FORWARD``; a backward entry is the forward entry of
the neighbour, ``A[(i, j), (i, j) - e] = C[e][(i, j) - e]``, so the operator is
symmetric bit for bit). A 5-point level has zero diagonal entries and says so with
``nine=0`` (its loops skip them).

Interpolation ``P`` is four weight arrays ``W[2 a + b]`` on the fine grid: the weight of
fine point ``(i, j)`` on its coarse parent ``(p0[a][i], p1[b][j])``, ``a, b`` = 0 for the
lower parent ``i // 2`` and 1 for the upper ``(i + 1) // 2`` (coinciding points have one
parent, weight in slot 0). Restriction is ``P^T``.
"""

from __future__ import annotations

import numpy as np

from .backend import Kernel

FORWARD = ((0, 0), (1, -1), (1, 0), (1, 1), (0, 1))
"""The offsets of the five stored arrays: the centre and the forward half of the 3x3
stencil (the backward half is their negation)."""


# ---------------------------------------------------------------------------------------
# neighbour sums (the one order of operations every loop and reference uses)
# ---------------------------------------------------------------------------------------
def _nsum(x, C, i, j, nine):
    # the off-diagonal part of row (i, j) applied to x: the one order of operations of
    # every loop (and of _nsum_numpy)
    s = ((C[2, i, j] * x[i + 1, j] + C[2, i - 1, j] * x[i - 1, j])
         + C[4, i, j] * x[i, j + 1]) + C[4, i, j - 1] * x[i, j - 1]
    if nine:
        s = s + (((C[1, i, j] * x[i + 1, j - 1] + C[1, i - 1, j + 1] * x[i - 1, j + 1])
                  + C[3, i, j] * x[i + 1, j + 1]) + C[3, i - 1, j - 1] * x[i - 1, j - 1])
    return s


def _gs2(u, f, C, invd, r0, r1, rs, c0, c1, cs, nine, omega):
    # in place on the points range(r0, r1, rs) x range(c0, c1, cs) (one colour: no two
    # of them are coupled)
    for i in range(r0, r1, rs):
        for j in range(c0, c1, cs):
            gs = (f[i, j] - _nsum(u, C, i, j, nine)) * invd[i, j]
            u[i, j] = u[i, j] + omega * (gs - u[i, j])


def _rb2(u, f, C, invd, l0, h0, l1, h1, p, c1, omega):
    # a 5-point level's two colours in one pass (colour of (i, j): (i + j + p) % 2): c1
    # on the whole box, the other colour on the box less its frame, a row behind (its
    # points then read only c1 values already relaxed); the frame needs the c1 ghosts,
    # after a halo exchange (the caller's)
    for i in range(l0, h0 + 1):
        for t in range(2):
            r = i - t
            if t == 0 and r >= h0:
                continue
            if t == 1 and (r <= l0 or r >= h0 - 1):
                continue
            c = c1 if t == 0 else 1 - c1
            lo, hi = (l1, h1) if t == 0 else (l1 + 1, h1 - 1)
            for j in range(lo + (c - (r + lo + p)) % 2, hi, 2):
                gs = (f[r, j] - _nsum(u, C, r, j, 0)) * invd[r, j]
                u[r, j] = u[r, j] + omega * (gs - u[r, j])


def _rb_numpy(u, f, C, invd, l0, h0, l1, h1, p, c1, omega):
    for c, (a0, b0, a1, b1) in ((c1, (l0, h0, l1, h1)), (1 - c1, (l0 + 1, h0 - 1, l1 + 1, h1 - 1))):
        if a0 >= b0 or a1 >= b1:
            continue
        r, q = _box_ix(a0, b0, a1, b1)
        gs = (f[r, q] - _nsum_numpy(u, C, r, q, 0)) * invd[r, q]
        new = u[r, q] + omega * (gs - u[r, q])
        mine = (r + q + p) % 2 == c
        u[r, q] = np.where(mine, new, u[r, q])


def _nsum_numpy(x, C, r, c, nine):
    # the neighbour sum of the loops, on the index grid r x c (np.ix_ arrays)
    s = ((C[2][r, c] * x[r + 1, c] + C[2][r - 1, c] * x[r - 1, c])
         + C[4][r, c] * x[r, c + 1]) + C[4][r, c - 1] * x[r, c - 1]
    if nine:
        s = s + (((C[1][r, c] * x[r + 1, c - 1] + C[1][r - 1, c + 1] * x[r - 1, c + 1])
                  + C[3][r, c] * x[r + 1, c + 1]) + C[3][r - 1, c - 1] * x[r - 1, c - 1])
    return s


def _gs_numpy(u, f, C, invd, r0, r1, rs, c0, c1, cs, nine, omega):
    r, c = np.ix_(np.arange(r0, r1, rs), np.arange(c0, c1, cs))
    gs = (f[r, c] - _nsum_numpy(u, C, r, c, nine)) * invd[r, c]
    u[r, c] = u[r, c] + omega * (gs - u[r, c])


def _resid2(u, f, C, r, l0, h0, l1, h1, nine):
    # r = f - A u on the box (no sum of squares: a strict-order reduction keeps the loop
    # from vectorising; the 5- and 9-point rows in loops of their own for the same reason)
    if nine:
        for i in range(l0, h0):
            for j in range(l1, h1):
                r[i, j] = f[i, j] - (C[0, i, j] * u[i, j] + _nsum(u, C, i, j, 1))
    else:
        for i in range(l0, h0):
            for j in range(l1, h1):
                r[i, j] = f[i, j] - (C[0, i, j] * u[i, j] + _nsum(u, C, i, j, 0))


def _box_ix(l0, h0, l1, h1):
    return np.ix_(np.arange(l0, h0), np.arange(l1, h1))


def _resid_numpy(u, f, C, r, l0, h0, l1, h1, nine):
    a, b = _box_ix(l0, h0, l1, h1)
    r[a, b] = f[a, b] - (C[0][a, b] * u[a, b] + _nsum_numpy(u, C, a, b, nine))


def _apply2(x, y, C, l0, h0, l1, h1, nine):
    # y = A x on the box, and the box's sum of x * y
    acc = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            v = C[0, i, j] * x[i, j] + _nsum(x, C, i, j, nine)
            y[i, j] = v
            acc += x[i, j] * v
    return acc


def _apply_numpy(x, y, C, l0, h0, l1, h1, nine):
    a, b = _box_ix(l0, h0, l1, h1)
    v = C[0][a, b] * x[a, b] + _nsum_numpy(x, C, a, b, nine)
    y[a, b] = v
    return float(np.vdot(x[a, b], v))


# ---------------------------------------------------------------------------------------
# transfers
# ---------------------------------------------------------------------------------------
def _restrict2(r, W, fc, l0, h0, l1, h1, pos0, m0, pos1, m1):
    # fc = P^T r on the coarse box: coarse point (I, J) gathers its fine children
    # pos + d - 1 (d = 0: the child whose upper parent it is, slot 1; d = 1, 2: slot 0),
    # each weighted by the child's own weight and m (0 where that child is not its child)
    for I in range(l0, h0):
        for J in range(l1, h1):
            s = 0.0
            for d0 in range(3):
                p0 = pos0[I] + d0 - 1
                a = 2 if d0 == 0 else 0
                for d1 in range(3):
                    p1 = pos1[J] + d1 - 1
                    b = 1 if d1 == 0 else 0
                    s += (m0[I, d0] * m1[J, d1]) * (W[a + b, p0, p1] * r[p0, p1])
            fc[I, J] = s


def _restrict_numpy(r, W, fc, l0, h0, l1, h1, pos0, m0, pos1, m1):
    I, J = _box_ix(l0, h0, l1, h1)
    s = 0.0
    for d0 in range(3):
        p0 = pos0[I] + d0 - 1
        for d1 in range(3):
            p1 = pos1[J] + d1 - 1
            w = W[(2 if d0 == 0 else 0) + (1 if d1 == 0 else 0)]
            s = s + (m0[I, d0] * m1[J, d1]) * (w[p0, p1] * r[p0, p1])
    fc[I, J] = s


def _prolong2(uc, W, uf, l0, h0, l1, h1, cl0, ch0, cl1, ch1):
    # uf += P uc on the fine box; c* = the parents' coarse positions per fine position
    for i in range(l0, h0):
        a0, b0 = cl0[i], ch0[i]
        for j in range(l1, h1):
            a1, b1 = cl1[j], ch1[j]
            uf[i, j] = uf[i, j] + (((W[0, i, j] * uc[a0, a1] + W[1, i, j] * uc[a0, b1])
                                    + W[2, i, j] * uc[b0, a1]) + W[3, i, j] * uc[b0, b1])


def _prolong_numpy(uc, W, uf, l0, h0, l1, h1, cl0, ch0, cl1, ch1):
    r, c = _box_ix(l0, h0, l1, h1)
    a0, b0, a1, b1 = cl0[r], ch0[r], cl1[c], ch1[c]
    uf[r, c] = uf[r, c] + (((W[0][r, c] * uc[a0, a1] + W[1][r, c] * uc[a0, b1])
                            + W[2][r, c] * uc[b0, a1]) + W[3][r, c] * uc[b0, b1])


# ---------------------------------------------------------------------------------------
# the Galerkin product (setup; global arrays, no ghosts)
# ---------------------------------------------------------------------------------------
def _entry(C, i, j, s0, s1, n0, n1):
    # A[(i, j), (i + s0, j + s1)] from the forward storage (indices already wrapped)
    if s0 > 0 or (s0 == 0 and s1 >= 0):
        e = 0 if s0 == 0 and s1 == 0 else (4 if s0 == 0 else 2 + s1)
        return C[e, i, j]
    ii, jj = (i + s0) % n0, (j + s1) % n1
    e = 4 if s0 == 0 else 2 - s1
    return C[e, ii, jj]


def _rap2(C, W, lo0, hi0, lo1, hi1, per0, per1, out):
    # out[3 (o0 + 1) + (o1 + 1), I, J] += P[i, I] A[i, j] P[j, I + o], fine rows i in
    # natural order, then the stencil offset s, then i's parent slot, then j's
    n0, n1 = C.shape[1], C.shape[2]
    m0, m1 = out.shape[1], out.shape[2]
    for i in range(n0):
        for j in range(n1):
            for s0 in range(-1, 2):
                ii = i + s0
                if ii < 0 or ii >= n0:
                    if not per0:
                        continue
                    ii = ii % n0
                for s1 in range(-1, 2):
                    jj = j + s1
                    if jj < 0 or jj >= n1:
                        if not per1:
                            continue
                        jj = jj % n1
                    a = _entry(C, i, j, s0, s1, n0, n1)
                    if a == 0.0:
                        continue
                    for pa in range(4):
                        wi = W[pa, i, j]
                        if wi == 0.0:
                            continue
                        I0 = lo0[i] if pa < 2 else hi0[i]
                        I1 = lo1[j] if pa % 2 == 0 else hi1[j]
                        v = wi * a
                        for pb in range(4):
                            wj = W[pb, ii, jj]
                            if wj == 0.0:
                                continue
                            J0 = lo0[ii] if pb < 2 else hi0[ii]
                            J1 = lo1[jj] if pb % 2 == 0 else hi1[jj]
                            o0 = (J0 - I0 + 1) % m0
                            o1 = (J1 - I1 + 1) % m1
                            out[3 * o0 + o1, I0, I1] += v * wj


def _rap_numpy(C, W, lo0, hi0, lo1, hi1, per0, per1, out):
    # every (i, s, pa, pb) term in the loop's order, summed by np.bincount (which adds in
    # input order); the loop's skipped terms are exact zeros here, and adding a zero to a
    # sum that started at +0.0 changes no bit
    n0, n1 = C.shape[1], C.shape[2]
    m0, m1 = out.shape[1], out.shape[2]
    i, j = np.meshgrid(np.arange(n0), np.arange(n1), indexing="ij")
    par = [(lo0, lo1), (lo0, hi1), (hi0, lo1), (hi0, hi1)]
    vals, idx = [], []
    for s0 in (-1, 0, 1):
        for s1 in (-1, 0, 1):
            ii, jj = i + s0, j + s1
            ok = np.ones(i.shape, dtype=bool)
            if not per0:
                ok &= (ii >= 0) & (ii < n0)
            if not per1:
                ok &= (jj >= 0) & (jj < n1)
            ii, jj = ii % n0, jj % n1
            a = np.where(ok, _entry_numpy(C, i, j, s0, s1, n0, n1), 0.0)
            for pa in range(4):
                I0, I1 = par[pa][0][i], par[pa][1][j]
                v = W[pa] * a
                for pb in range(4):
                    J0, J1 = par[pb][0][ii], par[pb][1][jj]
                    o = 3 * ((J0 - I0 + 1) % m0) + (J1 - I1 + 1) % m1
                    vals.append(v * W[pb][ii, jj])
                    idx.append((o * m0 + I0) * m1 + I1)
    vals = np.stack(vals, axis=-1).ravel()
    idx = np.stack(idx, axis=-1).ravel()
    out += np.bincount(idx, weights=vals, minlength=out.size).reshape(out.shape)


def _entry_numpy(C, i, j, s0, s1, n0, n1):
    if s0 > 0 or (s0 == 0 and s1 >= 0):
        e = 0 if s0 == 0 and s1 == 0 else (4 if s0 == 0 else 2 + s1)
        return C[e]
    e = 4 if s0 == 0 else 2 - s1
    return C[e][(i + s0) % n0, (j + s1) % n1]


GS = Kernel(_gs2, _gs_numpy, helpers=("_nsum",))
RB = Kernel(_rb2, _rb_numpy, helpers=("_nsum",))
RESIDUAL = Kernel(_resid2, _resid_numpy, helpers=("_nsum",))
APPLY = Kernel(_apply2, _apply_numpy, helpers=("_nsum",))
RESTRICT = Kernel(_restrict2, _restrict_numpy)
PROLONG = Kernel(_prolong2, _prolong_numpy)
RAP = Kernel(_rap2, _rap_numpy, helpers=("_entry",))
