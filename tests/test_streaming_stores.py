"""The 2-D FTCS step with streaming (non-temporal) stores (pympc.kernels.streaming): the
same bits as the plain row pair and the numpy reference on any bounds, alignment, dtype
and value (NaN, infinities, signed zeros, subnormals), nothing written outside its
bounds; and the rule that picks it (PYMPC_STREAMING_STORES: on, off, auto)."""

import numpy as np
import pytest

import pympc
from mpi4py import MPI
from pympc import bc, kernels
from oracle import ftcs, pad

numba = pytest.importorskip("numba")
from pympc.kernels import streaming  # noqa: E402  (imports numba)
from pympc.kernels.loops import FTCS, _ftcs_numpy  # noqa: E402
from pympc.kernels.stencils import ftcs_loop  # noqa: E402


def bits(a):
    # equality bit for bit, NaN payloads and the sign of zero included
    return a.view(np.uint64 if a.dtype == np.float64 else np.uint32)


def field(rng, shape, dtype, special):
    u = (rng.random(shape) * 3 - 1).astype(dtype)
    if special:  # a few of every kind of value an IEEE step must carry through unchanged
        tiny = np.finfo(dtype).tiny
        values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, tiny / 4, -tiny / 3, 1e30], dtype)
        idx = rng.integers(0, u.size, size=3 * len(values))
        u.flat[idx] = np.resize(values, len(idx))
    return u


