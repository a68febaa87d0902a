"""Numerical solvers built on pympc: ``import solvers``.

Linear solves have one entry point, :func:`solvers.solve` (``solvers.solve(op, b,
method="cg", M=None, x0=None, tol=1e-8, maxiter=None, **options)``, in
:mod:`solvers.linear`), returning one :class:`solvers.result.Result`; every method is
also callable on its own with the same keywords (:mod:`solvers.krylov`,
:mod:`solvers.multigrid`). The time-stepping solvers live in :mod:`solvers.heat`,
:mod:`solvers.wave`, :mod:`solvers.poisson` and :mod:`solvers.loop`.

``import solvers`` itself is cheap: :func:`solve` and :class:`Result` are loaded on
first use (PEP 562).
"""

_LAZY = {"solve": "linear", "METHODS": "linear", "Result": "result"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
