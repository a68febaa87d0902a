"""The project's rule (docs/architecture.md): every public function, method and class in
pympc/ and solvers/ says first whether it is Collective (every rank of the communicator
calls it), Neighbour-collective (only neighbours talk) or Local."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def public_functions(root):
    for path in sorted((ROOT / root).rglob("*.py")):
        rel = path.relative_to(ROOT)
        if any(p.startswith((".", "_")) and p != "__init__.py" for p in rel.parts):
            continue
        tree = ast.parse(path.read_text(), str(path))
        todo = [(tree, "")]
        while todo:
            node, prefix = todo.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                    todo.append((child, f"{prefix}{child.name}."))
                    yield f"{rel}:{child.lineno} class {prefix}{child.name}", ast.get_docstring(child) or ""
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith("_"):
                    yield f"{rel}:{child.lineno} {prefix}{child.name}", ast.get_docstring(child) or ""


KINDS = ("Collective.", "Neighbour-collective.", "Local.")


def test_checker_sees_functions_and_classes():
    names = [n for n, _ in public_functions("pympc")]
    assert any(n.endswith(" check_all") for n in names)  # the checker really walks the tree
    assert any(n.endswith(" class Decomposition") for n in names)


def test_every_public_function_and_class_states_collective_or_local():
    missing = [name for root in ("pympc", "solvers") for name, doc in public_functions(root)
               if not doc.lstrip().startswith(KINDS)]
    assert not missing, f"docstrings must start with one of {KINDS}:\n" + "\n".join(missing)


def test_one_docstring_style():
    # mkdocs.yml declares sphinx-style docstrings: no numpy/google section headers
    import re

    style = re.search(r"docstring_style:\s*(\w+)", (ROOT / "mkdocs.yml").read_text()).group(1)
    assert style == "sphinx"
    google = re.compile(r"^\s*(Args|Arguments|Returns|Raises|Yields|Attributes|Parameters|Examples?):\s*$")
    numpy_rule = re.compile(r"^\s*-{3,}\s*$")
    bad = [f"{name}" for root in ("pympc", "solvers") for name, doc in public_functions(root)
           if any(google.match(line) or numpy_rule.match(line) for line in doc.splitlines())]
    assert not bad, "google/numpy-style sections in a sphinx-style code base:\n" + "\n".join(bad)
