"""``pympc info``: the verdict on this machine's stack, a real serial-only h5py in a
throwaway environment, and the mixed-stack logic on recorded linker output; the MPI
environment probe it shares with the launcher (pympc.tools.probe)."""

import json
import os
import subprocess
import sys

import pytest

from pympc.tools import probe
from pympc.tools.info import analyse, parse_ldd
from pympc.tools.launch import run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ldd of Debian's libhdf5_mpich.so (bookworm), trimmed.
LDD_HDF5_MPICH = """\
\tlinux-vdso.so.1 (0x00007ffc6a5f2000)
\tlibcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 (0x00007f2c1f000000)
\tlibsz.so.2 => /lib/x86_64-linux-gnu/libsz.so.2 (0x00007f2c1f9b1000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f2c1f992000)
\tlibmpich.so.12 => /lib/x86_64-linux-gnu/libmpich.so.12 (0x00007f2c1ea00000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2c1f8b3000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2c1e81f000)
"""
# ldd of Debian's libhdf5_openmpi.so: the same HDF5 built for Open MPI.
LDD_HDF5_OPENMPI = """\
\tlinux-vdso.so.1 (0x00007ffe2f3dc000)
\tlibsz.so.2 => /lib/x86_64-linux-gnu/libsz.so.2 (0x00007f5a3c8b1000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f5a3c892000)
\tlibmpi.so.40 => /lib/x86_64-linux-gnu/libmpi.so.40 (0x00007f5a3c400000)
\tlibopen-pal.so.40 => /lib/x86_64-linux-gnu/libopen-pal.so.40 (0x00007f5a3c300000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f5a3c11f000)
"""
LDD_HDF5_MISSING_MPI = LDD_HDF5_MPICH.replace(
    "libmpich.so.12 => /lib/x86_64-linux-gnu/libmpich.so.12 (0x00007f2c1ea00000)", "libmpich.so.12 => not found")

MPICH = "/usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2"


def facts(**kw):
    base = {"mpi_loaded": [MPICH], "h5py_version": "3.16.0", "hdf5_version": "1.10.8",
            "h5py_mpi": True, "hdf5_library": "/usr/lib/x86_64-linux-gnu/libhdf5_mpich.so.103.3.0",
            "hdf5_ldd": LDD_HDF5_MPICH, "mpi_loaded_with_h5py": [MPICH]}
    base.update(kw)
    return base


def test_parse_ldd_finds_mpi_libraries_only():
    assert parse_ldd(LDD_HDF5_MPICH) == [("libmpich.so.12", "/lib/x86_64-linux-gnu/libmpich.so.12")]
    assert parse_ldd(LDD_HDF5_OPENMPI) == [("libmpi.so.40", "/lib/x86_64-linux-gnu/libmpi.so.40")]
    assert parse_ldd(LDD_HDF5_MISSING_MPI) == [("libmpich.so.12", "")]


def test_consistent_stack_is_ok():
    ok, problems = analyse(facts())
    assert ok, problems


def test_mixed_stack_openmpi_hdf5_with_mpich_mpi4py():
    ok, problems = analyse(facts(hdf5_library="/usr/lib/x86_64-linux-gnu/libhdf5_openmpi.so.103",
                                 hdf5_ldd=LDD_HDF5_OPENMPI,
                                 mpi_loaded_with_h5py=[MPICH, "/usr/lib/x86_64-linux-gnu/libmpi.so.40.30.4"]))
    assert not ok
    text = " ".join(problems)
    assert "MIXED stack" in text and "libmpi.so.40" in text and "libmpich" in text
    assert "MPICC" in text and "HDF5_DIR" in text  # names the fix


def test_mixed_stack_same_family_different_install(tmp_path):
    # Two MPICH installs (system and a module): same soname, different files.
    a, b = tmp_path / "a" / "libmpich.so.12", tmp_path / "b" / "libmpich.so.12"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"")
    ldd = f"\tlibmpich.so.12 => {b} (0x00007f2c1ea00000)\n"
    ok, problems = analyse(facts(mpi_loaded=[str(a)], mpi_loaded_with_h5py=[str(a)], hdf5_ldd=ldd))
    assert not ok and "MIXED" in problems[0]


def test_hdf5_mpi_library_not_found():
    ok, problems = analyse(facts(hdf5_ldd=LDD_HDF5_MISSING_MPI))
    assert not ok and "cannot find" in problems[0]


