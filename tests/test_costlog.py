"""The cost log (pympc.costlog), the machine model (pympc.bsp.model) and the profile
report (pympc.bsp.report): aggregation per label, the figures of the report on hand-made
logs, the PNG, the Amdahl/Gustafson fits on synthetic timings, the machine file format,
and ``pympc report`` without MPI."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import pympc
from pympc import costlog
from pympc.bsp import report
from pympc.bsp.model import FORMAT as MACHINE_FORMAT
from pympc.bsp.model import MachineParams


def fake_log(ranks=2):
    """A gathered log with known figures: label "step" (10 supersteps) and "io"."""
    return {"format": costlog.FORMAT, "ranks": ranks, "elapsed": 2.0, "elapsed_per_rank": [2.0] * ranks,
            "labels": {
                "step": {"count": [10] * ranks, "w": [1.0, 0.6][:ranks], "w_max": [0.1, 0.06][:ranks],
                         "comm": [0.10, 0.40][:ranks], "sync": [0.02, 0.12][:ranks],
                         "sent": [1000, 3000][:ranks], "recv": [1000, 1000][:ranks],
                         "h": [1000, 3000][:ranks], "h_max": [100, 300][:ranks],
                         "kinds": {"halo": {"count": [10] * ranks, "sent": [1000, 3000][:ranks],
                                            "recv": [1000, 1000][:ranks], "seconds": [0.1, 0.4][:ranks]}}},
                "io": {"count": [1] * ranks, "w": [0.2] * ranks, "w_max": [0.2] * ranks, "comm": [0.0] * ranks,
                       "sync": [0.01] * ranks, "sent": [0] * ranks, "recv": [0] * ranks, "h": [0] * ranks,
                       "h_max": [0] * ranks, "kinds": {}}}}


def test_summarise_figures():
    s = report.summarise(fake_log(), {"g": 1e-6, "l": 1e-3, "ranks": 2})
    row = {r["label"]: r for r in s["rows"]}["step"]
    assert row["steps"] == 10
    assert row["w_max"] == 1.0 and row["w_mean"] == pytest.approx(0.8)
    assert row["w_imbalance"] == pytest.approx(1.25) and row["w_rank"] == 0
    assert row["h"] == 3000 and row["h_imbalance"] == pytest.approx(1.5) and row["h_rank"] == 1
    # comm + sync per rank: 0.12 and 0.52; the rank that waited least took 0.12
    assert row["measured"] == pytest.approx(0.12)
    assert row["idle"] == pytest.approx(0.40) and row["idle_rank"] == 1
    assert row["idle_fraction"] == pytest.approx(0.40 / (1.12 + 1.12))
    assert row["predicted"] == pytest.approx(3000e-6 + 10e-3)
    assert row["ratio"] == pytest.approx(0.013 / 0.12)
    tot = s["totals"]
    assert tot["steps"] == 11 and tot["predicted"] == pytest.approx(0.013 + 0.001)
    assert tot["accounted"] == pytest.approx((1.12 + 0.21) / 2.0)


def test_model_parameters_follow_the_layer_and_the_compute_phase():
    """A superstep's prediction takes the fit of its layer (BSP puts: hpput; halo
    exchanges: the halo h-relation; reductions and empty syncs: raw MPI) measured back to
    back, or after a compute phase when its own lasts at least half the bench's."""
    fit = lambda g, l: {"g": g, "l": l}  # noqa: E731
    old = {"g": 1.0, "l": 2.0, "ranks": 2, "fit": {"hpput": fit(3.0, 4.0), "raw": fit(5.0, 6.0)},
           "after_compute": {"stream_bytes": 1 << 25, "stream_seconds": 0.004,
                             "fit": {"hpput": fit(7.0, 8.0), "raw": fit(9.0, 10.0)}}}
    mp = report.model_parameters
    assert mp(old, ("bsp",), 0.001) == (3.0, 4.0, "hpput, back to back")
    assert mp(old, (), 0.001) == (5.0, 6.0, "raw, back to back")
    assert mp(old, ["bsp", "halo"], 0.002) == (7.0, 8.0, "hpput, after compute")
    assert mp(old, (), 0.01) == (9.0, 10.0, "raw, after compute")
    # a machine file without the halo fits: halo supersteps take the raw ones
    assert mp(old, ("halo",), 0.001) == (5.0, 6.0, "raw, back to back")
    assert mp(old, ("halo", "reduce"), 0.01) == (9.0, 10.0, "raw, after compute")
    assert mp({"g": 1.0, "l": 2.0}, ("bsp",), 1.0) == (1.0, 2.0, "g, l")
    mach = {**old, "fit": {**old["fit"], "halo": fit(11.0, 12.0)},
            "after_compute": {**old["after_compute"], "fit": {**old["after_compute"]["fit"], "halo": fit(13.0, 14.0)}}}
    assert mp(mach, ("halo",), 0.001) == (11.0, 12.0, "halo, back to back")
    assert mp(mach, ("halo", "reduce"), 0.002) == (13.0, 14.0, "halo, after compute")
    assert mp(mach, ("reduce",), 0.002) == (9.0, 10.0, "raw, after compute")
    assert mp(mach, ("bsp", "halo"), 0.002) == (7.0, 8.0, "hpput, after compute")
    # the "step" label of the fake log: halo only, 0.1 s of compute per superstep
    row = {r["label"]: r for r in report.summarise(fake_log(), old)["rows"]}["step"]
    assert row["model"] == "raw, after compute" and row["predicted"] == pytest.approx(9.0 * 3000 + 10.0 * 10)
    row = {r["label"]: r for r in report.summarise(fake_log(), mach)["rows"]}["step"]
    assert row["model"] == "halo, after compute" and row["predicted"] == pytest.approx(13.0 * 3000 + 14.0 * 10)
    text = report.report(fake_log(), mach)
    assert "step: halo, after compute" in text and "after a compute phase streaming 32 MiB" in text


