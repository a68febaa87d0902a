"""BSP sample sort by regular sampling (PSRS, Shi and Schaeffer 1992): sort locally,
send P regular samples of the local keys to every rank, choose P-1 splitters from the
sorted P^2 samples (the same on every rank), send each key to the rank of its bucket,
sort what arrived. Rank r then holds the r-th block of the globally sorted keys, and no
rank holds more than about 2n/P keys.

    mpiexec -n 4 python jobs/bsp/sample_sort.py --n 1000000 --seed 1

Checks the concatenated blocks against numpy's sort of all keys (rank 0 prints).
Cost: two supersteps: a P(P-1)-word sample exchange, then an h-relation of at most
about 2n/P words per rank.
"""

import argparse

import numpy as np

import pympc
from pympc.bsp import BSP

_TAG_SAMPLE, _TAG_KEYS = 1, 2


def sample_sort(bsp: BSP, keys) -> np.ndarray:
    """Collective. Sort the distributed keys (this rank's are ``keys``, a 1-D numeric
    array; ranks may hold different counts). Returns this rank's block of the sorted
    sequence: the blocks in rank order are ``np.sort`` of all the keys."""
    P = bsp.nprocs
    local = np.sort(np.asarray(keys).ravel())
    n = local.size
    # superstep 1: regular samples (positions i n / P) to every rank
    samples = local[(np.arange(P) * n) // P] if n else local[:0]
    for q in range(P):
        bsp.send(q, _TAG_SAMPLE, samples)
    bsp.sync("sort samples")
    allsamples = np.sort(np.concatenate([p for _, tag, p in bsp.messages() if tag == _TAG_SAMPLE]))
    m = allsamples.size
    splitters = allsamples[(np.arange(1, P) * m) // P] if m else allsamples[:0]
    # superstep 2: every key to the rank of its bucket
    bounds = np.concatenate([[0], np.searchsorted(local, splitters, side="right"), [n]]) \
        if splitters.size else np.array([0] + [n] * P)
    for q in range(P):
        bsp.send(q, _TAG_KEYS, local[bounds[q]:bounds[q + 1]])
    bsp.sync("sort exchange")
    parts = [p for _, tag, p in bsp.messages() if tag == _TAG_KEYS]
    return np.sort(np.concatenate(parts)) if parts else local[:0].copy()


def main(argv=None):
    """Collective. Run the example; returns this rank's sorted block."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="keys over all ranks")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", help="save the cost log as JSON here")
    args = ap.parse_args(argv)
    if args.n < 0:
        raise pympc.InputError(f"--n must be >= 0, got {args.n}")
    from mpi4py import MPI

    from pympc import costlog

    comm = pympc.WORLD
    P, me = comm.Get_size(), comm.Get_rank()
    allkeys = np.random.default_rng(args.seed).integers(0, 10 * max(args.n, 1), args.n)
    mine = allkeys[me * args.n // P:(me + 1) * args.n // P]   # every rank draws the same keys
    with costlog.Log() as log, BSP() as bsp:
        block = sample_sort(bsp, mine)
    if args.profile:
        log.save(args.profile)
    sizes = comm.allgather(block.size)
    out = np.empty(args.n, allkeys.dtype) if me == 0 else None
    comm.Gatherv(block, [out, sizes, MPI.INT64_T] if me == 0 else None, root=0)
    ok = comm.bcast(bool(np.array_equal(out, np.sort(allkeys))) if me == 0 else None, root=0)
    pympc.print0(f"sample sort of {args.n} keys on {P} rank(s): {'OK' if ok else 'MISMATCH'} against "
                 f"numpy; largest block {max(sizes)} keys ({max(sizes) * P / max(args.n, 1):.2f} x n/P)")
    if not ok:
        raise SystemExit(1)
    return block


if __name__ == "__main__":
    main()
