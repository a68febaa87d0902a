"""A run's progress on rank 0 (issue 14, point 5): a live tqdm bar, periodic log lines or
nothing, chosen by ``run(progress=...)`` or, overriding its mode, ``$PYMPC_PROGRESS``
(what ``pympc run -n`` passes to ranks whose stdout is mpiexec's pipe); a summary line
at the end; a bar closed however the loop ends."""

import logging
import os
import sys
import textwrap

import numpy as np
import pytest

import pympc
from pympc import env
from pympc.runtime import InputError, get_logger
from pympc.tools.launch import run_mpi
from solvers.heat import Heat
from solvers.loop import _Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (13, 10)
H = 1.0 / 12
# the pympc log handler set up now, on the session's stderr, not on a capsys stream that a
# test closes when it ends
get_logger()


@pytest.fixture
def no_choice(monkeypatch):
    """No PYMPC_PROGRESS from the caller's shell; COLUMNS fixed (stderr is captured,
    not a terminal: the bar's width comes from COLUMNS)."""
    monkeypatch.delenv("PYMPC_PROGRESS", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    return monkeypatch


def heat(d):
    return Heat(d, alpha=0.5, u0=lambda x, y: np.sin(np.pi * x) * np.sin(np.pi * y))


def frames(err):
    """The bar's successive states in captured stderr (tqdm redraws with \\r)."""
    return [f.rstrip("\n") for f in err.replace("\n", "\r").split("\r") if "%|" in f]


def open_bars():
    from tqdm import tqdm

    return len(tqdm._instances)


def test_bar_shows_the_total_reaches_the_end_and_closes(no_choice, records, capsys):
    with pympc.Decomposition(SHAPE, spacing=H) as d:
        s = heat(d)
        s.run(steps=40, progress="bar")
    err = capsys.readouterr().err
    shown = frames(err)
    assert shown and shown[0].startswith("heat:   0%|") and "0/40" in shown[0], err
    assert shown[-1].startswith("heat: 100%|") and "40/40" in shown[-1] and "Mcell/s" in shown[-1], err
    assert all(len(f) == 100 for f in shown), [len(f) for f in shown]  # COLUMNS: stderr is no terminal
    assert err.endswith("\n") and open_bars() == 0 and "_meter" not in s.__dict__
    assert [m for m in records if m.startswith("done: 40 steps in ")], records
    assert not [m for m in records if m.startswith("step ")], records


def test_a_restart_bar_counts_from_the_checkpoint(no_choice, capsys, tmp_path):
    with pympc.Decomposition(SHAPE, spacing=H) as d:
        heat(d).run(steps=10, checkpoint=tmp_path / "ck", progress=None)
        heat(d).run(steps=25, checkpoint=tmp_path / "ck", restart=True, progress="bar")
    shown = frames(capsys.readouterr().err)
    assert "10/25" in shown[0] and "25/25" in shown[-1], shown


def test_lines_mode_logs_step_lines_and_the_summary(no_choice, records, capsys):
    no_choice.setenv("PYMPC_PROGRESS", "lines")
    with pympc.Decomposition(SHAPE, spacing=H) as d:
        heat(d).run(steps=6, progress=0.0)  # the number (seconds between lines) is kept
    lines = [m for m in records if m.startswith("step ")]
    assert [m.split()[1] for m in lines] == ["4/6", "5/6", "6/6"], records
    assert "Mcell-updates/s" in lines[0] and "ETA" in lines[0]
    assert any(m.startswith("done: 6 steps in ") for m in records), records
    assert "%|" not in capsys.readouterr().err


@pytest.mark.parametrize("arg,variable,want", [
    ("lines", None, 10.0), (2.5, None, 2.5), (0, None, 0.0), (np.float64(1.5), None, 1.5),
    ("bar", None, "bar"), ("off", None, None), (None, None, None),
    (None, "bar", "bar"), (0.0, "off", None), (0.5, "lines", 0.5), (None, "lines", 10.0),
    ("bar", "lines", 10.0), ("lines", "bar", "bar"), (3.0, "", 3.0),
])
def test_the_variable_overrides_the_mode_of_the_argument(no_choice, arg, variable, want):
    if variable is not None:
        no_choice.setenv("PYMPC_PROGRESS", variable)
    assert _Progress.choose(arg) == want


@pytest.mark.parametrize("variable", [None, "off"])
def test_off_is_silent(no_choice, records, capsys, variable):
    if variable:
        no_choice.setenv("PYMPC_PROGRESS", variable)
    with pympc.Decomposition(SHAPE, spacing=H) as d:
        heat(d).run(steps=6, progress=0.0 if variable else "off")
        heat(d).run(steps=6, progress=None)
    assert records == [] and capsys.readouterr().err == ""


def test_the_variable_turns_a_silent_run_into_a_bar(no_choice, records, capsys):
    no_choice.setenv("PYMPC_PROGRESS", "bar")
    with pympc.Decomposition(SHAPE, spacing=H) as d:
        heat(d).run(steps=7, progress=None)
    assert "7/7" in frames(capsys.readouterr().err)[-1]
    assert any(m.startswith("done: 7 steps") for m in records), records


@pytest.mark.parametrize("text", ["fancy", "BAR", "1"])
def test_a_bad_variable_is_one_line_and_nothing_runs(no_choice, tmp_path, text):
    no_choice.setenv("PYMPC_PROGRESS", text)
    with pympc.Decomposition(SHAPE, spacing=H) as d:
        s = heat(d)
        with pytest.raises(InputError) as e:
            s.run(steps=5, output=tmp_path / "out.h5", checkpoint=tmp_path / "ck", progress="bar")
    msg = str(e.value)
    assert msg.startswith(f"PYMPC_PROGRESS={text!r} is not one of bar, lines, off") and "\n" not in msg, msg
    assert s.step_count == 0 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arg", ["fancy", -1.0, float("nan"), True, [1]])
def test_a_bad_argument_is_refused(no_choice, arg):
    with pytest.raises(InputError, match="progress="):
        _Progress.choose(arg)


def test_the_variable_is_registered():
    assert env.parse("PYMPC_PROGRESS", None) is None and env.parse("PYMPC_PROGRESS", " ") is None
    assert [env.parse("PYMPC_PROGRESS", t) for t in ("bar", "lines", "off")] == ["bar", "lines", "off"]


def test_an_interrupted_run_closes_its_bar_and_logs_above_it(no_choice, capsys):
    """A signal (the solver's _signalled flag) ends the loop early: the bar is closed at
    the step it reached, the warning is written on a line of its own above it, and the
    log handler gets its stream back."""
    handler = next(h for h in logging.getLogger("pympc").handlers if getattr(h, "_pympc", False))
    before, handler.stream = handler.stream, sys.stderr  # capsys's: the stream the bar draws on
    try:
        with pympc.Decomposition(SHAPE, spacing=H) as d:
            s = heat(d)
            advance = s.advance

            def signalled_at_5():
                advance()
                if s.step_count + 1 == 5:
                    s._signalled = True
            s.advance = signalled_at_5
            s.run(steps=40, progress="bar", signal_check_every=3)
        assert s.interrupted and s.step_count == 6
        err = capsys.readouterr().err
        assert open_bars() == 0 and err.endswith("\n") and "_meter" not in s.__dict__
        assert "6/40" in frames(err)[-1], err
        warning = [ln for ln in err.replace("\r", "\n").split("\n") if "WARNING" in ln]
        assert len(warning) == 1 and warning[0].startswith("[0/1] WARNING pympc.heat: signal received"), err
        assert handler.stream is sys.stderr
    finally:
        handler.stream = before


def test_an_error_in_a_step_closes_the_bar(no_choice, capsys):
    with pympc.Decomposition(SHAPE, spacing=H) as d:
        s = heat(d)

        def boom():
            raise RuntimeError("boom")
        s.advance = boom
        with pytest.raises(RuntimeError):
            s.run(steps=10, progress="bar")
    assert open_bars() == 0 and capsys.readouterr().err.endswith("\n")


@pytest.mark.mpi
def test_only_rank_0_draws(comm, capsys, monkeypatch):
    monkeypatch.delenv("PYMPC_PROGRESS", raising=False)
    with pympc.Decomposition((17, 11), comm=comm, spacing=H) as d:
        heat(d).run(steps=12, progress="bar")
    shown = frames(capsys.readouterr().err)
    if comm.Get_rank() == 0:
        assert shown and "12/12" in shown[-1], shown
    else:
        assert shown == [], shown
    assert open_bars() == 0


LAUNCHED = textwrap.dedent("""
    import os, sys
    from mpi4py import MPI
    rank = MPI.COMM_WORLD.Get_rank()
    # each rank's stderr (fd 2) to a file of its own: what each rank printed, apart
    fd = os.open(os.path.join(sys.argv[1], f"err{rank}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    import numpy as np, pympc
    from solvers.heat import Heat
    with pympc.Decomposition((24, 20), spacing=0.05) as d:
        Heat(d, alpha=0.5, u0=1.0).run(steps=30, progress=None)
""")


def test_a_launched_job_draws_the_bar_on_rank_0_only(tmp_path):
    """As under ``pympc run -n 2``: PYMPC_PROGRESS=bar and COLUMNS passed to ranks whose
    stderr is not a terminal."""
    script = tmp_path / "job.py"
    script.write_text(LAUNCHED)
    r = run_mpi(2, [str(script), str(tmp_path)], timeout=120, cwd=ROOT,
                env={**os.environ, "PYMPC_PROGRESS": "bar", "COLUMNS": "100", "PYTHONPATH": ROOT})
    assert not r.timed_out and r.returncode == 0, r.output
    err0, err1 = (open(tmp_path / f"err{k}", newline="").read() for k in (0, 1))
    shown = frames(err0)
    assert shown[-1].startswith("heat: 100%|") and "30/30" in shown[-1] and len(shown[-1]) == 100, err0
    assert "done: 30 steps in " in err0
    assert "%|" not in err1 and "\r" not in err1, err1
