"""Krylov methods on DistArrays: CG (classic and single-reduction), preconditioned CG,
BiCGStab and restarted GMRES(m), with matrix-free stencil operators.

**Stopping rule** (every method): the relative residual ``||b - A x||_2 / ||b||_2`` below
``tol``. CG and BiCGStab track it through their recurrences; GMRES through its least
squares problem. At the end the true residual is computed once and returned. ``history``
holds the relative residual after each iteration (index 0: the initial guess).

**Reasons**: ``"converged"``, ``"iteration limit"``, ``"breakdown"`` (a zero denominator
in BiCGStab or GMRES), ``"indefinite"`` (CG met ``p.Ap <= 0``: the operator is not
positive definite).

**Vectors**: ``b`` and ``x0`` are read, never written; their values on points that are
not unknowns (Dirichlet boundary points, empty rows) are ignored. The solution ``x`` is
0 there. CG holds four vectors (x, r, p, Ap; five with a preconditioner).

**Reductions**: dot products go through :func:`pympc.reduce_all`, several fused into one
``Allreduce`` where the algebra allows: classic CG needs two per iteration,
``cg(..., variant="single")`` (Chronopoulos-Gear) one.

An operator is any object with ``decomp`` and ``apply(x, y)`` (Collective: ``y = A x``
on the unknowns, 0 elsewhere) and, for the Jacobi preconditioner, ``diagonal()``.
"""

from __future__ import annotations

import numpy as np

import pympc
from pympc import costlog, kernels
from pympc.kernels import vector
from pympc.array import require_distarray
from pympc.runtime import InputError

from .boundary import Boundaries
from .result import Result, verdict


KrylovResult = Result  # the name earlier code used


class StencilOperator:
    """Local (construction). The matrix-free operator
    ``A u = -sum_a (u[i-1] - 2 u[i] + u[i+1]) / h_a^2 + sum_a v_a (u[i+1] - u[i-1]) / (2 h_a)
    + shift * u`` on the unknowns of ``decomp`` (a vertex grid: Dirichlet sides are
    homogeneous and their boundary points are not unknowns; periodic axes wrap).
    ``velocity`` (one number per axis) makes it nonsymmetric (convection-diffusion)."""

    def __init__(self, decomp, velocity=None, shift=0.0, bc=None):
        self.decomp = decomp
        self.bc = Boundaries(decomp, bc)
        if any(k != "dirichlet" or v != 0 for k, v in self.bc.conditions.values()):
            raise InputError("StencilOperator takes homogeneous Dirichlet or periodic boundaries")
        self.h = np.array(decomp.spacing, dtype=float)
        self.velocity = np.zeros(decomp.ndim) if velocity is None else np.broadcast_to(
            np.asarray(velocity, dtype=float), (decomp.ndim,)).copy()
        self.shift = float(shift)
        self.region = self.bc.unknown_region()
        g = decomp.ghost
        self._sl = tuple(slice(g + lo, g + hi) for lo, hi in self.region)
        self._mask = None
        self._kernel = kernels.ConvDiff(decomp.ndim, self.h, self.velocity, self.shift)
        self._pieces()

    def _pieces(self):
        # kernels.split_regions(width 1) clipped to the unknowns: the part whose stencil
        # reads no ghost (computed while the halo travels) and the strips around it
        # (after); and the slabs of y outside the unknowns (set to 0).
        def clip(box):
            box = [(max(lo, rlo), min(hi, rhi)) for (lo, hi), (rlo, rhi) in zip(box, self.region)]
            return box if all(lo < hi for lo, hi in box) else None

        inner, borders = kernels.split_regions(self.decomp, width=1)
        self._inner = clip(inner)
        self._frame = [c for c in map(clip, borders) if c is not None]
        self._zero = []
        for a, sl in enumerate(self._sl):
            for part in (slice(0, sl.start), slice(sl.stop, None)):
                idx = [slice(None)] * self.decomp.ndim
                idx[a] = part
                self._zero.append(tuple(idx))

    def apply_dot(self, x, y) -> float:
        """Collective. ``y = A x`` as :meth:`apply`, and this rank's part of ``x . y``
        (reduce it with :func:`pympc.reduce_all`), in one compiled pass: conjugate
        gradients needs ``p . A p`` right after the product. The unknowns whose stencil
        reads no ghost value are computed while the halo exchange is in flight."""
        self.bc.apply(x)  # physical-boundary ghosts only: the halo never writes those
        plan = pympc.start_halo(x)
        s = 0.0
        if self._inner is not None:
            s += self._kernel.apply_dot(x, y, self._inner)
        plan.wait()
        for box in self._frame:
            s += self._kernel.apply_dot(x, y, box)
        for idx in self._zero:
            y.data[idx] = 0.0
        return s

    def apply(self, x, y) -> None:
        """Collective. ``y = A x`` on the unknowns, 0 on the other points."""
        self.apply_dot(x, y)

    def diagonal(self):
        """Local. The diagonal of A (1 on the points that are not unknowns)."""
        d = pympc.DistArray(self.decomp).fill(1.0)
        d.data[self._sl] = self._kernel.diag
        return d

    def restrict(self, b, out=None):
        """Local. ``b`` with the non-unknown points set to 0 (the right-hand side the
        operator's rows see), into ``out`` (a new DistArray when None)."""
        if out is None:
            out = b.empty_like()
        else:
            out.data[...] = 0.0
        out.data[self._sl] = b.data[self._sl]
        return out


