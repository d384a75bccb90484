"""Background and noise normalisation, shared by training and prediction.

The network sees ``(image - background) / sigma``: sky level and noise vary
from frame to frame and across a frame, contaminants are defined relative to
them. Both maps come from robust statistics in boxes on a coarse grid,
interpolated back to every pixel. Everything is vectorised (one sort of all
boxes, binary searches, one more sort for the MAD, two small matmuls): a
4096 x 4096 float32 frame takes 0.7-1 s on a 2-core CPU (box 64).
"""

from typing import NamedTuple

import numpy as np
from scipy import ndimage

__all__ = ["BackgroundGrid", "Normalized", "normalize_image"]

_MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD -> sigma for Gaussian noise
_IQR_TO_SIGMA = _MAD_TO_SIGMA / 2.0  # IQR = 2 MAD for symmetric noise


class Normalized(NamedTuple):
    """Result of `normalize_image`; all arrays have the input's ``(ny, nx)`` shape."""

    image: np.ndarray
    """float32, ``(image - background) / sigma``, dimensionless; 0 where `invalid`."""
    background: np.ndarray
    """float32, background level in the input's units."""
    sigma: np.ndarray
    """float32, > 0, noise standard deviation in the input's units."""
    invalid: np.ndarray
    """bool, True where the input is non-finite or was masked."""


def _box_starts(n, box):
    """Starts of boxes of side ``min(box, n)`` tiling ``0..n-1``.

    When ``box`` does not divide ``n``, the last box is moved back to end at
    the edge (it overlaps its neighbour), so every box has full size and the
    last rows or columns are never estimated from a sliver of pixels.
    """
    size = min(box, n)
    starts = np.arange(0, n - size + 1, size)
    if starts[-1] + size < n:
        starts = np.append(starts, n - size)
    return starts, size


def _sorted_quantile(s, lo, n, q):
    """Quantile ``q`` (linear) of ``s[i, lo[i]:lo[i] + n[i]]`` for sorted rows; NaN if n == 0."""
    last = s.shape[1] - 1
    pos = lo + q * np.maximum(n - 1, 0)
    i = np.floor(pos).astype(np.int64)
    frac = pos - i
    a = np.take_along_axis(s, np.clip(i, 0, last)[:, None], 1)[:, 0].astype(np.float64)
    b = np.take_along_axis(s, np.clip(i + 1, 0, last)[:, None], 1)[:, 0].astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf in rows with n == 0
        value = np.where(frac > 0, a + frac * (b - a), a)
    return np.where(n > 0, value, np.nan)


def _row_count(s, t, *, strict):
    """Per sorted row of ``s``, how many values are ``< t`` (strict) or ``<= t``.

    A binary search vectorised over rows: ``log2(n_columns)`` gathers of one
    value per row instead of a pass over the whole array. NaNs (sorted last)
    and NaN thresholds are never counted.
    """
    n_rows, n_cols = s.shape
    lo = np.zeros(n_rows, dtype=np.int64)
    hi = np.full(n_rows, n_cols, dtype=np.int64)
    for _ in range(n_cols.bit_length()):
        mid = (lo + hi) // 2
        v = np.take_along_axis(s, np.minimum(mid, n_cols - 1)[:, None], 1)[:, 0]
        below = (v < t) if strict else (v <= t)
        active = lo < hi
        lo = np.where(active & below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)
    return lo


