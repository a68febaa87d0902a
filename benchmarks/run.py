"""Run pympc's benchmarks at 1 and 2 ranks and write their results files.

    ./run bench                 # every benchmark, full size
    ./run bench decomp --ranks 1,2 --size 2048
    ./run bench npb             # the NAS Parallel Benchmarks against NASA's code (benchmarks/npb/)
    ./run bench oversubscribe   # more ranks than cores: busy against yielding waits

Each benchmark writes ``benchmarks/results/<name>.json`` (everything measured) and
``<name>.md`` (the table of ratios against the targets, with machine and versions).
This process only launches the benchmarks: it is not a rank and never initialises MPI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pympc.tools.launch import run_mpi  # noqa: E402

sys.path.insert(0, HERE)  # this script's siblings (machine, bench_oversubscribe), however it is started
from machine import describe  # noqa: E402

BENCHES = {"decomp": "bench_decomp.py", "io": "bench_io.py", "bsp": "bench_bsp.py",
           "solvers": "bench_solvers.py", "krylov": "bench_krylov.py", "farm": "bench_farm.py",
           "blocking": "bench_blocking.py", "implicit": "bench_implicit.py", "newton": "bench_newton.py",
           "varmg": "bench_varmg.py"}


def fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


class Table:
    """A markdown table of one figure per row and one column per rank count; a figure a
    run lacks shows as "-"."""

    def __init__(self, runs):
        self.runs = runs
        self.lines = ["| figure | target | " + " | ".join(f"{r['ranks']} rank(s)" for r in runs) + " |",
                      "|---|---|" + "---|" * len(runs)]

    def row(self, name, target, get):
        vals = []
        for r in self.runs:
            try:
                vals.append(get(r))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append("-")
        self.lines.append(f"| {name} | {target} | " + " | ".join(vals) + " |")

    def __str__(self):
        return "\n".join(self.lines)


def decomp_table(runs):
    table = Table(runs)
    row = table.row

    us = lambda t: f"{t['median'] * 1e6:.1f} µs"  # noqa: E731
    row("halo exchange, hand-written mpi4py (median)", "", lambda r: us(r["halo_hand"]))
    row("halo exchange, pympc (median)", "", lambda r: us(r["halo_pympc"]))
    row("**halo: pympc / hand-written time**", "<= 1.1", lambda r: fmt(r["ratios"]["halo_pympc_over_hand"]))
    row("heat step, hand-written mpi4py + numpy", "", lambda r: f"{r['heat_hand']['Mcells']:.0f} Mcell/s")
    row("heat step, pympc + same numpy update", "", lambda r: f"{r['heat_pympc_numpy']['Mcells']:.0f} Mcell/s")
    row("**heat (numpy update): pympc / hand-written time**", "<= 1.1",
        lambda r: fmt(r["ratios"]["heat_numpy_pympc_over_hand"]))
    row("heat step, pympc fast path (numba)", "", lambda r: f"{r['heat_pympc_fast']['Mcells']:.0f} Mcell/s")
    row("heat step, petsc4py DMDA (globalToLocal + numpy)", "",
        lambda r: f"{r['heat_petsc']['Mcells']:.0f} Mcell/s" if r.get("heat_petsc") else "not installed")
    row("**fast path / petsc4py (speed)**", ">= 1.0", lambda r: fmt(r["ratios"].get("fast_over_petsc")))
    row("copy bandwidth, all ranks at once", "", lambda r: f"{r['copy_bandwidth_GBs']:.1f} GB/s")
    row("roofline (16 B/update at that bandwidth)", "", lambda r: f"{r['roofline_Mcells']:.0f} Mcell/s")
    row("**fast path / roofline**", ">= 0.70", lambda r: fmt(r["ratios"]["fast_over_roofline"]))
    row("fast path / hand-written numpy step (speed)", "", lambda r: fmt(r["ratios"]["fast_speedup_over_hand"]))
    row("**extra peak memory in fast steps / two ghosted fields**", "<= 0.10",
        lambda r: fmt(r["ratios"]["peak_extra_over_fields_fast"]))
    row("extra peak memory, numpy-update steps / fields", "",
        lambda r: fmt(r["peak_extra_bytes_numpy"] / r["fields_bytes"]))
    row("gather: bytes allocated on root / on other ranks", "global on root only",
        lambda r: f"{r['gather_peak_root'] / 2**20:.0f} MiB / {r['gather_peak_other_max'] / 2**20:.2f} MiB")
    return str(table)


def io_table(runs):
    table = Table(runs)
    row = table.row

    gbs = lambda t: f"{t['GBs']:.2f} GB/s"  # noqa: E731
    row("write: raw MPI-IO Write_at_all, one shared file, a new one", "", lambda r: gbs(r["write_raw"]))
    row("write: the same, after one field's bytes already in the file (a step's reference)", "",
        lambda r: gbs(r["write_raw_append"]) if "write_raw_append" in r else "-")
    row("write: pympc output step of a series (field + metadata + XDMF)", "", lambda r: gbs(r["write_pympc"]))
    row("write: the same step, field through HDF5's collective MPI-IO", "",
        lambda r: gbs(r["write_pympc_mpiio"]) if "write_pympc_mpiio" in r else "-")
    row("write: the same step, MPI-IO, datasets not aligned", "",
        lambda r: gbs(r["write_pympc_mpiio_unaligned"]) if "write_pympc_mpiio_unaligned" in r else "-")
    row("write: first step of a new series (+ XDMF mesh, 2 fields' worth in 2-D)", "",
        lambda r: gbs(r["write_first"]) if "write_first" in r else "-")
    row("write: gather to rank 0 + serial h5py", "", lambda r: gbs(r["write_gather"]))
    row("**write: pympc step / raw (speed)**", ">= 0.95", lambda r: fmt(r["ratios"]["write_pympc_over_raw_speed"]))
    row("write: pympc step / raw, best of the repetitions each", "",
        lambda r: fmt(r.get("write_raw_append", r["write_raw"])["min"] / r["write_pympc"]["min"]))
    row("write: pympc step / raw into a new file (speed)", "",
        lambda r: fmt(r["ratios"].get("write_pympc_over_raw_new_file_speed")))
    row("write: raw after a field / raw into a new file (speed: the file's state)", "",
        lambda r: fmt(r["ratios"].get("write_raw_append_over_new_file_speed")))
    row("write: MPI-IO step / raw (speed)", "", lambda r: fmt(r["ratios"].get("write_pympc_mpiio_over_raw_speed")))
    row("write: MPI-IO unaligned step / raw (speed)", "",
        lambda r: fmt(r["ratios"].get("write_pympc_mpiio_unaligned_over_raw_speed")))
    row("write: first step / raw of the field's bytes (speed)", "",
        lambda r: fmt(r["ratios"].get("write_first_over_raw_speed")))
    row("write: first step / raw of as many bytes (field + mesh)", "",
        lambda r: fmt(r["ratios"].get("write_first_over_raw_same_bytes")))
    row("**write: pympc / gather path (speed)**", ">= 2.5 at 2 ranks",
        lambda r: fmt(r["ratios"]["write_pympc_over_gather_speed"]))
    row("read: raw MPI-IO Read_at_all of the step's bytes in the series file (the reference)", "",
        lambda r: gbs(r["read_raw_same_file"]) if "read_raw_same_file" in r else "-")
    row("read: raw MPI-IO Read_at_all, the raw file", "", lambda r: gbs(r["read_raw"]))
    row("read: pympc, into an existing field (out=)", "", lambda r: gbs(r["read_pympc"]))
    row("read: pympc, into a new DistArray", "", lambda r: gbs(r["read_pympc_new"]))
    row("read: serial h5py on rank 0 + scatter", "", lambda r: gbs(r["read_gather"]))
    row("**read: pympc / raw (speed)**", ">= 0.95", lambda r: fmt(r["ratios"]["read_pympc_over_raw_speed"]))
    row("read: pympc / raw, best of the repetitions each", "",
        lambda r: fmt(r.get("read_raw_same_file", r["read_raw"])["min"] / r["read_pympc"]["min"]))
    row("read: pympc / raw of the raw file (speed)", "",
        lambda r: fmt(r["ratios"].get("read_pympc_over_raw_other_file_speed")))
    row("read: pympc / serial + scatter (speed)", "", lambda r: fmt(r["ratios"]["read_pympc_over_gather_speed"]))
    row("**tracemalloc peak while writing a step / field**", "<= 0.10 (no copy)",
        lambda r: fmt(r["peak_write_over_field"]))
    row("tracemalloc peak while writing a first step (mesh in 4 MiB slabs) / field", "<= 0.10",
        lambda r: fmt(r.get("peak_write_first_over_field")))
    row("**tracemalloc peak while reading into a field / field**", "<= 0.10 (no copy)",
        lambda r: fmt(r["peak_read_over_field"]))
    row("tracemalloc peak while reading a new DistArray / field", "<= 1.10 (the new field only)",
        lambda r: fmt(r["peak_read_new_over_field"]))
    return str(table)


def bsp_table(runs):
    table = Table(runs)
    row = table.row

    us = lambda t: f"{t * 1e6:.2f} µs"  # noqa: E731
    ns = lambda t: f"{t * 1e9:.3g} ns/word"  # noqa: E731
    row("empty superstep, BSP.sync (median)", "", lambda r: us(r["empty"]["l_empty"]))
    row("MPI_Barrier (median)", "", lambda r: us(r["empty"]["barrier"]))
    row("**l: empty sync / MPI_Barrier**", "<= 2", lambda r: fmt(r["ratios"]["l_empty_over_barrier"]))
    row("g, raw MPI_Alltoallv (counts known)", "", lambda r: ns(r["fit"]["raw"]["g"]))
    row("g, BSP hpput h-relation", "", lambda r: ns(r["fit"]["hpput"]["g"]))
    row("**g: BSP hpput / raw Alltoallv**", "<= 1.2", lambda r: fmt(r["ratios"]["g_hpput_over_raw"]))
    row("g: BSP put / raw (one copy more, in the put)", "", lambda r: fmt(r["ratios"]["g_put_over_raw"]))
    row("g: BSP send / raw", "", lambda r: fmt(r["ratios"]["g_send_over_raw"]))
    row("g: MPI_Put per pair + fence / raw (design option)", "", lambda r: fmt(r["ratios"]["g_rma_over_raw"]))
    row("g: halo exchange + sync (decomposition layer) / raw", "",
        lambda r: fmt(r["ratios"].get("g_halo_over_raw")))
    row("l (intercept of the hpput fit)", "", lambda r: us(r["machine"]["l"]))
    ac = lambda r: r["machine"]["after_compute"]  # noqa: E731
    row("after a compute phase (stencil sweep) per rank", "",
        lambda r: f"{ac(r)['stream_bytes'] / 2**20:.0f} MiB, {ac(r)['stream_seconds'] * 1e3:.2f} ms")
    row("  then raw Alltoallv: g, l", "",
        lambda r: f"{ns(ac(r)['fit']['raw']['g'])}, {us(ac(r)['fit']['raw']['l'])}")
    row("  then BSP hpput: g, l", "",
        lambda r: f"{ns(ac(r)['fit']['hpput']['g'])}, {us(ac(r)['fit']['hpput']['l'])}")
    row("  then halo exchange + sync: g, l", "",
        lambda r: f"{ns(ac(r)['fit']['halo']['g'])}, {us(ac(r)['fit']['halo']['l'])}" if "halo" in ac(r)["fit"] else "-")
    row("l after compute / back to back (raw)", "",
        lambda r: fmt(r["ratios"]["l_raw_after_compute_over_back_to_back"]))
    row("heat step (periodic axis 0): h per superstep", "",
        lambda r: f"{r['heat']['h'] / r['heat']['steps']:.0f} words")
    row("heat: compute per superstep (slowest rank)", "", lambda r: us(r["heat"]["w_max"] / r["heat"]["steps"]))
    row("heat: measured comm + sync per superstep", "", lambda r: us(r["heat"]["measured"] / r["heat"]["steps"]))
    row("heat: g, l the report picks", "", lambda r: r["heat"]["model"])
    row("heat: predicted g*h + l per superstep", "", lambda r: us(r["heat"]["predicted"] / r["heat"]["steps"]))
    row("heat: predicted / measured, the median batch (by measured time)", "",
        lambda r: fmt(r["ratios"]["heat_predicted_over_measured"]))
    row("heat: predicted / measured with the raw Alltoallv fit after compute (no layer fit)", "",
        lambda r: fmt(r["ratios"].get("heat_raw_after_compute_predicted_over_measured")))
    row("heat: predicted / measured, all batches (min .. max)", "",
        lambda r: f"{fmt(min(r['heat']['ratios_all']))} .. {fmt(max(r['heat']['ratios_all']))}")
    row("heat: predicted / measured with the back-to-back hpput g, l (bspbench)", "",
        lambda r: fmt(r["ratios"]["heat_back_to_back_predicted_over_measured"]))
    row("heat, periodic on both axes (strided column copies): predicted / measured, the median batch", "",
        lambda r: fmt(r["ratios"]["heat_both_predicted_over_measured"]))
    _bsp_pattern_rows(row, ac, us, ns)
    return str(table)


def _bsp_pattern_rows(row, ac, us, ns):
    # the halo pattern fits, and the heat runs each predicted with the fit of its pattern
    pat = lambda r, k: ac(r)["fit"][f"halo:{k}"]  # noqa: E731
    for k in ("rows", "cols", "box", "box/w2", "box/w4", "box/w8"):
        row(f"  then halo pattern {k} (fitted on its own grids): g, l", "",
            lambda r, k=k: f"{ns(pat(r, k)['g'])}, {us(pat(r, k)['l'])}")
    runs = (("heat", "one periodic axis"), ("heat_periodic_both", "both axes periodic"),
            ("heat_deep_k2", "deep halo k = 2"), ("heat_deep_k4", "deep halo k = 4"),
            ("heat_deep_k8", "deep halo k = 8"))
    for key, what in runs:
        target = "0.8 - 1.2" if key in ("heat", "heat_periodic_both", "heat_deep_k4") else ""
        name = f"heat, {what}: predicted / measured (median over batches)"
        row(f"**{name}**" if target else name, target, lambda r, key=key: fmt(r[key]["ratio_median"]))
        row(f"  {what}: pattern fit, measured comm + sync per superstep", "",
            lambda r, key=key: f"{r[key]['model']}, {us(r[key]['measured'] / r[key]['steps'])}")
        row(f"  {what}: with the row halo fit only (the model before)", "",
            lambda r, key=key: fmt(r[key]["ratio_halo_fit_only"]))


def solvers_table(runs):
    table = Table(runs)
    row = table.row
    mc = lambda t: f"{t['Mcells']:.0f} Mcell/s"  # noqa: E731
    row("heat solver step (halo + BCs + numba update)", "", lambda r: mc(r["heat_solver"]))
    row("heat step, petsc4py DMDA (globalToLocal + numpy)", "",
        lambda r: mc(r["heat_petsc"]) if r.get("heat_petsc") else "not installed")
    row("**heat solver / petsc4py (speed)**", ">= 1.0", lambda r: fmt(r["ratios"].get("heat_over_petsc")))
    row("roofline (16 B/update at the copy bandwidth)", "", lambda r: f"{r['roofline_Mcells']:.0f} Mcell/s")
    row("heat solver / roofline", "", lambda r: fmt(r["ratios"]["heat_over_roofline"]))
    row("heat: extra peak memory per step / two ghosted fields", "",
        lambda r: fmt(r["heat_peak_extra_over_fields"]))
    row("RB-SOR sweep, hand-written mpi4py + numpy (median)", "", lambda r: f"{r['sor_hand']['median'] * 1e3:.2f} ms")
    row("RB-SOR sweep, pympc (median)", "", lambda r: f"{r['sor_pympc']['median'] * 1e3:.2f} ms")
    row("**RB-SOR sweeps/s: pympc / hand-written**", "", lambda r: fmt(r["ratios"]["sor_sweeps_pympc_over_hand"]))
    row("RB-SOR extra peak memory / fields: pympc, hand-written", "",
        lambda r: f"{r['sor_pympc_peak_extra_over_fields']:.3g}, {r['sor_hand_peak_extra_over_fields']:.3g}")
    return str(table)


def blocking_table(runs):
    table = Table(runs)
    row = table.row
    mc = lambda t: f"{t['Mcells']:.0f} Mcell/s"  # noqa: E731
    roof = lambda key: lambda r: fmt(r[key]["over_roofline"])  # noqa: E731
    row("roofline (16 B/update at the copy bandwidth)", "", lambda r: f"{r['roofline_Mcells']:.0f} Mcell/s")
    row("heat step, one step per exchange", "", lambda r: mc(r["one_step"]))
    row("**one step / roofline**", ">= 0.80", roof("one_step"))
    row("heat, deep halo (k steps per exchange, whole-block sweeps)", "",
        lambda r: f"{mc(r['deep_halo'])}, k = {r['deep_halo']['k']}")
    row("deep halo / roofline", "", roof("deep_halo"))
    row("heat, temporal blocking (k steps per exchange, tiles in cache)", "",
        lambda r: f"{mc(r['blocked'])}, k = {r['blocked']['k']}, tiles {r['blocked']['tile'] or 'default'}")
    row("**temporal blocking / roofline**", ">= 1.5", roof("blocked"))
    for i, t in enumerate(runs[0].get("blocked_by_k", [])):
        row(f"  temporal blocking, k = {t['k']} (/ roofline)", "",
            lambda r, i=i: f"{mc(r['blocked_by_k'][i])} ({r['blocked_by_k'][i]['over_roofline']:.2f})")
    for i, t in enumerate(runs[0].get("deep_by_k", [])):
        row(f"  deep halo, k = {t['k']} (/ roofline)", "",
            lambda r, i=i: f"{mc(r['deep_by_k'][i])} ({r['deep_by_k'][i]['over_roofline']:.2f})")
    row("one FTCS step on a tile-sized block in cache (the compute ceiling)", "",
        lambda r: f"{r['in_cache_Mcells']:.0f} Mcell/s on {r['in_cache_shape'][0]} x {r['in_cache_shape'][1]}")
    row("compute ceiling / roofline", "", lambda r: fmt(r["ratios"]["in_cache_over_roofline"]))
    row("halo messages per step: one step, deep halo", "",
        lambda r: f"{r['one_step']['messages_per_step']:.3g}, {r['deep_halo']['messages_per_step']:.3g}")
    row("halo exchanges per step (cost log): one step, deep halo", "",
        lambda r: f"{r['one_step']['exchanges_per_step']:.3g}, {r['deep_halo']['exchanges_per_step']:.3g}")
    row("**messages per step: one step / deep halo**", "= k",
        lambda r: fmt(r["ratios"]["messages_one_step_over_deep"]) if r["one_step"]["messages_per_step"] else
        "no messages (1 rank)")
    row(f"3-D heat ({runs[0].get('size3')}³): one step, temporal blocking k = 4", "",
        lambda r: f"{mc(r['one_step_3d'])}, {mc(r['blocked_3d'])}")
    row("3-D: blocked / one step (why the default rule keeps one step in 3-D)", "",
        lambda r: fmt(r["ratios"]["blocked_3d_over_one_step_3d"]))
    return str(table)


def krylov_table(runs):
    table = Table(runs)
    row = table.row
    ms = lambda t: f"{t['median'] * 1e3:.2f} ms"  # noqa: E731
    row("CG per iteration, pympc, assembled matrix", "", lambda r: ms(r["cg_assembled_per_iter"]))
    row("CG per iteration, pympc, single-reduction variant", "", lambda r: ms(r["cg_single_per_iter"]))
    row("CG per iteration, pympc, matrix-free operator", "", lambda r: ms(r["cg_matrix_free_per_iter"]))
    row("CG per iteration, PETSc KSP CG (same AIJ rows)", "",
        lambda r: ms(r["cg_petsc_per_iter"]) if r.get("cg_petsc_per_iter") else "not installed")
    row("**CG: pympc (assembled) / PETSc time**", "<= 1.0", lambda r: fmt(r["ratios"]["cg_pympc_over_petsc_time"]))
    row("CG: pympc matrix-free / PETSc time", "", lambda r: fmt(r["ratios"].get("cg_matrix_free_over_petsc_time")))
    row("CG: extra tracemalloc peak / one vector", "", lambda r: fmt(r["cg_peak_extra_over_vector"]))

    def solve(key):
        def get(r):
            v = r[key]
            if "error" in v:
                return v["error"][:40]
            return f"{v['median'] * 1e3:.0f} ms, {v['iterations']} it"
        return get
    row("MG-PCG to 1e-8, pympc geometric multigrid", "", solve("mgcg_pympc"))
    row("CG + PCGAMG (PETSc)", "", solve("mgcg_petsc_gamg"))
    row("CG + PCMG, Galerkin, DMDA interpolation (PETSc)", "", solve("mgcg_petsc_mg"))
    row("pyamg smoothed aggregation + CG (1 rank)", "", solve("mgcg_pyamg"))
    row("**MG-PCG: pympc / best of the others (time)**", "<= 1.5",
        lambda r: fmt(r["ratios"].get("mgcg_pympc_over_best_time")))
    row("multigrid hierarchy / fine-grid fields", "<= 1.5", lambda r: fmt(r["mg_hierarchy_over_fine"]))
    row("MG-PCG: extra tracemalloc peak / one field", "", lambda r: fmt(r["mgcg_peak_extra_over_field"]))
    return str(table)


def farm_table(runs):
    table = Table(runs)
    row = table.row
    tps = lambda k: lambda r: f"{r['tiny'][k]['tasks_per_s']:.0f} tasks/s"  # noqa: E731
    row("tiny tasks: pympc.farm (a ledger record per task)", "", tps("farm"))
    row("tiny tasks: MPICommExecutor.map, chunksize=1 (default)", "", tps("executor"))
    row("tiny tasks: MPICommExecutor.map, chunksize=tasks/(4 workers)", "", tps("executor_chunked"))
    row("**tiny: farm / MPICommExecutor (default) throughput**", ">= 1.5 at 2 ranks",
        lambda r: fmt(r["ratios"]["farm_over_executor_throughput"]))
    row("tiny: farm / MPICommExecutor (chunked) throughput", "",
        lambda r: fmt(r["ratios"]["farm_over_executor_chunked_throughput"]))
    row("tiny tasks: pympc.farm without the ledger writes", "", tps("farm_no_ledger_writes"))
    row("**skewed busy tasks: farm efficiency**", ">= 0.95 at 2 ranks", lambda r: fmt(r["ratios"]["busy_efficiency"]))
    row("skewed busy tasks: MPICommExecutor efficiency", "", lambda r: fmt(r["busy"]["executor"]["efficiency"]))
    row("**ledger: Writer.write per record**", "", lambda r: f"{r['ratios']['ledger_write_us_per_task']:.1f} µs")
    row("ledger: farm time with / without the writes, per task", "",
        lambda r: f"{r['ratios']['ledger_writes_in_farm_us_per_task']:.1f} µs")
    row("**ledger size per 10,000 tasks**", "", lambda r: f"{r['tiny']['ledger_bytes_per_10k'] / 2**20:.2f} MiB")
    return str(table)


def _solve_cell(v, its="iterations"):
    """A results cell: median time, iterations (and setup), or the configuration's error."""
    if "error" in v:
        return v["error"][:40]
    setup = f", setup {v['setup'] * 1e3:.0f} ms" if "setup" in v else ""
    failed = f", NOT CONVERGED (reason {v['reason']})" if isinstance(v.get("reason"), int) and v["reason"] < 0 else ""
    return f"{v['median'] * 1e3:.0f} ms, {v[its]:.3g} it{setup}{failed}"


