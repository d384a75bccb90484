"""``evaluate.py --real``: the benchmark over a set of real frames, written to a folder.

For each frame, ``harness.run_frame`` runs every tool on the frame and its injected
versions; its PNG is drawn, then only its tallies are kept (memory does not grow with
the number of frames). Writes ``real_report.md``, ``real_metrics.json`` and
``<frame>.png`` into ``out``.
"""

from __future__ import annotations

from pathlib import Path

from . import report
from .figures import plot_frame
from .harness import SEED, run_frame


def run_benchmark(
    frames,
    tools,
    sim_config,
    classes,
    out: Path,
    *,
    model_path: str,
    command: str,
    draws: int = 2,
    seed: int = SEED,
    progress=None,
) -> dict:
    """Every tool on every frame; returns the JSON document (also written to ``out``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for frame in frames:
        result = run_frame(
            frame,
            tools,
            sim_config,
            classes,
            draws=draws,
            seed=seed,
            progress=(lambda tool, name=frame.name: progress(f"{name}: {tool}")) if progress else None,
        )
        if report.MODEL in result.tallies:
            plot_frame(result, report.MODEL, out / f"{frame.name}.png")
        results.append((frame.name, result.tallies, float(result.preexisting.mean()), result.reference))
        del result
    doc = report.metrics(results, model_path)
    report.write_json(doc, out / "real_metrics.json")
    (out / "real_report.md").write_text(report.markdown(doc, frames, command=command, draws=draws, seed=seed))
    return doc
