"""From simulated samples to Keras batches: normalised inputs, truth and loss weights.

A batch depends only on the indices of its samples, never on what was drawn
before, so an interrupted run that resumes at epoch ``e`` sees exactly the
batches an uninterrupted one would. Plain NumPy and ``keras.utils.PyDataset``:
no TensorFlow-only parts, so the same pipeline feeds the JAX backend.
"""

from __future__ import annotations

import keras
import numpy as np

from data_sim.generator import Sample, SampleSource, iter_samples
from foundation.normalize import network_input
from segnet.training.losses import class_weights_from_fractions, pack_targets, weight_map


def known_truth(sample: Sample) -> np.ndarray:
    """(n_class, ny, nx) bool: where each class's truth is known, for losses and metrics alike.

    Not at non-finite pixels nor where a real frame has contaminants of its own
    (``sample.unknown``); at saturated pixels only for SAT, since saturation hides
    whatever else is there.
    """
    base = np.isfinite(sample.image)
    if sample.unknown is not None:
        base &= ~sample.unknown
    known = np.repeat(base[None], len(sample.classes), axis=0)
    for k, name in enumerate(sample.classes):
        if name != "SAT":
            known[k] &= ~sample.saturated
    return known


def make_batch(samples: list[Sample], class_w: np.ndarray, background_w: float):
    """Samples -> (x (b, ny, nx, 1), y (b, ny, nx, 2 n_class + 1)) float32; y packs truth, known truth, weights."""
    xs, truths, knowns = [], [], []
    for sample in samples:
        x, invalid = network_input(sample.image, saturated=sample.saturated)
        xs.append(x)
        truths.append(np.moveaxis(sample.truth, 0, -1))
        knowns.append(np.moveaxis(known_truth(sample), 0, -1))
    truth, known = np.stack(truths), np.stack(knowns)
    weights = weight_map(truth, ~known.any(axis=-1), class_w, background_w)
    return np.stack(xs)[..., None], pack_targets(truth, weights, known)


class TileBatches(keras.utils.PyDataset):
    """``n_batches`` batches of samples ``first_index``, ``first_index + 1``, ... of ``source``."""

    def __init__(
        self,
        source: SampleSource,
        *,
        first_index: int,
        n_batches: int,
        batch_size: int,
        class_w: np.ndarray,
        background_w: float,
        workers: int = 0,
    ):
        # Threads, not processes: the heavy NumPy work releases the GIL, and a
        # forked TensorFlow parent is unsafe. Ordered output keeps runs exact.
        super().__init__(workers=max(1, workers), use_multiprocessing=False, max_queue_size=4)
        self.source = source
        self.first_index = int(first_index)
        self.n_batches = int(n_batches)
        self.batch_size = int(batch_size)
        self.class_w = np.asarray(class_w, np.float32)
        self.background_w = float(background_w)

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, i: int):
        if not 0 <= i < self.n_batches:
            raise IndexError(f"batch {i} out of range 0..{self.n_batches - 1}")
        start = self.first_index + i * self.batch_size
        samples = [self.source[start + k] for k in range(self.batch_size)]
        return make_batch(samples, self.class_w, self.background_w)


class FixedBatches(keras.utils.PyDataset):
    """A small fixed set (validation): ``count`` samples of ``source``, batched once and kept in memory."""

    def __init__(self, source: SampleSource, count: int, batch_size: int, class_w, background_w):
        super().__init__()
        samples = list(iter_samples(source, 0, count))
        self.batches = [
            make_batch(samples[i : i + batch_size], class_w, background_w) for i in range(0, count, batch_size)
        ]

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def measure_class_fractions(source: SampleSource, count: int, *, workers: int = 0) -> dict:
    """Fraction of pixels in each class, and in none, over ``count`` tiles of ``source``.

    Returns ``{"classes": {name: fraction}, "background": fraction, "tiles": count}``.
    Raises ValueError naming a class that never appears (its weight would be infinite).
    """
    totals = np.zeros(len(source.classes))
    background = 0
    pixels = 0
    for sample in iter_samples(source, 0, count, workers=workers):
        totals += sample.truth.sum(axis=(1, 2))
        background += int((~sample.truth.any(axis=0)).sum())
        pixels += sample.truth[0].size
    fractions = {name: float(t / pixels) for name, t in zip(source.classes, totals)}
    empty = [name for name, f in fractions.items() if f == 0]
    if empty:
        raise ValueError(
            f"class {empty[0]} never appears in {count} tiles of split {source.split!r}: "
            f"raise data.contaminants.{empty[0]}.probability or train.fraction_samples"
        )
    return {"classes": fractions, "background": float(background / pixels), "tiles": int(count)}


def loss_weights(fractions: dict, class_names, max_weight_ratio: float = 0.0):
    """Class and background weights from measured fractions, optionally capped.

    ``max_weight_ratio`` > 0 caps each class weight at that multiple of the
    background weight (very rare classes otherwise dominate every batch).
    """
    class_w, background_w = class_weights_from_fractions(
        fractions["classes"], class_names, background_fraction=fractions["background"]
    )
    if max_weight_ratio > 0:
        class_w = np.minimum(class_w, np.float32(max_weight_ratio * background_w))
    return class_w, background_w