def _petsc_rows(row, runs, get, cell, label="  PETSc"):
    """A row per PETSc configuration any run has (``get(run)``: name -> figures)."""
    names = []
    for r in runs:
        names += [k for k in get(r) if k not in names]
    for name in names:
        row(f"{label} {name}", "", lambda r, name=name: cell(get(r)[name]))


def implicit_table(runs):
    table = Table(runs)
    row = table.row
    row("pympc ImplicitHeat CN (time of the steps, CG its/step, setup)", "",
        lambda r: _solve_cell(r["pympc"], "cg_iterations_per_step"))
    _petsc_rows(row, runs, lambda r: r["petsc"], lambda v: _solve_cell(v, "ksp_iterations_per_step"))
    row("**CN heat: pympc / best PETSc TS (time)**", "<= 1.0", lambda r: fmt(r["ratios"]["pympc_over_best_petsc"]))
    row("best PETSc configuration", "", lambda r: r["ratios"]["best_petsc"])
    row("setup + steps: pympc / best PETSc", "", lambda r: fmt(r["ratios"]["setup_plus_solve_pympc_over_best_petsc"]))
    row("final field 2-norm, relative difference pympc vs PETSc", "", lambda r: fmt(r["final_norm_rel_diff"]))
    return str(table)


def newton_table(runs):
    table = Table(runs)
    row = table.row
    for n in runs[0]["sizes"]:
        get = lambda r, n=n: r["sizes"][n]  # noqa: E731

        def cell(v):
            if "error" in v:
                return v["error"][:40]
            return f"{v['median'] * 1e3:.0f} ms, {v['newton_iterations']} Newton / {v['linear_iterations']} linear it"
        row(f"{n}²: pympc Bratu.solve", "", lambda r, get=get: cell(get(r)["pympc"]))
        _petsc_rows(row, runs, lambda r, get=get: get(r)["petsc"], cell, f"  {n}²: PETSc")
        row(f"**{n}²: pympc / best PETSc SNES (time)**", "<= 1.0",
            lambda r, get=get: fmt(get(r)["ratios"]["pympc_over_best_petsc"]))
        row(f"{n}²: best PETSc configuration", "", lambda r, get=get: get(r)["ratios"]["best_petsc"])
    return str(table)


