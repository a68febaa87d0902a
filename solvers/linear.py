"""The one entry point for linear solves: ``solvers.solve(op, b, method=..., M=, x0=,
tol=, maxiter=, **options)`` (``docs/solvers/linear.md``).

Each method is also callable on its own with the same keywords: the Krylov functions
``cg``, ``cg_single``, ``bicgstab``, ``gmres`` (``method(op, b, ...)``) and the
multigrid object (``Multigrid(decomp, **options).solve(b, x0=, tol=, maxiter=)``).
"""

from __future__ import annotations

import inspect

from pympc.runtime import InputError

from . import krylov
from .diffusion import DiffusionOperator
from .multigrid import Multigrid
from .result import Result

KRYLOV = {"cg": krylov.cg, "cg_single": krylov.cg_single, "bicgstab": krylov.bicgstab, "gmres": krylov.gmres}
METHODS = (*KRYLOV, "mg")

# the keywords every method takes; the rest of a method's signature are its options
_COMMON = ("op", "b", "M", "x0", "tol", "maxiter")


def options(method) -> tuple:
    """Local. The names of ``method``'s own options (beyond the common keywords)."""
    if method == "mg":
        # k, shift and bc come from the operator
        return tuple(p for p in inspect.signature(Multigrid).parameters if p not in ("decomp", "k", "shift", "bc"))
    return tuple(p for p in inspect.signature(KRYLOV[method]).parameters if p not in _COMMON)


def _multigrid(op, b, M, x0, tol, limit, opts) -> Result:
    """Multigrid as the solver: ``op`` must be an operator it discretises (a
    DiffusionOperator, or the plain Laplacian StencilOperator)."""
    if M is not None:
        raise InputError("method='mg' takes no preconditioner M= (multigrid is one: pass M=Multigrid(decomp) "
                         "to a Krylov method)")
    if isinstance(op, DiffusionOperator):
        mg = Multigrid.from_operator(op, **opts)
    elif isinstance(op, krylov.StencilOperator) and op.is_laplacian():
        mg = Multigrid(op.decomp, **opts)
    else:
        raise InputError("method='mg' solves -div(k grad x) + c x = b: op must be a DiffusionOperator or "
                         "StencilOperator(decomp) without velocity or shift")
    with mg:
        return mg.solve(b, x0=x0, tol=tol, **limit)


def solve(op, b, method="cg", *, M=None, x0=None, tol=1e-8, maxiter=None, **opts) -> Result:
    """Collective. Solve ``op x = b`` with ``method``, one of ``"cg"``, ``"cg_single"``,
    ``"bicgstab"``, ``"gmres"`` or ``"mg"``; returns a :class:`~solvers.result.Result`.

    ``M``: a preconditioner (``apply(r, z)``: ``Jacobi(op)``, ``BlockJacobi(op)``,
    ``Multigrid(decomp)``); ``x0``: the initial guess (default 0); ``tol``: the relative
    residual to reach; ``maxiter``: the most iterations (Krylov iterations or multigrid
    cycles; None: the method's default, 10000 for Krylov methods, 100 cycles for
    multigrid). ``opts`` are the method's own options (``restart=`` for GMRES; ``nu=``,
    ``cycle=``, ``coarse_size=``, ``omega=``, ``pc_omega=`` for multigrid, which builds
    its hierarchy for this one solve: keep a ``Multigrid`` to solve many times)."""
    if method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, got {method!r}")
    unknown = sorted(set(opts) - set(options(method)))
    if unknown:
        raise InputError(f"method {method!r} takes no option(s) {unknown}; its options: {list(options(method))}")
    limit = {} if maxiter is None else {"maxiter": maxiter}
    if method == "mg":
        return _multigrid(op, b, M, x0, tol, limit, opts)
    return KRYLOV[method](op, b, M=M, x0=x0, tol=tol, **limit, **opts)
