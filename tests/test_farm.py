"""pympc.farm (issue 15): the acceptance tests.

MPI tests (1-4 ranks, ``mpiexec -n N python -m pytest -m mpi --with-mpi``): 1,000 tasks
with one raising; tasks on groups of two ranks, each a heat solve equal bit for bit to a
standalone two-rank solve (and a rank count two does not divide: one rank idle, with a
warning); the rerun rules (a changed task list refused, ``retry_failed``, quarantine after
``max_failures``); ``submit``/``wait`` and futures on every rank, a large result in its
own file.

Serial tests launch tests/cases/farm_run.py with mpiexec (hard timeouts, their own
process session; only the processes they started are signalled or killed, by pid): the
exit status 3; SIGKILL to every rank at a dozen seeded random moments, after each of which
the ledger opens, the rerun executes exactly the tasks not recorded as done (counted by
the tasks themselves) and a Monte Carlo farm's results equal an uninterrupted run's bit for
bit; a deadline (status 75, the rerun completes); SIGTERM to one rank (a drain, status
75, the rerun completes).
"""

import glob
import json
import logging
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from pympc.farm import ledger as _ledger
from pympc.farm.results import load_result
from pympc.tools.launch import clean_env, mpi_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE = os.path.join(ROOT, "tests", "cases", "farm_run.py")
TIMEOUT = 120


# -- MPI tests -----------------------------------------------------------------------------
def _raise_at_500(i):
    if i == 500:
        raise ValueError("the task at 500 fails")
    return i * i


@pytest.mark.mpi
def test_thousand_tasks_one_raising(comm, shared_tmp_path):
    from pympc.farm import Pool

    store = shared_tmp_path / "farm"
    with Pool(comm, store=str(store)) as pool:
        res = pool.map(_raise_at_500, range(1000))
    assert res.status == 3 and res.done == 999 and res.failed == [500] and res.not_run == 0
    assert [res.result(i) for i in range(1000) if i != 500] == [i * i for i in range(1000) if i != 500]
    (err,) = res.errors()
    assert err.index == 500 and err.error == "ValueError" and "fails" in err.message
    assert "_raise_at_500" in err.traceback and 'raise ValueError("the task at 500 fails")' in err.traceback
    rec = _ledger.state(str(store / "ledger"), 1000)[500]["record"]
    assert rec["status"] == "failed" and rec["traceback"] == err.traceback
    with pytest.raises(type(err)):
        res.result(500)


def _heat(comm, p):
    """A small heat solve on ``comm``: its final field on every rank of ``comm``."""
    import pympc
    from solvers.heat import Heat

    shape = (24, 19)
    with pympc.Decomposition(shape, comm=comm, spacing=(1 / 23, 1 / 18)) as d:
        s = Heat(d, alpha=0.5 + 0.1 * p, u0=lambda x, y: np.sin((p + 1) * np.pi * x) * np.cos(np.pi * y),
                 bc={"x-": ("dirichlet", 0.0), "y+": ("neumann", 0.2)})
        s.run(steps=6, progress=None)
        return s.u.gather(root=None)


def _group_task(group, p):
    u = _heat(group, p)
    return {"size": group.Get_size(), "u": u} if group.Get_rank() == 0 else None


@pytest.mark.mpi
def test_tasks_on_groups_of_two_ranks_run_heat_solves(comm, shared_tmp_path):
    from pympc.errors import InputError
    from pympc.farm import Pool

    size, rank = comm.Get_size(), comm.Get_rank()
    if size == 1:
        with pytest.raises(InputError, match="ranks_per_task"):
            Pool(comm, ranks_per_task=2, store=str(shared_tmp_path / "farm"))
        return
    params = list(range(5))
    # the standalone two-rank runs: world ranks 0 and 1 alone
    pair = comm.Split(0 if rank < 2 else 1, rank)
    ref = [_heat(pair, p) for p in params] if rank < 2 else None
    pair.Free()
    ref = comm.bcast(ref, root=0)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("pympc.farm")
    logger.addHandler(handler)
    try:
        with Pool(comm, ranks_per_task=2, store=str(shared_tmp_path / "farm")) as pool:
            res = pool.map(_group_task, params)
    finally:
        logger.removeHandler(handler)
    assert res.status == 0 and res.done == len(params)
    for p in params:
        got = res.result(p)
        assert got["size"] == 2
        assert got["u"].dtype == ref[p].dtype and got["u"].tobytes() == ref[p].tobytes()
    warned = [r.getMessage() for r in records if "idle" in r.getMessage()]
    if rank == 0 and size % 2:
        assert warned and "1 rank(s) idle" in warned[0]
    else:
        assert not warned


