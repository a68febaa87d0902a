"""Stencil benchmark: the compiled 2-D FTCS step against the copy-bandwidth roofline, with
the loop variants tried to reach it, all measured in one run.

Each rank updates its own block of a 4096² field (4096 / P rows by 4096 columns plus one
ghost layer; no messages: the kernel alone), timed to the slowest rank. Figures in Mcell/s
(points updated, or elements copied, per second, summed over ranks) and as a ratio to
the roofline of the solver benchmark: numpy's copy bandwidth / 16 bytes per update.
Beside it, compiled copy loops measured the same way show what the stores cost: a plain
store reads the line first (write-allocate, 24 bytes moved per update), numpy's copy (the
C library's ``memcpy``) streams its stores past the cache.

    mpiexec -n 1 python bench_stencil.py --json /tmp/s1.json
    mpiexec -n 2 python bench_stencil.py --json /tmp/s2.json
    python bench_stencil.py --combine /tmp/s1.json /tmp/s2.json   # results/stencil.{json,md}
"""

from __future__ import annotations

import argparse
import json
import time

import numba
import numpy as np
from mpi4py import MPI

from common import emit, versions
from pympc.kernels import streaming as st
from pympc.kernels.loops import FTCS, _ftcs_numpy
from pympc.kernels.stencils import ftcs_loop

comm = MPI.COMM_WORLD
jit = numba.njit(cache=False, nogil=True, boundscheck=False)


# --- copy loops: the bandwidth a compiled loop gets -------------------------------------
@jit
def copy_loop(a, b, l0, h0, l1, h1):
    for i in range(l0, h0):
        o, x = b[i, l1:h1], a[i, l1:h1]
        for k in range(o.shape[0]):
            o[k] = x[k]


@jit
def copy3_loop(a, b, l0, h0, l1, h1):
    # the stencil's rows (i - 1, i, i + 1) read, one written: its traffic without its arithmetic
    for i in range(l0, h0):
        o, x, m, p = b[i, l1:h1], a[i, l1:h1], a[i - 1, l1:h1], a[i + 1, l1:h1]
        for k in range(o.shape[0]):
            o[k] = m[k] + x[k] + p[k]


@jit
def copy_nt_loop(a, b, l0, h0, l1, h1):
    for i in range(l0, h0):
        o, x = b[i, l1:h1], a[i, l1:h1]
        n = o.shape[0]
        k = 0
        while k < n and st.address(o, k) % 64 != 0:
            o[k] = x[k]
            k += 1
        while k + st.LANES <= n:
            st.copy_vec(o, x, k)
            k += st.LANES
        for kk in range(k, n):
            o[kk] = x[kk]
    st.store_fence()


# --- FTCS variants ----------------------------------------------------------------------
@jit
def ftcs_strips(u, out, l0, h0, l1, h1, r0, r1, width):
    for j0 in range(l1, h1, width):
        j1 = min(j0 + width, h1)
        for i in range(l0, h0):
            o = out[i, j0:j1]
            uc, uw, ue = u[i, j0:j1], u[i, j0 - 1:j1 - 1], u[i, j0 + 1:j1 + 1]
            um, up = u[i - 1, j0:j1], u[i + 1, j0:j1]
            for k in range(o.shape[0]):
                c = uc[k]
                o[k] = c + (r0 * (um[k] - 2.0 * c + up[k]) + r1 * (uw[k] - 2.0 * c + ue[k]))


@numba.njit(cache=False, nogil=True, boundscheck=False, error_model="numpy")
def ftcs_errnumpy(u, out, l0, h0, l1, h1, r0, r1):
    for i in range(l0, h0):
        o = out[i, l1:h1]
        uc, uw, ue = u[i, l1:h1], u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1]
        um, up = u[i - 1, l1:h1], u[i + 1, l1:h1]
        for k in range(o.shape[0]):
            c = uc[k]
            o[k] = c + (r0 * (um[k] - 2.0 * c + up[k]) + r1 * (uw[k] - 2.0 * c + ue[k]))


@jit
def ftcs_prefetch_order(u, out, l0, h0, l1, h1, r0, r1):
    # the row i + 1 read first, a row ahead of the others (the stream the prefetcher follows)
    for i in range(l0, h0):
        o = out[i, l1:h1]
        up, uc, um = u[i + 1, l1:h1], u[i, l1:h1], u[i - 1, l1:h1]
        uw, ue = u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1]
        for k in range(o.shape[0]):
            p = up[k]
            c = uc[k]
            o[k] = c + (r0 * (um[k] - 2.0 * c + p) + r1 * (uw[k] - 2.0 * c + ue[k]))


