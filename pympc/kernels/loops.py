"""The stencil loops of :mod:`pympc.kernels.stencils`, each beside its numpy reference.

The loops work on plain ghosted numpy arrays (``DistArray.data``) with absolute loop
bounds; the checks and the owned-block ``region`` convention live in
:mod:`pympc.kernels.stencils`. Each compiled loop and its reference form one
:class:`~pympc.kernels.backend.Kernel`: the same arguments, the same operations in the
same order, so the pointwise results are bit-identical (the sums a kernel returns are
added pairwise by numpy: they agree to a relative ``n * eps``).

Types follow numba's rules, which the references reproduce: a float64 coefficient times
a float32 value is float64, but the sum of two float32 values stays float32 (the
references convert such a sum to float64 after adding, never before); the result is
rounded to the array's dtype once, at the store.

The FTCS step on plain arrays (no DistArray) for code that times the kernel itself
(``pympc bench``), :func:`~pympc.kernels.stencils.ftcs_array`, is with the DistArray
kernels, beside the choice of the 2-D loop (plain or streaming stores).
"""

from __future__ import annotations

import numpy as np

from .backend import Kernel

LOOPS = {"plain": "plain stores, row pairs", "stream-pairs": "streaming stores, row pairs",
         "stream-rows": "streaming stores, one row and a prefetch"}
"""The compiled 2-D FTCS loops by the names ``stores=`` takes
(:func:`pympc.kernels.heat_step`) and :func:`pympc.kernels.streaming.chosen` returns, with
what each is (the streaming ones live in :mod:`pympc.kernels.streaming`)."""


def check_stores(stores) -> None:
    """Local. ``stores=`` must be None or a name of :data:`LOOPS`:
    :class:`~pympc.InputError` naming them otherwise."""
    if stores is not None and stores not in LOOPS:
        from ..errors import InputError

        raise InputError(f"stores must be one of {', '.join(map(repr, LOOPS))} or None "
                         f"(PYMPC_STREAMING_STORES decides), got {stores!r}")


def _f64(x):
    # the compiled loops compute in float64 whatever the arrays' dtype (numba promotes
    # float32 * float64) and round once at the store; the references do the same
    return x if x.dtype == np.float64 else x.astype(np.float64)


# ---------------------------------------------------------------------------------------
# FTCS (heat_step): one loop per dimension
# ---------------------------------------------------------------------------------------
# Inner loops run over 1-D views with an index that starts at the constant 0, so the
# compiler can prove it non-negative: no wraparound branch, and the loop vectorises
# (indexing u[i, j - 1] with a run-time j kept it scalar at ~15% of the roofline).
def _ftcs1(u, out, l0, h0, r0):
    o = out[l0:h0]
    uc, uw, ue = u[l0:h0], u[l0 - 1:h0 - 1], u[l0 + 1:h0 + 1]
    for k in range(o.shape[0]):
        c = uc[k]
        o[k] = c + r0 * (uw[k] - 2.0 * c + ue[k])


# Two output rows per pass (row pair): each pass reads four input rows for two output
# rows, not three for one, and each of the two middle rows feeds both outputs while it is
# in a register. Out of memory this ran 1.25-1.35x the one-row loop on 4096² (see
# benchmarks/results/stencil.md); each output point still gets the one-row formula, in
# the same order, so the bits are unchanged.
def _row_pair(u, out, i, l1, h1):
    # the rows of one pass: output rows i, i + 1; input rows i - 1 .. i + 2 (west and
    # east neighbours of the middle two)
    return (out[i, l1:h1], out[i + 1, l1:h1], u[i - 1, l1:h1], u[i, l1:h1], u[i + 1, l1:h1],
            u[i + 2, l1:h1], u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1], u[i + 1, l1 - 1:h1 - 1],
            u[i + 1, l1 + 1:h1 + 1])


def _one_row(u, out, i, l1, h1):
    # the rows of one output row i: (o, centre, west, east, row above, row below)
    return (out[i, l1:h1], u[i, l1:h1], u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1],
            u[i - 1, l1:h1], u[i + 1, l1:h1])


def _scalar_row(o, uc, uw, ue, um, up, lo, hi, r0, r1):
    # points lo..hi-1 of one output row (the rows of _one_row), the one-row formula
    for k in range(lo, hi):
        c = uc[k]
        o[k] = c + (r0 * (um[k] - 2.0 * c + up[k]) + r1 * (uw[k] - 2.0 * c + ue[k]))


