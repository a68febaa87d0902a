"""Krylov methods on DistArrays: conjugate gradients (classic and single-reduction),
BiCGStab and restarted GMRES(m), with matrix-free stencil operators.

Every method is a function with the keywords of :func:`solvers.solve` (see
``docs/solvers/linear.md``): ``method(op, b, *, M=None, x0=None, tol=1e-8,
maxiter=10000, **options)``, returning a :class:`solvers.result.Result`.

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
``Allreduce`` where the algebra allows: :func:`cg` needs two per iteration,
:func:`cg_single` (Chronopoulos-Gear) one.

An operator is any object with ``decomp`` and ``apply(x, y)`` (Collective: ``y = A x``
on the unknowns, 0 elsewhere) and, for the Jacobi preconditioner, ``diagonal()``.
"""

from __future__ import annotations

import numpy as np

import pympc
from pympc import costlog, kernels
from pympc.kernels import vector
from pympc.runtime import InputError

from .boundary import Boundaries
from .result import Result, check_arguments, verdict


class StencilOperator:
    """Local. The matrix-free operator
    ``A u = -sum_a (u[i-1] - 2 u[i] + u[i+1]) / h_a^2 + sum_a v_a (u[i+1] - u[i-1]) / (2 h_a)
    + shift * u`` on the unknowns of ``decomp`` (a vertex grid: Dirichlet sides are
    homogeneous and their boundary points are not unknowns; periodic axes wrap).
    ``velocity`` (one number per axis) makes it nonsymmetric (convection-diffusion).
    Its construction is local; :meth:`apply` is collective."""

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

    @property
    def unknowns(self) -> tuple:
        """Local. The slices of a DistArray's ``data`` that hold this rank's unknowns."""
        return self._sl

    def is_laplacian(self) -> bool:
        """Local. Whether this is the plain ``-lap`` (no velocity, no shift): the
        operator geometric multigrid solves."""
        return self.shift == 0 and not self.velocity.any()

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
    """Local. The Jacobi preconditioner ``z = r / diag(A)`` (built and applied locally)."""

    def __init__(self, op):
        self.inv = op.diagonal()
        self.inv.owned[...] = 1.0 / self.inv.owned

    def apply(self, r, z) -> None:
        """Local. ``z = D^-1 r`` on owned points."""
        np.multiply(r.owned, self.inv.owned, out=z.owned)


class Identity:
    """Local. No preconditioning: ``M=None``."""

    def apply(self, r, z) -> None:
        """Local. ``z = r``."""
        z.owned[...] = r.owned


def _setup(op, b, x0, tol, maxiter):
    """The iterate: zeros, or ``x0`` on the unknowns (0 on the points that are not)."""
    check_arguments(op.decomp, b, x0, tol, maxiter, "the Krylov solver")
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


class _CG:
    """The state both conjugate-gradient algorithms share: the iterate ``x``, residual
    ``r``, direction ``p``, product ``q``, preconditioned residual ``z`` (``r`` itself
    without a preconditioner), ``rz = r.z``, the stopping scale and the history."""

    def __init__(self, op, b, M, x0, tol, maxiter):
        self.op, self.b, self.tol, self.maxiter = op, b, tol, maxiter
        self.x = x = _setup(op, b, x0, tol, maxiter)
        self.r, self.p, self.q = (x.empty_like() for _ in range(3))
        self.z = self.r if M is None else x.empty_like()
        self.M = M or Identity()
        self.scale = _start(op, b, x, x0, self.r, self.q)
        if self.z is not self.r:
            self.M.apply(self.r, self.z)
        self.rz, rr = pympc.reduce_all(("dot", self.r, self.z), ("dot", self.r, self.r))
        self.history = []
        self.reason = self.record(rr, 0)
        self.comm = x.decomp.cart  # the partial sums of the fused kernels reduce over it

    def record(self, rr, it):
        """Append the relative residual from ``rr = r.r``; the stopping verdict."""
        self.history.append(float(np.sqrt(abs(rr))) / self.scale)
        if it == 0:
            return "converged" if self.history[0] < self.tol else None
        return verdict(self.history, self.tol, it, self.maxiter)

    def result(self, it, reason) -> Result:
        """The Result, with the true residual computed once (in ``r`` and ``q``)."""
        return Result(self.x, it, _true_residual(self.op, self.b, self.x, self.r, self.q, self.scale),
                      reason, self.history)