@jit
def ftcs_rowquad(u, out, l0, h0, l1, h1, r0, r1):
    i = l0
    while i + 3 < h0:
        o0, o1, o2, o3 = out[i, l1:h1], out[i + 1, l1:h1], out[i + 2, l1:h1], out[i + 3, l1:h1]
        um, u0, u1, u2, u3, up = (u[i - 1, l1:h1], u[i, l1:h1], u[i + 1, l1:h1], u[i + 2, l1:h1],
                                  u[i + 3, l1:h1], u[i + 4, l1:h1])
        w0, e0 = u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1]
        w1, e1 = u[i + 1, l1 - 1:h1 - 1], u[i + 1, l1 + 1:h1 + 1]
        w2, e2 = u[i + 2, l1 - 1:h1 - 1], u[i + 2, l1 + 1:h1 + 1]
        w3, e3 = u[i + 3, l1 - 1:h1 - 1], u[i + 3, l1 + 1:h1 + 1]
        for k in range(o0.shape[0]):
            a, b, c, d = u0[k], u1[k], u2[k], u3[k]
            o0[k] = a + (r0 * (um[k] - 2.0 * a + b) + r1 * (w0[k] - 2.0 * a + e0[k]))
            o1[k] = b + (r0 * (a - 2.0 * b + c) + r1 * (w1[k] - 2.0 * b + e1[k]))
            o2[k] = c + (r0 * (b - 2.0 * c + d) + r1 * (w2[k] - 2.0 * c + e2[k]))
            o3[k] = d + (r0 * (c - 2.0 * d + up[k]) + r1 * (w3[k] - 2.0 * d + e3[k]))
        i += 4
    while i < h0:
        o = out[i, l1:h1]
        uc, uw, ue = u[i, l1:h1], u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1]
        um, up = u[i - 1, l1:h1], u[i + 1, l1:h1]
        for k in range(o.shape[0]):
            c = uc[k]
            o[k] = c + (r0 * (um[k] - 2.0 * c + up[k]) + r1 * (uw[k] - 2.0 * c + ue[k]))
        i += 1


@jit
def ftcs_rowpair_pf(u, out, l0, h0, l1, h1, r0, r1, chunk, dist):
    # row pairs in column chunks; before each chunk, the lines of the next pair's new rows
    # ``dist`` columns ahead are prefetched
    i = l0
    while i + 1 < h0:
        for j0 in range(l1, h1, chunk):
            j1 = min(j0 + chunk, h1)
            pa, pb = u[i + 2, l1:h1], u[i + 3 if i + 3 < h0 + 1 else i + 2, l1:h1]
            for q in range(j0 - l1 + dist, min(j1 - l1 + dist, h1 - l1), 8):
                st.prefetch(pa, q)
                st.prefetch(pb, q)
            o0, o1 = out[i, j0:j1], out[i + 1, j0:j1]
            um, u0, u1, up = u[i - 1, j0:j1], u[i, j0:j1], u[i + 1, j0:j1], u[i + 2, j0:j1]
            w0, e0 = u[i, j0 - 1:j1 - 1], u[i, j0 + 1:j1 + 1]
            w1, e1 = u[i + 1, j0 - 1:j1 - 1], u[i + 1, j0 + 1:j1 + 1]
            for k in range(o0.shape[0]):
                c, d = u0[k], u1[k]
                o0[k] = c + (r0 * (um[k] - 2.0 * c + d) + r1 * (w0[k] - 2.0 * c + e0[k]))
                o1[k] = d + (r0 * (c - 2.0 * d + up[k]) + r1 * (w1[k] - 2.0 * d + e1[k]))
        i += 2
    if i < h0:
        o = out[i, l1:h1]
        uc, uw, ue = u[i, l1:h1], u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1]
        um, up = u[i - 1, l1:h1], u[i + 1, l1:h1]
        for k in range(o.shape[0]):
            c = uc[k]
            o[k] = c + (r0 * (um[k] - 2.0 * c + up[k]) + r1 * (uw[k] - 2.0 * c + ue[k]))


