"""Pixel calibration: the network's outputs turned into calibrated probabilities, pixel by pixel.

Why a second stage:

- The network is trained on a loss weighted by inverse class frequency, so its
  sigmoid outputs overstate rare classes: they are scores, not probabilities.
- SegNet's decoder sees full resolution only through the pooling switches, so plain
  noise pixels can get single-pixel spikes of hot-pixel probability. A single-pixel
  class needs the pixel's own contrast, which the decoder has lost.

A small multilayer perceptron, shared by all classes, maps features of each pixel
to the probability of every class: the logits of all the network's classes and the
pixel against its 8 neighbours, in the network's input units
(``asinh((image - background) / sigma)``). Two hidden layers of ReLUs: a hot pixel
and a small cosmic-ray hit differ in how the neighbours' pattern combines with the
logits, which a per-class logistic regression cannot express. It is fitted by weighted
maximum likelihood (Adam) on validation tiles at their natural class frequencies
(``evaluate.py``), so the result is calibrated.
Besides, each class's logit averaged over a ``CONTEXT`` x ``CONTEXT`` box around the
pixel: fringes and faint object wings are extended, and whether a pixel lies among
others of its class tells what its own 2-sigma truth cut cannot (docs/decisions.md has
the measurements behind each of these choices).
It costs three small matrix products per pixel and a box sum of the logits.

``calibration.yaml`` in a model's folder holds the weights; ``predict.py`` and
``evaluate.py`` apply it when present.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from segnet.training.run_folder import read_mapping

__all__ = [
    "PixelCalibration",
    "CalibrationFit",
    "CalibrationError",
    "neighbour_features",
    "feature_names",
    "folder_calibration",
    "train_mlp",
    "context_means",
    "FILE_NAME",
]

FILE_NAME = "calibration.yaml"
P_CLIP = 1e-6  # logits are clipped below at -13.8
P_CLIP_HIGH = 1e-4  # ... and above at +9.2: float32 holds 1 - p to 6e-8 only, so a higher cut would let
# last-bit differences of p between runtimes move the logit by up to 0.06
LEGACY_CLIP_HIGH = 1e-6  # the upper cut of calibration files that do not record theirs
MIN_POSITIVES = 20  # fewer positives in the fitting tiles: the class keeps the network's output
HIDDEN = 32  # units in each of the two hidden layers
EPOCHS = 80  # passes over the sampled pixels (about 5,000 Adam steps for 100 tiles)
COMMON_CLASSES = ("OBJ",)  # sampled like the background: objects cover much of a crowded tile
CONTEXT = 9  # side of the box the logits are averaged over (0: no such features)
_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
NEIGHBOUR_NAMES = (
    "contrast",
    "abs_contrast",
    "brightest_neighbour",
    "faintest_neighbour",
    "value",
    *(f"neighbour({dy:+d},{dx:+d})_minus_value" for dy, dx in _OFFSETS),
)


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the key."""


def feature_names(classes, context: int = 0) -> list[str]:
    box = [f"logit_{c}_mean{context}x{context}" for c in classes] if context else []
    return [*(f"logit_{c}" for c in classes), *NEIGHBOUR_NAMES, *box]


def _valid_context(context) -> bool:
    return isinstance(context, int) and not isinstance(context, bool) and context >= 0 and (context == 0 or context % 2)


def pixel_features(prob: np.ndarray, near: np.ndarray, context: int, clip_high: float = P_CLIP_HIGH) -> np.ndarray:
    """(len(feature_names(classes, context)), ny, nx) float32: the perceptron's inputs for a tile.

    prob: the network's (n_class, ny, nx) outputs; near: the input's ``neighbour_features``.
    """
    logits = _logits(prob, clip_high)
    box = [context_means(logits, context)] if context else []
    return np.concatenate([logits, np.asarray(near, np.float32), *box])


