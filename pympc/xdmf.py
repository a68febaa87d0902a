"""XDMF (version 2) descriptions of pympc's HDF5 time series, for ParaView and VisIt.

The XDMF file is a small XML file beside the HDF5 file: a temporal collection with one
uniform grid per output step, a CoRectMesh topology (origin and spacing from the
decomposition) and one attribute per field pointing at its dataset. Vertex-centred
fields are ``Node`` attributes on a mesh of ``shape`` points; cell-centred fields are
``Cell`` attributes on a mesh of ``shape + 1`` points whose origin is the low face.
XDMF lists axes slowest first, like HDF5 and numpy, so dimensions and the
ORIGIN_DXDYDZ values are written in pympc's axis order (axis 0 first). 1-D and 2-D
grids are written as 3-D meshes one point thick (leading axes of size 1).
"""

from __future__ import annotations

import os
from xml.sax.saxutils import quoteattr

_NUMBER = {"f": "Float", "i": "Int", "u": "UInt"}


def _dims(values):
    return " ".join(str(int(v)) for v in values)


def _floats(values):
    return " ".join(repr(float(v)) for v in values)


def render(h5name: str, steps: list) -> str:
    """Local. The XDMF document for ``steps``: a list of dicts with ``time``, ``group``
    (the HDF5 group of the step) and ``fields``: ``{name: {shape, dtype, centring,
    origin, spacing, components}}`` (``dtype`` a numpy dtype string)."""
    out = ['<?xml version="1.0" ?>', '<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>',
           '<Xdmf Version="2.0">', ' <Domain>',
           '  <Grid Name="TimeSeries" GridType="Collection" CollectionType="Temporal">']
    for st in steps:
        fields = st["fields"]
        if not fields:
            continue
        any_f = next(iter(fields.values()))
        shape = list(any_f["shape"])
        nd = len(shape)
        cell = any_f["centring"] == "cell"
        nodes = [n + 1 for n in shape] if cell else shape
        # always a 3-D mesh, one point thick along the missing axes: VTK's XDMF reader
        # mis-reads vector attributes on 2DCoRectMesh grids
        pad = 3 - nd
        nodes = [1] * pad + nodes
        origin = [0.0] * pad + list(any_f["origin"])
        spacing = [1.0] * pad + list(any_f["spacing"])
        topo, geo = "3DCoRectMesh", "ORIGIN_DXDYDZ"
        out.append(f'   <Grid Name={quoteattr("step " + str(st["step"]))} GridType="Uniform">')
        out.append(f'    <Time Value="{float(st["time"])!r}"/>')
        out.append(f'    <Topology TopologyType="{topo}" Dimensions="{_dims(nodes)}"/>')
        out.append(f'    <Geometry GeometryType="{geo}">')
        out.append(f'     <DataItem Format="XML" NumberType="Float" Dimensions="{len(nodes)}">{_floats(origin)}</DataItem>')
        out.append(f'     <DataItem Format="XML" NumberType="Float" Dimensions="{len(nodes)}">{_floats(spacing)}</DataItem>')
        out.append('    </Geometry>')
        for name, f in fields.items():
            kind, size = f["dtype"][1], int(f["dtype"][2:])
            if kind not in _NUMBER:
                continue  # complex and other kinds have no XDMF number type
            comps = list(f.get("components", ()))
            atype = "Scalar" if not comps else "Vector" if comps == [3] else "Matrix"
            dims = [1] * pad + list(f["shape"]) + comps
            center = "Cell" if f["centring"] == "cell" else "Node"
            out.append(f'    <Attribute Name={quoteattr(name)} AttributeType="{atype}" Center="{center}">')
            out.append(f'     <DataItem Format="HDF" NumberType="{_NUMBER[kind]}" Precision="{size}" '
                       f'Dimensions="{_dims(dims)}">{h5name}:{st["group"]}/{name}</DataItem>')
            out.append('    </Attribute>')
        out.append('   </Grid>')
    out += ['  </Grid>', ' </Domain>', '</Xdmf>', '']
    return "\n".join(out)


def write_atomic(path: str, text: str) -> None:
    """Local. Replace ``path`` by ``text`` atomically (temporary file, fsync, rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
