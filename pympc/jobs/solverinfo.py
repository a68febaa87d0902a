"""Finding a job's solver (and a formula's ``"module:func"``) by name, in two ways.

* **Read** (before MPI starts: ``pympc check``, the parent of ``pympc run -n``): the
  module's source is found and parsed, never run, since importing a solver imports the
  MPI runtime. The class must be defined there; its constructor's keyword arguments and
  their literal defaults, and its ``job_check``, are read from the syntax tree.
* **Imported** (in the ranks, before anything is written): the class itself, checked to
  be a :class:`solvers.loop.TimeLoop`, its signature read with :mod:`inspect`.

Names are resolved with the job file's directory and the working directory in front
of ``sys.path``. Built-in solvers are named by a word (:data:`BUILTIN`).
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass

from .schema import fail, suggest

BUILTIN = {"heat": "solvers.heat:Heat", "wave": "solvers.wave:Wave", "poisson": "solvers.poisson:Poisson",
           "implicit_heat": "solvers.implicit:ImplicitHeat", "grayscott": "solvers.grayscott:GrayScott"}
TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
#: a default that is not a literal (read from source) or not JSON-able
UNKNOWN = object()
#: the "default" of an argument that has none (the job must give it)
REQUIRED = object()


@dataclass
class SolverInfo:
    """Local. What the job layer knows of a solver class: ``target``
    (``"module:Class"``), ``params`` (keyword -> default, :data:`REQUIRED` when it has
    none; or None when the constructor takes ``**kwargs`` or cannot be read),
    ``job_check`` (``"module:function"`` or None) and, when imported, the class."""

    target: str
    params: dict | None
    job_check: str | None
    cls: type | None = None


@contextmanager
def search_path(dirs):
    """Local. ``dirs`` in front of ``sys.path`` for the block."""
    added = [d for d in dirs if d not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for d in added:
            if d in sys.path:
                sys.path.remove(d)


def find(module: str):
    """Local. The spec of ``module`` found on ``sys.path`` without running anything: a
    package's ``__init__`` is not imported to look inside it (``importlib.util.find_spec``
    would run it). A module already imported gives its own spec. None when not found."""
    if module in sys.modules:
        return getattr(sys.modules[module], "__spec__", None)
    spec, search = None, None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[:i + 1])
        try:  # a top-level name may be found by any finder (an editable install's too): it runs nothing
            spec = importlib.util.find_spec(name) if i == 0 else importlib.machinery.PathFinder.find_spec(name, search)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        search = spec.submodule_search_locations
        if search is None and i < len(parts) - 1:
            return None  # a module, not a package, with something below it
    return spec


def _source(module: str, where: str, path: str):
    """The parsed source of ``module`` (found, not run), or None when it has none."""
    spec = find(module)
    if spec is None:
        raise fail(where, path, f"no module named {module!r} (searched the job file's directory, the "
                   "working directory and sys.path)")
    try:
        text = spec.loader.get_source(module) if spec.loader is not None else None
    except (ImportError, OSError):
        text = None
    if text is None:
        return None
    try:
        return ast.parse(text)
    except SyntaxError as e:
        raise _syntax_error(module, e, where, path, spec.origin)


def _syntax_error(module, e: SyntaxError, where, path, filename=None):
    """The one-line error for a module (or a module it imports) that does not parse."""
    return fail(where, path, f"module {module!r} has a syntax error ({filename or e.filename}, "
                f"line {e.lineno}): {e.msg}")


def _toplevel(tree, kind):
    return {n.name: n for n in tree.body if isinstance(n, kind)}


def _literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return UNKNOWN


def _read_class(node: ast.ClassDef):
    """``(params, job_check)`` from a class's syntax tree."""
    job_check, params = None, None
    for item in node.body:
        if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "job_check" for t in item.targets):
            value = _literal(item.value)
            job_check = value if isinstance(value, str) else None
        if isinstance(item, ast.FunctionDef) and item.name == "__init__" and item.args.kwarg is None:
            a = item.args
            pos = a.posonlyargs + a.args
            defaults = [REQUIRED] * (len(pos) - len(a.defaults)) + [_literal(d) for d in a.defaults]
            params = {arg.arg: d for arg, d in list(zip(pos, defaults))[2:]}  # after self, decomp
            params.update({arg.arg: REQUIRED if d is None else _literal(d) for arg, d in zip(a.kwonlyargs, a.kw_defaults)})
    return params, job_check


