"""Inpainting masks for training: a tile's own contaminants plus a mask borrowed from another tile.

The true masks tell the network what to remove, but they sit only where
contaminants fell; as in deepCR, masks borrowed from other frames are laid over
clean sky and objects too, so the network also learns to rebuild stars and
galaxies under a hit (there the truth is just the pixel's own clean value).
"""

from __future__ import annotations

import numpy as np

from data_sim.generator import SPLITS, Sample

__all__ = [
    "replace_mask",
    "hole_mask",
    "clean_noise",
    "flagged_mask",
    "flagged_classes",
    "grow",
    "usable_pixels",
    "borrowed_mask",
    "training_mask",
    "mask_rng",
]

BORROW_STREAM = 1  # a 4th seed word: never one of the simulator's (seed, split, index) streams


def replace_mask(sample: Sample, classes) -> np.ndarray:
    """(ny, nx) bool: pixels in any of ``classes`` (names) of the sample's truth."""
    mask = np.zeros(sample.image.shape, bool)
    for name in classes:
        mask |= sample.truth_of(name)
    return mask


def hole_mask(sample: Sample, classes, nsigma: float | None = None) -> np.ndarray:
    """The hole a training tile gets: its ``classes`` truth, or with ``nsigma`` only where the
    contaminants changed the pixel by at least ``nsigma`` times the clean tile's noise.

    A segmentation model's flags stop short of a hit's faint halo. Holes cut at a higher
    level than the truth leave that halo outside them in the input, so the network learns
    to fill the hole from the clean truth instead of continuing the halo into it.
    """
    mask = replace_mask(sample, classes)
    if nsigma is None or not mask.any():
        return mask
    _, sigma = clean_noise(sample)
    changed = np.abs(sample.image.astype(np.float64) - sample.clean.astype(np.float64))
    return mask & (changed >= nsigma * sigma)


def clean_noise(sample: Sample):
    """Background and noise maps of the clean tile, (ny, nx) float32 ADU (saturated pixels left out)."""
    from foundation.normalize import BackgroundGrid

    grid = BackgroundGrid(sample.clean, box=int(min(64, max(sample.clean.shape))), mask=sample.clean_saturated)
    return grid.window()


def grow(mask: np.ndarray, pixels: int, spare: np.ndarray | None = None) -> np.ndarray:
    """``mask`` grown by ``pixels`` px in every direction (a square neighbourhood: 8-connected steps),
    but never into ``spare`` (bool, e.g. the pixels flagged OBJ) outside ``mask``.

    A flagged hit's faint halo lies outside its flags; replacing it too keeps a fill from
    continuing the halo into the hole (``--inpaint-grow``). The halo lies on sky: grown into
    a star next to a flag, the hole would swallow the star, and every fill loses its flux
    (on the real evaluation frames, stars under replaced pixels lost 55 % of their flux,
    median, with flags grown 2 px into them, 7 % with their stars spared).
    """
    if pixels < 0:
        raise ValueError(f"--inpaint-grow: must be >= 0 px, got {pixels}")
    if pixels == 0 or not mask.any():
        return mask.copy()
    from scipy import ndimage

    grown = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=int(pixels))
    return grown if spare is None else grown & (mask | ~spare)


def flagged_mask(flags: np.ndarray, classes, replace, pixels: int = 0) -> np.ndarray:
    """(ny, nx) bool: where FLAGS (bit k for ``classes[k]``) holds any class of ``replace``, grown by
    ``pixels`` but not into pixels flagged OBJ (see `grow`)."""
    return grow(flagged_classes(flags, classes, replace), pixels, spare=flagged_classes(flags, classes, ("OBJ",)))


def flagged_classes(flags: np.ndarray, classes, names) -> np.ndarray:
    """(ny, nx) bool: where FLAGS (bit k for ``classes[k]``) holds any class of ``names``."""
    chosen = sum(2**k for k, c in enumerate(classes) if c in names)
    return (np.asarray(flags) & chosen) != 0


def usable_pixels(sample: Sample, mask: np.ndarray) -> np.ndarray:
    """(ny, nx) bool: the pixels of ``mask`` that count, in the loss and in the evaluation: finite and
    unsaturated in the tile and in its clean twin (the truth), and not one of a real frame's own
    contaminants (``Sample.unknown``: there the "clean" tile holds the contaminant itself)."""
    usable = mask & np.isfinite(sample.image) & np.isfinite(sample.clean) & ~sample.saturated
    if sample.clean_saturated is not None:
        usable &= ~sample.clean_saturated
    if sample.unknown is not None:
        usable &= ~sample.unknown
    return usable


def mask_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of sample ``index``'s borrowed mask: a function of (seed, split, index) only."""
    return np.random.default_rng([int(seed), SPLITS[split], int(index), BORROW_STREAM])


def borrowed_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another tile's mask, moved: a random rotation by a multiple of 90 degrees, flip and cyclic shift.

    Parameters
    ----------
    mask : (n, n) bool (square, so a rotation keeps the shape).
    rng : numpy Generator.

    Returns
    -------
    (n, n) bool, a new array.
    """
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"`mask` must be square 2-D, got shape {mask.shape}")
    moved = np.rot90(mask, int(rng.integers(4)))
    if rng.random() < 0.5:
        moved = moved[:, ::-1]
    return np.roll(moved, (int(rng.integers(mask.shape[0])), int(rng.integers(mask.shape[1]))), axis=(0, 1)).copy()


def training_mask(
    own: np.ndarray,
    other: np.ndarray,
    rng: np.random.Generator,
    *,
    borrow_probability: float,
    borrow_max_fraction: float,
) -> np.ndarray:
    """The tile's own replace mask, plus (with ``borrow_probability``) ``other`` moved over it.

    A borrowed mask covering more than ``borrow_max_fraction`` of the tile (a
    fringe field, a wide trail) is not used: it would leave little to learn from.
    The draws happen whatever the outcome, so the stream's use never depends on the data.
    """
    moved = borrowed_mask(other, rng)
    use = rng.random() < borrow_probability and moved.mean() <= borrow_max_fraction
    return own | moved if use else own.copy()