def _ftcs2(u, out, l0, h0, l1, h1, r0, r1):
    i = l0
    while i + 1 < h0:
        o0, o1, um, u0, u1, up, w0, e0, w1, e1 = _row_pair(u, out, i, l1, h1)
        for k in range(o0.shape[0]):
            c, d = u0[k], u1[k]
            o0[k] = c + (r0 * (um[k] - 2.0 * c + d) + r1 * (w0[k] - 2.0 * c + e0[k]))
            o1[k] = d + (r0 * (c - 2.0 * d + up[k]) + r1 * (w1[k] - 2.0 * d + e1[k]))
        i += 2
    if i < h0:  # an odd row count: the last row alone
        o, uc, uw, ue, um, up = _one_row(u, out, i, l1, h1)
        _scalar_row(o, uc, uw, ue, um, up, 0, h1 - l1, r0, r1)


def _ftcs3(u, out, l0, h0, l1, h1, l2, h2, r0, r1, r2):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = out[i, j, l2:h2]
            uc, uw, ue = u[i, j, l2:h2], u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - 1, j, l2:h2], u[i + 1, j, l2:h2]
            us, un = u[i, j - 1, l2:h2], u[i, j + 1, l2:h2]
            for k in range(o.shape[0]):
                c = uc[k]
                o[k] = c + ((r0 * (um[k] - 2.0 * c + up[k]) + r1 * (us[k] - 2.0 * c + un[k]))
                            + r2 * (uw[k] - 2.0 * c + ue[k]))


def _shift(sl, axis, k):
    s = list(sl)
    s[axis] = slice(sl[axis].start + k, sl[axis].stop + k)
    return tuple(s)


def _ftcs_numpy(u, out, *args):
    # the arguments of _ftcs1/2/3: ndim (lo, hi) bounds, then ndim coefficients
    nd = u.ndim
    sl = tuple(slice(args[2 * a], args[2 * a + 1]) for a in range(nd))
    c = _f64(u[sl])
    acc = None
    for a, ra in enumerate(args[2 * nd:]):
        term = ra * (_f64(u[_shift(sl, a, -1)]) - 2.0 * c + _f64(u[_shift(sl, a, 1)]))
        acc = term if acc is None else acc + term
    out[sl] = c + acc


FTCS = {1: Kernel(_ftcs1, _ftcs_numpy), 2: Kernel(_ftcs2, _ftcs_numpy, helpers=("_row_pair", "_one_row", "_scalar_row")),
        3: Kernel(_ftcs3, _ftcs_numpy)}
FTCS_ND = Kernel(None, _ftcs_numpy)
"""The FTCS step beyond 3 axes: numpy only."""


def per_axis(values, ndim: int) -> tuple:
    """Local. A coefficient per axis as a tuple of ``ndim`` floats: a scalar repeated,
    or a sequence of ``ndim`` values (the kernels' ``r``, ``s``, ``h2inv``)."""
    if isinstance(values, (int, float)):  # the common case, without numpy's ~10 us
        return (float(values),) * ndim
    return tuple(float(x) for x in np.broadcast_to(np.asarray(values, dtype=float), (ndim,)))


# ---------------------------------------------------------------------------------------
# Kernels for the solvers, written once in 3-D: a 1-D or 2-D block is viewed as 3-D with
# leading axes of size 1, coefficient 0 and neighbour offset 0 there (they read their own
# point: never out of bounds; 0 * finite = 0 and 0 + y = y exactly, so the results equal
# a 1-D/2-D formula bit for bit). Arguments: arrays, then the bounds l0, h0, l1, h1, l2,
# h2 (absolute indices into the ghosted arrays), the offsets o0, o1, then coefficients.
# ---------------------------------------------------------------------------------------
def _box(a, l0, h0, l1, h1, l2, h2, d0=0, d1=0, d2=0):
    return a[l0 + d0:h0 + d0, l1 + d1:h1 + d1, l2 + d2:h2 + d2]


def _star(a, b, o0, o1):
    """The centre and the six neighbours the loops read, in the loops' names:
    (c, m, p, s, n, w, e) = centre, axis 0 -/+, axis 1 -/+, axis 2 -/+."""
    return (_box(a, *b), _box(a, *b, -o0), _box(a, *b, o0), _box(a, *b, 0, -o1), _box(a, *b, 0, o1),
            _box(a, *b, 0, 0, -1), _box(a, *b, 0, 0, 1))


def _leapfrog3(u, uo, out, l0, h0, l1, h1, l2, h2, o0, o1, r0, r1, r2):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = out[i, j, l2:h2]
            uc, uw, ue = u[i, j, l2:h2], u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            old = uo[i, j, l2:h2]
            for k in range(o.shape[0]):
                c = uc[k]
                o[k] = (2.0 * c - old[k]) + ((r0 * (um[k] - 2.0 * c + up[k]) + r1 * (us[k] - 2.0 * c + un[k]))
                                             + r2 * (uw[k] - 2.0 * c + ue[k]))


