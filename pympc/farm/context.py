"""What a running task knows about itself: its index, its random stream, its group.

Inside a task function, :func:`task_rng` is the task's own random stream, made from the
farm's seed and the task's index (``SeedSequence(seed, spawn_key=(index,))``): a result
never depends on which rank ran the task, in what order, or in which attempt, so a
resumed Monte Carlo farm equals an uninterrupted one.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass
class Task:
    """Local. The running task: ``index``, the farm's ``seed``, the group communicator
    (None for one-rank tasks) and the ``attempt``."""

    index: int
    seed: object
    comm: object
    attempt: int
    stop: bool = False  # set by stop_farm(): start no further task (a run interrupted by a signal)
    run: int = 0  # which map/wait of its pool (0: the first)


_current: list = []


@contextmanager
def running(task: Task):
    """Local. ``task`` is the current task for the block."""
    _current.append(task)
    try:
        yield task
    finally:
        _current.pop()


def current() -> Task:
    """Local. The task running now (a :class:`Task`); outside a farm task an
    :class:`~pympc.errors.InputError`."""
    if not _current:
        from ..errors import InputError

        raise InputError("pympc.farm.current() is called outside a farm task")
    return _current[-1]


def task_rng() -> np.random.Generator:
    """Local. The current task's own random stream (see the module doc; the n-th map
    of a pool, n >= 1, uses ``spawn_key=(index, n)``)."""
    t = current()
    key = (t.index,) if t.run == 0 else (t.index, t.run)  # each map of a pool: its own streams
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(t.seed, spawn_key=key)))


def stop_farm() -> None:
    """Local. From inside a task: when it returns, its rank starts no further task and
    the farm drains (status 75), as after a signal. A task that caught a signal itself (a
    solver run that checkpointed and stopped) says so this way."""
    current().stop = True
