"""Machine parameters (pympc.bench, ``pympc bench``): the h-relation pattern, every
timing path moves the right words, the robust fit, and the command at a tiny size (its
file is a pympc.bsp.model.MachineParams)."""

import json

import numpy as np
import pytest

import pympc
from pympc import bench
from pympc.bsp.model import MachineParams
from pympc.tools.launch import run_mpi


@pytest.mark.parametrize("P", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("h", [0, 1, 5, 64, 101])
def test_hrelation_counts_send_and_receive_h_words(P, h):
    for s in range(P):
        assert sum(bench.counts(h, s, d, P) for d in range(P)) == h      # sends h
        assert sum(bench.counts(h, d, s, P) for d in range(P)) == h      # receives h
        assert max(bench.counts(h, s, d, P) for d in range(P)) <= -(-h // P)


def test_fit_recovers_g_and_l_and_flags_outliers():
    h = np.arange(0, 4097, 256)
    t = 2e-9 * h + 5e-6
    t[3] *= 3.0                       # a hiccup of the shared machine
    f = bench.fit(h, t)
    assert f["g"] == pytest.approx(2e-9, rel=1e-6) and f["l"] == pytest.approx(5e-6, rel=1e-6)
    assert f["outliers"] == [int(h[3])]
    assert f["g_low"] <= f["g"] <= f["g_high"]
    assert abs(f["g_ls"] / f["g"] - 1) > 0.1 and f["r2"] < 1.0   # least squares is pulled off
    assert (f["h_min"], f["h_max"]) == (0.0, 4096.0)                  # the range it holds over
    assert bench.fit([3000, 1000, 2000], [3.0, 1.0, 2.0])["h_min"] == 1000.0   # in any order
    with pytest.raises(pympc.InputError):
        bench.fit([1, 1, 1], [1.0, 2.0, 3.0])


def test_measure_rejects_bad_settings():
    with pytest.raises(pympc.InputError):
        bench.measure(hmax=1)
    with pytest.raises(pympc.InputError, match="unknown"):
        bench.measure(hmax=8, points=3, methods=("carrier pigeon",))
    with pytest.raises(pympc.InputError, match="stores must be one of"):
        bench.measure(hmax=8, points=3, stores="fastest")


@pytest.mark.mpi
@pytest.mark.parametrize("method", bench.METHODS)
@pytest.mark.parametrize("h", [0, 1, 7, 50])
def test_every_hrelation_path_moves_the_right_words(comm, method, h):
    hr = bench.HRelation(64, comm)
    try:
        assert hr.check(method, h)
        assert hr.check(method, h)          # again, with buffers reused
    finally:
        hr.close()


@pytest.mark.mpi
@pytest.mark.parametrize("h", [0, 1, 7, 50])
def test_halo_hrelation_moves_h_words_and_the_log_counts_them(comm, h):
    from pympc import costlog
    from pympc.bsp import report

    assert bench.words("halo", h) == max(2, h + h % 2) and bench.words("raw", h) == h
    hr = bench.HaloRelation([h], comm)
    try:
        assert hr.check(h) and hr.check(h)
        with costlog.Log(comm) as log:
            for _ in range(3):
                hr.run(h, compute=lambda: None)
            data = log.gather(root=None)
        row = {r["label"]: r for r in report.summarise(data)["rows"]}[bench.HaloRelation.LABEL]
        assert row["steps"] == 3 and row["kinds"] == ["halo"]
        assert row["h"] == 3 * bench.words("halo", h)     # every rank sends and receives h words
    finally:
        hr.close()


@pytest.mark.mpi
def test_time_hrelations_interleaves_and_times_the_halo_layer(comm):
    calls = []
    t = bench.time_hrelations([0, 16, 32], ("raw", "halo"), iters=2, reps=2, comm=comm, compute=1 << 16,
                                between=lambda: calls.append(comm.allreduce(1)), every=4)
    assert set(t) == {"raw", "halo"} and all(len(v) == 3 and min(v) > 0 for v in t.values())
    assert calls == [comm.Get_size()] * 3        # 12 batches, one call before every 4th
    f = bench.fit_method("halo", [0, 16, 32], [4.0, 11.0, 19.0])   # 0.5 * words + 3, words 2, 16, 32
    assert f["g"] == pytest.approx(0.5) and f["l"] == pytest.approx(3.0)


@pytest.mark.mpi
def test_time_hrelations_and_empty_sync(comm):
    t = bench.time_hrelations([0, 16, 32], ("hpput", "raw"), iters=2, reps=2, comm=comm)
    assert set(t) == {"hpput", "raw"} and all(len(v) == 3 and min(v) > 0 for v in t.values())
    e = bench.empty_sync(comm, iters=20, reps=2)
    assert e["l_empty"] > 0 and e["barrier"] > 0
    lp = bench.logp(comm, reps=10, big=1 << 12)
    if comm.Get_size() == 1:
        assert lp is None
    else:
        assert all(lp[k] > 0 for k in ("latency", "overhead", "overhead_recv", "gap", "bandwidth"))
    assert bench.compute_rate(comm, n=256, reps=5) > 0


def test_bench_command_writes_json(tmp_path):
    out = tmp_path / "m.json"
    r = run_mpi(2, ["-m", "pympc", "bench", "--hmax", "64", "--points", "3", "--reps", "1", "--iters", "2",
                    "--compute", str(1 << 20), "--patterns", "rows,box/w2", "--sides", "16,24,32",
                    "--stores", "stream-rows", "--json", str(out)], timeout=300)
    assert r.returncode == 0, r.output[-3000:]
    assert r.stdout.count("pympc bench: 2 rank(s)") == 1
    res = json.loads(out.read_text())
    assert res["format"] == bench.FORMAT and res["ranks"] == 2
    for k in ("r", "g", "l", "l_empty", "barrier", "g_flops", "l_flops"):
        assert np.isfinite(res[k]), k
    assert set(res["fit"]) == set(bench.ALL) and res["hrel"]["h"] == [0, 32, 64]
    assert res["settings"]["stores"] == "stream-rows"  # the pattern fits' loop, as asked
    assert "halo" in bench.ALL and np.isfinite(res["ratios"]["g_halo_over_raw"])  # a slope over h <= 64: noise
    assert res["logp"]["latency"] > 0 and np.isfinite(res["ratios"]["g_hpput_over_raw"])
    assert all(t > 0 for m in bench.ALL for t in res["hrel"][m])
    ac = res["after_compute"]  # the same h-relations, each after a 1 MiB memory stream
    assert ac["stream_bytes"] == 1 << 20 and ac["stream_seconds"] > 0
    assert ac["private_cache_bytes"] == bench.private_cache_bytes()
    assert set(ac["fit"]) == {"hpput", "raw", "halo", "halo:rows", "halo:box/w2"}
    assert all(len(ac["hrel"][m]) == 3 for m in ("hpput", "raw", "halo"))
    # the halo patterns, each on its own grids (2 ranks split 2 x 1: rows stay rows)
    assert ac["patterns"]["halo:box/w2"]["sides"] == [16, 24, 32] and len(ac["patterns"]["halo:rows"]["times"]) == 3
    assert "after a compute phase streaming 1 MiB" in r.stdout
    # each pattern fit keeps (and the summary prints) the words it was measured over
    for key in ("halo:rows", "halo:box/w2"):
        w = ac["patterns"][key]["words"]
        assert (ac["fit"][key]["h_min"], ac["fit"][key]["h_max"]) == (min(w), max(w))
        assert f"over h = {min(w)}..{max(w)} words" in r.stdout, r.stdout
    m = MachineParams.load(out)      # the file is a machine model the report reads
    assert m.ranks == 2 and m.g == res["g"] and m.g_method == "hpput" and m.details["logp"] == res["logp"]
    assert m.choose(("halo",), 1.0)[2] == "halo, after compute" and set(m.to_json()) == set(res)
    assert m.choose_pattern("halo:box/w4", 1.0)[2] == "halo:box/w2 for halo:box/w4, after compute"


def test_bench_command_refuses_an_unknown_loop():
    r = run_mpi(1, ["-m", "pympc", "bench", "--stores", "fastest"], timeout=120)
    assert r.returncode != 0 and "invalid choice: 'fastest'" in r.output


def test_stream_and_cache_size():
    assert bench.cache_bytes() >= 1 << 16
    assert 1 << 12 <= bench.private_cache_bytes() <= bench.cache_bytes()


def _fake_sysfs(root, caches):
    for i, (level, kind, size) in enumerate(caches):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")


@pytest.mark.parametrize("caches,last,private", [
    # a server: L3 shared by the socket, L2 the core's own
    ([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"), (3, "Unified", "307200K")],
     300 << 20, 2 << 20),
    # two levels: the L1 is the one below the last
    ([(1, "Data", "32K"), (2, "Unified", "1M")], 1 << 20, 32 << 10),
    # one level (its size both ways); an instruction cache never counts
    ([(1, "Data", "64K"), (2, "Instruction", "1M")], 64 << 10, 64 << 10),
    ([], 32 << 20, 1 << 20),  # nothing readable: the defaults
])
def test_cache_sizes_from_sysfs(tmp_path, monkeypatch, caches, last, private):
    import glob
    _fake_sysfs(tmp_path, caches)
    real = glob.glob
    monkeypatch.setattr(glob, "glob", lambda pat: real(str(tmp_path / "index*")) if "cpu0/cache" in pat else real(pat))
    assert bench.cache_bytes() == last and bench.private_cache_bytes() == private
    s = bench.Stream(1 << 16)       # two 64 x 64 grids, one stencil sweep between them
    s.src[...] = np.arange(64.0)[:, None] ** 2
    s.dst[...] = -1.0
    s()
    assert s.src.shape == s.dst.shape == (64, 64)
    # FTCS with r = 0.1 on i**2: u + 0.1 * 2 along axis 0, unchanged along axis 1
    assert np.allclose(s.dst[1:-1, 1:-1], s.src[1:-1, 1:-1] + 0.2)
    assert np.all(s.dst[0] == -1.0) and np.all(s.dst[:, -1] == -1.0)  # the rim is not written
