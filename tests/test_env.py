"""Every PYMPC_* variable is read in one place (pympc.env) and listed in one docs table."""

import pathlib
import re

import pytest

from pympc import env

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "pympc").rglob("*.py")) + sorted((ROOT / "solvers").rglob("*.py"))


def test_no_module_but_env_reads_a_pympc_variable():
    reads = re.compile(r"(environ|getenv)\b[^\n]*PYMPC_|PYMPC_\w+[^\n]*\b(environ|getenv)")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in SOURCES if p.name != "env.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if reads.search(line)]
    assert not offenders, offenders


def test_every_variable_named_in_the_code_is_registered():
    named = {m for p in SOURCES for m in re.findall(r"\bPYMPC_[A-Z_]+[A-Z]\b", p.read_text())}
    assert named - set(env.VARIABLES) <= {"PYMPC_VENV"}, named - set(env.VARIABLES)


def test_docs_table_is_the_registry():
    text = (ROOT / "docs" / "runtime.md").read_text()
    assert env.table() in text, "docs/runtime.md's table differs from pympc.env.table()"


@pytest.mark.parametrize("name,text,want", [
    ("PYMPC_THREADS", None, None), ("PYMPC_THREADS", " 3 ", 3),
    ("PYMPC_HANG_TIMEOUT", None, 300.0), ("PYMPC_HANG_TIMEOUT", "0", 0.0), ("PYMPC_HANG_TIMEOUT", "2.5", 2.5),
    ("PYMPC_ERROR_GRACE", "", 3.0), ("PYMPC_EXCEPTHOOK", None, True), ("PYMPC_EXCEPTHOOK", "0", False),
    ("PYMPC_DEBUG", None, False), ("PYMPC_LOG_LEVEL", "debug", "DEBUG"), ("PYMPC_KERNELS", None, "numba"),
    ("PYMPC_KERNELS", "numpy", "numpy"), ("PYMPC_MPIEXEC", None, None),
    ("PYMPC_MPIEXEC", "mpiexec.mpich -bind-to none", "mpiexec.mpich -bind-to none"),
])
def test_values(name, text, want):
    assert env.parse(name, text) == want


@pytest.mark.parametrize("name,text", [
    ("PYMPC_THREADS", "0"), ("PYMPC_THREADS", "two"), ("PYMPC_THREADS", "1.5"),
    ("PYMPC_HANG_TIMEOUT", "-1"), ("PYMPC_HANG_TIMEOUT", "nan"), ("PYMPC_HANG_TIMEOUT", "inf"),
    ("PYMPC_ERROR_GRACE", "3s"), ("PYMPC_EXCEPTHOOK", "yes"), ("PYMPC_DEBUG", "2"),
    ("PYMPC_LOG_LEVEL", "loud"), ("PYMPC_KERNELS", "cuda"),
])
def test_a_wrong_value_is_one_line_naming_it(name, text):
    with pytest.raises(env.EnvError) as e:
        env.parse(name, text)
    msg = str(e.value)
    assert msg.startswith(f"{name}={text!r} is not ") and "\n" not in msg, msg


def test_unknown_name_is_refused():
    with pytest.raises(KeyError):
        env.raw("PYMPC_NO_SUCH")
