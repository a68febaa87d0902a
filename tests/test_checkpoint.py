"""Checkpoint/restart: atomic saves, rotation, restart on other rank counts with
bit-identical fields, and jobs killed with SIGKILL in the middle of a checkpoint."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import pympc
from pympc.checkpoint import Checkpointer, restart_rng
from pympc.testing import clean_env, mpiexec_command, run_mpi

HERE = os.path.dirname(os.path.abspath(__file__))
HEAT = os.path.join(HERE, "cases", "heat_ckpt.py")


@pytest.mark.mpi
def test_save_load_rotation_and_rngs(comm, shared_tmp_path):
    with pympc.Decomposition((12, 7), comm=comm) as d:
        ck = Checkpointer(str(shared_tmp_path / "ck"), keep=2, comm=comm)
        assert ck.latest() is None
        with pytest.raises(pympc.InputError, match="no checkpoint"):
            ck.load(d)
        a = pympc.DistArray.from_function(d, lambda i, j: i * 100.0 + j)
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
        for step, match in ((1, "format version 0"), (2, "not a pympc checkpoint")):
            with pytest.raises(pympc.InputError) as err:
                ck.load(d, step=step)
            assert match in str(err.value)
            assert len(set(comm.allgather(str(err.value)))) == 1


def heat(n, tmp, name, steps=20, restart=False, ckdir=None, timeout=240):
    out = str(tmp / f"{name}.npz")
    argv = [HEAT, str(ckdir or tmp / name), out, "--steps", str(steps), "--every", "5"]
    r = run_mpi(n, argv + (["--restart"] if restart else []), timeout=timeout)
    assert r.returncode == 0, r.output[-3000:]
    return np.load(out)


@pytest.mark.slow
def test_restart_on_3_and_1_ranks_is_bit_identical(tmp_path):
    ref4 = heat(4, tmp_path, "ref4")
    ref1 = heat(1, tmp_path, "ref1")
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


def kill_at(phase, tmp_path, n=4):
    """Run the heat job until its second checkpoint reaches ``phase``, then SIGKILL every
    rank (the whole process session)."""
    ckdir = tmp_path / "ck"
    env = clean_env()
    env["PYMPC_CHECKPOINT_PAUSE"] = f"{phase}:2"
    cmd = mpiexec_command() + ["-n", str(n), sys.executable, HEAT, str(ckdir), str(tmp_path / "x.npz"),
                               "--steps", "20", "--every", "5"]
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
def test_sigkill_during_checkpoint_keeps_previous_one(tmp_path, phase):
    ckdir = kill_at(phase, tmp_path)
    names = sorted(os.listdir(ckdir))
    assert "checkpoint_00000005.h5" in names  # the previous checkpoint ...
    assert "checkpoint_00000010.h5" not in names  # ... and no half-written one passed off as whole
    assert "checkpoint_00000010.h5.tmp" in names
    ref = heat(2, tmp_path, "ref")
    res = heat(3, tmp_path, "after", restart=True, ckdir=ckdir)  # restarts from step 5
    np.testing.assert_array_equal(res["u"], ref["u"])
    assert not any(f.endswith(".tmp") for f in os.listdir(ckdir))  # cleaned at the next save