def context_means(logits: np.ndarray, context: int) -> np.ndarray:
    """(n, ny, nx) float32: each plane averaged over the part of a ``context``-px box inside the image."""
    from scipy.ndimage import uniform_filter

    logits = np.asarray(logits, np.float32)
    sums = uniform_filter(logits, size=(1, context, context), mode="constant", cval=0.0)
    inside = uniform_filter(np.ones(logits.shape[1:], np.float32), size=context, mode="constant", cval=0.0)
    return sums / inside


def _ring(x: np.ndarray) -> list[np.ndarray]:
    """The 8 neighbours of every pixel (offsets ``_OFFSETS``), edges extended by reflection about the edge."""
    p = np.pad(x, 1, mode="symmetric")
    ny, nx = x.shape
    return [p[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx] for dy, dx in _OFFSETS]


def neighbour_features(x: np.ndarray) -> np.ndarray:
    """(13, ny, nx) float32: the pixel against its 8 neighbours, in the input's units.

    contrast = x - mean of the 8 neighbours; its absolute value; the brightest
    neighbour above that mean and the faintest below it (a hot pixel stands alone,
    a cosmic-ray hit has bright neighbours); x itself; then each neighbour minus x,
    which keeps the direction (columns and lines run along one axis).
    """
    x = np.asarray(x, np.float32)
    ring = _ring(x)
    mean = sum(ring) / np.float32(8)
    brightest, faintest = ring[0].copy(), ring[0].copy()
    for r in ring[1:]:
        np.maximum(brightest, r, out=brightest)
        np.minimum(faintest, r, out=faintest)
    contrast = x - mean
    return np.stack([contrast, np.abs(contrast), brightest - mean, mean - faintest, x, *(r - x for r in ring)])


def _round6(v) -> float:
    return float(f"{float(v):.6g}")


def _logits(prob: np.ndarray, clip_high: float = P_CLIP_HIGH) -> np.ndarray:
    """float32 ``log(p / (1 - p))``, p clipped to [P_CLIP, 1 - clip_high]."""
    p = np.clip(np.asarray(prob, np.float32), P_CLIP, 1 - clip_high)
    out = np.subtract(np.float32(1), p)
    np.divide(p, out, out=out)
    return np.log(out, out=out)