class Jacobi:
    """Local (construction). The Jacobi preconditioner ``z = r / diag(A)``."""

    def __init__(self, op):
        self.inv = op.diagonal()
        self.inv.owned[...] = 1.0 / self.inv.owned

    def apply(self, r, z) -> None:
        """Local. ``z = D^-1 r`` on owned points."""
        np.multiply(r.owned, self.inv.owned, out=z.owned)


class Identity:
    """Local (construction). No preconditioning."""

    def apply(self, r, z) -> None:
        """Local. ``z = r``."""
        z.owned[...] = r.owned


def _setup(op, b, x0, tol, maxiter):
    """The iterate: zeros, or ``x0`` on the unknowns (0 on the points that are not)."""
    require_distarray(b, "b", "the Krylov solver")
    if x0 is not None:
        require_distarray(x0, "x0", "the Krylov solver")
    # compatible, not identical: a decomposition built twice alike pairs point for point
    why = op.decomp.mismatch(b.decomp, halo=True)
    if why is not None:
        raise InputError(f"b must live on the operator's decomposition: {why}")
    if not tol > 0 or int(maxiter) < 1:
        raise InputError("tol must be > 0 and maxiter >= 1")
    why = None if x0 is None else op.decomp.mismatch(x0.decomp, halo=True)
    if why is not None:
        raise InputError(f"x0 must live on the operator's decomposition: {why}")
    x = b.empty_like()
    if x0 is not None:
        if hasattr(op, "restrict"):
            op.restrict(x0, out=x)
        else:
            x.owned[...] = x0.owned
    return x


def _residual(op, b, x, r, tmp, zero=False):
    """``r = b - A x`` on the operator's unknowns (``tmp`` takes ``A x``; with ``zero``
    x is known to be 0 and the product is skipped). No vector is allocated: the
    right-hand side is restricted into ``r`` itself. Returns ``||b||`` restricted."""
    if hasattr(op, "restrict"):
        op.restrict(b, out=r)
    else:
        r.owned[...] = b.owned
    bnorm = r.norm(2)
    if not zero:
        op.apply(x, tmp)
        vector.axpby(r.owned, -1.0, tmp.owned, 1.0)
    return bnorm


def _start(op, b, x, x0, r, tmp):
    """The initial residual into ``r`` and the scale of the stopping rule (``||b||``,
    1 when b = 0)."""
    bnorm = _residual(op, b, x, r, tmp, zero=x0 is None)
    return bnorm if bnorm > 0 else 1.0


def _true_residual(op, b, x, r, tmp, scale):
    """The relative true residual ``||b - A x|| / scale``, computed in ``r`` and ``tmp``
    (vectors the method no longer needs)."""
    _residual(op, b, x, r, tmp)
    return r.norm(2) / scale


