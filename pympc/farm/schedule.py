"""Handing out tasks with no idle master: a small server thread on rank 0 of the farm's
communicator answers the group leaders' requests for work, while rank 0's own worker
computes like every other (its requests are a function call).

Chunks are guided (remaining tasks / (2 x leaders), at least one) unless a fixed
``chunksize`` is given: large chunks early for tiny tasks, single tasks at the end for
balance. A leader asks for its next chunk when it starts the last task of the current
one, so the request's latency hides behind that task. The server polls with
``Iprobe`` and a short sleep (20 us, backing off to 2 ms when idle) instead of a blocking
receive, which in MPICH would spin a core away from the computation.
"""

from __future__ import annotations

import sys
import threading
import time

from mpi4py import MPI

TAG_REQUEST, TAG_REPLY = 71, 72


class Server:
    """Local. The task queue (rank 0 of the farm): ``next_chunk()`` for rank 0's own
    worker, a thread serving the other leaders over ``comm``."""

    def __init__(self, todo, nleaders: int, chunksize=None):
        self.todo, self.pos, self.nleaders, self.chunksize = list(todo), 0, nleaders, chunksize
        self.lock = threading.Lock()
        self.stopped = False  # no more work handed out (a drain: signal or deadline on rank 0)
        self.thread = None

    #: a guided chunk holds at most this many seconds of work (by the asking leader's
    #: running mean): a drain, which a leader sees between chunks, comes within it
    CHUNK_SECONDS = 1.0

    def next_chunk(self, mean=None):
        """Local. The next task indices to run, or None when there are none. ``mean``:
        the asking leader's mean task time so far (None before its first task: one task,
        so that a long task's farm never hands out a long chunk blind)."""
        with self.lock:
            left = len(self.todo) - self.pos
            if left <= 0 or self.stopped:
                return None
            if self.chunksize:
                n = self.chunksize
            else:
                n = max(1, left // (2 * self.nleaders))
                n = 1 if mean is None else min(n, max(1, int(self.CHUNK_SECONDS / max(mean, 1e-9))))
            chunk = self.todo[self.pos:self.pos + n]
            self.pos += len(chunk)
            return chunk or None

    def give_back(self, tasks, drain: bool) -> None:
        """Local. Tasks a leader took but will not run (it stops early) go back to the
        queue; ``drain``: hand out no more work at all (a signal reached that leader)."""
        with self.lock:
            self.todo.extend(tasks)
            self.stopped = self.stopped or drain

    def serve(self, comm, remote: int) -> None:
        """Local. Start the thread answering ``remote`` leaders until each got None."""
        self.thread = threading.Thread(target=self._serve, args=(comm, remote), name="pympc-farm", daemon=True)
        self.thread.start()

    def _serve(self, comm, remote):
        try:
            self._answer(comm, remote)
        except BaseException:  # never leave the leaders polling a dead server: end the job
            import traceback

            sys.stderr.write("pympc.farm: the task server on rank 0 failed:\n" + traceback.format_exc())
            sys.stderr.flush()
            comm.Abort(1)

    def _answer(self, comm, remote):
        pause, status = 2e-5, MPI.Status()
        while remote > 0:
            if comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_REQUEST, status=status):
                src = status.Get_source()
                msg = comm.recv(source=src, tag=TAG_REQUEST)
                if msg[0] == "work":  # a request for work, with the leader's mean task time
                    chunk = self.next_chunk(msg[1])
                    comm.send(chunk, dest=src, tag=TAG_REPLY)
                    remote -= chunk is None
                else:  # ("bye", tasks it gives back, drain): a leader that stops early
                    self.give_back(msg[1], msg[2])
                    remote -= 1
                pause = 2e-5
            else:
                time.sleep(pause)
                pause = min(pause * 2, 2e-3)

    def join(self) -> None:
        """Local. Wait for the serving thread (every leader has been told to stop)."""
        if self.thread is not None:
            self.thread.join()


class LocalClient:
    """Local. Rank 0's worker: its requests are calls."""

    def __init__(self, server: Server):
        self.server, self.mean = server, None

    def ask(self, mean=None) -> None:
        """Local. Ask for the next chunk ahead of time (here: nothing to hide)."""
        self.mean = mean

    def get(self, mean=None):
        """Local. The next chunk, or None."""
        return self.server.next_chunk(mean if mean is not None else self.mean)

    def stop(self, unstarted, drain: bool) -> None:
        """Local. This worker stops early: its unstarted tasks go back."""
        self.server.give_back(unstarted, drain)


class RemoteClient:
    """Local. A leader on another rank: requests travel to rank 0 of ``comm``."""

    def __init__(self, comm):
        self.comm, self.pending = comm, None

    def ask(self, mean=None) -> None:
        """Local. Send the request for the next chunk now (its reply is read by get),
        with this leader's mean task time (the server sizes the chunk by it)."""
        if self.pending is None:
            self.comm.send(("work", mean), dest=0, tag=TAG_REQUEST)
            self.pending = self.comm.irecv(source=0, tag=TAG_REPLY)

    def get(self, mean=None):
        """Local. The next chunk, or None when the farm has no more work."""
        self.ask(mean)
        req, self.pending = self.pending, None
        while True:  # test, not wait: a blocking wait spins a core in MPICH
            done, chunk = req.test()
            if done:
                return chunk
            time.sleep(2e-5)

    def stop(self, unstarted, drain: bool) -> None:
        """Local. This leader stops early (a deadline, a signal): the chunk it asked for
        ahead and its unstarted tasks go back to the queue, and the server counts it out
        (unless its last answer was already "no more work", which counted it)."""
        tasks = list(unstarted)
        if self.pending is not None:
            req, self.pending = self.pending, None
            chunk = req.wait()
            if chunk is None:
                return
            tasks += chunk
        self.comm.send(("bye", tasks, drain), dest=0, tag=TAG_REQUEST)
