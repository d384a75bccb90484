"""Package a trained, evaluated run as a self-describing model folder (what ships in models/default).

    python -m segnet.serving.shipping runs/multiclass-v1 models/default --card-notes notes.md --hardware "2 CPU cores"

The folder gets everything predict.py, evaluate.py and a reader need, and nothing
else: the model without its optimiser state, the resolved config, the class list,
the training class fractions (for --priors), the thresholds, the training history
and its curve, the evaluation report (tables, ROC and reliability PNGs) and a model
card. The card's numbers are read from those files; ``--card-notes`` adds the parts
only a person can write (intended use, known limits).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import yaml

from foundation.atomic import atomic_path

COPIED = ("config.yaml", "classes.yaml", "class_fractions.yaml", "thresholds.yaml", "code_version.yaml", "history.csv")
OPTIONAL = ("calibration.yaml",)  # copied when the evaluation fitted one
EVALUATION = ("report.md", "metrics.csv", "metrics.json", "roc.png", "reliability.png")
CARD_METRICS = ("AUC", "TPR@0.1%FPR", "TPR@0.5%FPR", "TPR3x3@0.5%FPR", "best MCC", "MCC at threshold")
MAX_MB = 30.0


class ShippingError(ValueError):
    """The run cannot be shipped as it is; the message says what is missing."""


def read_history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] + 1 for row in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [row["loss"] for row in history], label="training loss", color="k")
    ax.plot(epochs, [row["val_loss"] for row in history], label="validation loss", color="tab:red")
    ax.set(xlabel="epoch", ylabel="weighted sigmoid cross-entropy", yscale="log")
    lr = ax.twinx()
    lr.plot(epochs, [row["learning_rate"] for row in history], color="tab:blue", ls=":", label="learning rate")
    lr.set_ylabel("learning rate", color="tab:blue")
    lines = ax.get_lines() + lr.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right")
    hours = sum(row["seconds"] for row in history) / 3600
    ax.set_title(f"{len(history)} epochs, {hours:.1f} h of training")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _metric_table(metrics: dict) -> str:
    head = "| class | " + " | ".join(CARD_METRICS) + " | positives |"
    rows = [head, "|" + "---|" * (len(CARD_METRICS) + 2)]
    for name, samples in metrics["classes"].items():
        row = samples["all"]
        cells = [f"{row[m]:.4f}" if isinstance(row.get(m), (int, float)) else "–" for m in CARD_METRICS]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {int(row['positives']):,} |")
    astro = metrics["classes"].get("CR", {}).get("astroscrappy (all)")
    if astro:
        cells = [
            f"{astro[m]:.4f}" if isinstance(astro.get(m), (int, float)) and astro[m] == astro[m] else "–"
            for m in CARD_METRICS
        ]
        rows.append("| CR, astroscrappy | " + " | ".join(cells) + " | same pixels |")
    return "\n".join(rows)


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def model_card(run: Path, dest: Path, model, *, hardware: str, notes: str) -> str:
    """The card's text, from ``model`` and the files already in ``dest``."""
    from segnet.network.model import count_flops_per_pixel

    config = yaml.safe_load((dest / "config.yaml").read_text())
    history = read_history(dest / "history.csv")
    metrics = json.loads((dest / "evaluation" / "metrics.json").read_text())
    fractions = yaml.safe_load((dest / "class_fractions.yaml").read_text())
    train, arch, data = config["train"], config["model"], config["data"]
    steps = len(history) * train["steps_per_epoch"]
    hours = sum(row["seconds"] for row in history) / 3600
    families = ", ".join(f"{name} ({fam.get('weight', 1.0):g})" for name, fam in data["families"].items())
    real = data.get("real_frames") or {}
    backgrounds = ""
    if real:
        source = (
            f"the training frames of `{real['devset']}`" if real.get("devset") else f"the files `{real.get('glob')}`"
        )
        backgrounds = (
            f" Real backgrounds (weight {real.get('weight', 1.0):g} beside the families'): tiles of {source} "
            "with the contaminants injected into them (`data_sim/real_frames.py`)"
            + ("; the frames' own contaminants are left out of the loss" if real.get("ignore_own") else "")
            + "."
        )
    start = f" Warm-started from `{train['init_from']}`." if train.get("init_from") else ""
    code = yaml.safe_load((dest / "code_version.yaml").read_text())
    timing = metrics.get("timing") or {}
    speed = ""
    if timing:
        speed = (
            f"\nOn 100 tiles of {timing['tile']}x{timing['tile']} in the same run: model "
            f"{timing['model_mpix_per_s']:.3f} Mpix/s, astroscrappy {timing['astroscrappy_mpix_per_s']:.3f} "
            "Mpix/s (the network and the pixel calibration on ready tiles; `bench/predict_speed.py` measures "
            "whole frames).\n"
        )
    calibration = (
        "`calibration.yaml` (the pixel calibration that turns the network's outputs into calibrated "
        "probabilities, `segnet/calibration/pixel.py`; fitted by `evaluate.py` on validation tiles, applied by "
        "`predict.py`; every figure below includes it), "
        if (dest / "calibration.yaml").is_file()
        else ""
    )
    return f"""# Model card: {dest.name}

Shipped from `{run}` by `python -m segnet.serving.shipping`. Files: `model.keras` (weights, no optimiser
state), `model.onnx` (the same network with its pixel calibration, what `predict.py` runs through
OpenVINO or ONNX Runtime; `segnet/serving/onnx_export.py`), `config.yaml` (the resolved training config),
`classes.yaml`, `class_fractions.yaml` (training class proportions, used by `predict.py --priors`),
`thresholds.yaml` (per class, MCC-optimal), {calibration}`history.csv` and `training_curve.png`, `evaluation/`
(from `evaluate.py`).

## Model

SegNet encoder–decoder (`segnet/network/model.py`): depth {arch["depth"]}, {arch["base_filters"]} filters at
full resolution doubling per level, {arch["convs_per_level"]} convolutions of
{arch["kernel_size"]}x{arch["kernel_size"]} + ELU per level, batch normalisation
{"on" if arch["batch_norm"] else "off"}, max pooling whose switches the decoder's unpooling reuses, one sigmoid
per class ({", ".join(config["classes"])}). {model.count_params():,} parameters,
{count_flops_per_pixel(model) / 1e3:.1f} kFLOP per pixel. Input: `asinh((image - background) / sigma)` with
background and noise from `foundation/normalize.py`; works on any image size (tiled by `predict.py`).
Trained under Keras {code.get("keras")} ({code.get("keras_backend")} backend), git commit
{code.get("git_commit", "?")[:10]}.

## Training data

Simulated {data["tile"]}x{data["tile"]} tiles from `data_sim/` (every pixel's truth exact), fresh tiles every
step: field families (weight) {families}.{backgrounds} An additive contaminant is
truth where it adds at least {data.get("truth_nsigma", 1.0):g} sigma of local noise; defects (columns, lines, pixels)
where they change the pixel. Class fractions measured on {fractions["tiles"]} tiles:
{", ".join(f"{k} {v:.2e}" for k, v in fractions["classes"].items())}.

## Training

Adam, learning rate {train["learning_rate"]:g} ({train["schedule"]} schedule, {train["warmup_steps"]} warm-up
steps), batch {train["batch_size"]}, {len(history)} epochs x {train["steps_per_epoch"]} steps = {steps:,} steps
({steps * train["batch_size"]:,} tiles), seed {train["seed"]}; loss: sigmoid cross-entropy weighted by
Gaussian-smoothed inverse class-frequency maps (class weight / background weight capped at
{train.get("max_weight_ratio", 0):g}). Compute: {hardware}; {hours:.1f} h of training (sum of epoch times in
`history.csv`).{start} Final training loss {history[-1]["loss"]:.4f}, validation loss {history[-1]["val_loss"]:.4f}.

![training curve](training_curve.png)

## Evaluation

`evaluate.py` on {metrics["n_tiles"]} held-out tiles (split `test`); all figures per pixel over all
families (per-family tables in `evaluation/report.md`). TPR3x3: hits counted with the
prediction dilated 3x3 at the same false-positive rate. MCC at threshold: at the shipped
threshold of `thresholds.yaml`.

{_metric_table(metrics)}
{speed}
![ROC curves](evaluation/roc.png)

{notes.strip()}
"""