def cg(op, b, x0=None, tol=1e-8, maxiter=10000, M=None, variant="classic") -> Result:
    """Collective. (Preconditioned) conjugate gradients for SPD ``op``.

    ``M``: a preconditioner (``Jacobi(op)``, any object with ``apply(r, z)``), None for
    none. ``variant="classic"`` takes two Allreduces per iteration; ``"single"`` the
    Chronopoulos-Gear form, one (its recurrence differs by round-off)."""
    if variant not in ("classic", "single"):
        raise InputError(f"variant must be 'classic' or 'single', got {variant!r}")
    x = _setup(op, b, x0, tol, maxiter)
    r, p, q = (x.empty_like() for _ in range(3))
    z = r if M is None else x.empty_like()  # without a preconditioner z is r itself
    M = M or Identity()
    scale = _start(op, b, x, x0, r, q)
    if z is not r:
        M.apply(r, z)
    rz, rr = pympc.reduce_all(("dot", r, z), ("dot", r, r))
    history = [float(np.sqrt(abs(rr))) / scale]
    reason, it = ("converged" if history[0] < tol else None), 0
    label = f"cg-{variant}"
    comm = x.decomp.cart
    # an operator that computes p.Ap in its product's pass (SparseOperator) saves a pass
    apply_dot = getattr(op, "apply_dot", None)
    if variant == "classic":
        p.owned[...] = z.owned
        while reason is None:
            with costlog.superstep(label):
                if apply_dot is not None:
                    (pq,) = pympc.reduce_all(("sum", apply_dot(p, q)), comm=comm)
                else:
                    op.apply(p, q)
                    (pq,) = pympc.reduce_all(("dot", p, q))
                if not pq > 0:
                    reason = "indefinite"
                    break
                alpha = rz / pq
                rr_local = vector.cg_update(x.owned, r.owned, p.owned, q.owned, alpha)  # one pass
                if z is r:  # no preconditioner: r.z is r.r
                    rz_new = rr = pympc.reduce_all(("sum", rr_local), comm=comm)[0]
                else:
                    M.apply(r, z)
                    rz_new, rr = pympc.reduce_all(("dot", r, z), ("sum", rr_local), comm=comm)
                vector.axpby(p.owned, 1.0, z.owned, rz_new / rz)  # p = z + beta p
                rz = rz_new
            it += 1
            history.append(float(np.sqrt(abs(rr))) / scale)
            reason = verdict(history, tol, it, maxiter)
    else:
        s = x.empty_like()
        w = x.empty_like()
        alpha_old = beta = None
        rr_req = ("dot", r, r)
        while reason is None:
            with costlog.superstep(label):
                op.apply(z, w)
                rz, wz, rr = pympc.reduce_all(("dot", r, z), ("dot", w, z), rr_req, comm=comm)
                if it > 0:
                    history.append(float(np.sqrt(abs(rr))) / scale)
                    reason = verdict(history, tol, it, maxiter)
                    if reason:
                        break
                if alpha_old is None:
                    beta, denom = 0.0, wz
                else:
                    beta = rz / rz_old
                    denom = wz - beta * rz / alpha_old
                if not denom > 0:
                    reason = "indefinite"
                    break
                alpha = rz / denom
                vector.axpby(p.owned, 1.0, z.owned, beta)
                vector.axpby(s.owned, 1.0, w.owned, beta)
                rr_req = ("sum", vector.cg_update(x.owned, r.owned, p.owned, s.owned, alpha))
                if z is not r:
                    M.apply(r, z)
                rz_old, alpha_old = rz, alpha
            it += 1
    return Result(x, it, _true_residual(op, b, x, r, q, scale), reason, history)


