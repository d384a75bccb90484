"""Persistence: faint residual images of stars that saturated in an earlier exposure.

The earlier pointing's bright stars are drawn at new positions (the telescope
moved) with a slightly different seeing, saturated and (on CCDs) bled along
columns as the detector saw them then. Charge trapped in proportion to that
fluence leaks out now: the residual grows steeply up to full well and
logarithmically above it, so the saturated cores and the bleed trails of the
earlier frame come back as soft ghosts. Mask: the truth rule of ``base``.
"""

from __future__ import annotations

import numpy as np

from ..camera import log_uniform, saturate, uniform
from ..config import PersistenceConfig
from ..psf import moffat_kernel
from ..raster import add_stamp
from .base import Frame, significant


def earlier_fluence(frame: Frame, cfg: PersistenceConfig, rng) -> np.ndarray:
    """Fluence of the earlier exposure in units of full well (unclipped; bled pixels read 1)."""
    ny, nx = frame.shape
    fwhm = frame.fwhm * rng.uniform(0.8, 1.25)
    psf = moffat_kernel(fwhm, frame.beta)
    peak = float(psf.max())
    earlier = np.zeros(frame.shape, np.float64)
    n = int(rng.integers(cfg.sources[0], cfg.sources[1] + 1))
    for _ in range(n):
        scale = log_uniform(rng, cfg.peak) * frame.full_well / peak
        add_stamp(earlier, scale * psf, int(rng.integers(-5, ny + 5)), int(rng.integers(-5, nx + 5)))
    _, filled = saturate(earlier, frame.full_well, bleed=frame.detector == "ccd")
    return np.maximum(earlier / frame.full_well, filled.astype(np.float64))


def persistence_signal(fluence: np.ndarray, amplitude_e: float, growth: float) -> np.ndarray:
    """Residual (e-) from fluence q (full-well units): q**4 below 1, 1 + growth ln q above."""
    q = np.maximum(fluence, 0.0).astype(np.float32)
    out = q * q
    out *= out
    above = q >= 1.0
    out[above] = 1.0 + np.float32(growth) * np.log(q[above])
    return out * np.float32(amplitude_e)


def inject_persistence(image, frame: Frame, cfg: PersistenceConfig, rng):
    """Add residual images of an earlier exposure's saturated stars. Returns (image, PER mask)."""
    fluence = earlier_fluence(frame, cfg, rng)
    residual = persistence_signal(fluence, log_uniform(rng, cfg.amplitude) * frame.sky_noise, uniform(rng, cfg.decay))
    return image + residual, significant(residual, frame)
