"""Compute kernels: the stencil updates of the solvers (:mod:`pympc.kernels.stencils`) and
the fused vector operations of the Krylov methods (:mod:`pympc.kernels.vector`).

The package face is lazy: ``pympc.kernels.heat_step`` loads the stencils on first use, so
:mod:`pympc.array` can use :mod:`pympc.kernels.vector` without loading the stencils
(which build on arrays).
"""

import importlib


def __getattr__(name):
    if name == "vector":
        return importlib.import_module(".vector", __name__)
    return getattr(importlib.import_module(".stencils", __name__), name)
