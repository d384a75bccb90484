"""Classical inpainting baselines: LACosmic's masked median and scikit-image's biharmonic fill.

Both take an image in any units and a mask of the pixels to replace, and return
a float32 copy whose unmasked pixels are the input's, bit for bit (after the
conversion to float32). Non-finite pixels are treated as masked: they are
replaced and never used as neighbours.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["masked_median", "biharmonic"]


def _check(image, mask):
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"`image` must be a non-empty 2-D array, got shape {image.shape}")
    if mask.shape != image.shape:
        raise ValueError(f"`mask` must have the image's shape {image.shape}, got {mask.shape}")
    out = image.astype(np.float32)  # a copy, native byte order
    unknown = mask.astype(bool) | ~np.isfinite(out)
    return out, unknown


def masked_median(image, mask, *, size: int = 5, max_size: int | None = None) -> np.ndarray:
    """Each masked pixel gets the median of the unmasked pixels in its ``size x size`` window.

    This is LACosmic's replacement (astroscrappy's ``cleantype="medmask"``).
    Where a window holds no unmasked pixel (inside a wide trail, a full bad
    line crossing a column), the window grows by 1 px on every side until it does
    (up to ``max_size``, default the image's larger side doubled); a pixel
    still without a neighbour then gets the median of every unmasked pixel.
    Windows are cut at the image's edge.

    Parameters
    ----------
    image : (ny, nx) array_like of real numbers, any units.
    mask : (ny, nx) array_like of bool, True where the pixel is replaced.
    size : odd int >= 3, the window's side, px.
    max_size : odd int >= size, the largest window tried, px.

    Returns
    -------
    (ny, nx) float32 ndarray, same units.
    """
    if not isinstance(size, (int, np.integer)) or size < 3 or size % 2 == 0:
        raise ValueError(f"`size` must be an odd int >= 3, got {size!r}")
    out, unknown = _check(image, mask)
    if not unknown.any():
        return out
    known = np.where(unknown, np.nan, out).astype(np.float64)
    if np.isnan(known).all():
        raise ValueError("`mask` covers every finite pixel: nothing to take a median of")
    ny, nx = out.shape
    if max_size is None:
        max_size = 2 * max(ny, nx) + 1
    ys, xs = np.nonzero(unknown)
    half = size // 2
    while ys.size and 2 * half + 1 <= max_size:
        padded = np.pad(known, half, constant_values=np.nan)
        # (n, size, size) windows of the remaining pixels, gathered in chunks to bound memory.
        offsets = np.arange(-half, half + 1)
        values = np.empty(ys.size)
        chunk = max(1, 2_000_000 // offsets.size**2)
        for start in range(0, ys.size, chunk):
            yy = ys[start : start + chunk, None, None] + half + offsets[None, :, None]
            xx = xs[start : start + chunk, None, None] + half + offsets[None, None, :]
            window = padded[yy, xx].reshape(yy.shape[0], -1)
            empty = np.isnan(window).all(axis=1)
            window[empty, 0] = np.inf  # keeps nanmedian quiet about all-NaN rows; marked below
            medians = np.nanmedian(window, axis=1)
            medians[empty] = np.nan
            values[start : start + chunk] = medians
        found = ~np.isnan(values)
        out[ys[found], xs[found]] = values[found]
        ys, xs = ys[~found], xs[~found]
        half += 1
    if ys.size:
        out[ys, xs] = np.nanmedian(known)
    return out


def biharmonic(image, mask, *, margin: int = 2) -> np.ndarray:
    """Masked pixels filled by the biharmonic equation (``skimage.restoration.inpaint_biharmonic``).

    Each connected region of the mask (8-connectivity) is solved on its own
    bounding box grown by ``margin`` px of known pixels (scikit-image's own
    ``split_into_regions``, which is what keeps large frames tractable); the
    image is shifted and scaled to about unit range first so that the solver
    is well conditioned for any units, and the result clipped to the range of
    the known pixels (scikit-image's rule).

    Parameters
    ----------
    image : (ny, nx) array_like of real numbers, any units.
    mask : (ny, nx) array_like of bool, True where the pixel is replaced.
    margin : int >= 2, known pixels kept around each region, px.

    Returns
    -------
    (ny, nx) float32 ndarray, same units.
    """
    from skimage.restoration import inpaint_biharmonic  # heavy import, only here

    out, unknown = _check(image, mask)
    if not unknown.any():
        return out
    if unknown.all():
        raise ValueError("`mask` covers every finite pixel: nothing to interpolate from")
    known = out[~unknown].astype(np.float64)
    offset, scale = float(np.median(known)), float(np.ptp(known)) or 1.0
    work = np.where(unknown, 0.0, (out.astype(np.float64) - offset) / scale)
    labels, _ = ndimage.label(unknown, structure=np.ones((3, 3), bool))
    for box in ndimage.find_objects(labels):
        grown = tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, out.shape))
        region = unknown[grown]
        if region.all():  # no known pixel in reach: leave it to a wider box
            grown = (slice(None), slice(None))
            region = unknown
        filled = inpaint_biharmonic(work[grown], region)
        work[grown] = np.where(region, filled, work[grown])
    out[unknown] = (work[unknown] * scale + offset).astype(np.float32)
    return out
