"""Stability limits and physics checks of the explicit solvers, without MPI.

Pure numpy: :class:`solvers.heat.Heat` and :class:`solvers.wave.Wave` take their time-step
limits from here, and the job layer (``pympc check``, ``pympc run``) runs the same checks
on a job file before any MPI starts. A solver names its check in its class body,
``job_check = "solvers.stability:heat"``: a function ``check(job)`` of the job's
``grid`` (shape, spacing, periodic, centring, origin: one entry per axis), ``physics``
(the keyword arguments given) and ``boundary``, that raises
:class:`~pympc.errors.InputError` with ``.key`` set to the key at fault (:func:`bad`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from pympc.errors import InputError, brief


def bad(key: str, message: str) -> InputError:
    """Local. An :class:`InputError` about the job file's key ``key``: a physics key
    (``"alpha"``) or a key path (``"grid.centring"``, ``"boundary"``); the job layer
    prefixes the message with the file and the key path."""
    err = InputError(message)
    err.key = key
    return err


def heat_dt_limit(spacing, alpha_max: float) -> float:
    """Local. The largest stable forward-Euler step of the (2d+1)-point heat scheme:
    ``1 / (2 alpha_max sum_a 1/h_a^2)``."""
    return float(1.0 / (2.0 * alpha_max * np.sum(1.0 / np.asarray(spacing, dtype=float) ** 2)))


def wave_dt_limit(spacing, c: float) -> float:
    """Local. The CFL limit of leapfrog with the (2d+1)-point Laplacian:
    ``1 / (c sqrt(sum_a 1/h_a^2))``."""
    return float(1.0 / (c * np.sqrt(np.sum(1.0 / np.asarray(spacing, dtype=float) ** 2))))


def check_dt(dt, limit: float, scheme: str) -> float:
    """Local. ``dt`` as a float when it is a positive number within ``limit`` (a relative
    1e-12 of slack for round-off), else an :class:`InputError` keyed ``dt``."""
    if not _number(dt) or not float(dt) > 0:
        raise bad("dt", f"dt must be a positive number, got {brief(dt)}")
    if float(dt) > limit * (1 + 1e-12):
        raise bad("dt", f"dt={float(dt):g} exceeds the stability limit {limit:g} of {scheme}")
    return float(dt)


def _number(x) -> bool:
    if not isinstance(x, numbers.Real) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an integer of hundreds of digits
        return False


def _positive(physics, key, default):
    value = physics.get(key, default)
    if not _number(value) or not value > 0:
        raise bad(key, f"{key} must be a positive number, got {brief(value)}")
    return float(value)


def heat(job: dict) -> None:
    """Local. The job-file check of :class:`solvers.heat.Heat`: a positive ``alpha`` (a
    number), ``safety`` in (0, 1], and ``dt`` (if given) within the stability limit."""
    physics, spacing = job["physics"], job["grid"]["spacing"]
    safety = _positive(physics, "safety", 0.9)
    if safety > 1:
        raise bad("safety", f"safety must be in (0, 1] (a fraction of the stability limit), got {safety:g}")
    alpha = _positive(physics, "alpha", 1.0)
    if physics.get("dt") is not None:
        check_dt(physics["dt"], heat_dt_limit(spacing, alpha), "the explicit heat scheme (FTCS)")


def wave(job: dict) -> None:
    """Local. The job-file check of :class:`solvers.wave.Wave`: a positive ``c``, ``cfl``
    in (0, 1], and ``dt`` (if given) within the CFL limit."""
    physics, spacing = job["physics"], job["grid"]["spacing"]
    c = _positive(physics, "c", 1.0)
    cfl = _positive(physics, "cfl", 0.5)
    if cfl > 1:
        raise bad("cfl", f"cfl must be in (0, 1], got {cfl:g}")
    if physics.get("dt") is not None:
        check_dt(physics["dt"], wave_dt_limit(spacing, c), "leapfrog")


def poisson(job: dict) -> None:
    """Local. The job-file check of :class:`solvers.poisson.Poisson`: a vertex-centred
    grid, Dirichlet (or periodic) sides, ``method``, ``omega`` (SOR: in (0, 2)),
    ``tol`` > 0, ``check_every`` >= 1."""
    physics = job["physics"]
    if job["grid"]["centring"] != "vertex":
        raise bad("grid.centring", "the Poisson solvers work on vertex-centred grids")
    spec = job["boundary"]
    if spec == "neumann" or (isinstance(spec, dict) and any(c[0] == "neumann" for c in spec.values())):
        raise bad("boundary", "Jacobi/RB-SOR here take Dirichlet and periodic boundaries only")
    method = physics.get("method", "rbsor")
    if method not in ("jacobi", "rbsor"):
        raise bad("method", f"method must be 'jacobi' or 'rbsor', got {brief(method)}")
    omega = physics.get("omega")
    if omega is not None and (not _number(omega) or (method == "rbsor" and not 0 < omega < 2)):
        raise bad("omega", f"SOR needs 0 < omega < 2, got {brief(omega)}")
    _positive(physics, "tol", 1e-8)
    every = physics.get("check_every", 1)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise bad("check_every", f"check_every must be an integer >= 1, got {brief(every)}")
