"""Rendering the batch script: ``slurm/pympc.sbatch`` with its ``#SBATCH`` lines and its
settings block filled in.

Every value in the settings is one shell word made by :func:`shlex.quote`, so a name,
path or environment value with spaces, quotes, ``$( )``, backticks, ``;`` or newlines
reaches the job literally. ``#SBATCH`` lines are read by ``sbatch``, not by a shell: a
value there is written in double quotes, and what ``sbatch`` cannot carry in them (a
double quote, a newline, a ``%`` in a path, which Slurm expands) is refused with one
message instead.
"""

from __future__ import annotations

import os
import re
import shlex

from ..errors import InputError

SETTINGS_START, SETTINGS_END = "# ---- settings", "# ---- end of settings"
SBATCH_END = "# (end of the #SBATCH lines)"


def template_path() -> str:
    """Local. The batch-script template: ``$PYMPC_SLURM_TEMPLATE``, else ``slurm/pympc.sbatch``
    of the checkout pympc runs from."""
    from .. import env

    path = env.value("PYMPC_SLURM_TEMPLATE")
    if path:
        return path
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, "slurm", "pympc.sbatch")


def read_template(path: str) -> str:
    """Local. The template's text, checked to have the two blocks rendering fills in."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise InputError(f"the batch-script template {path}: {e.strerror} (set PYMPC_SLURM_TEMPLATE or use "
                         "--template)") from None
    lines = text.splitlines()
    for marker in (SETTINGS_START, SETTINGS_END, SBATCH_END):
        if not any(line.startswith(marker) for line in lines):
            raise InputError(f"the batch-script template {path} has no line starting with {marker!r}")
    return text


def directive_value(name: str, value: str) -> str:
    """Local. ``value`` as it can stand in an ``#SBATCH --name=...`` line: plain when it
    is one simple word, else in double quotes; refused when ``sbatch`` cannot read it
    back literally."""
    bad = [c for c in ('"', "\n", "\r", "\0") if c in value]
    if bad:
        raise InputError(f"{name}: {value!r} cannot go into an #SBATCH line (it holds {bad[0]!r})")
    return value if re.fullmatch(r"[A-Za-z0-9_.:,@%+=/-]+", value) else f'"{value}"'


def log_path(path: str, name: str) -> str:
    """Local. A path that goes into ``--output``: Slurm replaces ``%`` patterns and ``\\``
    escapes in it, and an ``#SBATCH`` line cannot hold a double quote or a line break, so
    a directory holding any of them is refused (naming ``name``, the user's option)."""
    for c in ("%", "\\", '"', "\n", "\r"):
        if c in os.path.dirname(path):
            why = "Slurm expands it in log file names" if c in "%\\" else "an #SBATCH line cannot hold it"
            raise InputError(f"{name}: the directory {os.path.dirname(path)!r} holds {c!r} ({why}): "
                             "choose another --runs-dir")
    return path


def sbatch_lines(directives: list) -> list:
    """Local. ``[(option, value or None)]`` as ``#SBATCH`` lines."""
    out = []
    for option, value in directives:
        out.append(f"#SBATCH {option}" if value is None else f"#SBATCH {option}={directive_value(option, value)}")
    return out


def shell_value(value) -> str:
    """Local. A value of the settings block: one shell word, or ``( ... )`` of words."""
    if isinstance(value, (list, tuple)):
        return "(" + " ".join(shlex.quote(str(v)) for v in value) + ")"
    return shlex.quote(str(value))


def render(template: str, directives: list, settings: dict) -> str:
    """Local. The batch script: the template's ``#SBATCH`` block and settings block
    replaced by ``directives`` and ``settings`` (``{NAME: value}``, rendered with
    :func:`shell_value`); every other line as the template has it."""
    out, state = [], "head"
    for line in template.splitlines():
        if state == "head" and line.startswith("#SBATCH"):
            out.extend(sbatch_lines(directives))
            state = "sbatch"
        elif state == "sbatch":
            if line.startswith(SBATCH_END):
                out.append(line)
                state = "body"
        elif line.startswith(SETTINGS_START) and state == "body":
            out.append(line)
            out.extend(f"{k}={shell_value(v)}" for k, v in settings.items())
            state = "settings"
        elif state == "settings":
            if line.startswith(SETTINGS_END):
                out.append(line)
                state = "tail"
        else:
            out.append(line)
    if state != "tail":
        raise InputError("the batch-script template's blocks are out of order: #SBATCH lines, then "
                         f"{SBATCH_END!r}, then {SETTINGS_START!r} ... {SETTINGS_END!r}")
    return "\n".join(out) + "\n"
