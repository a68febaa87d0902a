"""The guides' complete examples run (under MPI, at 3 ranks: uneven blocks)."""

import os
import re

import pytest

from pympc.testing import run_mpi

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def first_python_block(page):
    with open(os.path.join(DOCS, page)) as f:
        return re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)


@pytest.mark.parametrize("page,expect", [("decomposition.md", "after 50 steps: sum"),
                                         ("first-program.md", "pi ~"),
                                         ("io.md", "wrote ['checkpoints', 'heat.h5', 'heat.xmf']"),
                                         ("solvers/heat.md", "t = 0.0100 after"),
                                         ("solvers/wave.md", "energy drift after 500 steps"),
                                         ("solvers/poisson.md", "converged after"),
                                         ("solvers/timeloop.md", "advection: t = 0.250 after 20 steps"),
                                         ("solvers/krylov.md", "CG: converged in"),
                                         ("solvers/cg.md", "CG: converged in"),
                                         ("solvers/bicgstab.md", "BiCGStab: converged in"),
                                         ("solvers/gmres.md", "GMRES: converged in"),
                                         ("solvers/preconditioners.md", "'multigrid': 8"),
                                         ("solvers/multigrid.md", "MG: converged in")])
def test_guide_example_runs(tmp_path, page, expect):
    script = tmp_path / "example.py"
    script.write_text(first_python_block(page))
    r = run_mpi(3, [str(script)], timeout=180, cwd=str(tmp_path))
    assert r.returncode == 0, r.output[-3000:]
    assert r.stdout.count(expect) == 1, r.output
    if page == "io.md":  # run again: it restarts from the last checkpoint, on 2 ranks
        r = run_mpi(2, [str(script)], timeout=180, cwd=str(tmp_path))
        assert r.returncode == 0 and expect in r.stdout, r.output[-3000:]
