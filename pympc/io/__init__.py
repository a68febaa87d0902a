"""Parallel HDF5 I/O: one shared file (:mod:`pympc.io.file`), XDMF for ParaView/VisIt
(:mod:`pympc.io.xdmf`), time-series output (:mod:`pympc.io.output`) and checkpoint/restart
(:mod:`pympc.io.checkpoint`).

The face is lazy (PEP 562): ``import pympc.io`` loads neither h5py nor MPI; ``File``,
``read``, ``write`` and ``FORMAT_VERSION`` load :mod:`pympc.io.file` (and h5py) on first use.
"""

__all__ = ["FORMAT_VERSION", "File", "read", "write"]


def __getattr__(name):
    if name in __all__:
        from . import file
        return getattr(file, name)
    raise AttributeError(f"module 'pympc.io' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