def _cg_step(s):
    """One classic CG iteration on state ``s`` (two Allreduces); ``r.r`` after it, or
    None when ``p.Ap <= 0`` (indefinite)."""
    x, r, p, q, z = s.x, s.r, s.p, s.q, s.z
    # an operator that computes p.Ap in its product's pass (SparseOperator) saves a pass
    apply_dot = getattr(s.op, "apply_dot", None)
    if apply_dot is not None:
        (pq,) = pympc.reduce_all(("sum", apply_dot(p, q)), comm=s.comm)
    else:
        s.op.apply(p, q)
        (pq,) = pympc.reduce_all(("dot", p, q))
    if not pq > 0:
        return None
    alpha = s.rz / pq
    rr_local = vector.cg_update(x.owned, r.owned, p.owned, q.owned, alpha)  # one pass
    if z is r:  # no preconditioner: r.z is r.r
        rz_new = rr = pympc.reduce_all(("sum", rr_local), comm=s.comm)[0]
    else:
        s.M.apply(r, z)
        rz_new, rr = pympc.reduce_all(("dot", r, z), ("sum", rr_local), comm=s.comm)
    vector.axpby(p.owned, 1.0, z.owned, rz_new / s.rz)  # p = z + beta p
    s.rz = rz_new
    return rr


def cg(op, b, *, M=None, x0=None, tol=1e-8, maxiter=10000) -> Result:
    """Collective. (Preconditioned) conjugate gradients for SPD ``op``, two Allreduces
    per iteration (:func:`cg_single` needs one).

    ``M``: a preconditioner (``Jacobi(op)``, ``Multigrid(decomp)``, any object with
    ``apply(r, z)``), None for none."""
    s = _CG(op, b, M, x0, tol, maxiter)
    s.p.owned[...] = s.z.owned
    reason, it = s.reason, 0
    while reason is None:
        with costlog.superstep("cg-classic"):
            rr = _cg_step(s)
        if rr is None:
            reason = "indefinite"
            break
        it += 1
        reason = s.record(rr, it)
    return s.result(it, reason)


class _SingleCG(_CG):
    """The Chronopoulos-Gear recurrences' extra state: ``w = A z``, ``s = A p``, the
    previous ``alpha`` and ``r.z``, and the request that reduces ``r.r``."""

    def __init__(self, op, b, M, x0, tol, maxiter):
        super().__init__(op, b, M, x0, tol, maxiter)
        self.s, self.w = self.x.empty_like(), self.x.empty_like()
        self.alpha_old = self.rz_old = None
        self.rr_req = ("dot", self.r, self.r)

    def step(self, it):
        """One iteration (one Allreduce, which also yields the previous iteration's
        ``r.r``): None to go on, else why to stop."""
        x, r, p, z = self.x, self.r, self.p, self.z
        self.op.apply(z, self.w)
        rz, wz, rr = pympc.reduce_all(("dot", r, z), ("dot", self.w, z), self.rr_req, comm=self.comm)
        if it > 0:
            reason = self.record(rr, it)
            if reason:
                return reason
        if self.alpha_old is None:
            beta, denom = 0.0, wz
        else:
            beta = rz / self.rz_old
            denom = wz - beta * rz / self.alpha_old
        if not denom > 0:
            return "indefinite"
        alpha = rz / denom
        vector.axpby(p.owned, 1.0, z.owned, beta)
        vector.axpby(self.s.owned, 1.0, self.w.owned, beta)
        self.rr_req = ("sum", vector.cg_update(x.owned, r.owned, p.owned, self.s.owned, alpha))
        if z is not r:
            self.M.apply(r, z)
        self.rz_old, self.alpha_old = rz, alpha
        return None


def cg_single(op, b, *, M=None, x0=None, tol=1e-8, maxiter=10000) -> Result:
    """Collective. (Preconditioned) conjugate gradients in the Chronopoulos-Gear form:
    one Allreduce per iteration (its recurrence differs from :func:`cg`'s by round-off;
    it holds two vectors more). ``M`` as in :func:`cg`."""
    s = _SingleCG(op, b, M, x0, tol, maxiter)
    reason, it = s.reason, 0
    while reason is None:
        with costlog.superstep("cg-single"):
            reason = s.step(it)
            if reason:
                break
        it += 1
    return s.result(it, reason)


