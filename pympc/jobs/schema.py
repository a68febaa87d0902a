"""The job file's keys: one table that the checks, the JSON Schema (``pympc check
--schema``) and the reference in docs/jobs.md are all made from, so they cannot drift.

A job file is TOML. Its generic keys (the name, the solver, the grid, the run's length,
output and checkpoints, a sweep) are checked here: an unknown key (with a "did you mean"),
a wrong type, a value out of range. The solver's own keys (``[physics]``, ``[initial]``,
``[boundary]``) depend on the solver and are checked by :mod:`pympc.jobs.spec`.
Everything here is pure Python: it runs before MPI starts.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field

from ..errors import InputError, brief

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


@dataclass(frozen=True)
class Key:
    """Local. One key of a job file: its dotted path, kind, default and meaning.

    Kinds: ``string``, ``integer``, ``number``, ``boolean``, ``choice`` (one of
    ``choices``), ``axes-int`` / ``axes-number`` / ``axes-bool`` (one value per grid axis,
    or one for all), ``shape`` (a list of 1-3 positive integers), ``table`` (keys the
    solver defines) and ``sweep`` (see :mod:`pympc.jobs.sweep`)."""

    path: str
    kind: str
    doc: str
    default: object = None
    required: bool = False
    minimum: float | None = None
    exclusive: bool = False  # the minimum itself is not allowed
    choices: tuple = field(default=())


KEYS = (
    Key("name", "string", "The run's name: its run directory is `<runs-dir>/<name>/` (letters, digits, "
        "`_`, `.`, `-`).", required=True),
    Key("solver", "string", "`heat`, `wave`, `poisson`, or your own TimeLoop solver as "
        "`\"package.module:Class\"` (the job file's directory is searched first).", required=True),
    Key("description", "string", "Free text, kept in the run directory.", default=""),
    Key("grid.shape", "shape", "Points per axis (1 to 3 axes).", required=True),
    Key("grid.extent", "axes-number", "The domain's length per axis; the spacing is `extent / (n - 1)` "
        "(vertex-centred, non-periodic axis) or `extent / n` (cell-centred or periodic). Ignored when "
        "`spacing` is given.", default=1.0, minimum=0, exclusive=True),
    Key("grid.spacing", "axes-number", "The distance between points per axis (instead of `extent`).",
        minimum=0, exclusive=True),
    Key("grid.origin", "axes-number", "The coordinates of the first point (vertex) or cell's low face.",
        default=0.0),
    Key("grid.periodic", "axes-bool", "Periodic axes.", default=False),
    Key("grid.centring", "choice", "Where the points sit.", default="vertex", choices=("vertex", "cell")),
    Key("decomposition.dims", "axes-int", "Ranks per axis; 0 lets pympc choose (the least halo "
        "surface). The product of the non-zero entries must divide the rank count (and equal it when "
        "none is 0).", default=0, minimum=0),
    Key("physics", "table", "The solver's keyword arguments that are not fields: `alpha`, `dt`, "
        "`safety` (heat), `c`, `cfl`, `dt` (wave), `method`, `omega`, `tol`, `check_every` (poisson), "
        "or your solver's. Defaults are the solver's.", default={}),
    Key("initial", "table", "The solver's field arguments (`u0` (heat); `u0`, `v0` (wave); `f`, `u0` "
        "(poisson)): a number, a formula of the coordinates (docs/formulas.md) or `\"module:func\"`.",
        default={}),
    Key("boundary", "table", "`\"dirichlet\"` (0 on every non-periodic side, the default), `\"neumann\"`, "
        "or a table of sides `\"x-\" = [\"dirichlet\", 1.0]` (`x-`, `x+`, `y-`, `y+`, `z-`, `z+`; "
        "sides left out are Dirichlet 0).", default="dirichlet"),
    Key("run.steps", "integer", "Steps to run to (counted from step 0). Give `steps` or `t_end`.",
        minimum=0),
    Key("run.t_end", "number", "The time to run to (the step is shortened so that whole steps end "
        "there). Give `steps` or `t_end`.", minimum=0, exclusive=True),
    Key("run.restart_from", "string", "Start a new run from another run's checkpoint: a checkpoint file, a "
        "`checkpoints/` directory or a run directory (its newest intact checkpoint), relative to the job "
        "file. The physics may differ from that run's (not the grid); the time step is the checkpoint's. "
        "Once this run has checkpoints of its own, it resumes from them."),
    Key("run.progress", "number", "Seconds between progress lines when the progress is printed as "
        "lines (batch runs).", default=10.0, minimum=0),
    Key("output.enabled", "boolean", "Write the fields to `output.h5` (with `output.xmf` for ParaView).",
        default=True),
    Key("output.every", "integer", "Steps between outputs; 0: the first and the last step only.",
        default=0, minimum=0),
    Key("output.png", "boolean", "Also draw the final field (the first of a 2D solver's fields) into "
        "`final.png` (matplotlib).", default=False),
    Key("output.units", "table", "Units per field, and for `time` and `length`, stored on the datasets.",
        default={}),
    Key("checkpoint.every", "integer", "Steps between checkpoints; 0: only at the end and on a "
        "signal. A run that is interrupted resumes from the newest one.", default=0, minimum=0),
    Key("slurm", "table", "Defaults for `pympc slurm submit` (`time`, `nodes`, `ntasks_per_node`, "
        "`partition`, `modules`, ...; docs/slurm.md lists them): checked by `pympc slurm`, ignored by "
        "`pympc run`. The command line wins.", default={}),
    Key("sweep.mode", "choice", "How the lists combine: `product` (every combination, the last key "
        "varying fastest) or `zip` (the i-th value of each).", default="product", choices=("product", "zip")),
    Key("sweep.*", "sweep", "A key path of this file (`\"physics.alpha\"`) and its values: a list, or "
        "`{start, stop, num}` (evenly spaced, both ends included) or `{start, stop, step}`."),
)

BY_PATH = {k.path: k for k in KEYS}
#: the top-level tables; keys of the solver's own tables are checked against the solver
TABLES = ("grid", "decomposition", "physics", "initial", "boundary", "run", "output", "checkpoint", "slurm",
          "sweep")
FREE = ("physics", "initial", "boundary", "output.units", "slurm", "sweep")


def suggest(word: str, options) -> str:
    """Local. ``" (did you mean 'x'?)"`` for the closest of ``options``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fail(where: str, path: str, message: str) -> InputError:
    """Local. The one-line error about key ``path`` of the job file ``where``."""
    return InputError(f"{where}: {path}: {message}" if path else f"{where}: {message}")


