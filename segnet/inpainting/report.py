"""Formatting of the inpainting evaluation: markdown tables, JSON, and a PNG of examples.

Only formatting lives here; every figure comes from ``InpaintEvaluation``'s rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segnet.inpainting.evaluation import InpaintEvaluation

__all__ = ["markdown", "write_json", "plot_examples"]


def _mse_table(rows, first: str, methods) -> list[str]:
    out = [
        f"| {first} | "
        + " | ".join(f"MSE {m}" for m in methods)
        + " | network / median | network / biharmonic | "
        + " | ".join(f"median sq. err. {m}" for m in methods)
        + " | pixels |",
        "|---" * (2 * len(methods) + 4) + "|",
    ]
    for group, row in rows:
        cells = [f"{row[m]:.3g}" for m in methods]
        ratios = [f"{row['network'] / row[b]:.2f}" if row[b] > 0 else "–" for b in ("median", "biharmonic")]
        medians = [f"{row['median ' + m]:.3f}" for m in methods]
        out.append(f"| {group} | " + " | ".join(cells + ratios + medians) + f" | {row['pixels']:,} |")
    return out


def markdown(result: InpaintEvaluation) -> str:
    methods = list(result.methods)
    lines = []
    if result.skipped:
        lines += [f"{result.skipped} of {result.n_tiles} tiles not scored: their holes covered every finite pixel.", ""]
    lines += ["### MSE on replaced pixels, per class (units: local sky noise sigma squared)", ""]
    lines += _mse_table(result.class_rows(), "class", methods)
    lines += ["", "### MSE on replaced pixels, per field family or real frame (all classes)", ""]
    lines += _mse_table(result.family_rows(), "family", methods)
    lines += [
        "",
        "### Aperture photometry of stars whose aperture (r = 1.5 FWHM) overlaps replaced pixels",
        "",
        "Relative flux error (f - f_clean) / f_clean: median |error| / 90th percentile |error| / RMS. "
        "'none' is the contaminated image, not inpainted.",
        "",
    ]
    photo_methods = ["none"] + methods
    lines += ["| stars over | stars | " + " | ".join(photo_methods) + " |", "|---" * (len(photo_methods) + 2) + "|"]
    for group, row in result.photometry_rows():
        cells = [f"{row[m]['median']:.4f} / {row[m]['p90']:.4f} / {row[m]['rms']:.4f}" for m in photo_methods]
        lines.append(f"| {group} | {row['stars']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"### Runtimes per 100 images of {result.tile}x{result.tile} (s, this machine's CPU)",
        "",
        "| method | seconds per 100 images | Mpix/s |",
        "|---|---|---|",
    ]
    mpix = 100 * result.tile**2 / 1e6
    for method, seconds in result.runtime_rows():
        lines.append(f"| {method} | {seconds:.2f} | {mpix / seconds if seconds > 0 else float('nan'):.2f} |")
    return "\n".join(lines) + "\n"


def as_dict(result: InpaintEvaluation) -> dict:
    return {
        "n_tiles": result.n_tiles,
        "skipped_tiles": result.skipped,
        "tile": result.tile,
        "replace": list(result.replace),
        "mse_per_class": dict(result.class_rows()),
        "mse_per_family": dict(result.family_rows()),
        "photometry": dict(result.photometry_rows()),
        "seconds_per_100_tiles": dict(result.runtime_rows()),
    }


def write_json(result: InpaintEvaluation, path: Path) -> None:
    Path(path).write_text(json.dumps(as_dict(result), indent=1) + "\n")


def plot_examples(examples, path: Path, *, half: int = 24) -> None:
    """Rows of cut-outs: contaminated, mask, network, median, biharmonic, truth (the clean tile).

    ``examples``: list of (title, image, mask, {method: output}, clean, (cy, cx)), arrays
    (ny, nx), the cut-out centred on (cy, cx) (moved inside the image). All panels of a
    row share one asinh stretch (from the truth's percentiles).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["contaminated", "mask", "network", "median", "biharmonic", "truth"]
    fig, axes = plt.subplots(
        len(examples), len(columns), figsize=(2.0 * len(columns), 2.1 * len(examples)), squeeze=False
    )
    for row, (title, image, mask, outputs, clean, (cy, cx)) in zip(axes, examples):
        cy = int(np.clip(cy, half, image.shape[0] - half))
        cx = int(np.clip(cx, half, image.shape[1] - half))
        window = (slice(cy - half, cy + half), slice(cx - half, cx + half))
        lo, hi = np.percentile(clean[window], [1, 99.5])
        scale = max((hi - lo) / 20, 1e-6)

        def stretch(a):
            return np.arcsinh((a[window] - lo) / scale)

        vmax = float(np.arcsinh((hi - lo) / scale))
        panels = [
            stretch(image),
            mask[window],
            stretch(outputs["network"]),
            stretch(outputs["median"]),
            stretch(outputs["biharmonic"]),
            stretch(clean),
        ]
        for ax, name, panel in zip(row, columns, panels):
            if name == "mask":
                ax.imshow(panel, cmap="gray", vmin=0, vmax=1, origin="lower", interpolation="nearest")
            else:
                ax.imshow(panel, cmap="gray", vmin=0, vmax=vmax, origin="lower", interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if ax is row[0]:
                ax.set_ylabel(title, fontsize=7)
        for ax, name in zip(axes[0], columns):
            ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