@pytest.mark.mpi
def test_rerun_rules(comm, shared_tmp_path):
    from pympc.errors import InputError
    from pympc.farm import Pool, current

    ran = []  # the tasks this rank ran since the last count

    def count(comm):
        n = comm.allreduce(len(ran))
        ran.clear()
        return n

    def flaky(i):  # task 3 fails in the first attempt only; task 5 always
        ran.append(i)
        if (i == 3 and current().attempt == 1) or i == 5:
            raise RuntimeError(f"task {i} in attempt {current().attempt}")
        return -i

    store = str(shared_tmp_path / "farm")

    def run(items=range(8), **kw):
        with Pool(comm, store=store, **kw) as pool:
            return pool.map(flaky, items)
    res = run()
    assert (res.status, res.failed, res.quarantined, count(comm)) == (3, [3, 5], [], 8)
    # a changed task list (other arguments, or another count) is refused on every rank
    for items in ([0, 1, 2, 3, 4, 5, 6, 70], range(9)):
        with pytest.raises(InputError, match="another task list"):
            run(items)
    assert count(comm) == 0
    # a plain rerun does not retry failed tasks
    res = run()
    assert (res.status, res.failed, count(comm)) == (3, [3, 5], 0)
    # retry_failed: task 3 now succeeds; task 5 fails a second time
    res = run(retry_failed=True)
    assert (res.status, res.failed, res.quarantined, count(comm)) == (3, [5], [], 2)
    assert res.result(3) == -3
    res = run(retry_failed=True)  # the third failure of task 5: quarantined
    assert (res.status, res.failed, res.quarantined, count(comm)) == (3, [5], [5], 1)
    res = run(retry_failed=True)  # quarantined: not retried
    assert (res.status, res.failed, res.quarantined, count(comm)) == (3, [5], [5], 0)
    failures = [r for r in _ledger.records(os.path.join(store, "ledger")) if r["task"] == 5]
    assert len(failures) == 3 and all(r["status"] == "failed" for r in failures)
    assert [res.result(i) for i in range(8) if i != 5] == [-i for i in range(8) if i != 5]


def _big(n, seed):
    return np.random.default_rng(seed).random(n)


def _blob(n):
    return {"a": list(range(n))}


def _fails(x):
    raise KeyError(x)


@pytest.mark.mpi
def test_submit_wait_and_futures_on_every_rank(comm, shared_tmp_path):
    from pympc.errors import PympcError
    from pympc.farm import Pool, TaskFailed

    store = shared_tmp_path / "farm"
    with Pool(comm, store=str(store)) as pool:
        big = pool.submit(_big, 50_000, 7)  # 400 kB: its own file
        blob = pool.submit(_blob, 40_000)  # a large pickled result: a file too
        small = pool.submit(pow, 3, 4)
        bad = pool.submit(_fails, "x")
        with pytest.raises(PympcError, match="wait"):
            small.result()
        assert not small.done()
        res = pool.wait()
        assert res.status == 3 and res.failed == [3]
    assert small.done() and big.done() and bad.done()
    assert small.result() == 81 and small.exception() is None
    assert blob.result() == {"a": list(range(40_000))}
    got = big.result()
    assert got.dtype == np.float64 and got.tobytes() == _big(50_000, 7).tobytes()
    exc = bad.exception()
    assert isinstance(exc, TaskFailed) and exc.error == "KeyError" and "_fails" in exc.traceback
    with pytest.raises(TaskFailed):
        bad.result()
    # not held in memory: the large results live in files under store/results, and the
    # ledger records name them
    st = _ledger.state(str(store / "ledger"), 4)
    assert st[0]["record"]["file"] == os.path.join("results", "00000000.npy")
    assert st[1]["record"]["file"] == os.path.join("results", "00000001.pkl")
    assert st[2]["record"]["json"] == 81  # a plain number: JSON in the record, no pickle
    assert np.load(store / "results" / "00000000.npy").tobytes() == got.tobytes()


