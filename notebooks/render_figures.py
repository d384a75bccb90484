"""Run both notebooks on the shipped model and write their figures to docs/images/notebooks/.

    python notebooks/render_figures.py

Each figure is the PNG output of the code cell whose source holds its marker below, so
the names survive cells being added or moved. The notebooks themselves are not changed
(they stay committed without outputs); a marker that matches no cell, or a cell that
draws nothing, stops the script with the notebook and marker named.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
OUT = NOTEBOOKS.parent / "docs" / "images" / "notebooks"

# notebook -> (figure name, a string only that cell's source holds)
FIGURES = {
    "explore_probability_maps.ipynb": [
        ("explore_maps_vs_truth", "ax_p.set_title"),
        ("explore_mcc_vs_threshold", "MCC against threshold"),
        ("explore_roc", 'label=f"{name}: AUC'),
        ("explore_worst_cr", "the worst mistakes"),
    ],
    "your_own_frame.ipynb": [
        ("own_planes_wcs", "THRESH[name]"),
        ("own_flags_overlay", "flags (FLAGS HDU)"),
        ("own_priors", "two priors"),
    ],
}


def marked_cells(notebook, marker: str) -> list:
    """The code cells whose source holds ``marker`` (a figure's marker must name exactly one)."""
    return [c for c in notebook.cells if c.cell_type == "code" and marker in c.source]


def cell_png(notebook, marker: str, name: str) -> bytes:
    """The last PNG the one code cell holding ``marker`` drew."""
    cells = marked_cells(notebook, marker)
    if len(cells) != 1:
        raise SystemExit(f"{name}: marker {marker!r} is in {len(cells)} code cells, expected 1")
    images = [o["data"]["image/png"] for o in cells[0].outputs if "image/png" in o.get("data", {})]
    if not images:
        raise SystemExit(f"{name}: the cell holding {marker!r} drew no figure")
    return base64.b64decode(images[-1])


def main() -> int:
    import nbformat
    from nbclient import NotebookClient

    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    OUT.mkdir(parents=True, exist_ok=True)
    for filename, figures in FIGURES.items():
        print(f"running {filename} ...", flush=True)
        notebook = nbformat.read(NOTEBOOKS / filename, as_version=4)
        client = NotebookClient(
            notebook, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        client.execute()
        for name, marker in figures:
            path = OUT / f"{name}.png"
            path.write_bytes(cell_png(notebook, marker, name))
            print(f"wrote {path.relative_to(NOTEBOOKS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
