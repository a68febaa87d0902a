"""The Gray-Scott reaction-diffusion model (Pearson, Science 261 (1993) 189-192):

    u_t = D_u lap u - u v^2 + F (1 - u)
    v_t = D_v lap v + u v^2 - (F + kappa) v

an :class:`solvers.imex.IMEX` solver (diffusion implicit, reaction explicit; or forward
Euler on everything), usable from a job file (``solver = "grayscott"``,
jobs/grayscott.toml). The reaction is one :class:`pympc.kernels.backend.Kernel`: a numba
loop and its numpy reference, bit-identical. Tutorial: docs/solvers/tutorial-grayscott.md.
"""

from __future__ import annotations

import numpy as np

import pympc
from pympc.kernels.backend import Kernel, as3d

from .adapt import NORMS
from .imex import IMEX, SCHEMES
from .stability import _number, bad, check_dt, heat_dt_limit


def _reaction3(u, v, ru, rv, F, Fk):
    for i in range(u.shape[0]):
        for j in range(u.shape[1]):
            for k in range(u.shape[2]):
                a = u[i, j, k]
                b = v[i, j, k]
                uvv = a * b * b
                ru[i, j, k] = F * (1.0 - a) - uvv
                rv[i, j, k] = uvv - Fk * b


def _reaction_numpy(u, v, ru, rv, F, Fk):
    uvv = u * v * v
    ru[...] = F * (1.0 - u) - uvv
    rv[...] = uvv - Fk * v


#: ``(u, v, ru, rv, F, F + kappa)``, 3-D arrays (:func:`as3d` views): the Gray-Scott reaction
#: rates at every point, ``ru = F (1 - u) - u v^2``, ``rv = u v^2 - (F + kappa) v``.
REACTION = Kernel(_reaction3, _reaction_numpy)


def reaction(u, v, ru, rv, F, kappa, backend=None) -> None:
    """Local. The Gray-Scott reaction rates of the arrays ``u``, ``v`` (1-3 axes, views
    allowed) into ``ru``, ``rv`` (:data:`REACTION`; ``backend``: ``"numba"``, ``"numpy"``
    or None, as :func:`pympc.kernels.backend.resolve`)."""
    REACTION(as3d(u), as3d(v), as3d(ru), as3d(rv), float(F), float(F) + float(kappa), backend=backend)


def _noise(*index):
    """Local. A deterministic uniform number in [-1, 1) per global grid index (splitmix64
    of the index tuple): the same on every rank count and every machine."""
    z = np.uint64(0)
    for i in index:
        z = z * np.uint64(1000003) + np.asarray(i, dtype=np.uint64)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 / 2.0 ** 53) - 1.0


def pearson(decomp, which, half=0.0390625):
    """Collective. Pearson's initial state: ``u = 1, v = 0``, and in a square of
    half-width ``half`` times the domain's extent at its centre (20 points of 256)
    ``u = 1/2, v = 1/4``; every value times ``1 + 0.01 xi``, ``xi`` uniform in [-1, 1)
    from :func:`_noise` of the global index. ``which``: ``"u"`` or ``"v"``."""
    ext = [n * h if p else (n - 1) * h for n, h, p in zip(decomp.shape, decomp.spacing, decomp.periodic)]
    centre = [o + e / 2 for o, e in zip(decomp.origin, ext)]

    def init(*idx):
        inside = np.ones(np.broadcast_shapes(*(np.shape(i) for i in idx)), dtype=bool)
        for a, i in enumerate(idx):
            x = decomp.origin[a] + i * decomp.spacing[a]
            inside = inside & (np.abs(x - centre[a]) < half * ext[a])
        base = np.where(inside, 0.5, 1.0) if which == "u" else np.where(inside, 0.25, 0.0)
        return base * (1.0 + 0.01 * _noise(*idx, 0 if which == "u" else 1))

    with np.errstate(over="ignore"):  # the hash's products wrap modulo 2**64 on purpose
        return pympc.DistArray.from_function(decomp, init, coords=False)


