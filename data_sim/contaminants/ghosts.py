"""Optical ghosts: light of a bright star reflected between lenses, filters and the detector.

A ghost is an out-of-focus image of the pupil: a disc with the secondary
mirror's central obstruction as a hole (an annulus, inner / outer radius the
obstruction fraction), often crossed by the radial shadows of the spider's
vanes, its edges blurred by a few px. A more diffuse reflection is a halo, a
broad Gaussian glow. The pupil image is the disc convolved with a Gaussian,
computed exactly along the radius (non-central chi-square CDF) and sampled at
each pixel's distance from the centre; vane shadows are soft-edged bars from
the centre outwards.

Ghosts sit along the line from their parent star to the optical axis, which is
far off a tile, so every ghost of a tile is displaced in the same direction,
by ``offset`` x its radius. The parent is a star of ``frame.stars`` whose peak
reaches ``min_peak`` x full well (chosen in proportion to flux among those
whose ghost lands on the tile); without one, a virtual bright source beyond the
tile: the ghost is placed on the tile and its source just off it, back along
the ghost direction. Surface brightness: ``amplitude`` x the sky noise.
Mask: the truth rule of ``base``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import chndtr, erf

from ..camera import log_uniform, uniform
from ..config import GhostConfig
from .base import Frame, significant
from .spikes import bright_stars


@dataclass(frozen=True)
class Ghost:
    y: float  # centre, px
    x: float
    parent_y: float  # the source reflected: a star of frame.stars or a virtual one off the tile
    parent_x: float
    radius: float  # px: outer radius of the pupil image; halo: 1/e radius
    inner: float  # px: radius of the central obstruction's shadow (0 for a halo)
    softness: float  # px: Gaussian sigma of the edges
    amplitude: float  # e-/px: surface brightness of the annulus, or the halo's peak
    halo: bool
    vane_angles: tuple = ()  # rad: radial vane shadows (none: empty)
    vane_width: float = 0.0  # px

    @property
    def extent(self) -> float:
        """Radius (px) beyond which the ghost adds nothing measurable (about 1e-7 of its amplitude or less)."""
        return 4.0 * self.radius if self.halo else self.radius + 6.0 * self.softness


def _distance_to_tile(y, x, shape):
    """Distance (px) from (y, x) to the tile's pixel area (0 inside)."""
    ny, nx = shape
    dy = np.maximum(np.maximum(-0.5 - y, y - (ny - 0.5)), 0.0)
    dx = np.maximum(np.maximum(-0.5 - x, x - (nx - 0.5)), 0.0)
    return np.hypot(dy, dx)


def _virtual_parent(gy, gx, uy, ux, distance, shape):
    """A source just off the tile, ``distance`` or further back along -u from the ghost centre."""
    ny, nx = shape
    py, px = gy - distance * uy, gx - distance * ux
    if _distance_to_tile(py, px, shape) > 0:
        return py, px
    # Still on the tile: go back along -u until leaving it, then 1 px more.
    exits = []
    for p, u, n in ((py, uy, ny), (px, ux, nx)):
        if u > 1e-12:
            exits.append((p + 0.5) / u)
        elif u < -1e-12:
            exits.append((p - (n - 0.5)) / u)
    step = min(exits) + 1.0
    return py - step * uy, px - step * ux


