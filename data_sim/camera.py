"""A camera drawn from a family, and the detector physics applied to a tile.

Everything inside the simulator is in electrons until :func:`to_adu`.
The readout is along the y axis (columns are read out towards row 0 or row
ny-1): hot and bad columns run from a trap away from the readout, and charge
from saturated pixels bleeds up and down columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .config import FamilyConfig


def uniform(rng: np.random.Generator, bounds, size=None):
    """Uniform draw in [lo, hi] (a float, or an array of ``size``)."""
    lo, hi = bounds
    if hi <= lo:
        return float(lo) if size is None else np.full(size, float(lo))
    value = rng.uniform(lo, hi, size)
    return float(value) if size is None else value


def log_uniform(rng: np.random.Generator, bounds, size=None):
    """Log-uniform draw in [lo, hi] (a float, or an array of ``size``); a low end of 0 falls back to uniform."""
    lo, hi = bounds
    if hi <= lo or lo <= 0:
        return uniform(rng, bounds, size)
    value = np.exp(rng.uniform(np.log(lo), np.log(hi), size))
    return float(value) if size is None else value


@dataclass(frozen=True)
class Camera:
    """One tile's instrument and observing conditions (all drawn per tile)."""

    detector: str  # "ccd" or "nir"
    gain: float  # e-/ADU
    read_noise: float  # e-
    bias: float  # ADU
    full_well: float  # e-
    adc_max: float  # ADU
    fwhm: float  # px
    beta: float  # Moffat index
    ellipticity: float
    psf_angle: float  # rad
    sky: float  # e-/px at the tile centre
    sky_subtracted: bool
    readout_at_start: bool  # columns read out towards row 0 (else towards row ny-1)
    noise_correlation: float = 0.0  # px, sigma of the Gaussian smoothing of the noise deviates (0: white)
    nonlinearity: float = 0.0  # fractional loss of response at the saturation level

    @property
    def sky_noise(self) -> float:
        """1-sigma noise of the sky in electrons: the unit of every 'nsigma' setting."""
        return float(np.sqrt(max(self.sky, 0.0) + self.read_noise**2))

    @property
    def saturation_adu(self) -> float:
        """Value a saturated pixel reads in a raw frame (ADU)."""
        return float(min(self.full_well / self.gain + self.bias, self.adc_max))

    @property
    def saturation_e(self) -> float:
        """Electrons at which a pixel stops responding: full well or the ADC ceiling."""
        return float(min(self.full_well, (self.adc_max - self.bias) * self.gain))

    def as_header(self) -> dict:
        return {
            "DETECTOR": (self.detector, "ccd or nir"),
            "GAIN": (round(self.gain, 5), "e-/ADU"),
            "RDNOISE": (round(self.read_noise, 4), "read noise, e-"),
            "BIAS": (round(self.bias, 3), "raw bias level, ADU"),
            "SATURATE": (round(self.saturation_adu, 3), "raw saturation level, ADU"),
            "FULLWELL": (round(self.full_well, 1), "e-"),
            "FWHM": (round(self.fwhm, 4), "PSF FWHM, px"),
            "MOFFBETA": (round(self.beta, 4), "PSF Moffat beta"),
            "SKYLEVEL": (round(self.sky, 3), "sky at tile centre, e-/px"),
            "SKYSUB": (self.sky_subtracted, "bias and sky model subtracted"),
            "NOISECOR": (round(self.noise_correlation, 4), "noise smoothing sigma, px (0: white)"),
            "NONLIN": (round(self.nonlinearity, 5), "response lost at saturation level"),
        }