@jit
def ftcs_one_row(u, out, l0, h0, l1, h1, r0, r1):
    # pympc's 2-D loop before row pairs: one output row per pass
    for i in range(l0, h0):
        o = out[i, l1:h1]
        uc, uw, ue = u[i, l1:h1], u[i, l1 - 1:h1 - 1], u[i, l1 + 1:h1 + 1]
        um, up = u[i - 1, l1:h1], u[i + 1, l1:h1]
        for k in range(o.shape[0]):
            c = uc[k]
            o[k] = c + (r0 * (um[k] - 2.0 * c + up[k]) + r1 * (uw[k] - 2.0 * c + ue[k]))


def variants(width):
    return {
        "ftcs_one_row (before)": ftcs_one_row,
        "ftcs_pympc (row pair)": FTCS[2].compiled(),
        "ftcs_pympc_auto (heat_step's choice)": lambda u, o, *a: ftcs_loop(u, o, a)(u, o, *a),
        f"ftcs_strips_{width}": lambda *a: ftcs_strips(*a, width),
        "ftcs_error_model_numpy": ftcs_errnumpy,
        "ftcs_row_order_prefetch": ftcs_prefetch_order,
        "ftcs_nontemporal_prefetch (one row, the streaming loop of heat_step)": st.FTCS2_STREAM_ROWS.compiled(),
        "ftcs_row_quad": ftcs_rowquad,
        "ftcs_row_pair_nontemporal": st.FTCS2_STREAM.compiled(),
        "ftcs_row_pair_prefetch": lambda *a: ftcs_rowpair_pf(*a, 256, 256),
    }


def aligned(shape, pad=0, dtype=np.float64, align=64):
    """A C-contiguous array of ``shape`` plus ``pad`` columns (never touched by the loops:
    a row stride other than the field's), starting on ``align`` bytes."""
    full = (shape[0], shape[1] + pad)
    n = int(np.prod(full)) * np.dtype(dtype).itemsize
    buf = np.empty(n + align, np.uint8)
    off = (-buf.ctypes.data) % align
    return buf[off:off + n].view(dtype).reshape(full)


