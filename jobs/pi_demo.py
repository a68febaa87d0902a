"""A first SPMD program: estimate pi by Monte Carlo on every rank, combine with a
reduction, and pass a token around a ring of ranks.

    mpiexec -n 4 python jobs/pi_demo.py --samples 2000000 --seed 1

Each rank draws from its own independent random stream (``pympc.rng``), so the result
depends only on the seed and the number of ranks.
"""

import argparse
import time

import numpy as np
from mpi4py import MPI

import pympc


def count_hits(gen, samples, chunk=1 << 20):
    """Local. How many of ``samples`` uniform points in the unit square fall in the quarter disc."""
    hits = 0
    left = samples
    while left > 0:
        n = min(chunk, left)
        x = gen.random(n)
        y = gen.random(n)
        hits += int(np.count_nonzero(x * x + y * y <= 1.0))
        left -= n
    return hits


def split(total, size, rank):
    """Local. The share of ``total`` samples of rank ``rank`` of ``size`` (remainder spread)."""
    return total // size + (1 if rank < total % size else 0)


def main(argv=None):
    """Collective. Run the demo; returns the estimate of pi (on every rank)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=4_000_000, help="total samples over all ranks")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    if args.samples < 1:
        raise pympc.InputError(f"--samples must be >= 1, got {args.samples}")

    comm = pympc.WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    t0 = time.perf_counter()
    mine = split(args.samples, size, rank)
    hits = count_hits(pympc.rng(args.seed), mine)

    # A reduction: the total number of hits, on every rank.
    total = np.zeros(1, dtype=np.int64)
    comm.Allreduce(np.array([hits], dtype=np.int64), total, op=MPI.SUM)
    estimate = 4.0 * int(total[0]) / args.samples

    # A ring: pass each rank's count to the right; after size-1 shifts, every rank has
    # added every count, and must agree with the reduction.
    token = np.array([hits], dtype=np.int64)
    incoming = np.empty_like(token)
    ring_sum = hits
    right, left = (rank + 1) % size, (rank - 1) % size
    for _ in range(size - 1):
        comm.Sendrecv(token, dest=right, recvbuf=incoming, source=left)
        token[:] = incoming
        ring_sum += int(incoming[0])
    pympc.check_all(ring_sum == total[0], f"ring sum {ring_sum} != reduction {int(total[0])}", comm)

    elapsed = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    pympc.print0(f"pi ~ {estimate:.6f} (error {abs(estimate - np.pi):.2e}) from {args.samples} "
                 f"samples on {size} rank{'s' if size > 1 else ''}; ring check ok; {elapsed:.2f} s")
    return estimate


if __name__ == "__main__":
    main()
