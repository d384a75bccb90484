"""Drawing primitives shared by the scene and the injectors."""

from __future__ import annotations

import numpy as np


def bilinear_deposit(shape, y: np.ndarray, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Sum point charges at sub-pixel positions into a (ny, nx) float64 map.

    Each point is split over its four neighbouring pixels with bilinear
    weights (one ``bincount``, so thousands of points cost little); points
    off the map are dropped.
    """
    ny, nx = shape
    y = np.asarray(y, np.float64)
    x = np.asarray(x, np.float64)
    weight = np.broadcast_to(np.asarray(weight, np.float64), y.shape)
    y0 = np.floor(y).astype(np.int64)
    x0 = np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    idx, val = [], []
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
            idx.append(yy[ok] * nx + xx[ok])
            val.append((weight * wy * wx)[ok])
    flat = np.bincount(np.concatenate(idx), weights=np.concatenate(val), minlength=ny * nx)
    return flat.reshape(shape)


def add_stamp(canvas: np.ndarray, stamp: np.ndarray, cy: int, cx: int) -> None:
    """Add an odd-sized ``stamp`` centred on pixel (cy, cx), clipped at the canvas edges."""
    h = stamp.shape[0] // 2
    y0, x0 = cy - h, cx - h
    ys, xs = max(0, -y0), max(0, -x0)
    ye = min(stamp.shape[0], canvas.shape[0] - y0)
    xe = min(stamp.shape[1], canvas.shape[1] - x0)
    if ye > ys and xe > xs:
        canvas[y0 + ys : y0 + ye, x0 + xs : x0 + xe] += stamp[ys:ye, xs:xe]