#: the largest integer a job file may give (a float64 holds every integer up to it)
MAX_INT = 2 ** 53
#: points per axis at most (MPI counts are 32-bit)
MAX_POINTS = 2 ** 31 - 1


def finite_number(x) -> bool:
    """Local. Whether ``x`` is an int or float (not a bool) that a float64 holds finitely
    (a TOML integer may have any number of digits)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def check_generic(doc: dict, where: str) -> dict:
    """Local. The job file's generic keys checked (unknown keys, types, ranges) and their
    defaults filled in; returns ``{path: value}`` for every key of :data:`KEYS` but the
    sweep's entries (the free tables as given). Raises one :class:`InputError`."""
    _unknown_keys(doc, where)
    out = {}
    for key in KEYS:
        if key.kind == "sweep":
            continue
        value = _lookup(doc, key.path)
        if value is None:
            if key.required:
                raise fail(where, key.path, "is required: " + key.doc)
            out[key.path] = key.default
            continue
        out[key.path] = check_value(key, value, where)
    if (out["run.steps"] is None) == (out["run.t_end"] is None):
        raise fail(where, "run", "give exactly one of steps and t_end" +
                   (" (not both)" if out["run.steps"] is not None else ""))
    return out


def _lookup(doc, path):
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _unknown_keys(doc: dict, where: str) -> None:
    """The first key that is not in the schema, with a suggestion."""
    top = sorted({k.path.split(".")[0] for k in KEYS})
    for name, value in doc.items():
        if name not in top:
            raise fail(where, name, "unknown key" + suggest(name, top) + f"; the keys are {', '.join(top)}")
        if name in TABLES and name not in FREE:
            if not isinstance(value, dict):
                raise fail(where, name, f"must be a table ([{name}]), got {_type_name(value)}")
            inner = sorted(k.path.split(".", 1)[1] for k in KEYS if k.path.startswith(name + "."))
            for sub in value:
                if sub not in inner:
                    raise fail(where, f"{name}.{sub}", "unknown key" + suggest(sub, inner)
                               + f"; [{name}] takes {', '.join(inner)}")


def check_value(key: Key, value, where: str, path: str | None = None):
    """Local. ``value`` checked against ``key`` (its kind, range and choices), normalised
    (an integer where a number is expected becomes a float); ``path`` names it in the
    error (default: the key's path)."""
    path = path or key.path
    kind = key.kind
    if kind.startswith("axes-"):
        items = value if isinstance(value, list) else [value]
        if not items:
            raise fail(where, path, "must not be an empty list")
        return [_scalar(kind[5:], v, key, where, path) for v in items] if isinstance(value, list) \
            else _scalar(kind[5:], value, key, where, path)
    if kind == "shape":
        if not isinstance(value, list) or not 1 <= len(value) <= 3:
            raise fail(where, path, f"must be a list of 1 to 3 positive integers, got {value!r}")
        shape = [_scalar("int", v, Key(path, "integer", "", minimum=1), where, path) for v in value]
        if max(shape) > MAX_POINTS:
            raise fail(where, path, f"{max(shape)} points on an axis: at most {MAX_POINTS}")
        return shape
    if kind == "table":
        if key.path == "boundary" and isinstance(value, str):
            return value
        if not isinstance(value, dict):
            raise fail(where, path, f"must be a table, got {_type_name(value)}")
        return dict(value)
    if kind == "choice":
        if value not in key.choices:
            raise fail(where, path, f"must be one of {', '.join(map(repr, key.choices))}, got {value!r}"
                       + suggest(value, key.choices))
        return value
    return _scalar({"string": "str", "integer": "int", "number": "number", "boolean": "bool"}[kind],
                   value, key, where, path)


