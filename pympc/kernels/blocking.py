"""Several FTCS steps per halo exchange: temporal blocking of the heat step in cache.

A block whose ghosts are valid to depth ``k`` (one exchange of width ``k``, corners
included) can take ``k`` steps before the next exchange: step ``s`` is computed on the
owned region grown by ``k - s`` layers into the ghosts wherever a neighbour (or a
periodic wrap) is across the side, and the ghost values so recomputed are the very
values the neighbour computes (the same operations on the same inputs), so the result
is bit-identical to ``k`` steps with an exchange before each.

:func:`heat_steps` does those ``k`` steps **in cache**, reading the field once and writing
it once per ``k`` steps (a step that streams the whole block reads and writes it every
step, which caps it at the memory bandwidth):

- in 2-D, a **wavefront** down each strip of columns: step ``s`` takes a pair of rows as
  soon as step ``s - 1`` has taken the pair below it, every step keeping only its last six
  rows in a ring (``(k - 1) x 6`` rows of the strip's width for all ``k`` steps), so no
  point of a strip is computed twice;
- in 1-D and 3-D, **overlapped tiles**: each tile is advanced all ``k`` steps through two
  scratch tiles, its step ``s`` also computing the ``k - s`` layers around it that its
  later steps read (redundant work, but one rule for any tile and no order between
  tiles).

Every point of every step is computed exactly as in the one-step path, so the result is
the same bit for bit.

At a physical boundary nothing grows: the layer beyond the updated region is refilled
before every step from the rule the solver gives per side (:class:`Edge`: a value, or
a mirror of an owned layer, minus or plus a constant), the arithmetic of
:mod:`pympc.bc` applied to that one layer.

The compiled loop and its numpy reference (whole-block steps, no tiles) give the same
values bit for bit; tiles never change a result, only where it is computed.
"""

from __future__ import annotations

import threading
from collections import namedtuple

import numpy as np

from ..runtime import InputError
from .backend import Kernel, as3d
from .loops import _ftcs_numpy, per_axis
from .stencils import _check_arrays, _not_in_place

Edge = namedtuple("Edge", "mode value mirror")
Edge.__doc__ = """Local. How the layer just beyond the updated region at one physical side is
filled before every step: ``mode`` ``"value"`` (the layer is ``value``), ``"minus"``
(``value - x``), ``"copy"`` (``x``) or ``"plus"`` (``x + value``), with ``x`` the point
``mirror`` layers inwards (1: the first updated layer; 2: the second)."""

MODES = {"value": 0, "minus": 1, "copy": 2, "plus": 3}


def _rule(mode, c, x):
    # an edge point by its Edge rule (MODES), from the point x ``mirror`` layers inwards
    return c if mode == 0 else (c - x if mode == 1 else (x if mode == 2 else x + c))


def _fill(X, ox0, ox1, ox2, a, E, d, mode, c, l0, h0, l1, h1, l2, h2):
    # the layer at index E along axis a (over the box's range on the other axes) from
    # the layer at E + d; X's index 0 is the global (ghosted) index ox
    s0, s1, s2 = (d if a == 0 else 0), (d if a == 1 else 0), (d if a == 2 else 0)
    if a == 0:
        l0, h0 = E, E + 1
    elif a == 1:
        l1, h1 = E, E + 1
    else:
        l2, h2 = E, E + 1
    for i in range(l0 - ox0, h0 - ox0):
        for j in range(l1 - ox1, h1 - ox1):
            for m in range(l2 - ox2, h2 - ox2):
                X[i, j, m] = _rule(mode, c, X[i + s0, j + s1, m + s2])


def _sweep(X, ox0, ox1, ox2, Y, oy0, oy1, oy2, nd, l0, h0, l1, h1, l2, h2, o0, o1, r0, r1, r2):
    # one FTCS step of the box from X into Y (each with its own origin), with the
    # arithmetic of _ftcs1/_ftcs3 for nd = 1/3 (the block viewed as 3-D; 2-D blocks go
    # through the wavefront, _strips)
    a2, b2 = l2 - ox2, h2 - ox2
    for i in range(l0, h0):
        for j in range(l1, h1):
            xi, xj = i - ox0, j - ox1
            o = Y[i - oy0, j - oy1, l2 - oy2:h2 - oy2]
            uc, uw, ue = X[xi, xj, a2:b2], X[xi, xj, a2 - 1:b2 - 1], X[xi, xj, a2 + 1:b2 + 1]
            if nd == 1:
                for k in range(o.shape[0]):
                    c = uc[k]
                    o[k] = c + r2 * (uw[k] - 2.0 * c + ue[k])
            else:
                um, up = X[xi - o0, xj, a2:b2], X[xi + o0, xj, a2:b2]
                us, un = X[xi, xj - o1, a2:b2], X[xi, xj + o1, a2:b2]
                for k in range(o.shape[0]):
                    c = uc[k]
                    o[k] = c + ((r0 * (um[k] - 2.0 * c + up[k]) + r1 * (us[k] - 2.0 * c + un[k]))
                                + r2 * (uw[k] - 2.0 * c + ue[k]))


