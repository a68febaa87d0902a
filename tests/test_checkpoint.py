"""Checkpoint/restart: atomic saves, rotation in the order of writing, time and physics as
attributes, restart on other rank counts with bit-identical fields, and jobs killed with
SIGKILL in the middle of a checkpoint (damaged checkpoints: test_checkpoint_damaged.py)."""

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import pympc
from mpicheck import on_root
from pympc.io.checkpoint import Checkpointer, CheckpointWarning, physics_changes, restart_rng
from pympc.tools.launch import clean_env, mpiexec_command, run_mpi

HERE = os.path.dirname(os.path.abspath(__file__))
HEAT = os.path.join(HERE, "cases", "heat_ckpt.py")


@pytest.mark.mpi
def test_save_load_rotation_and_rngs(comm, shared_tmp_path):
    with pympc.Decomposition((12, 7), comm=comm) as d:
        ck = Checkpointer(str(shared_tmp_path / "ck"), keep=2, comm=comm)
        assert ck.latest() is None
        with pytest.raises(pympc.InputError, match="no checkpoint"):
            ck.load(d)
        a = pympc.DistArray.from_function(d, lambda i, j: i * 100.0 + j, coords=False)
        g = pympc.rng(3, comm=comm)
        for step in (10, 20, 30):
            a.owned[...] += 1
            ck.save(step, {"a": a}, state={"time": step / 10, "params": {"k": 1}}, rngs=[g])
        assert ck.steps() == [20, 30]  # keep=2
        expect_next = g.random(3)
        r = ck.load(d)
        assert r.step == 30 and r.state["time"] == 3.0 and r.saved_ranks == comm.Get_size()
        np.testing.assert_array_equal(r.fields["a"].gather(root=None), a.gather(root=None))
        np.testing.assert_array_equal(r.rngs[0].random(3), expect_next)  # the stream goes on
        old = ck.load(d, step=20)
        np.testing.assert_array_equal(old.fields["a"].owned, a.owned - 1)
        g2 = restart_rng(5, 30, comm=comm)
        assert comm.allgather(g2.random()) != [g2.random()] * comm.Get_size()


@pytest.mark.mpi
def test_directory_is_created_by_the_first_save(comm, shared_tmp_path):
    """A Checkpointer creates nothing until it saves: a refused restart leaves no empty
    directory behind, and the error says the directory does not exist."""
    ckdir = shared_tmp_path / "later" / "ck"
    with pympc.Decomposition((6, 5), comm=comm) as d:
        ck = Checkpointer(str(ckdir), comm=comm)
        assert ck.latest() is None and ck.steps() == [] and ck.clear() == []
        with pytest.raises(pympc.InputError, match="the directory does not exist"):
            ck.info()
        comm.Barrier()
        assert not os.path.exists(shared_tmp_path / "later")
        ck.save(2, {"a": pympc.DistArray(d)})
        assert ck.steps() == [2] and os.path.isfile(ck.path(2))


@pytest.mark.mpi
def test_incompatible_checkpoint_is_refused_everywhere(comm, shared_tmp_path):
    import h5py

    ckdir = shared_tmp_path / "ck2"
    with pympc.Decomposition((6, 6), comm=comm) as d:
        ck = Checkpointer(str(ckdir), comm=comm)
        ck.save(1, {"a": pympc.DistArray(d)})
        if comm.Get_rank() == 0:
            with h5py.File(ck.path(1), "r+") as f:
                f.attrs["format_version"] = 0
            with h5py.File(ck.path(2), "w") as f:
                f.attrs["format"] = "pympc"
        comm.Barrier()
        with warnings.catch_warnings(record=True) as rec:  # both skipped, said once each
            warnings.simplefilter("always")
            for step, match in ((1, "format version 0"), (2, "not a pympc checkpoint")):
                with pytest.raises(pympc.InputError) as err:
                    ck.load(d, step=step)
                assert match in str(err.value) and ck.path(step) in str(err.value)
                assert len(set(comm.allgather(str(err.value)))) == 1
            assert ck.latest() is None
        assert len([w for w in rec if w.category is CheckpointWarning]) == (2 if comm.Get_rank() == 0 else 0)




