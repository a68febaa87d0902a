"""The cost model sees every halo: each exchange records its pattern (rows, strided
columns, box corners, deep halos) in the cost log, the bench fits each pattern on grids of
its own shape, and the report predicts each superstep with the fit of the pattern it ran.

The patterns are checked against an oracle that derives them from the decomposition's
geometry alone (dims, coordinates, periodicity: which neighbours exist), and the words
against the ghost regions' sizes; the prediction against the formula, by hand."""

import itertools
import json

import numpy as np
import pytest

import pympc
from pympc import costlog
from pympc.bsp import report
from pympc.bsp.model import MachineParams
from pympc.halo import _pattern


def fit(g, l, span=None):
    return {"g": g, "l": l} if span is None else {"g": g, "l": l, "h_min": span[0], "h_max": span[1]}


# ---------------------------------------------------------------------------------------
# the oracle: the pattern and words of one rank's exchange from the geometry alone
# ---------------------------------------------------------------------------------------
def expected(d, stencil, width):
    """(key, words) this rank's exchange should record: every direction (faces for star,
    all 3^d - 1 for box) whose neighbour exists (inside the grid, or across a periodic
    axis); the words are the ghost regions' cells."""
    nd = len(d.dims)
    shape = "rows"
    words = 0
    for off in itertools.product((-1, 0, 1), repeat=nd):
        nz = sum(1 for o in off if o)
        if nz == 0 or (stencil == "star" and nz > 1):
            continue
        c = [d.coords[a] + off[a] for a in range(nd)]
        if not all(d.periodic[a] or 0 <= c[a] < d.dims[a] for a in range(nd)):
            continue
        if nz > 1:
            shape = "box"
        elif nd > 1 and off[-1] and shape != "box":
            shape = "cols"
        words += int(np.prod([width if off[a] else d.local_shape[a] for a in range(nd)]))
    return (shape if width == 1 else f"{shape}/w{width}"), words


CASES = [((13, 11), (True, False), 1, "star"), ((13, 11), (True, True), 1, "star"),
         ((13, 11), (False, True), 1, "star"), ((13, 11), (False, False), 1, "star"),
         ((13, 11), (True, True), 1, "box"), ((17, 19), (True, True), 3, "box"),
         ((17, 19), (True, False), 2, "box"), ((23,), (True,), 2, "star"),
         ((7, 9, 6), (True, False, True), 1, "star"), ((7, 9, 6), (False, True, False), 2, "box")]


def run_case(comm, shape, periodic, ghost, stencil, width=None):
    """Collective. One exchange under a fresh log; (gathered log, expected key, words)."""
    with pympc.Decomposition(shape, comm=comm, periodic=periodic, ghost=ghost, stencil=stencil) as d:
        a = pympc.DistArray(d)
        with costlog.Log(comm) as log:
            with log.superstep("x"):
                pympc.update_halo(a, stencil=stencil, width=width)
            data = log.gather(root=None)
        key, words = expected(d, stencil, ghost if width is None else width)
    return data, f"halo:{key}", words


def check_case(comm, shape, periodic, ghost, stencil, width=None):
    data, key, words = run_case(comm, shape, periodic, ghost, stencil, width)
    me = comm.Get_rank()
    pats = data["labels"]["x"]["patterns"]
    ok = key in pats and pats[key]["count"][me] == 1 and pats[key]["sent"][me] == words \
        and pats[key]["recv"][me] == words
    # nothing but this rank's one pattern on this rank
    ok &= all(v["count"][me] == 0 for k, v in pats.items() if k != key)
    ok &= data["labels"]["x"]["kinds"]["halo"]["sent"][me] == words
    return ok


# ---------------------------------------------------------------------------------------
# serial
# ---------------------------------------------------------------------------------------
def test_pattern_names():
    assert _pattern([(1, 0), (-1, 0)], 1) == "rows"
    assert _pattern([(0, 1)], 1) == "cols"
    assert _pattern([(1, 0), (0, -1)], 1) == "cols"
    assert _pattern([(1, 0), (1, 1)], 1) == "box"
    assert _pattern([(1, 1), (0, 1)], 4) == "box/w4"
    assert _pattern([(1,), (-1,)], 3) == "rows/w3"      # 1-D: contiguous runs of width
    assert _pattern([(0, 1, 0)], 1) == "rows"           # 3-D: whole rows of a plane
    assert _pattern([(0, 0, 1)], 2) == "cols/w2"
    assert _pattern([], 1) == "rows"                    # no neighbour at all: nothing strided


