"""Reading a job file: TOML in, every point of its sweep checked and resolved (every
default filled in), or one :class:`~pympc.errors.InputError` naming the file and the key.

:func:`load` runs in two places with the same checks: before MPI starts (``pympc
check``, the parent of ``pympc run -n``: the solver is read from its source, see
:mod:`pympc.jobs.solverinfo`), and in the ranks (the solver imported) before anything is
written. The grid is checked for the rank count with the decomposition's own planning
(:func:`pympc.gridplan.plan`); a formula is parsed (:mod:`pympc.jobs.expr`) and evaluated
on a sample of the grid's points; the solver's physics are checked by its ``job_check``
(an explicit step beyond the stability limit, ...).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass

try:  # the standard library's from Python 3.11; tomli is the same parser for 3.10
    import tomllib
except ModuleNotFoundError:  # pragma: no cover (3.10)
    import tomli as tomllib

import numpy as np

from .. import gridplan
from ..errors import InputError, brief
from . import expr, schema, solverinfo, sweep
from .schema import fail, suggest
from .solverinfo import UNKNOWN

AXES = "xyz"
KINDS = ("dirichlet", "neumann")


@dataclass
class Point:
    """Local. One run of a job: its sweep ``index`` (None without a sweep), the swept
    ``values`` and the resolved ``job`` (plain data, every default filled in)."""

    index: int | None
    values: dict | None
    job: dict


@dataclass
class Job:
    """Local. A checked job file: its ``path``, its text, its ``name`` and its points
    (one, or one per sweep point)."""

    path: str
    text: str
    name: str
    points: list
    swept: bool
    info: object = None  # the solver (a :class:`~pympc.jobs.solverinfo.SolverInfo`)

    def point(self, index):
        """Local. The point to run for ``--sweep-index`` (None: the only one)."""
        if index is None:
            return self.points
        if not self.swept:
            raise InputError(f"{self.path}: --sweep-index {index} given, but the job has no [sweep]")
        if not 0 <= index < len(self.points):
            raise InputError(f"{self.path}: --sweep-index {index} is out of range: the sweep has "
                             f"{len(self.points)} points (0 to {len(self.points) - 1})")
        return [self.points[index]]


def read_text(path: str) -> str:
    """Local. The job file's text, or an :class:`InputError` saying why it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such job file")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the job file: {e}")


def load(path: str, ranks: int | None = None, imports: bool = False, text: str | None = None) -> Job:
    """Local. Read and check the job file ``path`` (or its ``text``): every point of its
    sweep resolved, the grid checked for ``ranks`` ranks when given. ``imports``: import
    the solver and the formulas' functions (in a rank) instead of reading their source."""
    where = path
    text = read_text(path) if text is None else text
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{where}: not valid TOML: {e}")
    if "name" not in doc or "solver" not in doc:
        schema.check_generic(doc, where)  # says which is missing, after any unknown key
    base = os.path.dirname(os.path.abspath(path))
    with solverinfo.search_path([base, os.getcwd()]):
        info = (solverinfo.load if imports else solverinfo.read)(doc.get("solver"), where)
        points = []
        for k, (values, point_doc) in enumerate(sweep.expand(doc, where)):
            at = where if values is None else f"{where} (sweep point {k}: " + ", ".join(
                f"{p} = {v!r}" for p, v in values.items()) + ")"
            job = resolve(point_doc, info, at, ranks, imports, base)
            job["sweep"] = None if values is None else {"index": k, "values": values}
            points.append(Point(None if values is None else k, values, job))
    return Job(path, text, doc["name"], points, "sweep" in doc, info)


def resolve(doc: dict, info, where: str, ranks, imports, base: str = ".") -> dict:
    """Local. One point's job checked and resolved into plain data (``base``: the job
    file's directory, where relative paths start)."""
    flat = schema.check_generic(doc, where)
    grid = _grid(flat, where)
    dims = _axes(flat["decomposition.dims"], len(grid["shape"]), "decomposition.dims", where)
    if ranks is not None:
        try:
            gridplan.plan(grid["shape"], ranks, dims, grid["periodic"])
        except InputError as e:
            raise fail(where, "decomposition", f"the grid {grid['shape']} cannot be split over {ranks} "
                       f"rank(s): {e}")
    boundary = _boundary(flat["boundary"], grid, info, where)
    physics, initial = _solver_args(flat, info, grid, boundary, where, imports)
    return {
        "name": flat["name"], "solver": flat["solver"], "solver_class": info.target,
        "description": flat["description"], "grid": grid,
        "decomposition": {"dims": dims},
        "physics": physics, "initial": initial, "boundary": boundary,
        "run": {"steps": flat["run.steps"], "t_end": flat["run.t_end"], "progress": flat["run.progress"],
                "restart_from": _source(flat["run.restart_from"], base, where)},
        "output": {"enabled": flat["output.enabled"], "every": flat["output.every"], "png": flat["output.png"],
                   "units": _units(flat["output.units"], where)},
        "checkpoint": {"every": flat["checkpoint.every"]},
    }


