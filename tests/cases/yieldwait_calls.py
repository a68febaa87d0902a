"""Every blocking MPI call the yielding-wait shim replaces, checked against numpy.

Run by tests/test_yieldwait.py under mpiexec with the shim preloaded and without it. Data
are integers, so every result is exact whatever the reduction order; each rank checks its
own results; rank 0 prints ``OK polls=<n0>,<n1>,...``, each rank's count of yields
(``absent``: the shim is not loaded). The classic (int-count) calls HDF5 uses are called through ctypes, the MPI-4
large-count ones through mpi4py.
"""

import ctypes
import sys
import time

import numpy as np
from mpi4py import MPI

c = MPI.COMM_WORLD
r, n = c.rank, c.size
I8 = np.int64
right, left = (r + 1) % n, (r - 1) % n


def eq(got, want, what):
    if not np.array_equal(np.asarray(got), np.asarray(want)):
        print(f"FAIL {r} {what}: got {got!r}, want {want!r}", flush=True)
        c.Abort(3)


def p2p():
    # Send (eager), Ssend, Recv, Sendrecv, Probe, Mprobe+Mrecv (lowercase recv), the waits
    buf = np.empty(5, I8)
    if n == 1:  # a blocking send to self may wait for its receive (MPICH's does)
        req = c.Irecv(buf, source=left, tag=1)
        c.Send(np.arange(5, dtype=I8) + r, dest=right, tag=1)
        req.Wait()
    elif r % 2 == 0:
        c.Send(np.arange(5, dtype=I8) + r, dest=right, tag=1)
        c.Recv(buf, source=left, tag=1)
    else:
        c.Recv(buf, source=left, tag=1)
        c.Ssend(np.arange(5, dtype=I8) + r, dest=right, tag=1)
    eq(buf, np.arange(5) + left, "Send/Recv")
    got = np.empty(3, I8)
    c.Sendrecv(np.full(3, r, I8), dest=right, sendtag=2, recvbuf=got, source=left, recvtag=2)
    eq(got, [left] * 3, "Sendrecv")
    sreq = c.isend({"from": r}, dest=right, tag=3)
    st = MPI.Status()
    c.Probe(source=left, tag=3, status=st)
    eq(st.Get_source(), left, "Probe source")
    eq(c.recv(source=left, tag=3)["from"], left, "Mprobe/Mrecv (lowercase recv)")
    sreq.wait()
    reqs = [c.Irecv(got[:1], source=left, tag=4), c.Isend(np.array([r], I8), dest=right, tag=4)]
    idx = MPI.Request.Waitany(reqs)
    MPI.Request.Waitsome(reqs)
    MPI.Request.Waitall(reqs)
    eq(idx in (0, 1), True, "Waitany index")
    eq(got[0], left, "Waitany/Waitsome/Waitall")
    req = c.Irecv(got[:2], source=left, tag=5)
    c.Isend(np.array([r, -r], I8), dest=right, tag=5).Wait()
    req.Wait()
    eq(got[:2], [left, -left], "Wait")


