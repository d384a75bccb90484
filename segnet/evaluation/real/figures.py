"""One PNG per real frame, so that a person can see what the benchmark's numbers mean.

Top: the frame (asinh stretch around its background) with the model's flags on the
frame as it is, in CONTRACT.md's colours (OBJ left out: it would cover every star;
a pixel in several contaminant classes is black). Below, at 8x zoom: the 8 most
probable CR groups, then the 8 brightest star cores (their core outlined in cyan),
each above the same cut-out with the flags drawn over it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from data_sim.export import mask_rgb
from foundation.classes import BACKGROUND_COLOUR, CONTAMINANTS

CUTOUT = 21  # px
N_CUTOUTS = 8


def _stretch(image, background, sigma):
    """asinh of the signal-to-noise, mapped to [0, 1] between -3 and +300 sigma."""
    snr = np.where(np.isfinite(image), (image - background) / np.maximum(sigma, 1e-12), 0)
    lo, hi = np.arcsinh(-3.0), np.arcsinh(300.0)
    return np.clip((np.arcsinh(snr) - lo) / (hi - lo), 0, 1)


def flag_colours(flags: dict, shape) -> np.ndarray:
    """(ny, nx, 4) RGBA: each flagged contaminant pixel in its class colour (black for several), else transparent."""
    names = [c for c in flags if c in CONTAMINANTS]
    stack = np.stack([flags[c] for c in names]) if names else np.zeros((0,) + shape, bool)
    alpha = stack.any(axis=0).astype(np.float32)[..., None]
    return np.concatenate([mask_rgb(stack, names), alpha], axis=-1)


def _cut(array, cy, cx, half):
    ny, nx = array.shape[:2]
    y0, x0 = (
        int(np.clip(cy - half, 0, max(ny - 2 * half - 1, 0))),
        int(np.clip(cx - half, 0, max(nx - 2 * half - 1, 0))),
    )
    return (slice(y0, y0 + 2 * half + 1), slice(x0, x0 + 2 * half + 1))


def top_cr_groups(prob_cr: np.ndarray, threshold: float, k: int = N_CUTOUTS) -> list[tuple[int, int, float]]:
    """(y, x, max probability) of the ``k`` most probable flagged CR groups."""
    labels, n = ndimage.label(prob_cr >= threshold, structure=np.ones((3, 3), bool))
    if not n:
        return []
    peaks = ndimage.maximum(prob_cr, labels, index=np.arange(1, n + 1))
    where = ndimage.maximum_position(prob_cr, labels, index=np.arange(1, n + 1))
    order = np.argsort(-np.asarray(peaks))[:k]
    return [(int(where[i][0]), int(where[i][1]), float(peaks[i])) for i in order]


def plot_frame(result, model_name: str, path) -> None:
    """The PNG of one frame (``harness.FrameResult``) for the tool named ``model_name``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    frame = result.frame
    image = frame.image
    grey = _stretch(image, result.estimate.background, result.estimate.sigma)
    tally = result.tallies[model_name]
    scores = result.scores[model_name][0]
    flags = {c: scores[c] >= tally.thresholds[c] for c in tally.classes}
    overlay = flag_colours(flags, image.shape)

    ny, nx = image.shape
    width = 14.0
    top_h = min(width * ny / nx, 12.0)
    cell = width / N_CUTOUTS
    fig = plt.figure(figsize=(width, top_h + 4 * cell * 1.15 + 0.4))
    grid = fig.add_gridspec(5, N_CUTOUTS, height_ratios=[top_h] + [cell * 1.15] * 4)
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(grey, cmap="gray", origin="lower", interpolation="nearest")
    ax.imshow(overlay, origin="lower", interpolation="nearest")
    ax.set_title(
        f"{frame.name}: {ny}x{nx}, flags of the {model_name} on the frame as it is "
        f"({', '.join(f'{c} {tally.flagged.get(c, 0)} px' for c in tally.classes if c in CONTAMINANTS)})",
        fontsize=8,
    )
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_facecolor(BACKGROUND_COLOUR)

    half = CUTOUT // 2
    groups = top_cr_groups(scores["CR"], tally.thresholds["CR"]) if "CR" in scores else []
    stars = result.stars
    star_rows = [
        (int(round(stars.positions[i, 0])), int(round(stars.positions[i, 1])), float(stars.peak_snr[i]))
        for i in stars.brightest(N_CUTOUTS)
    ]
    for first, (items, label, is_star) in zip(
        (1, 3), ((groups, "CR p={:.2f}", False), (star_rows, "star S/N {:.0f}", True))
    ):
        for j in range(N_CUTOUTS):
            for k in (0, 1):  # the cut-out, then the same with the flags
                a = fig.add_subplot(grid[first + k, j])
                a.set_xticks([]), a.set_yticks([])
                if j >= len(items):
                    a.axis("off")
                    continue
                cy, cx, value = items[j]
                window = _cut(image, cy, cx, half)
                a.imshow(grey[window], cmap="gray", origin="lower", interpolation="nearest")
                if k:
                    a.imshow(overlay[window], origin="lower", interpolation="nearest", alpha=0.7)
                if is_star:
                    a.contour(
                        result.stars.core[window] > 0,
                        levels=[0.5],
                        colors=[to_rgb("cyan")],
                        linewidths=0.6,
                        origin="lower",
                    )
                a.set_title(label.format(value) + (" + flags" if k else f" ({cx},{cy})"), fontsize=6)
    fig.text(
        0.01,
        0.005,
        "rows 2-3: the 8 most probable CR groups; rows 4-5: the brightest isolated star cores (cyan); "
        "each: image (x,y), then with flags (CR red, HCL white, BCL yellow, BLN brown, HPX blue, BPX green, "
        "PER turquoise, TRL orange, FRG light grey, SAT pink, SPK gold, GHO violet, several black)",
        fontsize=6,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
