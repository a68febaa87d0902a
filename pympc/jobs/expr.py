"""The formula language of job files: ``u0 = "exp(-((x-0.5)**2 + (y-0.5)**2)/0.01)"``.

A formula is parsed with :func:`ast.parse` into a syntax tree, every node of the tree is
checked against the tables below (node kinds, names, functions and their argument counts,
size and depth), and evaluation walks that tree calling numpy: no text is ever given to
``eval``, ``exec`` or ``compile``. Everything that can be wrong with a formula is found by
:func:`parse`, before any rank computes; evaluation cannot fail (floating-point exceptions
give inf or nan, which the caller checks).

The module imports only the standard library, numpy and :mod:`pympc.errors`: ``pympc
check`` parses formulas in a process that must not start MPI.

The tables (:data:`FUNCTIONS`, :data:`CONSTANTS` and the operators) are the language: the
parser, the evaluator and the documented grammar (:data:`GRAMMAR`, printed in
docs/formulas.md) all read them, so the documentation cannot drift from the code.
"""

import ast
import difflib
import functools
import operator

import numpy as np

from pympc.errors import InputError

MAX_LENGTH = 2000
MAX_DEPTH = 100
MAX_NODES = 1000

#: name -> (numpy function, number of arguments); every call is positional, fixed arity.
FUNCTIONS = {
    "sin": (np.sin, 1), "cos": (np.cos, 1), "tan": (np.tan, 1),
    "arcsin": (np.arcsin, 1), "arccos": (np.arccos, 1), "arctan": (np.arctan, 1),
    "arctan2": (np.arctan2, 2), "hypot": (np.hypot, 2),
    "sinh": (np.sinh, 1), "cosh": (np.cosh, 1), "tanh": (np.tanh, 1),
    "arcsinh": (np.arcsinh, 1), "arccosh": (np.arccosh, 1), "arctanh": (np.arctanh, 1),
    "exp": (np.exp, 1), "exp2": (np.exp2, 1), "expm1": (np.expm1, 1),
    "log": (np.log, 1), "log10": (np.log10, 1), "log2": (np.log2, 1), "log1p": (np.log1p, 1),
    "sqrt": (np.sqrt, 1), "cbrt": (np.cbrt, 1), "square": (np.square, 1),
    "abs": (np.abs, 1), "sign": (np.sign, 1), "heaviside": (np.heaviside, 2),
    "floor": (np.floor, 1), "ceil": (np.ceil, 1), "trunc": (np.trunc, 1),
    "minimum": (np.minimum, 2), "maximum": (np.maximum, 2),
    "clip": (np.clip, 3), "where": (np.where, 3),
}

#: The built-in named numbers (float64). No ``inf`` or ``nan``: an initial field must be
#: finite. A ``constants=`` entry of :func:`parse` with the same name takes precedence.
CONSTANTS = {"pi": np.float64(np.pi), "e": np.float64(np.e)}

# Operators: ast node type -> (symbol, function). The arithmetic ones are Python's own
# operators applied to numpy values, so a formula computes exactly what the same numpy
# expression computes, bit for bit (numpy's fast paths for x**2, x**0.5, ... included).
_BINARY = {
    ast.Add: ("+", operator.add), ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul), ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv), ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
_UNARY = {ast.UAdd: ("+", operator.pos), ast.USub: ("-", operator.neg),
          ast.Not: ("not", np.logical_not)}
_COMPARE = {
    ast.Lt: ("<", operator.lt), ast.LtE: ("<=", operator.le), ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge), ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne),
}
_BOOLEAN = {ast.And: ("and", np.logical_and), ast.Or: ("or", np.logical_or)}
# Python's other operators, named in the messages and the documentation that refuse them.
_OTHER_OPERATORS = {
    ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
    ast.RShift: ">>", ast.Invert: "~", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
    ast.NotIn: "not in",
}

# Node kinds with a message of their own; any other kind the checker does not know is
# refused by name.
_REFUSED = {
    ast.Attribute: "attribute access (.) is not allowed",
    ast.Subscript: "indexing ([...]) is not allowed",
    ast.Slice: "slices are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed (a formula is one expression)",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Starred: "starred arguments (*) are not allowed",
    ast.JoinedStr: "a formula may not contain strings",
    ast.FormattedValue: "a formula may not contain strings",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.Await: "await is not allowed",
}