# geo (int64): T (6: the updated box, ghosted indices), grow (6: 1 where a side has a
# neighbour), mode (6: -1 none, else MODES), mirror (6), tile (3), o0, o1, nd, k;
# con (float64): value (6), r0, r1, r2.
def _box(geo, b, k, s):
    # the box step s of a tile computes: the tile grown by k - s where a neighbour or
    # another tile is across, never beyond the updated box at a physical side
    e = k - s
    c = np.empty(6, np.int64)
    for a in range(3):
        lo, hi = b[2 * a] - e, b[2 * a + 1] + e
        if geo[6 + 2 * a] == 0:
            lo = max(lo, geo[2 * a])
        if geo[7 + 2 * a] == 0:
            hi = min(hi, geo[2 * a + 1])
        c[2 * a], c[2 * a + 1] = lo, hi
    return c


def _fill_edges(X, org, geo, con, c):
    # before a step from scratch X: the layer beyond each physical side the box touches
    for a in range(3):
        for side in range(2):
            q = 2 * a + side
            mode = geo[12 + q]
            if mode < 0 or geo[6 + q] != 0 or c[q] != geo[q]:
                continue
            E = geo[q] - 1 if side == 0 else geo[q]
            d = geo[18 + q] if side == 0 else -geo[18 + q]
            _fill(X, org[0], org[1], org[2], a, E, d, mode, con[q], c[0], c[1], c[2], c[3], c[4], c[5])


def _tile(src, dst, s1, s2, geo, con, b):
    # the k steps of one tile b: src -> s1 -> s2 -> s1 ... -> dst
    nd, k = geo[29], geo[30]
    org = np.zeros(3, np.int64)
    for a in range(3 - nd, 3):
        org[a] = b[2 * a] - (k + 1)
    zero = np.zeros(3, np.int64)
    for s in range(1, k + 1):
        c = _box(geo, b, k, s)
        X, ox = (src, zero) if s == 1 else ((s1, org) if s % 2 == 0 else (s2, org))
        Y, oy = (dst, zero) if s == k else ((s1, org) if s % 2 == 1 else (s2, org))
        if s > 1:
            _fill_edges(X, org, geo, con, c)
        _sweep(X, ox[0], ox[1], ox[2], Y, oy[0], oy[1], oy[2], nd, c[0], c[1], c[2], c[3], c[4], c[5],
               geo[27], geo[28], con[6], con[7], con[8])


def _tiles(src, dst, s1, s2, geo, con):
    b = np.empty(6, np.int64)
    for t0 in range(geo[0], geo[1], geo[24]):
        for t1 in range(geo[2], geo[3], geo[25]):
            for t2 in range(geo[4], geo[5], geo[26]):
                b[0], b[1] = t0, min(t0 + geo[24], geo[1])
                b[2], b[3] = t1, min(t1 + geo[25], geo[3])
                b[4], b[5] = t2, min(t2 + geo[26], geo[5])
                _tile(src, dst, s1, s2, geo, con, b)


# ---------------------------------------------------------------------------------------
# 2-D: a wavefront along the rows of a column strip. Step s computes its rows r, r + 1
# right after step s - 1 has computed rows r + 2, r + 3, so each step keeps only its last
# six rows (a ring: row r in slot r % 6) and no row is computed twice; the steps of a
# strip together hold (k - 1) x 6 rows of the strip's width, which stay in cache.
# ---------------------------------------------------------------------------------------
def _row(Xm, Xc, Xp, xo, Y, yo, lo, hi, r0, r1):
    # one 2-D FTCS row: columns lo..hi (global) of rows Xm, Xc, Xp (column origin xo)
    # into Y (origin yo), with _ftcs2's arithmetic
    a, b = lo - xo, hi - xo
    o = Y[lo - yo:hi - yo]
    um, uc, up, uw, ue = Xm[a:b], Xc[a:b], Xp[a:b], Xc[a - 1:b - 1], Xc[a + 1:b + 1]
    for q in range(o.shape[0]):
        c = uc[q]
        o[q] = c + (r0 * (um[q] - 2.0 * c + up[q]) + r1 * (uw[q] - 2.0 * c + ue[q]))