def _clipped_stats(s, n_valid, nsigma, maxiters):
    """Sigma-clipped median and ``1.4826 * MAD`` of each row of ``s``.

    ``s`` holds one box per row, sorted ascending with NaNs last; ``n_valid``
    counts its finite values. Clipping keeps a contiguous range ``lo:hi`` of
    each sorted row, so an iteration costs a few binary searches. The
    clipping thresholds use the interquartile sigma (``IQR / 1.349``, read
    directly from the sorted rows); the returned sigma is ``1.4826`` times
    the median absolute deviation of the finally kept pixels (one more
    sort). Both agree for symmetric noise.
    """
    lo = np.zeros_like(n_valid)
    hi = n_valid.copy()
    for _ in range(maxiters):
        n = hi - lo
        med = _sorted_quantile(s, lo, n, 0.5)
        spread = _IQR_TO_SIGMA * (_sorted_quantile(s, lo, n, 0.75) - _sorted_quantile(s, lo, n, 0.25))
        with np.errstate(invalid="ignore"):
            new_lo = _row_count(s, med - nsigma * spread, strict=True)
            new_hi = _row_count(s, med + nsigma * spread, strict=False)
        new_lo = np.where(n > 0, new_lo, lo)
        new_hi = np.where(n > 0, new_hi, hi)
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break
        lo, hi = new_lo, new_hi

    n = hi - lo
    med = _sorted_quantile(s, lo, n, 0.5)
    column = np.arange(s.shape[1])
    with np.errstate(invalid="ignore"):
        dev = np.abs(s - med[:, None].astype(s.dtype))
    dev[(column < lo[:, None]) | (column >= hi[:, None])] = np.inf
    dev.sort(axis=1)
    sigma = _MAD_TO_SIGMA * _sorted_quantile(dev, np.zeros_like(n), n, 0.5)
    return med, sigma


def _fill_from_nearest(grid, ok, fallback):
    """Replaces the boxes where ``ok`` is False by the nearest good box."""
    if not ok.any():
        return np.full(grid.shape, fallback, dtype=np.float64)
    if ok.all():
        return grid
    nearest = ndimage.distance_transform_edt(~ok, return_distances=False, return_indices=True)
    return grid[tuple(nearest)]


def _median_filter(grid, size):
    """Median filter of the box grid; a linear gradient passes unchanged.

    The border is extended by point reflection (``2 g[0] - g[1]``), so the
    windows at the edges are symmetric about their centre for a plane.
    """
    if size == 1:
        return grid
    r = size // 2
    padded = grid
    for axis in range(2):
        widths = [(0, 0), (0, 0)]
        widths[axis] = (r, r)
        if grid.shape[axis] > 1:
            padded = np.pad(padded, widths, mode="reflect", reflect_type="odd")
        else:
            padded = np.pad(padded, widths, mode="edge")
    return ndimage.median_filter(padded, size=size, mode="nearest")[r:-r, r:-r]


def _interp_matrix(centers, n):
    """``(n, len(centers))`` float32 weights of linear interpolation to 0..n-1.

    Row ``i`` interpolates between the two box centres around pixel ``i``;
    beyond the first and last centres the value is held constant. With
    these matrices a map is ``W_y @ grid @ W_x.T`` (two small matmuls).
    """
    weights = np.zeros((n, len(centers)), dtype=np.float32)
    if len(centers) == 1:
        weights[:, 0] = 1.0
        return weights
    pos = np.arange(n)
    i = np.clip(np.searchsorted(centers, pos, side="right") - 1, 0, len(centers) - 2)
    t = np.clip((pos - centers[i]) / (centers[i + 1] - centers[i]), 0.0, 1.0)
    weights[pos, i] = 1.0 - t
    weights[pos, i + 1] = t
    return weights


def _check_options(box, nsigma, maxiters, filter_size, exclude_fraction):
    if not isinstance(box, (int, np.integer)) or box < 1:
        raise ValueError(f"`box` must be a positive int, got {box!r}")
    if not nsigma > 0:
        raise ValueError(f"`nsigma` must be > 0, got {nsigma!r}")
    if not isinstance(maxiters, (int, np.integer)) or maxiters < 0:
        raise ValueError(f"`maxiters` must be an int >= 0, got {maxiters!r}")
    if not isinstance(filter_size, (int, np.integer)) or filter_size < 1 or filter_size % 2 == 0:
        raise ValueError(f"`filter_size` must be an odd positive int, got {filter_size!r}")
    if not 0.0 <= exclude_fraction < 1.0:
        raise ValueError(f"`exclude_fraction` must be in [0, 1), got {exclude_fraction!r}")


