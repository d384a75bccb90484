"""Point-spread functions: elliptical Moffat profiles, point-sampled or integrated over pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Below this FWHM (px) the PSF is undersampled: sampling the Moffat at pixel centres misses
#: the flux integrated over each pixel, so sources are rendered on a finer grid (see ``oversampling``).
OVERSAMPLE_BELOW_FWHM = 3.0


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width alpha (px) for a given FWHM and index beta."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_kernel(
    fwhm: float, beta: float, *, ellipticity: float = 0.0, angle: float = 0.0, radius: int | None = None
) -> np.ndarray:
    """Elliptical Moffat PSF sampled at pixel centres, normalised to sum 1.

    Parameters
    ----------
    fwhm : px, along the major axis.
    beta : Moffat index (2.5-4.5 for real seeing; smaller is wingier).
    ellipticity : 1 - b/a.
    angle : rad, position angle of the major axis.
    radius : half size of the kernel (px); default ``ceil(4 * fwhm)`` (wings past it are dropped).

    Returns
    -------
    (2 radius + 1, 2 radius + 1) float32
    """
    if radius is None:
        radius = int(np.ceil(4.0 * fwhm))
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u = c * x + s * y
    v = (-s * x + c * y) / max(1.0 - ellipticity, 1e-3)
    alpha = moffat_alpha(fwhm, beta)
    kernel = (1.0 + (u * u + v * v) / alpha**2) ** (-beta)
    return (kernel / kernel.sum()).astype(np.float32)


def moffat_profile_1d(distance: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    """Moffat cross-profile with peak 1 at distance 0 and the given FWHM."""
    alpha = moffat_alpha(fwhm, beta)
    return (1.0 + (distance / alpha) ** 2) ** (-beta)


def oversampling(fwhm: float) -> int:
    """Sub-pixels per pixel side used to integrate a PSF of this FWHM over pixels (1: point-sampled).

    Odd, so that the centre of a pixel is the centre of one of its sub-pixels.
    """
    if fwhm >= OVERSAMPLE_BELOW_FWHM:
        return 1
    return 5 if fwhm < 2.0 else 3


@dataclass(frozen=True)
class SampledPSF:
    """A PSF on the pixel grid and, when undersampled, on a grid ``oversample`` times finer.

    kernel : (2 r + 1, 2 r + 1) float32, sum 1, on the pixel grid: the Moffat integrated over each
        pixel when ``oversample`` > 1 (``fine`` summed in blocks), else sampled at pixel centres.
    fine : (oversample (2 r + 1),) * 2 float32, sum 1, the Moffat sampled at sub-pixel centres, its
        centre on the centre sub-pixel of ``kernel``'s centre pixel; None when ``oversample`` is 1.
    """

    kernel: np.ndarray
    fine: np.ndarray | None
    oversample: int

    @property
    def radius(self) -> int:
        """Half size of ``kernel`` (px)."""
        return self.kernel.shape[0] // 2


def sampled_psf(fwhm: float, beta: float, *, ellipticity: float = 0.0, angle: float = 0.0) -> SampledPSF:
    """The Moffat PSF of a tile, integrated over pixels when its FWHM is below ``OVERSAMPLE_BELOW_FWHM``.

    Above the threshold ``kernel`` is ``moffat_kernel`` itself (radius ``ceil(4 fwhm)``).
    Below it the Moffat is sampled on a grid ``s = oversampling(fwhm)`` times finer over the
    same (2 r + 1) pixel square and summed in s x s blocks: the midpoint rule for the
    integral over each pixel, with s**2 points per pixel.
    """
    s = oversampling(fwhm)
    if s == 1:
        return SampledPSF(moffat_kernel(fwhm, beta, ellipticity=ellipticity, angle=angle), None, 1)
    radius = int(np.ceil(4.0 * fwhm))
    fine = moffat_kernel(fwhm * s, beta, ellipticity=ellipticity, angle=angle, radius=s * radius + (s - 1) // 2)
    side = 2 * radius + 1
    kernel = fine.astype(np.float64).reshape(side, s, side, s).sum(axis=(1, 3))
    return SampledPSF((kernel / kernel.sum()).astype(np.float32), fine, s)


def moffat_wing_kernel(
    fwhm: float, beta: float, *, core_radius: int, radius: int, ellipticity: float = 0.0, angle: float = 0.0
) -> np.ndarray:
    """The Moffat beyond the core kernel's square: what ``moffat_kernel(radius=core_radius)`` drops.

    (2 radius + 1, 2 radius + 1) float32, zero within ``core_radius`` px of the centre along
    both axes, and outside it the Moffat sampled at pixel centres with the core kernel's
    normalisation, so that core + wing is one continuous profile (no square edge) however
    bright the star.
    """
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u = c * x + s * y
    v = (-s * x + c * y) / max(1.0 - ellipticity, 1e-3)
    profile = (1.0 + (u * u + v * v) / moffat_alpha(fwhm, beta) ** 2) ** (-beta)
    core = (np.abs(y) <= core_radius) & (np.abs(x) <= core_radius)
    wing = np.where(core, 0.0, profile) / profile[core].sum()
    return wing.astype(np.float32)
