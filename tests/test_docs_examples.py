"""The guides' complete examples run (under MPI, at 3 ranks: uneven blocks), end without
leaking MPI objects, and the guides' math renders."""

import importlib.util
import os
import pathlib
import re

import pytest

from pympc.tools.launch import run_mpi

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = os.path.join(ROOT, "docs")

# page -> a line its example prints once
EXAMPLES = {"decomposition.md": "after 50 steps: sum",
            "kernels.md": "max |kernel - numpy| = 0.0",
            "first-program.md": "pi ~",
            "io.md": "wrote ['checkpoints', 'heat.h5', 'heat.xmf']",
            "bsp.md": "sum of squares",
            "solvers/heat.md": "t = 0.0100 after",
            "solvers/wave.md": "energy drift after 500 steps",
            "solvers/poisson.md": "converged after",
            "solvers/timeloop.md": "advection: t = 0.250 after 20 steps",
            "solvers/linear.md": "mg: converged in",
            "solvers/krylov.md": "CG: converged in",
            "solvers/cg.md": "CG: converged in",
            "solvers/bicgstab.md": "BiCGStab: converged in",
            "solvers/gmres.md": "GMRES: converged in",
            "solvers/preconditioners.md": "'multigrid': 8",
            "solvers/multigrid.md": "MG: converged in",
            "farm.md": "pi ~ 3.141780",
            "blocking.md": "identical to one step per exchange: True",
            "solvers/diffusion.md": "diffusion: ",
            "solvers/implicit.md": "cn: t = 0.0200 after",
            "solvers/imex.md": "fisher: t = 5.00",
            "solvers/tutorial-grayscott.md": "explicit Gray-Scott:",
            "solvers/newton.md": "Bratu: converged in",
            "solvers/multigrid-variable.md": "Galerkin MG-PCG: converged in"}


def first_python_block(page):
    with open(os.path.join(DOCS, page)) as f:
        m = re.search(r"```python\n(.*?)```", f.read(), re.S)
    return m.group(1) if m else None


def check_clean_exit(r):
    # An MPI object left unfreed (a Decomposition not closed: its Cartesian communicator
    # and halo datatypes) makes MPICH print "yaksa: N leaked handle pool objects" on every
    # rank at exit: the examples close what they create (``with Decomposition(...)``).
    assert "leaked" not in r.stderr, r.stderr[-3000:]
    assert "hang watchdog" not in r.stderr, r.stderr[-3000:]


@pytest.mark.parametrize("page,expect", sorted(EXAMPLES.items()))
def test_guide_example_runs(tmp_path, page, expect):
    script = tmp_path / "example.py"
    script.write_text(first_python_block(page))
    r = run_mpi(3, [str(script)], timeout=180, cwd=str(tmp_path))
    assert r.returncode == 0, r.output[-3000:]
    assert r.stdout.count(expect) == 1, r.output
    check_clean_exit(r)
    if page == "io.md":  # run again: it restarts from the last checkpoint, on 2 ranks
        r = run_mpi(2, [str(script)], timeout=180, cwd=str(tmp_path))
        assert r.returncode == 0 and expect in r.stdout, r.output[-3000:]
        check_clean_exit(r)


def test_readme_example_runs_and_refuses_a_second_run(tmp_path):
    with open(ROOT / "README.md") as f:
        block = re.search(r"```python\n(import numpy as np, pympc\n.*?)```", f.read(), re.S).group(1)
    script = tmp_path / "readme.py"
    script.write_text(block)
    r = run_mpi(2, [str(script)], timeout=180, cwd=str(tmp_path))
    assert r.returncode == 0 and (tmp_path / "heat.h5").is_file(), r.output[-3000:]
    check_clean_exit(r)
    before = (tmp_path / "heat.h5").read_bytes()
    r = run_mpi(2, [str(script)], timeout=180, cwd=str(tmp_path))  # the file is there now
    assert r.returncode != 0 and "overwrite=True" in r.stderr, r.output[-3000:]
    assert r.stderr.count("InputError") == 1, r.stderr[-3000:]  # one message, from rank 0
    assert (tmp_path / "heat.h5").read_bytes() == before


def test_every_complete_example_is_run():
    # a page whose first Python block is a whole pympc program (it starts with its
    # imports) is a guide example: it must be in EXAMPLES, so that it runs under MPI
    pages = []
    for path in sorted(pathlib.Path(DOCS).rglob("*.md")):
        page = path.relative_to(DOCS).as_posix()
        block = first_python_block(page)
        if block and "pympc" in block and block.lstrip().startswith(("import ", "from ")):
            pages.append(page)
    assert "kernels.md" in pages and "io.md" in pages  # the scan really finds them
    assert sorted(set(pages) - set(EXAMPLES)) == []


def _mathml_hook():
    spec = importlib.util.spec_from_file_location("mathml_hook", ROOT / "docs" / "_hooks" / "mathml.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# TeX that would show as plain text if a formula were left unrendered
_TEX = re.compile(r"\\(frac|Delta|nabla|sum|sqrt|alpha|omega|rho|pi|tfrac|langle|le)\b|[_^]\{")


def test_docs_math_renders_as_mathml():
    import markdown
    import yaml

    with open(ROOT / "mkdocs.yml") as f:
        cfg = yaml.load(f, Loader=yaml.BaseLoader)
    assert "docs/_hooks/mathml.py" in cfg["hooks"]
    exts = [e if isinstance(e, str) else next(iter(e)) for e in cfg["markdown_extensions"]]
    assert "pymdownx.arithmatex" in exts
    hook = _mathml_hook()
    formulas = 0
    for path in sorted(pathlib.Path(DOCS).rglob("*.md")):
        html = markdown.markdown(path.read_text(), extensions=["pymdownx.arithmatex"],
                                 extension_configs={"pymdownx.arithmatex": {"generic": True}})
        out = hook._convert_all(html, path.name)
        formulas += out.count("<math")
        prose = re.sub(r"<(pre|code)\b.*?</\1>", "", out, flags=re.S)
        prose = re.sub(r"<math\b.*?</math>", "", prose, flags=re.S)
        assert not _TEX.search(prose), f"{path}: TeX left as text near {_TEX.search(prose).group(0)!r}"
    assert formulas >= 20  # heat, wave, poisson, multigrid, timeloop (24 when written)
    # display math is a block; a bad formula fails the build with the page's name
    assert 'display="block"' in hook.to_mathml(r"u_t = \nabla\cdot(\alpha \nabla u)", True)
    for bad in ("x^", "\\foo x"):  # incomplete, unknown command
        with pytest.raises(ValueError, match="page.md"):
            hook._convert_all(f'<span class="arithmatex">\\({bad}\\)</span>', "page.md")