@pytest.mark.parametrize("case", CASES)
def test_serial_exchange_records_its_pattern(case):
    from mpi4py import MPI

    assert check_case(MPI.COMM_SELF, *case)


def test_narrower_exchange_records_its_width():
    from mpi4py import MPI

    data, key, words = run_case(MPI.COMM_SELF, (17, 19), (True, True), 3, "box", width=2)
    assert key == "halo:box/w2" and data["labels"]["x"]["patterns"][key]["sent"] == [words]


def test_log_aggregates_patterns_per_label_and_open_superstep():
    log = costlog.Log()
    with log:
        costlog.record_comm("halo", 10, 10, 0.5, "rows")
        costlog.record_comm("halo", 4, 6, 0.25, "cols")
        costlog.record_comm("reduce", 1, 1, 0.125)          # no pattern: kinds only
        log.end_superstep("s")
        costlog.record_comm("halo", 10, 10, 0.5, "rows")
        log.end_superstep("s")
        costlog.record_comm("halo", 3, 3, 0.5, "box/w2")    # still open
    loc = log.local()["labels"]
    assert loc["s"]["patterns"] == {"halo:rows": {"count": 2, "sent": 20, "recv": 20, "seconds": 1.0},
                                    "halo:cols": {"count": 1, "sent": 4, "recv": 6, "seconds": 0.25}}
    assert loc["s"]["kinds"]["halo"]["count"] == 3 and loc["s"]["kinds"]["reduce"]["count"] == 1
    assert loc[costlog.OPEN]["patterns"] == {"halo:box/w2": {"count": 1, "sent": 3, "recv": 3, "seconds": 0.5}}
    # local() of the open superstep copies: recording on goes into the log, not the copy
    costlog.Log.record(log, "halo", 3, 3, 0.5, "box/w2")
    assert log.local()["labels"][costlog.OPEN]["patterns"]["halo:box/w2"]["count"] == 2
    m = costlog.merge([{"elapsed": 1.0, "labels": {"s": loc["s"]}}, {"elapsed": 2.0, "labels": {}}])
    assert m["labels"]["s"]["patterns"]["halo:rows"]["count"] == [2, 0]
    assert m["labels"]["s"]["patterns"]["halo:cols"]["recv"] == [6, 0]


MACHINE = {"g": 1.0, "l": 2.0, "ranks": 2, "l_empty": 0.5,
           "fit": {"raw": fit(5.0, 6.0), "halo": fit(11.0, 12.0), "halo:rows": fit(21.0, 22.0)},
           "after_compute": {"stream_bytes": 1 << 25, "stream_seconds": 0.004,
                             "fit": {"raw": fit(9.0, 10.0), "halo": fit(13.0, 14.0), "halo:rows": fit(31.0, 32.0),
                                     "halo:cols": fit(41.0, 42.0), "halo:box/w2": fit(51.0, 52.0),
                                     "halo:box/w8": fit(61.0, 62.0)}}}


def test_choose_pattern_takes_the_fit_of_the_pattern_in_its_cache_state():
    m = MachineParams.from_json(MACHINE)
    assert m.choose_pattern("halo:rows", 0.001) == (21.0, 22.0, "halo:rows, back to back", None)
    assert m.choose_pattern("halo:rows", 0.01) == (31.0, 32.0, "halo:rows, after compute", None)
    assert m.choose_pattern("halo:cols", 0.01) == (41.0, 42.0, "halo:cols, after compute", None)
    # not fitted in this cache state: None (the caller falls back to the layer's fit)
    assert m.choose_pattern("halo:cols", 0.001) is None
    assert m.choose_pattern("halo:box", 0.01) is None
    # a deep halo of another width: the same shape's nearest width, named
    assert m.choose_pattern("halo:box/w4", 0.01) == (51.0, 52.0, "halo:box/w2 for halo:box/w4, after compute", None)
    assert m.choose_pattern("halo:box/w6", 0.01)[2] == "halo:box/w8 for halo:box/w6, after compute"
    assert m.choose_pattern("halo:rows/w2", 0.01) is None     # width 1 is no deep halo's nearest
    assert m.choose_pattern("halo:cols", 0.01)[:2] == (41.0, 42.0)
    assert MachineParams.from_json({"g": 1.0, "l": 2.0}).choose_pattern("halo:rows", 1.0) is None
    # a fit that says which words it was measured over passes them on (numbers only)
    mach = {**MACHINE, "after_compute": {**MACHINE["after_compute"], "fit": {"halo:cols": fit(4.0, -2.0, (6, 10))}}}
    assert MachineParams.from_json(mach).choose_pattern("halo:cols", 0.01)[3] == (6, 10)
    mach["after_compute"]["fit"]["halo:cols"]["h_max"] = "10"
    assert MachineParams.from_json(mach).choose_pattern("halo:cols", 0.01)[3] is None