def stamped(d, step):
    return pympc.DistArray.from_function(d, lambda i, j: i * 1000.0 + j + step, coords=False)


@pytest.mark.mpi
def test_newest_is_the_last_written_not_the_highest_step(comm, shared_tmp_path):
    """Issue 12 point 13: a shorter re-run into the same directory saved step 5 after a
    longer run's 20 and 30, and the save deleted the file it had just written."""
    ckdir = str(shared_tmp_path / "ck")
    with pympc.Decomposition((10, 7), comm=comm) as d:
        ck = Checkpointer(ckdir, keep=2, comm=comm)
        for step in (10, 20, 30):
            ck.save(step, {"u": stamped(d, step)}, state={"time": step / 10})
        assert ck.steps() == [20, 30]
        path = ck.save(5, {"u": stamped(d, 5)}, state={"time": 0.5})  # the re-run's first save
        assert os.path.exists(path) and path == ck.path(5)
        assert ck.steps() == [30, 5] and ck.latest() == 5  # 20, the oldest written, went
        r = ck.load(d)
        assert r.step == 5 and r.time == 0.5 and r.path == path
        np.testing.assert_array_equal(r.fields["u"].owned, stamped(d, 5).owned)
        # the order lives in the files: a new program (a new Checkpointer) sees it too
        again = Checkpointer(ckdir, keep=2, comm=comm)
        assert again.latest() == 5 and again.steps() == [30, 5]
        again.save(7, {"u": stamped(d, 7)})
        assert again.steps() == [5, 7]
        again.save(6, {"u": stamped(d, 6)})
        assert again.steps() == [7, 6] and again.load(d).step == 6
        # the same step again (a re-run over its own earlier save) replaces it and is newest
        again.save(7, {"u": stamped(d, 70)})
        assert again.steps() == [6, 7]
        np.testing.assert_array_equal(again.load(d).fields["u"].owned, stamped(d, 70).owned)
        seqs = [i.sequence for i in again.checkpoints()]
        assert seqs == sorted(seqs) and len(set(seqs)) == 2 and seqs[-1] == 7  # seven saves here
        # keep=1: only the file just written is left, whatever its step
        one = Checkpointer(ckdir, keep=1, comm=comm)
        one.save(2, {"u": stamped(d, 2)})
        assert one.steps() == [2] and one.load(d).step == 2
        assert len(set(comm.allgather(repr(one.checkpoints())))) == 1
        same = comm.allgather(sorted(os.listdir(ckdir)))
        assert same == [["checkpoint_00000002.h5"]] * comm.Get_size()