def varmg_table(runs):
    table = Table(runs)
    row = table.row
    row("pympc MG-PCG, Galerkin multigrid (solve, its, setup)", "", lambda r: _solve_cell(r["pympc"]))
    _petsc_rows(row, runs, lambda r: r["petsc"], _solve_cell)
    row("**var-coefficient MG-PCG: pympc / best PETSc (solve time)**", "<= 1.0",
        lambda r: fmt(r["ratios"]["pympc_over_best_petsc"]))
    row("best PETSc configuration (solve)", "", lambda r: r["ratios"]["best_petsc"])
    row("setup + solve: pympc / best PETSc", "", lambda r: fmt(r["ratios"]["setup_plus_solve_pympc_over_best_petsc"]))
    return str(table)


TABLES = {"decomp": decomp_table, "io": io_table, "bsp": bsp_table, "solvers": solvers_table, "krylov": krylov_table,
          "farm": farm_table, "blocking": blocking_table, "implicit": implicit_table, "newton": newton_table,
          "varmg": varmg_table}
CAPTIONS = {
    "decomp": lambda r: (f"Grid {r['size']}², ghost width 1, periodic; medians of {r['reps']} batches of "
                         f"{r['steps']} steps, each timed to the slowest rank."),
    "io": lambda r: (f"One float64 field of {r['size']}² ({r['bytes'] / 2**20:.0f} MiB) into a new file, or as "
                     f"a new step of a series (the file removed and its first step written before each "
                     f"repetition, outside the timer; the raw reference of a step likewise writes after one "
                     f"field's bytes, and the raw reference of a read reads the step's own bytes in the "
                     f"series file); an os.sync before each write, outside the timer; "
                     f"page cache; medians of {r['reps']} repetitions, the cases interleaved (order rotated "
                     f"each repetition), each timed to the slowest rank."),
    "bsp": lambda r: (f"h-relations h = 0..{r['hmax']} words ({r['points']} values, {r['reps']} batches of "
                      f"{r['iters']} supersteps each, random order, Theil-Sen fit); heat step on {r['size']}², "
                      f"the median of {r.get('heat', {}).get('batches', r.get('heat_reps', r['reps']))} batches of "
                      f"{r['steps']} supersteps, interleaved with the halo pattern fits below; h-relations after a "
                      f"compute phase h = 0..{r.get('cold_hmax', r['hmax'])}; h-relations timed to "
                      f"the slowest rank back to back, to the least-waiting rank after a compute phase "
                      f"(the halo layer's by the cost log, as programs); halo patterns fitted on square grids "
                      f"of sides {r.get('pattern_sides', '-')}, each superstep after FTCS sweeps of its own grid "
                      f"(as many as the halo width: the program's steps per exchange), "
                      f"{r.get('fresh_warmup', 1)} untimed on a new grid and 1 before every batch, the sweeps with "
                      f"the heat step's own 2-D loop ({', '.join(sorted(set(r.get('pattern_stores') or ['as heat_step chooses'])))}); "
                      f"deep-halo runs: one box exchange of width k, then k FTCS steps, per superstep."),
    "solvers": lambda r: (f"Heat solver on {r['size']}² (periodic), RB-SOR on {r['sor_size']}² (Dirichlet); "
                          f"medians of {r['reps']} batches of {r['steps']} steps or sweeps, each timed to the "
                          f"slowest rank."),
    "blocking": lambda r: (f"Heat solver on {r['size']}² (periodic; 3-D: {r['size3']}³), the solver's own "
                           f"steps (advance / advance_steps), {r['steps']} steps per case and round, "
                           f"{r['reps']} rounds, every case and the roofline's copy once per round in a "
                           f"rotated order, each timed to the slowest rank; Mcell/s: medians over rounds; "
                           f"ratios: the median over rounds of the ratio to the same round's roofline "
                           f"(numpy's copy bandwidth / 16 B per update); messages per step: the halo "
                           f"exchanges the cost log recorded times the messages of one exchange."),
    "krylov": lambda r: (f"CG: {r['size']}² 5-point Laplacian, {r['iters']} iterations, residual norm every "
                         f"iteration; MG-PCG: {r['mg_size']}² to 1e-8; medians of {r['reps']} runs after a "
                         f"warm-up, each timed to the slowest rank."),
    "farm": lambda r: (f"{r['tiny']['tasks']} tiny tasks (a 64-element sum, a few µs), each figure a whole `with` "
                       f"block from a barrier to the slowest rank's end, the median of {r['reps']}; "
                       f"{r['busy']['tasks']} busy tasks (arithmetic, no sleep), log-normal durations of mean "
                       f"{r['busy']['mean_ms']:g} ms and sigma {r['busy']['sigma']:g}: efficiency = the tasks' own "
                       f"measured times / (ranks x wall time). The farm's store on the local disk."),
    "implicit": lambda r: (f"u_t = lap u on {r['size']}² (unit square, Dirichlet 0), Crank–Nicolson, {r['steps']} "
                           f"steps of {r['dt']:g}, each CG solve to {r['tol']:g} (relative, unpreconditioned 2-norm); "
                           f"medians of {r['reps']} runs after a warm-up, each timed to the slowest rank; setup "
                           f"(solver construction / TS set-up and first steps) apart."),
    "newton": lambda r: (f"Bratu lam = {r['lam']:g}, unit square, from ex5's guess to ||F|| <= {r['tol']:g} ||F(u0)||; "
                         f"medians of {r['reps']} solves after a warm-up solve, each timed to the slowest rank "
                         f"(ex5: its SNESSolve event, one solve per run)."),
    "varmg": lambda r: (f"-div(k grad u) = b on {r['size']}², k a {r['pattern']} of 8 x 8 tiles, contrast "
                        f"{r['contrast']:g}; CG to 1e-8 (relative, unpreconditioned 2-norm) from 0; medians of "
                        f"{r['reps']} solves after a warm-up, each timed to the slowest rank; setup apart."),
}


