"""The architecture the code promises (docs/architecture.md), checked on the source.

- Imports go down the layers, never up, and never in a cycle: every ``import`` statement
  in pympc/ and solvers/ counts, at module level or inside a function (a lazy import is
  still a dependency). Names looked up at run time from a string (``importlib``: the
  package faces, the command table, a job file's ``"solvers.heat:Heat"``) are not edges.
- No function is longer than 60 lines.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("pympc", "solvers")
MAX_LINES = 60

# Layers, bottom first: a module may import its own layer or lower ones. Longest prefix wins;
# a module that matches none fails the test (a new module must be placed on purpose).
LAYERS = {
    # 0: the runtime and what every layer records into or reads
    "pympc._version": 0, "pympc.errors": 0, "pympc.gridplan": 0, "pympc.fsutil": 0, "pympc.env": 0, "pympc.threads": 0, "pympc.runtime": 0, "pympc.watchdog": 0,
    "pympc.costlog": 0, "pympc.kernels.vector": 0, "pympc.kernels.backend": 0,
    # 1-3: the decomposition layer
    "pympc.grid": 1,
    "pympc.array": 2,
    "pympc.halo": 3, "pympc.bc": 3, "pympc.kernels": 3,
    # 4: subsystems on the decomposition layer
    "pympc.io": 4, "pympc.bsp": 4,
    # 5: what measures and reports them
    "pympc.bsp.report": 5, "pympc.bench": 5,
    # 6: command-line tools (not ranks)
    "pympc.tools": 6, "pympc.__main__": 6,
    # 6: the job layer (job files, run directories, `pympc run`); finds solvers by name
    "pympc.jobs": 6, "pympc.farm": 6, "pympc.slurm": 6,
    # 7: the solvers, a separate package on top
    "solvers": 7,
}
FACES = {"pympc"}  # the lazy package face re-exports every layer by name, at run time


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield module_name(path), path


def layer(name: str):
    best = None
    for prefix, n in LAYERS.items():
        if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, n)
    return None if best is None else best[1]


def imports(name: str, path: pathlib.Path) -> set:
    """The pympc/solvers modules ``name`` imports (``from a import b`` counts as ``a.b``
    when ``a.b`` is a module, else as ``a``)."""
    known = dict(modules())
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # "pympc.io.file.File" -> the module "pympc.io.file"
                t = t.rpartition(".")[0]
            if t and t.split(".")[0] in PACKAGES:
                out.add(t)
    out.discard(name)
    return out


def graph() -> dict:
    return {name: imports(name, path) for name, path in modules()}


def test_the_walk_sees_the_imports():
    g = graph()
    assert "pympc.grid" in g["pympc.array"] and "pympc.runtime" in g["pympc.grid"]
    assert any(dep.startswith("pympc") for dep in g["solvers.heat"])


def test_every_module_has_a_layer():
    unplaced = [name for name, _ in modules() if name not in FACES and layer(name) is None]
    assert not unplaced, f"place these modules in LAYERS (and docs/architecture.md): {unplaced}"


def test_no_import_goes_up_a_layer():
    g = graph()
    up = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
          for a, deps in g.items() if a not in FACES for b in sorted(deps)
          if b not in FACES and layer(a) is not None and layer(b) is not None and layer(b) > layer(a)]
    assert not up, "upward imports:\n" + "\n".join(up)
    assert not [a for a, deps in g.items() if a.startswith("pympc") and any(d.startswith("solvers") for d in deps)]


def test_no_import_cycle():
    g = graph()
    # Tarjan's strongly connected components; a component of more than one module is a cycle
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def long_functions():
    for name, path in modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # def line to last line, docstring included
                if n > MAX_LINES:
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)"


def test_the_length_check_sees_functions():
    sizes = [node.end_lineno - node.lineno + 1 for _, path in modules()
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.FunctionDef)]
    assert len(sizes) > 100 and max(sizes) > 20


def test_no_function_is_longer_than_60_lines():
    long = list(long_functions())
    assert not long, f"functions over {MAX_LINES} lines (split them into named steps):\n" + "\n".join(long)


@pytest.mark.parametrize("name,expected", [("pympc.kernels.stencils", 3), ("pympc.kernels.vector", 0),
                                           ("pympc.bsp.report", 5), ("pympc.bsp.core", 4),
                                           ("solvers.heat", 7), ("pympc.nothing", None)])
def test_layer_lookup(name, expected):
    assert layer(name) == expected