@dataclass(frozen=True)
class PixelCalibration:
    """A perceptron over ``feature_names(classes, context)``; ``apply`` calibrates a tile.

    ``layers`` are (weights (n_out, n_in), bias (n_out,)) pairs, ReLU between them,
    sigmoid after the last (one output per class). Classes in ``passthrough`` keep
    the network's output (too few positives to fit them); with no layers, all do.
    """

    classes: tuple[str, ...]
    layers: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    passthrough: tuple[str, ...] = ()
    tiles: int = 0  # validation tiles it was fitted on (for the record)
    context: int = 0  # box side of the averaged-logit features; 0: none
    clip_high: float = P_CLIP_HIGH  # the logits' upper cut is log((1 - clip_high) / clip_high)

    def __post_init__(self):
        if not _valid_context(self.context):
            raise CalibrationError(f"context: expected 0 or an odd number of pixels, got {self.context!r}")
        n_in = len(feature_names(self.classes, self.context))
        for i, (w, b) in enumerate(self.layers):
            if w.ndim != 2 or w.shape[1] != n_in or b.shape != (w.shape[0],):
                raise CalibrationError(f"layers[{i}]: weights {w.shape} and bias {b.shape} do not take {n_in} inputs")
            n_in = w.shape[0]
        if self.layers and n_in != len(self.classes):
            raise CalibrationError(f"layers: the last gives {n_in} outputs, expected {len(self.classes)} (the classes)")
        unknown = set(self.passthrough) - set(self.classes)
        if unknown:
            raise CalibrationError(f"passthrough: {sorted(unknown)} are not among the classes {list(self.classes)}")

    @classmethod
    def identity(cls, classes) -> "PixelCalibration":
        """Returns the network's probabilities unchanged."""
        return cls(tuple(classes), (), tuple(classes))

    def apply(self, prob: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, (n_class, ny, nx) float32.

        prob: the network's (n_class, ny, nx) outputs; x: its (ny, nx) input.
        """
        return self.apply_near(prob, neighbour_features(x))

    def apply_batch(self, prob: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``apply`` to a batch: prob (b, n_class, ny, nx), x (b, ny, nx)."""
        return np.stack([self.apply(p, xi) for p, xi in zip(prob, x)])

    def apply_near(self, prob: np.ndarray, near: np.ndarray) -> np.ndarray:
        """``apply`` with the input's ``neighbour_features`` already computed (e.g. cut from a larger window's)."""
        prob = np.asarray(prob)
        n = len(self.classes)
        if prob.ndim != 3 or prob.shape[0] != n or near.shape != (len(NEIGHBOUR_NAMES),) + prob.shape[1:]:
            raise ValueError(
                f"expected prob (n_class={n}, ny, nx) and an input (ny, nx), got {prob.shape} and {near.shape[1:]}"
            )
        if not self.layers:
            return prob.astype(np.float32)
        # Features as rows, pixels as columns: every layer is one BLAS call over the tile.
        features = pixel_features(prob, near, self.context, self.clip_high)
        h = features.reshape(len(features), -1)
        for i, (w, b) in enumerate(self.layers):
            h = w.astype(np.float32) @ h
            h += b.astype(np.float32)[:, None]
            if i < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
        np.clip(h, -30.0, 30.0, out=h)
        np.negative(h, out=h)
        np.exp(h, out=h)
        h += 1.0
        out = np.reciprocal(h, out=h).reshape(prob.shape)
        for c in self.passthrough:
            k = self.classes.index(c)
            out[k] = prob[k]
        return out

    def attach(self, model):
        """``model`` with this calibration as its last layer, for prediction.

        One graph, so the perceptron runs in the backend's threads: several times faster than
        numpy's BLAS on these thin matrices here. Same result as ``apply`` on the model's
        outputs and input (within float32 rounding). An image padded up to the network's size
        gives the padding as neighbours to its last row and column, as the network sees them.
        """
        if not self.layers:
            return model
        import keras

        head = _calibration_head(self)
        return keras.Model(model.inputs, head(model.inputs[0], model.outputs[0]), name=f"{model.name}_calibrated")

    # --- File form.
    def save(self, path: Path, *, note: str = "") -> None:
        data = {
            "tiles": int(self.tiles),
            "context": int(self.context),
            "clip_high": float(self.clip_high),
            "features": feature_names(self.classes, self.context),
            "classes": list(self.classes),
            "passthrough": list(self.passthrough),
            "layers": [
                {"weights": [[_round6(v) for v in row] for row in w], "bias": [_round6(v) for v in b]}
                for w, b in self.layers
            ],
        }
        header = (
            "# Pixel calibration (segnet/calibration/pixel.py): a perceptron from the features below to one\n"
            "# probability per class (ReLU between layers, sigmoid after the last), fitted by maximum\n"
            "# likelihood on validation tiles. Classes in 'passthrough' keep the network's output.\n"
        )
        if note:
            header += "".join(f"# {line}\n" for line in note.splitlines())
        Path(path).write_text(header + yaml.safe_dump(data, sort_keys=False, width=100_000))

    @classmethod
    def load(cls, path: Path, classes) -> "PixelCalibration":
        """Read ``path`` for a model predicting ``classes``; `CalibrationError` names what is wrong."""
        try:
            data = read_mapping(path, "calibration")
        except ValueError as exc:
            raise CalibrationError(str(exc)) from None
        if isinstance(data.get("classes"), dict):
            raise CalibrationError(
                f"{path}: classes: a mapping of per-class coefficients, the logistic calibration of "
                f"an earlier version; run evaluate.py on the model again to fit the current one"
            )
        if data.get("classes") != list(classes):
            raise CalibrationError(
                f"{path}: classes: expected {list(classes)} (the model's), got {str(data.get('classes'))[:200]}"
            )
        context = data.get("context", 0)  # absent in files written before the averaged-logit features
        if not _valid_context(context):  # checked before the feature names, which depend on it
            raise CalibrationError(f"{path}: context: expected 0 or an odd number of pixels, got {context!r}")
        names = feature_names(classes, context)
        if data.get("features") != names:
            raise CalibrationError(f"{path}: features: expected {names}, got {str(data.get('features'))[:400]}")
        passthrough = data.get("passthrough", [])
        if not isinstance(passthrough, list):
            raise CalibrationError(f"{path}: passthrough: expected a list of class names, got {passthrough!r}")
        layers = data.get("layers")
        if not isinstance(layers, list):
            raise CalibrationError(f"{path}: layers: expected a list of {{weights, bias}}, got {str(layers)[:80]}")
        parsed = []
        for i, layer in enumerate(layers):
            w = layer.get("weights") if isinstance(layer, dict) else None
            b = layer.get("bias") if isinstance(layer, dict) else None
            w, b = _numbers(w, path, f"layers[{i}].weights", 2), _numbers(b, path, f"layers[{i}].bias", 1)
            parsed.append((w, b))
        tiles = data.get("tiles", 0)
        clip_high = data.get("clip_high", LEGACY_CLIP_HIGH)
        if isinstance(clip_high, bool) or not isinstance(clip_high, (int, float)) or not 0 < clip_high < 0.5:
            raise CalibrationError(f"{path}: clip_high: expected a number in (0, 0.5), got {clip_high!r}")
        try:
            return cls(
                tuple(classes),
                tuple(parsed),
                tuple(passthrough),
                int(tiles) if isinstance(tiles, int) else 0,
                context,
                float(clip_high),
            )
        except CalibrationError as exc:
            raise CalibrationError(f"{path}: {exc}") from None


def _calibration_head(calibration: PixelCalibration):
    """A Keras layer: (network input (b, ny, nx, 1), probabilities (b, ny, nx, n)) -> calibrated ones."""
    import keras
    from keras import ops

    class CalibrationHead(keras.layers.Layer):
        def __init__(self):
            super().__init__(name="pixel_calibration")
            # Each layer as a 1x1 convolution with constant weights: the CPU backends fuse
            # convolution, bias and ReLU (measured 20 % less CPU time than Dense layers).
            self.kernels = [ops.convert_to_tensor(w.T[None, None].astype(np.float32)) for w, _ in calibration.layers]
            self.biases = [ops.convert_to_tensor(b.astype(np.float32)) for _, b in calibration.layers]
            self.keep = np.array([c in calibration.passthrough for c in calibration.classes])

        def box_mean(self, planes):
            # As context_means: zeros outside the image, divided by the part of the box inside it.
            r = calibration.context // 2
            n = planes.shape[-1] + 1
            stack = ops.concatenate([planes, ops.ones_like(planes[..., :1])], axis=-1)
            stack = ops.pad(stack, [[0, 0], [r, r], [r, r], [0, 0]])
            ones = np.ones((calibration.context, 1, n, 1), np.float32)
            sums = ops.depthwise_conv(ops.depthwise_conv(stack, ones), np.transpose(ones, (1, 0, 2, 3)))
            return sums[..., :-1] / sums[..., -1:]

        def call(self, x, prob):
            # As neighbour_features and apply, in keras.ops (any backend).
            p = ops.clip(prob, P_CLIP, 1 - calibration.clip_high)
            image = x[..., 0]
            padded = ops.pad(image, [[0, 0], [1, 1], [1, 1]], mode="symmetric")
            ring = [padded[:, 1 + dy : (dy - 1) or None, 1 + dx : (dx - 1) or None] for dy, dx in _OFFSETS]
            mean = sum(ring) / 8.0
            brightest, faintest = ring[0], ring[0]
            for r in ring[1:]:
                brightest, faintest = ops.maximum(brightest, r), ops.minimum(faintest, r)
            contrast = image - mean
            near = [contrast, ops.abs(contrast), brightest - mean, mean - faintest, image, *(r - image for r in ring)]
            logits = ops.log(p / (1 - p))
            parts = [logits, ops.stack(near, axis=-1)]
            if calibration.context:
                parts.append(self.box_mean(logits))
            h = ops.concatenate(parts, axis=-1)
            for k, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
                h = ops.conv(h, kernel) + bias
                if k < len(self.kernels) - 1:
                    h = ops.relu(h)
            out = ops.sigmoid(ops.clip(h, -30.0, 30.0))
            return ops.where(self.keep, prob, out) if self.keep.any() else out

    return CalibrationHead()


def _numbers(value, path, key: str, ndim: int) -> np.ndarray:
    """A list (ndim 1) or list of equal lists (ndim 2) of finite numbers, else `CalibrationError`."""

    def ok_row(row):
        return (
            isinstance(row, list)
            and row
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row)
        )

    rows = value if ndim == 2 else [value]
    if not (isinstance(rows, list) and rows and all(ok_row(r) for r in rows) and len({len(r) for r in rows}) == 1):
        shape = "a list of equal lists" if ndim == 2 else "a list"
        raise CalibrationError(f"{path}: {key}: expected {shape} of finite numbers, got {str(value)[:80]!r}")
    array = np.array(rows, np.float64)
    return array if ndim == 2 else array[0]


