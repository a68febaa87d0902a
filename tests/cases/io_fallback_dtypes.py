"""Every reading path, byte order and conversion, every dtype written and read, and the
XDMF meshes, with a serial h5py (run by tests/test_io_fallback.py in a throwaway env):
the serial fallback keeps the promises of the parallel path (issue 12, points 5, 6, 7, 11,
15)."""
import os
import sys

import h5py
import numpy as np

import pympc
from pympc import io

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)
from io_dtypes import check_reads, values, write_all  # noqa: E402
from test_xdmf_vtk import CASES, check_series, write_series  # noqa: E402

assert not h5py.get_config().mpi, "this case needs a serial h5py"
out = sys.argv[1]
comm = pympc.WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def agree(fails, what):
    everyone = comm.allgather(fails)
    bad = [f for fl in everyone for f in fl]
    if bad:
        raise SystemExit(f"{what}: {bad[:5]}")


def own(d):
    return tuple(slice(lo, lo + n) for lo, n in zip(d.lo, d.local_shape))


# files from another writer: every stored dtype in both byte orders, read every way
path = f"{out}/other.h5"
data = comm.bcast(write_all(path, (7, 5)) if rank == 0 else None, root=0)
with pympc.Decomposition((7, 5), comm=comm) as d:
    with io.File(path, "r", comm=comm) as f:
        fails, messages = check_reads(f, d, data, own(d), full=size <= 2)
    agree(fails, "reading paths")
    everyone = comm.allgather(messages)
    assert all(m == everyone[0] for m in everyone) and len(messages) > 50, len(messages)
    # pympc.io.read and Checkpointer.load(dtype=) go through the same rule
    fails = []
    a = io.read(path, "float64_swapped", d)
    if a.dtype != np.float64 or not np.array_equal(a.owned, data["float64_swapped"][own(d)]):
        fails.append("io.read of big-endian float64")
    for name, want in (("float64", np.float32), ("int64", np.int8), ("float64_swapped", np.int64)):
        try:
            io.read(path, name, d, dtype=want)
            fails.append(f"no error reading {name} as {np.dtype(want)}")
        except pympc.InputError as e:
            if path not in str(e) or name not in str(e) or str(np.dtype(want)) not in str(e):
                fails.append(str(e))
    ck = pympc.Checkpointer(f"{out}/ck", comm=comm)
    ck.save(1, {"u": a}, state={"time": 1.0})
    try:
        ck.load(d, dtype=np.float16)
        fails.append("Checkpointer.load narrowed float64 to float16")
    except pympc.InputError as e:
        if "does not convert safely" not in str(e):
            fails.append(str(e))
    if not np.array_equal(ck.load(d, dtype=np.complex128).fields["u"].owned, a.owned):
        fails.append("Checkpointer.load as complex128")
    agree(fails, "io.read / Checkpointer.load")

    # every supported dtype written by pympc (gathered to rank 0) and read back
    fails = []
    for i, dt in enumerate(pympc.array.SUPPORTED_DTYPES):
        x = values(dt, (7, 5), seed=i)
        u = pympc.DistArray(d, dt)
        u.owned[...] = x[own(d)]
        io.write(f"{out}/w.h5", {"u": u})
        back = io.read(f"{out}/w.h5", "u", d)
        if back.dtype != dt or not np.array_equal(back.owned, x[own(d)]):
            fails.append(f"write/read {dt}")
        if rank == 0:
            with h5py.File(f"{out}/w.h5", "r") as f:
                if f["u"].dtype != dt or not np.array_equal(f["u"][...], x):
                    fails.append(f"{dt} as h5py sees it")
    agree(fails, "write/read of every dtype")

# the XDMF series and its meshes, through VTK's reader
for n, (shape, centring) in enumerate(CASES):
    p = f"{out}/series{n}.h5"
    write_series(p, comm, shape, centring)
    err = None
    if rank == 0:
        try:
            check_series(p[:-3] + ".xmf", shape, centring)
        except AssertionError as e:
            err = f"{shape} {centring}: {e}"
    err = comm.bcast(err, root=0)
    if err:
        raise SystemExit(err)
if rank == 0:
    print("FALLBACK-DTYPES-OK", flush=True)