def read(name: str, where: str, path: str = "solver") -> SolverInfo:
    """Local. The solver named ``name`` (a word of :data:`BUILTIN` or
    ``"module:Class"``), read from its source without running it."""
    target = _target(name, where, path)
    module, cls = target.split(":")
    tree = _source(module, where, path)
    if tree is None:  # no source to read (a compiled module): the ranks check it
        return SolverInfo(target, None, None)
    classes = _toplevel(tree, ast.ClassDef)
    if cls not in classes:
        assigned = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.ImportFrom, ast.Import))
                    for t in getattr(n, "targets", [])  if isinstance(t, ast.Name)}
        imported = {a.asname or a.name for n in tree.body if isinstance(n, (ast.ImportFrom, ast.Import)) for a in n.names}
        if cls in assigned | imported:  # defined elsewhere and re-exported: the ranks check it
            return SolverInfo(target, None, None)
        raise fail(where, path, f"module {module!r} defines no class {cls!r}" + suggest(cls, classes)
                   + (f" (its classes: {', '.join(sorted(classes))})" if classes else ""))
    params, job_check = _read_class(classes[cls])
    return SolverInfo(target, params, job_check)


def _target(name, where, path) -> str:
    if not isinstance(name, str):
        raise fail(where, path, f"must be a string, got {name!r}")
    if name in BUILTIN:
        return BUILTIN[name]
    if not TARGET.match(name):
        raise fail(where, path, f"unknown solver {name!r}" + suggest(name, BUILTIN) + ": use one of "
                   f"{', '.join(BUILTIN)} or your own class as \"package.module:Class\"")
    return name


def load(name: str, where: str, path: str = "solver") -> SolverInfo:
    """Local. The solver named ``name``, imported (in a rank) and checked to be a
    :class:`solvers.loop.TimeLoop` subclass; its constructor's keywords from
    :func:`inspect.signature`."""
    target = _target(name, where, path)
    cls = resolve(target, where, path)
    loop = importlib.import_module("solvers.loop").TimeLoop
    if not (isinstance(cls, type) and issubclass(cls, loop)):
        raise fail(where, path, f"{target} is not a solvers.loop.TimeLoop subclass (a job's solver follows "
                   "the time-stepping interface: docs/solvers/timeloop.md)")
    sig = inspect.signature(cls.__init__)
    items = list(sig.parameters.values())[2:]
    if any(p.kind is p.VAR_KEYWORD for p in items):
        params = None
    else:
        params = {p.name: (REQUIRED if p.default is p.empty else p.default) for p in items
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return SolverInfo(target, params, getattr(cls, "job_check", None), cls)


def resolve(target: str, where: str, path: str):
    """Local. The object ``"module:name"`` names, imported; a missing module or name is
    an :class:`~pympc.errors.InputError` naming the key ``path``."""
    module, name = target.split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise fail(where, path, f"cannot import {module!r}: {e}")
    except SyntaxError as e:  # the parent saw it in the source; a rank sees it here
        raise _syntax_error(module, e, where, path)
    except Exception as e:  # the module's own code failed as it was imported: say where, once
        tb = traceback.extract_tb(e.__traceback__)[-1]
        raise fail(where, path, f"importing {module!r} raised {type(e).__name__}: {e} "
                   f"({os.path.basename(tb.filename)}, line {tb.lineno})") from None
    if not hasattr(mod, name):
        raise fail(where, path, f"module {module!r} has no {name!r}"
                   + suggest(name, [n for n in dir(mod) if not n.startswith("_")]))
    return getattr(mod, name)


def read_function(target: str, where: str, path: str) -> None:
    """Local. Check, from its source, that ``"module:func"`` names a function defined (or
    imported) at the top of the module (a formula's alternative), without running it."""
    module, name = target.split(":")
    tree = _source(module, where, path)
    if tree is None:
        return
    if name in _toplevel(tree, ast.ClassDef):
        raise fail(where, path, f"{target} is a class: a field takes a function of the coordinates")
    names = set(_toplevel(tree, ast.FunctionDef))
    for n in tree.body:
        if isinstance(n, ast.Assign):
            names |= {t.id for t in n.targets if isinstance(t, ast.Name)}
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in n.names}
    if name not in names:
        raise fail(where, path, f"module {module!r} defines no function {name!r}" + suggest(name, names))
