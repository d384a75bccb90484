"""Class weights, per-pixel weight maps and the weighted sigmoid cross-entropy.

Contaminant pixels are rare, so each pixel is weighted by the rarity of the
rarest class it belongs to (as in the MaxiMask paper). The weight map is made
in NumPy, in the data pipeline, and travels to the loss packed as one extra
channel of ``y_true`` so that a plain ``(x, y)`` Keras pipeline suffices.
"""

import math

import keras
import numpy as np
from keras import ops

__all__ = [
    "class_weights_from_fractions",
    "weight_map",
    "pack_targets",
    "WeightedSigmoidCrossEntropy",
]


def class_weights_from_fractions(fractions, class_names, *, background_fraction=None):
    """Inverse-frequency weights of the classes and of the background.

    The raw weight of a class is ``1 / fraction`` and that of the background
    (pixels in no class) ``1 / background_fraction``. Weights are then scaled
    so that the expected pixel weight over the training set,
    ``sum_c f_c w_c + f_bg w_bg``, is 1. That sum counts a pixel in several
    classes once per class (overlaps are neglected), so with these raw
    weights every weight is divided by ``n_class + 1``.

    Parameters
    ----------
    fractions : dict[str, float]
        Fraction of training pixels in each class, in (0, 1]. Keys not in
        ``class_names`` are ignored (a one-vs-all model may use a subset).
    class_names : sequence of str
        Output classes, in output order.
    background_fraction : float, optional
        Fraction of pixels in no class, in (0, 1]. By default
        ``1 - sum(fractions of class_names)``, exact when classes do not
        overlap.

    Returns
    -------
    class_w : (n_class,) float32 ndarray
        Weight of each class, in the order of ``class_names``.
    background_w : float
        Weight of a pixel in no class.
    """
    names = list(class_names)
    if not names:
        raise ValueError("`class_names` must not be empty")
    missing = [n for n in names if n not in fractions]
    if missing:
        raise KeyError(f"`fractions` has no entry for classes {missing}; got keys {sorted(fractions)}")
    f = np.array([float(fractions[n]) for n in names], dtype=np.float64)
    bad = [(n, v) for n, v in zip(names, f) if not 0.0 < v <= 1.0]
    if bad:
        raise ValueError(f"class fractions must be in (0, 1], got {dict(bad)}")
    if background_fraction is None:
        background_fraction = 1.0 - float(f.sum())
    f_bg = float(background_fraction)
    if not 0.0 < f_bg <= 1.0:
        raise ValueError(
            f"`background_fraction` must be in (0, 1], got {f_bg!r} (pass it explicitly when classes overlap)"
        )
    w, w_bg = 1.0 / f, 1.0 / f_bg
    expected = float((f * w).sum() + f_bg * w_bg)
    return (w / expected).astype(np.float32), w_bg / expected


def _gaussian3x3_smooth(x):
    """Smooths the last two axes with a 3x3 Gaussian, sigma 1 px, sum 1.

    Separable; the border is extended by reflection about the edge
    (``d c b a | a b c d``, NumPy's "symmetric", SciPy's "reflect").
    """
    side = math.exp(-0.5)
    g = np.array([side, 1.0, side]) / (1.0 + 2.0 * side)
    pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
    p = np.pad(x, pad, mode="symmetric")
    rows = g[0] * p[..., :-2, :] + g[1] * p[..., 1:-1, :] + g[2] * p[..., 2:, :]
    return g[0] * rows[..., :-2] + g[1] * rows[..., 1:-1] + g[2] * rows[..., 2:]


