"""XDMF (version 2) descriptions of pympc's HDF5 time series, for ParaView and VisIt.

The XDMF file is a small XML file beside the HDF5 file: a temporal collection with one
uniform grid per output step, and one attribute per field pointing at its dataset.

**Orientation: pympc's axis 0 is x, to the right.** A field is a C-order dataset, so
its last axis varies fastest, and VTK's readers make the fastest-varying index the
i index of a structured grid. On an image mesh (XDMF's CoRectMesh) the i index *is*
VTK's X, so axis 0 would show as Y in 2-D and Z in 3-D (the demo's hot left wall
became the bottom edge). So the mesh is a structured grid with explicit point
coordinates (``2DSMesh``/``3DSMesh``), written once per file: the point of array index
``(i, j, k)`` sits at ``(x_i, y_j, z_k)``. The logical i, j, k of the VTK grid run along
z, y, x, a mirror image: the picture is the physical one, but 3-D cells have negative
signed volumes in VTK (ParaView's "Cell Size", "Integrate Variables"); 2-D areas are
positive. (Unstructured hexahedra with their own connectivity would be right-handed, at
32 bytes or more per cell.)

**Cost.** The coordinates are float64 (full precision: 12345.678 with spacing 1e-3
reads back exact), two per point in 1-D and 2-D (XDMF's ``XY``) and three in 3-D:
16 or 24 bytes per mesh point, written once per file and mesh, not per step. For a
2-D run that is two float64 fields' worth once; the steps cost what they did.

**Meshes per dimension and centring**, each checked through VTK's XDMF reader (a
one-point-thick 3-D mesh keeps vector point data readable; a cell mesh must not be one
point thick, or the reader counts zero cells and drops every cell array):

- 1-D vertex: ``3DSMesh`` of 1 x 1 x n points; 1-D cell: ``Polyline`` of n + 1 points
  and n two-point segments (their connectivity is a dataset too, 16 bytes per cell);
- 2-D vertex: ``3DSMesh`` of 1 x n0 x n1 points; 2-D cell: ``2DSMesh`` of
  (n0 + 1) x (n1 + 1) points;
- 3-D: ``3DSMesh`` of n0 x n1 x n2 points (vertex) or (n0 + 1) x (n1 + 1) x (n2 + 1)
  (cell).

The mesh of a cell-centred grid has its points on the cell faces (origin = the low
face). The mesh datasets live in ``/xdmf/<centring>_<shape>_<hash>/`` (``points``, and
``cells`` for the 1-D polyline), named after the grid, so steps on one grid share them.
"""

from __future__ import annotations

import functools
import hashlib
from xml.sax.saxutils import escape, quoteattr

import numpy as np

MESH_GROUP = "/xdmf"

# XDMF number types VTK's XDMF reader reads back exactly (measured for each dtype, with
# each type's extreme values): uint64 is read as 32-bit (values above 2**32 wrap), complex
# has no XDMF type; those fields are stored in the HDF5 file but not listed in the XDMF.
_NUMBER = {"b1": ("UChar", 1), "i1": ("Char", 1), "u1": ("UChar", 1), "i2": ("Int", 2),
           "u2": ("UInt", 2), "i4": ("Int", 4), "u4": ("UInt", 4), "i8": ("Int", 8),
           "f2": ("Float", 2), "f4": ("Float", 4), "f8": ("Float", 8)}


def number_type(dtype: str):
    """Local. ``(NumberType, Precision)`` for a numpy dtype string, or ``None`` for a
    dtype XDMF readers cannot read back exactly (uint64, complex)."""
    return _NUMBER.get(str(dtype)[1:])


def unlisted_reason(field, first) -> str | None:
    """Local. Why the XDMF of a step whose first field is ``first`` does not list
    ``field`` (both dicts as in :func:`render`), or ``None`` when it does: a dtype XDMF
    readers cannot read back exactly, or another mesh than the step's (the step is drawn on
    its first field's mesh; a field of another centring or grid would not fit it)."""
    if number_type(field["dtype"]) is None:
        return f"its dtype {np.dtype(field['dtype']).name} has no exact XDMF type (uint64, complex)"
    if mesh_path(field) != mesh_path(first):
        return (f"it lies on another mesh ({field['centring']}-centred {list(field['shape'])}) than "
                f"the step's first field ({first['centring']}-centred {list(first['shape'])})")
    return None


def _dims(values):
    return " ".join(str(int(v)) for v in values)


def _nodes(field) -> list:
    shape = [int(n) for n in field["shape"]]
    return [n + 1 for n in shape] if field["centring"] == "cell" else shape


def mesh_path(field) -> str:
    """Local. The HDF5 group of the mesh a field (a dict with ``shape``, ``centring``,
    ``origin``, ``spacing``) is drawn on; the same grid gives the same group."""
    return _mesh_path(field["centring"], tuple(int(n) for n in field["shape"]),
                      tuple(float(x) for x in field["origin"]), tuple(float(x) for x in field["spacing"]))


@functools.lru_cache(maxsize=256)
def _mesh_path(centring, shape, origin, spacing):
    # hashed once per grid: the XDMF is rendered again, every step listed, after each step
    key = repr((centring, list(shape), list(origin), list(spacing)))  # (the names files hold)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"{MESH_GROUP}/{centring}_{'x'.join(map(str, shape))}_{digest}"


def _columns(ndim: int) -> int:
    return max(2, ndim)  # XDMF has XY and XYZ, no X


def _rows(n: int, comm):
    """This rank's share [lo, hi) of n rows, for writing a dataset without any rank
    holding all of it."""
    r, p = comm.Get_rank(), comm.Get_size()
    return r * n // p, (r + 1) * n // p


