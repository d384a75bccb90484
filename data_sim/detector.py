"""Detector structure that is no contaminant: amplifier steps, overscan strips, unexposed edges, Bayer mosaics.

Real frames carry all three (ISAAC's quadrant step, ALFOSC's prescan and overscan,
vignetted or shadowed field edges), and the shipped model took them for trails,
fringes and persistence (``bench/results/real-diagnosis-2026-12-01.md``). A tile is
cut from a larger frame, so each appears at a random place in it:

- **amplifiers**: the tile straddles the boundary between two read-out amplifiers
  (a row or a column at a random place): the second reads with its own gain (a few
  per cent off) and bias offset (ADU), so the sky steps there;
- **overscan**: a strip along one edge of the tile holds virtual pixels, bias and read
  noise only (no sky, no star, no cosmic ray);
- **unexposed edge**: light falls off to nothing over a few pixels along one edge
  (a field stop's shadow, a vignetted corner of the focal plane);
- **Bayer mosaic**: a colour camera's 2x2 filter pattern (one red, two green, one blue
  pixel) passes the light of every source and of the sky in different proportions, so
  a star's peak pixel can stand out of its neighbours; charge deposited in the silicon
  (cosmic rays, hot pixels) does not go through the filters.

None has a truth mask: the network must learn they are background. Where an overscan
strip replaces the pixels, the truth of what was injected there before read-out is
cleared. Every tile makes the same draws whatever is present, so switching one on
leaves the rest of the tile's structure alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import uniform
from .config import FamilyConfig

SIDES = ("bottom", "top", "left", "right")


@dataclass(frozen=True)
class Structure:
    """One tile's detector structure; sides are of the tile as a numpy array (row 0 = bottom)."""

    amp_axis: int | None  # 0: the amplifiers meet along a row, 1: along a column; None: one amplifier
    amp_at: int  # first row or column of the second amplifier
    amp_gain: float  # the second amplifier's ADU per e-, relative to the first's
    amp_offset: float  # ADU added to the second amplifier's bias
    overscan_side: str | None
    overscan_width: int  # px
    edge_side: str | None
    edge_width: int  # px of the tile that receive no light at all
    edge_softness: float  # px over which light falls from full to none
    bayer: tuple | None = None  # (red, blue) response relative to green, or None: no colour filters
    bayer_phase: tuple = (0, 0)  # (row, column) of the red pixel in each 2x2 cell


def draw_structure(family: FamilyConfig, shape, rng: np.random.Generator) -> Structure:
    """Draw a tile's structure from ``family``'s probabilities and ranges (always the same draws)."""
    u = rng.random(3)
    amp_axis = int(rng.integers(2))
    amp_at = int(rng.integers(1, shape[amp_axis]))
    gain_step = uniform(rng, family.amplifier_gain_step) * rng.choice((-1.0, 1.0))
    offset = uniform(rng, family.amplifier_offset) * rng.choice((-1.0, 1.0))
    overscan_side = SIDES[int(rng.integers(4))]
    overscan_width = int(rng.integers(family.overscan_width[0], family.overscan_width[1] + 1))
    edge_side = SIDES[int(rng.integers(4))]
    edge_width = int(rng.integers(family.edge_width[0], family.edge_width[1] + 1))
    softness = uniform(rng, family.edge_softness)
    bayer = (uniform(rng, family.bayer_response), uniform(rng, family.bayer_response))
    phase = (int(rng.integers(2)), int(rng.integers(2)))
    return Structure(
        amp_axis if u[0] < family.amplifier_probability else None,
        amp_at,
        1.0 + gain_step,
        offset,
        overscan_side if u[1] < family.overscan_probability else None,
        overscan_width,
        edge_side if u[2] < family.edge_probability else None,
        edge_width,
        softness,
        bayer if rng.random() < family.bayer_probability else None,
        phase,
    )


def _distance_from(side: str, shape) -> np.ndarray:
    """(ny, nx) float32: each pixel's distance in px from the ``side`` edge of the tile (0 on it)."""
    ny, nx = shape
    rows = np.arange(ny, dtype=np.float32)[:, None] * np.ones((1, nx), np.float32)
    cols = np.ones((ny, 1), np.float32) * np.arange(nx, dtype=np.float32)[None, :]
    return {"bottom": rows, "top": ny - 1 - rows, "left": cols, "right": nx - 1 - cols}[side]


def illumination(structure: Structure, shape) -> np.ndarray | None:
    """(ny, nx) float32 in [0, 1]: the share of the light each pixel records; None when all of it.

    An unexposed edge: 0 within ``edge_width`` px of the edge, then rising linearly to 1
    over ``edge_softness`` px. A Bayer mosaic: green pixels 1, red and blue their response.
    """
    light = None
    if structure.edge_side is not None:
        distance = _distance_from(structure.edge_side, shape) - (structure.edge_width - 0.5)
        light = (
            (distance > 0).astype(np.float32)
            if structure.edge_softness <= 0
            else np.clip(distance / structure.edge_softness, 0.0, 1.0).astype(np.float32)
        )
    if structure.bayer is not None:
        mosaic = bayer_pattern(structure, shape)
        light = mosaic if light is None else light * mosaic
    return light


def bayer_pattern(structure: Structure, shape) -> np.ndarray:
    """(ny, nx) float32: each pixel's filter response (green 1; red, blue as drawn) in an RGGB-like mosaic."""
    red, blue = structure.bayer
    y0, x0 = structure.bayer_phase
    rows = (np.arange(shape[0]) - y0) % 2
    cols = (np.arange(shape[1]) - x0) % 2
    pattern = np.ones(shape, np.float32)
    pattern[np.ix_(rows == 0, cols == 0)] = red
    pattern[np.ix_(rows == 1, cols == 1)] = blue
    return pattern


def overscan_strip(structure: Structure, shape) -> np.ndarray | None:
    """(ny, nx) bool: the overscan's virtual pixels, or None."""
    if structure.overscan_side is None:
        return None
    return _distance_from(structure.overscan_side, shape) < structure.overscan_width


def second_amplifier(structure: Structure, shape) -> np.ndarray | None:
    """(ny, nx) bool: the pixels read by the second amplifier, or None."""
    if structure.amp_axis is None:
        return None
    index = np.arange(shape[structure.amp_axis])
    side = index >= structure.amp_at
    return np.broadcast_to(side[:, None] if structure.amp_axis == 0 else side[None, :], shape)


def apply_amplifiers(adu: np.ndarray, structure: Structure, bias: float) -> np.ndarray:
    """The second amplifier's pixels read with its own gain and bias offset (ADU in, ADU out)."""
    region = second_amplifier(structure, adu.shape)
    if region is None:
        return adu
    stepped = (adu - np.float32(bias)) * np.float32(structure.amp_gain) + np.float32(bias + structure.amp_offset)
    return np.where(region, stepped, adu).astype(np.float32)
