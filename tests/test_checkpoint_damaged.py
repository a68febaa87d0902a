"""Every restart path of a Checkpointer: no, one and several checkpoints, written out of
step order, with none, one (the newest, a middle or the oldest written), several or all
of them damaged in each way a file can be (issue 12, points 9 and 13).

The expected outcome is computed here from the list alone: load() without a step gives
the newest *written* intact checkpoint, with one CheckpointWarning on rank 0 per damaged
file, naming it; a damaged step named explicitly is an InputError naming the file; no
intact checkpoint at all is an InputError naming the directory. A save afterwards never
deletes a damaged file nor counts it towards ``keep``.
"""

import os
import shutil
import warnings

import numpy as np
import pytest

import pympc
from pympc.io.checkpoint import Checkpointer, CheckpointWarning


def _zero(path):
    open(path, "w").close()


def _truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


def _garbage(path):
    with open(path, "wb") as f:
        f.write(b"this is not an HDF5 file\n" * 200)


def _drop_dataset(path):
    import h5py

    with h5py.File(path, "r+") as f:
        del f["fields/w"]


def _drop_attribute(name):
    def damage(path):
        import h5py

        with h5py.File(path, "r+") as f:
            del f.attrs[name]
    return damage


DAMAGE = {"zero-bytes": _zero, "truncated": _truncate, "not-hdf5": _garbage,
          "missing-dataset": _drop_dataset, "missing-state": _drop_attribute("state"),
          "missing-kind": _drop_attribute("kind")}

# written in this order: the newest written (20) is neither the highest step nor the lowest
ORDER = (30, 10, 20)
# (number of checkpoints, indices into the write order of the damaged ones): every kind
# of damage on the newest written of three (the fall-back that matters most), and every
# other position with the kinds taken in turn (all 54 pairs cost minutes at 4 ranks)
KINDS = sorted(DAMAGE)
POSITIONS = [(1, ()), (1, (0,)), (2, (1,)), (3, ()), (3, (1,)), (3, (0,)), (3, (1, 2)), (3, (0, 1, 2))]
CASES = [(3, (2,), k) for k in KINDS] + [(n, b, KINDS[i % len(KINDS)]) for i, (n, b) in enumerate(POSITIONS)]


def field(d, step, name):
    return pympc.DistArray.from_function(d, lambda i, j: i * 100.0 + j + step + (0.5 if name == "w" else 0), coords=False)


def same_everywhere(comm, value):
    assert len(set(comm.allgather(value))) == 1, value


def caught_on(comm, fn):
    """fn() with every warning recorded; returns (result or exception, warnings)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            out = fn()
        except pympc.InputError as e:
            out = e
    return out, [w for w in rec if issubclass(w.category, CheckpointWarning)]


@pytest.fixture(scope="module")
def written_sets(tmp_path_factory):
    """Collective: ``{count: directory}``, the last ``count`` steps of ORDER saved in that
    order by a Checkpointer, once for the module; every case restarts from a copy (a
    Checkpointer keeps nothing in memory between calls: each one reads the directory, so
    a copy of the files is what a restarted run finds)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    top = comm.bcast(str(tmp_path_factory.mktemp("written")) if comm.Get_rank() == 0 else None, root=0)
    out = {}
    with pympc.Decomposition((9, 7), comm=comm) as d:
        for count in sorted({n for n, _, _ in CASES}):
            out[count] = os.path.join(top, str(count))
            ck = Checkpointer(out[count], keep=3, comm=comm)
            for s in ORDER[len(ORDER) - count:]:
                ck.save(s, {"u": field(d, s, "u"), "w": field(d, s, "w")}, state={"time": s / 10})
    return out


@pytest.mark.mpi
@pytest.mark.parametrize("count, bad, kind", CASES,
                         ids=[f"{n}ck-bad{''.join(map(str, b)) or '-'}-{k}" for n, b, k in CASES])