@pytest.mark.mpi
def test_futures_keep_their_own_batch(comm, shared_tmp_path):
    from pympc.farm import Pool

    with Pool(comm, store=str(shared_tmp_path / "a")) as pool:
        first = [pool.submit(pow, 2, k) for k in range(4)]
        pool.wait()
        again = [pool.submit(pow, 2, k) for k in range(4)]  # the same list: a rerun, nothing runs
        assert [f.result() for f in first] == [1, 2, 4, 8]  # while the next batch is pending
        assert not again[0].done()
    with Pool(comm, store=str(shared_tmp_path / "b")) as pool:
        second = [pool.submit(pow, 3, k) for k in range(4)]
    assert [f.result() for f in first] == [f.result() for f in again] == [1, 2, 4, 8]
    assert [f.result() for f in second] == [1, 3, 9, 27]


def test_a_torn_last_line_is_skipped(tmp_path):
    """What a writer killed mid-record leaves: whole lines read, the torn tail skipped."""
    w = _ledger.Writer(str(tmp_path), 1, 0)
    w.write([{"task": 0, "status": "done", "value": "gARLAC4="}, {"task": 1, "status": "failed"}])
    os.write(w.fd, b'{"task": 2, "status": "do')
    w.close()
    st = _ledger.state(str(tmp_path), 3)
    assert sorted(st) == [0, 1] and st[0]["status"] == "done" and st[1]["failures"] == 1
    assert load_result(str(tmp_path), st[0]["record"]) == 0


# -- serial tests: launch, kill, signal, rerun ---------------------------------------------
class Farm:
    """One launch of tests/cases/farm_run.py on ``n`` ranks, in its own session."""

    def __init__(self, n, store, *args):
        self.n, self.store = n, str(store)
        for path in glob.glob(os.path.join(self.store, "pids", "*")) + [self.summary_path]:
            if os.path.exists(path):
                os.remove(path)  # stale pids must never be signalled
        self.log = open(os.path.join(os.path.dirname(self.store), os.path.basename(self.store) + ".log"), "a")
        self.proc = subprocess.Popen(mpi_command(n, [CASE, self.store, *map(str, args)]), stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=clean_env())
        self.started = time.monotonic()

    @property
    def summary_path(self):
        return os.path.join(self.store, "summary.json")

    def wait(self, timeout=TIMEOUT):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the farm ran past {timeout} s")
        self.log.close()
        return rc

    def summary(self):
        with open(self.summary_path) as f:
            return json.load(f)

    def rank_pids(self, timeout=30.0):
        """``{rank: pid}``, once every rank has written its own."""
        end = time.monotonic() + timeout
        while True:
            paths = glob.glob(os.path.join(self.store, "pids", "*"))
            if len(paths) == self.n:
                try:
                    return {int(os.path.basename(p)): int(open(p).read()) for p in paths}
                except ValueError:  # a pid being written
                    pass
            assert self.proc.poll() is None and time.monotonic() < end, "the farm's ranks did not start"
            time.sleep(0.005)

    def wait_for(self, predicate, timeout=30.0):
        end = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None and time.monotonic() < end, "the farm ended before the moment"
            time.sleep(0.005)

    def kill(self):
        """SIGKILL to every rank, then to the launcher's session; True if the farm was
        still running."""
        running = self.proc.poll() is None
        if running:
            for pid in self.rank_pids().values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.log.close()
        return running


def attempts(store):
    header = _ledger.read_header(os.path.join(str(store), "ledger"))
    return 0 if header is None else header["attempts"]


def executed(store, attempt):
    """The task indices attempt ``attempt`` started, as the tasks logged them."""
    out = []
    for path in glob.glob(os.path.join(str(store), "exec", f"{attempt:04d}-*.log")):
        with open(path) as f:
            out += [int(line) for line in f.read().split("\n")[:-1]]
    return sorted(out)


