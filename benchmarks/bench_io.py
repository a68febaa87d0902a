"""I/O benchmark: writing and reading one float64 field of SIZE x SIZE, pympc (an output
step of a series; h5py mpio) against raw MPI-IO ``Write_at_all``/``Read_at_all`` of the
same bytes into one file and against gather-to-rank-0 + serial h5py. The references
of the headline ratios find the file as pympc does: a step's raw write goes after one
field's bytes already in the file (``write_raw_append``), the raw read reads the step's
own bytes in the series file (``read_raw_same_file``). Each file is removed
before each repetition, outside the timed region (truncating an existing file inside the
timer made h5py look 2-3x slower here), and every write starts from a clean page cache
(an ``os.sync`` outside the timer: dirty pages left by the previous write throttled the
next one, up to 5x). The cases of one repetition run back to back in an order rotated
each time, so that drift falls on all alike. Page-cache figures.

    mpiexec -n 2 python benchmarks/bench_io.py --size 8192 [--dir /tmp]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import tracemalloc

import h5py
import numpy as np
from mpi4py import MPI

import pympc
from common import emit, versions
from pympc import io
from pympc.io import file as iofile

comm = MPI.COMM_WORLD


def remover(*paths, sync=True):
    def setup():
        if comm.Get_rank() == 0:
            for p in paths:
                if os.path.exists(p):
                    os.unlink(p)
            if sync:
                os.sync()  # a clean page cache: no writeback of earlier writes throttles this one
        comm.Barrier()
    return setup


def interleaved(cases, reps, warmup=1):
    """Collective. ``{name: {min, median, max, times}}`` in seconds for ``cases``
    (``{name: (fn, setup)}``): each repetition runs every case once, ``setup()`` outside
    the timer, each timed from a barrier to the slowest rank's end; the order rotates by
    one case each repetition."""
    names = list(cases)
    times = {k: [] for k in names}
    for r in range(warmup + reps):
        for k in names[r % len(names):] + names[:r % len(names)]:
            fn, setup = cases[k]
            if setup:
                setup()
            comm.Barrier()
            t0 = time.perf_counter()
            fn()
            t = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
            if r >= warmup:
                times[k].append(t)
    return {k: {"min": min(v), "median": float(np.median(v)), "max": max(v), "times": v} for k, v in times.items()}


class Series:
    """An output series with its first step (and the XDMF mesh) written in ``setup``,
    outside the timer; ``step()`` writes the next step: what every step after the first
    costs. ``direct``/``align``: pympc's fast paths on or off (to measure each)."""

    def __init__(self, path, d, u, direct=True, align=True):
        self.path, self.d, self.u, self.direct, self.align = path, d, u, direct, align

    def setup(self):
        remover(self.path, self.path[:-3] + ".xmf", sync=False)()
        with self._paths():
            self.out = pympc.Output(self.path, self.d, params={"bench": True})
            self.out.write(0, 0.0, u=self.u)
        remover(sync=True)()

    def step(self):
        with self._paths():
            self.out.write(1, 1.0, u=self.u)

    @contextlib.contextmanager
    def _paths(self):
        saved = (iofile.DIRECT, iofile.ALIGN_THRESHOLD)
        iofile.DIRECT = self.direct
        iofile.ALIGN_THRESHOLD = saved[1] if self.align else 2 ** 62
        try:
            yield
        finally:
            iofile.DIRECT, iofile.ALIGN_THRESHOLD = saved


