"""I/O benchmark: writing and reading one float64 field of SIZE x SIZE into a new shared
file, pympc (h5py mpio, collective) against raw MPI-IO ``Write_at_all``/``Read_at_all``
of the same bytes into one file and against gather-to-rank-0 + serial h5py. Each file is
removed before each repetition, outside the timed region (truncating an existing file
inside the timer made h5py look 2-3x slower here). Page-cache figures.

    mpiexec -n 2 python benchmarks/bench_io.py --size 8192 [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import tracemalloc

import h5py
import numpy as np
from mpi4py import MPI

import pympc
from common import emit, timed, versions
from pympc import io

comm = MPI.COMM_WORLD


def remover(*paths):
    def setup():
        if comm.Get_rank() == 0:
            for p in paths:
                if os.path.exists(p):
                    os.unlink(p)
        comm.Barrier()
    return setup


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where the files go (default: a new temp dir)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    n, reps = args.size, args.reps
    P, rank = comm.Get_size(), comm.Get_rank()
    base = comm.bcast(tempfile.mkdtemp(prefix="pympc-bench-io-", dir=args.dir) if rank == 0 else None, root=0)
    raw_path, h5_path, gat_path = (os.path.join(base, f) for f in ("raw.bin", "out.h5", "gather.h5"))
    # Row slabs: each rank's block is one contiguous range of the file, so the raw
    # reference is a plain Write_at_all at an offset. (A subarray file view would be
    # more general, but this MPICH's ROMIO aborts flattening one: "Out of memory in
    # adio/common/flatten.c"; HDF5 builds other datatypes and is not affected.)
    d = pympc.Decomposition((n, n), comm=comm, dims=(P, 1))
    u = pympc.DistArray.from_function(d, lambda i, j: i * 1.0 + j, coords=False)
    block = np.ascontiguousarray(u.owned)  # the raw reference writes a plain block
    nbytes = n * n * 8
    offset = d.lo[0] * n * 8
    res = {"ranks": P, "size": n, "reps": reps, "bytes": nbytes, "dims": list(d.dims)}

    def raw_write():
        fh = MPI.File.Open(comm, raw_path, MPI.MODE_WRONLY | MPI.MODE_CREATE)
        fh.Write_at_all(offset, block)
        fh.Close()

    def raw_read():
        fh = MPI.File.Open(comm, raw_path, MPI.MODE_RDONLY)
        fh.Read_at_all(offset, block)
        fh.Close()

    def pympc_step():  # a whole output step: file, metadata, field, XDMF
        with pympc.Output(h5_path, d, params={"bench": True}) as out:
            out.write(0, 0.0, u=u)

    def pympc_read():  # into an existing field, like the raw reference
        with io.File(h5_path, "r", comm=comm) as f:
            f.read("/steps/00000000/u", None, out=u)

    def pympc_read_new():  # into a new DistArray (page faults on fresh memory included)
        with io.File(h5_path, "r", comm=comm) as f:
            f.read("/steps/00000000/u", d)

    def gather_write():
        glob = u.gather(root=0)
        if rank == 0:
            with h5py.File(gat_path, "w") as f:
                f.create_dataset("u", data=glob)
        comm.Barrier()

    def gather_read():
        glob = None
        if rank == 0:
            with h5py.File(gat_path, "r") as f:
                glob = f["u"][...]
        pympc.DistArray.from_global(d, glob)

    res["write_raw"] = timed(raw_write, 1, reps, warmup=1, setup=remover(raw_path))
    res["write_pympc"] = timed(pympc_step, 1, reps, warmup=1, setup=remover(h5_path, h5_path[:-3] + ".xmf"))
    res["write_gather"] = timed(gather_write, 1, reps, warmup=1, setup=remover(gat_path))
    res["read_raw"] = timed(raw_read, 1, reps, warmup=1)
    res["read_pympc"] = timed(pympc_read, 1, reps, warmup=1)
    res["read_pympc_new"] = timed(pympc_read_new, 1, reps, warmup=1)
    res["read_gather"] = timed(gather_read, 1, reps, warmup=1)
    for k in list(res):
        if k.startswith(("write_", "read_")):
            res[k]["GBs"] = nbytes / res[k]["median"] / 1e9

    # memory: what pympc allocates while writing and reading, against the field itself
    def peak(fn):
        remover(h5_path)() if fn is pympc_step else None
        tracemalloc.start()
        fn()
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return comm.allreduce(p, op=MPI.MAX)
    field = u.data.nbytes
    res["field_bytes_per_rank"] = field
    res["peak_write_over_field"] = peak(pympc_step) / field
    res["peak_read_over_field"] = peak(pympc_read) / field
    res["peak_read_new_over_field"] = peak(pympc_read_new) / field  # the new DistArray is the field
    d.close()
    res["ratios"] = {
        "write_pympc_over_raw_speed": res["write_raw"]["median"] / res["write_pympc"]["median"],
        "read_pympc_over_raw_speed": res["read_raw"]["median"] / res["read_pympc"]["median"],
        "write_pympc_over_gather_speed": res["write_gather"]["median"] / res["write_pympc"]["median"],
        "read_pympc_over_gather_speed": res["read_gather"]["median"] / res["read_pympc"]["median"],
    }
    res["versions"] = versions()
    if rank == 0:
        for p in (raw_path, h5_path, gat_path, h5_path[:-3] + ".xmf"):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(base)
        emit(res, args.json)


if __name__ == "__main__":
    main()