def _put(Y, yo, E, d, mode, c):
    # one edge point of a row (index E, origin yo) from the point d further in
    Y[E - yo] = _rule(mode, c, Y[E + d - yo])


def _edge_row(R, src_row, dst_row, org, lo, hi, mode, c):
    # a physical row edge of one step: ring row dst_row over columns lo..hi from src_row
    for j in range(lo - org, hi - org):
        R[dst_row, j] = _rule(mode, c, R[src_row, j])


def _cols(geo, c0, c1, e):
    # the columns a step computes in the strip c0..c1: grown by e, not past a physical side
    lo, hi = c0 - e, c1 + e
    if geo[10] == 0:
        lo = max(lo, geo[4])
    if geo[11] == 0:
        hi = min(hi, geo[5])
    return lo, hi


def _pair_row(Xm, X0, X1, Xp, xo, Y0, Y1, yo, lo, hi, r0, r1):
    # two 2-D FTCS rows at once (as loops._ftcs2: four input rows loaded for two outputs)
    a, b = lo - xo, hi - xo
    o0, o1 = Y0[lo - yo:hi - yo], Y1[lo - yo:hi - yo]
    um, u0, u1, up = Xm[a:b], X0[a:b], X1[a:b], Xp[a:b]
    w0, e0, w1, e1 = X0[a - 1:b - 1], X0[a + 1:b + 1], X1[a - 1:b - 1], X1[a + 1:b + 1]
    for q in range(o0.shape[0]):
        c, d = u0[q], u1[q]
        o0[q] = c + (r0 * (um[q] - 2.0 * c + d) + r1 * (w0[q] - 2.0 * c + e0[q]))
        o1[q] = d + (r0 * (c - 2.0 * d + up[q]) + r1 * (w1[q] - 2.0 * d + e1[q]))


def _step_rows(src, dst, ring, geo, con, s, rlo, rhi, org, c0, c1):
    # rows rlo..rhi (one or two) of step s in the strip c0..c1; step s - 1's rows come
    # from src (s = 1) or its ring (row r in slot r % 6), step s's go to its ring or dst
    k, T1l, T1h = geo[30], geo[2], geo[3]
    lo, hi = _cols(geo, c0, c1, k - s)
    if s == 1:
        X, xo, xr = src, 0, 0
    else:
        X, xo, xr = ring[s - 1], org, 6
        plo, phi = _cols(geo, c0, c1, k - s + 1)
        if geo[8] == 0 and rlo <= T1l < rhi and geo[14] >= 0:  # the low row edge of step s - 1
            _edge_row(X, (T1l - 1 + geo[20]) % 6, (T1l - 1) % 6, org, plo, phi, geo[14], con[2])
        if geo[9] == 0 and rlo <= T1h - 1 < rhi and geo[15] >= 0:
            _edge_row(X, (T1h - geo[21]) % 6, T1h % 6, org, plo, phi, geo[15], con[3])
    Y, yo, yr = (dst, 0, 0) if s == k else (ring[s], org, 6)
    a, b = (rlo - 1) % xr if xr else rlo - 1, rlo % xr if xr else rlo  # rows rlo - 1, rlo, rlo + 1, rlo + 2
    c, e = (rlo + 1) % xr if xr else rlo + 1, (rlo + 2) % xr if xr else rlo + 2
    o0, o1 = rlo % yr if yr else rlo, (rlo + 1) % yr if yr else rlo + 1
    if rhi - rlo == 2:
        _pair_row(X[a], X[b], X[c], X[e], xo, Y[o0], Y[o1], yo, lo, hi, con[7], con[8])
    else:
        _row(X[a], X[b], X[c], xo, Y[o0], yo, lo, hi, con[7], con[8])
    if s < k:  # the column edges of the new rows
        for o in range(rlo, rhi):
            if geo[10] == 0 and lo == geo[4] and geo[16] >= 0:
                _put(Y[o % 6], org, geo[4] - 1, geo[22], geo[16], con[4])
            if geo[11] == 0 and hi == geo[5] and geo[17] >= 0:
                _put(Y[o % 6], org, geo[5], -geo[23], geo[17], con[5])