def fake_log(patterns, kinds=("halo",), steps=10, w=0.1):
    """A gathered 2-rank log of one label "step": ``patterns``: key -> (count, words per
    rank), the halo kind summing them; 0.1 s of compute per superstep."""
    pats = {k: {"count": [c, c], "sent": list(ws), "recv": list(ws), "seconds": [1e-3, 1e-3]}
            for k, (c, ws) in patterns.items()}
    tot = [sum(ws[r] for _, ws in patterns.values()) for r in range(2)]
    kd = {k: {"count": [steps] * 2, "sent": tot, "recv": tot, "seconds": [1e-3] * 2} for k in kinds}
    lab = {"count": [steps] * 2, "w": [w * steps] * 2, "w_max": [w] * 2, "comm": [0.01, 0.02], "sync": [0.0, 0.0],
           "sent": tot, "recv": tot, "h": tot, "h_max": tot, "kinds": kd, "patterns": pats}
    return {"format": costlog.FORMAT, "ranks": 2, "elapsed": 2.0, "elapsed_per_rank": [2.0, 2.0],
            "labels": {"step": lab}}


def row(data, machine=MACHINE):
    return {r["label"]: r for r in report.summarise(data, machine, allow_unphysical=True)["rows"]}["step"]


def test_report_predicts_each_pattern_with_its_fit():
    r = row(fake_log({"halo:cols": (10, (3000, 2000))}))
    assert r["model"] == "halo:cols, after compute"
    assert r["patterns"] == {"halo:cols": {"count": 10, "h": 3000}}
    assert r["predicted"] == pytest.approx(41.0 * 3000 + 42.0 * 10) and r["ratio"] == pytest.approx(
        r["predicted"] / 0.01)
    # two patterns in one label: each with its own fit, summed
    r = row(fake_log({"halo:cols": (10, (3000, 2000)), "halo:rows": (10, (100, 500))}))
    assert r["predicted"] == pytest.approx(41.0 * 3000 + 42.0 * 10 + 31.0 * 500 + 32.0 * 10)
    # a deep halo exchanged on 1 superstep in 4: the other supersteps cost an empty sync
    r = row(fake_log({"halo:box/w2": (3, (900, 900))}, steps=12))
    assert r["predicted"] == pytest.approx(51.0 * 900 + 52.0 * 3 + 0.5 * 9)


def test_report_falls_back_to_the_layer_fit():
    # a pattern with no fit in this cache state, BSP data in the label, an old log
    # without patterns: MachineParams.choose, as before
    r = row(fake_log({"halo:box": (10, (3000, 3000))}))
    assert r["model"] == "halo, after compute" and r["predicted"] == pytest.approx(13.0 * 3000 + 14.0 * 10)
    r = row(fake_log({"halo:cols": (10, (3000, 3000))}, w=0.001))
    assert r["model"] == "halo, back to back"
    r = row(fake_log({"halo:cols": (10, (3000, 3000))}, kinds=("halo", "bsp")))
    assert r["model"] == "g, l"         # no hpput fit in this machine: its g and l
    old = fake_log({"halo:cols": (10, (3000, 3000))})
    del old["labels"]["step"]["patterns"]
    assert row(old)["model"] == "halo, after compute"


def test_report_marks_an_unphysical_pattern_fit():
    mach = {**MACHINE, "after_compute": {**MACHINE["after_compute"], "fit": {
        **MACHINE["after_compute"]["fit"], "halo:cols": fit(4e-9, -2e-5)}}}
    r = {x["label"]: x for x in report.summarise(fake_log({"halo:cols": (10, (3000, 3000))}), mach)["rows"]}["step"]
    assert "not_physical" in r and "predicted" not in r


