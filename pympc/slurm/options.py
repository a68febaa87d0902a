"""The options of ``pympc slurm submit``: one table that the command line, a job file's
``[slurm]`` table and the reference in docs/slurm.md are all made from.

Every value is checked here, before anything is written or submitted: a value that would
have to travel through a ``#SBATCH`` line or a shell word and cannot do so safely is
refused with one message (exit 2). What is accepted is rendered shell-quoted
(:mod:`pympc.slurm.render`). Pure Python: it runs on a login node without MPI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError, brief


@dataclass(frozen=True)
class Opt:
    """Local. One option: its name in a job file's ``[slurm]`` table (``ntasks_per_node``),
    its kind, its default and meaning, and the ``sbatch`` option it becomes (None: pympc's
    own, used by the batch script)."""

    name: str
    kind: str
    doc: str
    default: object = None
    sbatch: str | None = None
    choices: tuple = ()
    job_file: bool = True  # may a job file's [slurm] table give it
    cli: str | None = None  # the command line's spelling, when not --<name>

    @property
    def flag(self) -> str:
        """Local. The option on the command line."""
        return self.cli or "--" + self.name.replace("_", "-")


#: Slurm's time formats (sbatch(1) --time)
TIME = re.compile(r"^(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                  r"|(?P<h>\d+):(?P<hm>\d+):(?P<hs>\d+)|(?P<m>\d+)(?::(?P<ms>\d+))?)$")
#: names Slurm takes for partitions, accounts, QOS, reservations, constraints' words
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
#: an environment-module name (``gcc/12.2``, ``hdf5-mpi/1.14+mpich``)
MODULE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+/@:-]*$")
MEM = re.compile(r"^\d+[KMGT]?$")
_JOBREF = r"\d+(?:_\d+)?(?:\+\d+)?"
DEPENDENCY = re.compile(r"^(?:singleton|(?:after|afterany|afterok|afternotok|aftercorr|afterburstbuffer)"
                        rf":{_JOBREF}(?::{_JOBREF})*)(?:[,?](?:singleton|(?:after|afterany|afterok|afternotok|"
                        rf"aftercorr|afterburstbuffer):{_JOBREF}(?::{_JOBREF})*))*$")
#: slurmctld looks for jobs due a --signal warning every 30 s (PERIODIC_TIMEOUT, a compile-time
#: constant: src/slurmctld/slurmctld.h) and warns once at most N + 30 s are left
PERIODIC = 30
#: a --time shorter than --signal-before plus this gives a start under 30 s before its warning
WARNING_LEAD = 2 * PERIODIC
ARRAY = re.compile(r"^\d+(?:-\d+(?::\d+)?)?(?:,\d+(?:-\d+(?::\d+)?)?)*$")
LAUNCHERS = ("srun", "mpiexec")
#: kind -> (the pattern a value must match, what the refusal says)
PATTERNS = {
    "name": (NAME, "letters, digits and _ . + - only"),
    "mem": (MEM, "give a number with an optional unit K, M, G or T (e.g. 4000, 4G)"),
    "dependency": (DEPENDENCY, "give TYPE:JOBID[:JOBID...] (TYPE after, afterany, afterok, afternotok, "
                               "aftercorr) or singleton, joined by , or ?"),
    "array": (ARRAY, "give indices like 0-5, 0,3,7-9 or 0-10:2 (use --array-throttle for Slurm's %N)"),
}

OPTIONS = (
    Opt("nodes", "count", "Nodes to allocate.", 1, "--nodes"),
    Opt("ntasks_per_node", "count", "MPI ranks per node; the job runs on nodes x ntasks-per-node ranks.", 1,
        "--ntasks-per-node"),
    Opt("cpus_per_task", "count", "Cores per rank (threads of numba/BLAS inside a rank).", None, "--cpus-per-task"),
    Opt("time", "time", "The time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`. "
        "Without it the partition's default limit applies.", None, "--time"),
    Opt("partition", "name", "The partition (queue).", None, "--partition"),
    Opt("account", "name", "The account charged.", None, "--account"),
    Opt("qos", "name", "The quality of service.", None, "--qos"),
    Opt("reservation", "name", "A reservation to run in.", None, "--reservation"),
    Opt("constraint", "name", "Node features the job needs (one feature name).", None, "--constraint"),
    Opt("mem", "mem", "Memory per node (`4000`, `4G`; Slurm's units K, M, G, T).", None, "--mem"),
    Opt("exclusive", "flag", "Do not share the nodes with other jobs.", False, "--exclusive"),
    Opt("job_name", "name", "The Slurm job name (default: the job's `name`).", None, "--job-name"),
    Opt("dependency", "dependency", "Start after other jobs: `afterok:ID[:ID...]`, `afterany:ID`, "
        "`afternotok:ID`, `after:ID`, `aftercorr:ID`, `singleton`, joined by `,` (all) or `?` (any).",
        None, "--dependency"),
    Opt("kill_on_invalid_dep", "choice", "Cancel the job when its dependency can never be met.", "yes",
        "--kill-on-invalid-dep", ("yes", "no")),
    Opt("array", "array", "Which sweep points to submit as array elements (`0-5`, `0,3,7-9`; default: "
        "all). Sweeps only.", None, None, job_file=False),
    Opt("array_throttle", "count", "At most this many array elements run at once (Slurm's `%N`).", None),
    Opt("no_array", "flag", "Submit a sweep as one job that runs its points one after another (or as a "
        "task farm with `--farm`) instead of an array.", False),
    Opt("farm", "flag", "Run a sweep's points side by side as a task farm inside one job (docs/farm.md).",
        False),
    Opt("ranks_per_task", "count", "With `--farm`: ranks per sweep point.", 1),
    Opt("signal_before", "seconds", "Seconds before the time limit at which Slurm warns the batch script "
        "(`--signal=B:USR1@N`); the ranks then checkpoint at their next step. Slurm sends it when at most "
        "N + 30 s are left (it looks every 30 s), and again after each requeue; `--time` must be at least "
        "N + 60 s.", 90),
    Opt("max_requeues", "nonneg", "How often an interrupted run requeues itself (exit 75) before it "
        "stops and waits for you.", 10),
    Opt("launcher", "choice", "How the batch script starts the ranks: `srun` (`srun --mpi=pmi2`) or "
        "`mpiexec` (MPICH's Hydra, which finds the allocation through Slurm).", "srun", None, LAUNCHERS),
    Opt("srun_mpi", "name", "srun's `--mpi` plugin (`pmi2` for MPICH; `pmix` for Open MPI).", "pmi2"),
    Opt("mpiexec", "command", "The `mpiexec` launcher's command, options allowed (default: `$PYMPC_MPIEXEC`, "
        "else the mpiexec of the MPI that mpi4py loads).", None),
    Opt("modules", "modules", "Environment modules to `module load` on the compute node, in order (on the "
        "command line: `--module NAME`, repeated).", (), cli="--module"),
)
BY_NAME = {o.name: o for o in OPTIONS}


def seconds(text: str) -> int | None:
    """Local. A Slurm time limit in seconds, or None when ``text`` is none of Slurm's
    formats."""
    m = TIME.match(text)
    if m is None:
        return None
    g = {k: int(v) if v is not None else 0 for k, v in m.groupdict().items()}
    if m.group("d") is not None:
        return ((g["d"] * 24 + g["dh"]) * 60 + g["dm"]) * 60 + g["ds"]
    if m.group("h") is not None:
        return (g["h"] * 60 + g["hm"]) * 60 + g["hs"]
    return g["m"] * 60 + g["ms"]


def _fail(where: str, opt: Opt, message: str) -> InputError:
    """The option named as the user gave it: a command-line flag, or (``where``: the job
    file) its key in the ``[slurm]`` table."""
    return InputError(f"{where}slurm.{opt.name}: {message}" if where else f"{opt.flag}: {message}")


def check(opt: Opt, value, where: str = ""):
    """Local. ``value`` of ``opt`` checked and normalised; raises :class:`InputError` with
    one message naming the option (``where`` prefixes it: the job file's ``[slurm]``)."""
    kind = opt.kind
    if kind == "flag":
        if not isinstance(value, bool):
            raise _fail(where, opt, f"must be true or false, got {brief(value)}")
        return value
    if kind in ("count", "nonneg", "seconds"):
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, opt, f"must be a whole number, got {brief(value)}")
        low = 0 if kind == "nonneg" else 1
        if not low <= value <= 10 ** 7:
            raise _fail(where, opt, f"must be between {low} and {10 ** 7}, got {value}")
        return value
    if kind == "time" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # minutes, as a job file may give them
    if not isinstance(value, str) and kind != "modules":
        raise _fail(where, opt, f"must be a string, got {brief(value)}")
    return _check_text(opt, value, where)