def done_results(store, ntasks):
    """The ledger after anything: it opens, every record parses, and every task recorded
    as done has its result; ``{index: result}``."""
    directory = os.path.join(str(store), "ledger")
    header = _ledger.read_header(directory)
    assert header["tasks"] == ntasks
    recs = list(_ledger.records(directory))
    assert all(isinstance(r, dict) and r["status"] in ("done", "failed") for r in recs)
    st = _ledger.state(directory, ntasks)
    return {i: load_result(str(store), v["record"]) for i, v in st.items() if v["status"] == "done"}


def same(a, b) -> bool:
    """Equal bit for bit (arrays: dtype and bytes; floats: their repr)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    return type(a) is type(b) and repr(a) == repr(b)


def rerun_completes(n, store, ntasks, done, *args):
    """Rerun to the end: it executes exactly the tasks not in ``done``; returns the
    summary."""
    attempt = attempts(store) + 1
    farm = Farm(n, store, *args)
    assert farm.wait() == 0
    assert executed(store, attempt) == sorted(set(range(ntasks)) - set(done))
    s = farm.summary()
    assert s["status"] == 0 and s["done"] == ntasks and s["not_run"] == 0
    return s


def test_exit_status_3_with_one_failing_task(tmp_path):
    farm = Farm(2, tmp_path / "farm", "--tasks", 30, "--fail-at", 11)
    assert farm.wait() == 3
    s = farm.summary()
    assert (s["status"], s["done"], s["failed"]) == (3, 29, [11])
    (index, error, tb), = s["errors"]
    assert index == 11 and error == "ValueError" and "fails on purpose" in tb


def test_sigkill_at_random_moments_then_rerun_monte_carlo(tmp_path):
    """SIGKILL to every rank at 13 seeded random moments of a Monte Carlo farm (tasks of
    5-20 ms); some reruns are killed too. After every kill the ledger opens; every rerun
    runs none of the tasks recorded done (and, when it completes, exactly the others);
    the final results equal an uninterrupted run's bit for bit, whichever ranks (1 or 2)
    ran what."""
    ntasks = 100
    full = Farm(2, tmp_path / "full", "--tasks", ntasks)
    assert full.wait() == 0
    reference = done_results(tmp_path / "full", ntasks)
    assert len(reference) == ntasks
    rng = random.Random(15)
    kills = 0
    for trial in range(10):
        store = tmp_path / f"t{trial}"
        done = {}
        for killed_in_a_row in range(2 if trial % 3 == 0 else 1):
            attempt = attempts(store) + 1
            farm = Farm(2, store, "--tasks", ntasks)
            farm.rank_pids()
            farm.wait_for(lambda: attempts(store) == attempt)
            time.sleep(rng.uniform(0.0, 0.45))
            running = farm.kill()
            ran = executed(store, attempt)
            assert len(ran) == len(set(ran)) and not set(ran) & set(done)
            now = done_results(store, ntasks)
            kills += running and len(now) < ntasks  # killed mid-run
            assert set(done) <= set(now)
            assert all(same(v, reference[i]) for i, v in now.items())
            done = now
        rerun_completes(1 + trial % 2, store, ntasks, done, "--tasks", ntasks)
        final = done_results(store, ntasks)
        assert sorted(final) == list(range(ntasks))
        assert all(same(final[i], reference[i]) for i in range(ntasks))
    assert kills >= 10


def test_deadline_drains_then_rerun_completes(tmp_path):
    store = tmp_path / "farm"
    farm = Farm(2, store, "--tasks", 6, "--kind", "sleep", "--sleep", 1.0, "--deadline-in", 3.0)
    assert farm.wait() == 75
    s = farm.summary()
    assert s["status"] == 75 and s["not_run"] >= 1 and s["past_deadline"] < 1.5
    done = done_results(store, 6)
    assert len(done) + s["not_run"] == 6 and len(executed(store, 1)) == len(done)
    rerun_completes(2, store, 6, done, "--tasks", 6, "--kind", "sleep", "--sleep", 1.0)
    assert done_results(store, 6) == {i: i for i in range(6)}


@pytest.mark.parametrize("n,k,target", [(2, 1, 1), (2, 1, 0), (2, 2, 1), (3, 2, "mpiexec")])
def test_sigterm_to_one_rank_drains_then_rerun_completes(tmp_path, n, k, target):
    """SIGTERM to one rank (a leader; with groups of two, a rank that is not one), or to
    mpiexec, which passes it on to every rank (with 3 ranks in groups of 2, the idle one
    too): the farm stops handing out tasks, records what ran, and exits 75; the rerun
    completes."""
    store, ntasks = tmp_path / "farm", 40
    args = ("--tasks", ntasks, "--kind", "sleep", "--sleep", 0.06, "--ranks-per-task", k)
    farm = Farm(n, store, *args)
    pid = farm.proc.pid if target == "mpiexec" else farm.rank_pids()[target]
    farm.rank_pids()
    farm.wait_for(lambda: len(executed(store, 1)) >= 4)
    os.kill(pid, signal.SIGTERM)
    rc = farm.wait()
    assert rc == 75 or target == "mpiexec"  # MPICH's mpiexec exits 0 or 15 after passing a signal on
    s = farm.summary()
    assert s["status"] == 75 and s["not_run"] >= 1 and s["failed"] == []
    done = done_results(store, ntasks)
    assert len(done) == s["done"] and len(done) + s["not_run"] == ntasks
    rerun_completes(n, store, ntasks, done, *args)
    assert done_results(store, ntasks) == {i: i for i in range(ntasks)}


def _square(i):
    return i * i


def _cube(i):
    return i ** 3


@pytest.mark.mpi
def test_two_maps_on_one_pool_keep_their_own_ledgers(comm, shared_tmp_path):
    """Each map of a pool has its own ledger and results (``ledger``, ``ledger-1``, ...):
    a program that maps twice runs, and when run again finds both done."""
    from pympc.farm import Pool

    store = str(shared_tmp_path / "two")
    for _ in range(2):
        with Pool(comm, store=store) as pool:
            a = pool.map(_square, range(10))
            b = pool.map(_cube, range(7))
            assert list(a) == [i * i for i in range(10)] and list(b) == [i ** 3 for i in range(7)]
            assert a.status == b.status == 0
    for name, n in (("ledger", 10), ("ledger-1", 7)):
        recs = list(_ledger.records(os.path.join(store, name)))
        assert len(recs) == n and {r["attempt"] for r in recs} == {1}, (name, recs[:3])


@pytest.mark.mpi
def test_another_function_over_the_same_items_is_another_task_list(comm, shared_tmp_path):
    """A task's identity includes its function: a second farm of other work over the same
    items, on the same store, is refused (it must not be handed the first one's results)."""
    from pympc.errors import InputError
    from pympc.farm import Pool

    store = str(shared_tmp_path / "same-items")
    with Pool(comm, store=store) as pool:
        assert list(pool.map(_square, range(6))) == [i * i for i in range(6)]
    with Pool(comm, store=store) as pool:
        with pytest.raises(InputError, match="another task list"):
            pool.map(_cube, range(6))
    with Pool(comm, store=store) as pool:
        for bad in (0, -1, 2.5, True):
            with pytest.raises(InputError, match="chunksize"):
                pool.map(_square, range(6), chunksize=bad)
        assert list(pool.map(_square, range(6), chunksize=4)) == [i * i for i in range(6)]


def _unpicklable(i):
    return (lambda: i) if i == 2 else i


@pytest.mark.mpi
def test_a_result_that_cannot_be_stored_is_the_tasks_failure(comm, shared_tmp_path):
    from pympc.farm import Pool

    with Pool(comm, store=str(shared_tmp_path / "unpicklable")) as pool:
        res = pool.map(_unpicklable, range(5))
    assert res.status == 3 and res.failed == [2] and res.done == 4, (res.status, res.failed)
    assert [res.result(i) for i in (0, 1, 3, 4)] == [0, 1, 3, 4]