def test_unphysical_at_accepts_a_negative_l_only_inside_the_fitted_words():
    """A pattern's fit over grids near the program's is the chord of a cost that bends
    upwards: l < 0 predicts where it was measured (and is positive), nowhere else."""
    ok = report.unphysical_at
    assert ok(4e-9, -2e-5, (6000, 10000), 8000) is None
    assert ok(4e-9, -2e-5, (6000, 10000), 6000) is None and ok(4e-9, -2e-5, (6000, 10000), 10000) is None
    assert "outside the 6000..10000" in ok(4e-9, -2e-5, (6000, 10000), 5999)
    assert "outside" in ok(4e-9, -2e-5, (6000, 10000), 10001)
    assert "l = " in ok(4e-9, -2e-5, (4000, 10000), 8000)       # not positive over all of it (at 4000: -4 µs)
    assert "g = " in ok(-4e-9, 2e-5, (6000, 10000), 8000)       # a negative slope, anywhere
    assert ok(4e-9, -2e-5, None, 8000) == report.unphysical(g=4e-9, l=-2e-5)   # an older file: no span
    assert "not a number" in ok(4e-9, "x", (6000, 10000), 8000)
    assert "not finite" in ok(4e-9, float("-inf"), (6000, 10000), 8000)
    assert ok(4e-9, 2e-5, None, 1e9) is None                     # l >= 0: a line at every h, as before


def test_report_predicts_from_a_local_pattern_fit_inside_its_words(tmp_path, capsys):
    """The per-exchange words (the label's h over its exchanges) decide: 3000 words per
    exchange inside the fit's 2000..4000, predicted; 5000 outside, not physical, saying
    why; the machine lines call the fit a line over its words."""
    local = fit(4e-9, -2e-6, (2000, 4000))
    mach = {**MACHINE, "after_compute": {**MACHINE["after_compute"], "fit": {
        **MACHINE["after_compute"]["fit"], "halo:cols": local}}}
    r = {x["label"]: x for x in report.summarise(fake_log({"halo:cols": (10, (30000, 20000))}), mach)["rows"]}["step"]
    assert "not_physical" not in r and r["predicted"] == pytest.approx(4e-9 * 30000 - 2e-6 * 10)
    r = {x["label"]: x for x in report.summarise(fake_log({"halo:cols": (10, (50000, 50000))}), mach)["rows"]}["step"]
    assert "outside the 2000..4000" in r["not_physical"] and "predicted" not in r
    log, m = tmp_path / "log.json", tmp_path / "m.json"
    log.write_text(json.dumps(fake_log({"halo:cols": (10, (50000, 50000))})))
    m.write_text(json.dumps(mach))
    assert report.main([str(log), "--machine", str(m)]) == 0
    assert "with --sides near this program's grid" in capsys.readouterr().out
    log.write_text(json.dumps(fake_log({"halo:cols": (10, (30000, 20000))})))
    assert report.main([str(log), "--machine", str(m)]) == 0
    text = capsys.readouterr().out
    assert "halo:cols g = " in text and "(a line over h = 2000..4000 words only)" in text, text
    assert "not phys" not in text


# ---------------------------------------------------------------------------------------
# 2-4 ranks
# ---------------------------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("case", CASES)
def test_every_rank_records_its_pattern(comm, case):
    from mpi4py import MPI

    assert comm.allreduce(check_case(comm, *case), op=MPI.LAND)


