"""Fringes: thin-film interference in the detector under bright sky lines.

A wave of random orientation and period whose phase is warped by a smooth
random field (the film thickness varies), with a slowly varying envelope;
its amplitude is a fraction of the local sky, so it follows the sky and its
vignetting. Fringes add and subtract: the mask is the truth rule applied to
``|signal|``, i.e. the crests and troughs that stand out of the noise.
"""

from __future__ import annotations

import numpy as np

from ..camera import log_uniform, uniform
from ..config import FringeConfig
from ..scene import gaussian_random_field
from .base import Frame, significant


def fringe_signal(frame: Frame, cfg: FringeConfig, rng) -> tuple[np.ndarray, np.ndarray]:
    """The fringe pattern and its local amplitude (its envelope), both (ny, nx) float32 e-."""
    ny, nx = frame.shape
    y = np.arange(ny, dtype=np.float32)[:, None]
    x = np.arange(nx, dtype=np.float32)[None, :]
    period = uniform(rng, cfg.period)
    phi = rng.uniform(0, np.pi)
    warp = uniform(rng, cfg.warp) * gaussian_random_field(frame.shape, slope=4.0, rng=rng)
    curvature = rng.normal(0, 0.5) / max(ny, nx)  # gently curved crests
    path = x * np.cos(phi) + y * np.sin(phi) + warp + curvature * ((x - nx / 2) ** 2 + (y - ny / 2) ** 2)
    envelope = np.clip(0.7 + 0.3 * gaussian_random_field(frame.shape, slope=4.0, rng=rng), 0.2, 1.0)
    amplitude = log_uniform(rng, cfg.amplitude)
    local = (amplitude * frame.sky * envelope).astype(np.float32)
    return (local * np.sin(2 * np.pi * path / period + rng.uniform(0, 2 * np.pi))).astype(np.float32), local


def inject_fringes(image, frame: Frame, cfg: FringeConfig, rng):
    """Add a fringe pattern scaled to the sky. Returns (image, FRG mask: the fringed area)."""
    signal, local = fringe_signal(frame, cfg, rng)
    return image + signal, significant(local, frame)
