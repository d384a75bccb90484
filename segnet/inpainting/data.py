"""Inpainting network inputs and targets, and the training batches.

Units: everything is normalised, ``(image - background) / sigma``, with background
and sigma from robust box statistics that leave out the pixels to replace and the
saturated ones, so one network serves every camera and sky level.

The network refines a classical fill rather than inventing pixels from nothing:
the holes are first filled by the biharmonic fill ``f`` (``baselines.biharmonic``; on a
colour camera's Bayer mosaic, each 2x2 phase from its own pixels: ``base_fill``),
and the network predicts a correction ``d`` in units of ``s = sqrt(1 + max |f|)``,
the maximum over the pixel's 5x5 neighbourhood, so the result is ``f + s * d``.
An untrained network (``d = 0``: its head starts at zero) *is* the biharmonic
fill. The unit grows with the local brightness, so the rare pixels of a bright
star core do not drown the sky in the loss, but only as its square root, so a
bright star is still rebuilt to a small fraction of its noise. It comes from the
input, never from the (noisy) truth, so the loss is minimised by the mean of the
truth and fluxes come out unbiased (with the Huber loss, wherever the error stays
within its quadratic zone: the truth's noise is at most 1 unit). What the network sees is ``asinh(f)`` (the
SegNet's compression, ``segnet.training.dataset.to_network``), ``f / s`` and the mask.

Measured on the way there (same data, similar budgets): predicting ``asinh`` of
the clean pixel from a zero-filled hole beat both baselines on MSE halfway through
its training but lost to them on star photometry (median flux error 2.4 % against
1.0 % and 0.7 %: the mean of an ``asinh`` is not the ``asinh`` of the mean); a
correction to the 5x5 masked median in units of ``1 + max |f|`` beat the median
but not the biharmonic fill, and next to saturated stars that linear unit turned
small corrections into errors of hundreds of sigma.

Batches depend only on their indices (see ``segnet.training.dataset``): sample ``i``
borrows the mask of the next sample of its batch, moved by a stream that depends
only on (seed, split, i).
"""

from __future__ import annotations

import keras
import numpy as np
from scipy import ndimage

from data_sim.generator import Sample, SampleSource, iter_samples
from foundation.normalize import BackgroundGrid
from segnet.inpainting.baselines import biharmonic
from segnet.inpainting.masks import hole_mask, mask_rng, training_mask, usable_pixels

__all__ = [
    "is_mosaic",
    "base_fill",
    "encode",
    "decode",
    "target",
    "scale",
    "normalisation",
    "make_batch",
    "InpaintBatches",
    "FixedInpaintBatches",
]


def normalisation(image, unknown, saturated=None, *, box: int = 64):
    """Background and sigma maps of a whole (small) image, (ny, nx) float32 each, the image's units.

    ``unknown`` (pixels to replace) and ``saturated`` are left out of the statistics.
    """
    image = np.asarray(image)
    mask = np.asarray(unknown, bool) if saturated is None else (np.asarray(unknown, bool) | saturated)
    grid = BackgroundGrid(image, box=int(min(box, max(image.shape))), mask=mask)
    return grid.window()


#: The 2x2 phases of a tile's known pixels whose median levels differ by more than this many times
#: their noise make a colour camera's Bayer mosaic (`is_mosaic`); a grey sensor's differ by ~0.01.
MOSAIC_NSIGMA = 1.0


def is_mosaic(image, holes) -> bool:
    """True when the four 2x2 phases of the known pixels of ``image`` sit at different levels:
    a colour camera's raw Bayer mosaic, whose neighbouring pixels see different colours."""
    known = ~np.asarray(holes, bool) & np.isfinite(image)
    levels, noises = [], []
    for py in (0, 1):
        for px in (0, 1):
            values = np.asarray(image[py::2, px::2], np.float64)[known[py::2, px::2]]
            if values.size < 16:
                return False
            level = np.median(values)
            levels.append(level)
            noises.append(1.4826 * np.median(np.abs(values - level)))
    noise = min(noises)
    return bool(noise > 0 and max(levels) - min(levels) > MOSAIC_NSIGMA * noise)


def base_fill(image, holes) -> np.ndarray:
    """The classical fill the network corrects: the biharmonic fill, or on a Bayer mosaic
    (`is_mosaic`) the biharmonic fill of each 2x2 phase from its own pixels, so a hole keeps
    the mosaic instead of averaging its colours. float32, the image's units."""
    if not is_mosaic(image, holes):
        return biharmonic(image, holes)
    out = np.array(image, np.float32)
    for py in (0, 1):
        for px in (0, 1):
            out[py::2, px::2] = biharmonic(image[py::2, px::2], holes[py::2, px::2])
    return out