def test_serial_h5py_facts():
    ok, problems = analyse(facts(h5py_mpi=False, hdf5_version="1.14.6",
                                 hdf5_library="/venv/lib/python3.11/site-packages/h5py.libs/libhdf5-a6e30693.so.310.5.1",
                                 hdf5_ldd=""))
    assert not ok and "SERIAL h5py" in problems[0] and "--no-binary h5py" in problems[0]


def test_h5py_import_failure_is_broken():
    ok, problems = analyse({"mpi_loaded": [MPICH], "h5py_error": "ImportError: libmpi.so.40: cannot open"})
    assert not ok and "libmpi.so.40" in problems[0]


def test_info_says_ok_here():
    r = subprocess.run([sys.executable, "-m", "pympc", "info"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: mpi4py and parallel h5py share one MPI" in r.stdout
    j = subprocess.run([sys.executable, "-m", "pympc", "info", "--json"], capture_output=True, text=True,
                       timeout=120)
    data = json.loads(j.stdout)
    assert data["ok"] and data["h5py_mpi"] and data["mpi_loaded"]


@pytest.mark.slow
def test_serial_h5py_wheel_is_reported_for_real(serial_h5py_python, tmp_path):
    """PyPI's serial h5py wheel in a throwaway environment that otherwise shares this one's
    packages: ``pympc info`` must say SERIAL and exit non-zero."""
    r = subprocess.run([serial_h5py_python, "-m", "pympc", "info", "--json"], capture_output=True, text=True,
                       timeout=120, cwd=str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["h5py_mpi"] is False
    assert "h5py.libs" in data["hdf5_library"]  # really the wheel's bundled HDF5
    assert any("SERIAL h5py" in p for p in data["problems"])


# What MPICH's hydra gives a rank of ``mpiexec -n 2`` (rank 1), Open MPI's, and PMIx's.
HYDRA = {"PMI_RANK": "1", "PMI_SIZE": "2", "PMI_FD": "6", "MPI_LOCALNRANKS": "2", "MPI_LOCALRANKID": "1"}
OPENMPI = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_MCA_foo": "x"}
PMIX = {"PMIX_RANK": "5", "PMIX_NAMESPACE": "slurm.pmix.1.0"}


def test_launcher_detection():
    assert probe.launched(HYDRA) and probe.launched(OPENMPI) and probe.launched(PMIX)
    assert probe.launcher_rank_size(HYDRA) == (1, 2)
    assert probe.launcher_rank_size(OPENMPI) == (3, 4)
    assert probe.launcher_rank_size(PMIX) == (5, 1)  # PMIx alone does not say the size
    # a batch script has SLURM_PROCID too, and is no rank; nor is a tool's process
    assert not probe.launched({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "PATH": "/bin"})
    assert probe.launcher_rank_size({}) == (0, 1)


def test_clean_env_leaves_no_launcher_behind():
    env = {**HYDRA, **OPENMPI, **PMIX, "HYDRA_FOO": "1", "PATH": "/bin", "PYMPC_THREADS": "2"}
    clean = probe.clean_env(env)
    assert clean == {"PATH": "/bin", "PYMPC_THREADS": "2"}
    assert not probe.launched(clean)


def test_mpi_family():
    assert probe.mpi_family("/usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2") == "mpich"
    assert probe.mpi_family("libmpich.so.12") == "mpich"
    assert probe.mpi_family("/usr/lib/x86_64-linux-gnu/libmpi.so.40.30.4") == "openmpi"
    assert probe.mpi_family("libmsmpi.so") == "libmsmpi"


def test_probe_finds_the_library_mpi4py_loads():
    facts = probe.probe_mpi()
    assert "mpi_error" not in facts, facts
    assert facts["mpi_loaded"] and facts["mpi_library"] and facts["mpi4py_version"]
    same = probe.mpi_libraries() if "mpi4py.MPI" in sys.modules else facts["mpi_loaded"]
    assert {probe.mpi_family(p) for p in same} == {probe.mpi_family(p) for p in facts["mpi_loaded"]}


def test_info_under_mpiexec_reports_once_with_the_launchers_size():
    r = run_mpi(2, ["-m", "pympc", "info", "--json"], timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.output
    data = json.loads(r.stdout)  # one report: rank 0 prints, rank 1 does not
    assert data["ok"] and data["ranks"] == 2
