"""The notebooks run top to bottom on the shipped model, and are committed without outputs."""

import base64
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["explore_probability_maps.ipynb", "your_own_frame.ipynb"]


@pytest.fixture(autouse=True)
def quiet_jupyter(monkeypatch):
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's path-migration warning
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def execute(notebook, cwd: Path):
    """Run every cell in a fresh kernel started in ``cwd``; a failing cell raises CellExecutionError."""
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    return client.execute()


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    before = {p.name for p in NOTEBOOKS.iterdir()}
    executed = execute(notebook, NOTEBOOKS)
    assert all(cell.execution_count for cell in executed.cells if cell.cell_type == "code")
    errors = [out for cell in executed.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors
    figures = sum("image/png" in out.get("data", {}) for cell in executed.cells for out in cell.get("outputs", []))
    assert figures >= 3
    assert {p.name for p in NOTEBOOKS.iterdir()} == before  # wrote nothing beside the notebooks


def test_a_failing_cell_fails_the_run(tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_code_cell("raise ValueError('cell 2 fails')"),
            nbformat.v4.new_code_cell("x = 3"),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with pytest.raises(CellExecutionError, match="cell 2 fails"):
        execute(notebook, tmp_path)
    assert os.listdir(tmp_path) == []


def test_every_figure_marker_names_exactly_one_cell_of_its_notebook():
    sys.path.insert(0, str(NOTEBOOKS))
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ beside the notebooks
    try:
        import render_figures
    finally:
        sys.path.remove(str(NOTEBOOKS))
        sys.dont_write_bytecode = writes
    for filename, figures in render_figures.FIGURES.items():
        notebook = nbformat.read(NOTEBOOKS / filename, as_version=4)
        for name, marker in figures:
            assert len(render_figures.marked_cells(notebook, marker)) == 1, (filename, name)
    # A drawn figure is found by its marker; a missing marker or an empty cell is named.
    png = base64.b64encode(b"\x89PNG fake").decode()
    cell = nbformat.v4.new_code_cell("plt.title('mine')")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
    notebook = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell("x = 1")])
    assert render_figures.cell_png(notebook, "'mine'", "fig") == b"\x89PNG fake"
    with pytest.raises(SystemExit, match="fig: marker 'nowhere' is in 0 code cells"):
        render_figures.cell_png(notebook, "nowhere", "fig")
    with pytest.raises(SystemExit, match="fig: the cell holding 'x = 1' drew no figure"):
        render_figures.cell_png(notebook, "x = 1", "fig")
