"""Compute kernels: the stencil updates of the solvers (:mod:`pympc.kernels.stencils`,
their loops and numpy references in :mod:`pympc.kernels.loops`), the fused vector
operations of the Krylov methods (:mod:`pympc.kernels.vector`), the variable-coefficient diffusion operator and shifted
smoother (:mod:`pympc.kernels.varcoef`), the sparse product
(:mod:`pympc.kernels.sparse`), the 2-D step with streaming stores
(:mod:`pympc.kernels.streaming`), and the one place that chooses between numba and numpy
(:mod:`pympc.kernels.backend`).

The package face is lazy: ``pympc.kernels.heat_step`` loads the stencils on first use, so
:mod:`pympc.array` can use :mod:`pympc.kernels.vector` without loading the stencils
(which build on arrays).
"""

import importlib

_SUBMODULES = ("backend", "loops", "sparse", "stencils", "streaming", "varcoef", "vector")
# the names the face takes from modules other than the stencils
_FROM = {"Kernel": "backend", "resolve": "backend", "as3d": "backend", "check_stores": "loops", "LOOPS": "loops",
         "Flux": "varcoef", "rbsor_shift_sweep": "varcoef"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("." + _FROM.get(name, "stencils"), __name__), name)
