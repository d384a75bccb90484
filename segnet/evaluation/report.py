"""Formatting of evaluation results: markdown tables, CSV, JSON, PNG plots, thresholds.yaml.

Only formatting lives here: every figure comes from ``ClassSummary.rows()`` or the
astroscrappy sweep, as ``(name, value)`` rows.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import yaml

from foundation.classes import COLOURS
from segnet.evaluation.figures import class_panels, close, roc_axis
from segnet.evaluation.metrics import FPR_POINTS
from segnet.evaluation.tiles import ALL, EvaluationResult

COLUMNS = (
    ["AUC"]
    + [f"TPR@{f * 100:g}%FPR" for f in FPR_POINTS]
    + [f"TPR3x3@{f * 100:g}%FPR" for f in FPR_POINTS]
    + ["precision@95%recall", "best MCC", "MCC threshold", "MCC at threshold", "ECE", "positives"]
)


def result_rows(result: EvaluationResult) -> dict:
    """{class: {sample: {metric: value}}}, sample = "all" then each family, plus astroscrappy for CR."""
    chosen = thresholds(result)
    table = {}
    for name in result.class_names:
        table[name] = {}
        for sample in [ALL] + result.families:
            summary = result.metrics[sample].summary(name)
            # "MCC at threshold": the MCC a user gets with the shipped threshold.
            table[name][sample] = {**dict(summary.rows()), "MCC at threshold": summary.mcc_at(chosen[name])}
    if result.baseline is not None and "CR" in table:
        b = result.baseline
        row = {f"TPR@{f * 100:g}%FPR": v for f, v in b["tpr_at_fpr"].items()}
        row.update({f"TPR3x3@{f * 100:g}%FPR": v for f, v in b["tpr_dilated_at_fpr"].items()})
        row.update(
            {
                "best MCC": max(b["mcc"]),
                "MCC threshold": float("nan"),
                "positives": b["positives"],
                "sigclip at best MCC": b["sigclip"][int(np.argmax(b["mcc"]))],
            }
        )
        table["CR"]["astroscrappy (all)"] = row
    return table


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown_tables(table: dict) -> str:
    out = []
    for name, samples in table.items():
        out.append(f"### {name}\n")
        out.append("| sample | " + " | ".join(COLUMNS) + " |")
        out.append("|---" * (len(COLUMNS) + 1) + "|")
        for sample, row in samples.items():
            cells = [f"{int(row[c]):,}" if c == "positives" and c in row else _fmt(row.get(c)) for c in COLUMNS]
            out.append(f"| {sample} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def write_csv(table: dict, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "sample", "metric", "value"])
        for name, samples in table.items():
            for sample, row in samples.items():
                for metric, value in row.items():
                    writer.writerow([name, sample, metric, value])


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(payload: dict, path: Path) -> None:
    path.write_text(json.dumps(_jsonable(payload), indent=1))


def uncalibrated_table(result: EvaluationResult) -> str:
    """AUC and best MCC of the network's own outputs beside the calibrated ones ("" without calibration)."""
    if result.uncalibrated is None:
        return ""
    out = [
        "### Network alone and with the pixel calibration (all test tiles)\n",
        "| class | AUC, network | AUC, calibrated | best MCC, network | best MCC, calibrated |",
        "|---|---|---|---|---|",
    ]
    for name in result.class_names:
        raw, cal = result.uncalibrated.summary(name), result.metrics[ALL].summary(name)
        out.append(
            f"| {name} | {_fmt(raw.auc())} | {_fmt(cal.auc())} | {_fmt(raw.best_mcc()[1])} | "
            f"{_fmt(cal.best_mcc()[1])} |"
        )
    return "\n".join(out) + "\n"


def thresholds(result: EvaluationResult) -> dict[str, float]:
    """Class name -> MCC-optimal threshold: chosen on other tiles if the result holds them, else on these."""
    if result.thresholds is not None:
        return dict(result.thresholds)
    # Exact bin edges, not rounded: logit-spaced edges lie closer than 1e-9 near 0 and 1.
    return {name: float(result.metrics[ALL].summary(name).best_mcc()[0]) for name in result.class_names}


def write_thresholds(result: EvaluationResult, path: Path) -> None:
    where = (
        f"{result.threshold_tiles} tiles of the validation split"
        if result.thresholds is not None
        else f"the {result.n_tiles} test tiles"
    )
    header = (
        "# Per-class thresholds that maximise the Matthews correlation coefficient on\n"
        f"# {where} ({result.tile}x{result.tile}, evaluate.py).\n"
    )
    path.write_text(header + yaml.safe_dump(thresholds(result), sort_keys=False))


def plot_roc(result: EvaluationResult, path: Path) -> None:
    fig, axes = class_panels(result.class_names)
    for name, ax in axes.items():
        for sample in result.families:
            s = result.metrics[sample].summary(name)
            if s.n_pos and s.n_neg:
                ax.plot(s.fpr, s.tpr, lw=0.8, alpha=0.6, label=sample)
        s = result.metrics[ALL].summary(name)
        colour = COLOURS[name] if name not in ("HCL", "FRG") else "k"  # white/light grey are invisible here
        ax.plot(s.fpr, s.tpr, lw=2, color=colour, label=f"all (AUC {s.auc():.4f})")
        if name == "CR" and result.baseline is not None:
            b = result.baseline
            ax.plot(b["fpr"], b["tpr"], "k^--", ms=4, lw=0.8, label="astroscrappy")
        roc_axis(ax, name)
        for f in FPR_POINTS:
            ax.axvline(f, color="0.8", lw=0.5)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    close(fig)


def plot_reliability(result: EvaluationResult, path: Path) -> None:
    fig, axes = class_panels(result.class_names, panel=(3.2, 3.1))
    for name, ax in axes.items():
        s = result.metrics[ALL].summary(name)
        conf, freq, count = s.reliability(20)
        ok = count > 0
        ax.plot([0, 1], [0, 1], color="0.7", lw=1)
        ax.plot(conf[ok], freq[ok], "o-", ms=3, color="k")
        ax.set_title(f"{name} (ECE {s.expected_calibration_error():.4f})")
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    close(fig)