def _check_text(opt: Opt, value, where: str):
    """The checks of the options whose values are text."""
    kind = opt.kind
    if kind == "time":
        if value.upper() in ("UNLIMITED", "INFINITE"):
            return "UNLIMITED"
        s = seconds(value)
        if s is None or s == 0:
            raise _fail(where, opt, f"{brief(value)} is no time limit: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM "
                                    "or D-HH:MM:SS (e.g. 30, 2:00:00, 1-12)")
        return value
    if kind == "choice":
        if value not in opt.choices:
            raise _fail(where, opt, f"must be one of {', '.join(opt.choices)}, got {brief(value)}")
        return value
    if kind in PATTERNS:
        pattern, what = PATTERNS[kind]
        if not pattern.match(value) or len(value) > 200:
            raise _fail(where, opt, f"{brief(value)} refused: {what}")
        return value
    if kind == "command":
        import shlex

        try:
            words = shlex.split(value)
        except ValueError as e:
            raise _fail(where, opt, f"{brief(value)}: {e}") from None
        if not words or "\n" in value or "\0" in value:
            raise _fail(where, opt, f"{brief(value)} is no command")
        return value
    if kind == "modules":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(m, str) for m in items):
            raise _fail(where, opt, f"must be a list of module names, got {brief(value)}")
        for m in items:
            if not MODULE.match(m):
                raise _fail(where, opt, f"{brief(m)} refused: a module name is letters, digits and _ . + / @ : -")
        return tuple(items)
    raise AssertionError(kind)