@pytest.mark.mpi
def test_time_and_physics_are_attributes_and_read_back(comm, shared_tmp_path):
    """Issue 12 point 10 (checkpoint side): time and the solver's physics are proper
    attributes, readable without the fields, and a restart can compare them."""
    import h5py

    ckdir = str(shared_tmp_path / "ck")
    physics = {"alpha": 0.25, "bc": "dirichlet", "bc_value": 1, "periodic": [False, True],
               "shape": (12, 9), "spacing": [0.5, 0.25], "dt_rule": {"cfl": 0.9}, "source": None}
    with pympc.Decomposition((12, 9), comm=comm) as d:
        ck = Checkpointer(ckdir, keep=3, comm=comm)
        ck.save(4, {"u": stamped(d, 4)}, state={"time": 0.125, "dt": 1 / 32}, physics=physics)
        ck.save(8, {"u": stamped(d, 8)}, state={"dt": 0.1}, time=0.8, physics={"alpha": 0.5})
        ck.save(9, {"u": stamped(d, 9)})  # neither: no time attribute, physics None

        def check():
            with h5py.File(ck.path(4), "r") as f:
                assert f.attrs["time"] == 0.125 and f.attrs["time"].dtype == np.float64
                assert f.attrs["step"] == 4 and f.attrs["sequence"] == 1
                p = f["physics"].attrs
                assert p["alpha"] == 0.25 and p["alpha"].dtype == np.float64
                assert p["bc"] == "dirichlet" and p["bc_value"] == 1
                np.testing.assert_array_equal(p["shape"], [12, 9])
                np.testing.assert_array_equal(p["spacing"], [0.5, 0.25])
                assert p["dt_rule"] == '{"cfl": 0.9}'
            with h5py.File(ck.path(8), "r") as f:
                assert f.attrs["time"] == 0.8 and f["physics"].attrs["alpha"] == 0.5
            with h5py.File(ck.path(9), "r") as f:
                assert "time" not in f.attrs and "physics" not in f
        on_root(comm, check)
        info = ck.info(4)
        assert (info.step, info.time, info.sequence) == (4, 0.125, 1)
        assert info.physics == {**physics, "shape": [12, 9]} and info.state["dt"] == 1 / 32
        assert ck.info().step == 9 and ck.info().time is None and ck.info().physics is None
        assert ck.load(d, step=8).physics == {"alpha": 0.5}
        # the comparison a restart makes
        info.check_physics(dict(physics))  # identical: passes
        info.check_physics({**physics, "bc_value": 1.0, "shape": [12, 9]})  # 1 == 1.0, tuple == list
        changed = {**physics, "alpha": 0.5, "bc": "neumann", "extra": 3}
        changed.pop("source")
        assert list(physics_changes(info.physics, changed)) == ["alpha", "bc", "extra", "source"]
        with pytest.raises(pympc.InputError) as err:
            info.check_physics(changed, allow_changed=["bc"])
        msg = str(err.value)
        assert ck.path(4) in msg and "alpha: 0.25 in the checkpoint, 0.5 now" in msg
        assert "extra" in msg and "source" in msg and "bc:" not in msg
        assert len(set(comm.allgather(msg))) == 1
        info.check_physics(changed, allow_changed=["alpha", "bc", "extra", "source"])
        assert list(physics_changes({"x": float("nan"), "b": True}, {"x": float("nan"), "b": 1})) == ["b"]
        # nested physics compare key by key, dotted; a prefix allows a whole group
        nested = {"bc": {"x-": 1.0, "x+": 0.0}, "alpha": 0.25}
        assert physics_changes(nested, {"bc": {"x-": 1.0, "x+": 2.0}, "alpha": 0.25}) == {"bc.x+": (0.0, 2.0)}
        with pytest.raises(pympc.InputError, match="not physics parameters"):
            info.check_physics(changed, allow_changed=["alhpa"])  # a typo allows nothing
        # physics is validated, and must be the same on every rank
        with pytest.raises(pympc.InputError, match="physics"):
            ck.save(10, {"u": stamped(d, 10)}, physics={"f": print})
        if comm.Get_size() > 1:
            with pytest.raises(pympc.InputError, match="differ between ranks") as err:
                ck.save(10, {"u": stamped(d, 10)}, physics={"alpha": comm.Get_rank()})
            assert len(set(comm.allgather(str(err.value)))) == 1
        assert ck.latest() == 9 and not any(n.endswith(".tmp") for n in os.listdir(ckdir))


def heat(n, tmp, name, steps=20, restart=False, ckdir=None, timeout=240):
    out = str(tmp / f"{name}.npz")
    argv = [HEAT, str(ckdir or tmp / name), out, "--steps", str(steps), "--every", "5"]
    r = run_mpi(n, argv + (["--restart"] if restart else []), timeout=timeout)
    assert r.returncode == 0, r.output[-3000:]
    return np.load(out)


@pytest.fixture(scope="module")
def ref1(tmp_path_factory):
    """The uninterrupted 20-step heat job on one rank, run once for the module (the tests
    below compare restarts on 1-4 ranks with it: the job is bit-identical at any rank count,
    which test_restart_on_3_and_1_ranks_is_bit_identical checks against 4 ranks)."""
    return heat(1, tmp_path_factory.mktemp("ref1"), "ref1")


@pytest.mark.slow
def test_restart_on_3_and_1_ranks_is_bit_identical(tmp_path, ref1):
    ref4 = heat(4, tmp_path, "ref4")
    np.testing.assert_array_equal(ref4["u"], ref1["u"])  # any rank count, bit for bit
    heat(4, tmp_path, "part", steps=10)  # checkpoints at 5 and 10 on 4 ranks
    for n in (3, 1):
        ck = tmp_path / f"ck{n}"
        shutil.copytree(tmp_path / "part", ck)
        res = heat(n, tmp_path, f"re{n}", restart=True, ckdir=ck)
        np.testing.assert_array_equal(res["u"], ref4["u"])
    # same rank count: the random streams continue exactly
    shutil.copytree(tmp_path / "part", tmp_path / "ck4")
    res = heat(4, tmp_path, "re4", restart=True, ckdir=tmp_path / "ck4")
    np.testing.assert_array_equal(res["draws"], ref4["draws"])


