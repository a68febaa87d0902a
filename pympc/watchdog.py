"""The hang watchdog: a collective that not every rank joins ends the job with a report.

A collective called on only some ranks (``a.sum()`` inside ``if rank == 0:``,
``update_halo`` on one rank, ``bsp.sync()`` on one rank) would otherwise wait until the
launcher's time limit, with no hint. pympc's collectives are marked with :func:`watched`;
when a rank has waited in one longer than ``$PYMPC_HANG_TIMEOUT`` seconds (default 300;
``0`` turns the watchdog off), the job prints **one** report (which rank waits in which
call, and every rank's Python stack) and aborts with a non-zero status.

How: every rank runs one daemon thread, started at ``import pympc`` (never one per call).
A watched call only stores its name in a module variable and clears it on return. The
thread looks a few times per limit and times a call from when it first sees it; when one
is older than the limit it *fires*: it tells every other rank on a private duplicate of
the world communicator (mpi4py initialises MPI with ``MPI_THREAD_MULTIPLE``, so the thread
may call MPI while the main thread waits in a collective, which releases the GIL). Every
rank answers with its state and the stack of its waiting (or main) thread, taken with
``sys._current_frames()``; the lowest firing rank prints the report and calls
``MPI_Abort``. A rank that cannot answer (it has finished, or compiled code holds its GIL)
is listed as silent.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback

from mpi4py import MPI

from . import env as _env

ENV = "PYMPC_HANG_TIMEOUT"
DEFAULT_TIMEOUT = float(_env.VARIABLES[ENV].default)
_NOTICE, _STATE = 1, 2   # message tags on the private communicator


def parse_timeout(text) -> tuple[float, str | None]:
    """Local. ``(seconds, error)`` for a value of ``$PYMPC_HANG_TIMEOUT``: unset or empty
    gives the default, ``0`` turns the watchdog off; ``error`` is the message for a value
    that is not a finite number of seconds >= 0 (then ``seconds`` is 0)."""
    try:
        return _env.parse(ENV, text), None
    except _env.EnvError as e:
        return 0.0, str(e)


#: The limit in seconds (0: off), read once at import, the same on every rank; and
#: ``config_error``, the message for a value of ``$PYMPC_HANG_TIMEOUT`` that is not a
#: number of seconds >= 0 (else None), which the runtime raises as its InputError.
timeout, config_error = parse_timeout(_env.raw(ENV))
_world = MPI.COMM_WORLD
_size = _world.Get_size()
#: Whether watched calls are recorded: a limit is set and there is more than one rank (a
#: collective on one rank cannot wait for another).
active = timeout > 0 and _size > 1 and config_error is None

_current = None          # [name] of this rank's watched call (a new list per call), or None
_seen = None             # the call the thread saw last, and when it first saw it
_first = 0.0
_thread: threading.Thread | None = None
_comm = None
_peers: list = []        # (host, pid) of every rank: py-spy reads the stack of a silent one
_stop = threading.Event()
_clock = time.monotonic


def watched(name: str):
    """Local. Decorator marking a collective for the watchdog: while it runs, this rank
    is "waiting in ``name``". Nested watched calls count as the outermost one.

    When the watchdog is off (``PYMPC_HANG_TIMEOUT=0``, or one rank) the function is
    returned unchanged and costs nothing. On, the wrapper stores a one-element list on
    entry and clears it on return: no clock and no lock (the clock is a system call on
    some virtual machines), about 0.1-0.4 µs per call; the thread times the call from
    when it first sees it.
    """
    def decorate(fn):
        if not active:
            return fn

        @functools.wraps(fn)
        def call(*args, **kwargs):
            global _current
            if _current is not None:  # inside another watched call: that one is reported
                return fn(*args, **kwargs)
            _current = [name]  # a new object per call: the thread tells calls apart
            try:
                return fn(*args, **kwargs)
            finally:
                _current = None
        _WRAPPER_CODES.add(call.__code__)
        return call
    return decorate


# the wrappers' code (one code object): the waiting thread is the one running it
_WRAPPER_CODES: set = set()


# ---------------------------------------------------------------------------------------
# The thread
# ---------------------------------------------------------------------------------------
def start() -> None:
    """Collective. Start this rank's watchdog thread (the runtime does it at its import,
    after raising :data:`config_error` as :class:`pympc.InputError` on every rank if set;
    a second call does nothing)."""
    global _thread, _comm
    if not active or _thread is not None:
        return
    if MPI.Query_thread() != MPI.THREAD_MULTIPLE:
        # a thread may call MPI only under MPI_THREAD_MULTIPLE (mpi4py's default; a program
        # that set mpi4py.rc.thread_level lower gets no watchdog, and is told once)
        if _world.Get_rank() == 0:
            sys.stderr.write(f"pympc: hang watchdog off: MPI runs at thread level {MPI.Query_thread()}, "
                             f"not MPI_THREAD_MULTIPLE ({ENV} has no effect)\n")
        return
    # its own duplicate: nothing it sends can match a message of the program, of the
    # error handling or of another pympc layer
    _comm = _world.Dup()
    _comm.Set_errhandler(MPI.ERRORS_RETURN)  # a rank that has left must not kill the report
    _peers[:] = _comm.allgather((socket.gethostname(), os.getpid()))
    _thread = threading.Thread(target=_watch, name="pympc-hang-watchdog", daemon=True)
    _thread.start()
    # Python's atexit handlers run before mpi4py finalizes MPI: the thread is out of MPI
    # by then (and it was registered before any pympc object that closes at exit, so
    # those closes are still watched)
    atexit.register(_shutdown)


def _shutdown() -> None:
    _stop.set()
    if _thread is not None and _thread is not threading.current_thread():
        _thread.join(timeout=2.0)


def _poll_interval() -> float:
    # a few looks per limit, at most one a second: a sleeping thread costs nothing
    return min(1.0, max(0.02, timeout / 20))


def _watch() -> None:
    poll = _poll_interval()
    try:
        while not _stop.wait(poll):
            notices = _notices()
            if notices:
                _send_state(sorted(notices), _state())
                return _keep_answering(set(notices))
            if _overdue():
                return _fire()
    except Exception as e:  # never let the watchdog itself take the rank down
        sys.stderr.write(f"pympc: hang watchdog on rank {_world.Get_rank()} stopped: {e!r}\n")
        sys.stderr.flush()


def _overdue() -> bool:
    global _seen, _first
    cur = _current
    if cur is None:
        _seen = None
        return False
    if cur is not _seen:
        _seen, _first = cur, _clock()
        return False
    return _clock() - _first > timeout


def _waited() -> float:
    cur = _current
    return _clock() - _first if cur is not None and cur is _seen else 0.0


def _notices() -> dict:
    """Every notice that has arrived: firing rank -> (call, seconds waited)."""
    got = {}
    status = MPI.Status()
    while _comm.Iprobe(MPI.ANY_SOURCE, _NOTICE, status):
        src = status.Get_source()
        got[src] = _comm.recv(source=src, tag=_NOTICE)
    return got


def _waiting_frame():
    """The innermost frame of the thread in a watched call, else of the main thread."""
    frames = sys._current_frames()
    for frame in frames.values():
        f = frame
        while f is not None:
            if f.f_code in _WRAPPER_CODES:
                return frame
            f = f.f_back
    return frames.get(threading.main_thread().ident)


def _state() -> tuple:
    """This rank's answer: (rank, call or None, seconds waited, stack text)."""
    cur = _current
    frame = _waiting_frame()
    here = os.path.abspath(__file__)
    frames = [f for f in (traceback.extract_stack(frame) if frame is not None else [])
              if os.path.abspath(f.filename) != here]
    return (_world.Get_rank(), cur[0] if cur else None, _waited(),
            "".join(traceback.format_list(frames)))