def ship(run: Path, dest: Path, *, hardware: str, notes: str = "", overwrite: bool = False) -> Path:
    """Write the model folder ``dest`` from the run folder ``run``; returns the card's path."""
    from segnet.training.run_folder import load_model, resolve_model

    model_path, folder = resolve_model(run)
    missing = [name for name in COPIED if not (folder / name).is_file()]
    missing += [f"evaluation/{name}" for name in EVALUATION if not (folder / "evaluation" / name).is_file()]
    if missing:
        raise ShippingError(f"{folder}: missing {', '.join(missing)} (train it, then run evaluate.py --run {folder})")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise ShippingError(f"{dest}: exists and is not empty (pass --overwrite to replace its files)")
    (dest / "evaluation").mkdir(parents=True, exist_ok=True)

    model = load_model(model_path)
    with atomic_path(dest / "model.keras", suffix=".keras") as tmp:
        _save_without_optimizer(model, tmp)
    for name in COPIED:
        shutil.copyfile(folder / name, dest / name)
    for name in OPTIONAL:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, dest / name)
        elif (dest / name).exists():
            (dest / name).unlink()  # an older model's calibration must not meet these thresholds
    for name in EVALUATION:
        shutil.copyfile(folder / "evaluation" / name, dest / "evaluation" / name)
    write_onnx(dest / "model.keras", dest)
    plot_history(read_history(dest / "history.csv"), dest / "training_curve.png")
    card = dest / "MODEL_CARD.md"
    card.write_text(model_card(run, dest, model, hardware=hardware, notes=notes))
    size = folder_mb(dest)
    if size > MAX_MB:
        raise ShippingError(f"{dest}: {size:.1f} MB, over the {MAX_MB:g} MB a shipped model may take")
    return card