def encode(image, unknown, background, sigma) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's input ``(ny, nx, 3)``, the normalised fill ``f`` and its unit ``scale(f)``
    ``(ny, nx)``, float32 each (the unit is returned for `target` and `decode`).

    Holes are the pixels to replace plus the non-finite ones; they are filled by the
    biharmonic fill (the background where no pixel is known). The channels
    (``network.INPUT_CHANNELS``): ``asinh(f)``, the whole dynamic range; ``f / scale(f)``,
    the fill in the unit of the correction, which keeps a star's profile linear (in
    ``asinh`` a 1-sigma step on a 1000-sigma core is 1e-3, too fine to correct it to
    its noise); 1 on holes.
    """
    image = np.asarray(image, np.float32)
    holes = np.asarray(unknown, bool) | ~np.isfinite(image)
    if holes.all():
        fill = np.zeros(image.shape, np.float32)
    else:
        fill = ((base_fill(image, holes) - background) / sigma).astype(np.float32)
    unit = scale(fill)
    x = np.stack([np.arcsinh(fill), fill / unit, holes.astype(np.float32)], axis=-1)
    return x.astype(np.float32), fill, unit


def scale(fill) -> np.ndarray:
    """The unit of the network's correction: ``sqrt(1 + max |f|)``, max over each pixel's 5x5 neighbourhood."""
    return np.sqrt(1.0 + ndimage.maximum_filter(np.abs(fill), size=5, mode="nearest"))


def target(clean, background, sigma, fill, unit=None) -> np.ndarray:
    """What the network should output: ``((clean - background) / sigma - f) / scale(f)``, float32.

    ``unit`` is ``scale(f)`` when the caller has it already (from `encode`).
    """
    truth = (np.asarray(clean, np.float32) - background) / sigma
    unit = scale(fill) if unit is None else unit
    return ((truth - fill) / unit).astype(np.float32)


def decode(y, background, sigma, fill, unit=None) -> np.ndarray:
    """Network output -> the image's units: ``background + sigma * (f + scale(f) * y)``, float32.

    ``unit`` is ``scale(f)`` when the caller has it (from `encode`); it must be passed when
    ``f`` is a tile cut to its core (the 5x5 maximum must see the core's neighbours). ``y`` is clipped
    to +-1e4 first, so a wild output can never overflow float32.
    """
    y = np.clip(np.asarray(y, np.float32), -1e4, 1e4)
    unit = scale(fill) if unit is None else unit
    return (background + sigma * (fill + unit * y)).astype(np.float32)


def make_batch(samples: list[Sample], masks: list[np.ndarray]):
    """Samples with their inpainting masks -> (x (b, ny, nx, 3), y (b, ny, nx, 2)) float32.

    ``y`` packs the target (channel 0) and the loss weight (channel 1): 1 on
    masked pixels whose image and clean values are finite and unsaturated.
    """
    xs, ys = [], []
    for sample, mask in zip(samples, masks):
        if sample.clean is None:
            raise ValueError("inpainting batches need samples with a clean image (SampleSource(..., clean=True))")
        background, sigma = normalisation(sample.image, mask, sample.saturated)
        x, fill, unit = encode(sample.image, mask, background, sigma)
        usable = usable_pixels(sample, mask)
        t = np.where(usable, target(sample.clean, background, sigma, fill, unit), 0.0)
        xs.append(x)
        ys.append(np.stack([t, usable.astype(np.float32)], axis=-1))
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


def batch_masks(
    samples: list[Sample],
    indices,
    *,
    replace,
    seed: int,
    split: str,
    borrow_probability: float,
    borrow_max_fraction: float,
    hole_nsigma: float | None = None,
) -> list[np.ndarray]:
    """Each sample's training mask: its own ``replace`` classes (``hole_mask``), plus the next sample's moved
    over it."""
    own = [hole_mask(s, replace, hole_nsigma) for s in samples]
    return [
        training_mask(
            own[k],
            own[(k + 1) % len(own)],
            mask_rng(seed, split, i),
            borrow_probability=borrow_probability,
            borrow_max_fraction=borrow_max_fraction,
        )
        for k, i in enumerate(indices)
    ]


class InpaintBatches(keras.utils.PyDataset):
    """``n_batches`` batches of samples ``first_index``, ``first_index + 1``, ... of a clean-carrying source."""

    def __init__(
        self, source: SampleSource, *, first_index: int, n_batches: int, batch_size: int, inpaint, workers: int = 0
    ):
        # Threads, not processes (see segnet.training.dataset.TileBatches); ordered output keeps runs exact.
        super().__init__(workers=max(1, workers), use_multiprocessing=False, max_queue_size=4)
        if not source.clean:
            raise ValueError("`source` must be made with clean=True")
        self.source = source
        self.first_index = int(first_index)
        self.n_batches = int(n_batches)
        self.batch_size = int(batch_size)
        self.inpaint = inpaint

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, i: int):
        if not 0 <= i < self.n_batches:
            raise IndexError(f"batch {i} out of range 0..{self.n_batches - 1}")
        indices = range(self.first_index + i * self.batch_size, self.first_index + (i + 1) * self.batch_size)
        samples = [self.source[k] for k in indices]
        masks = batch_masks(
            samples,
            indices,
            replace=self.inpaint.replace,
            seed=self.source.seed,
            split=self.source.split,
            borrow_probability=self.inpaint.borrow_probability,
            borrow_max_fraction=self.inpaint.borrow_max_fraction,
            hole_nsigma=self.inpaint.hole_nsigma,
        )
        return make_batch(samples, masks)


class FixedInpaintBatches(keras.utils.PyDataset):
    """A small fixed set (validation): ``count`` samples, batched once and kept in memory."""

    def __init__(self, source: SampleSource, count: int, batch_size: int, inpaint):
        super().__init__()
        samples = list(iter_samples(source, 0, count))
        self.batches = []
        for start in range(0, count, batch_size):
            chunk = samples[start : start + batch_size]
            indices = range(start, start + len(chunk))
            masks = batch_masks(
                chunk,
                indices,
                replace=inpaint.replace,
                seed=source.seed,
                split=source.split,
                borrow_probability=inpaint.borrow_probability,
                borrow_max_fraction=inpaint.borrow_max_fraction,
                hole_nsigma=inpaint.hole_nsigma,
            )
            self.batches.append(make_batch(chunk, masks))

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]
