"""pympc's XDMF time series read exactly as ParaView reads them, through VTK's XDMF reader:
every dimension x centring, at every rank count (issue 12, points 7, 11 and 15).

What is checked, on rank 0 after the collective writes:

* orientation: pympc's axis 0 is VTK's X (to the right), axis 1 Y, axis 2 Z; a hot spot
  at a known (x, y, z) lands at those VTK coordinates, and every value lands at the
  coordinates of its grid point (a field holding each point's own flat index is decoded);
* precision: bounds and point coordinates match to 1e-12 relative for an origin of
  12345.678 and a spacing of 1e-3 (32-bit parsing is off by a quarter of a cell);
* cell data in 1-D, 2-D and 3-D is read (no "Failed to read attribute data"), with one
  value per cell, at the cell's centre.
"""

import functools
import os

import numpy as np
import pytest

import pympc
from mpicheck import on_root
from pympc.io.output import Output
from pympc.tools.launch import run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [((13,), "vertex"), ((13,), "cell"), ((9, 7), "vertex"), ((9, 7), "cell"),
         ((6, 5, 4), "vertex"), ((6, 5, 4), "cell")]
ORIGIN = (12345.678, -0.375, 2.5e-3)
SPACING = (1e-3, 0.25, 3e-7)




def read_vtk(xmf, time=None):
    """The dataset VTK's XDMF reader (ParaView's 'Xdmf Reader') makes of ``xmf`` at
    ``time`` (default: the last step), its time steps, and what the reader printed."""
    from vtkmodules.vtkCommonCore import vtkFileOutputWindow, vtkOutputWindow
    from vtkmodules.vtkCommonExecutionModel import vtkStreamingDemandDrivenPipeline as SDDP
    from vtkmodules.vtkIOXdmf2 import vtkXdmfReader

    log = str(xmf) + ".vtklog"
    win = vtkFileOutputWindow()  # VTK's errors ("Failed to read attribute data") go here
    win.SetFileName(log)
    vtkOutputWindow.SetInstance(win)
    try:
        r = vtkXdmfReader()
        r.SetFileName(str(xmf))
        r.UpdateInformation()
        times = list(r.GetOutputInformation(0).Get(SDDP.TIME_STEPS()) or [])
        r.UpdateTimeStep(times[-1] if time is None else time)
        out = r.GetOutputDataObject(0)
    finally:
        vtkOutputWindow.SetInstance(None)
    text = open(log).read() if os.path.exists(log) else ""
    return out, times, text


def positions(img, centring):
    """VTK's coordinates of each tuple of point data (vertex) or cell data (cell: the
    cell's centre), as an (n, 3) array."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkCellCenters

    if centring == "vertex":
        return vtk_to_numpy(img.GetPoints().GetData()).astype(np.float64)
    cc = vtkCellCenters()
    cc.SetInputData(img)
    cc.Update()
    return vtk_to_numpy(cc.GetOutput().GetPoints().GetData()).astype(np.float64)


def arrays(img, centring):
    from vtkmodules.util.numpy_support import vtk_to_numpy

    data = img.GetPointData() if centring == "vertex" else img.GetCellData()
    return {data.GetArrayName(i): vtk_to_numpy(data.GetArray(i)) for i in range(data.GetNumberOfArrays())}


def coordinate(index, axis, centring):
    return ORIGIN[axis] + (index + (0.5 if centring == "cell" else 0.0)) * SPACING[axis]


def close(a, b):
    """Equal to 1e-12 relative (zero only to zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all(np.abs(a - b) <= 1e-12 * np.maximum(np.abs(a), np.abs(b))))


def hot_spot(shape):
    return (shape[0] - 2, 1, 2)[:len(shape)]  # off-centre on every axis: a swap or a flip moves it


def write_series(path, comm, shape, centring):
    """Collective. A three-step series through pympc.Output (the last step after a
    restart, in mode 'a'): ``idx`` holds each point's flat index, ``hot`` is 1 at
    :func:`hot_spot`, ``where`` is each point's coordinates as a vector."""
    nd, hot = len(shape), hot_spot(shape)
    with pympc.Decomposition(shape, comm=comm, origin=ORIGIN[:nd], spacing=SPACING[:nd],
                             centring=centring) as d:
        idx = pympc.DistArray.from_function(d, lambda *ix: np.ravel_multi_index(ix, shape) + 0.0, coords=False)
        spot = pympc.DistArray.from_function(
            d, lambda *ix: functools.reduce(np.logical_and, [i == h for i, h in zip(ix, hot)]) + 0.0, coords=False)
        where = pympc.DistArray(d, components=(3,))
        for a in range(nd):
            where.owned[..., a] = pympc.DistArray.from_function(d, lambda *x: x[a]).owned
        with Output(str(path), d) as out:
            out.write(0, 0.0, idx=idx, hot=spot, where=where)
            out.write(5, 0.125, idx=idx, hot=spot, where=where)
        with Output(str(path), d, mode="a", restart_step=5) as out:  # a restart continues
            out.write(10, 0.25, idx=idx, hot=spot, where=where)


