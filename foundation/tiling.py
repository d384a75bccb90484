"""Tiled prediction of frames of any size, without seams and in bounded memory.

The frame is normalised with one ``BackgroundGrid`` (built a row of boxes at a
time), then cut into tiles whose *cores* overlap by ``blend`` pixels and
carry ``margin`` pixels of context on every side that is not the frame's
edge. Each tile's prediction is kept on its core only, weighted by ramps that
sum to exactly 1 across every overlap (a partition of unity), and added into
the output, which may be a memory-mapped FITS cube: memory is bounded by the
tile batch, not by the frame. Along each axis the frame takes the fewest tiles
that fit in ``tile`` pixels, with cores of equal length, so that little of the
network's work goes into padding or repeated context. Tile origins are
multiples of ``2**depth`` so the pooling windows fall where they fall on the
whole frame; with a margin wider than the network's reach, a tiled prediction
equals the whole-frame one away from the frame's border. Every window the
network gets is the full tile size: an edge tile's window reaches further into
the frame, and the few pixels beyond the frame's edge that rounding to
``2**depth`` leaves are the frame mirrored, never zeros (which the network would
take for noise-free sky and flag as trails along the edge).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    """One tile along one axis: its core [core0, core1) and its input window [in0, in1)."""

    core0: int
    core1: int
    in0: int
    in1: int
    ramp_in: bool  # weight rises over the first `blend` pixels of the core
    ramp_out: bool  # weight falls over the last `blend` pixels of the core


def plan_axis(n: int, *, tile: int, blend: int, margin: int, multiple: int = 1) -> list[Span]:
    """Tiles covering 0..n-1 along one axis: the fewest whose input windows fit in ``tile`` px.

    Cores are of equal length (a multiple of ``multiple``; the last may be shorter), so every
    window is nearly the padded tile size: a 4096-px axis in tiles of at most 2560 px takes
    two windows of 2128 px, not one of 2560 and one of 1600 padded to 2560.
    """
    if tile - 2 * margin <= blend:
        raise ValueError(f"tile - 2*margin ({tile - 2 * margin}) must exceed blend ({blend})")
    if _round_up(n, multiple) <= tile:
        return [Span(0, n, 0, n, ramp_in=False, ramp_out=False)]
    for k in itertools.count(2):
        core = _round_up(-(-(n + (k - 1) * blend) // k), multiple)  # k cores overlapping by blend cover n
        if core + (2 if k > 2 else 1) * margin <= tile:  # edge windows need context on one side only
            break
    starts = list(range(0, max(n - blend, 1), core - blend))
    return [
        Span(
            start,
            min(start + core, n),
            max(start - margin, 0),
            min(start + core + margin, n),
            ramp_in=i > 0,
            ramp_out=i < len(starts) - 1,
        )
        for i, start in enumerate(starts)
    ]


def axis_weights(span: Span, blend: int) -> np.ndarray:
    """Weights over a span's core: 1, with linear ramps where it overlaps its neighbours."""
    w = np.ones(span.core1 - span.core0, np.float32)
    ramp = (np.arange(blend, dtype=np.float32) + 0.5) / blend
    if blend and span.ramp_in:
        w[:blend] = ramp
    if blend and span.ramp_out:
        w[-blend:] = ramp[::-1]
    return w


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@dataclass(frozen=True)
class TileSettings:
    tile: int = 1024  # largest input side of a tile, px (a multiple of 2**depth): bounds the memory
    margin: int = 64  # context kept around each core, px (a multiple of 2**depth)
    blend: int = 32  # overlap of neighbouring cores, blended linearly, px
    batch_size: int = 1  # tiles per forward pass: the memory bound

    def check(self, multiple: int):
        for name in ("tile", "margin", "blend"):
            value = getattr(self, name)
            if value < 0 or (name == "tile" and value < 1):
                raise ValueError(f"{name}: must be positive, got {value}")
        if self.tile % multiple or self.margin % multiple or self.blend % multiple:
            raise ValueError(
                f"tile ({self.tile}), margin ({self.margin}) and blend ({self.blend}) must be "
                f"multiples of 2**depth = {multiple}"
            )
        if self.tile - 2 * self.margin <= self.blend:
            raise ValueError(f"tile - 2*margin ({self.tile - 2 * self.margin}) must exceed blend ({self.blend})")


