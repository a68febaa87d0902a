"""A farm the serial tests of tests/test_farm.py launch, kill, signal and rerun.

``farm_run.py STORE [--tasks N] [--kind mc|sleep] [--sleep S] [--seed S]
[--deadline-in S] [--fail-at I] [--ranks-per-task K]``

Each rank writes its pid to ``STORE/pids/<rank>`` before the farm starts (the tests
signal or kill ranks by pid). Every task appends ``<index>`` to
``STORE/exec/<attempt>-<pid>.log`` when it starts, so a test counts what an attempt
executed without trusting the ledger. ``mc`` tasks draw from :func:`pympc.farm.task_rng`
and take 5-20 ms (from their index, not their stream); every fifth returns an array
big enough to go to its own result file. At the end rank 0 writes
``STORE/summary.json`` (the status, the counts, the errors) and every rank
exits with the farm's status.
"""

import argparse
import json
import os
import time

from pympc import WORLD, farm

p = argparse.ArgumentParser()
p.add_argument("store")
p.add_argument("--tasks", type=int, default=100)
p.add_argument("--kind", default="mc", choices=("mc", "sleep"))
p.add_argument("--sleep", type=float, default=1.0)
p.add_argument("--seed", type=int, default=2024)
p.add_argument("--deadline-in", type=float, default=None)
p.add_argument("--fail-at", type=int, default=None)
p.add_argument("--ranks-per-task", type=int, default=1)
a = p.parse_args()

rank = WORLD.Get_rank()
os.makedirs(os.path.join(a.store, "pids"), exist_ok=True)
os.makedirs(os.path.join(a.store, "exec"), exist_ok=True)
with open(os.path.join(a.store, "pids", str(rank)), "w") as f:
    f.write(str(os.getpid()))


def log_start(i):
    t = farm.current()
    with open(os.path.join(a.store, "exec", f"{t.attempt:04d}-{os.getpid()}.log"), "a") as f:
        f.write(f"{i}\n")


def task(*args):
    i = args[-1]  # with groups, the group's communicator comes first
    if len(args) == 1 or args[0].Get_rank() == 0:
        log_start(i)
    if a.fail_at == i:
        raise ValueError(f"task {i} fails on purpose")
    if a.kind == "sleep":
        time.sleep(a.sleep)
        return i
    rng = farm.task_rng()
    time.sleep(0.005 + 0.015 * ((i * 7919) % 101) / 100)
    if i % 5 == 0:
        return rng.random(9000)  # 72 kB: its own file under results/
    return float(rng.random(100).sum())


deadline = None
if a.deadline_in is not None:
    deadline = WORLD.bcast(time.time() + a.deadline_in, root=0)
with farm.Pool(store=a.store, seed=a.seed, deadline=deadline, ranks_per_task=a.ranks_per_task) as pool:
    res = pool.map(task, range(a.tasks))
ended = time.time()
if rank == 0:
    summary = {"status": res.status, "done": res.done, "failed": res.failed, "not_run": res.not_run,
               "past_deadline": None if deadline is None else ended - deadline,
               "errors": [(e.index, e.error, e.traceback) for e in res.errors()]}
    tmp = os.path.join(a.store, "summary.json.tmp")
    with open(tmp, "w") as f:
        json.dump(summary, f)
    os.replace(tmp, os.path.join(a.store, "summary.json"))
raise SystemExit(res.status)
