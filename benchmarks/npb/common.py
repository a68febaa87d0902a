"""What pympc's NAS Parallel Benchmarks share: NPB's random-number generator, the command
line, the class tables' lookup, the timed region and NPB's report (docs/npb.md).

Every kernel is a program run under a launcher (``mpiexec -n 4 python ep.py --class S``).
It follows the NPB 3.4 MPI code (``NPB3.4-MPI/`` of NASA's release; the GitHub mirror
``mbdevpl/nas-parallel-benchmarks`` holds it): the same class sizes, iteration counts,
timed region, operation counts and verification rule. Constants taken from it name the
file and line they come from.

Exit status: 0 when the result verified, 1 when it did not (``UNSUCCESSFUL``), 3 for a
size that is no class (class ``U``: run, reported, not verified), 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from numba import njit

# NPB3.4-MPI/common/randdp.f:  r23 = 0.5d0**23, r46 = r23**2, t23 = 2.d0**23, t46 = t23**2
R23 = 0.5 ** 23
R46 = R23 * R23
T23 = 2.0 ** 23
T46 = T23 * T23

VERIFIED, UNVERIFIED, BAD_INPUT, CLASS_U = 0, 1, 2, 3
VERSION = "3.4 (pympc)"


@njit(cache=True)
def randlc(x, a):
    """Local. NPB's linear congruential generator (randdp.f ``randlc``): the next number
    of ``x_{k+1} = a x_k mod 2^46``, exact in double precision. Returns ``(r, x_{k+1})``
    with ``r = x_{k+1} / 2^46`` in (0, 1)."""
    t1 = R23 * a
    a1 = float(int(t1))
    a2 = a - T23 * a1
    t1 = R23 * x
    x1 = float(int(t1))
    x2 = x - T23 * x1
    t1 = a1 * x2 + a2 * x1
    t2 = float(int(R23 * t1))
    z = t1 - T23 * t2
    t3 = T23 * z + a2 * x2
    t4 = float(int(R46 * t3))
    x = t3 - T46 * t4
    return R46 * x, x


@njit(cache=True)
def vranlc(n, x, a, y):
    """Local. ``n`` numbers of :func:`randlc` into ``y[:n]`` (randdp.f ``vranlc``);
    returns the generator's new state."""
    for i in range(n):
        y[i], x = randlc(x, a)
    return x


@njit(cache=True)
def power(a, n):
    """Local. ``a**n mod 2^46`` in NPB's arithmetic: the multiplier that jumps the
    generator ``n`` steps ahead (the ``ipow46`` of CG/FT/IS, by squaring)."""
    result, q, m = 1.0, a, n
    while m > 0:
        if m % 2 == 1:
            _, result = randlc(result, q)
        _, q = randlc(q, q)
        m //= 2
    return result


@dataclass
class Problem:
    """Local. What a run does: its class letter (``U`` for a size that is no class), its
    parameters, and whether a reference exists to verify against."""

    cls: str
    params: dict

    @property
    def verifiable(self) -> bool:
        """Local. Whether the class has NPB's reference values."""
        return self.cls != "U"


class _Parser(argparse.ArgumentParser):
    """argparse whose error is one line and exit status 2 (:func:`fail`)."""

    def error(self, message):
        fail(f"{self.prog}: {message}")


def parser(name: str, sizes: dict) -> argparse.ArgumentParser:
    """Local. The command line every kernel takes: ``--class``, or its size parameters
    one by one (``sizes``: ``{parameter: help}``) for a run of class ``U``; and
    ``--perturb-seed`` (the verification must then fail)."""
    ap = _Parser(prog=f"{name.lower()}.py", allow_abbrev=False, description=f"NPB {name} on pympc (docs/npb.md)")
    ap.add_argument("--class", dest="cls", default=None, help="NPB class: S, W, A, B, C (default S)")
    for key, text in sizes.items():
        ap.add_argument(f"--{key.replace('_', '-')}", dest=key, type=int, default=None, help=text)
    ap.add_argument("--perturb-seed", action="store_true",
                    help="start the generator one step off NPB's seed: the verification must fail")
    return ap


