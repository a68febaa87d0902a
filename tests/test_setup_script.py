"""The set-up's choices and errors (``./run stack`` and ``./run setup``), without building
anything: a cluster-style module MPI and HDF5 on PATH, explicit MPICC/HDF5_DIR, bad
settings, and a user without root and without MPI (no apt, a message naming the fix)."""

import os
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "run")


def script(path, text):
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def parallel_hdf5(dirpath, parallel=True):
    (dirpath / "include").mkdir(parents=True)
    (dirpath / "lib").mkdir()
    (dirpath / "include" / "H5pubconf.h").write_text(
        "#define H5_HAVE_PARALLEL 1\n" if parallel else "/* #undef H5_HAVE_PARALLEL */\n")
    return str(dirpath)


def run(args, env_extra=None, path=None, user=None):
    env = {k: v for k, v in os.environ.items() if k not in ("MPICC", "MPIEXEC", "HDF5_DIR")}
    env.update(env_extra or {})
    if path is not None:
        env["PATH"] = path
    cmd = [shutil.which("bash"), RUN, *args]
    if user:
        cmd = [shutil.which("runuser"), "-u", user, "--", "/usr/bin/env", f"PATH={env['PATH']}", "HOME=/tmp", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_module_mpi_and_hdf5_on_path_are_preferred(tmp_path):
    """As on a cluster after 'module load': an mpicc and an h5pcc that are not Debian's."""
    bin_ = tmp_path / "modules" / "bin"
    bin_.mkdir(parents=True)
    h5 = parallel_hdf5(tmp_path / "hdf5")
    script(bin_ / "mpicc", 'echo "gcc -I/opt/mpich/include -L/opt/mpich/lib -lmpich"\n')
    script(bin_ / "mpiexec", "exit 0\n")
    script(bin_ / "h5pcc", f'echo "            Installation point: {h5}"\n')
    r = run(["stack"], path=f"{bin_}:{os.environ['PATH']}")
    assert r.returncode == 0, r.stderr
    assert f"MPICC={bin_}/mpicc (mpicc on PATH (module))" in r.stdout
    assert f"MPIEXEC={bin_}/mpiexec" in r.stdout
    assert f"HDF5_DIR={h5} (h5pcc on PATH (module))" in r.stdout


def test_explicit_settings_win_and_bad_ones_are_named(tmp_path):
    h5 = parallel_hdf5(tmp_path / "h5p")
    r = run(["stack"], {"MPICC": "mpicc.mpich", "HDF5_DIR": h5})
    assert r.returncode == 0 and f"HDF5_DIR={h5} (HDF5_DIR from the environment)" in r.stdout
    r = run(["setup"], {"MPICC": "/no/such/mpicc"})
    assert r.returncode == 1 and "MPICC=/no/such/mpicc is not an executable" in r.stderr
    r = run(["setup"], {"HDF5_DIR": str(tmp_path)})
    assert r.returncode == 1 and "has no include/H5pubconf.h" in r.stderr
    r = run(["setup"], {"HDF5_DIR": parallel_hdf5(tmp_path / "serial", parallel=False)})
    assert r.returncode == 1 and "is serial" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to switch user")
def test_no_mpi_and_no_root_says_what_is_missing(tmp_path):
    """A user without root on a machine without MPI: no apt-get, a clear message."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("bash", "sh", "dirname", "id", "readlink", "sed", "grep", "cat", "sha256sum", "cut",
                 "python3", "head", "env", "ls", "apt-get"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_ / tool)
    tmp_path.chmod(0o755)
    r = run(["setup"], path=str(bin_), user="nobody")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no MPI found" in r.stderr and "module load" in r.stderr and "apt-get install mpich" in r.stderr
    assert "installing MPICH" not in r.stderr  # never apt without root