def array_indices(spec: str, count: int) -> list:
    """Local. The indices an ``--array`` spec names, each checked against the sweep's
    ``count`` points."""
    out = set()
    for part in spec.split(","):
        step = 1
        if ":" in part:
            part, s = part.split(":")
            step = int(s)
        lo, _, hi = part.partition("-")
        lo, hi = int(lo), int(hi or lo)
        if hi < lo or step < 1:
            raise _fail("", BY_NAME["array"], f"{part!r} is an empty range")
        if hi >= count:
            raise _fail("", BY_NAME["array"], f"index {hi} is past the sweep's last point ({count - 1})")
        out.update(range(lo, hi + 1, step))
    return sorted(out)


def merge(from_job: dict, from_cli: dict, where: str) -> dict:
    """Local. Every option's value: the command line's, else the job file's ``[slurm]``
    table's, else the default; each checked. ``from_cli`` holds only what was given."""
    if not isinstance(from_job, dict):
        raise InputError(f"{where}: slurm: must be a table ([slurm]), got {brief(from_job)}")
    for key in from_job:
        if key not in BY_NAME or not BY_NAME[key].job_file:
            from ..jobs.schema import suggest

            known = [o.name for o in OPTIONS if o.job_file]
            raise InputError(f"{where}: slurm.{key}: unknown key{suggest(key, known)}; [slurm] takes "
                             + ", ".join(known))
    out = {}
    for opt in OPTIONS:
        if opt.name in from_cli:
            out[opt.name] = check(opt, from_cli[opt.name])
        elif opt.name in from_job:
            out[opt.name] = check(opt, from_job[opt.name], f"{where}: ")
        else:
            out[opt.name] = opt.default
    _combinations(out)
    return out


def _combinations(o: dict) -> None:
    """What is wrong with options that are each fine."""
    limit = None if o["time"] in (None, "UNLIMITED") else seconds(o["time"])
    if limit is not None and limit < o["signal_before"] + WARNING_LEAD:
        raise InputError(
            f"--time {o['time']} leaves no room for the warning --signal-before {o['signal_before']} s: "
            f"Slurm sends it once at most {o['signal_before'] + PERIODIC} s are left (it looks every "
            f"{PERIODIC} s), so each start of the job could be told to stop after "
            f"{max(limit - o['signal_before'] - PERIODIC, 0)} s; "
            f"give a --time of at least --signal-before + {WARNING_LEAD} s, or a shorter --signal-before")
    if o["ranks_per_task"] != 1 and not o["farm"]:
        raise InputError("--ranks-per-task needs --farm")
    if o["farm"] and o["array"] is not None:
        raise InputError("--farm runs the whole sweep in one job: give --farm or --array, not both")


def reference() -> str:
    """Local. The options as a Markdown table (docs/slurm.md holds it; a test keeps it equal)."""
    rows = ["| option | `[slurm]` key | default | sbatch | meaning |", "|---|---|---|---|---|"]
    for o in OPTIONS:
        default = "" if o.default in (None, (), False) else f"`{o.default}`"
        key = f"`{o.name}`" if o.job_file else ""
        rows.append(f"| `{o.flag}` | {key} | {default} | {f'`{o.sbatch}`' if o.sbatch else ''} | {o.doc} |")
    return "\n".join(rows) + "\n"