def write_cases(d, u, block, offset, paths):
    raw_path, h5_path, first_path, gat_path = paths
    rank = comm.Get_rank()

    def raw_write(at=0):
        fh = MPI.File.Open(comm, raw_path, MPI.MODE_WRONLY | MPI.MODE_CREATE)
        fh.Write_at_all(at + offset, block)
        fh.Close()

    def raw_prefix():
        # the file as a series step finds its own: one field's bytes written and synced
        remover(raw_path, sync=False)()
        raw_write()
        remover(sync=True)()

    def first_step():  # a new series: file, metadata, the XDMF mesh, field, XDMF
        with pympc.Output(first_path, d, params={"bench": True}) as out:
            out.write(0, 0.0, u=u)

    def gather_write():
        glob = u.gather(root=0)
        if rank == 0:
            with h5py.File(gat_path, "w") as f:
                f.create_dataset("u", data=glob)
        comm.Barrier()
    series = {k: Series(h5_path[:-3] + f"{k}.h5", d, u, direct=k == "", align=k != "_mpiio_unaligned")
              for k in ("", "_mpiio", "_mpiio_unaligned")}
    # write_raw_append is the series step's reference: the same bytes after one field's
    # bytes already in the file. Into a new file is another case: on one VM a write that
    # grew a synced file took 1.15 s for 512 MiB where a new file (its predecessor's pages
    # just freed) took 0.19 s and an overwrite 0.10 s (os.pwrite, no MPI, no HDF5).
    cases = {"write_raw": (raw_write, remover(raw_path)),
             "write_raw_append": (lambda: raw_write(u.decomp.shape[0] * u.decomp.shape[1] * 8), raw_prefix),
             "write_first": (first_step, remover(first_path, first_path[:-3] + ".xmf")),
             "write_gather": (gather_write, remover(gat_path))}
    cases.update({f"write_pympc{k}": (s.step, s.setup) for k, s in series.items()})
    return cases, series[""]


def read_cases(d, u, block, offset, paths):
    raw_path, h5_path, _, gat_path = paths
    rank = comm.Get_rank()
    name = "/steps/00000001/u"

    def raw_read():
        fh = MPI.File.Open(comm, raw_path, MPI.MODE_RDONLY)
        fh.Read_at_all(offset, block)
        fh.Close()

    where = []

    def raw_read_same():
        # Read_at_all of the very bytes pympc_read reads (the step's dataset in the series
        # file, contiguous): the same file in the same page-cache state, so the ratio is
        # pympc's own cost; raw.bin's pages may be cached or not, on a VM that hands free
        # pages back to its host
        if not where:
            off = None
            if rank == 0:
                with h5py.File(h5_path, "r") as f:
                    off = f[name].id.get_offset()
            where.append(comm.bcast(off, root=0))
            if where[0] is None:
                raise SystemExit(f"{h5_path}:{name} is not contiguous: no raw reference of its bytes")
            check = np.empty_like(block)  # once: these are the step's values, this rank's rows
            fh = MPI.File.Open(comm, h5_path, MPI.MODE_RDONLY)
            fh.Read_at_all(where[0] + offset, check)
            fh.Close()
            if not comm.allreduce(bool(np.array_equal(check, u.owned)), op=MPI.LAND):
                raise SystemExit(f"the bytes at {h5_path}:{name}'s offset are not the field written")
        fh = MPI.File.Open(comm, h5_path, MPI.MODE_RDONLY)
        fh.Read_at_all(where[0] + offset, block)
        fh.Close()

    def pympc_read():  # into an existing field, like the raw reference
        with io.File(h5_path, "r", comm=comm) as f:
            f.read(name, None, out=u)

    def pympc_read_new():  # into a new DistArray (page faults on fresh memory included)
        with io.File(h5_path, "r", comm=comm) as f:
            f.read(name, d)

    def gather_read():
        glob = None
        if rank == 0:
            with h5py.File(gat_path, "r") as f:
                glob = f["u"][...]
        pympc.DistArray.from_global(d, glob)
    return {"read_raw": (raw_read, None), "read_raw_same_file": (raw_read_same, None), "read_pympc": (pympc_read, None),
            "read_pympc_new": (pympc_read_new, None), "read_gather": (gather_read, None)}


