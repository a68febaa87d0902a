"""Without an MPI-enabled h5py, pympc's I/O still works through rank 0, with one warning
(PyPI's serial h5py wheel in a throwaway environment, run under mpiexec)."""

import os

import pytest

from pympc.tools.launch import run_mpi

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 3])
def test_io_through_rank0_with_serial_h5py(serial_h5py_python, tmp_path, ranks):
    r = run_mpi(ranks, [os.path.join(HERE, "cases", "io_fallback.py"), str(tmp_path)],
                python=serial_h5py_python, timeout=240)
    assert r.returncode == 0, r.output[-3000:]
    assert "FALLBACK-OK" in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 3])
def test_dtypes_byte_orders_and_xdmf_through_rank0_with_serial_h5py(serial_h5py_python, tmp_path, ranks):
    """The serial fallback's reading paths with every byte order and conversion kind,
    every dtype written and read, and the XDMF meshes read by VTK (issue 12, points 5,
    6, 7, 11, 15)."""
    r = run_mpi(ranks, [os.path.join(HERE, "cases", "io_fallback_dtypes.py"), str(tmp_path)],
                python=serial_h5py_python, timeout=480)
    assert r.returncode == 0, r.output[-3000:]
    assert "FALLBACK-DTYPES-OK" in r.stdout
