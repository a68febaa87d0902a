"""DESIGN.md's rule: every public function and method in pympc/ and solvers/ says first
whether it is Collective or Local."""

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
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith("_"):
                    yield f"{rel}:{child.lineno} {prefix}{child.name}", ast.get_docstring(child) or ""


def test_checker_sees_functions():
    names = [n for n, _ in public_functions("pympc")]
    assert any(n.endswith(" check_all") for n in names)  # the checker really walks the tree


def test_every_public_function_states_collective_or_local():
    missing = [name for root in ("pympc", "solvers") for name, doc in public_functions(root)
               if not doc.lstrip().startswith(("Collective.", "Local."))]
    assert not missing, "docstrings must start with 'Collective.' or 'Local.':\n" + "\n".join(missing)