def _alternatives(table, kinds=None, quote='"', between=" | ") -> str:
    """Local. The symbols of ``table`` (those of ``kinds`` only, if given), for the grammar."""
    symbols = [symbol for kind, (symbol, _) in table.items() if kinds is None or kind in kinds]
    return between.join(f"{quote}{symbol}{quote}" for symbol in symbols)


def _grammar() -> str:
    """Local. The language's documentation, in markdown, written from the tables."""
    calls = "\n".join(f"| `{name}({', '.join('abc'[:arity])})` | `numpy.{function.__name__}` |"
                      for name, (function, arity) in FUNCTIONS.items())
    constants = ", ".join(f"`{name}` = {float(value)!r}" for name, value in CONSTANTS.items())
    return f"""## Grammar

```
formula     = conditional
conditional = disjunction [ "if" disjunction "else" conditional ]
disjunction = conjunction {{ "or" conjunction }}
conjunction = inversion {{ "and" inversion }}
inversion   = "not" inversion | comparison
comparison  = sum {{ ( {_alternatives(_COMPARE)} ) sum }}
sum         = term {{ ( {_alternatives(_BINARY, (ast.Add, ast.Sub))} ) term }}
term        = factor {{ ( {_alternatives(_BINARY, (ast.Mult, ast.Div, ast.FloorDiv, ast.Mod))} ) factor }}
factor      = ( {_alternatives(_UNARY, (ast.UAdd, ast.USub))} ) factor | power
power       = primary [ {_alternatives(_BINARY, (ast.Pow,))} factor ]
primary     = number | name | function "(" conditional {{ "," conditional }} ")"
            | "(" conditional ")"
```

- `number`: a Python number literal: `2`, `0.5`, `.5`, `1e-3`, `1_000`.
- `name`: a coordinate (`x`, `y`, `z`: as many as the grid has dimensions), a constant
  ({constants}), or a named number the job provides (which takes precedence over a constant of the same
  name).
- `function`: one of the functions below, called with exactly its number of arguments,
  all positional.

## Functions

| call | computes |
|---|---|
{calls}

`where(a, b, c)` is `b` where `a` is true (non-zero) and `c` elsewhere; `clip(a, b, c)`
limits `a` to the interval from `b` to `c`.

## Semantics

- Every number is a 64-bit float, integer literals too: `9**9**9` is `inf` at once, never
  a huge integer. A formula computes exactly (bit for bit) what the same numpy expression
  computes on float64 arrays.
- Precedence and associativity are Python's: `**` binds tighter than a unary minus and
  groups from the right (`-x**2` is `-(x**2)`, `2**3**2` is `2**9`).
- Comparisons give booleans; a chain `a < b < c` means `a < b and b < c`. In arithmetic
  and as a function's argument a boolean counts as 1.0 (true) or 0.0 (false).
- `and`, `or` and `not` work element by element (`numpy.logical_and`, `logical_or`,
  `logical_not`); `a if cond else b` is `numpy.where(cond, a, b)`. Both sides are always
  computed.
- Floating-point exceptions (division by zero, overflow, the logarithm of a negative
  number) are silent and give `inf` or `nan`; the job then refuses a field that is not
  finite.
- A formula has at most {MAX_LENGTH} characters and {MAX_NODES} terms, nested at most
  {MAX_DEPTH} deep.
- Everything else is refused when the job file is checked, before anything runs: any
  other name or function, attribute access (`.`), indexing (`[]`), strings, `lambda`,
  comprehensions, lists, tuples, sets and dicts, keyword and starred (`*`) arguments,
  assignment (`:=`), and the operators {", ".join(f"`{symbol}`" for symbol in _OTHER_OPERATORS.values())}.
"""


#: The language's documentation (markdown), written from the tables; docs/formulas.md has it.
GRAMMAR = _grammar()


class _Scope:
    """Local. What a formula may name, and where its errors are reported."""

    def __init__(self, coords, constants, where):
        self.coords = tuple(coords)
        self.where = where
        self.values = dict(CONSTANTS)
        self.used = set()
        for name, value in (constants or {}).items():
            if name in self.coords or name in FUNCTIONS:
                self.fail(f"the constant {name!r} has the name of a "
                          f"{'coordinate' if name in self.coords else 'function'}")
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                self.fail(f"the constant {name!r} must be a real number, got {type(value).__name__}")
            self.values[name] = np.float64(value)

    def fail(self, message):
        """Local. Raise the formula's InputError, on one line."""
        raise InputError(f"{self.where}: " + " ".join(str(message).split()))

    def unknown(self, name, kind, candidates):
        """Local. Refuse the unknown ``name``, suggesting the closest of ``candidates``."""
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        self.fail(f"{kind} {name!r} is not allowed{hint} (names: "
                  f"{', '.join(self.coords + tuple(self.values))}; functions: {', '.join(FUNCTIONS)})")

    def name(self, name):
        """Local. Check a name read as a value; note the coordinates used."""
        if name in self.coords:
            self.used.add(name)
        elif name in self.values:
            return
        elif name in FUNCTIONS:
            self.fail(f"{name} is a function: call it, e.g. {name}(x)")
        elif name in ("x", "y", "z"):
            self.fail(f"coordinate {name!r} is not available here (coordinates: {', '.join(self.coords)})")
        else:
            self.unknown(name, "name", self.coords + tuple(self.values) + tuple(FUNCTIONS))