def _as_float_rows(image, y_start, y_stop, mask):
    """Rows ``y_start:y_stop`` as float32 (native order, a copy), invalid pixels NaN."""
    rows = np.array(image[y_start:y_stop], dtype=np.float32)
    invalid = ~np.isfinite(rows)
    if mask is not None:
        invalid |= np.asarray(mask[y_start:y_stop], dtype=bool)
    rows[invalid] = np.nan
    return rows


class BackgroundGrid:
    """Background and noise on the box grid of an image, readable over any window.

    Built one row of boxes at a time, so an image read lazily (a memory map,
    ``astropy.io.fits`` ``hdu.section``) never has to be in memory whole; the
    grid, and so every window of it, is the same whichever way the image is
    read or cut. See `normalize_image` for the statistics.

    Attributes: ``shape`` (ny, nx) of the image; ``background`` and ``sigma``,
    the filtered grids (float64, input units).
    """

    def __init__(self, image, *, box=64, nsigma=3.0, maxiters=5, filter_size=3, exclude_fraction=0.5, mask=None):
        shape = tuple(getattr(image, "shape", ()))
        if len(shape) != 2 or 0 in shape:
            raise ValueError(f"`image` must be a non-empty 2-D array, got shape {shape}")
        dtype = np.dtype(getattr(image, "dtype", np.float32))
        if not (np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)):
            raise ValueError(f"`image` must hold real numbers, got dtype {dtype}")
        _check_options(box, nsigma, maxiters, filter_size, exclude_fraction)
        if mask is not None and tuple(np.shape(mask)) != shape:
            raise ValueError(f"`mask` must have the image's shape {shape}, got {np.shape(mask)}")
        ny, nx = self.shape = shape
        y0, by = _box_starts(ny, box)
        x0, bx = _box_starts(nx, box)
        cols = (x0[:, None] + np.arange(bx)).ravel()
        med = np.empty((len(y0), len(x0)))
        sig = np.empty((len(y0), len(x0)))
        n_valid = np.empty((len(y0), len(x0)), dtype=np.int64)
        for i, start in enumerate(y0):
            rows = _as_float_rows(image, start, start + by, mask)
            boxes = rows[:, cols].reshape(by, len(x0), bx).transpose(1, 0, 2).reshape(len(x0), by * bx)
            boxes.sort(axis=1)  # NaNs go last
            n_valid[i] = np.count_nonzero(np.isfinite(boxes), axis=1)
            med[i], sig[i] = _clipped_stats(boxes, n_valid[i], nsigma, maxiters)
        bkg_ok = (n_valid > 0) & (n_valid >= (1.0 - exclude_fraction) * by * bx)
        sig_ok = bkg_ok & np.isfinite(sig) & (sig > 0)
        self.background = _median_filter(_fill_from_nearest(med, bkg_ok, 0.0), filter_size)
        sig = _fill_from_nearest(sig, sig_ok, 1.0)  # all > 0 now
        self.sigma = np.maximum(_median_filter(sig, filter_size), 1e-3 * np.median(sig))
        self._wy = _interp_matrix(y0 + (by - 1) / 2.0, ny)
        self._wx = _interp_matrix(x0 + (bx - 1) / 2.0, nx)

    def window(self, ys: slice = slice(None), xs: slice = slice(None)):
        """(background, sigma) over rows ``ys`` and columns ``xs``, float32, input units."""
        wy, wx = self._wy[ys], self._wx[xs]
        return (wy @ self.background.astype(np.float32) @ wx.T, wy @ self.sigma.astype(np.float32) @ wx.T)