def folder_calibration(folder: Path, classes) -> PixelCalibration | None:
    """A model folder's calibration.yaml, or None when it has none (the network's own outputs are used)."""
    path = Path(folder) / FILE_NAME
    return PixelCalibration.load(path, classes) if path.is_file() else None


class CalibrationFit:
    """Collects pixels from tiles (``add``), then fits a `PixelCalibration` (``fit``).

    A pixel in any class but the common ones (``COMMON_CLASSES``) is always kept;
    of the others a random ``negative_rate`` is kept and weighted by its inverse,
    so the fit sees the tiles' natural class frequencies at a fraction of the memory.
    """

    def __init__(
        self,
        classes,
        *,
        negative_rate: float = 0.03,
        hidden: int = HIDDEN,
        epochs: int = EPOCHS,
        context: int = CONTEXT,
        seed: int = 0,
    ):
        if not 0 < negative_rate <= 1:
            raise ValueError(f"negative_rate must be in (0, 1], got {negative_rate!r}")
        self.classes = tuple(classes)
        self.negative_rate = float(negative_rate)
        self.hidden, self.epochs, self.context, self.seed = int(hidden), int(epochs), int(context), seed
        self.rng = np.random.default_rng(seed)
        self.rare = np.array([c not in COMMON_CLASSES for c in self.classes])
        self.features, self.truth, self.weights = [], [], []
        self.tiles = 0

    def add(self, prob: np.ndarray, x: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> None:
        """One tile: network outputs (n_class, ny, nx), input (ny, nx), truth (n_class, ny, nx), valid (ny, nx)."""
        truth = np.asarray(truth, bool)
        always = truth[self.rare].any(0)
        keep = valid & (always | (self.rng.random(valid.shape) < self.negative_rate))
        features = pixel_features(prob, neighbour_features(x), self.context)
        self.features.append(features[:, keep].T)
        self.truth.append(truth[:, keep].T)
        self.weights.append(np.where(always[keep], 1.0, 1.0 / self.negative_rate).astype(np.float32))
        self.tiles += 1

    def fit(self, progress=None) -> PixelCalibration:
        """The fitted calibration; ``progress(k)`` is called after each epoch."""
        n_features = len(feature_names(self.classes, self.context))
        x = np.concatenate(self.features) if self.features else np.zeros((0, n_features), np.float32)
        y = np.concatenate(self.truth) if self.truth else np.zeros((0, len(self.classes)), bool)
        w = np.concatenate(self.weights) if self.weights else np.zeros(0, np.float32)
        positives = y.sum(0)
        self.skipped = {c: int(n) for c, n in zip(self.classes, positives) if n < MIN_POSITIVES or n == len(y)}
        if len(self.skipped) == len(self.classes):
            return PixelCalibration(self.classes, (), self.classes, self.tiles, self.context)
        layers = train_mlp(x, y, w, hidden=self.hidden, epochs=self.epochs, seed=self.seed, progress=progress)
        # Rounded as calibration.yaml writes them, so the file holds exactly what evaluate.py measured.
        rounded = tuple((np.vectorize(_round6)(wt), np.vectorize(_round6)(b)) for wt, b in layers)
        return PixelCalibration(
            self.classes, rounded, tuple(c for c in self.classes if c in self.skipped), self.tiles, self.context
        )


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    *,
    hidden: int = HIDDEN,
    epochs: int = EPOCHS,
    batch_size: int = 8192,
    learning_rate: float = 1e-2,
    seed: int = 0,
    progress=None,
):
    """Weighted sigmoid cross-entropy fit of a 2-hidden-layer ReLU perceptron, by Adam with a cosine schedule.

    x: (n, n_in) features; y: (n, n_out) 0/1 truth; w: (n,) weights. Returns
    ``((W1, b1), (W2, b2), (W3, b3))`` with W (n_out, n_in), acting on the raw
    features (the standardisation used in training is folded into W1, b1).
    Plain numpy, so the fit is the same under every Keras backend and run to run.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    w = np.asarray(w, np.float32) / np.float32(np.mean(w))
    mean, scale = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / scale
    sizes = [x.shape[1], hidden, hidden, y.shape[1]]
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        limit = math.sqrt(6.0 / n_in)  # He uniform, for ReLU
        params += [rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32), np.zeros(n_out, np.float32)]
    prevalence = np.clip((w[:, None] * y).sum(0) / w.sum(), 1e-6, 1 - 1e-6)
    params[-1] = np.log(prevalence / (1 - prevalence)).astype(np.float32)  # start at the class frequencies
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    steps_per_epoch = max(1, math.ceil(len(x) / batch_size))
    total, step = epochs * steps_per_epoch, 0
    beta1, beta2, eps = 0.9, 0.999, 1e-7
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for first in range(0, len(x), batch_size):
            idx = order[first : first + batch_size]
            grads = _gradients(params, xs[idx], y[idx], w[idx])
            step += 1
            lr = learning_rate * 0.5 * (1 + math.cos(math.pi * (step - 1) / total))
            correction = math.sqrt(1 - beta2**step) / (1 - beta1**step)
            for p, g, (m, v) in zip(params, grads, moments):
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                p -= (lr * correction) * m / (np.sqrt(v) + eps)
        if progress:
            progress(1)
    w1, b1, w2, b2, w3, b3 = (p.astype(np.float64) for p in params)
    w1 = w1 / scale[:, None]
    b1 = b1 - mean @ w1
    return ((w1.T, b1), (w2.T, b2), (w3.T, b3))


def _gradients(params, x, y, w):
    """Gradients of ``mean(w * sum over classes of BCE)`` for a batch."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.maximum(x @ w1 + b1, 0)
    h2 = np.maximum(h1 @ w2 + b2, 0)
    z = np.clip(h2 @ w3 + b3, -30, 30)
    dz = (1 / (1 + np.exp(-z)) - y) * (w / len(x))[:, None]
    dh2 = (dz @ w3.T) * (h2 > 0)
    dh1 = (dh2 @ w2.T) * (h1 > 0)
    return [x.T @ dh1, dh1.sum(0), h1.T @ dh2, dh2.sum(0), h2.T @ dz, dz.sum(0)]
