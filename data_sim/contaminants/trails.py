"""Satellite and airplane trails: straight lines with a PSF-or-wider cross profile.

Each trail crosses the tile at a random angle and offset; its cross profile is
a Moffat of the frame's index with a FWHM 1-3x the PSF's (defocused or
extended bodies are wider than stars). Some trails start or end inside the
tile (soft ends), some are modulated (tumbling satellites flash) and some are
dashed (airplane lights). Mask: the truth rule of ``base``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from ..camera import log_uniform, uniform
from ..config import TrailConfig
from ..psf import moffat_profile_1d
from .base import Frame, significant


def trail_signal(frame: Frame, cfg: TrailConfig, rng) -> np.ndarray:
    ny, nx = frame.shape
    y = np.arange(ny, dtype=np.float32)[:, None]
    x = np.arange(nx, dtype=np.float32)[None, :]
    total = np.zeros(frame.shape, np.float32)
    count = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
    for _ in range(count):
        theta = rng.uniform(0, np.pi)
        y0, x0 = rng.uniform(0, ny), rng.uniform(0, nx)
        across = (x - x0) * np.sin(theta) - (y - y0) * np.cos(theta)
        along = (x - x0) * np.cos(theta) + (y - y0) * np.sin(theta)
        fwhm = frame.fwhm * uniform(rng, cfg.width)
        brightness = np.full(frame.shape, log_uniform(rng, cfg.amplitude) * frame.sky_noise, np.float32)
        edge = fwhm / 2.355 * np.sqrt(2.0)
        if rng.random() < cfg.partial_probability:
            # One end inside the tile, blurred by the PSF.
            start = rng.uniform(-0.5, 0.5) * np.hypot(ny, nx)
            direction = 1.0 if rng.random() < 0.5 else -1.0
            brightness *= 0.5 * (1.0 + erf(direction * (along - start) / edge))
        if rng.random() < cfg.modulated_probability:
            period = uniform(rng, cfg.modulation_period)
            depth = rng.uniform(0.3, 1.0)
            brightness *= 1.0 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * along / period + rng.uniform(0, 2 * np.pi)))
        if rng.random() < cfg.dashed_probability:
            period = uniform(rng, cfg.dash_period)
            duty = rng.uniform(0.3, 0.7)
            phase = np.cos(2 * np.pi * along / period + rng.uniform(0, 2 * np.pi))
            brightness *= 1.0 / (1.0 + np.exp(-(phase - np.cos(np.pi * duty)) * period / edge))
        total += brightness * moffat_profile_1d(np.abs(across), fwhm, frame.beta).astype(np.float32)
    return total


def inject_trails(image, frame: Frame, cfg: TrailConfig, rng):
    """Add satellite or airplane trails. Returns (image, TRL mask)."""
    signal = trail_signal(frame, cfg, rng)
    return image + signal, significant(signal, frame)