def _leapfrog_numpy(u, uo, out, l0, h0, l1, h1, l2, h2, o0, o1, r0, r1, r2):
    b = (l0, h0, l1, h1, l2, h2)
    c, um, up, us, un, uw, ue = (_f64(v) for v in _star(u, b, o0, o1))
    old = _f64(_box(uo, *b))
    _box(out, *b)[...] = (2.0 * c - old) + ((r0 * (um - 2.0 * c + up) + r1 * (us - 2.0 * c + un))
                                            + r2 * (uw - 2.0 * c + ue))


def _heatvar3(u, kc, out, l0, h0, l1, h1, l2, h2, o0, o1, s0, s1, s2):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = out[i, j, l2:h2]
            uc, uw, ue = u[i, j, l2:h2], u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            kk, kw, ke = kc[i, j, l2:h2], kc[i, j, l2 - 1:h2 - 1], kc[i, j, l2 + 1:h2 + 1]
            km, kp = kc[i - o0, j, l2:h2], kc[i + o0, j, l2:h2]
            ks, kn = kc[i, j - o1, l2:h2], kc[i, j + o1, l2:h2]
            for k in range(o.shape[0]):
                c = uc[k]
                k0 = kk[k]
                f0 = 0.5 * (k0 + kp[k]) * (up[k] - c) - 0.5 * (k0 + km[k]) * (c - um[k])
                f1 = 0.5 * (k0 + kn[k]) * (un[k] - c) - 0.5 * (k0 + ks[k]) * (c - us[k])
                f2 = 0.5 * (k0 + ke[k]) * (ue[k] - c) - 0.5 * (k0 + kw[k]) * (c - uw[k])
                o[k] = c + ((s0 * f0 + s1 * f1) + s2 * f2)


def _flux(k0, kl, kh, c, lo, hi):
    # 0.5 (k0 + kh) (hi - c) - 0.5 (k0 + kl) (c - lo): sums and differences of two array
    # values in the arrays' dtype (as numba types them), the rest in float64
    return 0.5 * _f64(k0 + kh) * _f64(hi - c) - 0.5 * _f64(k0 + kl) * _f64(c - lo)


def _heatvar_numpy(u, kc, out, l0, h0, l1, h1, l2, h2, o0, o1, s0, s1, s2):
    b = (l0, h0, l1, h1, l2, h2)
    c, um, up, us, un, uw, ue = _star(u, b, o0, o1)
    k0, km, kp, ks, kn, kw, ke = _star(kc, b, o0, o1)
    f0, f1, f2 = _flux(k0, km, kp, c, um, up), _flux(k0, ks, kn, c, us, un), _flux(k0, kw, ke, c, uw, ue)
    _box(out, *b)[...] = _f64(c) + ((s0 * f0 + s1 * f1) + s2 * f2)


def _jacobi3(u, f, out, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, inv_diag):
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = out[i, j, l2:h2]
            ff = f[i, j, l2:h2]
            uw, ue = u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            for k in range(o.shape[0]):
                o[k] = (ff[k] + ((w0 * (um[k] + up[k]) + w1 * (us[k] + un[k])) + w2 * (uw[k] + ue[k]))) * inv_diag


def _neighbour_sum(u, f, b, o0, o1, w0, w1, w2):
    # f + weighted sum of the neighbours, as the Jacobi, SOR and residual loops add them
    _, um, up, us, un, uw, ue = _star(u, b, o0, o1)
    return _f64(_box(f, *b)) + ((w0 * _f64(um + up) + w1 * _f64(us + un)) + w2 * _f64(uw + ue))


def _jacobi_numpy(u, f, out, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, inv_diag):
    b = (l0, h0, l1, h1, l2, h2)
    _box(out, *b)[...] = _neighbour_sum(u, f, b, o0, o1, w0, w1, w2) * inv_diag


def _rbsor3(u, f, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, inv_diag, omega, g0, g1, g2, color):
    # in place, on the points whose global index sum has the parity ``color``
    for i in range(l0, h0):
        for j in range(l1, h1):
            start = l2 + ((color - (i + g0 + j + g1 + l2 + g2)) % 2)
            for k in range(start, h2, 2):
                gs = (f[i, j, k] + ((w0 * (u[i - o0, j, k] + u[i + o0, j, k]) + w1 * (u[i, j - o1, k] + u[i, j + o1, k]))
                                    + w2 * (u[i, j, k - 1] + u[i, j, k + 1]))) * inv_diag
                u[i, j, k] += omega * (gs - u[i, j, k])