def normalize_image(
    image,
    *,
    box=64,
    nsigma=3.0,
    maxiters=5,
    filter_size=3,
    exclude_fraction=0.5,
    mask=None,
):
    """Subtracts a smooth background and divides by a smooth noise map.

    In boxes of ``box x box`` pixels on a regular grid (the last box of a
    row or column is moved back to end at the edge, overlapping its
    neighbour), the background is the sigma-clipped median and the noise is
    ``1.4826 * MAD`` of the clipped pixels (the clipping itself uses the
    interquartile sigma, the same for symmetric noise and cheaper here).
    Boxes with too many invalid pixels, and noise values that are not > 0,
    are replaced by the nearest good box; the grids are median filtered and
    then interpolated linearly between box centres (constant beyond the
    outer centres). If no box has a usable background the background is 0;
    if none has a usable noise the noise is 1 (a constant image comes out
    all zeros). A noise floor of ``1e-3`` times the median box noise keeps
    the division finite. (The grid is `BackgroundGrid`.)

    Parameters
    ----------
    image : (ny, nx) array_like of real numbers
        Any units (ADU, electrons); any byte order. NaN and +-inf are allowed.
    box : int
        Side of the boxes, pixels; a little larger than the objects and
        smaller than the background's variations.
    nsigma : float
        Clipping threshold, in units of the noise.
    maxiters : int
        Maximum number of clipping iterations (stops early on convergence).
    filter_size : int
        Odd size of the median filter on the box grid (1: none).
    exclude_fraction : float
        A box with more than this fraction of invalid pixels is not used.
    mask : (ny, nx) array_like of bool, optional
        Extra pixels to exclude (e.g. saturated); they are treated like
        non-finite pixels.

    Returns
    -------
    Normalized
        ``(image, background, sigma, invalid)``: normalised image (float32,
        dimensionless, 0 on invalid pixels), background and sigma (float32,
        input units, sigma > 0), and the invalid mask (bool), each
        ``(ny, nx)``.
    """
    data = np.asarray(image)
    grid = BackgroundGrid(
        data,
        box=box,
        nsigma=nsigma,
        maxiters=maxiters,
        filter_size=filter_size,
        exclude_fraction=exclude_fraction,
        mask=mask,
    )
    data = _as_float_rows(data, 0, data.shape[0], mask)
    invalid = np.isnan(data)
    background, sigma = grid.window()
    normalized = (data - background) / sigma
    normalized[invalid] = 0.0
    return Normalized(normalized, background, sigma, invalid)


def to_network(image: np.ndarray, background: np.ndarray, sigma: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """``asinh((image - background) / sigma)``, 0 on invalid pixels, float32: what the network sees.

    Linear within +-1 sigma and logarithmic beyond, so that saturated stars
    (10**4 sigma) do not swamp the batch statistics while a 3-sigma hit stays
    distinct from the noise. (Measured: with the plain ratio, 300 steps left
    stars and galaxies at AUC 0.57; with the compression, 0.84.)
    """
    x = (np.asarray(image, np.float32) - background) / sigma
    x[invalid] = 0.0
    return np.arcsinh(x).astype(np.float32)


def network_input(image: np.ndarray, *, saturated: np.ndarray | None = None):
    """The network input of a whole (small) image: ``to_network`` with box statistics of 64 px.

    Prediction on large frames uses the same ``BackgroundGrid`` and ``to_network``
    tile by tile. Saturated pixels are kept in the input (their brightness is
    informative) but excluded from the background and noise estimates.

    Returns ``(x, invalid)``: x (ny, nx) float32; ``invalid`` (ny, nx) bool marks
    non-finite pixels.
    """
    image = np.asarray(image)
    grid = BackgroundGrid(image, box=int(min(64, max(image.shape))), mask=saturated)
    background, sigma = grid.window()
    invalid = ~np.isfinite(image)
    return to_network(image, background, sigma, invalid), invalid