def model_multiple(model) -> int:
    """2**depth of a SegNet (its padding layer's multiple, or a serving network's ``multiple``); 1 for others."""
    if hasattr(model, "multiple"):
        return int(model.multiple)
    for layer in model.layers:
        if hasattr(layer, "multiple"):
            return int(layer.multiple)
    return 1


def predict_frame(
    model,
    image,
    out: np.ndarray,
    *,
    settings: TileSettings = TileSettings(),
    mask=None,
    calibration=None,
    transform=None,
    progress=None,
) -> None:
    """Predict every class over a frame, tile by tile, adding into ``out``.

    Parameters
    ----------
    model : a Keras model, (b, ny, nx, 1) -> (b, ny, nx, n_class), or a serving network
        (``segnet.serving.runtime``), (b, ny, nx, 1) -> (b, n_class, ny, nx).
    image : (ny, nx) array-like, read by slices (numpy array, memmap, FITS ``section``).
    out : (n_class, ny, nx) float array filled with zeros (a memmap is fine); receives the
        probabilities, 0 on non-finite input pixels.
    mask : (ny, nx) bool array-like of pixels to leave out of the background and noise
        estimates (saturated, known bad), or None.
    calibration : optional ``segnet.calibration.pixel.PixelCalibration``, attached to the model's graph
        (its 3x3 neighbour features lie within each window, so tiles agree with the whole frame).
    transform : optional function applied to each tile's (n_class, h, w) probabilities
        before blending (the prior adjustment).
    progress : optional callable, called with the number of tiles done after each batch.
    """
    from foundation.normalize import BackgroundGrid, to_network  # here: TileSettings alone imports fast (--help)

    settings.check(model_multiple(model))  # before the (slow) grid
    if calibration is not None:
        model = calibration.attach(model)  # in the graph: the backend's threads, not numpy's
    grid = BackgroundGrid(image, mask=mask)
    read = RowStrips(image)

    def encode(ys, xs):
        window = read(ys, xs)
        invalid = ~np.isfinite(window)
        background, sigma = grid.window(ys, xs)
        x = to_network(window, background, sigma, invalid)
        return x[..., None], invalid

    def decode(p, invalid, cy, cx):
        invalid = invalid[cy, cx]
        if invalid.any():
            p = np.where(invalid, np.float32(0), p)  # non-finite input: predicted 0 (the writer records them)
        return p if transform is None else transform(p)

    run_tiles(model, image.shape, out, encode=encode, decode=decode, settings=settings, progress=progress)


class RowStrips:
    """Windows of a frame, read a strip of whole rows at a time.

    The tiles of one row of tiles share their rows, and a FITS ``section`` reads one
    row per call for a window narrower than the frame: whole rows come in one read.
    """

    def __init__(self, image):
        self.image, self.rows, self.strip = image, None, None

    def __call__(self, ys: slice, xs: slice) -> np.ndarray:
        """float32 copy of ``image[ys, xs]``."""
        if self.rows != (ys.start, ys.stop):
            self.rows, self.strip = (ys.start, ys.stop), np.asarray(self.image[ys], dtype=np.float32)
        return self.strip[:, xs].copy()


