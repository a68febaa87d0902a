"""NPB FT on pympc: a 3D partial differential equation solved by forward and inverse
3D FFTs, the field distributed in slabs and transposed by an all-to-all (docs/npb.md).

Run it under a launcher:  ``mpiexec -n 4 python benchmarks/npb/ft.py --class S``

It follows ``NPB3.4-MPI/FT/ft.f`` (cited below as ``ft.f:LINE``): the complex field
``u`` of ``nx * ny * nz`` points is filled from NPB's generator, transformed forward once,
then every iteration multiplied in Fourier space by ``exp(-4 alpha pi^2 |k|^2)`` (one more
time step each), transformed back and sampled at 1024 points (the checksum). The 1024
complex checksums are verified against ft.f's reference values.

Data distribution: ft.f's "1D layout" (ft.f:495-506, 566-587) on ``P`` ranks:

* layout 1, for the x and y transforms: every rank owns ``nz / P`` whole z-planes
  (here a C array ``(nz/P, ny, nx)``, which is Fortran's ``u(nx, ny, nz/P)``);
* layout 3, for the z transforms: every rank owns ``ny / P`` whole y-rows of every plane.
  ft.f stores it as ``(nz, nx, ny/P)`` (z fastest); this program keeps z slowest,
  ``(nz, ny/P, nx)``, so the block a rank receives from rank ``p`` (its z-planes
  ``p nz/P ...``) lands in place, and the z transform runs on axis 0. The owners are
  ft.f's; only the order inside a rank's memory differs.

Between them one ``MPI_Alltoall`` on the world communicator (pympc.WORLD), as in
ft.f:1359. The 1D FFTs are numpy.fft's (pocketfft), not ft.f's Stockham radix-2 FFT; they
agree to rounding. ft.f's transform with ``is = +1`` (its "forward") has the kernel
``exp(+2 pi i jk/n)`` and neither direction is scaled (ft.f:1056-1061, 1167-1171): here
the forward one is ``numpy.fft.ifft(norm="forward")`` (unscaled) and the inverse is
``numpy.fft.fft`` (unscaled); the checksum divides by ``nx ny nz`` as ft.f:1756 does.

At one rank ft.f uses its 0D layout (no transpose): here, too, no all-to-all is made.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402
from numba import njit  # noqa: E402

import common  # noqa: E402
import pympc  # noqa: E402

# Class sizes and iteration counts: NPB3.4-MPI/sys/setparams.c:687-691.
CLASSES = {
    "S": {"nx": 64, "ny": 64, "nz": 64, "niter": 6},      # setparams.c:687
    "W": {"nx": 128, "ny": 128, "nz": 32, "niter": 6},    # setparams.c:688
    "A": {"nx": 256, "ny": 256, "nz": 128, "niter": 6},   # setparams.c:689
    "B": {"nx": 512, "ny": 256, "nz": 256, "niter": 20},  # setparams.c:690
    "C": {"nx": 512, "ny": 512, "nz": 512, "niter": 20},  # setparams.c:691
}

# The generator's seed and multiplier, and the diffusion constant: NPB3.4-MPI/FT/ft_data.f:22-23.
SEED = 314159265.0
A = 1220703125.0
PI = 3.141592653589793238
ALPHA = 1.0e-6

# Verification: every iteration's checksum within a relative error (the modulus of the
# complex difference over the reference's) of 1e-12: ft.f:1895, 2076-2079.
EPSILON = 1.0e-12

# Reference checksums per class and iteration: ft.f:1902-1907 (S), 1913-1918 (W),
# 1924-1929 (A), 1935-1954 (B), 1960-1979 (C).
REFERENCE = {
    "S": [5.546087004964e+02 + 4.845363331978e+02j, 5.546385409189e+02 + 4.865304269511e+02j,
          5.546148406171e+02 + 4.883910722336e+02j, 5.545423607415e+02 + 4.901273169046e+02j,
          5.544255039624e+02 + 4.917475857993e+02j, 5.542683411902e+02 + 4.932597244941e+02j],
    "W": [5.673612178944e+02 + 5.293246849175e+02j, 5.631436885271e+02 + 5.282149986629e+02j,
          5.594024089970e+02 + 5.270996558037e+02j, 5.560698047020e+02 + 5.260027904925e+02j,
          5.530898991250e+02 + 5.249400845633e+02j, 5.504159734538e+02 + 5.239212247086e+02j],
    "A": [5.046735008193e+02 + 5.114047905510e+02j, 5.059412319734e+02 + 5.098809666433e+02j,
          5.069376896287e+02 + 5.098144042213e+02j, 5.077892868474e+02 + 5.101336130759e+02j,
          5.085233095391e+02 + 5.104914655194e+02j, 5.091487099959e+02 + 5.107917842803e+02j],
    "B": [5.177643571579e+02 + 5.077803458597e+02j, 5.154521291263e+02 + 5.088249431599e+02j,
          5.146409228649e+02 + 5.096208912659e+02j, 5.142378756213e+02 + 5.101023387619e+02j,
          5.139626667737e+02 + 5.103976610617e+02j, 5.137423460082e+02 + 5.105948019802e+02j,
          5.135547056878e+02 + 5.107404165783e+02j, 5.133910925466e+02 + 5.108576573661e+02j,
          5.132470705390e+02 + 5.109577278523e+02j, 5.131197729984e+02 + 5.110460304483e+02j,
          5.130070319283e+02 + 5.111252433800e+02j, 5.129070537032e+02 + 5.111968077718e+02j,
          5.128182883502e+02 + 5.112616233064e+02j, 5.127393733383e+02 + 5.113203605551e+02j,
          5.126691062020e+02 + 5.113735928093e+02j, 5.126064276004e+02 + 5.114218460548e+02j,
          5.125504076570e+02 + 5.114656139760e+02j, 5.125002331720e+02 + 5.115053595966e+02j,
          5.124551951846e+02 + 5.115415130407e+02j, 5.124146770029e+02 + 5.115744692211e+02j],
    "C": [5.195078707457e+02 + 5.149019699238e+02j, 5.155422171134e+02 + 5.127578201997e+02j,
          5.144678022222e+02 + 5.122251847514e+02j, 5.140150594328e+02 + 5.121090289018e+02j,
          5.137550426810e+02 + 5.121143685824e+02j, 5.135811056728e+02 + 5.121496764568e+02j,
          5.134569343165e+02 + 5.121870921893e+02j, 5.133651975661e+02 + 5.122193250322e+02j,
          5.132955192805e+02 + 5.122454735794e+02j, 5.132410471738e+02 + 5.122663649603e+02j,
          5.131971141679e+02 + 5.122830879827e+02j, 5.131605205716e+02 + 5.122965869718e+02j,
          5.131290734194e+02 + 5.123075927445e+02j, 5.131012720314e+02 + 5.123166486553e+02j,
          5.130760908195e+02 + 5.123241541685e+02j, 5.130528295923e+02 + 5.123304037599e+02j,
          5.130310107773e+02 + 5.123356167976e+02j, 5.130103090133e+02 + 5.123399592211e+02j,
          5.129905029333e+02 + 5.123435588985e+02j, 5.129714421109e+02 + 5.123465164008e+02j],
}

SIZES = {"nx": "grid points along x (a power of two; class U)",
         "ny": "grid points along y (a power of two; class U)",
         "nz": "grid points along z (a power of two; class U)",
         "niter": "time steps (class U)"}


class Slabs:
    """Local. The 1D layout of an ``nx * ny * nz`` grid on ``comm``: which z-planes
    (layout 1) and which y-rows (layout 3) this rank owns (ft.f:566-587), and the three
    complex fields and the real exponential factors ft.f allocates (ft_data.f:193-197)."""

    def __init__(self, nx, ny, nz, comm):
        self.nx, self.ny, self.nz, self.comm = nx, ny, nz, comm
        self.np, self.me = comm.Get_size(), comm.Get_rank()
        self.nzl, self.nyl = nz // self.np, ny // self.np
        self.z0, self.y0 = self.me * self.nzl, self.me * self.nyl
        self.ntotal = float(nx) * ny * nz            # ft_data.f:15, a float as ft.f keeps it
        count = nx * ny * self.nzl                   # the same number of points in both layouts
        # u0: the transformed initial condition, evolved in place (layout 3);
        # u1: the work field, layout 3 for the z transform, then layout 1;
        # u2: the all-to-all's receive (and send) buffer. No other field is allocated.
        self.u0, self.u1 = np.empty(count, np.complex128), np.empty(count, np.complex128)
        # one rank makes no all-to-all (ft.f's 0D layout): no buffer for it
        self.u2 = np.empty(count if self.np > 1 else 0, np.complex128)
        self.twiddle = np.empty(count, np.float64)

    def layout1(self, flat):
        """Local. ``flat`` seen as this rank's z-planes: ``(nz/P, ny, nx)``."""
        return flat.reshape(self.nzl, self.ny, self.nx)

    def layout3(self, flat):
        """Local. ``flat`` seen as this rank's y-rows of every plane: ``(nz, ny/P, nx)``."""
        return flat.reshape(self.nz, self.nyl, self.nx)


