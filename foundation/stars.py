"""Star cores of a real frame: where a contaminant flag is certainly wrong.

Stars are found by photutils on the frame's signal-to-noise map (background and
noise from ``foundation.normalize``, as the network's input): ``DAOStarFinder`` at
``snr`` sigma, then kept only when

- round (DAOFIND roundness within +-0.3) and as wide as the frame's stars (a fitted
  Gaussian FWHM within 0.7-1.4 times the frame's median, so cosmic rays, hot pixels
  and galaxies drop out);
- isolated (no other source above 5 sigma within 3 FWHM);
- unsaturated (no pixel within 2 FWHM at the saturation level) and away from the edge.

A star's core is every pixel within ``max(1, FWHM / 2)`` px of its centroid: the
pixels above half its peak. The right answer there is "no contaminant".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

ROUNDNESS = 0.3
FWHM_RANGE = (0.7, 1.4)
ISOLATION_FWHM = 3.0
NEIGHBOUR_SNR = 5.0
MAX_CANDIDATES = 400


@dataclass
class StarCores:
    """Stars of one frame.

    positions : (n, 2) float, (y, x) px. fwhm : (n,) px. peak_snr : (n,) peak over local noise.
    core : (ny, nx) int32, the star's index + 1 on its core pixels, 0 elsewhere.
    frame_fwhm : the frame's median stellar FWHM, px (nan when none was measured).
    """

    positions: np.ndarray
    fwhm: np.ndarray
    peak_snr: np.ndarray
    core: np.ndarray
    frame_fwhm: float

    @property
    def n(self) -> int:
        return len(self.positions)

    def brightest(self, k: int) -> np.ndarray:
        return np.argsort(-self.peak_snr)[:k]


def _fit_fwhm(data, xy, box: int) -> np.ndarray:
    from photutils.psf import fit_fwhm

    if not len(xy):
        return np.zeros(0)
    box = max(5, box | 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # photutils warns for every fit that does not converge
            return np.atleast_1d(np.asarray(fit_fwhm(data, xypos=xy, fit_shape=box), float))
    except (ValueError, RuntimeError):
        return np.full(len(xy), np.nan)


def frame_fwhm(snr: np.ndarray, saturated: np.ndarray) -> float:
    """The median FWHM (px) of the frame's bright, round, unsaturated point sources; nan if none."""
    from photutils.detection import find_peaks

    near_saturation = ndimage.binary_dilation(saturated, iterations=5)
    peaks = find_peaks(
        np.where(near_saturation, 0, snr), threshold=30.0, box_size=11, border_width=8, n_peaks=MAX_CANDIDATES
    )
    if peaks is None or not len(peaks):
        return float("nan")
    xy = np.column_stack([peaks["x_peak"], peaks["y_peak"]]).astype(float)
    fwhm = _fit_fwhm(snr, xy, 9)
    fwhm = fwhm[np.isfinite(fwhm) & (fwhm > 0.8) & (fwhm < 25)]
    if not fwhm.size:
        return float("nan")
    # Cosmic rays and hot pixels are narrower than stars, galaxies wider: iterate to the stellar mode.
    median = float(np.median(fwhm))
    for _ in range(3):
        kept = fwhm[(fwhm > 0.6 * median) & (fwhm < 1.6 * median)]
        if not kept.size:
            break
        median = float(np.median(kept))
    return median


def find_star_cores(image, background, sigma, saturated, *, snr: float = 10.0) -> StarCores:
    """Isolated, round, unsaturated stars of a frame and their core pixels (see the module's docstring)."""
    from photutils.utils.exceptions import NoDetectionsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # a frame without stars is an answer, not a fault
        return _find_star_cores(image, background, sigma, saturated, snr=snr)


def _find_star_cores(image, background, sigma, saturated, *, snr: float) -> StarCores:
    """Isolated, round, unsaturated stars of a frame and their core pixels.

    Parameters
    ----------
    image, background, sigma : (ny, nx) float32, the frame and its background and noise (same units).
    saturated : (ny, nx) bool, pixels at the saturation level (or otherwise unusable).
    snr : detection threshold, in units of the local noise.
    """
    from photutils.detection import DAOStarFinder

    ny, nx = image.shape
    finite = np.isfinite(image)
    signal = np.where(finite, image - background, 0).astype(np.float32)
    snr_map = signal / np.maximum(sigma, 1e-12)
    bad = saturated | ~finite
    fwhm = frame_fwhm(snr_map, bad)
    empty = StarCores(np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros((ny, nx), np.int32), fwhm)
    if not np.isfinite(fwhm):
        return empty
    finder = DAOStarFinder(
        threshold=snr,
        fwhm=max(fwhm, 1.0),
        exclude_border=True,
        n_brightest=MAX_CANDIDATES,
        roundness_range=(-ROUNDNESS, ROUNDNESS),
        sharpness_range=(0.2, 1.0),
        scale_threshold=False,
    )
    table = finder(np.where(bad, 0, snr_map))
    if table is None or not len(table):
        return empty
    x, y = np.asarray(table["x_centroid"], float), np.asarray(table["y_centroid"], float)
    peak = np.asarray(table["peak"], float)
    neighbours = DAOStarFinder(
        threshold=NEIGHBOUR_SNR, fwhm=max(fwhm, 1.0), scale_threshold=False, sharpness_range=(0.0, 2.0)
    )(np.where(bad, 0, snr_map))
    others = (
        np.column_stack([neighbours["y_centroid"], neighbours["x_centroid"]]).astype(float)
        if neighbours is not None
        else np.zeros((0, 2))
    )
    widths = _fit_fwhm(snr_map, np.column_stack([x, y]), int(np.ceil(2 * fwhm)) + 1)
    margin = 2 * fwhm + 2
    near_bad = ndimage.binary_dilation(bad, iterations=int(np.ceil(2 * fwhm)))
    keep = []
    for i in range(len(x)):
        if not (np.isfinite(widths[i]) and FWHM_RANGE[0] * fwhm <= widths[i] <= FWHM_RANGE[1] * fwhm):
            continue
        if not (margin <= y[i] < ny - margin and margin <= x[i] < nx - margin):
            continue
        if near_bad[int(round(y[i])), int(round(x[i]))]:
            continue
        d = np.hypot(others[:, 0] - y[i], others[:, 1] - x[i])
        if np.count_nonzero(d < ISOLATION_FWHM * fwhm) > 1:  # itself, and one more
            continue
        keep.append(i)
    keep = np.asarray(keep, int)
    core = np.zeros((ny, nx), np.int32)
    radius = max(1.0, fwhm / 2)
    r = int(np.ceil(radius))
    for k, i in enumerate(keep):
        cy, cx = int(round(y[i])), int(round(x[i]))
        yy, xx = np.mgrid[cy - r : cy + r + 1, cx - r : cx + r + 1]
        inside = np.hypot(yy - y[i], xx - x[i]) <= radius
        inside[r, r] = True  # the peak pixel always belongs to the core
        core[yy[inside], xx[inside]] = k + 1
    return StarCores(np.column_stack([y[keep], x[keep]]), widths[keep], peak[keep], core, fwhm)
