"""A few explicit heat steps with checkpoints, for the restart and kill tests.

    mpiexec -n 4 python heat_ckpt.py DIR OUT.npz --steps 20 --every 5 [--restart]
        [--pause PHASE:N]

``--pause`` sets the checkpoint's fault hook: the N-th save announces PHASE on stderr and
waits to be killed (the kill tests).
"""
import argparse
import sys
import time

import numpy as np

import pympc
from pympc import bc, kernels
from pympc.io.checkpoint import Checkpointer

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("out")
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--every", type=int, default=5)
ap.add_argument("--restart", action="store_true")
ap.add_argument("--pause", default="")
args = ap.parse_args()

if args.pause:
    from pympc.io import checkpoint

    want, _, nth = args.pause.partition(":")

    def pause(phase, n):
        if phase == want and n == int(nth or 1):
            sys.stderr.write(f"pympc-checkpoint-phase {phase}\n")
            sys.stderr.flush()
            time.sleep(600)

    checkpoint.fault_hook = pause

comm = pympc.WORLD
d = pympc.Decomposition((26, 21), comm=comm, periodic=(True, False))
ck = Checkpointer(args.dir, keep=2, comm=comm)
gen = pympc.rng(7, comm=comm)
if args.restart:
    r = ck.load(d)
    u, w, step = r.fields["u"], r.fields["w"], r.step
    assert r.state["time"] == step * 0.1
    if r.rngs is not None:
        gen = r.rngs[0]
else:
    u = pympc.DistArray.from_function(d, lambda i, j: np.sin(0.3 * i) * np.cos(0.2 * j) + 0.01 * j, coords=False)
    w = pympc.DistArray.from_function(d, lambda i, j: 1.0 + 0 * i * j, coords=False)  # a second field
    step = 0
v = u.empty_like()
draws = []
while step < args.steps:
    pympc.update_halo(u)
    bc.dirichlet(u, 0.5)
    kernels.heat_step(u, v, 0.2)
    u, v = v, u
    step += 1
    draws.append(gen.random())
    if step % args.every == 0:
        ck.save(step, {"u": u, "w": w}, state={"time": step * 0.1, "dt": 0.1}, rngs=[gen])
final = u.gather(root=0)
all_draws = comm.gather(draws[-1] if draws else None, root=0)
if comm.Get_rank() == 0:
    np.savez(args.out, u=final, draws=np.array(all_draws, dtype=float))
