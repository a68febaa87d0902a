"""NPB IS (Integer Sort) on pympc: bucket sorting with an all-to-all exchange.

Run it under a launcher, on a power-of-two number of processes (as the original)::

    mpiexec.mpich -n 4 python benchmarks/npb/is_.py --class S
    mpiexec.mpich -n 2 python benchmarks/npb/is_.py --total-keys-log-2 18 \\
        --max-key-log-2 14 --num-buckets-log-2 9          # no class: runs as class U

The file is ``is_.py`` because ``is`` is a Python keyword. It follows
``NPB3.4-MPI/IS/is.c`` step by step; what each step exercises in pympc:

1. **Key generation** (numba): every rank makes its own slice of one global sequence of
   NPB's ``randlc`` numbers, jumping the generator straight to its first number (the
   ``find_my_seed`` of is.c), so the keys do not depend on the process count.
2. **Ranking**, ten times (``MAX_ITERATIONS``): each rank counts its keys per bucket and
   groups them by bucket (numba); one ``Allreduce`` of the bucket counts tells every rank
   the global histogram, from which all ranks compute the same split of the buckets into
   ranges of about ``total_keys / P`` keys; an ``Alltoall`` of the counts then an
   ``Alltoallv`` of the keys sends each bucket to the rank that owns it; each rank then
   ranks its keys by counting (numba). All collectives go through ``pympc.WORLD`` with
   numpy buffers (upper-case mpi4py calls: no pickling).
3. **Verification**: five test keys' ranks are checked every iteration (partial
   verification), then the keys are sorted by their ranks and checked in order, across
   ranks too (full verification); NPB's rule is that all ``5 * 10 + P`` tests pass.

Exit status: 0 SUCCESSFUL, 1 UNSUCCESSFUL (e.g. ``--perturb-seed``), 2 bad input,
3 class U (run, not verified).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import pympc  # noqa: E402  (a launched rank starts pympc's runtime here, on every rank)
import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402
from numba import njit  # noqa: E402

# Class sizes: (TOTAL_KEYS_LOG_2, MAX_KEY_LOG_2, NUM_BUCKETS_LOG_2) of NPB3.4-MPI/IS/is.c
CLASSES = {
    "S": {"total_keys_log_2": 16, "max_key_log_2": 11, "num_buckets_log_2": 9},   # is.c:62-66
    "W": {"total_keys_log_2": 20, "max_key_log_2": 16, "num_buckets_log_2": 10},  # is.c:72-76
    "A": {"total_keys_log_2": 23, "max_key_log_2": 19, "num_buckets_log_2": 10},  # is.c:81-85
    "B": {"total_keys_log_2": 25, "max_key_log_2": 21, "num_buckets_log_2": 10},  # is.c:91-95
    "C": {"total_keys_log_2": 27, "max_key_log_2": 23, "num_buckets_log_2": 10},  # is.c:101-105
}
SIZES = {
    "total_keys_log_2": "log2 of the number of keys (class U)",
    "max_key_log_2": "log2 of the key range: keys lie in [0, 2^this) (class U)",
    "num_buckets_log_2": "log2 of the number of buckets (class U)",
}

# Partial verification (is.c:263-286): the global indices of five test keys, their ranks,
# and how each reference rank drifts with the iteration number because rank() overwrites
# two keys per iteration (is.c:848-879): expected = rank + sign * (iteration - lag).
TESTS = {
    "S": {"index": (48427, 17148, 23627, 62548, 4431),                      # is.c:263-264
          "rank": (0, 18, 346, 64917, 65463),                               # is.c:265-266
          "drift": ((1, 0), (1, 0), (1, 0), (-1, 0), (-1, 0))},             # is.c:850-855
    "W": {"index": (357773, 934767, 875723, 898999, 404505),                # is.c:268-269
          "rank": (1249, 11698, 1039987, 1043896, 1048018),                 # is.c:270-271
          "drift": ((1, 2), (1, 2), (-1, 0), (-1, 0), (-1, 0))},            # is.c:856-861
    "A": {"index": (2112377, 662041, 5336171, 3642833, 4250760),            # is.c:273-274
          "rank": (104, 17523, 123928, 8288932, 8388264),                   # is.c:275-276
          "drift": ((1, 1), (1, 1), (1, 1), (-1, 1), (-1, 1))},             # is.c:862-867
    "B": {"index": (41869, 812306, 5102857, 18232239, 26860214),            # is.c:278-279
          "rank": (33422937, 10244, 59149, 33135281, 99),                   # is.c:280-281
          "drift": ((-1, 0), (1, 0), (1, 0), (-1, 0), (1, 0))},             # is.c:868-873
    "C": {"index": (44172927, 72999161, 74326391, 129606274, 21736814),     # is.c:283-284
          "rank": (61147, 882988, 266290, 133997595, 133525895),            # is.c:285-286
          "drift": ((1, 0), (1, 0), (1, 0), (-1, 0), (-1, 0))},             # is.c:874-879
}

MAX_ITERATIONS = 10             # is.c:155
SEED = 314159265.0              # is.c:1035, the generator's seed
MULTIPLIER = 1220703125.0       # is.c:1036, the generator's multiplier (5^13)
NUMBERS_PER_KEY = 4             # is.c:543-546 (a key sums four numbers), is.c:1034


# ----------------------------------------------------------------------------- keys


def find_my_seed(rank: int, nprocs: int, numbers: int, seed: float, a: float) -> float:
    """Local. The generator's state just before the first number of ``rank``'s share of
    a sequence of ``numbers`` numbers split evenly over ``nprocs`` ranks (is.c:482-525):
    ``seed * a^(rank * numbers / nprocs) mod 2^46``, by squaring, so every rank jumps
    there in O(log) steps and the global sequence is the same for every process count."""
    jump = common.power(a, numbers // nprocs)          # a^(numbers/nprocs): one share
    _, state = common.randlc(seed, common.power(jump, rank))
    return state


@njit(cache=True)
def create_seq(state, a, num_keys, max_key, keys):
    """Local. ``num_keys`` keys into ``keys[:num_keys]`` (is.c:534-550): each the sum of
    four uniform numbers times ``max_key / 4``, truncated, so keys lie in [0, max_key)
    with a bell-shaped distribution (which is what makes the bucket split uneven)."""
    k = max_key // 4
    for i in range(num_keys):
        x = 0.0
        for _ in range(NUMBERS_PER_KEY):
            r, state = common.randlc(state, a)
            x += r
        keys[i] = int(k * x)
    return state


# ----------------------------------------------------------------------------- rank


@njit(cache=True)
def sort_into_buckets(keys, n, shift, nbuckets, counts, out):
    """Local. Counts ``keys[:n]`` per bucket (``key >> shift``) into ``counts[:nbuckets]``
    and copies them, grouped by bucket in bucket order, into ``out[:n]`` (is.c:672-688):
    the groups are what the all-to-all sends, one contiguous run per destination."""
    counts[:nbuckets] = 0
    for i in range(n):
        counts[keys[i] >> shift] += 1
    start = np.empty(nbuckets, np.int64)
    start[0] = 0
    for b in range(1, nbuckets):
        start[b] = start[b - 1] + counts[b - 1]
    for i in range(n):
        b = keys[i] >> shift
        out[start[b]] = keys[i]
        start[b] += 1


@njit(cache=True)
def split_buckets(totals, local, nbuckets, num_keys, nprocs, send_count, first, last):
    """Local. The buckets' split over the ranks (is.c:720-750): rank ``j`` owns buckets
    ``first[j]..last[j]``, closed when the running global count reaches
    ``(j + 1) * num_keys``; ``send_count[j]``: how many of this rank's keys fall in them.
    Every rank computes the same split from the same global counts ``totals``. Ranks left
    without a bucket get the empty range 1..0, as in the original."""
    first[:] = 0
    last[:] = 0
    acc_total = 0
    acc_local = 0
    j = 0
    for i in range(nbuckets):
        acc_total += totals[i]
        acc_local += local[i]
        if acc_total >= (j + 1) * num_keys:
            send_count[j] = acc_local
            if j != 0:
                first[j] = last[j - 1] + 1
            last[j] = i
            j += 1
            acc_local = 0
    while j < nprocs:
        send_count[j] = 0
        first[j] = 1
        j += 1


@njit(cache=True)
def rank_locally(received, n, lo, hi, work):
    """Local. Ranks ``received[:n]`` (keys in [lo, hi]) by counting (is.c:792-832):
    afterwards ``work[key - lo]`` is how many of them are <= key; a key's global rank adds
    the keys of the ranks before this one."""
    width = max(hi - lo + 1, 0)
    for i in range(width):
        work[i] = 0
    for i in range(n):
        work[received[i] - lo] += 1
    for i in range(1, width):
        work[i] += work[i - 1]


@njit(cache=True)
def sort_by_rank(received, n, lo, work, out):
    """Local. Full verification's local part (is.c:571-608): places each key at its
    rank (``work`` as :func:`rank_locally` left it; consumed) in ``out[:n]`` and returns
    how many neighbouring pairs of ``out`` are out of order (0 when ranking was right)."""
    for i in range(n):
        k = received[i]
        work[k - lo] -= 1
        out[work[k - lo]] = k
    bad = 0
    for i in range(1, n):
        if out[i - 1] > out[i]:
            bad += 1
    return bad


def buffer_size(num_keys: int, nprocs: int) -> int:
    """Local. Room for the keys a rank may hold after the exchange (is.c:164-181,
    339-347): the key distribution is bell-shaped, so with many ranks the split, made of
    whole buckets, leaves the ranks at its extremes more keys than the average."""
    if nprocs < 256:
        return 3 * num_keys // 2
    if nprocs < 512:
        return 5 * num_keys // 2
    if nprocs < 1024:
        return 4 * num_keys
    return 13 * num_keys // 2


def _exclusive_sum(counts, out):
    """Local. Displacements of consecutive blocks of ``counts`` elements into ``out``."""
    out[0] = 0
    np.cumsum(counts[:-1], out=out[1:])


class IntegerSort:
    """Local. One rank's share of IS: its keys, the three work arrays of is.c (the keys,
    the keys grouped by bucket, the keys received; is.c:334-365, allocated once and reused
    every iteration) and the buffers of the exchange. Its methods are collective."""

    def __init__(self, comm, params: dict, tests: dict | None):
        self.comm = comm
        self.rank, self.nprocs = comm.Get_rank(), comm.Get_size()
        self.total_keys = 1 << params["total_keys_log_2"]
        self.max_key = 1 << params["max_key_log_2"]
        self.nbuckets = 1 << params["num_buckets_log_2"]
        self.shift = params["max_key_log_2"] - params["num_buckets_log_2"]
        self.num_keys = self.total_keys // self.nprocs          # is.c:337
        self.tests = tests
        ntests = len(tests["index"]) if tests else 0
        size = buffer_size(self.num_keys, self.nprocs)
        self.keys = np.zeros(size, np.int32)
        self.grouped = np.zeros(size, np.int32)     # key_buff1: by bucket, then the ranks
        self.received = np.zeros(size, np.int32)    # key_buff2
        # the test keys' values ride, hidden, at the top of the bucket counts (is.c:664-669)
        self.counts = np.zeros(self.nbuckets + ntests, np.int32)
        self.totals = np.zeros_like(self.counts)
        # the exchange's counts and displacements, per rank (MPI_INT, as is.c's)
        self.send_count = np.zeros(self.nprocs, np.int32)
        self.recv_count = np.zeros(self.nprocs, np.int32)
        self.send_displ = np.zeros(self.nprocs, np.int32)
        self.recv_displ = np.zeros(self.nprocs, np.int32)
        # rank j owns buckets first[j]..last[j] (is.c's process_bucket_distrib_ptr1/2)
        self.first = np.zeros(self.nprocs, np.int64)
        self.last = np.zeros(self.nprocs, np.int64)
        self.last_ranks = np.full(ntests, -1, np.int64)  # the test keys' ranks, last iteration
        self.n_local = 0                               # keys this rank holds after the exchange
        self.lo = 0

    def generate(self, seed: float) -> None:
        """Local. This rank's keys: its share of the global sequence that starts at
        ``seed`` (is.c:1032-1037)."""
        numbers = NUMBERS_PER_KEY * self.total_keys
        state = find_my_seed(self.rank, self.nprocs, numbers, seed, MULTIPLIER)
        create_seq(state, MULTIPLIER, self.num_keys, self.max_key, self.keys)

    def _grow(self, name: str, n: int) -> np.ndarray:
        """Local. The work array ``name``, reallocated when ``n`` elements do not fit
        (a class U whose key range or imbalance exceeds is.c's sizing)."""
        buf = getattr(self, name)
        if buf.size < n:
            buf = np.zeros(max(n, 2 * buf.size), np.int32)
            setattr(self, name, buf)
        return buf

    def rank_keys(self, iteration: int) -> int:
        """Collective. One iteration of is.c's ``rank()`` (is.c:630-927); returns how many
        partial-verification tests passed on this rank."""
        if self.rank == 0:              # two keys change every iteration (is.c:647-651)
            self.keys[iteration] = iteration
            self.keys[iteration + MAX_ITERATIONS] = self.max_key - iteration
        self._hide_test_keys()
        sort_into_buckets(self.keys, self.num_keys, self.shift, self.nbuckets, self.counts,
                          self.grouped)
        self.comm.Allreduce(self.counts, self.totals, op=MPI.SUM)
        split_buckets(self.totals, self.counts, self.nbuckets, self.num_keys, self.nprocs,
                      self.send_count, self.first, self.last)
        self._exchange()
        me = self.rank
        self.lo = int(self.first[me]) << self.shift
        hi = ((int(self.last[me]) + 1) << self.shift) - 1
        work = self._grow("grouped", hi - self.lo + 1)
        rank_locally(self.received, self.n_local, self.lo, hi, work)
        return self._partial_verify(iteration, hi)

    def _hide_test_keys(self) -> None:
        """Local. The rank holding test key ``i`` puts its value in the counts' slot
        ``nbuckets + i``, so that the counts' Allreduce tells every rank (is.c:666-669)."""
        if not self.tests:
            return
        self.counts[self.nbuckets:] = 0
        for i, index in enumerate(self.tests["index"]):
            if index // self.num_keys == self.rank:
                self.counts[self.nbuckets + i] = self.keys[index % self.num_keys]

    def _exchange(self) -> None:
        """Collective. Every rank's keys to the ranks owning their buckets: the counts by
        ``Alltoall``, then the keys by ``Alltoallv`` (is.c:757-780)."""
        self.comm.Alltoall(self.send_count, self.recv_count)
        _exclusive_sum(self.send_count, self.send_displ)
        _exclusive_sum(self.recv_count, self.recv_displ)
        self.n_local = int(self.recv_count.sum())
        received = self._grow("received", self.n_local)
        self.comm.Alltoallv([self.grouped, (self.send_count, self.send_displ), MPI.INT],
                            [received, (self.recv_count, self.recv_displ), MPI.INT])

    def _lesser_keys(self) -> int:
        """Local. How many keys the ranks before this one hold (is.c:798-803)."""
        return sum(int(self.totals[self.first[k]:self.last[k] + 1].sum())
                   for k in range(self.rank))

    def _partial_verify(self, iteration: int, hi: int) -> int:
        """Local. Checks the ranks of the test keys this rank holds against NPB's
        (is.c:838-910); returns how many passed, and prints each failure, as is.c does."""
        if not self.tests:
            return 0
        passed = 0
        lesser = self._lesser_keys()
        # a test key near a split may change ranks between iterations: forget the old
        self.last_ranks[:] = -1
        work = self.grouped
        for i, (ref, (sign, lag)) in enumerate(zip(self.tests["rank"], self.tests["drift"])):
            key = int(self.totals[self.nbuckets + i])
            if not self.lo <= key <= hi:
                continue
            # keys below `key` here: the count up to key - 1 (none when key is our lowest)
            key_rank = (int(work[key - 1 - self.lo]) if key > self.lo else 0) + lesser
            expected = ref + sign * (iteration - lag)
            if key_rank == expected:
                passed += 1
            else:
                print(f" Failed partial verification: iteration {iteration}, process "
                      f"{self.rank}, test key {i}, key rank {key_rank}", flush=True)
            self.last_ranks[i] = key_rank
        return passed

    def full_verify(self) -> int:
        """Collective. Sorts this rank's keys by the ranks of the last iteration and counts
        the keys out of order, here and across the boundary with the previous rank
        (is.c:560-620); returns this rank's count (0 when sorted)."""
        n = self.n_local
        out = self._grow("keys", n)
        bad = sort_by_rank(self.received, n, self.lo, self.grouped, out)
        # my largest key to the next rank, the previous rank's to me (is.c:577-601);
        # a rank without keys sends -1, which no key is below
        largest = np.array([out[n - 1] if n else -1], np.int32)
        theirs = np.full(1, -1, np.int32)
        right = self.rank + 1 if self.rank + 1 < self.nprocs else MPI.PROC_NULL
        left = self.rank - 1 if self.rank > 0 else MPI.PROC_NULL
        self.comm.Sendrecv(largest, dest=right, sendtag=1000,
                           recvbuf=theirs, source=left, recvtag=1000)
        if n and theirs[0] > out[0]:
            bad += 1
        if bad:
            print(f" Process {self.rank}: full verification: {bad} keys out of order",
                  flush=True)
        return int(bad)


# ----------------------------------------------------------------------------- main


def validate(problem: common.Problem, nprocs: int) -> None:
    """Local. Refuses what the original cannot run (exit 2 on every rank): a process
    count that is no power of two or above MAX_PROCS (is.c:149-153, 983-1020), and sizes
    whose keys or counts would not fit is.c's 32-bit integers."""
    common.require_power_of_two("IS", nprocs)
    max_procs = 128 if problem.cls == "S" else 1024                    # is.c:149-153
    if nprocs > max_procs:
        common.fail(f"IS class {problem.cls} runs on at most {max_procs} processes")
    p = problem.params
    if not 0 <= p["num_buckets_log_2"] <= p["max_key_log_2"] <= 30:
        common.fail("need 0 <= num_buckets_log_2 <= max_key_log_2 <= 30")
    if p["max_key_log_2"] < 4:   # rank() writes max_key - 10 as a key (is.c:650)
        common.fail("need max_key_log_2 >= 4")
    if p["total_keys_log_2"] > 30 or (1 << p["total_keys_log_2"]) // nprocs <= 2 * MAX_ITERATIONS:
        common.fail(f"need total_keys_log_2 <= 30 and more than {2 * MAX_ITERATIONS} keys "
                    f"per process (rank 0 overwrites keys 1..{2 * MAX_ITERATIONS})")


def verify(sorter: IntegerSort, passed: int) -> bool:
    """Collective. Full verification, then NPB's rule (is.c:1089-1105): every partial test
    of every iteration and every rank's full test passed, ``5 * 10 + P`` in all. Rank 0
    prints the values; returns the verdict on every rank (false without test keys)."""
    comm = sorter.comm
    bad = sorter.full_verify()
    # [tests passed, keys out of order]: one Allreduce for both sums
    local = np.array([passed + (bad == 0), bad], np.int64)
    total = np.zeros(2, np.int64)
    comm.Allreduce(local, total, op=MPI.SUM)
    ranks = np.full_like(sorter.last_ranks, -1)   # each test key is ranked by one rank only
    comm.Reduce(sorter.last_ranks, ranks, op=MPI.MAX, root=0)
    tests = sorter.tests
    if sorter.rank == 0:
        for i, (ref, (sign, lag)) in enumerate(zip(tests["rank"], tests["drift"]) if tests else ()):
            common.check(f"rank of test key {i} at iteration {MAX_ITERATIONS}", float(ranks[i]),
                         float(ref + sign * (MAX_ITERATIONS - lag)), 0.0)
        common.check("keys out of order after sorting by rank", float(total[1]), 0.0, 0.0)
    if not tests:
        return False
    expected = len(tests["index"]) * MAX_ITERATIONS + sorter.nprocs
    if sorter.rank == 0:
        common.check(f"tests passed ({len(tests['index'])} per iteration + 1 per process)",
                     float(total[0]), float(expected), 0.0)
    return bool(total[0] == expected)


def main(argv=None) -> int:
    """Collective. Runs IS as the command line says; returns the exit status (the same
    on every rank)."""
    comm = pympc.WORLD
    args = common.parser("IS", SIZES).parse_args(argv)
    problem = common.choose("IS", CLASSES, args)
    nprocs = comm.Get_size()
    validate(problem, nprocs)
    sorter = IntegerSort(comm, problem.params, TESTS.get(problem.cls))
    if comm.Get_rank() == 0:
        print(f"\n\n NAS Parallel Benchmarks 3.4 -- IS Benchmark (pympc)\n\n"
              f" Size:  {sorter.total_keys}  (class {problem.cls})\n"
              f" Iterations:   {MAX_ITERATIONS}\n Number of processes:     {nprocs}\n",
              flush=True)
    seed = common.start_seed(SEED, MULTIPLIER, args.perturb_seed)  # perturbed: every key changes
    sorter.generate(seed)
    sorter.rank_keys(1)         # one untimed iteration warms pages and code (is.c:1040-1042)
    passed = 0
    with common.Timer(comm) as timer:                   # the timed region: is.c:1057-1070
        for iteration in range(1, MAX_ITERATIONS + 1):
            passed += sorter.rank_keys(iteration)
    verified = verify(sorter, passed)
    mops = common.rate(MAX_ITERATIONS * sorter.total_keys, timer.seconds)   # is.c:1115-1116
    status = common.UNVERIFIED
    if comm.Get_rank() == 0:
        status = common.report("IS", problem, (sorter.total_keys,), MAX_ITERATIONS,
                               timer.seconds, mops, "keys ranked", verified, nprocs)
    return comm.bcast(status, root=0)


if __name__ == "__main__":
    sys.exit(main())