def test_cold_once_the_compute_phase_outgrows_the_private_cache():
    """With the bench's private cache size, a superstep is predicted after a compute
    phase once its own lasts as long as streaming twice that cache took in the bench
    (here 2 MiB of the 32 MiB phase's 4 ms: 0.25 ms), however large the last-level cache
    the bench streamed; never beyond the bench's whole phase."""
    fit = lambda g, l: {"g": g, "l": l}  # noqa: E731
    ac = {"stream_bytes": 1 << 25, "stream_seconds": 0.004, "private_cache_bytes": 1 << 20,
          "fit": {"raw": fit(9.0, 10.0)}}
    m = MachineParams.from_json({"g": 1.0, "l": 2.0, "fit": {"raw": fit(5.0, 6.0)}, "after_compute": ac})
    assert not m.cold(0.00024) and m.cold(0.00026) and m.cold(1.0)
    assert m.choose((), 0.00024)[2] == "raw, back to back" and m.choose((), 0.00026)[2] == "raw, after compute"
    big = MachineParams.from_json({"g": 1.0, "l": 2.0, "after_compute": {**ac, "private_cache_bytes": 1 << 30}})
    assert not big.cold(0.0039) and big.cold(0.004)  # a cache larger than the phase: the whole phase
    old = MachineParams.from_json({"g": 1.0, "l": 2.0, "after_compute": {k: v for k, v in ac.items()
                                                                         if k != "private_cache_bytes"}})
    assert not old.cold(0.0019) and old.cold(0.002)  # a file without the size: half the phase, as before
    assert not MachineParams.from_json({"g": 1.0, "l": 2.0}).cold(1.0)


def test_summarise_without_machine_and_bad_input():
    s = report.summarise(fake_log(1))
    assert "predicted" not in s["rows"][0] and s["machine"] is None
    with pytest.raises(pympc.InputError, match="not a pympc profile"):
        report.summarise({"format": "x"})