def _check_constant(node, scope):
    value = node.value
    if isinstance(value, (str, bytes)):
        scope.fail("a formula may not contain strings")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        scope.fail(f"{value!r} is not allowed: numbers are real literals such as 2, 0.5, 1e-3")
    # Every number is a float64 (an int literal too): 9**9**9 is then a float64 overflow
    # (inf, at once), never a huge Python integer; float(repr()) makes a long int literal inf.
    node.value = np.float64(float(repr(value)) if isinstance(value, int) else value)


def _check_call(node, scope):
    if not isinstance(node.func, ast.Name):
        scope.fail(_REFUSED.get(type(node.func), "only the named functions can be called, e.g. sin(x)"))
    name = node.func.id
    if name not in FUNCTIONS:
        if name in scope.coords or name in scope.values:
            scope.fail(f"{name} is not a function")
        scope.unknown(name, "function", tuple(FUNCTIONS))
    arity = FUNCTIONS[name][1]
    if node.keywords:
        scope.fail(f"keyword arguments are not allowed ({name} takes {arity} positional argument{'s' * (arity > 1)})")
    if len(node.args) != arity:
        scope.fail(f"function {name} takes {arity} argument{'s' * (arity > 1)}, got {len(node.args)}")


def _check_operator(table, op, scope, kind):
    if type(op) not in table:
        symbol = _OTHER_OPERATORS.get(type(op), type(op).__name__)
        scope.fail(f"the {kind} {symbol} is not allowed ({kind}s: {_alternatives(table, quote='', between=' ')})")


def _check(node, scope, depth):
    """Local. Check ``node`` and everything under it; raise InputError on the first fault."""
    if depth > MAX_DEPTH:
        scope.fail(f"formula nested too deeply (more than {MAX_DEPTH} levels)")
    kind = type(node)
    if kind in _REFUSED:
        scope.fail(_REFUSED[kind])
    children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)]
    if kind is ast.Constant:
        _check_constant(node, scope)
    elif kind is ast.Name:
        scope.name(node.id)
    elif kind is ast.Call:
        _check_call(node, scope)
        children = node.args
    elif kind is ast.BinOp:
        _check_operator(_BINARY, node.op, scope, "operator")
    elif kind is ast.UnaryOp:
        _check_operator(_UNARY, node.op, scope, "operator")
    elif kind is ast.BoolOp:
        _check_operator(_BOOLEAN, node.op, scope, "operator")
    elif kind is ast.Compare:
        for op in node.ops:
            _check_operator(_COMPARE, op, scope, "comparison")
    elif kind is not ast.IfExp:
        scope.fail(f"{kind.__name__} expressions are not allowed")
    for child in children:
        _check(child, scope, depth + 1)


def _position(exc, lead, text) -> str:
    """Local. Where in ``text`` the SyntaxError ``exc`` (raised on ``text`` less ``lead``) is."""
    if not exc.offset or not exc.lineno:
        return ""
    column = exc.offset + (len(lead) - lead.rfind("\n") - 1 if exc.lineno == 1 else 0)
    line = exc.lineno + lead.count("\n")
    return f" at line {line}, column {column}" if "\n" in text.strip() else f" at column {column}"