def bicgstab(op, b, x0=None, tol=1e-8, maxiter=10000, M=None) -> Result:
    """Collective. Preconditioned BiCGStab for general (nonsymmetric) ``op``."""
    x = _setup(op, b, x0, tol, maxiter)
    M = M or Identity()
    r, r0, p, v, s, t, ph, sh = (x.empty_like() for _ in range(8))
    scale = _start(op, b, x, x0, r, v)
    r0.owned[...] = r.owned
    history = [r.norm(2) / scale]
    reason, it = ("converged" if history[0] < tol else None), 0
    rho_old = alpha = omega = 1.0
    v.fill(0.0)
    while reason is None:
        with costlog.superstep("bicgstab"):
            (rho,) = pympc.reduce_all(("dot", r0, r))
            if rho == 0 or omega == 0:
                reason = "breakdown"
                break
            beta = (rho / rho_old) * (alpha / omega)
            p.owned[...] = r.owned + beta * (p.owned - omega * v.owned)
            M.apply(p, ph)
            op.apply(ph, v)
            (r0v,) = pympc.reduce_all(("dot", r0, v))
            if r0v == 0:
                reason = "breakdown"
                break
            alpha = rho / r0v
            s.owned[...] = r.owned - alpha * v.owned
            M.apply(s, sh)
            op.apply(sh, t)
            tt, ts = pympc.reduce_all(("dot", t, t), ("dot", t, s))
            omega = ts / tt if tt != 0 else 0.0
            x.axpy(alpha, ph)
            x.axpy(omega, sh)
            r.owned[...] = s.owned - omega * t.owned
            rho_old = rho
            (rr,) = pympc.reduce_all(("dot", r, r))
        it += 1
        history.append(float(np.sqrt(abs(rr))) / scale)
        reason = "breakdown" if not np.isfinite(history[-1]) else verdict(history, tol, it, maxiter)
    return Result(x, it, _true_residual(op, b, x, r, v, scale), reason, history)


def gmres(op, b, x0=None, tol=1e-8, maxiter=10000, restart=30, M=None) -> Result:
    """Collective. Right-preconditioned restarted GMRES(m), ``m = restart``.

    Arnoldi by classical Gram-Schmidt applied twice (each pass one fused Allreduce of the
    k dot products), Givens rotations for the least-squares residual. ``iterations``
    counts Arnoldi steps (matrix-vector products)."""
    m = int(restart)
    if m < 1:
        raise InputError(f"restart must be >= 1, got {restart}")
    x = _setup(op, b, x0, tol, maxiter)
    M = M or Identity()
    w, tmp, r = x.empty_like(), x.empty_like(), x.empty_like()
    scale = _start(op, b, x, x0, r, w)
    beta = r.norm(2)
    history = [beta / scale]
    reason, it = ("converged" if history[0] < tol else None), 0
    while reason is None:
        V = [r.empty_like() for _ in range(m + 1)]
        V[0].owned[...] = r.owned / beta
        H = np.zeros((m + 1, m))
        cs, sn = np.zeros(m), np.zeros(m)
        g = np.zeros(m + 1)
        g[0] = beta
        k = 0
        for k in range(m):
            with costlog.superstep("gmres"):
                M.apply(V[k], tmp)
                op.apply(tmp, w)
                for _ in range(2):  # CGS2: two passes, one fused reduction each
                    h = np.array(pympc.reduce_all(*[("dot", V[j], w) for j in range(k + 1)]), dtype=float)
                    for j in range(k + 1):
                        w.axpy(-h[j], V[j])
                    H[:k + 1, k] += h
                H[k + 1, k] = w.norm(2)
            it += 1
            if H[k + 1, k] != 0:
                V[k + 1].owned[...] = w.owned / H[k + 1, k]
            for j in range(k):  # apply the earlier rotations to the new column
                H[j, k], H[j + 1, k] = cs[j] * H[j, k] + sn[j] * H[j + 1, k], -sn[j] * H[j, k] + cs[j] * H[j + 1, k]
            denom = np.hypot(H[k, k], H[k + 1, k])
            if denom == 0:
                reason = "breakdown"
                break
            cs[k], sn[k] = H[k, k] / denom, H[k + 1, k] / denom
            H[k, k] = denom
            H[k + 1, k] = 0.0
            g[k], g[k + 1] = cs[k] * g[k], -sn[k] * g[k]
            history.append(abs(g[k + 1]) / scale)
            reason = verdict(history, tol, it, maxiter)
            if reason:
                break
        n = k + 1 if reason != "breakdown" else k
        if n > 0:
            y = np.linalg.solve(np.triu(H[:n, :n]), g[:n])
            w.fill(0.0)
            for j in range(n):
                w.axpy(y[j], V[j])
            M.apply(w, tmp)
            x.owned[...] += tmp.owned
        if reason is None:  # restart from the true residual
            _residual(op, b, x, r, w)
            beta = r.norm(2)
            if beta / scale < tol:
                reason = "converged"
    return Result(x, it, _true_residual(op, b, x, r, w, scale), reason, history)