def check(job) -> None:
    """Local. The job-file check: positive ``F``, ``kappa``, ``Du``, ``Dv``; a known
    ``scheme`` and ``wnormtype``; forward Euler's ``dt`` within the diffusion limit."""
    physics, spacing = job["physics"], job["grid"]["spacing"]
    for key, default in (("F", 0.04), ("kappa", 0.06), ("Du", 2e-5), ("Dv", 1e-5)):
        value = physics.get(key, default)
        if not _number(value) or not value > 0:
            raise bad(key, f"{key} must be a positive number, got {value!r}")
    norm = physics.get("wnormtype", "infinity")
    if norm not in NORMS:
        raise bad("wnormtype", f"wnormtype must be one of {list(NORMS)}, got {norm!r}")
    scheme = physics.get("scheme", "ark2")
    if scheme not in SCHEMES:
        raise bad("scheme", f"scheme must be one of {list(SCHEMES)}, got {scheme!r}")
    if scheme == "euler" and physics.get("dt") is not None:
        limit = heat_dt_limit(spacing, max(physics.get("Du", 2e-5), physics.get("Dv", 1e-5)))
        check_dt(physics["dt"], limit, "forward Euler")


class GrayScott(IMEX):
    """Collective. The Gray-Scott model on ``decomp`` (module doc): feed rate ``F``, kill
    rate ``kappa``, diffusivities ``Du``, ``Dv``; ``u0``, ``v0``: initial fields (a
    DistArray, a number or ``f(*coords)``; None: Pearson's square with 1% noise,
    :func:`pearson`); ``scheme``: ``"ark2"`` (default), ``"sbdf2"``, ``"sbdf1"`` or
    ``"euler"``; ``dt``: the step (``"euler"``: default 0.9 of the diffusion limit);
    ``adapt``: adaptive ARK2 steps with tolerances ``rtol``, ``atol`` (default: adaptive
    when the scheme is ``"ark2"`` and no ``dt`` is given; then ``dt`` is the first step),
    or a dict of further controller settings (:class:`solvers.adapt.Controller`);
    ``wnormtype``: the controller's error norm, ``"infinity"`` (default here: the
    activity is local, and the RMS norm let 256² blow up at tolerance 1e-2) or ``"2"``;
    ``tol``, ``maxiter``, ``mg``: of each CG solve (``mg``: the multigrid preconditioner's
    options; False: Jacobi); ``backend``: the reaction kernel's. Fields ``solver.u["u"]``, ``solver.u["v"]``.
    """

    name = "grayscott"
    job_check = "solvers.grayscott:check"

    def __init__(self, decomp, F=0.04, kappa=0.06, Du=2e-5, Dv=1e-5, u0=None, v0=None, bc=None, dt=None,
                 scheme="ark2", adapt=None, rtol=1e-3, atol=1e-3, wnormtype="infinity", tol=1e-8, maxiter=500,
                 mg=None, backend=None):
        for key, value in (("F", F), ("kappa", kappa)):
            if not _number(value) or not value > 0:
                raise bad(key, f"{key} must be a positive number, got {value!r}")
        self.F, self.kappa, self.backend = float(F), float(kappa), backend
        if adapt is None:
            adapt = scheme == "ark2" and dt is None
        settings = None
        if adapt:
            settings = {"rtol": rtol, "atol": atol, "wnormtype": wnormtype,
                        **(adapt if isinstance(adapt, dict) else {})}
        init = {"u": pearson(decomp, "u") if u0 is None else u0, "v": pearson(decomp, "v") if v0 is None else v0}
        super().__init__(decomp, init, {"u": Du, "v": Dv}, bc=bc, dt=dt, scheme=scheme, tol=tol,
                         maxiter=maxiter, adapt=settings, mg=mg)

    def physics(self) -> dict:
        """Local. ``F``, ``kappa`` and :class:`~solvers.imex.IMEX`'s (diffusivities,
        scheme, tolerances, the time-step rule)."""
        return {"F": self.F, "kappa": self.kappa, **super().physics()}

    def reaction(self, t, fields, out) -> None:
        """Local. The Gray-Scott rates on the owned points (:data:`REACTION`)."""
        reaction(fields["u"].owned, fields["v"].owned, out["u"].owned, out["v"].owned, self.F, self.kappa,
                 backend=self.backend)