def test_report_text_and_png(tmp_path):
    png = tmp_path / "r.png"
    text = report.report(fake_log(), {"g": 1e-6, "l": 1e-3, "ranks": 4}, png=str(png))
    assert "step" in text and "io" in text and "total" in text
    assert "measured at 4 rank(s)" in text and "warning" in text   # machine of another rank count
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [ln for ln in text.splitlines() if ln.startswith("step")]
    assert "0.11" in lines[0]     # pred/meas of the "step" label


def test_report_cli(tmp_path, capsys):
    log = tmp_path / "log.json"
    log.write_text(json.dumps(fake_log()))
    mach = tmp_path / "m.json"
    mach.write_text(json.dumps({"g": 2e-9, "l": 5e-6, "ranks": 2}))
    out = tmp_path / "s.json"
    rc = report.main([str(log), "--machine", str(mach), "--png", str(tmp_path / "p.png"), "--json", str(out)])
    assert rc == 0
    assert "pympc profile: 2 rank(s)" in capsys.readouterr().out
    assert json.loads(out.read_text())["rows"][0]["label"] == "step"
    assert report.main([str(tmp_path / "missing.json")]) == 1
    from pympc.tools import cli
    assert cli.main(["report", str(log)]) == 0


def test_report_marks_fits_that_are_not_physical_and_predicts_nothing_from_them(tmp_path, capsys):
    """Issue 12.19: g or l fitted negative (measured under load) are marked "not
    physical", no prediction is made from them, and ``pympc report`` still exits 0.
    Every way a fit can be chosen: the top-level g/l, a layer's back-to-back fit, an
    after-compute fit; negative, NaN and infinite values; rows whose fit is physical
    keep their prediction."""
    fit = lambda g, l: {"g": g, "l": l}  # noqa: E731
    log = tmp_path / "log.json"
    log.write_text(json.dumps(fake_log()))
    # "step" (halo, 0.1 s compute per superstep) takes the halo fit after compute; "io"
    # (no communication, 0.2 s) the raw fit after compute
    base = {"g": 2e-9, "l": 5e-6, "ranks": 2, "fit": {"hpput": fit(2e-9, 5e-6), "raw": fit(1e-9, 4e-6),
                                                     "halo": fit(3e-9, 6e-6)},
            "after_compute": {"stream_bytes": 1 << 25, "stream_seconds": 0.004,
                              "fit": {"hpput": fit(2e-9, 5e-6), "raw": fit(1e-9, 4e-6), "halo": fit(3e-9, 6e-6)}}}
    cases = [
        ({"g": -1e-9, "l": -2e-6, "ranks": 2}, ["step", "io"]),                 # the old form: g, l only
        ({**base, "after_compute": {**base["after_compute"], "fit": {
            **base["after_compute"]["fit"], "halo": fit(-3e-9, 6e-6)}}}, ["step"]),
        ({**base, "after_compute": {**base["after_compute"], "fit": {
            **base["after_compute"]["fit"], "raw": fit(1e-9, -4e-6)}}}, ["io"]),
        ({**base, "after_compute": {**base["after_compute"], "fit": {
            **base["after_compute"]["fit"], "halo": fit(float("nan"), 6e-6), "raw": fit(1e-9, float("inf"))}}},
         ["step", "io"]),
    ]
    for k, (machine, bad) in enumerate(cases):
        mach = tmp_path / f"m{k}.json"
        mach.write_text(json.dumps(machine))
        out = tmp_path / f"s{k}.json"
        png = tmp_path / f"p{k}.png"
        rc = report.main([str(log), "--machine", str(mach), "--json", str(out), "--png", str(png)])
        text = capsys.readouterr().out
        assert rc == 0, text
        assert png.read_bytes()[:4] == b"\x89PNG"
        rows = {r["label"]: r for r in json.loads(out.read_text())["rows"]}
        for lab, row in rows.items():
            if lab in bad:
                assert "predicted" not in row and "ratio" not in row and row["not_physical"], (k, lab)
                assert f"{lab}: {row['model']} (not physical: {row['not_physical']}; no prediction)" in text
                line = next(ln for ln in text.splitlines() if ln.startswith(lab))
                assert "not phys." in line, (k, line)
            else:
                assert row["predicted"] > 0 and "not_physical" not in row, (k, lab)
        assert "not physical" in text and "no prediction" in text, text
        assert "predicted" not in json.loads(out.read_text())["totals"]
    # physical fits: no mark
    mach = tmp_path / "good.json"
    mach.write_text(json.dumps(base))
    assert report.main([str(log), "--machine", str(mach)]) == 0
    assert "not phys" not in capsys.readouterr().out
    assert report.unphysical(g=1e-9, l=0.0) is None
    # a benchmark may still ask what its own noisy fit predicts: computed, and marked
    row = {r["label"]: r for r in report.summarise(fake_log(), cases[0][0], allow_unphysical=True)["rows"]}["step"]
    assert row["predicted"] == pytest.approx(-1e-9 * 3000 - 2e-6 * 10) and row["not_physical"]
    assert "g" in report.unphysical(g=-1e-9, l=1.0) and "l" in report.unphysical(g=0.0, l=float("nan"))