def draw_camera(family: FamilyConfig, rng: np.random.Generator) -> Camera:
    """Draw one tile's camera and conditions from a family's ranges.

    The noise correlation and non-linearity are drawn last, so that the other
    parameters of a tile do not depend on whether a config uses them.
    """
    return Camera(
        detector=family.detector,
        gain=uniform(rng, family.gain),
        read_noise=uniform(rng, family.read_noise),
        bias=uniform(rng, family.bias),  # raw bias; removed later from sky-subtracted products
        full_well=log_uniform(rng, family.full_well),
        adc_max=family.adc_max,
        fwhm=uniform(rng, family.fwhm),
        beta=uniform(rng, family.moffat_beta),
        ellipticity=uniform(rng, family.ellipticity),
        psf_angle=float(rng.uniform(0, np.pi)),
        sky=log_uniform(rng, family.sky),
        sky_subtracted=family.sky_subtracted,
        readout_at_start=bool(rng.random() < 0.5),
        noise_correlation=_draw_correlation(family, rng),
        nonlinearity=uniform(rng, family.nonlinearity),
    )


def _draw_correlation(family: FamilyConfig, rng: np.random.Generator) -> float:
    """Noise smoothing sigma (px) with the family's probability, else 0; always the same two draws."""
    on = rng.random() < family.correlated_noise_probability
    sigma = uniform(rng, family.noise_correlation)
    return sigma if on else 0.0


def nonlinear_response(electrons: np.ndarray, loss: float, level: float) -> np.ndarray:
    """What a pixel reads (e-) for the charge it collected, with a response that rolls off towards ``level``.

    Below ``level`` the reading is ``e (1 - loss (e / level)**2)``: linear for faint
    pixels, ``level (1 - loss)`` for a charge of ``level``. Above it the reading goes on
    at the slope reached there, ``1 - 3 loss``, so the curve is smooth and rises
    everywhere for ``loss`` < 1/3; the pixel then reads ``level`` (saturates) once it
    holds ``level (1 + loss / (1 - 3 loss))`` e-. ``loss`` = 0 returns the input unchanged.
    """
    if loss == 0:
        return electrons
    e = np.asarray(electrons, dtype=np.float32)
    level32, loss32 = np.float32(level), np.float32(loss)
    below = e * (np.float32(1.0) - loss32 * (e / level32) ** 2)
    above = level32 * (np.float32(1.0) - loss32) + np.float32(1.0 - 3.0 * loss) * (e - level32)
    return np.where(e < level32, below, above).astype(np.float32)