def test_restart_path(comm, shared_tmp_path, written_sets, count, bad, kind):
    rank = comm.Get_rank()
    written = ORDER[len(ORDER) - count:]
    intact = [s for i, s in enumerate(written) if i not in bad]
    damaged = [s for i, s in enumerate(written) if i in bad]
    ckdir = str(shared_tmp_path / "ck")
    with pympc.Decomposition((9, 7), comm=comm) as d:
        ck = Checkpointer(ckdir, keep=3, comm=comm)
        if rank == 0:
            shutil.copytree(written_sets[count], ckdir)
            assert sorted(os.listdir(ckdir)) == sorted(os.path.basename(ck.path(s)) for s in written)
            for s in damaged:
                DAMAGE[kind](ck.path(s))
        comm.Barrier()

        # a restart without a step: the newest written intact one, or a clear error
        r, warned = caught_on(comm, lambda: ck.load(d))
        if intact:
            assert not isinstance(r, Exception), r
            assert r.step == intact[-1] and r.time == intact[-1] / 10
            for name in ("u", "w"):
                np.testing.assert_array_equal(r.fields[name].owned, field(d, r.step, name).owned)
        else:
            assert isinstance(r, pympc.InputError)
            assert ckdir in str(r) and "no checkpoint" in str(r)
            for s in damaged:
                assert os.path.basename(ck.path(s)) in str(r)
            same_everywhere(comm, str(r))
        # one warning per damaged file, on rank 0 only, naming it and what is used instead
        if rank == 0:
            assert len(warned) == len(damaged), [str(w.message) for w in warned]
            for s, w in zip(sorted(damaged), sorted(warned, key=lambda w: str(w.message))):
                msg = str(w.message)
                assert ck.path(s) in msg
                assert (f"step {intact[-1]}" in msg) if intact else ("no intact checkpoint" in msg)
        else:
            assert warned == []

        # the same answers again, without a second warning (once per file)
        latest, warned = caught_on(comm, ck.latest)
        assert latest == (intact[-1] if intact else None) and warned == []
        assert ck.steps() == intact
        same_everywhere(comm, repr(ck.steps()))

        # a damaged checkpoint named by its step is an error naming the file, everywhere
        for s in damaged:
            e, _ = caught_on(comm, lambda: ck.load(d, step=s))
            assert isinstance(e, pympc.InputError) and ck.path(s) in str(e)
            same_everywhere(comm, str(e))
        for s in intact:
            np.testing.assert_array_equal(ck.load(d, step=s).fields["u"].owned, field(d, s, "u").owned)
        e, _ = caught_on(comm, lambda: ck.load(d, step=99))
        assert isinstance(e, pympc.InputError) and "no checkpoint of step 99" in str(e)

        # the next save is the newest; keep counts intact files only, damaged ones stay
        small = Checkpointer(ckdir, keep=2, comm=comm)
        _, warned = caught_on(comm, lambda: small.save(15, {"u": field(d, 15, "u"), "w": field(d, 15, "w")}))
        assert warned == []  # already reported by this process
        assert small.steps() == intact[-1:] + [15]
        assert small.load(d).step == 15
        present = sorted(os.listdir(ckdir))
        for s in damaged:
            assert os.path.basename(ck.path(s)) in present
        same_everywhere(comm, repr(present))


@pytest.mark.mpi
def test_no_checkpoint_at_all(comm, shared_tmp_path):
    ckdir = str(shared_tmp_path / "empty")
    with pympc.Decomposition((5, 4), comm=comm) as d:
        ck = Checkpointer(ckdir, comm=comm)  # (creates no directory: the first save does)
        if comm.Get_rank() == 0:  # a killed save's leftover and another prefix's file
            os.makedirs(ckdir)
            open(os.path.join(ckdir, "checkpoint_00000010.h5.tmp"), "wb").close()
            open(os.path.join(ckdir, "other_00000010.h5"), "wb").close()
        comm.Barrier()
        assert ck.latest() is None and ck.steps() == [] and ck.checkpoints() == []
        for call in (lambda: ck.load(d), ck.info):
            e, warned = caught_on(comm, call)
            assert isinstance(e, pympc.InputError)
            assert f"no checkpoint named checkpoint_*.h5 in {ckdir}" in str(e)
            assert warned == []
            same_everywhere(comm, str(e))
        # clear() removes every file of the prefix, intact, damaged or left over, only those
        ck.save(3, {"u": field(d, 3, "u")})  # (removes the leftover .tmp)
        if comm.Get_rank() == 0:
            open(os.path.join(ckdir, "checkpoint_00000004.h5"), "wb").close()
            open(os.path.join(ckdir, "checkpoint_00000005.h5.tmp"), "wb").close()
        comm.Barrier()
        removed = ck.clear()
        assert [os.path.basename(p) for p in removed] == [
            "checkpoint_00000003.h5", "checkpoint_00000004.h5", "checkpoint_00000005.h5.tmp"]
        assert comm.allgather(sorted(os.listdir(ckdir))) == [["other_00000010.h5"]] * comm.Get_size()


@pytest.mark.mpi
def test_saving_the_step_of_a_damaged_checkpoint_keeps_the_damaged_file(comm, shared_tmp_path):
    """pympc never deletes a damaged checkpoint: a new save of its step moves it aside
    (``.damaged``, then ``.damaged-2``, ...) with its bytes, and the new file is the one
    loaded."""
    with pympc.Decomposition((6, 5), comm=comm) as d:
        ck = Checkpointer(str(shared_tmp_path / "ck"), keep=2, comm=comm)
        for round_ in (1, 2):
            ck.save(10, {"u": pympc.DistArray(d).fill(float(round_))})
            comm.Barrier()
            if comm.Get_rank() == 0:
                _truncate(ck.path(10))
                damaged = open(ck.path(10), "rb").read()
            comm.Barrier()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CheckpointWarning)
                ck.save(10, {"u": pympc.DistArray(d).fill(7.0)})
                r = ck.load(d)
            assert r.step == 10 and r.fields["u"].max() == 7.0 and r.fields["u"].min() == 7.0
            aside = ck.path(10) + (".damaged" if round_ == 1 else ".damaged-2")
            ok = comm.bcast(open(aside, "rb").read() == damaged if comm.Get_rank() == 0 else None, root=0)
            assert ok, f"{aside} is not the damaged file"