def write_results(name, runs, out):
    """``out``/<name>.json (meta + every run) and <name>.md (the table); returns the markdown.
    ``runs``: the benchmark's JSON results, one per rank count, from one run."""
    meta = {"machine": describe(), "platform": platform.platform(),
            "versions": runs[0].get("versions", {})}
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)
    table = TABLES[name](runs)
    v = meta["versions"]
    md = (f"# Benchmark: {name}\n\nMachine: {meta['machine']} ({meta['platform']}). "
          f"{CAPTIONS[name](runs[0])}\n"
          f"Versions: " + ", ".join(f"{k} {x}" for k, x in v.items())
          + (f", petsc4py {runs[0]['petsc4py']}" if runs[0].get("petsc4py") else ", petsc4py not installed")
          + f".\n\n{table}\n")
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(md)
    return md


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["oversubscribe"]:  # more ranks than cores: a launcher of its own
        from bench_oversubscribe import main as oversubscribe
        return oversubscribe(argv[1:])
    if argv[:1] == ["npb"]:  # the NAS Parallel Benchmarks against NASA's code: their own driver
        sys.path.insert(0, os.path.join(HERE, "npb"))
        import importlib.util

        spec = importlib.util.spec_from_file_location("npb_run", os.path.join(HERE, "npb", "run.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", default=sorted(BENCHES), help=f"of {sorted(BENCHES)}")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--timeout", type=float, default=1800)
    args, extra = ap.parse_known_args(argv)
    os.makedirs(args.out, exist_ok=True)
    status = 0
    for name in args.names:
        runs = []
        for n in [int(x) for x in args.ranks.split(",") if x]:
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
                path = tmp.name
            print(f"[bench] {name} at {n} rank(s) ...", flush=True)
            r = run_mpi(n, [os.path.join(HERE, BENCHES[name]), "--json", path, *extra],
                        timeout=args.timeout, capture=False)
            if r.returncode != 0:
                print(f"[bench] {name} at {n} rank(s) failed (exit {r.returncode})", file=sys.stderr)
                status = 1
                continue
            with open(path) as f:
                runs.append(json.load(f))
            os.unlink(path)
        if not runs:
            continue
        print(write_results(name, runs, args.out))
    return status


if __name__ == "__main__":
    sys.exit(main())