def write_mesh(f, field) -> str:
    """Collective. Write the mesh of ``field`` (see :func:`mesh_path`) into the open
    :class:`pympc.io.File` ``f`` unless it is there: every rank of ``f``'s communicator
    computes and writes a share of the points, a few MiB at a time
    (:meth:`~pympc.io.File.write_rows`): a mesh holds two or three fields' worth of
    coordinates, which no rank needs whole. Returns the mesh's group."""
    group = mesh_path(field)
    if f"{group}/points" in f:
        return group
    nodes = _nodes(field)
    nd = len(nodes)
    origin = [float(x) for x in field["origin"]]
    spacing = [float(x) for x in field["spacing"]]
    # the coordinates as the Decomposition computes them: origin + i * spacing, in float64
    axes = [origin[a] + np.arange(nodes[a], dtype=np.float64) * spacing[a] for a in range(nd)]

    def points(out, start):  # rows start.. of the (nodes..., columns) coordinates
        rows = axes[0][start:start + len(out)]
        out[..., nd:] = 0.0  # XDMF's XY for 1-D: y = 0
        for a in range(nd):
            shape = [1] * nd
            shape[a] = -1
            out[..., a] = (rows if a == 0 else axes[a]).reshape(shape)
    f.require_group(group)
    lo, hi = _rows(nodes[0], f.comm)
    f.write_rows(f"{group}/points", nodes + [_columns(nd)], np.float64, lo, hi, points)
    if nd == 1 and field["centring"] == "cell":
        n = nodes[0] - 1

        def cells(out, start):  # segment i joins points i and i + 1
            out[:, 0] = np.arange(start, start + len(out))
            out[:, 1] = out[:, 0] + 1
        lo, hi = _rows(n, f.comm)
        f.write_rows(f"{group}/cells", (n, 2), np.int64, lo, hi, cells)
    return group


def write_meshes(f, steps: list) -> None:
    """Collective. :func:`write_mesh` for the grid of every step in ``steps`` (the step
    dicts :func:`render` takes) that lacks one, e.g. in a file written before pympc
    wrote meshes."""
    done = set()
    for st in steps:
        if st["fields"]:
            field = next(iter(st["fields"].values()))
            if mesh_path(field) not in done:
                done.add(write_mesh(f, field))


def _mesh_xml(h5name: str, field) -> tuple:
    """The Topology and Geometry elements of a field's mesh, and the leading 1s its
    attributes' dimensions need (the reader reads them in the topology's rank)."""
    shape = [int(n) for n in field["shape"]]
    nodes = _nodes(field)
    nd = len(shape)
    group = mesh_path(field)
    h5name = escape(h5name)
    cell = field["centring"] == "cell"
    geo = "XYZ" if nd == 3 else "XY"
    points = (f'     <DataItem Format="HDF" NumberType="Float" Precision="8" '
              f'Dimensions="{_dims(nodes + [_columns(nd)])}">{h5name}:{group}/points</DataItem>')
    if nd == 1 and cell:
        topo = [f'    <Topology TopologyType="Polyline" NodesPerElement="2" NumberOfElements="{shape[0]}">',
                f'     <DataItem Format="HDF" NumberType="Int" Precision="8" Dimensions="{shape[0]} 2">'
                f'{h5name}:{group}/cells</DataItem>',
                '    </Topology>']
        pad = 0
    elif nd == 2 and cell:
        topo = [f'    <Topology TopologyType="2DSMesh" Dimensions="{_dims(nodes)}"/>']
        pad = 0
    else:
        pad = 3 - nd
        topo = [f'    <Topology TopologyType="3DSMesh" Dimensions="{_dims([1] * pad + nodes)}"/>']
    return topo + [f'    <Geometry GeometryType="{geo}">', points, '    </Geometry>'], pad


def render(h5name: str, steps: list) -> str:
    """Local. The XDMF document for ``steps``: a list of dicts with ``time``, ``group``
    (the HDF5 group of the step) and ``fields``: ``{name: {shape, dtype, centring,
    origin, spacing, components}}`` (``dtype`` a numpy dtype string). Each step is drawn
    on the mesh of its first field, which :func:`write_mesh` writes into the file."""
    out = ['<?xml version="1.0" ?>', '<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>',
           '<Xdmf Version="2.0">', ' <Domain>',
           '  <Grid Name="TimeSeries" GridType="Collection" CollectionType="Temporal">']
    for st in steps:
        fields = st["fields"]
        if not fields:
            continue
        mesh, pad = _mesh_xml(h5name, next(iter(fields.values())))
        out.append(f'   <Grid Name={quoteattr("step " + str(st["step"]))} GridType="Uniform">')
        out.append(f'    <Time Value="{float(st["time"])!r}"/>')
        out += mesh
        first = next(iter(fields.values()))
        for name, f in fields.items():
            if unlisted_reason(f, first) is not None:
                continue
            number = number_type(f["dtype"])
            comps = list(f.get("components", ()))
            atype = "Scalar" if not comps else "Vector" if comps == [3] else "Matrix"
            dims = [1] * pad + list(f["shape"]) + comps
            center = "Cell" if f["centring"] == "cell" else "Node"
            out.append(f'    <Attribute Name={quoteattr(name)} AttributeType="{atype}" Center="{center}">')
            out.append(f'     <DataItem Format="HDF" NumberType="{number[0]}" Precision="{number[1]}" '
                       f'Dimensions="{_dims(dims)}">{escape(h5name)}:{st["group"]}/{escape(name)}</DataItem>')
            out.append('    </Attribute>')
        out.append('   </Grid>')
    out += ['  </Grid>', ' </Domain>', '</Xdmf>', '']
    return "\n".join(out)