def peak(fn, setup=None):
    """Collective. The largest tracemalloc peak of any rank while ``fn()`` runs."""
    if setup:
        setup()
    tracemalloc.start()
    fn()
    p = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return comm.allreduce(p, op=MPI.MAX)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=9)  # writes have outliers (a shared machine): 9 for the median
    ap.add_argument("--dir", default=None, help="where the files go (default: a new temp dir)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    n, reps = args.size, args.reps
    P, rank = comm.Get_size(), comm.Get_rank()
    base = comm.bcast(tempfile.mkdtemp(prefix="pympc-bench-io-", dir=args.dir) if rank == 0 else None, root=0)
    paths = tuple(os.path.join(base, f) for f in ("raw.bin", "series.h5", "first.h5", "gather.h5"))
    # Row slabs: each rank's block is one contiguous range of the file, so the raw
    # reference is a plain Write_at_all at an offset. (A subarray file view would be
    # more general, but this MPICH's ROMIO aborts flattening one: "Out of memory in
    # adio/common/flatten.c"; HDF5 builds other datatypes and is not affected.)
    d = pympc.Decomposition((n, n), comm=comm, dims=(P, 1))
    u = pympc.DistArray.from_function(d, lambda i, j: i * 1.0 + j, coords=False)
    block = np.ascontiguousarray(u.owned)  # the raw reference writes a plain block
    nbytes = n * n * 8
    res = {"ranks": P, "size": n, "reps": reps, "bytes": nbytes, "dims": list(d.dims),
           "mesh_bytes": n * n * 2 * 8, "slab_bytes": iofile.SLAB_BYTES,
           "align": [iofile.ALIGN_THRESHOLD, iofile.ALIGN_INTERVAL]}
    wcases, series = write_cases(d, u, block, d.lo[0] * n * 8, paths)
    res.update(interleaved(wcases, reps))
    res.update(interleaved(read_cases(d, u, block, d.lo[0] * n * 8, paths), reps))
    for k in list(res):
        if k.startswith(("write_", "read_")):
            res[k]["GBs"] = nbytes / res[k]["median"] / 1e9
    measure_memory(res, d, u, series, wcases, paths)
    d.close()
    res["ratios"] = ratios(res)
    res["versions"] = versions()
    comm.Barrier()
    if rank == 0:
        for p in os.listdir(base):
            os.unlink(os.path.join(base, p))
        os.rmdir(base)
        emit(res, args.json)


def measure_memory(res, d, u, series, wcases, paths):
    """What pympc allocates while writing and reading, against the field itself."""
    field = u.data.nbytes
    res["field_bytes_per_rank"] = field
    res["peak_write_over_field"] = peak(series.step, series.setup) / field
    res["peak_write_first_over_field"] = peak(wcases["write_first"][0], wcases["write_first"][1]) / field
    rc = read_cases(d, u, None, 0, paths)
    res["peak_read_over_field"] = peak(rc["read_pympc"][0]) / field
    res["peak_read_new_over_field"] = peak(rc["read_pympc_new"][0]) / field  # the new DistArray is the field


def ratios(res):
    raw_w, raw_r = res["write_raw"]["median"], res["read_raw_same_file"]["median"]
    raw_a = res["write_raw_append"]["median"]  # a step's reference: the file holds a field already
    first_bytes = res["bytes"] + res["mesh_bytes"]
    return {
        "write_pympc_over_raw_speed": raw_a / res["write_pympc"]["median"],
        "write_pympc_over_raw_new_file_speed": raw_w / res["write_pympc"]["median"],
        "write_raw_append_over_new_file_speed": raw_w / raw_a,
        "write_pympc_mpiio_over_raw_speed": raw_a / res["write_pympc_mpiio"]["median"],
        "write_pympc_mpiio_unaligned_over_raw_speed": raw_a / res["write_pympc_mpiio_unaligned"]["median"],
        "write_first_over_raw_speed": raw_w / res["write_first"]["median"],
        # the first step writes the mesh too: against a raw write of as many bytes
        # (the raw time scaled by the bytes)
        "write_first_over_raw_same_bytes": raw_w * first_bytes / res["bytes"] / res["write_first"]["median"],
        "read_pympc_over_raw_speed": raw_r / res["read_pympc"]["median"],
        "read_pympc_over_raw_other_file_speed": res["read_raw"]["median"] / res["read_pympc"]["median"],
        "write_pympc_over_gather_speed": res["write_gather"]["median"] / res["write_pympc"]["median"],
        "read_pympc_over_gather_speed": res["read_gather"]["median"] / res["read_pympc"]["median"],
    }


if __name__ == "__main__":
    main()
