"""Every benchmark runs once at a tiny size, so none rots unnoticed (no timing asserted)."""

import json
import os

from pympc.tools.launch import run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_decomp_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "decomp.json"
    r = run_mpi(2, [os.path.join(ROOT, "benchmarks", "bench_decomp.py"), "--size", "64", "--steps", "2",
                    "--reps", "2", "--json", str(out)], timeout=300)
    assert r.returncode == 0, r.output[-3000:]
    res = json.loads(out.read_text())
    assert res["ranks"] == 2 and res["dims"] == [2, 1]
    for key in ("halo_pympc_over_hand", "heat_numpy_pympc_over_hand", "fast_over_roofline",
                "peak_extra_over_fields_fast"):
        assert res["ratios"][key] > 0
    assert res["gather_peak_other_max"] < res["gather_peak_root"]  # only the root holds the global array


def test_bench_driver_writes_results_files(tmp_path):
    import sys

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import run as bench_run
    finally:
        sys.path.pop(0)
    rc = bench_run.main(["decomp", "--ranks", "1", "--out", str(tmp_path), "--size", "32", "--steps", "1",
                         "--reps", "1"])
    assert rc == 0
    md = (tmp_path / "decomp.md").read_text()
    assert "halo: pympc / hand-written time" in md and "1 rank(s)" in md
    assert json.loads((tmp_path / "decomp.json").read_text())["runs"][0]["ranks"] == 1


def test_io_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "io.json"
    r = run_mpi(2, [os.path.join(ROOT, "benchmarks", "bench_io.py"), "--size", "64", "--reps", "1",
                    "--dir", str(tmp_path), "--json", str(out)], timeout=300)
    assert r.returncode == 0, r.output[-3000:]
    res = json.loads(out.read_text())
    assert res["ranks"] == 2 and res["bytes"] == 64 * 64 * 8
    for key in ("write_pympc_over_raw_speed", "read_pympc_over_raw_speed", "write_pympc_over_gather_speed"):
        assert res["ratios"][key] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["io.json"]  # its files are cleaned up


def test_solvers_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "solvers.json"
    r = run_mpi(2, [os.path.join(ROOT, "benchmarks", "bench_solvers.py"), "--size", "64", "--sor-size", "33",
                    "--steps", "2", "--reps", "1", "--json", str(out)], timeout=300)
    assert r.returncode == 0, r.output[-3000:]
    res = json.loads(out.read_text())
    assert res["ranks"] == 2
    for key in ("heat_over_roofline", "sor_sweeps_pympc_over_hand"):
        assert res["ratios"][key] > 0


def test_krylov_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "krylov.json"
    r = run_mpi(2, [os.path.join(ROOT, "benchmarks", "bench_krylov.py"), "--size", "33", "--iters", "5",
                    "--mg-size", "33", "--reps", "1", "--json", str(out)], timeout=300)
    assert r.returncode == 0, r.output[-3000:]
    res = json.loads(out.read_text())
    assert res["mgcg_pympc"]["iterations"] > 0 and res["cg_assembled_per_iter"]["median"] > 0


def test_farm_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "farm.json"
    r = run_mpi(2, [os.path.join(ROOT, "benchmarks", "bench_farm.py"), "--tiny", "200", "--busy", "20",
                    "--reps", "1", "--dir", str(tmp_path), "--json", str(out)], timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.output[-3000:]
    data = json.loads(out.read_text())
    assert data, data
