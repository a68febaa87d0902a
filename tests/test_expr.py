"""The job files' formula language (pympc.jobs.expr): bit-identical to numpy, and safe."""

import pathlib
import time

import numpy as np
import pytest

from pympc.errors import InputError
from pympc.jobs.expr import FUNCTIONS, GRAMMAR, MAX_LENGTH, parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
WHERE = "jobs/a.toml: initial.u0"


def _grids(shape=(7, 5), seed=0):
    """Random dense coordinate arrays with values in [-0.2, 1.2), zeros and halves among them."""
    rng = np.random.default_rng(seed)
    X, Y = (rng.random(shape) * 1.4 - 0.2 for _ in range(2))
    X[0, 0], Y[0, 1], X[1, 1] = 0.0, 0.5, 0.5
    return X, Y


# (formula, the same expression in numpy): evaluated on the same arrays, equal bit for bit.
SAME = [
    ("exp(-((x-0.5)**2 + (y-0.5)**2)/0.01)", lambda X, Y: np.exp(-((X - 0.5)**2 + (Y - 0.5)**2) / 0.01)),
    ("x**2", lambda X, Y: X**2),
    ("x**0.5 + y**-1", lambda X, Y: X**0.5 + Y**-1),
    ("x**3 - 2**x", lambda X, Y: X**3 - 2**X),
    ("2*x", lambda X, Y: 2 * X),
    ("x/3 - y//0.25 + x % 0.3", lambda X, Y: X / 3 - Y // 0.25 + X % 0.3),
    ("-x**2 + +y", lambda X, Y: -X**2 + +Y),
    ("sin(pi*x)*cos(2*pi*y)", lambda X, Y: np.sin(np.pi * X) * np.cos(2 * np.pi * Y)),
    ("where((x-0.5)**2 + (y-0.5)**2 < 0.15**2, 1, 0)",
     lambda X, Y: np.where((X - 0.5)**2 + (Y - 0.5)**2 < 0.15**2, 1.0, 0.0)),
    ("x if x < y else 2*y", lambda X, Y: np.where(X < Y, X, 2 * Y)),
    ("x < 0.5", lambda X, Y: X < 0.5),
    ("0 <= x < y", lambda X, Y: np.logical_and(0 <= X, X < Y)),
    ("x > 0.2 and not y >= 0.9 or x == 0.5", lambda X, Y: np.logical_or(
        np.logical_and(X > 0.2, np.logical_not(Y >= 0.9)), X == 0.5)),
    ("arctan2(y, x) + hypot(x, y) + maximum(x, y) - minimum(x, 0.3)",
     lambda X, Y: np.arctan2(Y, X) + np.hypot(X, Y) + np.maximum(X, Y) - np.minimum(X, 0.3)),
    ("sqrt(abs(x - y)) * sign(x - 0.5) + floor(10*x) + ceil(10*y) + heaviside(x - 0.5, 0.5)",
     lambda X, Y: np.sqrt(abs(X - Y)) * np.sign(X - 0.5) + np.floor(10 * X) + np.ceil(10 * Y)
     + np.heaviside(X - 0.5, 0.5)),
    ("log(x) + log10(y) + log2(x + 1) + tanh(x) + clip(x, 0.25, 0.75) + cbrt(y) + exp2(x)",
     lambda X, Y: np.log(X) + np.log10(Y) + np.log2(X + 1) + np.tanh(X) + np.clip(X, 0.25, 0.75)
     + np.cbrt(Y) + np.exp2(X)),
    ("x / (y - 0.5)", lambda X, Y: X / (Y - 0.5)),  # inf and nan included
]


@pytest.mark.parametrize("text,reference", SAME, ids=[t for t, _ in SAME])
def test_a_formula_is_bit_identical_to_the_numpy_expression(text, reference):
    X, Y = _grids()
    got = parse(text, ("x", "y"))(X, Y)
    with np.errstate(all="ignore"):
        want = reference(X, Y)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def test_sparse_meshgrid_broadcasts():
    axes = (np.linspace(0, 1, 6), np.linspace(0, 2, 4), np.linspace(-1, 1, 3))
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    formula = parse("x + 10*y - 100*z")
    got = formula(*grids)
    dense = np.meshgrid(*axes, indexing="ij")
    assert got.shape == (6, 4, 3)
    assert got.tobytes() == (dense[0] + 10 * dense[1] - 100 * dense[2]).tobytes()
    assert formula.names == ("x", "y", "z")


def test_a_constant_formula_is_a_scalar_that_broadcasts():
    formula = parse("1.5", ("x", "y"))
    assert formula.names == ()
    value = formula(*np.meshgrid(np.arange(3.0), np.arange(4.0), indexing="ij", sparse=True))
    assert np.broadcast_to(value, (3, 4)).tolist() == [[1.5] * 4] * 3
    assert parse("2*pi", ()).__call__() == 2 * np.pi


def test_names_text_and_repr():
    formula = parse("sin(y) + 1", ("x", "y"))
    assert formula.names == ("y",) and formula.text == "sin(y) + 1"
    assert "sin(y) + 1" in repr(formula)
    with pytest.raises(TypeError):
        formula(np.zeros(3))  # two coordinates, one given: a caller's bug, not a user's


def test_constants_are_named_numbers():
    X, Y = _grids()
    formula = parse("amp*exp(-x/width) + e", ("x", "y"), constants={"amp": 2, "width": 0.25, "e": 1.0})
    assert formula(X, Y).tobytes() == (2.0 * np.exp(-X / 0.25) + 1.0).tobytes()
    assert parse("e", ()).__call__() == np.e  # the built-in e when the job has none
    for bad, message in (({"sin": 1.0}, "function"), ({"x": 1.0}, "coordinate"), ({"k": "3"}, "real number"),
                         ({"k": True}, "real number")):
        with pytest.raises(InputError, match=message):
            parse("1", ("x", "y"), constants=bad, where=WHERE)


def test_integers_are_floats_and_a_tower_of_powers_does_not_hang():
    start = time.perf_counter()
    assert parse("9**9**9**9", ())() == np.inf
    assert parse("1" + "0" * 400, ())() == np.inf
    assert parse("7 // 2", ())() == 3.0 and isinstance(parse("7 // 2", ())(), np.float64)
    assert time.perf_counter() - start < 1.0


def test_booleans_count_as_one_and_zero_in_arithmetic():
    X, Y = _grids()
    got = parse("-(x < 0.5) + (y < 0.5) - (x < y) + sin(x > 0.3)", ("x", "y"))(X, Y)
    b = [a.astype(np.float64) for a in (X < 0.5, Y < 0.5, X < Y, X > 0.3)]
    assert got.dtype == np.float64
    assert got.tobytes() == (-b[0] + b[1] - b[2] + np.sin(b[3])).tobytes()


HOSTILE = [
    ("__import__('os')", "'__import__' is not allowed"),
    ("__import__('os').system('true')", "attribute access"),
    ("().__class__", "attribute access"),
    ("().__class__.__bases__[0].__subclasses__()", "not allowed"),
    ("x.__class__", "attribute access"),
    ("open('f')", "'open' is not allowed"),
    ("eval('1')", "'eval' is not allowed"),
    ("exec", "'exec' is not allowed"),
    ("globals()", "'globals' is not allowed"),
    ("lambda: 1", "lambda"),
    ("[x for x in y]", "comprehensions"),
    ("(x for x in y)", "comprehensions"),
    ("x[0]", r"indexing \(\[...\]\)"),
    ('"s"', "may not contain strings"),
    ("b'x'", "may not contain strings"),
    ('f"{x}"', "may not contain strings"),
    ("(y := 1)", r"assignment \(:=\)"),
    ("sin(x, y)", "function sin takes 1 argument, got 2"),
    ("sin()", "function sin takes 1 argument, got 0"),
    ("where(x < 0, 1)", "function where takes 3 arguments, got 2"),
    ("sin(x=1)", "keyword arguments"),
    ("sin(*x)", "starred"),
    ("*x", "syntax error"),
    ("1 +", "syntax error"),
    ("x +* 2", "syntax error at column 4"),
    ("x; y", "syntax error"),
    ("import os", "syntax error"),
    ("", "empty formula"),
    ("   ", "empty formula"),
    ("x" + " " * MAX_LENGTH, f"formula longer than {MAX_LENGTH} characters"),
    ("x+y" * 600, "formula too large"),
    ("(" * 300 + "x" + ")" * 300, "syntax error"),
    ("sin(" * 150 + "x" + ")" * 150, "nested too deeply"),
    ("-" * 150 + "x", "nested too deeply"),
    ("sinn(x)", "did you mean sin"),
    ("sqr(x)", "did you mean sqrt"),
    ("pii*x", "did you mean pi"),
    ("z", "coordinate 'z' is not available here"),
    ("sin", "sin is a function"),
    ("x(1)", "x is not a function"),
    ("[1, 2]", "lists"),
    ("(1, 2)", "tuples"),
    ("{1: 2}", "dicts"),
    ("x @ y", "operator @"),
    ("x | y", r"operator \|"),
    ("~x", "operator ~"),
    ("x is y", "comparison is"),
    ("x in y", "comparison in"),
    ("True", "True is not allowed"),
    ("None", "None is not allowed"),
    ("1j", "1j is not allowed"),
    ("...", "Ellipsis is not allowed"),
    ("\x00", "syntax error"),
    ("await x", "await"),
    ("x if y", "syntax error"),
    ("print\n(x)", "syntax error at line 2"),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text,message", HOSTILE, ids=[repr(t[:40]) for t, _ in HOSTILE])
def test_a_hostile_or_malformed_formula_is_refused_at_parse_time(text, message):
    with pytest.raises(InputError, match=message) as info:
        parse(text, ("x", "y"), where=WHERE)
    text = str(info.value)
    assert text.startswith(WHERE + ": ") and "\n" not in text


def test_a_formula_must_be_a_string():
    with pytest.raises(InputError, match=r"^jobs/a.toml: initial.u0: a formula is a string"):
        parse(1.5, ("x",), where=WHERE)


def test_an_unknown_name_lists_what_is_allowed():
    with pytest.raises(InputError) as info:
        parse("sin(q)", ("x", "y"), constants={"alpha": 1.0}, where=WHERE)
    message = str(info.value)
    assert "names: x, y, pi, e, alpha;" in message
    assert all(name in message for name in FUNCTIONS)


def test_a_multi_line_formula_parses():
    X, Y = _grids()
    formula = parse("\n    (exp(-x)\n     * cos(y))\n    ", ("x", "y"))  # a TOML multi-line string
    assert formula(X, Y).tobytes() == (np.exp(-X) * np.cos(Y)).tobytes()


def test_the_grammar_is_in_the_docs():
    assert GRAMMAR in (ROOT / "docs" / "formulas.md").read_text()
    assert all(f"`{name}(" in GRAMMAR for name in FUNCTIONS)


def test_the_module_evaluates_no_text():
    source = (ROOT / "pympc" / "jobs" / "expr.py").read_text()
    assert "eval(" not in source.replace("_eval(", "") and "exec(" not in source
    assert "compile(" not in source and "import mpi4py" not in source


def test_the_docs_examples_parse():
    from pympc.jobs.spec import tomllib

    page = (ROOT / "docs" / "formulas.md").read_text()
    blocks = page.split("```toml\n")[1:]
    assert len(blocks) >= 3
    for block in blocks:
        for key, text in tomllib.loads(block.split("```")[0])["initial"].items():
            formula = parse(text, ("x", "y"), where=f"docs: initial.{key}")
            assert formula.names == ("x", "y")


def test_a_formula_pickles():
    import pickle

    X, Y = _grids()
    formula = parse("amp*sin(x) + y", ("x", "y"), constants={"amp": 3.0})
    again = pickle.loads(pickle.dumps(formula))
    assert again.text == formula.text and again(X, Y).tobytes() == formula(X, Y).tobytes()