def _strip(src, dst, ring, geo, con, c0, c1):
    # the wavefront in pairs of rows (2m, 2m + 1): step s takes pair m once step s - 1 has
    # taken pair m + 1 (the rows 2m - 1 .. 2m + 2 it reads), at time m + s
    k = geo[30]
    org = c0 - (k + 1)
    for tau in range((geo[2] - (k - 1) * geo[8]) // 2 + 1, (geo[3] - 1) // 2 + k + 1):
        for s in range(1, k + 1):
            m = tau - s
            rlo = max(2 * m, geo[2] - (k - s) * geo[8])
            rhi = min(2 * m + 2, geo[3] + (k - s) * geo[9])
            if rlo < rhi:
                _step_rows(src, dst, ring, geo, con, s, rlo, rhi, org, c0, c1)


def _strips(src, dst, ring, geo, con):
    for c0 in range(geo[4], geo[5], geo[26]):
        _strip(src[0], dst[0], ring, geo, con, c0, min(c0 + geo[26], geo[5]))


def _tiles_numpy(src, dst, s1, s2, geo, con):
    # the reference: k whole-block steps (the one tile of the updated box), in numpy
    nd, k = int(geo[29]), int(geo[30])
    whole = np.asarray(geo[:6], np.int64)
    X = src
    for s in range(1, k + 1):
        c = _box(geo, whole, k, s)
        if s > 1:
            _fill_edges_numpy(X, geo, con, c)
        Y = dst if s == k else np.empty_like(src)
        if all(c[2 * a] < c[2 * a + 1] for a in range(3)):
            squeeze = (0,) * (3 - nd)
            bounds = [int(x) for x in c[2 * (3 - nd):]]
            _ftcs_numpy(X[squeeze], Y[squeeze], *bounds, *(float(x) for x in con[9 - nd:9]))
        X = Y


def _fill_edges_numpy(X, geo, con, c):
    for q in range(6):
        a, side = divmod(q, 2)
        mode = int(geo[12 + q])
        if mode < 0 or geo[6 + q] != 0 or c[q] != geo[q]:
            continue
        E = int(geo[q]) - 1 if side == 0 else int(geo[q])
        d = int(geo[18 + q]) if side == 0 else -int(geo[18 + q])
        dst = [slice(int(c[2 * b]), int(c[2 * b + 1])) for b in range(3)]
        dst[a] = slice(E, E + 1)
        srcs = list(dst)
        srcs[a] = slice(E + d, E + d + 1)
        x, v = X[tuple(srcs)], con[q]
        X[tuple(dst)] = (v if mode == 0 else v - x if mode == 1 else x if mode == 2 else x + v)


TILES = Kernel(_tiles, _tiles_numpy, helpers=("_rule", "_tile", "_box", "_fill_edges", "_fill", "_sweep"))
"""The tiled k-step FTCS loop (``heat_steps`` in 1-D and 3-D) and its whole-block numpy
reference."""
STRIPS = Kernel(_strips, lambda src, dst, ring, geo, con: _tiles_numpy(src, dst, None, None, geo, con),
                helpers=("_rule", "_strip", "_step_rows", "_pair_row", "_cols", "_row", "_put", "_edge_row"))
"""The 2-D k-step FTCS wavefront (``heat_steps``) and the same whole-block reference."""

#: Tile sizes per axis count when none is given (axis by axis; the last axis is the rows
#: the inner loop runs along): the rule of docs/blocking.md, measured by
#: benchmarks/bench_blocking.py. In 2-D the second size is the width of the column strips
#: the wavefront runs in (whole rows: the widest strip was the fastest) and the first is
#: not used: a strip's rows stream through the steps' rings.
DEFAULT_TILES = {1: (1 << 20,), 2: (1 << 20, 1 << 20), 3: (8, 32, 1 << 20)}


def heat_steps(u, out, r, steps, edges=None, region=None, tile=None, backend=None):
    """Local. ``steps`` FTCS steps of :func:`~pympc.kernels.heat_step` at once, tile by
    tile in cache: ``out``'s ``region`` (default: the owned block) becomes what ``steps``
    one-step updates with a halo exchange before each would give, bit for bit.

    ``u``'s ghosts must be valid to depth ``steps`` (``steps`` <= the ghost width; one
    ``update_halo(u, stencil="box", width=steps)``: corners are read from the second step
    on) wherever a neighbour or a periodic wrap is across a side, and the layer beyond
    ``region`` filled at every physical side (the boundary conditions, as for one step).
    ``edges``: ``{(axis, side): Edge}`` for every physical side (side -1 low, +1 high):
    how that layer is refilled before each later step; sides with a neighbour grow into
    the ghosts instead. ``tile``: the tile's size per axis (default
    :data:`DEFAULT_TILES`; in 2-D the width of the column strips of the wavefront, the
    first size unused); the result does not depend on it. ``u`` is only read.

    1-D and 3-D: overlapped tiles, each advanced ``steps`` steps through two scratch
    tiles. 2-D: a wavefront down each column strip, every step keeping its last six rows
    in a ring, no point computed twice within a strip."""
    d = _check_arrays("heat_steps", ("u", "out"), u, out)
    _not_in_place("heat_steps", u, out)
    k = int(steps)
    if not 1 <= k <= d.ghost:
        raise InputError(f"heat_steps: steps must be in 1..{d.ghost} (the ghost width), got {steps}")
    geo, con = _geometry(u, per_axis(r, d.ndim), k, edges or {}, region, tile)
    if any(geo[2 * a] >= geo[2 * a + 1] for a in range(3)):
        return out
    if d.ndim == 2:  # a ring of six rows per step, the strip's width and k + 1 more each side
        ring = _scratch((k, 6, int(geo[26]) + 2 * (k + 1)), u.dtype)[0]
        STRIPS(as3d(u.data), as3d(out.data), ring, geo, con, backend=backend)
        return out
    # two scratch tiles, with room for the k + 1 layers around a tile (one step needs none)
    shape = [1] * (3 - d.ndim) + [int(t) + 2 * (k + 1) if k > 1 else 1 for t in geo[27 - d.ndim:27]]
    s1, s2 = _scratch(tuple(shape), u.dtype)
    TILES(as3d(u.data), as3d(out.data), s1, s2, geo, con, backend=backend)
    return out


_SCRATCH = threading.local()  # per thread: the kernels release the GIL


def _scratch(shape, dtype):
    """Two scratch arrays of ``shape``, kept for the next call of this thread (a fresh
    allocation of a few MiB is a fresh mmap: page faults on every call); the last shape
    used per dtype only."""
    kept_all = _SCRATCH.__dict__.setdefault("arrays", {})
    key = np.dtype(dtype).str
    kept = kept_all.get(key)
    if kept is None or kept[0].shape != shape:
        kept = kept_all[key] = (np.empty(shape, dtype), np.empty(shape, dtype))
    return kept


def _tile_sizes(tile, nd):
    """``tile`` as ``nd`` whole numbers >= 1 (one number: every axis), or InputError."""
    sizes = [tile] * nd if np.ndim(tile) == 0 else list(tile) if isinstance(tile, (list, tuple)) else None
    ok = sizes is not None and len(sizes) == nd and all(
        isinstance(t, (int, np.integer)) and not isinstance(t, bool) and t >= 1 for t in sizes)
    if not ok:
        raise InputError(f"heat_steps: tile must be {nd} whole numbers >= 1 (one per axis), got {tile!r}")
    return tuple(int(t) for t in sizes)


def _geometry(u, r, k, edges, region, tile):
    """The packed arguments of the loop: the updated box, which sides grow, the edge
    rules, the tile, the neighbour offsets, ``k``; the constants and ``r``."""
    d = u.decomp
    nd, g = d.ndim, d.ghost
    region = region if region is not None else [(0, n) for n in d.local_shape]
    if len(region) != nd or not all(0 <= lo <= hi <= n for (lo, hi), n in zip(region, d.local_shape)):
        raise InputError(f"heat_steps: region must be {nd} (lo, hi) pairs inside the owned block "
                         f"{[(0, n) for n in d.local_shape]}, got {region}")
    tile = DEFAULT_TILES[nd] if tile is None else _tile_sizes(tile, nd)
    geo = np.zeros(31, np.int64)
    con = np.zeros(9)
    geo[0:6] = (0, 1, 0, 1, 0, 1)  # the leading axes of a 1-D or 2-D block: one point
    geo[12:18] = -1
    geo[24:27] = 1
    for a in range(nd):
        v = 3 - nd + a  # the axis in the 3-D view
        geo[2 * v], geo[2 * v + 1] = g + region[a][0], g + region[a][1]
        geo[24 + v] = max(1, min(tile[a], region[a][1] - region[a][0]))  # no larger than the block
        for q, side in ((2 * v, -1), (2 * v + 1, 1)):
            if not d.at_boundary(a, side):
                geo[6 + q] = 1
                continue
            rule = edges.get((a, side))
            if not isinstance(rule, Edge) or rule.mode not in MODES or rule.mirror not in (1, 2):
                raise InputError(f"heat_steps: side {(a, side)} is a physical boundary: edges must give "
                                 f"its Edge(mode, value, mirror), got {rule!r}")
            geo[12 + q], geo[18 + q] = MODES[rule.mode], rule.mirror
            con[q] = float(np.asarray(rule.value, u.dtype))  # rounded as pympc.bc's numpy rounds it
    geo[27], geo[28] = (1 if nd == 3 else 0), (1 if nd >= 2 else 0)
    geo[29], geo[30] = nd, k
    con[6:9] = (0.0,) * (3 - nd) + tuple(r)
    return geo, con
