"""BSP inner product (Bisseling's ``bspinprod``): every rank holds the cyclic share
``x[pid::P]`` of two vectors, computes its partial sum, puts it into every rank's array
of partial sums, and after one sync every rank adds the P partial sums in rank order
(so every rank gets the same, bit for bit).

    mpiexec -n 4 python jobs/bsp/inner_product.py --n 1000000

Checks the result against numpy on the whole vectors and prints one line (rank 0).
Cost: one superstep with ``w = 2n/P`` flops and an (P-1)-relation, then one of ``l``.
"""

import argparse

import numpy as np

import pympc
from pympc.bsp import BSP


def inner_product(bsp: BSP, x, y) -> float:
    """Collective. The inner product of two distributed vectors, given this rank's parts
    ``x`` and ``y`` (any distribution, the same for both); the same value on every rank."""
    P, me = bsp.nprocs, bsp.pid
    partial = np.zeros(P)
    reg = bsp.register(partial)
    bsp.sync("inprod register")
    alpha = np.array([np.dot(x, y)])          # local compute: w = 2 n/P flops
    for q in range(P):                        # one word to every rank: an (P-1)-relation
        bsp.put(q, alpha, reg, me)
    bsp.sync("inprod")
    bsp.deregister(reg)                       # takes effect at the next sync
    return float(partial.sum())


def cyclic(n: int, P: int, pid: int) -> np.ndarray:
    """Local. Global indices of rank ``pid``'s share under the cyclic distribution."""
    return np.arange(pid, n, P)


def main(argv=None):
    """Collective. Run the example; returns the inner product (on every rank)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="vector length")
    ap.add_argument("--profile", help="save the cost log as JSON here")
    args = ap.parse_args(argv)
    if args.n < 1:
        raise pympc.InputError(f"--n must be >= 1, got {args.n}")
    from pympc import costlog

    with costlog.Log() as log, BSP() as bsp:
        idx = cyclic(args.n, bsp.nprocs, bsp.pid)
        x = idx.astype(float)                 # x_i = i, y_i = i mod 7: exact in float64
        y = (idx % 7).astype(float)
        result = inner_product(bsp, x, y)
        bsp.sync("finish")
    if args.profile:
        log.save(args.profile)
    i = np.arange(args.n, dtype=float)
    expect = float(np.dot(i, i % 7))
    ok = result == expect
    pympc.print0(f"inner product of length {args.n} on {pympc.WORLD.Get_size()} rank(s): {result:.17g} "
                 f"({'OK' if ok else 'MISMATCH'} against numpy {expect:.17g})")
    if not ok:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