def check_series(xmf, shape, centring):
    """Local. What VTK's reader makes of :func:`write_series`'s file (AssertionError if
    anything is off)."""
    nd, hot = len(shape), hot_spot(shape)
    img, times, log = read_vtk(xmf)
    assert times == [0.0, 0.125, 0.25], times
    assert "Failed" not in log and "ERR" not in log, log[-2000:]
    data = arrays(img, centring)
    n = int(np.prod(shape))
    assert set(data) >= {"idx", "hot", "where"}, f"VTK read {sorted(data)} ({centring} data)"
    if centring == "cell":
        assert img.GetNumberOfCells() == n, img.GetNumberOfCells()
    pos = positions(img, centring)
    assert pos.shape == (n, 3) and all(len(v) == n for v in data.values()), (pos.shape, n)
    # every value at the coordinates of its own grid point: x = VTK's X, and so on
    ix = np.unravel_index(data["idx"].astype(np.int64), shape)
    for a in range(3):
        want = coordinate(ix[a], a, centring) if a < nd else np.zeros(n)
        assert close(pos[:, a], want), (a, pos[:5, a], want[:5])
    # the vector of each point's coordinates, as pympc computed them, is where VTK puts it
    assert close(data["where"], pos), (data["where"][:3], pos[:3])
    # the hot spot, found by value, sits at its (x, y, z)
    at = pos[int(np.argmax(data["hot"]))]
    assert close(at[:nd], [coordinate(hot[a], a, centring) for a in range(nd)]), (at, hot)
    # bounds: VTK's X range is axis 0's extent, full precision
    lo = [ORIGIN[a] for a in range(nd)]
    hi = [ORIGIN[a] + (shape[a] - (1 if centring == "vertex" else 0)) * SPACING[a] for a in range(nd)]
    b = img.GetBounds()
    for a in range(nd):
        assert close([b[2 * a], b[2 * a + 1]], [lo[a], hi[a]]), (a, b, lo, hi)
    for a in range(nd, 3):
        assert b[2 * a] == b[2 * a + 1] == 0.0, b


@pytest.mark.mpi
@pytest.mark.parametrize("shape,centring", CASES)
def test_xdmf_through_vtk_orientation_precision_and_cell_data(comm, shared_tmp_path, shape, centring):
    path = shared_tmp_path / "series.h5"
    write_series(path, comm, shape, centring)
    on_root(comm, lambda: check_series(path.with_suffix(".xmf"), shape, centring))


@pytest.mark.mpi
@pytest.mark.parametrize("centring", ["vertex", "cell"])
def test_xdmf_lists_each_dtype_and_vtk_reads_its_values(comm, shared_tmp_path, centring):
    """Every supported dtype that XDMF can describe comes back from VTK's reader with its
    extreme values exact (bool as 0/1, float16 widened); uint64 and complex fields are
    stored in the HDF5 file but not listed, since VTK would read them wrong or not at all."""
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from io_dtypes import values

    shape = (9, 7)
    path = shared_tmp_path / "dtypes.h5"
    glob = {dt.name: values(dt, shape, seed=i) for i, dt in enumerate(pympc.array.SUPPORTED_DTYPES)}
    with pympc.Decomposition(shape, comm=comm, centring=centring) as d:
        own = tuple(slice(lo, lo + n) for lo, n in zip(d.lo, d.local_shape))
        fields = {}
        for name, x in glob.items():
            fields[name] = pympc.DistArray(d, x.dtype)
            fields[name].owned[...] = x[own]
        with Output(str(path), d) as out:
            out.write(0, 0.0, **fields)

    def check():
        import h5py

        img, _, log = read_vtk(path.with_suffix(".xmf"))
        assert "Failed" not in log and "ERR" not in log, log[-2000:]
        data = arrays(img, centring)
        unlisted = {"uint64", "complex64", "complex128"}
        assert set(data) == set(glob) - unlisted, sorted(data)
        for name, got in data.items():
            assert np.array_equal(got, glob[name].ravel()), (name, got[:4], glob[name].ravel()[:4])
        with h5py.File(path, "r") as f:
            for name in unlisted:
                assert np.array_equal(f[f"/steps/00000000/{name}"][...], glob[name])
    on_root(comm, check)