def test_scaling_fits_outside_zero_one_are_not_physical(tmp_path, capsys):
    """Runs that slow down faster than a serial program would (weak scaling, scaled
    speedup 1, 0.6, 0.2 at 1, 2, 3 ranks) fit Gustafson's s = 1.4: marked not physical,
    and the report still exits 0."""
    logs = []
    for p, t in ((1, 1.0), (2, 1.0 * 2 / 0.6), (3, 1.0 * 3 / 0.2)):
        d = fake_log()
        d["ranks"], d["elapsed"] = p, t
        path = tmp_path / f"run{p}.json"
        path.write_text(json.dumps(d))
        logs.append(str(path))
    gu = report.fit_gustafson([1, 2, 3], [1.0, 2 / 0.6, 3 / 0.2])
    assert gu["serial_fraction"] == pytest.approx(1.4) and gu["physical"] is False
    assert report.fit_gustafson([1, 2, 4], [1.0, 1.05, 1.1])["physical"] is True
    a = report.fit_amdahl([1, 2, 4], [10.0, 6.0, 4.0])
    assert a["physical"] is True and 0 <= a["serial_fraction"] <= 1
    assert report.main(logs + ["--png", str(tmp_path / "s.png")]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if "Gustafson" in ln)
    assert "s = 1.400 (not physical" in line, text


def test_scaling_section_with_three_rank_counts(tmp_path):
    logs = []
    for p in (1, 2, 4):
        d = fake_log()
        d["ranks"], d["elapsed"] = p, 10.0 * (0.2 + 0.8 / p)
        logs.append(d)
    text = report.report(logs[0], scaling=logs, png=str(tmp_path / "s.png"))
    assert "serial fraction s = 0.200" in text
    assert "needs runs at 3" in report.report(logs[0], scaling=logs[:2])


def test_amdahl_fit_recovers_synthetic_serial_fraction():
    P = np.array([1, 2, 4, 8, 16])
    T = 100.0 * (0.05 + 0.95 / P)
    f = report.fit_amdahl(P, T)
    assert f["serial_fraction"] == pytest.approx(0.05, abs=1e-12)
    assert f["t1"] == pytest.approx(100.0) and f["max_speedup"] == pytest.approx(20.0)
    assert f["rms_rel_residual"] < 1e-12
    noisy = T * (1 + 0.02 * np.array([1, -1, 1, -1, 1]))
    assert report.fit_amdahl(P, noisy)["serial_fraction"] == pytest.approx(0.05, abs=0.02)
    # superlinear data: no negative serial fraction
    assert report.fit_amdahl([1, 2, 4], [10.0, 4.0, 1.5])["serial_fraction"] >= 0