def draw_ghosts(frame: Frame, cfg: GhostConfig, rng) -> list[Ghost]:
    """The tile's ghosts: a shared direction, obstruction and spider, per-ghost size, brightness, parent."""
    ny, nx = frame.shape
    psi = rng.uniform(0.0, 2.0 * np.pi)
    uy, ux = np.sin(psi), np.cos(psi)
    obstruction = uniform(rng, cfg.obstruction)
    vane_angles: tuple = ()
    if rng.random() < cfg.vane_probability:
        n = int(rng.integers(cfg.vanes[0], cfg.vanes[1] + 1))
        vane_angles = tuple(rng.uniform(0.0, np.pi) + 2.0 * np.pi * np.arange(n) / n)
    stars = bright_stars(frame, cfg.min_peak)
    ghosts = []
    for _ in range(int(rng.integers(cfg.count[0], cfg.count[1] + 1))):
        radius = log_uniform(rng, cfg.radius)
        halo = bool(rng.random() < cfg.halo_probability)
        softness = uniform(rng, cfg.softness)
        amplitude = log_uniform(rng, cfg.amplitude) * frame.sky_noise
        distance = uniform(rng, cfg.offset) * radius
        vane_width = max(1.0, uniform(rng, cfg.vane_width) * radius)
        reach = 4.0 * radius if halo else radius
        gy, gx = stars[:, 0] + distance * uy, stars[:, 1] + distance * ux
        lands = _distance_to_tile(gy, gx, frame.shape) < 0.5 * reach
        if lands.any():
            weight = stars[lands, 2] / stars[lands, 2].sum()
            i = np.flatnonzero(lands)[rng.choice(int(lands.sum()), p=weight)]
            parent = (stars[i, 0], stars[i, 1])
            centre = (gy[i], gx[i])
        else:
            centre = (rng.uniform(-0.5, ny - 0.5), rng.uniform(-0.5, nx - 0.5))
            parent = _virtual_parent(centre[0], centre[1], uy, ux, distance, frame.shape)
        ghosts.append(
            Ghost(
                y=float(centre[0]),
                x=float(centre[1]),
                parent_y=float(parent[0]),
                parent_x=float(parent[1]),
                radius=radius,
                inner=0.0 if halo else obstruction * radius,
                softness=softness,
                amplitude=amplitude,
                halo=halo,
                vane_angles=() if halo else vane_angles,
                vane_width=vane_width,
            )
        )
    return ghosts


def _blurred_disc(r, radius, sigma):
    """A uniform disc of ``radius`` convolved with a Gaussian of ``sigma``, at distance ``r`` from its centre."""
    if radius <= 0:
        return np.zeros_like(r)
    return chndtr((radius / sigma) ** 2, 2, (r / sigma) ** 2)


def render_ghost(signal: np.ndarray, ghost: Ghost) -> None:
    """Add ``ghost`` to ``signal`` (e-, in place), inside its extent only."""
    ny, nx = signal.shape
    ext = ghost.extent
    y0, y1 = max(int(np.floor(ghost.y - ext)), 0), min(int(np.ceil(ghost.y + ext)) + 1, ny)
    x0, x1 = max(int(np.floor(ghost.x - ext)), 0), min(int(np.ceil(ghost.x + ext)) + 1, nx)
    if y0 >= y1 or x0 >= x1:
        return
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] - ghost.y
    dx = np.arange(x0, x1, dtype=np.float64)[None, :] - ghost.x
    r = np.hypot(dy, dx)
    if ghost.halo:
        profile = np.exp(-((r / ghost.radius) ** 2))
    else:
        # Exact radial profile of the blurred annulus on a fine grid, interpolated at each pixel.
        grid = np.linspace(0.0, ext, max(int(ext / 0.1), 2) + 1)
        radial = _blurred_disc(grid, ghost.radius, ghost.softness) - _blurred_disc(grid, ghost.inner, ghost.softness)
        profile = np.interp(r, grid, np.clip(radial, 0.0, 1.0), right=0.0)
        edge = np.sqrt(2.0) * ghost.softness
        for theta in ghost.vane_angles:
            along = dx * np.cos(theta) + dy * np.sin(theta)
            across = dy * np.cos(theta) - dx * np.sin(theta)
            half = ghost.vane_width / 2.0
            bar = 0.5 * (erf((half - across) / edge) + erf((half + across) / edge))
            profile = profile * (1.0 - bar * 0.5 * (1.0 + erf(along / edge)))
    profile[r > ext] = 0.0
    signal[y0:y1, x0:x1] += (ghost.amplitude * profile).astype(np.float32)


def ghost_signal(frame: Frame, cfg: GhostConfig, rng) -> np.ndarray:
    """The tile's ghosts (e-, float32)."""
    signal = np.zeros(frame.shape, np.float32)
    for ghost in draw_ghosts(frame, cfg, rng):
        render_ghost(signal, ghost)
    return signal


def inject_ghosts(image, frame: Frame, cfg: GhostConfig, rng):
    """Add optical ghosts of bright stars. Returns (image, GHO mask)."""
    signal = ghost_signal(frame, cfg, rng)
    return image + signal, significant(signal, frame)
