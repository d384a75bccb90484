"""Write samples as FITS (image + truth cube) and a PNG montage like the seed paper's Figure 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from foundation.atomic import atomic_path
from foundation.classes import BACKGROUND_COLOUR, COLOURS, MULTI_CLASS_COLOUR

from .generator import Sample


def sample_hdus(sample: Sample) -> fits.HDUList:
    """Primary HDU: the image (float32, ADU). HDU 'TRUTH': uint8 cube (n_class, ny, nx).

    TRUTH carries ``CLASS1`` ... ``CLASSn`` (1-based, FITS plane order).
    """
    primary = fits.PrimaryHDU(sample.image.astype(np.float32))
    for key, (value, comment) in sample.header.items():
        primary.header[key] = (value, comment)
    primary.header["BUNIT"] = ("adu", "")
    truth = fits.ImageHDU(sample.truth.astype(np.uint8), name="TRUTH")
    for k, name in enumerate(sample.classes, start=1):
        truth.header[f"CLASS{k}"] = (name, f"class of plane {k}")
    sat = fits.ImageHDU(sample.saturated.astype(np.uint8), name="SATURATED")
    return fits.HDUList([primary, truth, sat])


def write_sample(sample: Sample, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write one sample atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists (pass overwrite=True to replace it)")
    with atomic_path(path) as tmp:
        sample_hdus(sample).writeto(tmp, overwrite=True)
    return path


def read_sample_file(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read back (image, truth bool cube, class names) from a file written by ``write_sample``."""
    with fits.open(path) as hdul:
        image = np.asarray(hdul[0].data, np.float32)
        truth_hdu = hdul["TRUTH"]
        n = truth_hdu.data.shape[0]
        classes = tuple(truth_hdu.header[f"CLASS{k}"] for k in range(1, n + 1))
        return image, truth_hdu.data.astype(bool), classes


def mask_rgb(truth: np.ndarray, classes) -> np.ndarray:
    """Colour-coded truth: one colour per class, black where several classes hold. (ny, nx, 3) float."""
    from matplotlib.colors import to_rgb

    counts = truth.sum(axis=0)
    rgb = np.empty(truth.shape[1:] + (3,), np.float32)
    rgb[:] = to_rgb(BACKGROUND_COLOUR)
    for k, name in enumerate(classes):
        rgb[truth[k] & (counts == 1)] = to_rgb(COLOURS[name])
    rgb[counts > 1] = to_rgb(MULTI_CLASS_COLOUR)
    return rgb


def display_stretch(image: np.ndarray) -> np.ndarray:
    """asinh stretch around the sky, robust to saturated stars; values in [0, 1]."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros_like(image)
    sky = np.median(finite)
    sigma = 1.4826 * np.median(np.abs(finite - sky)) or 1.0
    scaled = np.arcsinh((image - sky) / (3 * sigma))
    lo, hi = np.arcsinh(-2 / 3), np.percentile(scaled, 99.7)
    return np.clip((scaled - lo) / max(hi - lo, 1e-6), 0, 1)


def write_montage(samples: list[Sample], path: str | Path) -> Path:
    """PNG: a column per sample, the image above its colour-coded truth, with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = len(samples)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 7.0), squeeze=False)
    for j, sample in enumerate(samples):
        axes[0, j].imshow(display_stretch(sample.image), cmap="gray", origin="lower", interpolation="nearest")
        present = [c for k, c in enumerate(sample.classes) if sample.truth[k].any()]
        axes[0, j].set_title(f"{sample.family}\n{' '.join(present)}", fontsize=8)
        axes[1, j].imshow(mask_rgb(sample.truth, sample.classes), origin="lower", interpolation="nearest")
        for ax in axes[:, j]:
            ax.set_xticks([]), ax.set_yticks([])
    classes = samples[0].classes
    handles = [Patch(facecolor=COLOURS[c], edgecolor="k", label=c) for c in classes]
    handles.append(Patch(facecolor=MULTI_CLASS_COLOUR, edgecolor="k", label="several"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