def round_robin(fns, steps, reps, warmup=2):
    """Collective. Like common.timed for several functions at once: each batch runs every
    function in turn (``steps`` calls, timed from a barrier to the slowest rank), so the
    machine's load drifts over all of them alike. {name: {min, median, max}}."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append(comm.allreduce(time.perf_counter() - t0, op=MPI.MAX) / steps)
    return {name: {"min": min(t), "median": float(np.median(t)), "max": max(t)} for name, t in times.items()}


NOTES = {
    "numpy_copy": "numpy copyto of the field (its own size)",
    "copy_loop": "compiled copy loop, plain stores (write-allocate: 24 B moved per element)",
    "copy_loop_nontemporal": "compiled copy loop, streaming stores (16 B per element)",
    "copy3_loop": "compiled loop reading rows i-1, i, i+1, writing one (the stencil's traffic)",
}


def markdown(runs) -> str:
    """Local. The results table of one run per rank count: Mcell/s and / roofline."""
    v = runs[0]["versions"]
    head = " | ".join(f"{r['ranks']} rank(s)" for r in runs)
    lines = ["# Benchmark: stencil (the 2-D FTCS step against the copy roofline)", "",
             f"{runs[0]['size']}² float64, each rank its own block (no messages); medians of "
             f"{runs[0]['reps']} batches of {runs[0]['steps']} calls, every variant in turn in each "
             "batch, timed to the slowest rank. Roofline: numpy copyto of 160 MB / P per rank "
             "(best batch, read + write counted) / 16 B per update, as in the solver benchmark. "
             "Each cell: median Mcell/s, its ratio to the roofline, and the best batch's ratio.",
             "Versions: " + ", ".join(f"{k} {x}" for k, x in v.items()) + ".", "",
             f"| figure | {head} |", "|---|" + "---|" * len(runs),
             "| copy bandwidth (numpy, GB/s) | " + " | ".join(f"{r['numpy_copy_GBs']:.1f}" for r in runs) + " |",
             "| roofline (Mcell/s) | " + " | ".join(f"{r['roofline_Mcells']:.0f}" for r in runs) + " |"]
    for name in runs[0]["figures"]:
        cells = []
        for r in runs:
            f = r["figures"][name]
            ok = r["bit_identical"].get(name, True)
            cells.append(f"{f['Mcells']:.0f} Mcell/s, **{f['over_roofline']:.3f}**; best {f['over_roofline_best']:.3f}"
                         + ("" if ok else " (NOT bit-identical)"))
        label = f"{name}: {NOTES[name]}" if name in NOTES else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for r in runs:
        f = r["figures"]
        pympc_, plain, nt = f["ftcs_pympc (row pair)"], f["copy_loop"], f["copy_loop_nontemporal"]
        auto = f.get("ftcs_pympc_auto (heat_step's choice)")
        lines.append(f"\n{r['ranks']} rank(s): pympc's step / compiled copy loop (plain stores) = "
                     f"{pympc_['Mcells'] / plain['Mcells']:.3f} (row pair), "
                     + (f"{auto['Mcells'] / plain['Mcells']:.3f} (heat_step's choice); " if auto else "; ")
                     + f"plain-store copy / streaming-store copy = "
                     f"{plain['Mcells'] / nt['Mcells']:.3f}; copy3 / copy = "
                     f"{f['copy3_loop']['Mcells'] / plain['Mcells']:.3f}.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--strip", type=int, default=1024, help="column strip width of the blocked variant")
    ap.add_argument("--pad", type=int, default=0, help="extra elements per row of the arrays")
    ap.add_argument("--only", help="comma-separated names of the FTCS variants to run")
    ap.add_argument("--json")
    ap.add_argument("--combine", nargs="+", metavar="JSON",
                    help="write results/stencil.{json,md} from these runs' JSON files, and stop")
    args = ap.parse_args(argv)
    if args.combine:
        runs = [json.load(open(f)) for f in args.combine]
        for r in runs:  # runs written before the best-batch figures existed
            for t in r["figures"].values():
                t["Mcells_best"] = r["size"] ** 2 / t["min"] / 1e6
                t["over_roofline_best"] = t["Mcells_best"] / r["roofline_Mcells"]
        emit(runs, "results/stencil.json")
        with open("results/stencil.md", "w") as f:
            f.write(markdown(runs))
        return
    n, P = args.size, comm.Get_size()
    rows = n // P + (1 if comm.Get_rank() < n % P else 0)
    res = {"ranks": P, "size": n, "steps": args.steps, "reps": args.reps, "strip": args.strip, "pad": args.pad}
    u = aligned((rows + 2, n + 2), args.pad)
    u[...] = np.random.default_rng(comm.Get_rank()).random(u.shape)
    out = aligned((rows + 2, n + 2), args.pad)
    out[...] = 0.0
    bounds = (1, rows + 1, 1, n + 1)
    r = (0.1, 0.15)
    # the solver benchmark's roofline: numpy copyto of 160 MB / P per rank, best batch
    big = np.ones(max(8 << 20, (160 << 20) // P) // 8)
    big_out = np.empty_like(big)
    fns = {"numpy_copy_160MB": lambda: np.copyto(big_out, big),
           "numpy_copy": lambda: np.copyto(out, u)}
    for name, fn in (("copy_loop", copy_loop), ("copy_loop_nontemporal", copy_nt_loop),
                     ("copy3_loop", copy3_loop)):
        fns[name] = lambda fn=fn: fn(u, out, *bounds)
    ref = np.zeros_like(out)
    _ftcs_numpy(u, ref, *bounds, *r)
    res["bit_identical"] = {}
    only = args.only.split(",") if args.only else None
    for name, fn in variants(args.strip).items():
        if only and name not in only:
            continue
        out[...] = 0.0
        fn(u, out, *bounds, *r)
        res["bit_identical"][name] = bool(comm.allreduce(np.array_equal(out, ref), op=MPI.LAND))
        fns[name] = lambda fn=fn: fn(u, out, *bounds, *r)
    figs = round_robin(fns, args.steps, args.reps)
    t = figs.pop("numpy_copy_160MB")
    bw = 2 * big.nbytes * P / t["min"]
    res["numpy_copy_GBs"], res["roofline_Mcells"] = bw / 1e9, bw / 16 / 1e6
    for name, t in figs.items():
        t["Mcells"] = n * n / t["median"] / 1e6
        t["over_roofline"] = t["Mcells"] / res["roofline_Mcells"]
        # best batch against best batch, as the roofline is taken: on a shared machine the
        # medians carry the other jobs' load, the minima less of it
        t["Mcells_best"] = n * n / t["min"] / 1e6
        t["over_roofline_best"] = t["Mcells_best"] / res["roofline_Mcells"]
    res["figures"] = figs
    res["versions"] = versions()
    if comm.Get_rank() == 0:
        emit(res, args.json)


if __name__ == "__main__":
    main()
