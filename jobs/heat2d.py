"""The main demo: 2D heat diffusion on a square plate, written as HDF5 + XDMF + PNG.

    mpiexec -n 2 python jobs/heat2d.py --n 256 --t-end 0.02 --out out/heat2d
    ./run demo                        # the same, set-up included, on as many ranks as cores

A hot disc in the middle of a cold plate; the left wall is held at 1, the other walls at
0. Rank 0 prints progress; the run writes out/heat2d/heat2d.h5 (+ .xmf for ParaView), a
checkpoint every --checkpoint-every steps (and on SIGTERM), and heat2d.png of the final
field.

Run it again with --restart (and a later --t-end) to continue from the newest checkpoint;
a restart with no checkpoint, or whose checkpoint is past --t-end, stops with an error and
changes no file. Run it again without --restart (or with --fresh) and it starts a new run:
an earlier run's files in --out are first moved, never deleted, into
--out/previous-<date>-<time>/ (it says where).
"""

import argparse
import os
import sys
import time

import numpy as np

import pympc
from pympc.runtime import InputError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from solvers.heat import Heat  # noqa: E402


def initial(x, y):
    """Local. A hot disc of radius 0.15 at the centre of the unit square."""
    return np.where((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.15 ** 2, 1.0, 0.0)


def save_png(field, path, t):
    """Local. A picture of the global field (rank 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    im = ax.imshow(field.T, origin="lower", extent=(0, 1, 0, 1), cmap="inferno", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="u")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"2D heat equation, t = {t:.4g}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


SERIES, PNG, CHECKPOINTS = "heat2d.h5", "heat2d.png", "checkpoints"
#: What a run writes into --out (moved aside as a whole before a new run): the series
#: and its XDMF beside it, the picture, the checkpoint directory.
PRODUCTS = (SERIES, os.path.splitext(SERIES)[0] + ".xmf", PNG, CHECKPOINTS)


def move_aside(out, comm):
    """Collective. Move an earlier run's files in ``out`` (:data:`PRODUCTS`) into a new
    directory ``out/previous-<date>-<time>``; return its path, or None when there were
    none. The demo never deletes a run: running it twice must work, and must keep the
    first run (a fresh run into the same files would otherwise be refused, or, before
    pympc refused, silently truncate them)."""
    err = dest = None
    if comm.Get_rank() == 0:
        found = [n for n in PRODUCTS if os.path.lexists(os.path.join(out, n))]
        if found:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            dest = os.path.join(out, f"previous-{stamp}")
            k = 1
            while os.path.lexists(dest):
                k += 1
                dest = os.path.join(out, f"previous-{stamp}-{k}")
            try:
                os.makedirs(dest)
                for name in found:
                    os.rename(os.path.join(out, name), os.path.join(dest, name))
            except OSError as e:
                err = f"cannot move the earlier run's files in {out} aside to {dest}: {e}"
    pympc.check_all(err is None, err or "", comm)
    return comm.bcast(dest, root=0)


def main(argv=None):
    """Collective. Run the demo; returns the solver."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=256, help="grid points per axis")
    ap.add_argument("--t-end", type=float, default=0.02)
    ap.add_argument("--alpha", type=float, default=1.0, help="diffusivity")
    ap.add_argument("--out", default="out/heat2d")
    ap.add_argument("--output-every", type=int, default=500, help="steps between HDF5 outputs")
    ap.add_argument("--checkpoint-every", type=int, default=2000)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--restart", action="store_true", help="continue from the newest checkpoint")
    mode.add_argument("--fresh", action="store_true",
                      help="start a new run, moving an earlier run's files aside (the default without --restart)")
    ap.add_argument("--progress", type=float, default=0.25, help="seconds between progress lines")
    args = ap.parse_args(argv)
    if args.n < 3:
        raise InputError(f"--n must be >= 3, got {args.n}")
    if not args.t_end > 0 or not args.alpha > 0:
        raise InputError("--t-end and --alpha must be positive")
    comm = pympc.WORLD
    pympc.setup_logging()
    if comm.Get_rank() == 0:
        os.makedirs(args.out, exist_ok=True)
    comm.Barrier()
    if not args.restart:
        moved = move_aside(args.out, comm)
        if moved:
            pympc.print0(f"heat2d: moved the earlier run's files in {args.out} to {moved} (nothing is "
                         "deleted; --restart continues a run instead)")
    t0 = time.perf_counter()
    # closed on every path (an InputError from a refused restart included): an unclosed
    # Decomposition makes MPICH print "leaked handle" lines at exit
    with pympc.Decomposition((args.n, args.n), spacing=1.0 / (args.n - 1)) as d:
        solver = Heat(d, alpha=args.alpha, u0=initial, bc={"x-": ("dirichlet", 1.0)})
        pympc.print0(f"heat2d: {args.n}x{args.n} grid on {comm.Get_size()} rank(s), process grid {d.dims}, "
                     f"dt={solver.dt:.3g}, t_end={args.t_end}")
        solver.run(t_end=args.t_end, output=os.path.join(args.out, SERIES), output_every=args.output_every,
                   checkpoint=os.path.join(args.out, CHECKPOINTS), checkpoint_every=args.checkpoint_every,
                   restart=args.restart, progress=args.progress, params=vars(args))
        field = solver.u.gather(root=0)
        total = solver.u.sum()
        if field is not None:
            save_png(field, os.path.join(args.out, PNG), solver.t)
            print(f"heat2d: done in {time.perf_counter() - t0:.1f} s: t={solver.t:.4g} after "
                  f"{solver.step_count} steps, mean u={total / field.size:.5f}, max u={field.max():.4f}; "
                  f"wrote {args.out}/{PRODUCTS[0]}, {PRODUCTS[1]} (open in ParaView), {PNG}", flush=True)
    return solver


if __name__ == "__main__":
    main()