def _scalar(kind: str, value, key: Key, where: str, path: str):
    ok = {"str": isinstance(value, str), "bool": isinstance(value, bool),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
    if not ok:
        want = {"str": "a string", "bool": "true or false", "int": "an integer", "number": "a number"}[kind]
        raise fail(where, path, f"must be {want}, got {_type_name(value)} {brief(value)}")
    if kind == "str":
        if key.path == "name" and not re.fullmatch(NAME_PATTERN, value):
            raise fail(where, path, f"must be a directory name (letters, digits, _ . -), got {value!r}")
        return value
    if kind == "number":
        if not finite_number(value):
            raise fail(where, path, f"must be a finite number, got {brief(value)}")
        value = float(value)
    if kind == "int" and abs(value) > MAX_INT:
        raise fail(where, path, f"is too large: {brief(value)} (at most {MAX_INT})")
    if kind in ("int", "number") and key.minimum is not None:
        low = value <= key.minimum if key.exclusive else value < key.minimum
        if low:
            raise fail(where, path, f"must be {'>' if key.exclusive else '>='} {key.minimum:g}, got {value!r}")
    return value


# -- the schema for tools, and the reference for the docs ---------------------------------
def _json_type(key: Key) -> dict:
    scalar = {"string": {"type": "string"}, "integer": {"type": "integer"}, "number": {"type": "number"},
              "boolean": {"type": "boolean"}, "choice": {"enum": list(key.choices)}}
    if key.kind in scalar:
        out = dict(scalar[key.kind])
    elif key.kind.startswith("axes-"):
        one = {"int": {"type": "integer"}, "number": {"type": "number"}, "bool": {"type": "boolean"}}[key.kind[5:]]
        if key.minimum is not None:
            one = {**one, ("exclusiveMinimum" if key.exclusive else "minimum"): key.minimum}
        out = {"oneOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": 3}]}
    elif key.kind == "shape":
        out = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 3}
    elif key.path == "boundary":
        out = {"oneOf": [{"enum": ["dirichlet", "neumann"]}, {"type": "object"}]}
    else:
        out = {"type": "object"}
    if key.path == "name":
        out["pattern"] = NAME_PATTERN
    if key.minimum is not None and key.kind in ("integer", "number"):
        out["exclusiveMinimum" if key.exclusive else "minimum"] = key.minimum
    out["description"] = key.doc
    if key.default is not None:
        out["default"] = key.default
    return out


def json_schema() -> dict:
    """Local. A JSON Schema (draft 2020-12) of a job file, made from :data:`KEYS`."""
    props: dict = {}
    required: dict = {}
    for key in KEYS:
        parts = key.path.split(".")
        if parts[-1] == "*":
            props.setdefault(parts[0], {"type": "object", "properties": {}})["additionalProperties"] = {
                "description": key.doc, "oneOf": [{"type": "array"}, {"type": "object"}]}
            continue
        node = props
        for p in parts[:-1]:
            node = node.setdefault(p, {"type": "object", "properties": {}, "additionalProperties": False})
            node = node["properties"]
        node[parts[-1]] = _json_type(key)
        if key.required:
            required.setdefault(".".join(parts[:-1]), []).append(parts[-1])
    for table, names in required.items():  # a required key makes its table required too
        if table:
            props[table]["required"] = names
            required.setdefault("", []).append(table)
    props["run"]["oneOf"] = [{"required": ["steps"], "not": {"required": ["t_end"]}},
                             {"required": ["t_end"], "not": {"required": ["steps"]}}]
    required.setdefault("", []).append("run")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "pympc job file",
            "type": "object", "properties": props, "required": required[""],
            "additionalProperties": False}


def reference() -> str:
    """Local. The job-file reference as a Markdown table (docs/jobs.md holds it verbatim;
    a test keeps them equal)."""
    rows = ["| key | kind | default | meaning |", "|---|---|---|---|"]
    for key in KEYS:
        kind = {"choice": " \\| ".join(f"`{c}`" for c in key.choices)}.get(key.kind, key.kind)
        default = "required" if key.required else ("" if key.default is None else f"`{_toml(key.default)}`")
        rows.append(f"| `{key.path}` | {kind} | {default} | {key.doc} |")
    return "\n".join(rows) + "\n"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{}"
    return repr(value)
