"""Parallel HDF5 I/O: one shared file (:mod:`pympc.io.file`), XDMF for ParaView/VisIt
(:mod:`pympc.io.xdmf`), time-series output (:mod:`pympc.io.output`) and checkpoint/restart
(:mod:`pympc.io.checkpoint`)."""

from .file import FORMAT_VERSION, File, read, write

__all__ = ["FORMAT_VERSION", "File", "read", "write"]