def weight_map(truth, ignore, class_w, background_w):
    """Per-pixel loss weights.

    A pixel in one or more classes gets the largest weight among its classes
    (so the rarest class present decides); a pixel in no class gets
    ``background_w``. The map is then smoothed with a normalised 3x3 Gaussian
    (sigma 1 px, border by reflection) so that pixels next to a contaminant
    weigh more, as in the MaxiMask paper. Finally pixels to ignore
    (non-finite or saturated input, ...) are set to 0, after the smoothing.

    Parameters
    ----------
    truth : (b, ny, nx, n_class) array of bool or {0, 1}
        Membership of each pixel in each class.
    ignore : (b, ny, nx) array of bool, or None
        Pixels that must not contribute to the loss.
    class_w : (n_class,) array_like of float
        Weight of each class (e.g. from `class_weights_from_fractions`).
    background_w : float
        Weight of a pixel in no class.

    Returns
    -------
    (b, ny, nx) float32 ndarray
        Dimensionless weights, >= 0.
    """
    truth = np.asarray(truth)
    class_w = np.asarray(class_w, dtype=np.float64)
    if truth.ndim != 4:
        raise ValueError(f"`truth` must be (b, ny, nx, n_class), got shape {truth.shape}")
    if class_w.shape != (truth.shape[-1],):
        raise ValueError(f"`class_w` must have shape ({truth.shape[-1]},) to match `truth`, got {class_w.shape}")
    if np.any(class_w < 0) or not background_w >= 0:
        raise ValueError(f"weights must be >= 0, got class_w={class_w.tolist()}, background_w={background_w!r}")
    member = truth.astype(bool)
    w = np.max(np.where(member, class_w, 0.0), axis=-1)
    w = np.where(member.any(axis=-1), w, float(background_w))
    w = _gaussian3x3_smooth(w)
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != w.shape:
            raise ValueError(f"`ignore` must have shape {w.shape}, got {ignore.shape}")
        w = np.where(ignore, 0.0, w)
    return w.astype(np.float32)


def pack_targets(truth, weights, known=None):
    """Appends the weight map (and, optionally, where each class's truth is known) to the truth cube.

    Parameters
    ----------
    truth : (b, ny, nx, n_class) array of bool or {0, 1}
    weights : (b, ny, nx) float array, from `weight_map`
    known : (b, ny, nx, n_class) array of bool, or None (every class known wherever the weight is > 0).
        A saturated pixel's truth is known for SAT but not for the classes it hides.

    Returns
    -------
    (b, ny, nx, n_class + 1) float32 ndarray ``[truth, weight]``, or with ``known``
    (b, ny, nx, 2 n_class + 1) ``[truth, known, weight]``: the ``y_true`` of the loss.
    """
    truth = np.asarray(truth, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if truth.ndim != 4 or weights.shape != truth.shape[:3]:
        raise ValueError(
            f"`truth` must be (b, ny, nx, n_class) and `weights` (b, ny, nx); got {truth.shape} and {weights.shape}"
        )
    parts = [truth]
    if known is not None:
        known = np.asarray(known, dtype=np.float32)
        if known.shape != truth.shape:
            raise ValueError(f"`known` must have the shape of `truth` {truth.shape}, got {known.shape}")
        parts.append(known)
    return np.concatenate(parts + [weights[..., None]], axis=-1)


@keras.saving.register_keras_serializable(package="segnet")
class WeightedSigmoidCrossEntropy(keras.losses.Loss):
    """Pixel-weighted binary cross-entropy of independent sigmoid outputs.

    ``y_true`` packs the truth and the weights (see `pack_targets`): shape
    ``(b, ny, nx, n_class + 1)``, channels ``0..n_class-1`` the truth in
    [0, 1], the last channel the pixel weight ``w`` from `weight_map`; or
    ``(b, ny, nx, 2 n_class + 1)`` with the per-class ``known`` (0 or 1)
    between them. ``y_pred`` is ``(b, ny, nx, n_class)``, probabilities. The
    loss of a batch is a scalar::

        sum_{pixels, classes} w * known * BCE(t, p) / (sum_{pixels, classes} w * known + eps)

    (``known`` = 1 without the per-class channels), with probabilities clipped
    to ``[epsilon, 1 - epsilon]``. Pixels of weight 0 do not count; a batch
    whose weights are all 0 gives 0.

    Args:
        epsilon: clipping of the probabilities, and the ``eps`` above.
    """

    def __init__(self, epsilon=1e-7, name="weighted_sigmoid_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 < epsilon < 0.5:
            raise ValueError(f"`epsilon` must be in (0, 0.5), got {epsilon!r}")
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        n = y_pred.shape[-1]
        truth, w = y_true[..., :n], y_true[..., -1:]
        if y_true.shape[-1] == 2 * n + 1:  # per-class known truth
            w = w * y_true[..., n : 2 * n]
        else:
            w = ops.broadcast_to(w, ops.shape(y_pred))
        p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        bce = -(truth * ops.log(p) + (1.0 - truth) * ops.log(1.0 - p))
        return ops.sum(w * bce) / (ops.sum(w) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