@pytest.mark.mpi
def test_fields_the_xdmf_cannot_draw_are_left_out_and_said_once(comm, shared_tmp_path, caplog):
    """A step is drawn on its first field's mesh: a field of another centring or grid, or
    of a dtype XDMF cannot carry, is stored in the HDF5 file but left out of the XDMF
    (VTK reads the rest without an error), and the run is told once per field."""
    import logging

    path = shared_tmp_path / "mixed.h5"
    with pympc.Decomposition((9, 7), comm=comm) as dv, \
            pympc.Decomposition((8, 6), comm=comm, centring="cell") as dc:
        u = pympc.DistArray.from_function(dv, lambda i, j: 10.0 * i + j, coords=False)
        flux = pympc.DistArray.from_function(dc, lambda i, j: -1.0 - i, coords=False)
        z = pympc.DistArray(dv, np.complex128).fill(1 + 2j)
        with caplog.at_level(logging.WARNING, logger="pympc"), Output(str(path), dv) as out:
            logging.getLogger("pympc").addHandler(caplog.handler)
            try:
                for step in range(3):
                    out.write(step, 0.5 * step, u=u, flux=flux, z=z)
            finally:
                logging.getLogger("pympc").removeHandler(caplog.handler)
    said = [r.getMessage() for r in caplog.records if "not listed" in r.getMessage()]
    if comm.Get_rank() == 0:  # the logger speaks on rank 0
        assert len(said) == 2 and any("'flux'" in m and "another mesh" in m for m in said), said
        assert any("'z'" in m and "complex128" in m for m in said), said

    def check():
        img, times, log = read_vtk(path.with_suffix(".xmf"))
        assert times == [0.0, 0.5, 1.0] and "Failed" not in log and "ERR" not in log, log[-2000:]
        assert sorted(arrays(img, "vertex")) == ["u"] and not arrays(img, "cell")
    on_root(comm, check)


def test_heat2d_demo_shows_its_hot_left_wall_at_vtk_x_min(tmp_path):
    """jobs/heat2d.toml holds the wall x = 0 at 1 (the PNG's left edge): in ParaView the
    points at X = 0 are the hot ones, not those at Y = 0."""
    text = open(os.path.join(ROOT, "jobs", "heat2d.toml")).read()
    text = text.replace("shape = [256, 256]", "shape = [21, 21]").replace("t_end = 0.02", "t_end = 0.002")
    job = tmp_path / "demo.toml"
    job.write_text(text.replace("every = 500", "every = 5"))
    r = run_mpi(2, ["-m", "pympc", "run", str(job), "--runs-dir", str(tmp_path / "runs")], timeout=180)
    assert r.returncode == 0, r.output[-3000:]
    out = tmp_path / "runs" / "heat2d"
    img, times, log = read_vtk(out / "output.xmf")
    assert len(times) >= 2 and "Failed" not in log and "ERR" not in log, (times, log[-2000:])
    u = arrays(img, "vertex")["u"]
    pos = positions(img, "vertex")
    assert close(img.GetBounds(), (0.0, 1.0, 0.0, 1.0, 0.0, 0.0)), img.GetBounds()
    inner_x, inner_y = (pos[:, 0] > 0.0) & (pos[:, 0] < 1.0), (pos[:, 1] > 0.0) & (pos[:, 1] < 1.0)
    left, bottom = (pos[:, 0] == 0.0) & inner_y, (pos[:, 1] == 0.0) & inner_x  # corners: the 0 walls
    assert left.sum() == 19 and bottom.sum() == 19
    assert (u[left] == 1.0).all(), u[left]  # the hot wall at VTK's X = 0
    assert (u[bottom] == 0.0).all(), u[bottom]


def test_a_grid_is_hashed_once_however_many_steps_are_listed():
    """The XDMF is rendered again, every step listed, after each step: the mesh group of a
    grid is computed once, not per step and field."""
    from pympc.io import xdmf

    field = {"shape": [9, 7], "dtype": "<f8", "centring": "vertex", "origin": [0.5, 0.5],
             "spacing": [0.1, 0.1], "components": []}
    steps = [{"step": s, "time": 0.1 * s, "group": f"/steps/{s:08d}", "fields": {"u": field, "v": field}}
             for s in range(50)]
    xdmf._mesh_path.cache_clear()
    text = xdmf.render("run.h5", steps)
    assert text.count(xdmf.mesh_path(field) + "/points") == 50
    info = xdmf._mesh_path.cache_info()
    assert info.misses == 1 and info.hits >= 150, info