def _rbsor_numpy(u, f, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, inv_diag, omega, g0, g1, g2, color):
    # All points of one colour at once: a point's neighbours in the owned block have the
    # other colour (each reads its own point on a padded axis, before it is updated, as
    # the loop does), and ghosts are not written, so the loop's order does not matter.
    b = (l0, h0, l1, h1, l2, h2)
    gs = _neighbour_sum(u, f, b, o0, o1, w0, w1, w2) * inv_diag
    box = _box(u, *b)
    c = _f64(box)
    parity = (np.arange(l0, h0)[:, None, None] + np.arange(l1, h1)[None, :, None]
              + np.arange(l2, h2)[None, None, :] + (g0 + g1 + g2)) % 2
    np.copyto(box, c + omega * (gs - c), casting="same_kind", where=parity == color)


def _residual3(u, f, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, diag):
    s = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            ff, uc = f[i, j, l2:h2], u[i, j, l2:h2]
            uw, ue = u[i, j, l2 - 1:h2 - 1], u[i, j, l2 + 1:h2 + 1]
            um, up = u[i - o0, j, l2:h2], u[i + o0, j, l2:h2]
            us, un = u[i, j - o1, l2:h2], u[i, j + o1, l2:h2]
            for k in range(uc.shape[0]):
                r = ff[k] - (diag * uc[k] - ((w0 * (um[k] + up[k]) + w1 * (us[k] + un[k])) + w2 * (uw[k] + ue[k])))
                s += r * r
    return s


def _residual_numpy(u, f, l0, h0, l1, h1, l2, h2, o0, o1, w0, w1, w2, diag):
    b = (l0, h0, l1, h1, l2, h2)
    _, um, up, us, un, uw, ue = _star(u, b, o0, o1)
    r = _f64(_box(f, *b)) - (diag * _f64(_box(u, *b)) - ((w0 * _f64(um + up) + w1 * _f64(us + un))
                                                        + w2 * _f64(uw + ue)))
    return float(np.vdot(r, r))


def _convdiff3(x, y, l0, h0, l1, h1, l2, h2, o0, o1, dg, q0, q1, q2, v0, v1, v2, t0, t1, t2):
    # y = dg x - sum_a (x[i-1] + x[i+1]) / q_a + v_a (x[i+1] - x[i-1]) / t_a, and the sum
    # of x * y; padded axes have q = inf and v = 0 (they add exactly nothing)
    s = 0.0
    for i in range(l0, h0):
        for j in range(l1, h1):
            o = y[i, j, l2:h2]
            xc, xw, xe = x[i, j, l2:h2], x[i, j, l2 - 1:h2 - 1], x[i, j, l2 + 1:h2 + 1]
            xm, xp = x[i - o0, j, l2:h2], x[i + o0, j, l2:h2]
            xs, xn = x[i, j - o1, l2:h2], x[i, j + o1, l2:h2]
            for k in range(o.shape[0]):
                c = xc[k]
                acc = dg * c
                lo, hi = xm[k], xp[k]
                acc = acc - (lo + hi) / q0
                if v0 != 0.0:
                    acc = acc + v0 * (hi - lo) / t0
                lo, hi = xs[k], xn[k]
                acc = acc - (lo + hi) / q1
                if v1 != 0.0:
                    acc = acc + v1 * (hi - lo) / t1
                lo, hi = xw[k], xe[k]
                acc = acc - (lo + hi) / q2
                if v2 != 0.0:
                    acc = acc + v2 * (hi - lo) / t2
                o[k] = acc
                s += c * acc
    return s


def _convdiff_numpy(x, y, l0, h0, l1, h1, l2, h2, o0, o1, dg, q0, q1, q2, v0, v1, v2, t0, t1, t2):
    b = (l0, h0, l1, h1, l2, h2)
    c, xm, xp, xs, xn, xw, xe = _star(x, b, o0, o1)
    acc = dg * _f64(c)
    for (lo, hi), q, v, t in (((xm, xp), q0, v0, t0), ((xs, xn), q1, v1, t1), ((xw, xe), q2, v2, t2)):
        acc = acc - _f64(lo + hi) / q
        if v != 0.0:
            acc = acc + v * _f64(hi - lo) / t
    _box(y, *b)[...] = acc
    return float(np.vdot(_f64(c), acc))


LEAPFROG = Kernel(_leapfrog3, _leapfrog_numpy)
HEATVAR = Kernel(_heatvar3, _heatvar_numpy)
JACOBI = Kernel(_jacobi3, _jacobi_numpy)
RBSOR = Kernel(_rbsor3, _rbsor_numpy)
RESIDUAL = Kernel(_residual3, _residual_numpy)
CONVDIFF = Kernel(_convdiff3, _convdiff_numpy)