def write_onnx(model_path: Path, folder: Path) -> Path:
    """``folder/model.onnx``: the model and its folder's calibration as one ONNX graph, what prediction runs."""
    from segnet.serving.runtime import ONNX_NAME, export_folder

    target = Path(folder) / ONNX_NAME
    with atomic_path(target, suffix=".onnx") as tmp:
        Path(tmp).write_bytes(export_folder(Path(model_path), Path(folder)).SerializeToString())
    return target


def _save_without_optimizer(model, path: Path) -> None:
    """A .keras file holding the architecture and weights only (a third of the size with Adam's moments)."""
    import keras

    bare = keras.Model.from_config(model.get_config())
    bare.set_weights(model.get_weights())
    bare.save(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder (trained and evaluated)")
    parser.add_argument("dest", type=Path, help="model folder to write, e.g. models/default")
    parser.add_argument("--hardware", default="not stated", help="what it was trained on, for the card")
    parser.add_argument("--card-notes", type=Path, help="markdown appended to the card (intended use, limits)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    notes = ""
    if args.card_notes is not None:
        if not args.card_notes.is_file():
            print(f"error: --card-notes {args.card_notes}: no such file", file=sys.stderr)
            return 2
        notes = args.card_notes.read_text()
    try:
        card = ship(args.run, args.dest, hardware=args.hardware, notes=notes, overwrite=args.overwrite)
    except (ShippingError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dest}/ ({folder_mb(args.dest):.1f} MB); model card {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