def kill_at(phase, tmp_path, n=4, nth=2, ckdir=None, steps=20):
    """Run the heat job until its ``nth`` checkpoint reaches ``phase``, then SIGKILL every
    rank (the whole process session)."""
    ckdir = ckdir or tmp_path / "ck"
    env = clean_env()
    cmd = mpiexec_command() + ["-n", str(n), sys.executable, HEAT, str(ckdir), str(tmp_path / "x.npz"),
                               "--steps", str(steps), "--every", "5", "--pause", f"{phase}:{nth}"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                         start_new_session=True, env=env)
    seen = False
    deadline = time.monotonic() + 120
    try:
        for line in p.stderr:
            if f"pympc-checkpoint-phase {phase}" in line:
                seen = True
                break
            if time.monotonic() > deadline:
                break
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
    assert seen, f"the job never reached the {phase} phase"
    return ckdir


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["write", "rename"])
def test_sigkill_during_checkpoint_keeps_previous_one(tmp_path, phase, ref1):
    ckdir = kill_at(phase, tmp_path)
    names = sorted(os.listdir(ckdir))
    assert "checkpoint_00000005.h5" in names  # the previous checkpoint ...
    assert "checkpoint_00000010.h5" not in names  # ... and no half-written one passed off as whole
    assert "checkpoint_00000010.h5.tmp" in names
    res = heat(3, tmp_path, "after", restart=True, ckdir=ckdir)  # restarts from step 5
    np.testing.assert_array_equal(res["u"], ref1["u"])
    assert not any(f.endswith(".tmp") for f in os.listdir(ckdir))  # cleaned at the next save


@pytest.mark.slow
def test_shorter_rerun_into_the_same_directory_is_what_restarts(tmp_path):
    """Issue 12 point 13, as the README demo met it, across programs and rank counts: a
    20-step run, then a fresh 10-step run into the same checkpoint directory; a restart
    continues the 10-step run (it used to delete each checkpoint as it wrote it and
    restart from the 20-step run's)."""
    ckdir = tmp_path / "ck"
    heat(3, tmp_path, "long", steps=20, ckdir=ckdir)  # checkpoints 15, 20
    heat(2, tmp_path, "short", steps=10, ckdir=ckdir)  # 5, then 10: the newest
    assert sorted(os.listdir(ckdir)) == ["checkpoint_00000005.h5", "checkpoint_00000010.h5"]
    ref = heat(1, tmp_path, "ref", steps=15)
    res = heat(1, tmp_path, "after", steps=15, restart=True, ckdir=ckdir)  # from 10, to 15
    np.testing.assert_array_equal(res["u"], ref["u"])


@pytest.mark.slow
def test_sigkill_between_rename_and_pruning_keeps_the_new_one_newest(tmp_path):
    """Killed after a lower step's checkpoint is complete but before the older ones are
    pruned: the directory holds more than ``keep``, and the new one is still the newest."""
    ckdir = tmp_path / "ck"
    heat(2, tmp_path, "long", steps=20, ckdir=ckdir)  # checkpoints 15, 20
    kill_at("prune", tmp_path, n=3, nth=1, ckdir=ckdir, steps=10)  # a re-run's save of step 5
    assert sorted(os.listdir(ckdir)) == [f"checkpoint_{s:08d}.h5" for s in (5, 15, 20)]
    ref = heat(1, tmp_path, "ref", steps=10)
    res = heat(2, tmp_path, "after", steps=10, restart=True, ckdir=ckdir)  # from 5, to 10
    np.testing.assert_array_equal(res["u"], ref["u"])
    assert sorted(os.listdir(ckdir)) == ["checkpoint_00000005.h5", "checkpoint_00000010.h5"]
