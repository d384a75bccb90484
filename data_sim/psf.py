"""Point-spread functions: elliptical Moffat profiles."""
from __future__ import annotations

import numpy as np


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core width alpha (px) for a given FWHM and index beta."""
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_kernel(fwhm: float, beta: float, *, ellipticity: float = 0.0, angle: float = 0.0,
                  radius: int | None = None) -> np.ndarray:
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
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u = c * x + s * y
    v = (-s * x + c * y) / max(1.0 - ellipticity, 1e-3)
    alpha = moffat_alpha(fwhm, beta)
    kernel = (1.0 + (u * u + v * v) / alpha ** 2) ** (-beta)
    return (kernel / kernel.sum()).astype(np.float32)


def moffat_profile_1d(distance: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    """Moffat cross-profile with peak 1 at distance 0 and the given FWHM."""
    alpha = moffat_alpha(fwhm, beta)
    return (1.0 + (distance / alpha) ** 2) ** (-beta)
