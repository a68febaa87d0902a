"""The one place that decides how a kernel runs: compiled by numba, or as its numpy
reference.

Every kernel of :mod:`pympc.kernels` is a :class:`Kernel`: a loop written for numba and a
numpy function with the same arguments and the same arithmetic in the same order. Which
of the two runs is decided here, per call, by :func:`resolve`:

- ``backend="numba"`` or ``backend="numpy"`` passed to the kernel wins;
- else ``PYMPC_KERNELS`` (read once, through :func:`pympc.env.value`; default ``numba``);
- ``numba`` without numba installed runs the numpy reference, with one warning per
  process.

numba is imported on the first compiled call, not when pympc is imported (``import
numba`` costs about half a second), and a loop is compiled on its first call
(``cache=True``: the machine code is kept on disk for the next process).
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import env as _env
from ..errors import InputError

BACKENDS = ("numba", "numpy")

# what this process found out once: the default backend, and the numba module (False:
# not importable). A dict, so tests can see and reset the memo in one place.
_memo: dict = {}


def numba_module():
    """Local. The numba module, or None when it cannot be imported (then a
    :class:`RuntimeWarning` says so, once per process)."""
    mod = _memo.get("numba")
    if mod is None:
        try:
            import numba as mod
        except ImportError as e:  # pragma: no cover - numba is a dependency
            warnings.warn(f"numba is not available ({e}); pympc's kernels run their numpy "
                          "references, several times slower", RuntimeWarning, stacklevel=3)
            mod = False
        _memo["numba"] = mod
    return mod or None


def default() -> str:
    """Local. The backend a kernel called without ``backend=`` asks for:
    ``PYMPC_KERNELS`` as this process first read it (default ``"numba"``)."""
    name = _memo.get("default")
    if name is None:
        name = _memo["default"] = _env.value("PYMPC_KERNELS") or "numba"
    return name


def resolve(backend: str | None = None) -> str:
    """Local. The backend that runs: ``backend`` (``"numba"`` or ``"numpy"``; None: the
    :func:`default`), with ``"numba"`` turned into ``"numpy"`` when numba cannot be
    imported. Anything else raises :class:`~pympc.InputError`."""
    name = default() if backend is None else backend
    if name == "numba":
        return "numba" if numba_module() is not None else "numpy"
    if name == "numpy":
        return name
    raise InputError(f"backend must be 'numba' or 'numpy', got {backend!r}")


class Kernel:
    """Local. A kernel: ``loop``, a plain Python function numba compiles (no fast-math:
    IEEE arithmetic in source order), and ``reference``, a numpy function taking the same
    arguments that computes the same result with the same operations in the same order.
    Calling the kernel runs one of them, as :func:`resolve` decides (a kernel whose
    ``loop`` is None always runs its reference)::

        STEP = Kernel(_step_loop, _step_numpy)
        STEP(u, out, lo, hi, r)                  # PYMPC_KERNELS decides
        STEP(u, out, lo, hi, r, backend="numpy")

    ``helpers``: names of functions in the loop's module that the loop calls; they are
    compiled with it (a loop longer than one function splits into named steps).

    Results are bit-identical between the two where a kernel writes points; a kernel
    that also returns a sum (a dot product) may differ there in the last bits, because
    numpy sums pairwise."""

    def __init__(self, loop, reference, helpers=()):
        self.loop = loop
        self.reference = reference
        self.helpers = tuple(helpers)
        self._compiled = None

    def compiled(self):
        """Local. The numba-compiled loop (compiled lazily, on its first call), or None
        without numba."""
        if self._compiled is None and self.loop is not None:
            nb = numba_module()
            if nb is None:
                return None
            jit = nb.njit(cache=True, nogil=True, boundscheck=False)
            # functions the loop calls: compiled first and put in the loop's module under
            # their names (numba resolves a loop's globals when it compiles the loop)
            space = self.loop.__globals__
            for name in self.helpers:
                if not hasattr(space[name], "py_func"):
                    space[name] = jit(space[name])
            self._compiled = jit(self.loop)
        return self._compiled

    def select(self, backend: str | None = None):
        """Local. The function a call with ``backend`` runs: the compiled loop or the
        numpy reference."""
        fast = self.compiled() if resolve(backend) == "numba" else None
        return self.reference if fast is None else fast

    def __call__(self, *args, backend: str | None = None):
        return self.select(backend)(*args)


def as3d(x: np.ndarray) -> np.ndarray:
    """Local. A view of an array of 1-3 axes as 3-D, with leading axes of size 1: the
    kernels are written once, in 3-D (the padded axes get neighbour offset 0 and
    coefficient 0, which add exactly nothing)."""
    if x.ndim > 3:
        raise InputError(f"the kernels take arrays of 1-3 axes, got {x.ndim}")
    return x.reshape((1,) * (3 - x.ndim) + x.shape)
