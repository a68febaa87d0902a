"""The farm: ``with Pool(comm) as pool: results = pool.map(f, items)``.

SPMD, no ``Spawn``: every rank runs the program and calls the pool's collective methods
with the same tasks (the ranks check it: a hash of the task list); only the task indices
are scheduled. Every rank works, rank 0 too (:mod:`pympc.farm.schedule`). Tasks run on
groups of ``ranks_per_task`` ranks: the task function then takes the group's
communicator first. Every finished task is recorded in the ledger
(:mod:`pympc.farm.ledger`) as it finishes, with its result (inline when small, else in
its own file under ``<store>/results/``), or its exception and traceback. A rerun of the
same farm runs only the tasks not done.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import sys
import time
import traceback
from contextlib import contextmanager

from mpi4py import MPI

from ..errors import InputError
from ..runtime import check_all, get_comm, get_logger, on_root
from . import ledger as _ledger
from .context import Task, running
from .results import Results, store_result
from .schedule import LocalClient, RemoteClient, Server

DONE, DONE_WITH_FAILURES, INTERRUPTED = 0, 3, 75
SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def _slurm_deadline():
    end = os.environ.get("SLURM_JOB_END_TIME")
    try:
        return float(end) if end else None
    except ValueError:
        return None


class Pool:
    """Collective. A task farm over ``comm`` (default: the world); see the module doc.

    :param ranks_per_task: ranks per task (k); with a rank count k does not divide, the
        last ``size % k`` ranks stay idle (a warning says so).
    :param store: the farm's directory: ``ledger/`` and ``results/`` go there.
    :param ledger: the ledger's directory instead of ``<store>/ledger``.
    :param seed: the seed of every task's random stream (:func:`pympc.farm.task_rng`), an
        integer >= 0.
    :param deadline: the time (``time.time()``) by which the farm must end; default
        Slurm's ``SLURM_JOB_END_TIME`` when set. A task whose running mean says it will not
        finish in time is not started.
    :param retry_failed: rerun the tasks that failed before (not the quarantined ones).
    :param max_failures: failures after which a task is quarantined (never retried).
    :param chunksize: tasks per request (default: guided, large early, 1 at the end).
    :param margin: seconds kept free before the deadline.
    """

    def __init__(self, comm=None, ranks_per_task=1, store="farm", ledger=None, seed=0, deadline=None,
                 retry_failed=False, max_failures=3, chunksize=None, margin=1.0):
        base = get_comm(comm)
        k = ranks_per_task
        check_all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= base.Get_size(),
                  f"ranks_per_task must be an integer from 1 to the rank count {base.Get_size()}, got {k!r}", base)
        _check_chunksize(chunksize, base)
        # rank 0 serves the queue from a thread that calls MPI while its own tasks may too
        check_all(base.Get_size() // k < 2 or MPI.Query_thread() == MPI.THREAD_MULTIPLE,
                  f"the farm needs MPI_THREAD_MULTIPLE (mpi4py's default; MPI runs at level "
                  f"{MPI.Query_thread()}): do not lower mpi4py.rc.thread_level", base)
        self.comm = base.Dup()  # private: the farm's messages cannot meet the program's
        self.size, self.rank, self.k = self.comm.Get_size(), self.comm.Get_rank(), k
        ngroups = self.size // k
        self.active = self.rank < ngroups * k
        self.group = self.comm.Split(self.rank // k if self.active else MPI.UNDEFINED, self.rank)
        self.leader = self.active and self.group.Get_rank() == 0
        # the tasks' own communicator: a task's collectives can never meet the farm's own
        # (the outcome gather), even when the task failed on some of its ranks only
        self.task_comm = self.group.Dup() if self.active and k > 1 else None
        self.leaders = list(range(0, ngroups * k, k))
        if self.rank == 0 and ngroups * k < self.size:
            get_logger("farm").warning("%d rank(s) idle: %d ranks do not split into groups of %d",
                                       self.size - ngroups * k, self.size, k)
        self.store = os.path.abspath(store)
        self._ledger_base = os.path.abspath(ledger) if ledger else os.path.join(self.store, "ledger")
        self.ledger_dir, self.results_dir, self.runs = self._ledger_base, os.path.join(self.store, "results"), 0
        check_all(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
                  f"seed must be an integer >= 0 (every task's stream is SeedSequence(seed, spawn_key="
                  f"(task,))), got {seed!r}", base)
        self.seed, self.retry_failed, self.max_failures = seed, bool(retry_failed), int(max_failures)
        self.deadline = deadline if deadline is not None else _slurm_deadline()
        self.chunksize, self.margin = chunksize, float(margin)
        self.pending, self.futures = [], []
        self.last = None

    # -- the public calls --------------------------------------------------------------
    def map(self, f, items, chunksize=None, unordered=False) -> Results:
        """Collective. Run ``f(item)`` (``f(group_comm, item)`` with ``ranks_per_task`` >
        1) for every item, on every rank with the same items; returns the
        :class:`Results` (every rank), in the items' order. ``unordered`` is accepted for
        the futures API's shape: results are read by index, so order costs nothing."""
        _check_chunksize(chunksize, self.comm)
        return self._run([(f, (item,)) for item in items], chunksize)

    def submit(self, f, *args):
        """Local. Queue ``f(*args)`` (every rank submits the same, in the same order); it
        runs at the next :meth:`wait` (collective) or when the ``with`` block ends.
        Returns a :class:`~pympc.farm.results.Future`."""
        from .results import Future

        self.pending.append((f, args))
        fut = Future(self, len(self.pending) - 1)
        self.futures.append(fut)
        return fut

    def wait(self) -> Results:
        """Collective. Run every submitted task; their futures then hold the outcomes."""
        tasks, self.pending = self.pending, []
        futures, self.futures = self.futures, []
        self.last = self._run(tasks, None)
        for fut in futures:  # each future keeps its own batch's outcome
            fut.results = self.last
        return self.last

    def close(self) -> None:
        """Collective. Run what is still submitted and free the farm's communicators."""
        if self.pending:
            self.wait()
        if self.task_comm is not None:
            self.task_comm.Free()
        if self.group != MPI.COMM_NULL:
            self.group.Free()
        self.comm.Free()

    def __enter__(self):
        return self

    def __exit__(self, etype, *exc):
        if etype is None:
            self.close()
        return False

    # -- one run ---------------------------------------------------------------------------
    def _run(self, tasks, chunksize) -> Results:
        """Collective. Agree on the task list, read the ledger, schedule, record, sum up."""
        hashes = [_task_hash(i, f, args) for i, (f, args) in enumerate(tasks)]
        whole = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
        # the n-th map/wait of this pool keeps its own ledger and results (ledger-n,
        # results-n; the first: ledger, results): a program that maps twice resumes both
        sub = f"-{self.runs}" if self.runs else ""
        self.runs += 1
        self.ledger_dir = self._ledger_base + sub
        self.results_dir = os.path.join(self.store, "results" + sub)
        mine = self.comm.allgather(whole)
        check_all(len(set(mine)) == 1, "the ranks passed different tasks to the farm (every rank must "
                  "submit the same tasks, in the same order)", self.comm)
        plan = self._plan(len(tasks), whole)
        attempt, todo = plan
        t0 = time.monotonic()
        with self._catching_signals():
            if self.active:
                self._work(tasks, hashes, attempt, todo, chunksize)
            self.comm.Barrier()
        if self.rank == 0:
            try:
                summary = self._summary(len(tasks), attempt, todo)
            finally:
                self._lock.release()
        summary = self.comm.bcast(summary if self.rank == 0 else None, root=0)
        results = Results(self.store, self.ledger_dir, len(tasks), summary, time.monotonic() - t0)
        self.last = results
        return results

    def _plan(self, ntasks, whole):
        """Collective. Rank 0 opens the ledger and says which tasks to run this attempt."""
        def decide():
            lock = _ledger.lock(self.ledger_dir)
            try:
                header = _ledger.open_ledger(self.ledger_dir, ntasks, whole, self.seed)
            except BaseException:
                lock.release()
                raise
            self._lock = lock  # held on rank 0 until the run's summary is written
            st = _ledger.state(self.ledger_dir, ntasks)
            todo = [i for i in range(ntasks) if self._wanted(st.get(i))]
            os.makedirs(self.results_dir, exist_ok=True)
            return header["attempts"], todo
        return on_root(decide, self.comm)

    def _wanted(self, known) -> bool:
        if known is None:
            return True
        if known["status"] == "done":
            return False
        return self.retry_failed and known["failures"] < self.max_failures

    def _work(self, tasks, hashes, attempt, todo, chunksize):
        """Collective over the active ranks: the leaders fetch chunks and run them with
        their groups; rank 0 also serves the queue."""
        server = None
        if self.rank == 0:
            server = Server(todo, len(self.leaders), chunksize or self.chunksize)
            if len(self.leaders) > 1:
                server.serve(self.comm, len(self.leaders) - 1)
        client = (LocalClient(server) if self.rank == 0 else RemoteClient(self.comm)) if self.leader else None
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, 5e-4))  # the server thread answers within 0.5 ms
        try:
            worker = _Worker(self, tasks, hashes, attempt, client)
            worker.loop()
        finally:
            sys.setswitchinterval(switch)
            if server is not None:
                server.join()

    @contextmanager
    def _catching_signals(self):
        """Local. During a run, on every rank (idle ones too): the farm's signals set a
        flag instead of ending the rank. A leader drains on it; a group member passes it to
        its leader with its next task's outcome; an idle rank waiting in the final barrier
        must not be killed by the SIGTERM mpiexec passes on to every rank either."""
        old = {s: signal.signal(s, self._on_signal) for s in SIGNALS}
        self.signalled = False
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _on_signal(self, signum, frame):
        self.signalled = True

    def _summary(self, ntasks, attempt, todo) -> dict:
        """On rank 0: what the ledger says after this attempt. Status 75 when a task of
        this attempt's list has no record of this attempt (a drain, a deadline: a failed
        task to retry included), else 3 when some failed, else 0."""
        st = _ledger.state(self.ledger_dir, ntasks)
        done = sorted(i for i, v in st.items() if v["status"] == "done")
        failed = sorted(i for i, v in st.items() if v["status"] == "failed")
        quarantined = sorted(i for i in failed if st[i]["failures"] >= self.max_failures)
        missing = ntasks - len(done) - len(failed)
        unrun = [i for i in todo if i not in st or st[i]["record"].get("attempt") != attempt]
        status = INTERRUPTED if missing or unrun else DONE_WITH_FAILURES if failed else DONE
        return {"done": len(done), "failed": failed, "quarantined": quarantined, "not_run": missing,
                "status": status}