def saturate(electrons: np.ndarray, level: float, *, bleed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Clip at ``level`` e-; on CCDs the excess charge bleeds along the column.

    The excess of every column is shared equally between the pixels above and
    below its saturated run, each filled up to ``level`` in turn (charge that
    bleeds off the tile is lost). NIR arrays clip without bleeding.

    Parameters
    ----------
    electrons : (ny, nx) float array, e-, noise-free.
    level : saturation in e-.

    Returns
    -------
    out : (ny, nx) float32, e-, no pixel above ``level``.
    saturated : (ny, nx) bool, pixels that read exactly ``level`` (saturated or filled by bleeding).
    """
    out = np.asarray(electrons, dtype=np.float32).copy()
    over = out >= level
    if not over.any():
        return out, over
    if bleed:
        for x in np.flatnonzero(over.any(axis=0)):
            col = out[:, x].astype(np.float64)
            rows = np.flatnonzero(col >= level)
            excess = float(np.sum(col[rows] - level))
            lo, hi = rows[0], rows[-1]
            col[lo : hi + 1] = np.maximum(col[lo : hi + 1], level)  # the run between two cores fills too
            _fill(col, range(hi + 1, col.size), excess / 2, level)
            _fill(col, range(lo - 1, -1, -1), excess / 2, level)
            out[:, x] = col
    np.minimum(out, level, out=out)
    return out, out >= level


def _fill(col: np.ndarray, rows, charge: float, level: float):
    """Pour ``charge`` into ``col`` along ``rows``, filling each pixel up to ``level``."""
    for y in rows:
        if charge <= 0:
            return
        room = level - col[y]
        if room <= 0:
            continue
        take = min(room, charge)
        col[y] += take
        charge -= take


def add_noise(
    electrons: np.ndarray,
    read_noise: float,
    rng: np.random.Generator,
    *,
    saturated: np.ndarray | None = None,
    level: float | None = None,
    correlation: float = 0.0,
) -> np.ndarray:
    """Poisson noise in electrons plus Gaussian read noise; saturated pixels stay at ``level``.

    From ``POISSON_EXACT_BELOW`` e- up the Poisson draw is replaced by its
    Gaussian limit (same mean and variance; only the skewness, 1/sqrt(mean)
    <= 0.14, is lost), which is several times cheaper; below it the draw is exact.

    ``correlation`` > 0 (px) makes the noise of neighbouring pixels correlated, as in
    flat-fielded, resampled or co-added products: the standard-normal deviates are
    smoothed by a Gaussian of that sigma (see ``correlated_normal``), which keeps
    every pixel's variance, so the per-pixel sigma of the truth rule stays exact. The
    exact Poisson part of pixels under ``POISSON_EXACT_BELOW`` e- stays uncorrelated
    (their read noise follows the smoothed deviates).
    """
    mean = np.clip(electrons, 0, None).astype(np.float32)
    if correlation > 0:
        z = correlated_normal(mean.shape, correlation, rng)
    else:
        z = rng.standard_normal(size=mean.shape, dtype=np.float32)
    noisy = mean + np.sqrt(mean + np.float32(read_noise**2)) * z
    low = mean < POISSON_EXACT_BELOW
    if low.any():
        noisy[low] = rng.poisson(mean[low]).astype(np.float32) + np.float32(read_noise) * z[low]
    if saturated is not None and saturated.any():
        noisy[saturated] = level
    return noisy


POISSON_EXACT_BELOW = 50.0


def correlated_normal(shape, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Standard-normal field whose neighbouring pixels correlate: (ny, nx) float32, unit variance.

    White deviates on a field larger by the kernel radius (``ceil(4 sigma)`` px) on
    every side are convolved with a normalised Gaussian of ``sigma`` px and divided by
    the kernel's L2 norm, so that every pixel (edges included, as the kernel never
    leaves the drawn field) has variance 1. Neighbours at lag 1 correlate by
    ``sum(g[i] g[i+1]) / sum(g**2)`` for the 1-D kernel g: 0.01, 0.26, 0.58 and 0.78
    for sigma = 0.3, 0.5, 0.7 and 1 px (``exp(-1 / (4 sigma**2))`` from about 0.7 px up).
    """
    radius = max(int(np.ceil(4.0 * sigma)), 1)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (offsets / sigma) ** 2)
    g /= g.sum()
    ny, nx = shape
    z = rng.standard_normal(size=(ny + 2 * radius, nx + 2 * radius), dtype=np.float32)
    z = ndimage.correlate1d(z, g.astype(np.float32), axis=0, mode="constant")[radius : radius + ny]
    z = ndimage.correlate1d(z, g.astype(np.float32), axis=1, mode="constant")[:, radius : radius + nx]
    # The 2-D kernel is the outer product g g^T, whose L2 norm is sum(g**2).
    return z / np.float32(np.sum(g * g))


def to_adu(electrons: np.ndarray, camera: Camera, *, background_e: np.ndarray | None = None) -> np.ndarray:
    """Electrons -> ADU: divide by the gain, add the bias, digitise, clip at the ADC ceiling.

    Sky-subtracted products then have the bias and the noise-free sky model
    (``background_e``) removed, as a reduction pipeline would.
    """
    adu = np.floor(electrons / camera.gain + camera.bias + 0.5)
    np.clip(adu, 0.0, camera.adc_max, out=adu)
    if camera.sky_subtracted:
        adu -= camera.bias
        if background_e is not None:
            adu -= background_e / camera.gain
    return adu.astype(np.float32)
