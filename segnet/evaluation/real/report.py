"""``real_report.md`` and ``real_metrics.json`` of the real-frame benchmark.

The JSON is ``{"model": ..., "frames": {STEM: FIGURES}, "overall": FIGURES, "peers": {TOOL:
{"frames": {STEM: FIGURES}, "overall": FIGURES}}, "preexisting_fraction": {STEM: fraction}}``
where FIGURES is ``harness.Tally.figures()``: ``injected`` (class -> positives, negatives,
tpr_at_threshold, fpr_at_threshold, tpr_at_0.1%_fpr, tpr_at_0.5%_fpr), ``star_cores``
(n, pixels, flagged: class -> fraction; ANY: any contaminant), ``flagged_fraction`` and
``flagged_groups`` (class -> value, on the frame as it is).
"""

from __future__ import annotations

import json
import math

from .harness import ANY, FPR_POINTS, Tally

MODEL = "model"


def tool_figures(tallies: dict) -> dict:
    """``{"frames": {stem: figures}, "overall": figures}`` of one tool from its per-frame tallies."""
    overall = None
    for tally in tallies.values():
        if overall is None:
            overall = Tally(tally.classes, tally.thresholds)
        overall += tally
    return {
        "frames": {stem: t.figures() for stem, t in tallies.items()},
        "overall": overall.figures() if overall is not None else {},
    }


def metrics(results: list, model_path: str) -> dict:
    """The JSON document from ``(stem, {tool name: Tally}, pre-existing share, reference tools)`` per frame."""
    names = []
    for _, tallies, _, _ in results:
        names += [n for n in tallies if n not in names]
    per_tool = {n: tool_figures({stem: t[n] for stem, t, _, _ in results if n in t}) for n in names}
    return {
        "model": model_path,
        **per_tool.get(MODEL, {"frames": {}, "overall": {}}),
        "peers": {n: f for n, f in per_tool.items() if n != MODEL},
        "preexisting_fraction": {stem: float(share) for stem, _, share, _ in results},
        "preexisting_from": {stem: list(used) for stem, _, _, used in results},
        "thresholds": {n: next(t[n].thresholds for _, t, _, _ in results if n in t) for n in names},
    }


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def write_json(doc: dict, path) -> None:
    path.write_text(json.dumps(_clean(doc), indent=1) + "\n")


def _pct(value, digits=2):
    return (
        "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{100 * value:.{digits}f}"
    )


def _num(value, digits=3):
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def markdown_table(header, rows) -> str:
    """A markdown table: ``header`` (column names) and ``rows`` (lists of cells, each shown with ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def tools_table(doc: dict, scope) -> str:
    """CR figures of every tool, for one frame (``scope`` = stem) or overall (None)."""
    tools = {MODEL: {"frames": doc["frames"], "overall": doc["overall"]}, **doc["peers"]}
    rows = []
    for name, figures in tools.items():
        f = figures["overall"] if scope is None else figures["frames"].get(scope)
        if not f:
            continue
        cr = f["injected"].get("CR", {})
        cores = f["star_cores"]
        rows.append(
            [
                name,
                _pct(f["flagged_fraction"].get("CR"), 3),
                f["flagged_groups"].get("CR", "–"),
                f"{cores['n']}",
                _pct(cores["flagged"].get("CR")),
                _pct(cores["flagged"].get(ANY)),
                cr.get("positives", "–"),
                _num(cr.get("tpr_at_threshold")),
                _pct(cr.get("fpr_at_threshold"), 3),
                *(_num(cr.get(f"tpr_at_{p * 100:g}%_fpr")) for p in FPR_POINTS),
            ]
        )
    header = [
        "tool",
        "CR flagged %",
        "CR groups",
        "stars",
        "star cores CR %",
        "star cores any %",
        "injected CR px",
        "CR TPR@thr",
        "CR FPR@thr %",
    ] + [f"CR TPR@{p * 100:g}%FPR" for p in FPR_POINTS]
    return markdown_table(header, rows)


def model_class_table(figures: dict) -> str:
    """Every class of the model: injected recovery, star-core flags, flagged fraction and groups."""
    rows = []
    classes = list(figures["flagged_fraction"])
    for c in classes:
        inj = figures["injected"].get(c, {})
        rows.append(
            [
                c,
                inj.get("positives", "–"),
                _num(inj.get("tpr_at_threshold")),
                _pct(inj.get("fpr_at_threshold"), 3),
                *(_num(inj.get(f"tpr_at_{p * 100:g}%_fpr")) for p in FPR_POINTS),
                _pct(figures["star_cores"]["flagged"].get(c)),
                _pct(figures["flagged_fraction"][c], 3),
                figures["flagged_groups"][c],
            ]
        )
    rows.append([f"{ANY} contaminant", "", "", "", "", "", _pct(figures["star_cores"]["flagged"].get(ANY)), "", ""])
    header = (
        ["class", "injected px", "TPR@thr", "FPR@thr %"]
        + [f"TPR@{p * 100:g}%FPR" for p in FPR_POINTS]
        + ["star cores flagged %", "flagged % (frame as is)", "groups"]
    )
    return markdown_table(header, rows)


def markdown(doc: dict, frames: list, *, command: str, draws: int, seed: int) -> str:
    """The report: what was measured, the CR table of every tool, the model's classes, per frame."""
    parts = [
        f"# Real-frame benchmark of {doc['model']}",
        "",
        f"Command: `{command}`",
        "",
        f"Frames: {len(frames)}. Injected versions per frame: {draws} with every contaminant the model "
        f"predicts but FRG, and one with FRG alone (seed {seed}). Negatives: the frame's pixels more than "
        "3 px from any injected truth pixel; positives and negatives both leave out the frame's own "
        "contaminants (what astroscrappy and the model flag on the frame as it is, saturated and non-finite "
        "pixels, grown by 2 px; its share of each frame is in the last table); so a tool's FPR here leaves out "
        "what the model flags on the frame as it is, which 'flagged' and 'star cores' report. "
        "Star cores: isolated, round, "
        "unsaturated stars found by photutils (foundation/stars.py); any flag there but OBJ is wrong. "
        "Thresholds: each tool's own defaults (the model's thresholds.yaml).",
        "",
        "## All frames",
        "",
        tools_table(doc, None),
        "",
        "### The model, every class",
        "",
        model_class_table(doc["overall"]) if doc["overall"] else "(no frame)",
        "",
    ]
    for stem in doc["frames"]:
        parts += [
            f"## {stem}",
            "",
            f"![{stem}]({stem}.png)",
            "",
            tools_table(doc, stem),
            "",
            model_class_table(doc["frames"][stem]),
            "",
        ]
    parts += [
        "## Pre-existing contaminants left out",
        "",
        "A reference tool that flags over 5 % of a frame is not used for its mask (it is failing there).",
        "",
        markdown_table(
            ["frame", "share of pixels %", "flags of"],
            [
                [s, _pct(v), ", ".join(doc["preexisting_from"][s]) or "none (saturated, non-finite only)"]
                for s, v in doc["preexisting_fraction"].items()
            ],
        ),
        "",
    ]
    return "\n".join(parts)