class _Worker:
    """Local. One rank's side of a run: a leader's loop (fetch, announce, run, record)
    or a group member's (follow the leader's announcements)."""

    FLUSH_EVERY = 0.05  # seconds between ledger writes within a chunk

    def __init__(self, pool, tasks, hashes, attempt, client):
        self.pool, self.tasks, self.hashes, self.attempt, self.client = pool, tasks, hashes, attempt, client
        self.mean, self.count = 0.0, 0
        self.batch, self.flushed = [], time.monotonic()

    def loop(self) -> None:
        """Local. Until there is no more work (or the deadline, or a signal)."""
        pool = self.pool
        if not pool.leader:
            while True:
                i = pool.group.bcast(None, root=0)
                if i is None:
                    return
                self._run_one(i)
            return
        writer = _ledger.Writer(pool.ledger_dir, self.attempt, pool.rank)
        try:
            self._lead(writer)
        finally:
            self._flush(writer)  # what ran before a stop (a deadline, a signal) is recorded
            writer.close()
            if pool.k > 1:
                pool.group.bcast(None, root=0)

    def _lead(self, writer) -> None:
        chunk = self.client.get(None)
        while chunk:
            for n, i in enumerate(chunk):
                if self._must_stop():
                    self.client.stop(chunk[n:], drain=self.pool.signalled)
                    return
                if n == len(chunk) - 1:  # the next chunk's request hides behind this task
                    self.client.ask(self.mean if self.count else None)
                if self.pool.k > 1:
                    self.pool.group.bcast(i, root=0)
                self.batch.append(self._run_one(i))
                if time.monotonic() - self.flushed > self.FLUSH_EVERY:
                    self._flush(writer)
            self._flush(writer)  # a chunk's records are on disk before its next is asked for
            chunk = self.client.get(self.mean if self.count else None)

    def _flush(self, writer) -> None:
        """Write the records kept since the last flush, in one write call: a kill loses
        at most FLUSH_EVERY seconds of records (those tasks run again), and tiny tasks do
        not pay a system call each."""
        writer.write(self.batch)
        self.batch, self.flushed = [], time.monotonic()

    def _must_stop(self) -> bool:
        pool = self.pool
        if pool.signalled:
            return True
        if pool.deadline is None:
            return False
        expected = self.mean if self.count else 0.0
        return time.time() + expected + pool.margin > pool.deadline

    def _run_one(self, i):
        """Local (collective over the group): run task ``i``; the leader returns its
        ledger record. The task and the storing of its result are one try: whatever
        fails there is the task's failure, recorded, and the farm goes on."""
        pool = self.pool
        f, args = self.tasks[i]
        t0, start = time.perf_counter(), time.time()
        err, stored = None, {}
        task = Task(i, pool.seed, pool.task_comm, self.attempt, run=pool.runs - 1)
        with running(task):
            try:
                value = f(pool.task_comm, *args) if pool.k > 1 else f(*args)
                if pool.leader and not task.stop:
                    stored = store_result(pool.store, pool.results_dir, i, value)
            except (Exception, SystemExit) as e:  # recorded; the farm goes on
                err = (type(e).__name__, str(e), traceback.format_exc())
        stop = task.stop
        if pool.k > 1:  # failed if it failed on any rank; a member's signal or stop_farm counts
            outcomes = pool.group.gather((err, pool.signalled, stop), root=0)
            if outcomes:
                err = next((e for e, _, _ in outcomes if e is not None), None)
                pool.signalled = pool.signalled or any(sig for _, sig, _ in outcomes)
                stop = any(st for _, _, st in outcomes)
        pool.signalled = pool.signalled or stop  # stop_farm: drain after this task
        seconds = time.perf_counter() - t0
        self.count += 1
        self.mean += (seconds - self.mean) / self.count
        if not pool.leader:
            return None
        rec = {"task": i, "hash": self.hashes[i], "attempt": self.attempt, "rank": pool.rank,
               "start": start, "seconds": seconds}
        if err is not None:
            rec.update(status="failed", error=err[0], message=err[1], traceback=err[2])
        elif stop:  # stopped part-way (a checkpointed solver run): not done, it runs again
            rec.update(status="interrupted")
        else:
            rec.update(status="done", **stored)
        return rec


def _check_chunksize(chunksize, comm) -> None:
    ok = chunksize is None or (isinstance(chunksize, int) and not isinstance(chunksize, bool) and chunksize >= 1)
    check_all(ok, f"chunksize must be None or an integer >= 1, got {chunksize!r}", comm)


def _task_hash(i, f, args) -> str:
    """A task's identity: its index, its function's name and a hash of its arguments
    (pickled: a set's pickle depends on the string hash seed, which differs between
    processes, so pass sorted lists, not sets)."""
    name = f"{getattr(f, '__module__', None)}.{getattr(f, '__qualname__', type(f).__qualname__)}"
    try:
        data = pickle.dumps((name, args), protocol=4)
    except Exception as e:
        raise InputError(f"task {i}: its arguments cannot be pickled ({type(e).__name__}: {e}); a farm "
                         "task's identity is a hash of them")
    return f"{i}:{hashlib.sha256(data).hexdigest()[:32]}"