def _tree(text, scope):
    """Local. Parse ``text`` into an ``ast.Expression``, or raise the formula's InputError."""
    if not isinstance(text, str):
        scope.fail(f"a formula is a string, e.g. \"sin(pi*x)\", not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        scope.fail(f"formula longer than {MAX_LENGTH} characters")
    body = text.strip()  # Python's parser refuses indented lines (a TOML multi-line string)
    if not body:
        scope.fail("empty formula")
    try:
        tree = ast.parse(body, mode="eval")
    except SyntaxError as exc:
        scope.fail(f"syntax error{_position(exc, text[:len(text) - len(text.lstrip())], text)}: {exc.msg} "
                   "(a formula is one expression, e.g. sin(pi*x)*y)")
    except (RecursionError, MemoryError):
        scope.fail("formula nested too deeply")
    except ValueError as exc:  # e.g. a null byte
        scope.fail(f"cannot parse the formula: {exc}")
    if sum(isinstance(n, ast.expr) for n in ast.walk(tree)) > MAX_NODES:
        scope.fail(f"formula too large (more than {MAX_NODES} terms)")
    return tree


def parse(text, coords=("x", "y", "z"), constants=None, where="formula"):
    """Local. Parse and check a formula of the coordinates ``coords``.

    :param text: the formula, e.g. ``"exp(-((x-0.5)**2 + (y-0.5)**2)/0.01)"``.
    :param coords: the coordinate names the formula may use, in the order :class:`Formula`
        takes their arrays (a 2D job passes ``("x", "y")``).
    :param constants: extra named numbers (name -> real number), e.g. the job's parameters;
        they take precedence over ``pi`` and ``e``; a name of a coordinate or a function is
        refused.
    :param where: the prefix of every error message (e.g. ``"jobs/a.toml: initial.u0"``).
    :returns: the checked :class:`Formula`.
    :raises InputError: one line, ``f"{where}: ..."``, saying what is wrong and what is allowed.
    """
    scope = _Scope(coords, constants, where)
    tree = _tree(text, scope)
    _check(tree.body, scope, 1)
    return Formula(text, tree, scope.coords, scope.values, tuple(sorted(scope.used)))


def _number(value):
    # Booleans (comparisons) count as 0/1 in arithmetic and functions; numpy would refuse
    # some (-b, b1 - b2) or pick float16 (sin(b)) — at run time, which parse() promises not.
    return value.astype(np.float64) if getattr(value, "dtype", None) == np.bool_ else value


def _value(node, env):
    """Local. Evaluate the checked ``node`` with the names bound in ``env``."""
    kind = type(node)
    if kind is ast.Constant:
        return node.value
    if kind is ast.Name:
        return env[node.id]
    if kind is ast.BinOp:
        return _BINARY[type(node.op)][1](_number(_value(node.left, env)), _number(_value(node.right, env)))
    if kind is ast.UnaryOp:
        operand = _value(node.operand, env)
        return _UNARY[type(node.op)][1](operand if type(node.op) is ast.Not else _number(operand))
    if kind is ast.Compare:
        left, result = _value(node.left, env), None
        for op, right_node in zip(node.ops, node.comparators):  # a < b < c: b computed once
            right = _value(right_node, env)
            step = _COMPARE[type(op)][1](left, right)
            result, left = step if result is None else np.logical_and(result, step), right
        return result
    if kind is ast.BoolOp:
        return functools.reduce(_BOOLEAN[type(node.op)][1], [_value(v, env) for v in node.values])
    if kind is ast.IfExp:
        return np.where(_value(node.test, env), _value(node.body, env), _value(node.orelse, env))
    function = FUNCTIONS[node.func.id][0]  # ast.Call: the only kind left after _check
    return function(*[_number(_value(arg, env)) for arg in node.args])


class Formula:
    """Local. A parsed and checked formula (made by :func:`parse`); call it on coordinates.

    :ivar text: the formula as written.
    :ivar coords: the coordinate names it takes, in order.
    :ivar names: the sorted tuple of the coordinate names it uses.
    """

    def __init__(self, text, tree, coords, constants, names):
        self.text = text
        self.coords = coords
        self.names = names
        self._tree = tree
        self._constants = constants

    def __call__(self, *coords):
        """Local. Evaluate on one array per coordinate (arrays that broadcast, e.g.
        ``np.meshgrid(..., indexing="ij", sparse=True)``).

        The result broadcasts against the coordinates: it is a scalar for a constant
        formula, and a boolean array for a comparison. Floating-point exceptions are
        silenced (the result may hold inf or nan; the caller checks).
        """
        if len(coords) != len(self.coords):
            raise TypeError(f"{self!r} takes {len(self.coords)} coordinate arrays "
                            f"({', '.join(self.coords)}), got {len(coords)}")
        env = dict(self._constants)
        env.update(zip(self.coords, coords))
        with np.errstate(all="ignore"):
            return _value(self._tree.body, env)

    def __repr__(self):
        return f"Formula({self.text!r}, coords={self.coords!r})"