def choose(name: str, classes: dict, args) -> Problem:
    """Local. The problem of the command line: a class's parameters, or the parameters
    given one by one (a class when they equal one, else ``U``). Raises SystemExit(2) on a
    bad class."""
    given = {k: getattr(args, k) for k in next(iter(classes.values())) if getattr(args, k, None) is not None}
    if args.cls is not None and given:
        fail(f"give --class or the size parameters ({', '.join(given)}), not both")
    if given:
        wanted = {**classes["S"], **given}  # what is not given is class S's
        for cls, params in classes.items():
            if params == wanted:
                return Problem(cls, dict(params))
        return Problem("U", wanted)
    cls = (args.cls or "S").upper()
    if cls not in classes:
        fail(f"{name} has no class {args.cls!r}: one of {', '.join(classes)}")
    return Problem(cls, dict(classes[cls]))


def fail(message: str) -> None:
    """Local. Bad input: one line on stderr (rank 0) and exit status 2 on every rank."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        print(f"npb: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(BAD_INPUT)


def is_power_of_two(n: int) -> bool:
    """Local. Whether ``n`` is 1, 2, 4, ..."""
    return n >= 1 and n & (n - 1) == 0


def require_power_of_two(name: str, size: int) -> None:
    """Local. CG, MG, FT and IS run on a power-of-two number of processes, as the
    original does."""
    if not is_power_of_two(size):
        fail(f"{name} runs on a power-of-two number of processes (1, 2, 4, ...), got {size}")


def start_seed(seed: float, a: float, perturb: bool) -> float:
    """Local. The generator's starting state: NPB's ``seed``, or (``--perturb-seed``) one
    step of multiplier ``a`` past it, so that the verification must fail."""
    return randlc(seed, a)[1] if perturb else seed


def rate(operations: float, seconds: float) -> float:
    """Local. Millions of operations per second (NPB's Mop/s), 0 for a zero time."""
    return 1.0e-6 * operations / seconds if seconds > 0 else 0.0


class Timer:
    """Collective. NPB's timed region: a barrier, then the wall time of the slowest rank
    (``MPI_Wtime`` maximum over ranks, as the original reports)."""

    def __init__(self, comm):
        self.comm = comm
        self.seconds = 0.0

    def __enter__(self):
        self.comm.Barrier()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        from mpi4py import MPI

        mine = time.perf_counter() - self.t0
        self.seconds = self.comm.allreduce(mine, op=MPI.MAX)


def check(label: str, computed: float, reference: float, epsilon: float) -> bool:
    """Local. One verified value: printed with its reference and relative error (rank 0
    prints); true when the error is within ``epsilon``."""
    err = abs((computed - reference) / reference) if reference != 0 else abs(computed)
    ok = bool(err <= epsilon)
    print(f" {label}: computed {computed:.17e}  reference {reference:.17e}  error {err:.3e}  "
          f"{'ok' if ok else 'FAILED'}", flush=True)
    return ok


def report(name: str, problem: Problem, size: tuple, niter: int, seconds: float, mops: float,
           optype: str, verified: bool, nprocs: int) -> int:
    """Local. NPB's report (print_results.f's layout) on this rank's stdout; returns the
    exit status. ``size``: ``(n1,)`` for EP (2^n1 pairs), CG, IS and FT's total, or the
    grid ``(n1, n2, n3)``."""
    lines = ["", "", f" {name} Benchmark Completed.", f" Class           = {problem.cls:>24}"]
    if len(size) == 1:
        n1 = f"{2.0 ** size[0]:.0f}" if name == "EP" else str(size[0])
        lines.append(f" Size            = {n1:>24}")
    else:
        lines.append(f" Size            =  {'':9}{size[0]:4d}x{size[1]:4d}x{size[2]:4d}")
    lines += [f" Iterations      = {niter:>24d}", f" Time in seconds = {seconds:>24.2f}",
              f" Total processes = {nprocs:>24d}", f" Active procs    = {nprocs:>24d}",
              f" Mop/s total     = {mops:>24.2f}", f" Mop/s/process   = {mops / nprocs:>24.2f}",
              f" Operation type  = {optype:>24}"]
    if problem.verifiable:
        lines.append(f" Verification    = {'':12}{'  SUCCESSFUL' if verified else 'UNSUCCESSFUL'}")
    else:
        lines.append(f" Verification    = {'':12}NOT PERFORMED (class U: no reference values)")
    lines += [f" Version         = {VERSION:>24}", f" Compile date    = {'numba (cached)':>24}", ""]
    print("\n".join(lines), flush=True)
    if not problem.verifiable:
        return CLASS_U
    return VERIFIED if verified else UNVERIFIED