def test_gustafson_fit_recovers_synthetic_serial_fraction():
    P = np.array([1, 2, 4, 8])
    S = P - 0.1 * (P - 1)                  # scaled speedup with s = 0.1
    T = P * 5.0 / S                         # weak scaling: T(P) = P T(1) / S(P)
    f = report.fit_gustafson(P, T)
    assert f["serial_fraction"] == pytest.approx(0.1, abs=1e-12)
    assert np.allclose(f["scaled_speedup"], S)


def test_fits_need_three_rank_counts():
    with pytest.raises(pympc.InputError, match="3 or more"):
        report.fit_amdahl([1, 2, 2], [3.0, 2.0, 2.1])
    with pytest.raises(pympc.InputError):
        report.fit_gustafson([1, 2, 4], [1.0, 0.0, 1.0])


def test_log_aggregates_per_label_and_stays_bounded():
    log = costlog.Log()
    with log:
        for i in range(1000):
            with log.superstep("a"):
                costlog.record_comm("halo", 10, 12, 1e-6)
                costlog.record_comm("reduce", 1, 1, 1e-6)
            log.end_superstep("b", sync=0.0)
    mine = log.local()
    assert list(mine["labels"]) == ["a", "b"]
    a = mine["labels"]["a"]
    assert a["count"] == 1000 and a["sent"] == 11000 and a["recv"] == 13000
    assert a["h"] == 13000 and a["h_max"] == 13
    assert a["kinds"]["halo"]["count"] == 1000 and a["comm"] == pytest.approx(2e-3)
    assert len(json.dumps(mine)) < 2000      # bounded: a few numbers per label
    assert costlog.current() is not log      # the block has ended


def test_nested_blocks_belong_to_the_enclosing_superstep_and_outside_comm_is_kept():
    log = costlog.Log()
    with log:
        costlog.record_comm("halo", 4, 4, 1e-6)          # before any superstep
        with log.superstep("x"):
            time.sleep(0.002)
            with log.superstep("y"):                     # e.g. a preconditioner's
                costlog.record_comm("halo", 2, 2, 1e-6)
        costlog.record_comm("reduce", 1, 1, 1e-6)        # still open when read
    labels = log.local()["labels"]
    assert labels[costlog.OUTSIDE]["sent"] == 4
    assert "y" not in labels
    assert labels["x"]["w"] >= 0.0015 and labels["x"]["sent"] == 2 and labels["x"]["count"] == 1
    assert labels[costlog.OPEN]["sent"] == 1


def test_merge_handles_labels_missing_on_some_ranks():
    a = {"elapsed": 1.0, "labels": {"x": costlog._agg_dict([2, 1.0, 0.5, 0.1, 0.1, 8, 8, 8, 4, {}])}}
    b = {"elapsed": 1.5, "labels": {"y": costlog._agg_dict([1, 1.0, 1.0, 0.0, 0.2, 0, 0, 0, 0, {}])}}
    m = costlog.merge([a, b])
    assert m["ranks"] == 2 and m["elapsed"] == 1.5 and list(m["labels"]) == ["x", "y"]
    assert m["labels"]["x"]["count"] == [2, 0] and m["labels"]["y"]["sync"] == [0, 0.2]
    report.summarise(m)   # does not fail on zero rows


@pytest.mark.mpi
def test_default_log_is_always_on(comm):
    """Recording needs no set-up: reductions land in the current (default) log."""
    before = costlog.current().local()["labels"].get(costlog.OPEN, {}).get("kinds", {}).get("reduce", {})
    with pympc.Decomposition((8,), comm=comm) as d:
        pympc.DistArray(d).sum()
    after = costlog.current().local()["labels"][costlog.OPEN]["kinds"]["reduce"]
    assert after["count"] == before.get("count", 0) + 1


