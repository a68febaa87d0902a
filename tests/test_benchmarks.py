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


def _bench_tiny(tmp_path, name, script, *args):
    """Run ``script`` at 2 ranks with ``args`` and write its results table through the
    driver (run.write_results): the JSON results and the markdown."""
    import sys

    out = tmp_path / f"{name}.json"
    r = run_mpi(2, [os.path.join(ROOT, "benchmarks", script), *args, "--json", str(out)], timeout=300)
    assert r.returncode == 0, r.output[-3000:]
    res = json.loads(out.read_text())
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import run as bench_run
    finally:
        sys.path.pop(0)
    (tmp_path / "results").mkdir()
    md = bench_run.write_results(name, [res], str(tmp_path / "results"))
    return res, md


def test_implicit_benchmark_runs_tiny(tmp_path):
    res, md = _bench_tiny(tmp_path, "implicit", "bench_implicit.py", "--size", "33", "--steps", "3", "--reps", "1")
    assert res["pympc"]["steps"] == 3 and res["pympc"]["cg_iterations_per_step"] > 0
    assert "CN heat: pympc / best PETSc TS" in md
    if res["petsc"]:  # the same problem on both sides: the final fields agree to the tolerance
        assert res["final_norm_rel_diff"] < 1e-6 and res["ratios"]["pympc_over_best_petsc"] > 0


def test_newton_benchmark_runs_tiny(tmp_path):
    res, md = _bench_tiny(tmp_path, "newton", "bench_newton.py", "--sizes", "33", "--reps", "1")
    r = res["sizes"]["33"]
    assert r["pympc"]["reason"] == "converged" and r["pympc"]["newton_iterations"] >= 3
    assert "33²: pympc / best PETSc SNES" in md
    for name, v in r["petsc"].items():  # every PETSc way solved the same problem
        if "norm" in v:
            assert abs(v["norm"] - r["pympc"]["norm"]) < 1e-6 * r["pympc"]["norm"], name
        assert "error" not in v or name.startswith("ex5"), v  # ex5 needs a compiler and the mirror


def test_varmg_benchmark_runs_tiny(tmp_path):
    res, md = _bench_tiny(tmp_path, "varmg", "bench_varmg.py", "--size", "33", "--reps", "1")
    assert res["pympc"]["reason"] == "converged"
    assert "var-coefficient MG-PCG: pympc / best PETSc" in md
    for name, v in res["petsc"].items():
        if v.get("reason", 0) > 0:
            assert abs(v["norm"] - res["pympc"]["norm"]) < 1e-6 * res["pympc"]["norm"], name