def collectives():
    eq(c.bcast(r * 7 if r == 1 % n else None, root=1 % n), 7 * (1 % n), "bcast")
    b = np.arange(4, dtype=I8) if r == 0 else np.zeros(4, I8)
    c.Bcast(b, root=0)
    eq(b, np.arange(4), "Bcast")
    s = np.empty(3, I8)
    c.Allreduce(np.full(3, r + 1, I8), s, op=MPI.SUM)
    eq(s, [n * (n + 1) // 2] * 3, "Allreduce")
    c.Reduce(np.full(3, r, I8), s, op=MPI.MAX, root=n - 1)
    if r == n - 1:
        eq(s, [n - 1] * 3, "Reduce")
    c.Scan(np.array([r + 1], I8), s[:1], op=MPI.SUM)
    eq(s[0], (r + 1) * (r + 2) // 2, "Scan")
    c.Exscan(np.array([r + 1], I8), s[:1], op=MPI.SUM)
    if r > 0:
        eq(s[0], r * (r + 1) // 2, "Exscan")
    g = np.empty(n, I8)
    c.Allgather(np.array([r * r], I8), g)
    eq(g, np.arange(n) ** 2, "Allgather")
    counts = np.arange(1, n + 1)
    gv = np.empty(counts.sum(), I8)
    c.Allgatherv(np.full(r + 1, r, I8), [gv, counts])
    eq(gv, np.repeat(np.arange(n), counts), "Allgatherv")
    c.Gather(np.array([r], I8), g, root=0)
    c.Gatherv(np.full(r + 1, r, I8), [gv, counts], root=0)
    if r == 0:
        eq(g, np.arange(n), "Gather")
        eq(gv, np.repeat(np.arange(n), counts), "Gatherv")
    one = np.empty(1, I8)
    c.Scatter(np.arange(n, dtype=I8) * 3, one, root=0)
    eq(one[0], 3 * r, "Scatter")
    sv = np.empty(r + 1, I8)
    c.Scatterv([np.repeat(np.arange(n), counts).astype(I8), counts], sv, root=0)
    eq(sv, [r] * (r + 1), "Scatterv")
    a = np.empty(n, I8)
    c.Alltoall(np.arange(n, dtype=I8) + 10 * r, a)
    eq(a, 10 * np.arange(n) + r, "Alltoall")
    # Alltoallv: rank r sends j+1 copies of r to rank j
    scounts = np.arange(1, n + 1)
    rcounts = np.full(n, r + 1)
    av = np.empty(rcounts.sum(), I8)
    c.Alltoallv([np.repeat(np.full(n, r), scounts).astype(I8), scounts], [av, rcounts])
    eq(av, np.repeat(np.arange(n), r + 1), "Alltoallv")
    aw = np.empty(n, I8)
    disp = [8 * j for j in range(n)]
    c.Alltoallw([np.full(n, r, I8), [1] * n, disp, [MPI.INT64_T] * n],
                [aw, [1] * n, disp, [MPI.INT64_T] * n])
    eq(aw, np.arange(n), "Alltoallw")
    rs = np.empty(2, I8)
    c.Reduce_scatter_block(np.arange(2 * n, dtype=I8), rs, op=MPI.SUM)
    eq(rs, n * np.arange(2 * r, 2 * r + 2), "Reduce_scatter_block")
    c.Reduce_scatter(np.arange(2 * n, dtype=I8), rs, recvcounts=[2] * n, op=MPI.SUM)
    eq(rs, n * np.arange(2 * r, 2 * r + 2), "Reduce_scatter")
    eq(c.allreduce(r, op=MPI.SUM), n * (n - 1) // 2, "allreduce (pickled)")
    eq(c.allgather(r), list(range(n)), "allgather (pickled)")


def neighbours():
    ring = c.Create_cart([n], periods=[True])
    src, dst = ring.Shift(0, 1)
    nb = np.empty(2, I8)
    ring.Neighbor_allgather(np.array([r], I8), nb)
    eq(nb, [src, dst], "Neighbor_allgather")
    ring.Neighbor_alltoall(np.array([10 * r, 10 * r + 1], I8), nb)
    eq(nb, [10 * src + 1, 10 * dst], "Neighbor_alltoall")
    ring.Neighbor_alltoallv([np.array([r, r], I8), ([1, 1], [0, 1]), MPI.INT64_T], [nb, ([1, 1], [0, 1]), MPI.INT64_T])
    eq(nb, [src, dst], "Neighbor_alltoallv")
    ring.Neighbor_alltoallw([np.array([r, r], I8), [1, 1], [0, 8], [MPI.INT64_T] * 2],
                            [nb, [1, 1], [0, 8], [MPI.INT64_T] * 2])
    eq(nb, [src, dst], "Neighbor_alltoallw")
    ring.Free()


def classic():
    """The int-count calls (HDF5's), through ctypes on the process's global symbols."""
    lib = ctypes.CDLL(None)  # the symbols HDF5's calls resolve to: the shim's, when preloaded
    if not hasattr(lib, "MPI_Allreduce"):  # no shim: libmpi is not in the global scope
        from pympc.tools.probe import loaded_libraries
        lib = ctypes.CDLL(loaded_libraries()[0])
    h = ctypes.c_int if MPI._sizeof(MPI.Comm) == ctypes.sizeof(ctypes.c_int) else ctypes.c_void_p
    comm, t, op = h(c.handle), h(MPI.INT64_T.handle), h(MPI.SUM.handle)
    src = np.full(2, r + 1, I8)
    dst = np.empty(2, I8)
    ptr = ctypes.c_void_p
    lib.MPI_Allreduce(ptr(src.ctypes.data), ptr(dst.ctypes.data), 2, t, op, comm)
    eq(dst, [n * (n + 1) // 2] * 2, "MPI_Allreduce (int count)")
    b = np.array([42, 43], I8) if r == 0 else np.zeros(2, I8)
    lib.MPI_Bcast(ptr(b.ctypes.data), 2, t, 0, comm)
    eq(b, [42, 43], "MPI_Bcast (int count)")
    eq(lib.MPI_Barrier(comm), 0, "MPI_Barrier")


def truncation():
    """An error inside a replaced wait reaches mpi4py as the same MPI exception."""
    if n < 2 or r > 1:
        return
    if r == 0:
        c.Send(np.arange(4, dtype=I8), dest=1, tag=9)
        return
    try:
        c.Recv(np.empty(2, I8), source=0, tag=9)
    except MPI.Exception as e:
        eq(e.Get_error_class(), MPI.ERR_TRUNCATE, "truncation error class")
    else:
        eq("no error", "MPI.ERR_TRUNCATE", "truncated Recv")


p2p()
collectives()
neighbours()
classic()
truncation()
if r == 0:
    time.sleep(0.05)  # the others wait in the barrier: with the shim they yield
c.Barrier()
try:
    polls = ctypes.CDLL(None).pympc_yieldwait_polls
    polls.restype = ctypes.c_ulonglong
    shown = str(polls())
except AttributeError:
    shown = "absent"
shown = c.gather(shown, root=0)
if r == 0:
    print("OK polls=" + ",".join(shown), flush=True)
sys.exit(0)
