"""Conway's Game of Life on a periodic grid with BSP puts: the rows are split in blocks
over the ranks (``pympc.grid.split_sizes``); each generation every rank puts its first
and last row into the ghost rows of its two neighbours (one superstep, a 2M-relation),
then updates its block with numpy (periodic along the rows by wrapping).

    mpiexec -n 4 python jobs/bsp/life.py --rows 256 --cols 256 --steps 100 --seed 3

Checks the final grid against a serial numpy Life on the whole grid (rank 0 prints).
``--profile life.json`` saves the cost log; ``pympc report life.json`` reads it.
"""

import argparse

import numpy as np

import pympc
from pympc.bsp import BSP
from pympc.grid import split_sizes


def step_serial(g: np.ndarray) -> np.ndarray:
    """Local. One generation of Life on a whole periodic grid (the oracle)."""
    n = sum(np.roll(np.roll(g, i, 0), j, 1) for i in (-1, 0, 1) for j in (-1, 0, 1) if i or j)
    return ((n == 3) | ((g == 1) & (n == 2))).astype(g.dtype)


def _update(u: np.ndarray, out: np.ndarray) -> None:
    # u: (rows + 2, cols) with ghost rows; out: the owned rows
    n = np.zeros(out.shape, np.uint8)
    for i in (0, 1, 2):
        rows = u[i:i + out.shape[0]]
        n += rows
        n += np.roll(rows, 1, axis=1)
        n += np.roll(rows, -1, axis=1)
    own = u[1:-1]
    n -= own
    out[...] = (n == 3) | ((own == 1) & (n == 2))


def life(bsp: BSP, rows: np.ndarray, nrows: int, steps: int) -> np.ndarray:
    """Collective. Run ``steps`` generations; ``rows`` are this rank's block of a
    periodic grid of ``nrows`` rows split by ``split_sizes(nrows, P)`` (values 0/1).
    Returns the block after the last generation."""
    P, me = bsp.nprocs, bsp.pid
    sizes = split_sizes(nrows, P)
    if rows.shape[0] != sizes[me]:
        raise pympc.InputError(f"rank {me} needs {sizes[me]} rows, got {rows.shape[0]}")
    if min(sizes) < 1:
        raise pympc.InputError(f"{nrows} rows cannot be split over {P} ranks")
    cols = rows.shape[1]
    u = np.zeros((sizes[me] + 2, cols), np.uint8)
    u[1:-1] = rows
    reg = bsp.register(u)
    bsp.sync("life register")
    up, down = (me - 1) % P, (me + 1) % P
    new = np.empty_like(u[1:-1])
    for _ in range(steps):
        bsp.put(up, u[1], reg, (sizes[up] + 1) * cols)    # my first row: the ghost below theirs
        bsp.put(down, u[-2], reg, 0)                       # my last row: the ghost above theirs
        bsp.sync("life halo")
        _update(u, new)
        u[1:-1] = new
    bsp.deregister(reg)
    return u[1:-1].copy()


def main(argv=None):
    """Collective. Run the example; returns this rank's final block."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--cols", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--profile", help="save the cost log as JSON here")
    args = ap.parse_args(argv)
    comm = pympc.WORLD
    P, me = comm.Get_size(), comm.Get_rank()
    if args.rows < P or args.cols < 1 or args.steps < 0:
        raise pympc.InputError(f"need rows >= ranks ({P}), cols >= 1, steps >= 0")
    from pympc import costlog

    glob = (np.random.default_rng(args.seed).random((args.rows, args.cols)) < 0.3).astype(np.uint8)
    sizes = split_sizes(args.rows, P)
    lo = sum(sizes[:me])
    with costlog.Log() as log, BSP() as bsp:
        block = life(bsp, glob[lo:lo + sizes[me]], args.rows, args.steps)
        bsp.sync("finish")
    if args.profile:
        log.save(args.profile)
    parts = comm.gather(block, root=0)
    ok = None
    if me == 0:
        ref = glob
        for _ in range(args.steps):
            ref = step_serial(ref)
        ok = bool(np.array_equal(np.concatenate(parts), ref))
    ok = comm.bcast(ok, root=0)
    live = comm.allreduce(int(block.sum()))
    pympc.print0(f"life {args.rows}x{args.cols}, {args.steps} steps on {P} rank(s): {live} live cells, "
                 f"{'OK' if ok else 'MISMATCH'} against serial numpy")
    if not ok:
        raise SystemExit(1)
    return block


if __name__ == "__main__":
    main()