def offset_view(shape, dtype, shift_bytes):
    """A C-ordered array of ``shape`` starting ``shift_bytes`` past a 64-byte boundary (a
    shift that is no multiple of the item size gives misaligned elements)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = np.zeros(size + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + shift_bytes
    return np.ndarray(shape, dtype, buffer=buf, offset=start)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shift", [0, 8, 24, 4, 3], ids=lambda s: f"shift{s}")
@pytest.mark.parametrize("loop", ["FTCS2_STREAM", "FTCS2_STREAM_ROWS"])
def test_streaming_step_is_bit_identical_on_random_bounds(loop, dtype, shift):
    stream, plain = getattr(streaming, loop).compiled(), FTCS[2].compiled()
    rng = np.random.default_rng(100 + shift)
    for trial in range(14):
        # widths below one vector (8 points), around it, and rows of several hundred
        shape = (int(rng.integers(3, 40)), int(rng.choice([3, 9, 10, 11, 17, 40, 301, 520])))
        shape = (shape[0] | 1,) + shape[1:] if trial % 2 else (max(shape[0] & ~1, 4),) + shape[1:]
        if trial % 5 == 4:  # a window of a wider array: unit-stride rows, not C-contiguous
            u = offset_view((shape[0], shape[1] + 13), dtype, shift)[:, 5:5 + shape[1]]
        else:
            u = offset_view(shape, dtype, shift)
        u[...] = field(rng, shape, dtype, special=trial % 3 == 0)
        lo0, lo1 = (int(rng.integers(1, n - 1)) for n in shape)
        bounds = [1, shape[0] - 1, 1, shape[1] - 1] if trial % 4 == 0 else \
            [lo0, int(rng.integers(lo0, shape[0])), lo1, int(rng.integers(lo1, shape[1]))]
        r = tuple(float(x) for x in rng.random(2) * 0.25)
        got = offset_view(shape, dtype, (shift + 8 * trial) % 64 if shift % 4 == 0 else shift)
        got[...] = -7.0
        ref, prev = np.full(shape, -7.0, dtype), np.full(shape, -7.0, dtype)
        stream(u, got, *bounds, *r)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: NaN, as in the loops
            _ftcs_numpy(u, ref, *bounds, *r)
        plain(u, prev, *bounds, *r)
        assert np.array_equal(bits(got), bits(ref)), (shape, bounds, shift)
        assert np.array_equal(bits(got), bits(prev)), (shape, bounds, shift)
        outside = np.ones(shape, bool)
        outside[bounds[0]:bounds[1], bounds[2]:bounds[3]] = False
        assert np.all(got[outside] == -7.0)  # nothing written outside the bounds


@pytest.fixture
def stores():
    """Sets PYMPC_STREAMING_STORES as this process read it (``stores("on")``) and forgets
    what ``auto`` chose, before and after."""
    saved = dict(streaming._memo)

    def set_mode(mode):
        streaming._memo.clear()
        streaming._memo["mode"] = mode
    yield set_mode
    streaming._memo.clear()
    streaming._memo.update(saved)


def test_on_and_off_pick_their_loop_and_a_strided_row_never_streams(stores):
    plain = FTCS[2].compiled()
    u = np.zeros((6, 20))
    args = (1, 5, 1, 19, 0.1, 0.2)
    stores("on")
    assert ftcs_loop(u, np.zeros_like(u), args) is streaming.FTCS2_STREAM_ROWS.compiled()
    strided = np.zeros((6, 40))[:, ::2]  # rows with stride 2: the intrinsics cannot address them
    assert ftcs_loop(u, strided, args) is plain
    assert ftcs_loop(u, np.zeros_like(u), args, backend="numpy") is _ftcs_numpy
    stores("off")
    assert ftcs_loop(u, np.zeros_like(u), args) is plain


def test_auto_tries_each_loop_on_the_first_large_steps_then_keeps_one(stores):
    stores("auto")
    plain = FTCS[2].compiled()
    loops = (plain, streaming.FTCS2_STREAM.compiled(), streaming.FTCS2_STREAM_ROWS.compiled())
    small = np.random.default_rng(3).random((66, 66))
    assert ftcs_loop(small, np.zeros_like(small), (1, 65, 1, 65, 0.1, 0.2)) is plain
    assert list(streaming._memo) == ["mode"]  # nothing tried: a small step stays plain
    n = 1 + int(np.sqrt(streaming.AUTO_MIN_BYTES / 8))  # just over the least size tried
    u = np.random.default_rng(4).random((n + 2, n + 2))
    out, ref = np.zeros_like(u), np.zeros_like(u)
    args = (1, n + 1, 1, n + 1, 0.1, 0.2)
    _ftcs_numpy(u, ref, *args)
    trial = streaming.TRIAL_WARMUP + 3 * streaming.TRIAL_STEPS * streaming.TRIAL_ROUNDS
    for step in range(trial):  # every trial step is a true step, whichever loop runs it
        fn = ftcs_loop(u, out, args)
        assert fn not in loops, step  # still trying
        out[...] = 0.0
        fn(u, out, *args)
        assert np.array_equal(out, ref), step
    out[...] = 0.0
    fn(u, out, *args)  # the trial's function, kept by a caller past the trial: the chosen loop
    assert np.array_equal(out, ref)
    chosen = ftcs_loop(u, out, args)
    assert chosen in loops and len(streaming._memo) == 2
    assert ftcs_loop(u, np.zeros_like(u), args) is chosen  # kept
    f32 = u.astype(np.float32)
    assert ftcs_loop(f32, np.zeros_like(f32), args) is plain  # float32 here writes under 4 MiB
    wide = np.zeros((n + 2, 2 * n + 2))
    assert ftcs_loop(wide, np.zeros_like(wide), (1, n + 1, 1, 2 * n + 1, 0.1, 0.2)) not in loops  # a new class


def test_a_bad_setting_is_refused_in_one_line(stores, monkeypatch):
    streaming._memo.clear()
    monkeypatch.setenv("PYMPC_STREAMING_STORES", "always")
    with pytest.raises(pympc.env.EnvError, match="PYMPC_STREAMING_STORES='always'"):
        streaming.mode()


@pytest.mark.mpi(min_size=1)
@pytest.mark.parametrize("shape", [(37, 29), (40, 64), (9, 130)])
@pytest.mark.parametrize("periodic", [(False, False), (True, False), (True, True)], ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_heat_step_with_streaming_stores_matches_global_numpy(comm, stores, shape, periodic, dtype):
    """heat_step through the streaming loop on 1-4 ranks, uneven splits, periodic or not:
    the serial numpy step of the whole field."""
    stores("on")
    glob = np.random.default_rng(7).random(shape).astype(dtype)
    r = (0.11, 0.07)
    with pympc.Decomposition(shape, comm=comm, periodic=periodic) as d:
        u = pympc.DistArray.from_global(d, glob if comm.Get_rank() == 0 else None, dtype=dtype)
        pympc.update_halo(u)
        bc.dirichlet(u, 0.25)
        out = kernels.heat_step(u, u.empty_like(), r)
        expect = ftcs(pad(glob.astype(np.float64), 1, periodic, {a: ("constant", 0.25) for a in range(2)}), r, 1)
        assert np.array_equal(out.gather(root=None), expect.astype(dtype))


@pytest.mark.parametrize("pinned", list(streaming.LOOPS))
def test_stores_pins_a_loop_with_the_same_bits_whatever_the_mode(stores, pinned):
    """heat_step(stores=...) runs the named loop, under every mode and at sizes auto would
    leave plain; the bits are the plain loop's; chosen() says which loop a step runs."""
    plain = FTCS[2].compiled()
    named = {"plain": plain, "stream-pairs": streaming.FTCS2_STREAM.compiled(),
             "stream-rows": streaming.FTCS2_STREAM_ROWS.compiled()}
    u = np.random.default_rng(9).random((23, 41))
    args = (1, 22, 1, 40, 0.1, 0.2)
    ref = np.zeros_like(u)
    plain(u, ref, *args)
    for mode in ("auto", "on", "off"):
        stores(mode)
        assert ftcs_loop(u, np.zeros_like(u), args, stores=pinned) is named[pinned]
        assert streaming.chosen(u, u, args, pinned) == pinned
        assert streaming.chosen(u, u, args) == {"auto": "plain", "on": "stream-rows", "off": "plain"}[mode]
    with pympc.Decomposition((21, 39), comm=MPI.COMM_SELF) as d:
        a = pympc.DistArray(d)
        a.data[...] = u
        out = kernels.heat_step(a, a.empty_like(), (0.1, 0.2), stores=pinned)
        assert np.array_equal(bits(out.owned), bits(ref[1:22, 1:40]))
    strided = np.zeros((23, 82))[:, ::2]  # rows the intrinsics cannot address: plain, pinned or not
    assert ftcs_loop(u, strided, args, stores=pinned) is plain and streaming.chosen(u, strided, args, pinned) == "plain"


