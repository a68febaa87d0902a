"""pympc's NAS Parallel Benchmarks (benchmarks/npb/) verify as NPB's own code does.

Class S of every kernel at 1, 2 and 4 ranks prints ``Verification = SUCCESSFUL`` (exit 0);
a run whose generator starts one step off NPB's seed prints ``UNSUCCESSFUL`` (exit 1); a
size that is no class runs as class U, unverified (exit 3); a process count the original
refuses is refused (exit 2). Each run is a real ``mpiexec`` job under a hard timeout. The
first run of a kernel compiles its numba functions into the cache (``cache=True``); the
runs after it load them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile

import pytest

from pympc.tools.launch import run_mpi

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NPB = os.path.join(ROOT, "benchmarks", "npb")
KERNELS = {"EP": "ep.py", "IS": "is_.py", "CG": "cg.py", "MG": "mg.py", "FT": "ft.py"}
#: per kernel: size parameters that are no class (a run of class U)
OFF_CLASS = {"EP": ["--m", "21"], "IS": ["--total-keys-log-2", "15", "--max-key-log-2", "11",
                                          "--num-buckets-log-2", "9"],
             "CG": ["--na", "1000", "--nonzer", "7", "--niter", "3", "--shift", "10"],
             "MG": ["--n", "16", "--nit", "2"], "FT": ["--nx", "32", "--ny", "32", "--nz", "16", "--niter", "2"]}
VERIFIED = re.compile(r"^ Verification    = +SUCCESSFUL$", re.M)
UNVERIFIED = re.compile(r"^ Verification    = +UNSUCCESSFUL$", re.M)


#: numba's cache keyed by the kernels' sources: numba checks only a kernel file's own time
#: stamp, so an edit of common.py could otherwise leave tests running stale machine code
NUMBA_CACHE = os.path.join(tempfile.gettempdir(), "pympc-npb-numba-" + hashlib.sha256(b"".join(
    open(os.path.join(NPB, f), "rb").read() for f in sorted(os.listdir(NPB)) if f.endswith(".py"))).hexdigest()[:16])


def npb(kernel: str, ranks: int, *args, timeout=240):
    """One kernel as an mpiexec job; on timeout its whole process session is killed."""
    e = {"PYMPC_PROGRESS": "off", "NUMBA_CACHE_DIR": NUMBA_CACHE}
    r = run_mpi(ranks, [os.path.join(NPB, KERNELS[kernel]), *args], timeout=timeout, cwd=ROOT,
                env={**os.environ, **e})
    assert not r.timed_out, f"{kernel} at {ranks} rank(s) ran past {timeout} s: {r.stdout[-1500:]}"
    return r


def report_field(text: str, name: str) -> str:
    m = re.search(rf"^ {re.escape(name)}\s*=\s*(.*)$", text, re.M)
    return m.group(1).strip() if m else ""


# kernel by kernel, one rank first: it compiles the numba cache the others load
@pytest.mark.parametrize("kernel,ranks", [(k, n) for k in KERNELS for n in (1, 2, 4)])
def test_class_s_verifies(kernel, ranks):
    r = npb(kernel, ranks, "--class", "S")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f" {kernel} Benchmark Completed." in r.stdout
    assert VERIFIED.search(r.stdout), r.stdout[-2000:]
    assert report_field(r.stdout, "Class") == "S"
    assert report_field(r.stdout, "Total processes") == str(ranks)
    assert float(report_field(r.stdout, "Mop/s total")) > 0


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_a_perturbed_seed_is_unsuccessful(kernel):
    r = npb(kernel, 2, "--class", "S", "--perturb-seed")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert UNVERIFIED.search(r.stdout) and not VERIFIED.search(r.stdout)


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_a_size_that_is_no_class_runs_as_class_u_unverified(kernel):
    r = npb(kernel, 1, *OFF_CLASS[kernel])
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert report_field(r.stdout, "Class") == "U"
    assert not VERIFIED.search(r.stdout) and not UNVERIFIED.search(r.stdout)


@pytest.mark.parametrize("kernel", ["IS", "CG", "MG", "FT"])
def test_a_process_count_the_original_refuses_is_refused(kernel):
    r = npb(kernel, 3, "--class", "S", timeout=120)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "power-of-two" in r.stderr


def test_ep_runs_on_any_process_count():
    r = npb("EP", 3, "--class", "S")
    assert r.returncode == 0 and VERIFIED.search(r.stdout), r.stdout[-2000:] + r.stderr[-2000:]


def test_bad_input_is_one_line_and_exit_2():
    r = npb("EP", 1, "--class", "Q", timeout=120)
    assert r.returncode == 2 and r.stderr.strip().startswith("npb: error:") and len(r.stderr.strip().splitlines()) == 1


def test_ep_scheme_3_4_verifies_the_signed_sums():
    r = npb("EP", 2, "--class", "S", "--scheme", "3.4")
    assert r.returncode == 0 and VERIFIED.search(r.stdout), r.stdout[-2000:] + r.stderr[-2000:]
    assert " Verification scheme: NPB 3.4.0 (signed sums of X and Y)" in r.stdout


def test_ep_default_scheme_is_3_4_2():
    r = npb("EP", 1, "--class", "S")
    assert r.returncode == 0 and VERIFIED.search(r.stdout), r.stdout[-2000:] + r.stderr[-2000:]
    assert " Verification scheme: NPB 3.4.2+ (sums of |X|, |Y| and the pair count)" in r.stdout
    assert re.search(r"^ gc: computed 1\.31763890+e\+07 ", r.stdout, re.M), r.stdout[-2000:]


def test_a_bad_option_is_one_line_and_exit_2():
    r = npb("EP", 1, "--scheme", "9.9", timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("npb: error: ep.py: argument --scheme")