def _axes(value, ndim, path, where) -> list:
    if not isinstance(value, list):
        return [value] * ndim
    if len(value) != ndim:
        raise fail(where, path, f"has {len(value)} entries but the grid has {ndim} axes")
    return list(value)


def _grid(flat, where) -> dict:
    """The grid as plain data, one entry per axis; the spacing from the extent."""
    shape = flat["grid.shape"]
    ndim = len(shape)
    periodic = _axes(flat["grid.periodic"], ndim, "grid.periodic", where)
    origin = _axes(flat["grid.origin"], ndim, "grid.origin", where)
    centring = flat["grid.centring"]
    if flat["grid.spacing"] is not None:
        spacing = _axes(flat["grid.spacing"], ndim, "grid.spacing", where)
    else:
        extent = _axes(flat["grid.extent"], ndim, "grid.extent", where)
        spacing = []
        for a, (n, length) in enumerate(zip(shape, extent)):
            cells = n if (centring == "cell" or periodic[a]) else n - 1
            if cells < 1:
                raise fail(where, "grid.shape", f"axis {a} has {n} point: a vertex-centred axis needs 2 "
                           "or more to span an extent (or give grid.spacing)")
            spacing.append(length / cells)
    return {"shape": shape, "origin": origin, "spacing": spacing, "periodic": periodic, "centring": centring}


def _source(path, base, where):
    """``run.restart_from`` as an absolute path that exists (or None)."""
    if path is None:
        return None
    full = os.path.abspath(os.path.join(base, os.path.expanduser(path)))
    if not os.path.exists(full):
        raise fail(where, "run.restart_from", f"no such checkpoint file or directory: {full}")
    if os.path.isfile(full):
        ok = re.fullmatch(r".+_\d+\.h5", os.path.basename(full)) is not None
    else:
        where_ck = os.path.join(full, "checkpoints") if os.path.isdir(os.path.join(full, "checkpoints")) else full
        ok = any(re.fullmatch(r"checkpoint_\d+\.h5", n) for n in os.listdir(where_ck))
    if not ok:
        raise fail(where, "run.restart_from", f"{full} is not a checkpoint (<prefix>_<step>.h5), nor a "
                   "checkpoints directory or a run directory that holds one")
    return full


def _units(units, where) -> dict:
    for k, v in units.items():
        if not isinstance(v, str):
            raise fail(where, f"output.units.{k}", f"must be a string (a unit), got {v!r}")
    return dict(units)


def _job_check(info, job, where) -> None:
    """The solver's own check of a job (its ``job_check``), the error keyed by path."""
    if not info.job_check:
        return
    check = solverinfo.resolve(info.job_check, where, "solver")
    try:
        check(job)
    except InputError as e:
        key = getattr(e, "key", None) or ""
        path = key if "." in key or key in ("grid", "boundary", "initial") else f"physics.{key}".rstrip(".")
        raise fail(where, path, str(e))


def _solver_args(flat, info, grid, boundary, where, imports):
    """``(physics, initial)``: the solver's keyword arguments checked against its
    constructor (names, types), its ``job_check``, and the formulas."""
    physics, initial = flat["physics"], flat["initial"]
    params = info.params
    for table, given in (("physics", physics), ("initial", initial)):
        for key, value in given.items():
            if params is not None and (key not in params or key == "bc"):
                options = [p for p in params if p != "bc"]
                raise fail(where, f"{table}.{key}", f"{info.target} takes no argument {key!r}"
                           + suggest(key, options) + f"; it takes {', '.join(options) or 'none'}")
            if key in physics and key in initial and table == "initial":
                raise fail(where, f"initial.{key}", "is given in [physics] too: give it once")
            if table == "physics":
                _check_type(key, value, None if params is None else params[key], where)
    for key, default in (params or {}).items():
        # a constructor argument without a default: a TypeError in every rank otherwise
        if default is solverinfo.REQUIRED and key != "bc" and key not in physics and key not in initial:
            raise fail(where, f"initial.{key}", f"is required: {info.target} has no default for {key!r} "
                       "(give it in [initial] as a field, or in [physics])")
    _job_check(info, {"grid": grid, "physics": dict(physics), "boundary": boundary}, where)
    resolved = {k: v for k, v in (params or {}).items()
                if k not in initial and k != "bc" and v is not UNKNOWN and _plain(v)}
    resolved.update(physics)
    for key, value in initial.items():
        field(value, grid, where, f"initial.{key}", imports)
    return resolved, dict(initial)