def test_chosen_is_none_while_auto_tries_then_names_the_kept_loop(stores):
    stores("auto")
    n = 1 + int(np.sqrt(streaming.AUTO_MIN_BYTES / 8))
    u = np.random.default_rng(4).random((n + 2, n + 2))
    out = np.zeros_like(u)
    args = (1, n + 1, 1, n + 1, 0.1, 0.2)
    assert streaming.chosen(u, out, args) is None  # not begun
    trial = streaming.TRIAL_WARMUP + 3 * streaming.TRIAL_STEPS * streaming.TRIAL_ROUNDS
    for _ in range(trial):
        assert streaming.chosen(u, out, args) is None  # still trying
        ftcs_loop(u, out, args)(u, out, *args)
    named = {"plain": FTCS[2].compiled(), "stream-pairs": streaming.FTCS2_STREAM.compiled(),
             "stream-rows": streaming.FTCS2_STREAM_ROWS.compiled()}
    name = streaming.chosen(u, out, args)
    assert ftcs_loop(u, out, args) is named[name]  # the loop it names is the one kept


@pytest.mark.parametrize("bad", ["fast", "on", "", 1])
def test_a_bad_stores_is_one_clear_error(bad):
    with pympc.Decomposition((8, 8), comm=MPI.COMM_SELF) as d:
        a = pympc.DistArray(d)
        with pytest.raises(pympc.InputError, match="stores must be one of 'plain', 'stream-pairs', 'stream-rows'"):
            kernels.heat_step(a, a.empty_like(), 0.1, stores=bad)