@pytest.mark.mpi
def test_report_on_a_real_log_uses_the_patterns_each_rank_ran(comm):
    """A run whose ranks ran different patterns (a grid periodic along axis 1 only, split
    along axis 0: the end ranks have one row neighbour): the label's h per pattern is the
    largest on any rank, and the prediction sums the patterns' fits."""
    from mpi4py import MPI

    P = comm.Get_size()
    with pympc.Decomposition((4 * P + 1, 9), comm=comm, dims=(P, 1), periodic=(False, True)) as d:
        a = pympc.DistArray(d)
        with costlog.Log(comm) as log:
            for _ in range(3):
                with log.superstep("step"):
                    pympc.update_halo(a)
            data = log.gather(root=None)
        key, words = expected(d, "star", 1)
    allw = comm.allgather((key, words))
    mach = {"g": 1.0, "l": 2.0, "fit": {f"halo:{k}": fit(7.0 + i, 3.0) for i, k in enumerate(("rows", "cols"))}}
    r = {x["label"]: x for x in report.summarise(data, mach)["rows"]}["step"]
    want = {}
    for k, w in allw:
        want[f"halo:{k}"] = max(want.get(f"halo:{k}", 0), 3 * w)
    assert set(r["patterns"]) == set(want) and all(r["patterns"][k]["h"] == h for k, h in want.items())
    g = {"halo:rows": 7.0, "halo:cols": 8.0}
    assert r["predicted"] == pytest.approx(sum(g[k] * h + 3.0 * 3 for k, h in want.items()))
    assert comm.allreduce(True, op=MPI.LAND)


@pytest.mark.mpi
def test_pattern_relation_fits_the_pattern_it_runs(comm):
    """bench.time_patterns on tiny grids: each fit is keyed by the pattern the cost log
    recorded, its words are the exchange's (the oracle's, the largest on any rank)."""
    from mpi4py import MPI

    from pympc import bench

    sides = (8, 12, 16)
    out = bench.time_patterns(("rows", "box/w2"), sides=sides, iters=2, reps=1, comm=comm, compute=1 << 12)
    for name, spec in (("rows", ((True, False), "star", 1)), ("box/w2", ((True, True), "box", 2))):
        periodic, stencil, width = spec
        keys, words = set(), []
        for n in sides:
            with pympc.Decomposition((n, n), comm=comm, dims=MPI.Compute_dims(comm.Get_size(), 2),
                                     periodic=periodic, ghost=width, stencil=stencil) as d:
                k, w = expected(d, stencil, width)
            keys |= set(comm.allgather(k))
            words.append(comm.allreduce(w, op=MPI.MAX))
        got = [v for v in out.values() if v["name"] == name]
        assert len(got) == 1 and got[0]["words"] == words and got[0]["sides"] == list(sides)
        assert {"g", "l", "r2"} <= set(got[0]["fit"]) and len(got[0]["times"]) == len(sides)
        # the key is the pattern some rank recorded
        assert [k for k, v in out.items() if v["name"] == name][0].split(":", 1)[1] in keys


@pytest.mark.mpi
def test_pattern_fits_sweep_with_the_loop_they_are_given(comm, monkeypatch):
    """time_patterns(stores=...) sweeps every grid with that 2-D loop (a program's own,
    bench_bsp's way to fit in the program's cache state); a name that is no loop is one
    InputError on every rank, before any grid is built."""
    from pympc import bench, kernels

    seen = []
    real = kernels.heat_step
    monkeypatch.setattr(kernels, "heat_step", lambda *a, **k: seen.append(k.get("stores")) or real(*a, **k))
    out = bench.time_patterns(("rows",), sides=(8, 12, 16), iters=2, reps=1, comm=comm, compute=1 << 12,
                              stores="stream-rows")
    assert len(out) == 1 and seen and set(seen) == {"stream-rows"}
    with pytest.raises(pympc.InputError, match="stores must be one of"):
        bench.time_patterns(("rows",), sides=(8,), comm=comm, stores="fastest")


@pytest.mark.mpi
def test_pattern_supersteps_sweep_as_often_as_the_program(comm, monkeypatch):
    """A pattern superstep's compute phase is the program's: as many FTCS sweeps of its
    grid as the halo width (one step per exchange; k for a deep halo), however small the
    grid and however many bytes the compute phase names. (More sweeps on the smaller
    grids made their exchanges dearer and lifted the fit above the program it predicts.)"""
    from pympc import bench, kernels

    calls = []
    real = kernels.heat_step
    monkeypatch.setattr(kernels, "heat_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    for name, width in (("rows", 1), ("box/w2", 2), ("box/w4", 4)):
        pr = bench.PatternRelation(name, (12,), comm)
        try:
            for compute, want in ((bench.Stream(1 << 22), width), (None, 0)):
                del calls[:]
                pr.run(12, compute)
                assert len(calls) == want, (name, compute, len(calls))
        finally:
            pr.close()
