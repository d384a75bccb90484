"""Figure layout shared by evaluate.py's report and bench/peers.py: one panel per class.

Only matplotlib is imported here (no Keras), so light processes draw the same figures.
"""

from __future__ import annotations

import math


def class_panels(names, *, panel=(3.4, 3.1)):
    """A figure with one axis per class, at most 5 a row, spare axes hidden: ``(fig, {name: ax})``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(names), 5)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    return fig, dict(zip(names, axes.ravel()))


def roc_axis(ax, name: str) -> None:
    """A ROC panel's axes: false-positive rate on a log scale from 1e-6, the class as title."""
    ax.set_xscale("log")
    ax.set_xlim(1e-6, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(name)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")


def close(fig) -> None:
    """Free a figure made by `class_panels` (pyplot keeps every figure alive until closed)."""
    import matplotlib.pyplot as plt

    plt.close(fig)
