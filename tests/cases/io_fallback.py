"""The I/O API with a serial h5py (run by tests/test_io_fallback.py in a throwaway env)."""
import sys
import warnings

import h5py
import numpy as np

import pympc
from pympc import io
from pympc.io.checkpoint import Checkpointer
from pympc.io.output import Output

assert not h5py.get_config().mpi, "this case needs a serial h5py"
d_ = sys.argv[1]
comm = pympc.WORLD
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with pympc.Decomposition((9, 8), comm=comm) as d:
        a = pympc.DistArray.from_function(d, lambda i, j: 10.0 * i + j, coords=False)
        io.write(f"{d_}/f.h5", {"u": a}, attrs={"time": 1.0})
        with pympc.Decomposition((9, 8), comm=comm, dims=(1, comm.Get_size())) as d2:
            b = io.read(f"{d_}/f.h5", "u", d2)
            np.testing.assert_array_equal(b.gather(root=None), a.gather(root=None))
        with Output(f"{d_}/run.h5", d) as out:
            out.write(0, 0.0, u=a)
            out.write(1, 0.5, u=a)
        ck = Checkpointer(f"{d_}/ck", comm=comm)
        ck.save(3, {"u": a}, state={"time": 3.0})
        r = ck.load(d)
        np.testing.assert_array_equal(r.fields["u"].owned, a.owned)
        try:
            io.read(f"{d_}/f.h5", "nope", d)
            raise SystemExit("no error for a missing dataset")
        except pympc.InputError as e:
            assert "no dataset 'nope'" in str(e)

if comm.Get_size() > 1:
    # a File talks on its own duplicate communicator: a message of the user's, pending on
    # the user's communicator with the tags the fallback once used (7301: field root to
    # rank 0 on write, 7302: rank 0 to the field root on read), is not taken by it
    rank = comm.Get_rank()
    sub = comm.Split(0 if rank == 0 else 1, rank)
    part = pympc.Decomposition((6, 5), comm=sub) if rank > 0 else None  # rank 0 holds none
    u = pympc.DistArray.from_function(part, lambda i, j: 100.0 * i + j, coords=False) if part else None
    bait, got = np.full((6, 5), -1.0), np.zeros((6, 5))
    sends = [comm.Isend(bait, dest=1, tag=7302)] if rank == 0 else \
        [comm.Isend(bait, dest=0, tag=7301)] if rank == 1 else []
    with io.File(f"{d_}/sub.h5", "w", comm=comm) as f:
        f.write("u", u)
    with io.File(f"{d_}/sub.h5", "r", comm=comm) as f:
        back = f.read("u", part)
    if rank in (0, 1):
        comm.Recv(got, source=1 - rank, tag=7301 if rank == 0 else 7302)
        assert (got == -1.0).all(), "the user's message was disturbed"
    for r in sends:
        r.Wait()
    if part is not None:
        np.testing.assert_array_equal(back.gather(root=None), u.gather(root=None))
        part.close()
    if rank == 0:
        with h5py.File(f"{d_}/sub.h5", "r") as f:
            np.testing.assert_array_equal(f["u"][...], np.add.outer(100.0 * np.arange(6), np.arange(5)))
    sub.Free()
serial = [w for w in caught if "without MPI" in str(w.message)]
if comm.Get_size() > 1:
    assert len(serial) == 1, [str(w.message) for w in caught]
if comm.Get_rank() == 0:
    with h5py.File(f"{d_}/run.h5", "r") as f:
        assert sorted(f["steps"]) == ["00000000", "00000001"]
    print("FALLBACK-OK", flush=True)
