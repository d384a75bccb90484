"""Detector defects: hot and bad columns, bad lines, hot and bad pixels.

Masks are exact: every defective pixel is flagged. Geometry follows the
readout: a trap at row y0 affects every pixel whose charge is clocked through
it, i.e. from y0 away from the readout register, so partial columns run from
the trap to the far edge; partial lines run from a column to the end of the
serial register in its readout direction. Amplitudes are in sky sigmas
(hot) or response fractions (bad), see ``config``.
"""

from __future__ import annotations

import numpy as np

from ..camera import log_uniform, uniform
from ..config import ColumnConfig, LineConfig, PixelDefectConfig
from .base import Frame, capped_response

NEIGHBOURS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


def _span(length: int, partial: bool, towards_start: bool, rng) -> slice:
    """Rows (or columns) affected: all, or from a trap to the edge away from the readout."""
    if not partial:
        return slice(0, length)
    trap = int(rng.integers(0, length))
    return slice(trap, length) if towards_start else slice(0, trap + 1)


def column_defects(frame: Frame, cfg: ColumnConfig, rng) -> list[tuple[int, slice]]:
    """Draw (column, rows) segments."""
    ny, nx = frame.shape
    count = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
    columns = rng.choice(nx, size=min(count, nx), replace=False)
    return [(int(x), _span(ny, rng.random() < cfg.partial_probability, frame.readout_at_start, rng)) for x in columns]


def inject_hot_columns(image, frame: Frame, cfg: ColumnConfig, rng):
    """Hot columns: dark charge added along (partial) columns."""
    out, mask = image.copy(), np.zeros(frame.shape, bool)
    for x, rows in column_defects(frame, cfg, rng):
        out[rows, x] += log_uniform(rng, cfg.amplitude) * frame.sky_noise
        mask[rows, x] = True
    return out, mask


def inject_bad_columns(image, frame: Frame, cfg: ColumnConfig, rng):
    """Bad columns: the signal along (partial) columns is multiplied by a low response."""
    out, mask = image.copy(), np.zeros(frame.shape, bool)
    for x, rows in column_defects(frame, cfg, rng):
        out[rows, x] *= capped_response(uniform(rng, cfg.response), frame, cfg.min_deficit)
        mask[rows, x] = True
    return out, mask


def inject_bad_lines(image, frame: Frame, cfg: LineConfig, rng):
    """Bad lines (rows): hot (offset) or dead/low (response), full or partial.

    Applied after read-out noise in the simulator: a dead line reads the bias.
    """
    ny, nx = frame.shape
    out, mask = image.copy(), np.zeros(frame.shape, bool)
    count = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
    for y in rng.choice(ny, size=min(count, ny), replace=False):
        cols = _span(nx, rng.random() < cfg.partial_probability, bool(rng.random() < 0.5), rng)
        if rng.random() < cfg.hot_probability:
            out[y, cols] += log_uniform(rng, cfg.amplitude) * frame.sky_noise
        else:
            out[y, cols] *= capped_response(uniform(rng, cfg.response), frame, cfg.min_deficit)
        mask[y, cols] = True
    return out, mask


def pixel_defects(frame: Frame, cfg: PixelDefectConfig, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw defects, each one pixel or a 2-4 pixel cluster around it.

    Returns (ys, xs, defect_id): pixel coordinates (inside the tile) and, for
    each pixel, the index of the defect it belongs to (a cluster shares a level).
    """
    ny, nx = frame.shape
    n = rng.poisson(log_uniform(rng, cfg.per_mpix) * ny * nx / 1e6)
    ys, xs = rng.integers(0, ny, n), rng.integers(0, nx, n)
    extra = np.where(rng.random(n) < cfg.cluster_probability, rng.integers(1, 4, n), 0)
    owner = np.repeat(np.arange(n), extra)
    # Neighbours of each clustered defect, without repeats within a cluster.
    offsets = (
        np.concatenate([NEIGHBOURS[rng.permutation(len(NEIGHBOURS))[:k]] for k in extra[extra > 0]])
        if extra.any()
        else np.zeros((0, 2), int)
    )
    all_y = np.concatenate([ys, ys[owner] + offsets[:, 0]])
    all_x = np.concatenate([xs, xs[owner] + offsets[:, 1]])
    ids = np.concatenate([np.arange(n), owner])
    inside = (all_y >= 0) & (all_y < ny) & (all_x >= 0) & (all_x < nx)
    return all_y[inside], all_x[inside], ids[inside]


def inject_hot_pixels(image, frame: Frame, cfg: PixelDefectConfig, rng):
    """Hot pixels: dark charge in isolated pixels or tiny clusters."""
    out, mask = image.copy(), np.zeros(frame.shape, bool)
    ys, xs, ids = pixel_defects(frame, cfg, rng)
    level = log_uniform(rng, cfg.amplitude, ids.max() + 1 if ids.size else 0) * frame.sky_noise
    np.add.at(out, (ys, xs), (level[ids] * rng.uniform(0.5, 1.0, ids.size)).astype(out.dtype))
    mask[ys, xs] = True
    return out, mask


def inject_bad_pixels(image, frame: Frame, cfg: PixelDefectConfig, rng):
    """Dead or low-response pixels, isolated or in tiny clusters."""
    out, mask = image.copy(), np.zeros(frame.shape, bool)
    ys, xs, ids = pixel_defects(frame, cfg, rng)
    response = np.array(
        [
            capped_response(uniform(rng, cfg.response), frame, cfg.min_deficit)
            for _ in range(ids.max() + 1 if ids.size else 0)
        ]
    )
    if ids.size:
        # A pixel hit twice keeps the lowest response, not the product.
        flat = ys * frame.shape[1] + xs
        order = np.lexsort((response[ids], flat))
        first = np.unique(flat[order], return_index=True)[1]
        pick = order[first]
        out[ys[pick], xs[pick]] *= response[ids][pick].astype(out.dtype)
    mask[ys, xs] = True
    return out, mask