def _send_state(dests, state) -> None:
    for r in dests:
        try:
            _comm.isend(state, r, _STATE)
        except MPI.Exception:  # a rank that has finished: the report says it was silent
            pass


def _keep_answering(answered: set) -> None:
    # a firing rank aborts the job soon; answer any other firing rank until then
    while not _stop.wait(0.05):
        fresh = [r for r in _notices() if r not in answered]
        if fresh:
            _send_state(fresh, _state())
            answered.update(fresh)


def _fire() -> None:
    me = _world.Get_rank()
    poll = _poll_interval()
    mine = _state()
    for r in range(_size):
        if r != me:
            try:
                _comm.isend(mine[1:3], r, _NOTICE)
            except MPI.Exception:
                pass
    firing, states = {me}, {me: mine}
    # Ranks whose limits ran out together fire together: each waits long enough to see
    # the others' notices, every rank sends its state to every firing rank it has heard
    # of, and the lowest firing rank reports.
    settle = _clock() + 3 * poll + 0.2
    deadline = settle + 2.0
    status = MPI.Status()
    while _clock() < deadline:
        fresh = [r for r in _notices() if r not in firing]
        if fresh:
            firing.update(fresh)
            _send_state(fresh, mine)
        while _comm.Iprobe(MPI.ANY_SOURCE, _STATE, status):
            s = _comm.recv(source=status.Get_source(), tag=_STATE)
            states[s[0]] = s
        if len(states) == _size and _clock() > settle:
            break
        time.sleep(0.01)
    if me != min(firing):
        # the lowest firing rank reports and aborts; should it be gone, report here
        time.sleep(10.0 + 2 * poll)
    _report(states)
    abort(_world, 1)


