"""Cosmic rays: sharp spots, straight tracks and curly worms (charge added to the pixels).

- spots: near-normal incidence; a few sub-pixel deposits within ~0.5 px.
- tracks: oblique muons; straight at a random angle, charge per step drawn from a
  Moyal (Landau-like) distribution, so deposits are heavy-tailed along the track.
- worms: low-energy electrons; a curved random walk whose deposit grows to its end.
All deposits are summed with bilinear weights and spread by a small Gaussian
charge diffusion. Mask: the truth rule of ``base`` (added charge >= nsigma x noise).
"""

from __future__ import annotations

import numpy as np

from ..camera import log_uniform, uniform
from ..config import CosmicRayConfig
from ..raster import bilinear_deposit
from .base import Frame, significant

STEP = 0.5  # px between deposits along tracks and worms


def _moyal(rng, size) -> np.ndarray:
    """Moyal variates (a Landau approximation): -ln(Z**2) for standard normal Z."""
    z = rng.standard_normal(size)
    return -np.log(z * z + 1e-12)


def _group_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every group (groups laid end to end)."""
    total = np.cumsum(values)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    offsets = np.repeat(total[starts] - values[starts], counts)
    return total - offsets


def _spots(rng, n, cfg, shape):
    ny, nx = shape
    parts = rng.integers(1, 5, size=n)
    cy = np.repeat(rng.uniform(0, ny, n), parts) + rng.normal(0, 0.4, parts.sum())
    cx = np.repeat(rng.uniform(0, nx, n), parts) + rng.normal(0, 0.4, parts.sum())
    charge = log_uniform(rng, cfg.spot_charge, n)
    share = rng.gamma(2.0, size=parts.sum())
    share /= np.repeat(np.add.reduceat(share, np.concatenate([[0], np.cumsum(parts)[:-1]])), parts)
    return cy, cx, np.repeat(charge, parts) * share


def _paths(rng, n, lengths, shape, turn_sigma):
    """Points every STEP px along ``n`` paths; ``turn_sigma`` (rad/step) curls them."""
    ny, nx = shape
    steps = np.maximum(np.ceil(lengths / STEP).astype(np.int64), 1) + 1
    heading = np.repeat(rng.uniform(0, 2 * np.pi, n), steps)
    if turn_sigma > 0:
        heading = heading + _group_cumsum(rng.normal(0, turn_sigma, steps.sum()), steps)
    # Start anywhere so tracks may enter or leave the tile.
    y = _group_cumsum(STEP * np.sin(heading), steps) + np.repeat(rng.uniform(-10, ny + 10, n), steps)
    x = _group_cumsum(STEP * np.cos(heading), steps) + np.repeat(rng.uniform(-10, nx + 10, n), steps)
    position = _group_cumsum(np.ones(steps.sum()), steps) / np.repeat(steps, steps)  # 0..1 along each path
    return y, x, steps, position


def _tracks(rng, n, cfg, shape):
    lengths = log_uniform(rng, cfg.track_length, n)
    y, x, steps, _ = _paths(rng, n, lengths, shape, turn_sigma=0.0)
    mpv = np.repeat(log_uniform(rng, cfg.deposit, n), steps) * STEP
    deposit = mpv * np.clip(1.0 + 0.25 * _moyal(rng, steps.sum()), 0.05, None)
    return y, x, deposit


def _worms(rng, n, cfg, shape):
    lengths = uniform(rng, cfg.worm_length, n)
    y, x, steps, position = _paths(rng, n, lengths, shape, turn_sigma=rng.uniform(0.2, 0.5))
    mpv = np.repeat(log_uniform(rng, cfg.deposit, n), steps) * STEP
    deposit = mpv * (0.6 + 1.2 * position**2) * np.clip(1.0 + 0.2 * _moyal(rng, steps.sum()), 0.05, None)
    return y, x, deposit


def diffuse(charge: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian charge diffusion (sigma <= ~0.8 px) by a separable 5-tap kernel.

    Charge that diffuses off the tile is lost. Much cheaper than a general
    Gaussian filter for these tiny widths; the kernel sums to 1.
    """
    taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    ny, nx = charge.shape
    padded = np.pad(charge, 2)
    rows = sum(t * padded[k : k + ny, :] for k, t in enumerate(taps))
    return sum(t * rows[:, k : k + nx] for k, t in enumerate(taps))


def cosmic_ray_charge(shape, cfg: CosmicRayConfig, rng: np.random.Generator) -> np.ndarray:
    """Charge (e-) deposited by one exposure's cosmic rays, (ny, nx) float32."""
    ny, nx = shape
    n = rng.poisson(log_uniform(rng, cfg.per_mpix) * ny * nx / 1e6)
    kinds = list(cfg.kinds)
    weights = np.array([cfg.kinds[k] for k in kinds], dtype=float)
    counts = dict(zip(kinds, rng.multinomial(n, weights / weights.sum())))
    ys, xs, qs = [], [], []
    for kind, make in (("spot", _spots), ("track", _tracks), ("worm", _worms)):
        if counts.get(kind, 0):
            y, x, q = make(rng, counts[kind], cfg, shape)
            ys.append(y), xs.append(x), qs.append(q)
    if not ys:
        return np.zeros(shape, np.float32)
    charge = bilinear_deposit(shape, np.concatenate(ys), np.concatenate(xs), np.concatenate(qs))
    return diffuse(charge.astype(np.float32), uniform(rng, cfg.diffusion))


def inject_cosmic_rays(
    image: np.ndarray, frame: Frame, cfg: CosmicRayConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Add cosmic-ray charge to ``image`` (e-). Returns the new image and the CR truth mask."""
    charge = cosmic_ray_charge(frame.shape, cfg, rng)
    return image + charge, significant(charge, frame)