def bicgstab(op, b, *, M=None, x0=None, tol=1e-8, maxiter=10000) -> Result:
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


class _Arnoldi:
    """One GMRES(m) cycle's basis ``V``, Hessenberg matrix ``H`` (rotated to upper
    triangular as it grows), Givens rotations ``cs``/``sn`` and rotated right-hand side
    ``g``, started from the residual ``r`` of norm ``beta``."""

    def __init__(self, r, beta, m):
        self.V = [r.empty_like() for _ in range(m + 1)]
        self.V[0].owned[...] = r.owned / beta
        self.H = np.zeros((m + 1, m))
        self.cs, self.sn = np.zeros(m), np.zeros(m)
        self.g = np.zeros(m + 1)
        self.g[0] = beta

    def extend(self, op, M, k, w, tmp) -> None:
        """Column ``k``: ``w = A M^-1 V[k]`` orthogonalised by classical Gram-Schmidt
        applied twice (each pass one fused Allreduce of the k + 1 dot products)."""
        V, H = self.V, self.H
        M.apply(V[k], tmp)
        op.apply(tmp, w)
        for _ in range(2):  # CGS2: two passes, one fused reduction each
            h = np.array(pympc.reduce_all(*[("dot", V[j], w) for j in range(k + 1)]), dtype=float)
            for j in range(k + 1):
                w.axpy(-h[j], V[j])
            H[:k + 1, k] += h
        H[k + 1, k] = w.norm(2)

    def rotate(self, k, w) -> float | None:
        """Normalise ``V[k + 1]`` and apply the rotations to column ``k``: the new
        least-squares residual ``|g[k + 1]|``, or None on breakdown."""
        H, cs, sn, g = self.H, self.cs, self.sn, self.g
        if H[k + 1, k] != 0:
            self.V[k + 1].owned[...] = w.owned / H[k + 1, k]
        for j in range(k):  # apply the earlier rotations to the new column
            H[j, k], H[j + 1, k] = cs[j] * H[j, k] + sn[j] * H[j + 1, k], -sn[j] * H[j, k] + cs[j] * H[j + 1, k]
        denom = np.hypot(H[k, k], H[k + 1, k])
        if denom == 0:
            return None
        cs[k], sn[k] = H[k, k] / denom, H[k + 1, k] / denom
        H[k, k] = denom
        H[k + 1, k] = 0.0
        g[k], g[k + 1] = cs[k] * g[k], -sn[k] * g[k]
        return abs(g[k + 1])

    def update(self, x, n, M, w, tmp) -> None:
        """``x += M^-1 V y`` with ``y`` the least-squares solution of the first ``n``
        columns."""
        if n == 0:
            return
        y = np.linalg.solve(np.triu(self.H[:n, :n]), self.g[:n])
        w.fill(0.0)
        for j in range(n):
            w.axpy(y[j], self.V[j])
        M.apply(w, tmp)
        x.owned[...] += tmp.owned


def _gmres_cycle(op, M, arn, m, w, tmp, history, tol, it, maxiter, scale):
    """Up to ``m`` Arnoldi steps of one restart cycle: ``(iterations, reason, n)`` with
    ``n`` the columns to update ``x`` with."""
    for k in range(m):
        with costlog.superstep("gmres"):
            arn.extend(op, M, k, w, tmp)
        it += 1
        res = arn.rotate(k, w)
        if res is None:
            return it, "breakdown", k
        history.append(res / scale)
        reason = verdict(history, tol, it, maxiter)
        if reason:
            return it, reason, k + 1
    return it, None, m


def gmres(op, b, *, M=None, x0=None, tol=1e-8, maxiter=10000, restart=30) -> Result:
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
        arn = _Arnoldi(r, beta, m)
        it, reason, n = _gmres_cycle(op, M, arn, m, w, tmp, history, tol, it, maxiter, scale)
        arn.update(x, n, M, w, tmp)
        if reason is None:  # restart from the true residual
            _residual(op, b, x, r, w)
            beta = r.norm(2)
            if beta / scale < tol:
                reason = "converged"
    return Result(x, it, _true_residual(op, b, x, r, w, scale), reason, history)