#: Seconds between the last words of an aborting rank and ``MPI_Abort``.
ABORT_DRAIN = 1.0


def abort(comm, code: int = 1) -> None:
    """Local. End the whole job with ``MPI_Abort(comm, code)`` after what this rank has
    written reaches the user.

    ``MPI_Abort`` can lose the lines written just before it: the launcher (MPICH's hydra,
    Open MPI's, Slurm's) kills every process as soon as it hears of the abort, before
    it has forwarded what sits in the ranks' output pipes (a report printed by the hang
    watchdog was lost this way on a loaded machine). So this flushes stdout and stderr,
    waits :data:`ABORT_DRAIN` seconds for the launcher to read them, then aborts.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed stream must not stop the abort
            pass
    time.sleep(ABORT_DRAIN)
    comm.Abort(code)


def _report(states) -> None:
    waiting = sorted((r, s[1], s[2]) for r, s in states.items() if s[1] is not None)
    head = "; ".join(f"rank {r} of {_size} has waited {w:.0f} s in {n}" for r, n, w in waiting)
    lines = [f"pympc: hang watchdog ({ENV}={timeout:g}): {head}. Every rank of a "
             f"communicator must call its collectives, in the same order (one inside "
             f"`if rank == 0:` waits forever). Each rank's Python stack follows; aborting "
             f"the job."]
    silent = _py_spy([r for r in range(_size) if r not in states])
    for r in range(_size):
        s = states.get(r)
        if s is None:
            lines.append(f"[rank {r}] no answer (the rank has finished, or compiled code "
                         f"holds its interpreter lock){silent[r][0]}")
            lines.extend(f"[rank {r}] {line}" for line in silent[r][1])
            continue
        _, name, waited, stack = s
        if name is None:
            lines.append(f"[rank {r}] not in a pympc collective (computing, or waiting "
                         f"outside pympc); its main thread:")
        else:
            lines.append(f"[rank {r}] waiting {waited:.0f} s in {name}:")
        lines.extend(f"[rank {r}] {line}" for line in stack.rstrip("\n").split("\n") if line)
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def _py_spy(ranks) -> dict:
    """rank -> (note, stack lines) for ranks that did not answer: py-spy (the test extra
    installs it) reads a process's Python stack from outside, without its GIL; only
    ranks on this host, at most 16, all at once, 15 s at most."""
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    here = socket.gethostname()
    out = {r: ("", []) for r in ranks}
    if not ranks:
        return out
    if exe is None:
        return {r: ("; install py-spy to see its stack", []) for r in ranks}
    local = [r for r in ranks if _peers and _peers[r][0] == here][:16]
    for r in ranks:
        if r not in local:
            out[r] = (f"; on host {_peers[r][0]}" if _peers else "", [])
    procs = {}
    for r in local:
        try:
            procs[r] = subprocess.Popen([exe, "dump", "--nonblocking", "--pid", str(_peers[r][1])],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as e:
            out[r] = (f"; py-spy failed: {e}", [])
    end = _clock() + 15.0
    for r, p in procs.items():
        try:
            text = p.communicate(timeout=max(0.1, end - _clock()))[0]
        except subprocess.TimeoutExpired:
            p.kill()
            out[r] = ("; py-spy took too long", [])
            continue
        lines = [line for line in text.splitlines() if line.strip()]
        out[r] = ("; py-spy dump of its process:" if p.returncode == 0 else
                  "; py-spy could not read it:", lines[:60])
    return out