def _plain(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _check_type(key, value, default, where) -> None:
    if isinstance(value, dict):
        raise fail(where, f"physics.{key}", "must be a number, string, boolean or list, not a table")
    if default is None or default is UNKNOWN or not _plain(default):
        return
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        ok, want = isinstance(value, str), "a string"
    if not ok:
        raise fail(where, f"physics.{key}", f"must be {want} (its default is {default!r}), got {value!r}")


def field(value, grid, where, path, imports, sample=True):
    """Local. A field argument as the solver takes it: a number, or a function of the
    coordinates (a formula, or ``"module:func"``). Checked: a formula parses and is finite
    on a sample of the grid's points (``sample=False``: a job :func:`load` checked
    already)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise fail(where, path, f"must be a number, a formula (a string) or \"module:func\", got {value!r}")
    if not isinstance(value, str):
        if not schema.finite_number(value):
            raise fail(where, path, f"must be a finite number, got {brief(value)}")
        return float(value)
    ndim = len(grid["shape"])
    if solverinfo.TARGET.match(value.strip()):
        target = value.strip()
        if not imports:
            solverinfo.read_function(target, where, path)
            return None
        fn = solverinfo.resolve(target, where, path)
        if isinstance(fn, type):
            raise fail(where, path, f"{target} is a class: a field takes a function of the coordinates")
        if not callable(fn):
            raise fail(where, path, f"{target} is not callable")
        if sample:
            _sample(fn, grid, where, path, f"the function {target}")
        return fn
    formula = expr.parse(value, coords=tuple(AXES[:ndim]), where=f"{where}: {path}")
    if sample:
        _sample(formula, grid, where, path, f"the formula {formula.text!r}")
    return formula


def _sample(fn, grid, where, path, what) -> None:
    """Evaluate a field's function (a formula, or a user's ``module:func``) on up to 17
    points per axis, both ends included, as the solver will on its block: one that fails,
    gives a shape that does not broadcast, or a value that is not finite is an error here,
    on every rank alike, not a NaN field or a one-rank crash later."""
    axes = []
    for n, o, h in zip(grid["shape"], grid["origin"], grid["spacing"]):
        idx = np.unique(np.linspace(0, n - 1, min(n, 17)).round().astype(int))
        axes.append(o + (idx + (0.5 if grid["centring"] == "cell" else 0.0)) * h)
    mesh = np.meshgrid(*axes, indexing="ij", sparse=True)
    try:
        with np.errstate(all="ignore"):
            values = np.broadcast_to(np.asarray(fn(*mesh), dtype=float), tuple(len(a) for a in axes))
    except Exception as e:  # a user's function may raise anything: one message, exit 2
        raise fail(where, path, f"{what} cannot be evaluated on the grid's points: {type(e).__name__}: {e}")
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        at = ", ".join(f"{AXES[a]}={axes[a][i]:g}" for a, i in enumerate(bad[0]))
        raise fail(where, path, f"{what} is not finite at {at}")


def _boundary(spec, grid, info, where):
    """The boundary spec checked: a word, or ``{side: [kind, value]}`` on non-periodic sides."""
    if info.params is not None and "bc" not in info.params and spec != "dirichlet":
        raise fail(where, "boundary", f"{info.target} takes no boundary conditions (no bc argument)")
    if isinstance(spec, str):
        if spec not in KINDS:
            raise fail(where, "boundary", f"must be 'dirichlet', 'neumann' or a table of sides, got {spec!r}"
                       + suggest(spec, KINDS))
        return spec
    ndim = len(grid["shape"])
    sides = [f"{AXES[a]}{s}" for a in range(ndim) for s in "-+"]
    for side, cond in spec.items():
        if side not in sides:
            raise fail(where, f"boundary.{side}", f"not a side of a {ndim}D grid" + suggest(side, sides)
                       + f"; the sides are {', '.join(sides)}")
        if grid["periodic"][AXES.index(side[0])]:
            raise fail(where, f"boundary.{side}", f"axis {side[0]} is periodic: it takes no boundary condition")
        ok = isinstance(cond, list) and len(cond) == 2 and cond[0] in KINDS and \
            schema.finite_number(cond[1])
        if not ok:
            raise fail(where, f"boundary.{side}", f"must be [kind, value] with kind 'dirichlet' or "
                       f"'neumann' and a finite number, e.g. [\"dirichlet\", 1.0]; got {cond!r}")
    return {side: [cond[0], float(cond[1])] for side, cond in spec.items()}


def solver_kwargs(job: dict, info, ndim: int) -> dict:
    """Local. The constructor's keyword arguments of a resolved job (checked by
    :func:`load` in this rank), in a rank: the physics as they are, the fields as numbers
    or functions, ``bc`` when there is one."""
    kwargs = dict(job["physics"])
    for key, value in job["initial"].items():
        kwargs[key] = field(value, job["grid"], job["name"], f"initial.{key}", True, sample=False)
    if info.params is None or "bc" in info.params:
        kwargs["bc"] = job["boundary"]
    return kwargs


def module(name: str):
    """Local. Import a module by name (the job layer's only way to reach solvers)."""
    return importlib.import_module(name)