def initial_conditions(s: Slabs, seed: float) -> None:
    """Local. Fill ``u1`` (layout 1) with ft.f's initial field: the generator's numbers
    taken in pairs (real, imaginary) in Fortran order, x fastest, then y, then z; each
    rank starts at its first plane of the one global sequence (ft.f:250-265)."""
    nx, ny = s.nx, s.ny
    plane = 2 * nx * ny                              # generator numbers per z-plane
    # jump over the planes of the ranks before this one (ft.f:254-255); 1.0 when z0 = 0
    _, start = common.randlc(seed, common.power(A, plane * s.z0))
    step = common.power(A, plane)                    # one plane ahead (ft.f:256)
    reals = s.u1.view(np.float64).reshape(s.nzl, plane)
    for k in range(s.nzl):
        common.vranlc(plane, start, A, reals[k])     # start itself is not advanced (ft.f:262-263)
        _, start = common.randlc(start, step)


@njit(cache=True)
def _exponentials(twiddle, nx, ny, nz, y0, ap):
    # twiddle: this rank's layout-3 block (nz, ny/P, nx), rows y0 ... of the global grid
    for k in range(nz):
        kk = (k + nz // 2) % nz - nz // 2            # ft.f:673 "mod(i-1+n/2, n) - n/2"
        for j in range(twiddle.shape[1]):
            jj = (j + y0 + ny // 2) % ny - ny // 2
            for i in range(nx):
                ii = (i + nx // 2) % nx - nx // 2
                # the squares add as integers, then one conversion: ft.f's dfloat(kk*kk+ij2)
                twiddle[k, j, i] = np.exp(ap * float(kk * kk + jj * jj + ii * ii))


def compute_twiddle(s: Slabs) -> None:
    """Local. The exponential factors of one time step on this rank's layout-3 block:
    ``exp(-4 alpha pi^2 (kbar^2 + jbar^2 + ibar^2))`` with the wave numbers of indices
    ``0, 1, ..., n/2-1, -n/2, ..., -1`` (ft.f:676-703); compiled (numba), one pass."""
    ap = -4.0 * ALPHA * PI * PI                      # ft.f:676, the same order of operations
    _exponentials(s.layout3(s.twiddle), s.nx, s.ny, s.nz, s.y0, ap)


def fft_forward(s: Slabs) -> None:
    """Collective. ft.f's ``fft(1, u1, u0)`` (ft.f:824-833): the x and y transforms of
    ``u1`` in layout 1, the transpose (ft.f:1246-1264), the z transform; the result in
    ``u0`` (layout 3). ``u1`` is overwritten, ``u2`` is the send buffer."""
    p, nzl, nyl, nx = s.np, s.nzl, s.nyl, s.nx
    u1 = s.layout1(s.u1)
    np.fft.ifftn(u1, axes=(1, 2), norm="forward", out=u1)   # +i kernel, unscaled
    if p == 1:
        s.u0[...] = s.u1          # one rank: the layouts coincide (ft.f's 0D layout)
    else:
        # for rank q, my planes' y-rows q*nyl ... (q+1)*nyl-1: one block per rank, in order
        send = s.u2.reshape(p, nzl, nyl, nx)
        send[...] = u1.reshape(nzl, p, nyl, nx).transpose(1, 0, 2, 3)
        # rank q sends planes q*nzl ...: they land as layout 3 with z slowest, in place
        s.comm.Alltoall(send, s.u0)                          # ft.f:1359
    u0 = s.layout3(s.u0)
    np.fft.ifft(u0, axis=0, norm="forward", out=u0)


def fft_inverse(s: Slabs) -> None:
    """Collective. ft.f's ``fft(-1, u1, u2)`` (ft.f:856-865): the z transform of ``u1`` in
    layout 3, the transpose (ft.f:1220-1240), the y and x transforms; the result in ``u1``
    (layout 1), where the checksum reads it. ``u2`` is the receive buffer."""
    p, nzl, nyl, nx = s.np, s.nzl, s.nyl, s.nx
    u1 = s.layout3(s.u1)
    np.fft.fft(u1, axis=0, out=u1)                           # -i kernel, unscaled
    if p > 1:
        # layout 3 with z slowest is already one contiguous block per destination rank
        recv = s.u2.reshape(p, nzl, nyl, nx)
        s.comm.Alltoall(s.u1, recv)                          # ft.f:1359
        # rank q's block holds my planes' y-rows q*nyl ...: put them back in y order
        s.layout1(s.u1).reshape(nzl, p, nyl, nx)[...] = recv.transpose(1, 0, 2, 3)
    out = s.layout1(s.u1)
    np.fft.fftn(out, axes=(1, 2), out=out)


@njit(cache=True)
def evolve(u0, u1, twiddle):
    """Local. One time step in Fourier space (ft.f:203-210): ``u0 *= twiddle`` and a
    copy into ``u1``, which the inverse transform then overwrites; ``u0`` carries the
    accumulated steps to the next iteration. One pass over the three arrays."""
    for i in range(u0.size):
        t = twiddle[i]
        v = complex(u0[i].real * t, u0[i].imag * t)
        u0[i] = v
        u1[i] = v


@njit(cache=True)
def local_checksum(u, nx, ny, nz, z0):
    """Local. The sum of the 1024 sampled points (ft.f:1744-1755) that lie in this
    rank's planes ``z0 ...`` of ``u`` (layout 1: ``(nz/P, ny, nx)``)."""
    chk = 0j
    for j in range(1, 1025):
        q, r, s = j % nx, (3 * j) % ny, (5 * j) % nz
        if z0 <= s < z0 + u.shape[0]:
            chk += u[s - z0, r, q]
    return chk


def checksum(s: Slabs) -> complex:
    """Collective. ft.f's checksum (ft.f:1744-1760): each rank's share divided by the
    number of points, summed over the ranks (an ``Allreduce``: every rank gets it, so
    every rank reaches the same verdict)."""
    mine = local_checksum(s.layout1(s.u1), s.nx, s.ny, s.nz, s.z0) / s.ntotal
    total = np.array([mine], dtype=np.complex128)
    s.comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
    return complex(total[0])


def setup_field(s: Slabs, seed: float) -> None:
    """Local. ft.f's per-run setup (ft.f:133-136): the exponential factors and the
    initial field (ft.f's ``fft_init`` has no counterpart: numpy plans its own FFTs)."""
    compute_twiddle(s)
    initial_conditions(s, seed)


def verify(cls: str, sums: list) -> bool:
    """Local. ft.f's rule (ft.f:1895, 2076-2079): every iteration's checksum within a
    relative error of 1e-12, the error being the modulus of the complex ``(sum - ref) /
    ref`` (a NaN fails). Prints one line per iteration, as common.check does for a real
    value (rank 0 calls it)."""
    ok_all = True
    for i, (c, r) in enumerate(zip(sums, REFERENCE[cls])):
        err = abs((c - r) / r)
        ok = bool(err <= EPSILON)                    # False for a NaN, as ft.f:2078
        ok_all &= ok
        print(f" checksum {i + 1:2d}: computed ({c.real:.12e}, {c.imag:.12e})  reference "
              f"({r.real:.12e}, {r.imag:.12e})  error {err:.3e}  {'ok' if ok else 'FAILED'}",
              flush=True)
    return ok_all and len(sums) == len(REFERENCE[cls])


def refuse_bad_input(nx, ny, nz, niter, nprocs) -> None:
    """Local. What ft.f refuses or cannot do, refused with exit status 2 on every rank:
    a process count that is no power of two (common.require_power_of_two), grid sizes
    its radix-2 FFT cannot take (ft.f:1100), and process counts beyond this program's
    1D layout (ft.f switches to its 2D layout when P > nz, ft.f:430-438; this program
    has none) or beyond ny (the y-rows of layout 3, ft.f:584-585)."""
    common.require_power_of_two("FT", nprocs)
    for name, n in (("nx", nx), ("ny", ny), ("nz", nz)):
        if n < 2 or not common.is_power_of_two(n):
            common.fail(f"FT's radix-2 FFT needs {name} a power of two >= 2, got {n}")
    if niter < 1:
        common.fail(f"FT needs niter >= 1, got {niter}")
    if nprocs > nz or nprocs > ny:
        common.fail(f"FT's 1D (slab) layout needs at most nz = {nz} and ny = {ny} processes, "
                    f"got {nprocs} (ft.f's 2D layout for more is not implemented)")


def mops(ntotal: float, niter: int, seconds: float) -> float:
    """Local. ft.f's operation count over the time, in millions per second
    (ft.f:165-168): ``N (14.8157 + 7.19641 ln N + (5.23518 + 7.21113 ln N) niter)``."""
    logn = np.log(ntotal)
    return common.rate(ntotal * (14.8157 + 7.19641 * logn + (5.23518 + 7.21113 * logn) * niter), seconds)


def run(s: Slabs, seed: float, niter: int, me: int) -> list:
    """Collective. The timed work of ft.f (ft.f:133-157): setup, the forward transform,
    then per iteration a time step, the inverse transform and the checksum (printed by
    rank 0 as ft.f:1763 does). Returns the checksums."""
    setup_field(s, seed)
    fft_forward(s)
    sums = []
    for it in range(1, niter + 1):
        evolve(s.u0, s.u1, s.twiddle)
        fft_inverse(s)
        sums.append(checksum(s))
        if me == 0:
            print(f" T = {it:4d}     Checksum = {sums[-1].real:22.12e}{sums[-1].imag:22.12e}", flush=True)
    return sums


def main(argv=None) -> int:
    """Collective. The FT program: parse, refuse what ft.f refuses, warm up untimed
    (ft.f:108-114 touches all data once), run the timed region, verify, report."""
    comm = pympc.WORLD
    nprocs, me = comm.Get_size(), comm.Get_rank()
    args = common.parser("FT", SIZES).parse_args(argv)
    problem = common.choose("FT", CLASSES, args)
    nx, ny, nz, niter = (problem.params[k] for k in ("nx", "ny", "nz", "niter"))
    refuse_bad_input(nx, ny, nz, niter, nprocs)
    seed = common.start_seed(SEED, A, args.perturb_seed)
    if me == 0:
        print(f"\n\n NAS Parallel Benchmarks 3.4 -- FT Benchmark (pympc)\n\n"
              f" Size                : {nx:4d}x{ny:4d}x{nz:4d}  (class {problem.cls})\n"
              f" Iterations          : {niter:14d}\n Number of processes : {nprocs:14d}\n"
              f" Processor array     : {1:9d}x{nprocs:4d}\n"
              f" Layout type         : {'0D' if nprocs == 1 else '1D':>14}", flush=True)
    s = Slabs(nx, ny, nz, comm)
    # untimed warm-up: ft.f's (ft.f:108-114) touches all data once; one time step more
    # loads numba's compiled kernels (evolve, checksum) before the clock starts
    with common.Timer(comm) as init:
        setup_field(s, seed)
        fft_forward(s)
        evolve(s.u0, s.u1, s.twiddle)
        fft_inverse(s)
        checksum(s)
    if me == 0:
        print(f"\n Initialization time = {init.seconds:12.4f}\n", flush=True)
    verified = False
    with common.Timer(comm) as total:            # ft.f:128-160: verification included
        sums = run(s, seed, niter, me)
        if problem.verifiable and me == 0:
            verified = verify(problem.cls, sums)
    # every rank holds the same sums; rank 0's verdict goes to all for one exit status
    verified = comm.bcast(verified, root=0)
    status = common.CLASS_U if not problem.verifiable else (0 if verified else 1)
    if me == 0:
        status = common.report("FT", problem, (nx, ny, nz), niter, total.seconds,
                               mops(s.ntotal, niter, total.seconds), "floating point",
                               verified, nprocs)
    return comm.bcast(status, root=0)


if __name__ == "__main__":
    sys.exit(main())