def test_empty_superstep_is_recorded_through_the_public_call():
    """BSP.sync's empty path (costlog.record_sync): one superstep, its sync time and
    compute, the same figures as end_superstep gives; a superstep with communication
    recorded falls back to end_superstep and keeps it."""
    log = costlog.Log()
    with log:
        t0 = time.perf_counter()
        costlog.record_sync("s", t0, t0 + 0.5)            # first of its label: end_superstep
        costlog.record_sync("s", t0 + 1.0, t0 + 1.25)     # the short way: 0.5 s compute, 0.25 s sync
        costlog.record_comm("reduce", 3, 3, 0.125)
        costlog.record_sync("s", t0 + 2.0, t0 + 2.5)      # with communication
    s = log.local()["labels"]["s"]
    assert s["count"] == 3 and s["sync"] == pytest.approx(1.25)
    assert s["w"] == pytest.approx((t0 - log.t_start) + 0.5 + (0.75 - 0.125)) and s["w_max"] >= 0.5
    assert s["sent"] == 3 and s["kinds"]["reduce"]["count"] == 1 and s["comm"] == pytest.approx(0.125)


def test_machine_params_round_trip_and_refuse_wrong_files(tmp_path):
    m = MachineParams(g=2e-9, l=5e-6, ranks=2, r=1e9, g_method="hpput",
                      fit={"hpput": {"g": 2e-9, "l": 5e-6, "r2": 0.99}, "raw": {"g": 1e-9, "l": 4e-6}},
                      after_compute={"stream_bytes": 1 << 20, "stream_seconds": 1e-3,
                                     "fit": {"raw": {"g": 3e-9, "l": 8e-6}}},
                      details={"l_empty": 1e-6, "logp": None})
    path = tmp_path / "m.json"
    m.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == MACHINE_FORMAT and data["g_flops"] == pytest.approx(2.0) and data["l_empty"] == 1e-6
    assert MachineParams.load(path) == m
    assert MachineParams.from_json({"g": 1.0, "l": 2.0}).choose(("bsp",), 1.0) == (1.0, 2.0, "g, l")
    assert m.choose(("halo",), 1e-3) == (3e-9, 8e-6, "raw, after compute")
    bad = {"log.json": fake_log(),                                   # a cost log, not a machine
           "nog.json": {"format": MACHINE_FORMAT, "l": 1.0},
           "text.json": "not json at all",
           "fit.json": {"g": 1.0, "l": 1.0, "fit": {"raw": {"g": "x", "l": 1.0}}},
           "ac.json": {"g": 1.0, "l": 1.0, "after_compute": {"fit": {}}},
           "list.json": [1, 2]}
    for name, content in bad.items():
        p = tmp_path / name
        p.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(pympc.InputError, match=name):
            MachineParams.load(p)
    with pytest.raises(pympc.InputError, match="not a pympc machine file"):
        report.summarise(fake_log(), fake_log())
    log = tmp_path / "run.json"
    log.write_text(json.dumps(fake_log()))
    assert report.main([str(log), "--machine", str(tmp_path / "log.json")]) == 1



def test_reading_and_reporting_a_log_starts_no_mpi(tmp_path):
    """The cost log's file side and the report run in processes that are not ranks:
    loading, summarising and reporting a saved log (with a machine file) import no
    mpi4py; so does building a Log without a communicator."""
    log = tmp_path / "log.json"
    log.write_text(json.dumps(fake_log()))
    mach = tmp_path / "m.json"
    MachineParams(g=2e-9, l=5e-6, ranks=2).save(mach)
    code = ("import sys\n"
            "from pympc import costlog\n"
            "from pympc.bsp import report\n"
            f"print(report.report(costlog.load({str(log)!r}), {str(mach)!r}))\n"
            "costlog.Log().end_superstep('x')\n"
            "assert 'mpi4py' not in sys.modules, sorted(m for m in sys.modules if 'mpi' in m)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "pympc profile: 2 rank(s)" in r.stdout
