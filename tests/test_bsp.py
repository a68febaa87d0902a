"""BSP supersteps (pympc.bsp) against BSPlib semantics and a serial oracle, at 1-4 ranks:
buffered put and get (gets read before puts write), registration by order and its timing,
message queues and tags, empty supersteps, the two-puts rule; the examples (inner
product, sample sort, Life) against numpy; the guide's example and the benchmark run."""

import importlib.util
import json
import os
import re

import numpy as np
import pytest

import pympc
from pympc import costlog
from pympc.bsp import report
from pympc.bsp import BSP
from pympc.tools.launch import run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def example(name):
    spec = importlib.util.spec_from_file_location(f"bsp_{name}", os.path.join(ROOT, "jobs", "bsp", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def bsp(comm):
    with BSP(comm) as b:
        yield b


# ---------------------------------------------------------------------------------------
# put, get, registration
# ---------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_put_is_delivered_at_sync_and_buffered(bsp):
    P, me = bsp.nprocs, bsp.pid
    x = np.full(P, -1.0)
    reg = bsp.register(x)
    bsp.sync()
    src = np.array([me + 0.5])
    for q in range(P):
        bsp.put(q, src, reg, me)
    src[0] = 99.0                       # put copied its source: this change does not travel
    assert (x == -1.0).all()            # nothing lands before the sync
    bsp.sync()
    assert x.tolist() == [r + 0.5 for r in range(P)]


@pytest.mark.mpi
def test_get_reads_before_puts_write(bsp):
    """Every rank gets x[1:4] of its right neighbour while its left neighbour (and the
    owner itself) put into the same places in the same superstep."""
    P, me = bsp.nprocs, bsp.pid
    x = np.arange(6, dtype=np.int64) + 100 * me
    reg = bsp.register(x)
    bsp.sync()
    right = (me + 1) % P
    got = bsp.get(right, reg, 1, 3)
    bsp.put(right, np.array([-1, -2, -3]), reg, 1)
    bsp.put(me, np.array([-9]), reg, 5)          # to oneself, also after the gets
    bsp.sync()
    assert got.tolist() == [100 * right + k for k in (1, 2, 3)]
    assert x.tolist() == [100 * me, -1, -2, -3, 100 * me + 4, -9]


@pytest.mark.mpi
def test_get_into_given_array_and_from_self(bsp):
    P, me = bsp.nprocs, bsp.pid
    x = np.arange(10, dtype=np.float32) * (me + 1)
    reg = bsp.register(x)
    bsp.sync()
    outs = [bsp.get(q, reg, 2, np.empty(4, np.float32)) for q in range(P)]
    bsp.sync()
    for q, o in enumerate(outs):
        assert o.tolist() == (np.arange(2, 6, dtype=np.float32) * (q + 1)).tolist()


@pytest.mark.mpi
def test_registration_takes_effect_at_next_sync(bsp):
    x = np.zeros(4)
    reg = bsp.register(x)
    with pytest.raises(pympc.InputError, match="next sync"):
        bsp.put(0, np.ones(1), reg, 0)
    bsp.sync()
    bsp.put(0, np.ones(1), reg, 0)     # now active
    bsp.deregister(reg)                # still usable in this superstep
    bsp.sync()
    assert reg.active is False
    with pytest.raises(pympc.InputError, match="not active"):
        bsp.get(0, reg, 0, 1)
    if bsp.pid == 0:
        assert x[0] == 1.0


@pytest.mark.mpi
def test_registrations_are_identified_by_order(bsp):
    """Arrays of different sizes per rank; the k-th register call names one variable."""
    P, me = bsp.nprocs, bsp.pid
    a = np.zeros(3 + me, np.int32)
    b = np.zeros(2 * (me + 1), np.float64)
    ra, rb = bsp.register(a), bsp.register(b)
    bsp.sync()
    assert (ra.index, rb.index) == (0, 1)
    assert ra.sizes == [3 + r for r in range(P)] and rb.sizes == [2 * (r + 1) for r in range(P)]
    for q in range(P):
        bsp.put(q, np.array([me + 1], np.int32), ra, 2 + q)   # the last element of a on rank q
        bsp.put(q, np.array([me + 0.25]), rb, q + 1)
    bsp.sync()
    assert a[-1] == P and (a[:-1] == 0).all()        # highest rank's put wins
    assert b[me + 1] == P - 1 + 0.25


@pytest.mark.mpi
def test_out_of_bounds_and_bad_arguments_raise(bsp):
    me, P = bsp.pid, bsp.nprocs
    x = np.zeros(2 + me)
    reg = bsp.register(x)
    bsp.sync()
    with pytest.raises(pympc.InputError, match="outside registration"):
        bsp.put(P - 1, np.zeros(3 + P), reg, 0)
    with pytest.raises(pympc.InputError, match="outside 0.."):
        bsp.put(P, np.zeros(1), reg, 0)
    with pytest.raises(pympc.InputError, match="dtype"):
        bsp.get(0, reg, 0, np.zeros(1, np.float32))
    with pytest.raises(pympc.InputError):
        bsp.register(np.zeros((4, 4))[:, 1])        # not contiguous
    with pytest.raises(pympc.InputError):
        bsp.send(0, 1, np.array(["text"]))
    bsp.sync()                                      # nothing was queued by the failures


@pytest.mark.mpi
def test_mismatched_registration_raises_on_every_rank(bsp):
    if bsp.nprocs == 1:
        pytest.skip("needs two ranks to disagree")
    if bsp.pid == 0:
        bsp.register(np.zeros(3))
    with pytest.raises(pympc.InputError, match="differ between ranks"):
        bsp.sync()
    bsp.sync()   # the BSP object is usable afterwards
    x = np.zeros(2, np.int64) if bsp.pid else np.zeros(2)
    bsp.register(x)
    with pytest.raises(pympc.InputError, match="different dtypes"):
        bsp.sync()


@pytest.mark.mpi
def test_refused_register_leaves_no_trace(bsp):
    """Issue 12.3: a sync that refuses mismatched register() calls raises on every rank;
    the program catches it and goes on: the next registration has the same index on
    every rank, puts and gets through it and the old ones work, and the refused
    superstep's communication was delivered."""
    if bsp.nprocs == 1:
        pytest.skip("needs two ranks to disagree")
    P, me = bsp.nprocs, bsp.pid
    x = np.zeros(P)
    rx = bsp.register(x)
    bsp.sync()
    extra = None
    for who in ([0], list(range(1, P))):           # one rank too many; all but one
        if me in who:
            extra = bsp.register(np.zeros(3))
        bsp.put((me + 1) % P, np.array([me + 1.0]), rx, me)
        with pytest.raises(pympc.InputError, match="differ between ranks"):
            bsp.sync()
        left = (me - 1) % P
        assert x[left] == left + 1.0               # the superstep's put was delivered
        x[:] = 0
    assert extra is None or (not extra.active and "refused" in repr(extra))
    if extra is not None:
        with pytest.raises(pympc.InputError, match="refused"):
            bsp.put(0, np.zeros(1), extra, 0)
    y = np.arange(4, dtype=np.int64) + 10 * me
    ry = bsp.register(y)
    bsp.sync()
    assert ry.index == 1 and ry.active and rx.active
    assert bsp.comm.allgather(ry.index) == [1] * P
    right = (me + 1) % P
    bsp.put(right, np.array([-me], np.int64), ry, 0)
    got = bsp.get(right, ry, 1, 3)
    bsp.put(right, np.array([float(me)]), rx, me)
    bsp.sync()
    assert got.tolist() == [10 * right + k for k in (1, 2, 3)]
    assert y.tolist() == [-((me - 1) % P)] + [10 * me + k for k in (1, 2, 3)]
    assert x[(me - 1) % P] == (me - 1) % P


@pytest.mark.mpi
def test_refused_deregister_and_dtype_mismatch_leave_no_trace(bsp):
    """The other refusals: deregister() of different registrations, register() of
    different dtypes, and a mix of register and deregister counts: every call of that
    superstep is refused on every rank (nothing registered, nothing withdrawn)."""
    if bsp.nprocs == 1:
        pytest.skip("needs two ranks to disagree")
    P, me = bsp.nprocs, bsp.pid
    a, b = np.zeros(P), np.zeros(P)
    ra, rb = bsp.register(a), bsp.register(b)
    bsp.sync()
    cases = [
        ("different registrations", lambda: bsp.deregister(ra if me == 0 else rb)),
        ("different dtypes", lambda: bsp.register(np.zeros(2) if me == 0 else np.zeros(2, np.int32))),
        ("differ between ranks", lambda: bsp.deregister(ra) if me == 0 else bsp.register(np.zeros(2))),
    ]
    for match, calls in cases:
        calls()
        with pytest.raises(pympc.InputError, match=match):
            bsp.sync()
        assert ra.active and rb.active
        for q in range(P):                         # both still work, everywhere
            bsp.put(q, np.array([me + 1.0]), ra, me)
            bsp.put(q, np.array([me + 2.0]), rb, me)
        bsp.sync()
        assert a.tolist() == [r + 1.0 for r in range(P)] and b.tolist() == [r + 2.0 for r in range(P)]
    rc = bsp.register(np.zeros(1))
    bsp.sync()
    assert rc.index == 2 and bsp.comm.allgather(rc.index) == [2] * P


@pytest.mark.mpi
def test_swap_by_two_self_gets(bsp):
    """Issue 12.4: gets read memory as it was at the end of the computation phase,
    so two gets from oneself swap two elements, in either issue order, every time."""
    x = np.array([1.0, 2.0, 3.0])
    reg = bsp.register(x)
    bsp.sync()
    for rep in range(6):
        if rep % 2:
            bsp.get(bsp.pid, reg, 0, x[1:2])
            bsp.get(bsp.pid, reg, 1, x[0:1])
        else:
            bsp.get(bsp.pid, reg, 1, x[0:1])
            bsp.get(bsp.pid, reg, 0, x[1:2])
        before = x.copy()
        bsp.sync()
        assert x.tolist() == [before[1], before[0], 3.0], rep


@pytest.mark.mpi
def test_remote_get_of_a_location_its_owners_own_get_overwrites(bsp):
    """Every rank overwrites its x[0] by a get (from itself, and from its right
    neighbour) while its left neighbour gets that x[0]: the left neighbour reads the
    old value."""
    P, me = bsp.nprocs, bsp.pid
    right = (me + 1) % P
    x = np.array([10.0 * me, 10.0 * me + 1, 10.0 * me + 2])
    reg = bsp.register(x)
    bsp.sync()
    for rep in range(4):
        old = [np.array([10.0 * r + 100 * rep, 10.0 * r + 1, 10.0 * r + 2]) for r in range(P)]
        x[:] = old[me]
        got = bsp.get(right, reg, 0, 1)            # the right neighbour's x[0] ...
        bsp.get(me, reg, 1, x[0:1])                # ... which its own get overwrites
        bsp.get(right, reg, 2, x[2:3])             # and one more overwritten by a remote get
        bsp.sync()
        assert got.tolist() == [old[right][0]], rep
        assert x.tolist() == [old[me][1], old[me][1], old[right][2]], rep


@pytest.mark.mpi
@pytest.mark.parametrize("n,pieces,reps", [(1, 1, 40), (12, 6, 40), (40_000, 1, 8)])
def test_rotation_by_gets_is_exact_every_time(bsp, n, pieces, reps):
    """Every rank gets its left neighbour's whole array into its own (a rotation) in
    one superstep, many times: every rank must see the values before the rotation.
    (It failed in 5-20% of supersteps at 3-4 ranks when replies could land before a
    rank served the others' gets; in pieces, more than 4 records per rank pair, the
    records travel in a message of their own and waiting for it let replies land.)
    40,000 doubles take MPI's rendezvous path."""
    P, me = bsp.nprocs, bsp.pid
    x = np.full(n, float(me))
    reg = bsp.register(x)
    bsp.sync()
    cut = np.linspace(0, n, pieces + 1).astype(int)
    for rep in range(1, reps + 1):
        for a, b in zip(cut[:-1], cut[1:]):
            bsp.get((me - 1) % P, reg, a, x[a:b])
        bsp.sync()
        want = float((me - rep) % P)
        assert x[0] == want and x[-1] == want and (x == want).all(), (rep, x[0], want)


@pytest.mark.mpi
def test_get_and_put_destinations_overlapping(bsp):
    """Writes of one sync in BSPlib's order: get destinations in issue order, then puts:
    where a get's destination is also a put's, the put wins; where two gets' overlap,
    the one issued last."""
    P, me = bsp.nprocs, bsp.pid
    right, left = (me + 1) % P, (me - 1) % P
    x = np.arange(8, dtype=np.int64) + 100 * me
    reg = bsp.register(x)
    bsp.sync()
    bsp.get(right, reg, 0, x[0:3])          # x[0:3] <- right's 0..2
    bsp.get(me, reg, 4, x[2:4])             # x[2:4] <- own 4..5 (after: wins on x[2])
    bsp.put(right, np.array([-1, -2], np.int64), reg, 1)   # left's put lands on x[1:3] last
    bsp.sync()
    assert x.tolist() == [100 * right, -1, -2, 100 * me + 5, 100 * me + 4, 100 * me + 5,
                          100 * me + 6, 100 * me + 7]
    del left


@pytest.mark.mpi
def test_hpput_source_written_in_the_same_sync_sends_the_old_value(bsp):
    """An hpput source is read as it was at the end of the computation phase, even when
    a put from another rank or this rank's own get writes it in the same sync."""
    P, me = bsp.nprocs, bsp.pid
    right = (me + 1) % P
    x = np.arange(6, dtype=np.float64) + 10 * me
    y = np.zeros(6)
    rx, ry = bsp.register(x), bsp.register(y)
    bsp.sync()
    bsp.hpput(right, x[0:2], ry, 0)           # sends x[0:2] ...
    bsp.put(right, np.array([-1.0, -2.0]), rx, 0)   # ... which the left neighbour's put overwrites
    bsp.hpput(right, x[3:5], ry, 3)           # sends x[3:5] ...
    bsp.get(me, rx, 2, x[3:4])                # ... which this rank's own get overwrites
    bsp.sync()
    left = (me - 1) % P
    assert y.tolist() == [10 * left, 10 * left + 1, 0, 10 * left + 3, 10 * left + 4, 0]
    assert x.tolist() == [-1.0, -2.0, 10 * me + 2, 10 * me + 2, 10 * me + 4, 10 * me + 5]


@pytest.mark.mpi
def test_many_overlapping_records(bsp):
    """The same rules with many records (beyond the few that a plain scan checks): 40
    hpputs whose sources the left neighbour's 40 puts and this rank's 40 gets overwrite;
    the gets and puts share destinations (the puts win)."""
    P, me = bsp.nprocs, bsp.pid
    right, left = (me + 1) % P, (me - 1) % P
    x = np.arange(80, dtype=np.int64) + 1000 * me
    y = np.zeros(40, np.int64)
    rx, ry = bsp.register(x), bsp.register(y)
    bsp.sync()
    for k in range(40):
        bsp.hpput(right, x[2 * k:2 * k + 1], ry, k)           # x's even elements, as they are now
        bsp.put(right, np.array([-(k + 1) - 100 * me], np.int64), rx, 2 * k)
        bsp.get(me, rx, 2 * k + 1, x[2 * k:2 * k + 1])       # overwritten by the put above
    bsp.sync()
    assert y.tolist() == [1000 * left + 2 * k for k in range(40)]
    assert x[0::2].tolist() == [-(k + 1) - 100 * left for k in range(40)]
    assert x[1::2].tolist() == [1000 * me + 2 * k + 1 for k in range(40)]


# every dtype the BSP layer moves (docs/bsp.md): registrations and put sources; it moves
# bytes, so longdouble and clongdouble travel too (between ranks of one platform)
BSP_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "complex64", "complex128", "longdouble", "clongdouble"]


@pytest.mark.mpi
def test_put_casts_only_when_numpy_calls_it_safe(bsp):
    """Issue 12.16: a put into a registration of another dtype casts only when
    np.can_cast(src, dst, "safe"); any other pair raises InputError at the put, on the
    sending rank, naming both dtypes, and queues nothing. Every pair of dtypes, put and
    hpput, to the right neighbour; the safe ones arrive exactly."""
    P, me = bsp.nprocs, bsp.pid
    right, left = (me + 1) % P, (me - 1) % P
    n = len(BSP_DTYPES)
    arrays = {d: np.zeros(2 * n, d) for d in BSP_DTYPES}
    regs = {d: bsp.register(arrays[d]) for d in BSP_DTYPES}
    bsp.sync()
    def value(rank, src):                        # exact in every dtype
        return 1 if src == "bool" else rank + 2

    refused = 0
    for dst in BSP_DTYPES:
        for k, src in enumerate(BSP_DTYPES):
            for j, op in enumerate((bsp.put, bsp.hpput)):
                data = np.array([value(me, src)], src)
                if np.can_cast(src, dst, "safe"):
                    op(right, data, regs[dst], 2 * k + j)
                else:
                    with pytest.raises(pympc.InputError) as e:
                        op(right, data, regs[dst], 2 * k + j)
                    assert np.dtype(src).name in str(e.value) and np.dtype(dst).name in str(e.value)
                    refused += 1
    assert refused == 2 * sum(not np.can_cast(a, b, "safe") for a in BSP_DTYPES for b in BSP_DTYPES) > 0
    bsp.sync()
    for dst in BSP_DTYPES:
        for k, src in enumerate(BSP_DTYPES):
            v = value(left, src)
            want = np.array([v, v], dst) if np.can_cast(src, dst, "safe") else np.zeros(2, dst)
            assert arrays[dst][2 * k:2 * k + 2].tolist() == want.tolist(), (src, dst)


@pytest.mark.mpi
def test_put_of_a_float_into_an_int_registration_is_refused(bsp):
    """The issue's example: float64 -1e30 put into int64 arrived as
    -9223372036854775808; now the put raises and the destination keeps its value."""
    x = np.full(2, 7, np.int64)
    reg = bsp.register(x)
    bsp.sync()
    with pytest.raises(pympc.InputError, match="float64.*int64"):
        bsp.put(bsp.pid, np.array([-1e30]), reg, 0)
    with pytest.raises(pympc.InputError, match="float64.*int64"):
        bsp.hpput(bsp.pid, np.array([-1e30]), reg, 1)
    with pytest.raises(pympc.InputError, match="int32.*int64"):
        bsp.get(bsp.pid, reg, 0, np.zeros(1, np.int32))
    bsp.sync()
    assert x.tolist() == [7, 7]


# ---------------------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_message_queue_contents_tags_and_order(bsp):
    P, me = bsp.nprocs, bsp.pid
    dtypes = [np.float64, np.int32, np.uint8, np.complex128, np.float32]
    for q in range(P):
        for k in range(3):
            dt = dtypes[(me + q + k) % len(dtypes)]
            bsp.send(q, 10 * me + k, (np.arange(k + me) + 1000 * q).astype(dt))
    assert bsp.qsize() == (0, 0)
    bsp.sync()
    n, nbytes = bsp.qsize()
    assert n == 3 * P
    msgs = list(bsp.messages())
    assert bsp.qsize() == (0, 0) and bsp.move() is None
    expect = []
    for s in range(P):
        for k in range(3):
            dt = dtypes[(s + me + k) % len(dtypes)]
            expect.append((s, 10 * s + k, (np.arange(k + s) + 1000 * me).astype(dt)))
    assert [(s, t) for s, t, _ in msgs] == [(s, t) for s, t, _ in expect]
    for (_, _, got), (_, _, want) in zip(msgs, expect):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert nbytes == sum(w.nbytes for _, _, w in expect)


@pytest.mark.mpi
def test_unread_messages_are_dropped_at_next_sync_and_move(bsp):
    P, me = bsp.nprocs, bsp.pid
    bsp.send((me + 1) % P, 5, np.array([1.0, 2.0]))
    bsp.send((me + 1) % P, 6, np.zeros(0))       # empty payloads are messages too
    bsp.sync()
    src, tag, payload = bsp.move()
    assert (src, tag, payload.tolist()) == ((me - 1) % P, 5, [1.0, 2.0])
    assert bsp.qsize() == (1, 0)
    bsp.sync()                                    # empty superstep: the queue is replaced
    assert bsp.qsize() == (0, 0)


@pytest.mark.mpi
def test_empty_supersteps(bsp):
    P, me = bsp.nprocs, bsp.pid
    x = np.zeros(P)
    reg = bsp.register(x)
    for _ in range(5):
        bsp.sync("empty")
    for rnd in range(3):
        bsp.put((me + rnd) % P, np.array([rnd + 1.0]), reg, me)
        bsp.sync("put")
        bsp.sync("empty")
        bsp.sync("empty")
        assert x[(me - rnd) % P] == rnd + 1.0


@pytest.mark.mpi
def test_two_puts_to_one_place_highest_rank_then_last_wins(bsp):
    """The conflict rule: puts apply in source-rank order, then in issue order."""
    P, me = bsp.nprocs, bsp.pid
    x = np.zeros(8)
    reg = bsp.register(x)
    bsp.sync()
    for q in range(P):
        bsp.put(q, np.full(4, 10.0 * me + 1), reg, 0)
        bsp.put(q, np.full(4, 10.0 * me + 2), reg, 2)     # overlaps the first on 2..3
        bsp.put(q, np.array([10.0 * me + 3]), reg, 7)
        bsp.put(q, np.array([10.0 * me + 4]), reg, 7)     # same element twice
    bsp.sync()
    top = 10.0 * (P - 1)
    assert x.tolist() == [top + 1, top + 1, top + 2, top + 2, top + 2, top + 2, 0.0, top + 4]


@pytest.mark.mpi
def test_hpput_reads_source_at_sync_and_many_records(bsp):
    """hpput sends from the source array itself; more than 4 records to one rank take
    the header message; puts to several places of one rank from several arrays."""
    P, me = bsp.nprocs, bsp.pid
    x = np.zeros(12 * P, np.int64)
    reg = bsp.register(x)
    bsp.sync()
    srcs = [np.full(3, 100 * me + k, np.int64) for k in range(4)]
    for q in range(P):
        for k in range(4):
            bsp.hpput(q, srcs[k], reg, 12 * me + 3 * k)
        bsp.put(q, np.array([-me]), reg, 12 * me)      # buffered, after the hpputs: wins
    bsp.sync()
    for s in range(P):
        want = np.repeat([100 * s + k for k in range(4)], 3)
        want[0] = -s
        assert x[12 * s:12 * s + 12].tolist() == want.tolist()


@pytest.mark.mpi
def test_large_transfers(bsp):
    P, me = bsp.nprocs, bsp.pid
    n = 150_000  # beyond MPI's eager limits
    x = np.zeros(n * P)
    reg = bsp.register(x)
    bsp.sync()
    src = np.arange(n, dtype=float) + me * n
    dst = (me + 1) % P
    bsp.hpput(dst, src, reg, me * n)
    bsp.send(dst, 1, src[::2])
    got = bsp.get(dst, reg, 0, n)
    bsp.sync()
    left = (me - 1) % P
    assert np.array_equal(x[left * n:(left + 1) * n], np.arange(n, dtype=float) + left * n)
    assert not got.any()
    (_, _, p), = bsp.messages()
    assert np.array_equal(p, (np.arange(n, dtype=float) + left * n)[::2])


@pytest.mark.mpi
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_supersteps_against_serial_oracle(bsp, seed):
    """Random puts, gets and messages between all ranks, several supersteps, compared
    with a serial simulation of the semantics on all ranks' arrays."""
    P, me = bsp.nprocs, bsp.pid
    sizes = {"a": [9 + r for r in range(P)], "b": [5] * P}
    state = {"a": [np.arange(sizes["a"][r], dtype=np.float64) + 100 * r for r in range(P)],
             "b": [np.arange(5, dtype=np.int32) * (r + 1) for r in range(P)]}
    mine = {k: state[k][me].copy() for k in state}
    regs = {k: bsp.register(mine[k]) for k in ("a", "b")}
    bsp.sync()
    for step in range(4):
        ops = {}
        for s in range(P):
            g = np.random.default_rng([seed, step, s])
            lst = []
            for _ in range(int(g.integers(0, 9)) if step != 2 else 0):   # superstep 2 is empty
                kind = ("put", "get", "send")[int(g.integers(0, 3))]
                d = int(g.integers(0, P))
                if kind == "send":
                    dt = (np.float32, np.int64, np.uint8)[int(g.integers(0, 3))]
                    lst.append(("send", d, int(g.integers(0, 50)), g.integers(0, 99, int(g.integers(0, 6))).astype(dt)))
                    continue
                k = ("a", "b")[int(g.integers(0, 2))]
                off = int(g.integers(0, sizes[k][d]))
                n = int(g.integers(0, sizes[k][d] - off + 1))
                if kind == "put":
                    lst.append(("put", d, k, off, g.integers(-50, 50, n).astype(state[k][0].dtype)))
                else:
                    lst.append(("get", d, k, off, n))
            ops[s] = lst
        # this rank's part
        outs = []
        for op in ops[me]:
            if op[0] == "put":
                bsp.put(op[1], op[4], regs[op[2]], op[3])
            elif op[0] == "get":
                outs.append(bsp.get(op[1], regs[op[2]], op[3], op[4]))
            else:
                bsp.send(op[1], op[2], op[3])
        bsp.sync(f"random {step}")
        # the oracle: gets read the old state; puts in (source, issue) order
        old = {k: [x.copy() for x in state[k]] for k in state}
        want_gets = [old[op[2]][op[1]][op[3]:op[3] + op[4]] for op in ops[me] if op[0] == "get"]
        for s in range(P):
            for op in ops[s]:
                if op[0] == "put":
                    state[op[2]][op[1]][op[3]:op[3] + op[4].size] = op[4]
        want_msgs = [(s, op[2], op[3]) for s in range(P) for op in ops[s] if op[0] == "send" and op[1] == me]
        for k in state:
            assert np.array_equal(mine[k], state[k][me]), (step, k)
        for got, want in zip(outs, want_gets):
            assert np.array_equal(got, want), step
        msgs = list(bsp.messages())
        assert len(msgs) == len(want_msgs)
        for (s, t, p), (s2, t2, p2) in zip(msgs, want_msgs):
            assert (s, t) == (s2, t2) and p.dtype == p2.dtype and np.array_equal(p, p2)


@pytest.mark.mpi
def test_superstep_context_and_sub_communicator(comm):
    """A BSP object on a sub-communicator (even and odd ranks) with the context form."""
    sub = comm.Split(comm.Get_rank() % 2, comm.Get_rank())
    try:
        with BSP(sub) as b:
            x = np.zeros(b.nprocs)
            reg = b.register(x)
            b.sync()
            with b.superstep("ctx"):
                for q in range(b.nprocs):
                    b.put(q, np.array([float(comm.Get_rank())]), reg, b.pid)
            ranks = [r for r in range(comm.Get_size()) if r % 2 == comm.Get_rank() % 2]
            assert x.tolist() == [float(r) for r in ranks]
    finally:
        sub.Free()


# ---------------------------------------------------------------------------------------
# accounting
# ---------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_sync_accounts_words_exactly(comm):
    P = comm.Get_size()
    me = comm.Get_rank()
    with costlog.Log(comm) as log, BSP(comm) as b:
        x = np.zeros(64 * P)
        reg = b.register(x)
        b.sync("setup")
        for step in range(3):
            b.put((me + 1) % P, np.ones(10), reg, 0)           # 10 words out, 10 in
            b.send((me + 2) % P, 1, np.ones(6, np.int32))      # 3 words out, 3 in
            b.sync("pattern")
        # an uneven pattern: rank 0 sends 5 words to every rank
        if me == 0:
            for q in range(P):
                b.put(q, np.ones(5), reg, 0)
        b.sync("fan-out")
        b.sync("empty")
        data = log.gather(root=None)
    pat = data["labels"]["pattern"]
    assert pat["count"] == [3] * P
    assert pat["sent"] == [39] * P and pat["recv"] == [39] * P and pat["h"] == [39] * P
    assert pat["h_max"] == [13] * P
    fan = data["labels"]["fan-out"]
    assert fan["sent"] == [5 * P] + [0] * (P - 1)
    assert fan["recv"] == [5] * P
    assert fan["h"] == [5 * P] + [5] * (P - 1)
    emp = data["labels"]["empty"]
    assert emp["sent"] == [0] * P and emp["comm"] == [0.0] * P and emp["count"] == [1] * P
    for lab in ("pattern", "fan-out", "empty"):
        d = data["labels"][lab]
        assert min(d["w"]) >= 0 and min(d["sync"]) > 0
    s = report.summarise(data, {"g": 1e-9, "l": 1e-5, "ranks": P})
    row = {r["label"]: r for r in s["rows"]}["fan-out"]
    assert row["h"] == 5 * P and row["h_rank"] == 0
    assert row["predicted"] == pytest.approx(5 * P * 1e-9 + 1e-5)


@pytest.mark.mpi
def test_halo_and_reductions_record_into_the_log(comm):
    """Words of a halo exchange (self copies on unsplit periodic axes included) and of
    fused reductions, exactly, per rank."""
    P = comm.Get_size()
    with pympc.Decomposition((12, 10), comm=comm, periodic=True) as d, costlog.Log(comm) as log:
        u, v = pympc.DistArray(d), pympc.DistArray(d)
        with log.superstep("halo"):
            pympc.update_halo(u, v)
            pympc.update_halo(u, v)
        with log.superstep("reduce"):
            pympc.reduce_all(("sum", u), ("max", v), ("norm2", u))
            u.sum()
        mine = log.local()["labels"]
    n0, n1 = d.local_shape
    words = 2 * (2 * n0 + 2 * n1)                  # two fields, 4 faces
    h = mine["halo"]["kinds"]["halo"]
    assert h["count"] == 2 and h["sent"] == 2 * words and h["recv"] == 2 * words
    r = mine["reduce"]["kinds"]["reduce"]
    assert r["count"] == 2 and r["sent"] == 3 + 1
    assert mine["halo"]["sent"] == 2 * words and mine["halo"]["h_max"] == 2 * words
    del P


@pytest.mark.mpi
def test_log_save_writes_one_json_on_root(comm, shared_tmp_path):
    path = shared_tmp_path / "log.json"
    with costlog.Log(comm) as log, BSP(comm) as b:
        b.sync("a")
        b.sync("b")
        log.save(str(path))
    comm.Barrier()
    data = json.loads(path.read_text())
    assert data["ranks"] == comm.Get_size() and list(data["labels"]) == ["a", "b"]
    assert "pympc profile" in report.report(str(path))


# ---------------------------------------------------------------------------------------
# the examples against numpy
# ---------------------------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("n", [1, 5, 1001])
def test_inner_product_example(bsp, n):
    ip = example("inner_product")
    idx = ip.cyclic(n, bsp.nprocs, bsp.pid)
    x = np.sin(idx.astype(float))
    y = np.cos(idx * 0.5)
    got = ip.inner_product(bsp, x, y)
    i = np.arange(n)
    assert got == pytest.approx(float(np.dot(np.sin(i), np.cos(i * 0.5))), rel=1e-12, abs=1e-12)
    assert len(set(bsp.comm.allgather(got))) == 1      # the same on every rank, bit for bit


@pytest.mark.mpi
@pytest.mark.parametrize("n,dtype", [(0, np.int64), (3, np.int64), (997, np.int64), (2000, np.float64)])
def test_sample_sort_example(bsp, comm, n, dtype):
    ss = example("sample_sort")
    P, me = bsp.nprocs, bsp.pid
    g = np.random.default_rng(n)
    allkeys = (g.integers(0, 50, n) if dtype == np.int64 else g.standard_normal(n)).astype(dtype)
    cut = np.sort(g.integers(0, n + 1, P - 1)) if P > 1 else np.array([], int)  # uneven shares
    bounds = np.concatenate([[0], cut, [n]])
    block = ss.sample_sort(bsp, allkeys[bounds[me]:bounds[me + 1]])
    blocks = comm.allgather(block)
    assert np.array_equal(np.concatenate(blocks), np.sort(allkeys))
    if n >= 100 * P:
        assert max(b.size for b in blocks) <= 2 * n / P + P   # regular sampling's bound


@pytest.mark.mpi
@pytest.mark.parametrize("rows,cols,steps", [(17, 9, 12), (4, 5, 3)])
def test_life_example(bsp, comm, rows, cols, steps):
    lf = example("life")
    P, me = bsp.nprocs, bsp.pid
    glob = (np.random.default_rng(rows).random((rows, cols)) < 0.35).astype(np.uint8)
    glob[1:4, 1:4] = [[0, 1, 0], [0, 0, 1], [1, 1, 1]]       # a glider, crossing the wrap
    sizes = pympc.grid.split_sizes(rows, P)
    lo = sum(sizes[:me])
    block = lf.life(bsp, glob[lo:lo + sizes[me]], rows, steps)
    ref = glob
    for _ in range(steps):
        ref = lf.step_serial(ref)
    assert np.array_equal(np.concatenate(comm.allgather(block)), ref)


# ---------------------------------------------------------------------------------------
# serial: the scripts, the guide's example, the benchmark at a tiny size
# ---------------------------------------------------------------------------------------
def test_example_scripts_run_under_mpiexec(tmp_path):
    jobs = os.path.join(ROOT, "jobs", "bsp")
    for script, args, expect in [("inner_product.py", ["--n", "1000"], "OK against numpy"),
                                 ("sample_sort.py", ["--n", "5000"], "OK against numpy"),
                                 ("life.py", ["--rows", "20", "--cols", "16", "--steps", "8",
                                              "--profile", str(tmp_path / "life.json")], "OK against serial")]:
        r = run_mpi(3, [os.path.join(jobs, script), *args], timeout=180)
        assert r.returncode == 0, r.output[-3000:]
        assert r.stdout.count(expect) == 1, r.output
    data = json.loads((tmp_path / "life.json").read_text())
    assert data["ranks"] == 3 and data["labels"]["life halo"]["count"] == [8] * 3
    # a row of 16 uint8 cells is 2 words; two rows out and two in per generation
    assert data["labels"]["life halo"]["h"] == [8 * 4] * 3


def test_guide_example_runs(tmp_path):
    with open(os.path.join(ROOT, "docs", "bsp.md")) as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    r = run_mpi(3, [str(script)], timeout=180)
    assert r.returncode == 0, r.output[-3000:]
    assert r.stdout.count("sum of squares") == 1, r.output


def test_bsp_benchmark_runs_tiny(tmp_path):
    out = tmp_path / "bsp.json"
    r = run_mpi(2, [os.path.join(ROOT, "benchmarks", "bench_bsp.py"), "--size", "32", "--steps", "3",
                    "--hmax", "64", "--cold-hmax", "32", "--points", "3", "--reps", "1", "--iters", "2",
                    "--heat-reps", "4", "--pattern-reps", "2", "--json", str(out)],
                timeout=300)
    assert r.returncode == 0, r.output[-3000:]
    res = json.loads(out.read_text())
    assert res["ranks"] == 2
    # at h <= 64 words a fitted slope is noise and may have either sign: the ratios exist
    # and are numbers; the timings behind them are positive
    for key in ("l_empty_over_barrier", "g_hpput_over_raw", "g_put_over_raw", "g_halo_over_raw",
                "heat_predicted_over_measured", "heat_raw_after_compute_predicted_over_measured"):
        assert np.isfinite(res["ratios"][key]), key
    assert res["ratios"]["l_empty_over_barrier"] > 0 and res["heat"]["measured"] > 0
    assert all(t > 0 for m in ("hpput", "raw", "halo") for t in res["hrel"][m])
    # machine.g is the fitted slope of the hpput timings: noise at these h (see above)
    assert np.isfinite(res["machine"]["g"]) and res["heat"]["h"] > 0
    # at least --heat-reps batches of each heat variant, each with its own prediction
    assert res["heat"]["batches"] >= 4 and len(res["heat"]["ratios_all"]) == res["heat"]["batches"]
    # the fit of the pattern the heat step ran (after a compute phase), or where the
    # tiny step's compute phase is short, the layer's back-to-back fit
    assert res["heat"]["model"] in ("halo:rows, after compute", "halo, back to back")
    assert res["heat"]["patterns"] == {"halo:rows": {"count": 3, "h": res["heat"]["h"]}}
    assert set(res["heat_periodic_both"]["patterns"]) == {"halo:cols"}
    assert set(res["heat_deep_k4"]["patterns"]) == {"halo:box/w4"}
    # the pattern fits swept with the heat step's own loop: plain stores on a grid this small
    assert res["pattern_stores"] == ["plain", "plain"]
    fits = set(res["machine"]["after_compute"]["fit"])
    assert fits == {"hpput", "raw", "halo", "halo:rows", "halo:cols", "halo:box", "halo:box/w2", "halo:box/w4",
                    "halo:box/w8"}
    for key in ("heat", "heat_periodic_both", "heat_deep_k2", "heat_deep_k4", "heat_deep_k8"):
        assert np.isfinite(res[key]["ratio_median"]), key


def test_bench_driver_writes_bsp_results(tmp_path):
    import sys

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import run as bench_run
    finally:
        sys.path.pop(0)
    rc = bench_run.main(["bsp", "--ranks", "1", "--out", str(tmp_path), "--size", "32", "--steps", "2",
                         "--hmax", "32", "--cold-hmax", "32", "--points", "3", "--reps", "1", "--iters", "1",
                         "--heat-reps", "2", "--pattern-reps", "2"])
    assert rc == 0
    md = (tmp_path / "bsp.md").read_text()
    assert "**l: empty sync / MPI_Barrier**" in md and "1 rank(s)" in md and "| - |" not in md
    assert json.loads((tmp_path / "bsp.json").read_text())["runs"][0]["ranks"] == 1


def test_write_intervals_answer_both_overlap_questions():
    """The sync's one sorted interval list (bsp.core._Intervals) against brute force:
    do two writes overlap, and does an interval (an hpput source) overlap a write."""
    from pympc.bsp.core import _Intervals

    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 10, 100):
        for _ in range(50):
            a = rng.integers(0, 40 * n, n)
            iv = [(int(x), int(x + rng.integers(1, 12))) for x in a]
            got = _Intervals(iv)
            brute = any(s1 < e2 and s2 < e1 for i, (s1, e1) in enumerate(iv) for s2, e2 in iv[i + 1:])
            assert got.overlap == brute, iv
            for q in rng.integers(0, 40 * n, 5):
                q0, q1 = int(q), int(q + rng.integers(1, 12))
                assert got.hit(q0, q1) == any(q0 < e and s < q1 for s, e in iv), (iv, q0, q1)
