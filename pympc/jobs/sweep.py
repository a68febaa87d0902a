"""A job file's ``[sweep]``: lists (or ranges) of values for key paths, expanded into
independent runs numbered from 0.

Order, the one Slurm arrays and the task farm use too: with ``mode = "product"`` (the
default) every combination, the first key of the table varying slowest and the last
fastest (as nested loops written in the file's order, ``itertools.product``); with
``mode = "zip"`` point ``k`` takes the ``k``-th value of every list (all of one length).
"""

from __future__ import annotations

import copy
import itertools
import math

from .schema import BY_PATH, FREE, fail, finite_number, suggest

#: a sweep has at most this many points (each is a run directory)
MAX_POINTS = 100000


def values(spec, path: str, where: str) -> list:
    """Local. The values of one sweep entry: a non-empty list, or a range table
    ``{start, stop, num}`` (``num`` evenly spaced values, both ends included) or
    ``{start, stop, step}`` (``start``, ``start + step``, ... up to ``stop`` included;
    integers stay integers)."""
    here = f"sweep.{path}"
    if isinstance(spec, list):
        if not spec:
            raise fail(where, here, "must not be an empty list")
        return list(spec)
    if not isinstance(spec, dict):
        raise fail(where, here, f"must be a list of values or a range table {{start, stop, num}} or "
                   f"{{start, stop, step}}, got {spec!r}")
    keys = set(spec)
    if keys not in ({"start", "stop", "num"}, {"start", "stop", "step"}):
        raise fail(where, here, f"a range takes start, stop and num (or step); got {sorted(keys)}")
    nums = [spec[k] for k in sorted(keys)]
    if not all(finite_number(x) for x in nums):
        raise fail(where, here, f"start, stop and num/step must be finite numbers, got {spec!r}")
    start, stop = spec["start"], spec["stop"]
    if "num" in spec:
        n = spec["num"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_POINTS:
            raise fail(where, here, f"num must be an integer from 1 to {MAX_POINTS}, got {n!r}")
        if n == 1:
            return [start]
        if all(isinstance(x, int) for x in (start, stop)) and (stop - start) % (n - 1) == 0:
            return [start + (stop - start) // (n - 1) * i for i in range(n)]  # integers stay integers
        return [start + (stop - start) * i / (n - 1) for i in range(n)]
    step = spec["step"]
    if not step or (stop - start) / step < 0:
        raise fail(where, here, f"step {step!r} never reaches stop {stop!r} from start {start!r}")
    count = int(math.floor((stop - start) / step * (1 + 1e-12) + 1e-9)) + 1
    if count > MAX_POINTS:
        raise fail(where, here, f"the range has {count} values: more than {MAX_POINTS}")
    return [start + i * step for i in range(count)]


def check_path(path: str, where: str) -> None:
    """Local. A sweep key must name a key of the job file (``physics.alpha``,
    ``run.t_end``, ``grid.shape``...), never the name, the solver or the sweep itself."""
    top = path.split(".")[0]
    if path in ("name", "solver") or top == "sweep":
        raise fail(where, f"sweep.{path}", "cannot be swept (each point keeps the job's name and solver)")
    if path in BY_PATH or (top in FREE and "." in path) or path.startswith("output.units."):
        return
    options = [k for k in BY_PATH if k not in ("name", "solver") and not k.startswith("sweep")] + \
        ["physics.<key>", "initial.<key>", "boundary.<side>"]
    raise fail(where, f"sweep.{path}", "is not a key path of a job file" + suggest(path, options)
               + " (write the full path, e.g. \"physics.alpha\")")


def expand(doc: dict, where: str) -> list:
    """Local. ``[(values, doc)]``, one per point in the documented order: ``values`` maps
    each swept key path to its value, ``doc`` is the job with them set (a deep copy). A
    job without ``[sweep]`` gives ``[(None, doc)]``."""
    table = doc.get("sweep")
    if table is None:
        return [(None, doc)]
    if not isinstance(table, dict):
        raise fail(where, "sweep", "must be a table ([sweep])")
    mode = table.get("mode", "product")
    if mode not in ("product", "zip"):
        raise fail(where, "sweep.mode", f"must be 'product' or 'zip', got {mode!r}" + suggest(mode, ["product", "zip"]))
    lists = {}
    for path, spec in _entries(table):
        check_path(path, where)
        lists[path] = values(spec, path, where)
    if not lists:
        raise fail(where, "sweep", "names no key to sweep (e.g. \"physics.alpha\" = [0.5, 1.0])")
    if mode == "zip" and len({len(v) for v in lists.values()}) > 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in lists.items())
        raise fail(where, "sweep", f"mode = \"zip\" needs lists of one length, got {sizes}")
    total = math.prod(len(v) for v in lists.values()) if mode == "product" else len(next(iter(lists.values())))
    if total > MAX_POINTS:
        raise fail(where, "sweep", f"{total} points: more than {MAX_POINTS} runs")
    combos = zip(*lists.values()) if mode == "zip" else itertools.product(*lists.values())
    base = {k: v for k, v in doc.items() if k != "sweep"}
    points = []
    for combo in combos:
        point = dict(zip(lists, combo))
        new = copy.deepcopy(base)
        for path, value in point.items():
            _set(new, path, value, where)
        points.append((point, new))
    return points


def _entries(table: dict, prefix: str = ""):
    """The sweep's ``(key path, values)`` in the file's order. A dotted key written
    without quotes (``physics.alpha = [...]``) is a nested table in TOML: it is flattened;
    a range table (``{start, stop, num}``) is a value."""
    for key, spec in table.items():
        if not prefix and key == "mode":
            continue
        if isinstance(spec, dict) and not set(spec) & {"start", "stop", "num", "step"}:
            yield from _entries(spec, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", spec


def _set(doc: dict, path: str, value, where: str) -> None:
    node = doc
    parts = path.split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise fail(where, f"sweep.{path}", f"{p} is not a table in this job file")
        node = nxt
    node[parts[-1]] = value
