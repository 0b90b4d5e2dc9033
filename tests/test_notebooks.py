"""Notebooks: each runs headless in small mode without an error, is committed without outputs, and imports
only public modules."""

import ast
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def _kernel_env() -> dict[str, str]:
    """The environment of the notebook kernel: small mode, CPU, and this interpreter's packages first."""
    env = dict(os.environ)
    env["RNNJAX_NOTEBOOK_MODE"] = "small"
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["MPLBACKEND"] = "Agg"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before committing "
        f"(jupyter nbconvert --clear-output --inplace {path.name})."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_opens_with_purpose_and_mode_switch(path):
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].cell_type == "markdown", f"{path.name}: the first cell must state its purpose"
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "RNNJAX_NOTEBOOK_MODE" in first_code.source, f"{path.name}: the first code cell must read the mode"


def _private_imports(source: str) -> list[str]:
    """The imports in a code cell of anything private: a module or a name whose part starts with ``_``."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names = [f"{node.module or ''}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [name for name in names if any(part.startswith("_") for part in name.split(".") if part)]
    return found


def test_private_import_check_sees_module_and_name_imports():
    cell = "%autoreload 2\nfrom experiments import _cli\nimport rnnjax._x as x\nimport os"
    assert _private_imports(cell) == ["experiments._cli", "rnnjax._x"]
    assert _private_imports("from rnnjax.analysis import plots\nfrom __future__ import annotations") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_imports_no_private_module(path):
    notebook = nbformat.read(path, as_version=4)
    private = {
        index: names
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (names := _private_imports(cell.source))
    }
    assert not private, (
        f"{path.name}: code cells import private modules or names {private}; notebooks use the public API "
        "(rnnjax, experiments.configs), with a script's private helper written out in the notebook."
    )


@pytest.mark.slow  # a kernel start, JAX import and a few compilations: 10-70 s per notebook on a busy 2-core CPU
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_small_mode(path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    env = _kernel_env()
    client.km = client.create_kernel_manager()
    # The kernel must be this interpreter, so that it sees the same rnnjax install as the tests.
    client.km.kernel_spec.argv[0] = sys.executable
    client.km.kernel_spec.env.update(env)
    client.execute(env=env)