def run_tiles(
    model, shape, out: np.ndarray, *, encode, decode, settings: TileSettings = TileSettings(), progress=None
) -> None:
    """The tile loop that prediction and inpainting share: cut, run the model, blend into ``out``.

    ``model`` is a Keras model or a serving network with ``predict_planes`` (``segnet.serving.runtime``).
    ``encode(ys, xs)`` returns the network input of the input window ``(ys, xs)``,
    ``(h, w, c)`` float32, and a state for ``decode``; ``decode(p, state, cy, cx)``
    turns the model's output over the tile's core, ``(k, hc, wc)`` (``cy, cx``: the
    core within the window), into what is blended into ``out``, ``(k, ny, nx)``.
    """
    multiple = model_multiple(model)
    settings.check(multiple)
    forward = getattr(model, "predict_planes", None) or (
        lambda x: np.moveaxis(np.asarray(model.predict_on_batch(x)), -1, 1)
    )  # (b, k, h, w)
    rows, cols = plan_axes(shape, settings, multiple)
    # One input shape for every tile of the frame (one traced graph): the longest window, rounded up.
    tile_y, tile_x = (max(_round_up(s.in1 - s.in0, multiple) for s in spans) for spans in (rows, cols))
    jobs = [(r, c) for r in rows for c in cols]
    for first in range(0, len(jobs), settings.batch_size):
        batch = jobs[first : first + settings.batch_size]
        x, states, origins = None, [], []
        for b, (r, c) in enumerate(batch):
            ys, xs = full_window(r, shape[0], tile_y, multiple), full_window(c, shape[1], tile_x, multiple)
            window, state = encode(ys, xs)
            if x is None:
                x = np.zeros((len(batch), tile_y, tile_x, window.shape[-1]), np.float32)
            x[b] = mirror_to(window, (tile_y, tile_x))
            states.append(state)
            origins.append((ys.start, xs.start))
        result = forward(x)
        for b, (r, c) in enumerate(batch):
            y0, x0 = origins[b]
            cy, cx = slice(r.core0 - y0, r.core1 - y0), slice(c.core0 - x0, c.core1 - x0)
            p = np.asarray(decode(result[b, :, cy, cx], states[b], cy, cx), np.float32)
            # Weights differ from 1 only on the ramps: scale those rows and columns in place.
            wy, wx = axis_weights(r, settings.blend), axis_weights(c, settings.blend)
            ramp_y, ramp_x = np.flatnonzero(wy != 1), np.flatnonzero(wx != 1)
            p[:, ramp_y] *= wy[ramp_y, None]
            p[:, :, ramp_x] *= wx[ramp_x]
            out[:, r.core0 : r.core1, c.core0 : c.core1] += p
        if progress:
            progress(len(batch))


def mirror_to(window: np.ndarray, shape) -> np.ndarray:
    """``window`` (h, w, ...) grown at its bottom and right to ``shape`` (H, W) by mirroring its last rows and columns.

    What the network gets beyond a frame's edge: the frame mirrored, never flat zeros,
    which it would read as noise-free sky next to real pixels (and flag as trails).
    """
    pad = [(0, size - n) for size, n in zip(shape, window.shape)] + [(0, 0)] * (window.ndim - 2)
    return np.pad(window, pad, mode="symmetric") if any(after for _, after in pad) else window


def full_window(span: Span, n: int, size: int, multiple: int) -> slice:
    """The input window the network gets for ``span``: ``size`` px of real pixels where the frame has them.

    A window shorter than ``size`` (one at the frame's edge: context on one side only) is
    extended into the frame, by a multiple of ``multiple`` so that pooling windows stay where
    they are on the whole frame; only the rounding of the frame's own length to ``multiple``
    (fewer than ``multiple`` px) is left beyond its edge, for the caller to mirror.
    """
    start = min(span.in0, max(0, _round_up(n, multiple) - size))
    return slice(start, min(start + size, n))


def plan_axes(shape, settings: TileSettings = TileSettings(), multiple: int = 1):
    """The tiles of a frame of ``shape``: (row spans, column spans); see ``plan_axis``."""
    return tuple(
        plan_axis(n, tile=settings.tile, blend=settings.blend, margin=settings.margin, multiple=multiple) for n in shape
    )


def count_tiles(shape, settings: TileSettings = TileSettings(), multiple: int = 1) -> int:
    rows, cols = plan_axes(shape, settings, multiple)
    return len(rows) * len(cols)
