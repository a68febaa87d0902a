"""NPB EP (Embarrassingly Parallel) on pympc: Gaussian pairs from NPB's generator.

Run it under a launcher, on any number of processes::

    mpiexec.mpich -n 4 .venv/bin/python benchmarks/npb/ep.py --class S
    mpiexec.mpich -n 3 .venv/bin/python benchmarks/npb/ep.py --m 21     # class U

EP draws 2^(M+1) uniform numbers from NPB's linear congruential generator, turns pairs of
them into Gaussian deviates by the acceptance-rejection (Marsaglia polar) method, and
sums the deviates (sx, sy) and counts them in ten square annuli (q). It follows
NPB3.4-MPI/EP/ep.f: the work is 2^(M-MK) batches of 2^MK pairs; every batch's first seed
is found by jumping the generator ahead, so a rank needs nothing from the others until one
Allreduce at the end. What it shows of pympc: a numba kernel (``@njit(cache=True)``)
doing all the work, pympc.WORLD's buffer-based Allreduce, and output from rank 0 only.

Verification: two schemes, chosen by ``--scheme`` (the report says which verified).

``--scheme 3.4.2`` (the default, the issue's): NPB 3.4.2 and later sum the *absolute* values
of the accepted deviates, sx = sum |X| and sy = sum |Y| (ep.f90:227-232: the pairs that pass
the unit-disc test, the same pairs the annuli count), and check sx, sy and the pair count gc
against new references, each with ``|(v - ref) / ref| <= 1e-8`` (a NaN error fails;
verify.f90:17, 64-78). These references come from a THIRD-PARTY public copy of NPB 3.4.3
(its README:1, 41-42: "New verification scheme for EP" came in 3.4.2): GitHub repository
``mahyarsamani/workloads``, commit 1a6c354804d4dc34d2953ef09f70b1114ad81408 (its first
commit, "adding NPB3.4-MPI"), files ``NPB3.4-MPI/EP/verify.f90`` and ``NPB3.4-MPI/EP/ep.f90``.
NASA's NPB 3.4.2+ release is the authority; the mirror (mbdevpl/nas-parallel-benchmarks)
holds 3.4.0, which has no such values.

``--scheme 3.4``: the mirror's NPB3.4-MPI tree (its ``setparams.c:48`` says ``VERSION
"3.4"``, i.e. NPB 3.4.0): ep.f checks the *signed* sums sx and sy against reference values
chosen by M (ep.f:275-301) with the same relative error, epsilon = 1e-8 (ep.f:75,
ep.f:302-309); it does not check gc.

Both sets of sums come from the one compiled pass (four running sums instead of two) and
travel in the one Allreduce; the scheme only chooses which are verified and printed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402
from numba import njit  # noqa: E402

import common  # noqa: E402
import pympc  # noqa: E402  (a launched rank starts pympc's runtime here, on every rank)

# M, the log2 of the number of pairs: NPB3.4-MPI/sys/setparams.c:719-723
CLASSES = {
    "S": {"m": 24},  # setparams.c:719
    "W": {"m": 25},  # setparams.c:720
    "A": {"m": 28},  # setparams.c:721
    "B": {"m": 30},  # setparams.c:722
    "C": {"m": 32},  # setparams.c:723
}

MK = 16                # log2 of the pairs per batch: NPB3.4-MPI/EP/ep_data.f:25
NK = 2 ** MK           # pairs per batch: ep_data.f:25-26
NQ = 10                # annuli counted: ep_data.f:26
A = 1220703125.0       # the generator's multiplier 5^13: ep_data.f:29
S = 271828183.0        # the seed: ep_data.f:29
EPSILON = 1.0e-8       # verification's relative tolerance: ep.f:75

# The 3.4.0 scheme's reference sums (signed sx, sy) by M: the mirror's ep.f:275-289.
# ep.f:290-298 has D, E and F (M = 36, 40, 44) too: this program stops at C, so --m 36 runs
# as class U.
REFERENCE_SIGNED = {
    24: (-3.247834652034740e+3, -6.958407078382297e+3),   # S: ep.f:276-277
    25: (-2.863319731645753e+3, -6.320053679109499e+3),   # W: ep.f:279-280
    28: (-4.295875165629892e+3, -1.580732573678431e+4),   # A: ep.f:282-283
    30: (4.033815542441498e+4, -2.660669192809235e+4),    # B: ep.f:285-286
    32: (4.764367927995374e+4, -8.084072988043731e+4),    # C: ep.f:288-289
}

# The 3.4.2+ scheme's references (sum |X|, sum |Y|, gc) by M. THIRD-PARTY SOURCE, not the
# mirror: github.com/mahyarsamani/workloads at commit 1a6c354804d4dc34d2953ef09f70b1114ad81408,
# NPB3.4-MPI/EP/verify.f90 (a public copy of NASA's NPB 3.4.3; NASA's release is the
# authority). Its lines 45-59 have D, E and F as well; this program stops at C.
REFERENCE_ABS = {
    24: (1.051299420395306e+07, 1.051517131857535e+07, 13176389.0),     # S: verify.f90:22-24
    25: (2.102505525182392e+07, 2.103162209578822e+07, 26354769.0),     # W: verify.f90:27-29
    28: (1.682235632304711e+08, 1.682195123368299e+08, 210832767.0),    # A: verify.f90:32-34
    30: (6.728927543423024e+08, 6.728951822504275e+08, 843345606.0),    # B: verify.f90:37-39
    32: (2.691444083862931e+09, 2.691519118724585e+09, 3373275903.0),   # C: verify.f90:42-44
}
EPSILON_ABS = 1.0e-8   # the 3.4.2+ tolerance: verify.f90:17 (same third-party copy)

#: --scheme's choices: the line each prints before the report
SCHEMES = {
    "3.4.2": " Verification scheme: NPB 3.4.2+ (sums of |X|, |Y| and the pair count)",
    "3.4": " Verification scheme: NPB 3.4.0 (signed sums of X and Y)",
}

MASK46 = np.uint64(2 ** 46 - 1)   # x mod 2^46 as a bit mask

#: the largest M this program takes: batch numbers and counts stay exact in int64/float64
MAX_M = 50


@njit(cache=True)
def gaussian_batches(seed, first, count, sums, q):
    """Local. Batches ``first .. first+count-1`` of EP (ep.f's loop 150): for each, the
    batch's starting seed ``seed * A^(2*NK*k) mod 2^46`` (the generator jumped ahead, so
    no rank depends on another), its 2*NK uniforms, and the accepted Gaussian pairs added
    into ``sums`` (X, Y, |X|, |Y|: both schemes' sums) and the annulus counts ``q``."""
    an = common.power(A, 2 * NK)        # one batch's jump: A^(2 NK), ep.f:173-179
    a = np.uint64(A)
    sx, sy, ax, ay = sums[0], sums[1], sums[2], sums[3]
    for k in range(first, first + count):
        # seed * an^k: power() squares its way to an^k as ep.f:206-212 does in place
        _, start = common.randlc(seed, common.power(an, k))
        x = np.uint64(start)
        # ep.f:218 fills an array with the batch's 2*NK uniforms, then reads them in pairs;
        # here each pair is drawn where it is used: the same numbers in the same order.
        # The step x <- a*x mod 2^46 in 64-bit integers, as NPB's default generator
        # (randi8.f:31,72; make.def.template:157-160): the product wraps modulo 2^64, a
        # multiple of 2^46, so the 46 bits the mask keeps are exact. Unsigned, because
        # numba marks signed products "no signed wrap" (nsw), and a wrapping one would
        # then be undefined. The numbers are those of randdp's double-precision steps
        # (common.randlc), 4-5x faster: randdp's chain of float<->int conversions is
        # what limited this loop (class S, one rank: 0.9 s with common.vranlc, 0.2 s).
        for _ in range(NK):
            x = (x * a) & MASK46
            x1 = 2.0 * (common.R46 * x) - 1.0
            x = (x * a) & MASK46
            x2 = 2.0 * (common.R46 * x) - 1.0
            t1 = x1 * x1 + x2 * x2
            if t1 <= 1.0:               # inside the unit disc: accept (Marsaglia polar)
                t2 = np.sqrt(-2.0 * np.log(t1) / t1)
                t3 = x1 * t2
                t4 = x2 * t2
                a3 = abs(t3)
                a4 = abs(t4)
                # the annulus: Fortran's real-to-integer assignment truncates, as int() does
                q[int(max(a3, a4))] += 1.0
                # 3.4.0 sums the signed deviates (ep.f:237-238); 3.4.2+ their absolute
                # values (third-party copy's ep.f90:227-228, 231-232). Both, so one pass
                # serves either scheme: two more additions a pair (class A, one rank: 3.25 s
                # before, 3.38 s after, within this machine's noise; summing only the
                # scheme's pair, by a select, measured no faster).
                sx += t3
                sy += t4
                ax += a3
                ay += a4
    sums[0], sums[1], sums[2], sums[3] = sx, sy, ax, ay


def my_batches(nn: int, rank: int, size: int) -> tuple:
    """Local. This rank's batches as ``(first, count)``: ``nn // size`` each, and one more
    on the first ``nn % size`` ranks (ep.f:130-137 and the offsets of ep.f:193-197)."""
    base, extra = divmod(nn, size)
    if rank < extra:
        return rank * (base + 1), base + 1
    return extra * (base + 1) + (rank - extra) * base, base


def run(comm, m: int, seed: float) -> tuple:
    """Collective. EP's timed region (ep.f:165-270): every rank's batches, then the sums
    and counts summed over ranks. Returns ``(sums, q, gc, seconds)``, the same on every
    rank: ``sums`` holds the sums of X, Y, |X| and |Y|."""
    first, count = my_batches(2 ** (m - MK), comm.Get_rank(), comm.Get_size())
    part = np.zeros(4 + NQ)             # [X, Y, |X|, |Y|, q(0:9)]: one buffer, one Allreduce
    total = np.empty_like(part)
    with common.Timer(comm) as timer:
        sums, q = part[:4], part[4:]
        gaussian_batches(seed, first, count, sums, q)
        # ep.f:247-254 reduces sx, sy and q in three calls; one call on the packed buffer
        # sums each element alike and saves two latencies.
        comm.Allreduce(part, total, op=MPI.SUM)
        gc = float(total[4:].sum())     # the number of Gaussian pairs: ep.f:261-263
    return total[:4], total[4:], gc, timer.seconds


def print_results(m: int, sx: float, sy: float, q, gc: float, seconds: float) -> None:
    """Local. EP's own results block (ep.f:313-316): time, N, pairs, sums and counts."""
    print("EP Benchmark Results:\n")
    print(f"CPU Time = {seconds:10.4f}\nN = 2^{m:5d}\nNo. Gaussian Pairs = {gc:15.0f}")
    print(f"Sums = {sx:25.15e}{sy:25.15e}\nCounts:")
    for i, count in enumerate(q):
        print(f"{i:3d}{count:15.0f}")


def verify_signed(m: int, sx: float, sy: float) -> bool:
    """Local. The 3.4.0 scheme (the mirror's ep.f:272-310): the signed sums sx and sy each
    within a relative error of EPSILON of the reference for this M; no reference, no
    verification. Prints both."""
    if m not in REFERENCE_SIGNED:
        return False
    sx_ref, sy_ref = REFERENCE_SIGNED[m]
    ok_x = common.check("sx", sx, sx_ref, EPSILON)
    ok_y = common.check("sy", sy, sy_ref, EPSILON)
    return ok_x and ok_y


def verify_abs(m: int, sx: float, sy: float, gc: float) -> bool:
    """Local. The 3.4.2+ scheme (third-party copy's verify.f90:19-78): sx = sum |X|,
    sy = sum |Y| and the pair count gc each within a relative error of EPSILON_ABS of the
    reference for this M; no reference, no verification. Prints all three (verify.f90
    checks gc only once sx and sy pass; printing all three shows more, decides the same)."""
    if m not in REFERENCE_ABS:
        return False
    sx_ref, sy_ref, gc_ref = REFERENCE_ABS[m]
    ok_x = common.check("sx = sum |X|", sx, sx_ref, EPSILON_ABS)
    ok_y = common.check("sy = sum |Y|", sy, sy_ref, EPSILON_ABS)
    ok_gc = common.check("gc", gc, gc_ref, EPSILON_ABS)
    return ok_x and ok_y and ok_gc


def main(argv=None) -> int:
    """Collective. Parse the command line, run EP, print NPB's report on rank 0; every
    rank returns the same exit status (0 verified, 1 not, 2 bad input, 3 class U)."""
    comm = pympc.WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    sizes = {"m": "log2 of the number of Gaussian pairs (a size that is no class: class U)"}
    ap = common.parser("EP", sizes)
    ap.add_argument("--scheme", choices=list(SCHEMES), default="3.4.2",
                    help="verification: 3.4.2 (default; NPB 3.4.2+: sums of |X|, |Y| and the "
                         "pair count) or 3.4 (NPB 3.4.0: signed sums)")
    args = ap.parse_args(argv)
    problem = common.choose("EP", CLASSES, args)
    m = problem.params["m"]
    if not MK <= m <= MAX_M:
        common.fail(f"EP needs {MK} <= m <= {MAX_M} (batches of 2^{MK} pairs), got {m}")
    if 2 ** (m - MK) < size:            # a rank without a batch: ep.f:139-145 aborts
        common.fail(f"too many processes: {size} for 2^{m - MK} batches")
    seed = common.start_seed(S, A, args.perturb_seed)

    # Load (or compile) the kernel and touch its functions before the clock starts, as
    # ep.f:152-157 calls its functions once to keep set-up out of the timed region.
    gaussian_batches(seed, 0, 0, np.zeros(4), np.zeros(NQ))
    if rank == 0:
        print(f"\n NAS Parallel Benchmarks 3.4 -- EP Benchmark (pympc)\n\n"
              f" Number of random numbers generated: {2.0 ** (m + 1):15.0f}"
              f"  (class {problem.cls})\n"
              f" Total number of processes:          {size:15d}\n", flush=True)

    sums, q, gc, seconds = run(comm, m, seed)
    status = None
    if rank == 0:
        # the scheme's own sums are the ones EP prints ("Sums =", ep.f:313-316)
        sx, sy = (sums[2], sums[3]) if args.scheme == "3.4.2" else (sums[0], sums[1])
        print_results(m, sx, sy, q, gc, seconds)
        print(SCHEMES[args.scheme], flush=True)
        if args.scheme == "3.4.2":
            verified = problem.verifiable and verify_abs(m, sx, sy, gc)
        else:
            verified = problem.verifiable and verify_signed(m, sx, sy)
        mops = common.rate(2.0 ** (m + 1), seconds)     # ep.f:311
        status = common.report("EP", problem, (m + 1,), 0, seconds, mops,
                               "Random numbers generated", verified, size)
    return comm.bcast(status, root=0)


if __name__ == "__main__":
    sys.exit(main())
