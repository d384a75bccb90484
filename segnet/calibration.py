"""Pixel calibration: the network's outputs turned into calibrated probabilities, pixel by pixel.

Why a second stage:

- The network is trained on a loss weighted by inverse class frequency, so its
  sigmoid outputs overstate rare classes: they are scores, not probabilities.
- SegNet's decoder sees full resolution only through the pooling switches. On the
  epoch-24 default model, plain noise pixels (no contaminant, 1-3 sigma) got
  single-pixel spikes of hot-pixel probability, p ~ 0.9, about 35 per 256x256 tile.
  A single-pixel class needs the pixel's own contrast, which the decoder has lost.

For every class, a logistic regression maps features of each pixel to the
probability of that class. The features are the logits of all the network's
classes and the pixel's own contrast against its 8 neighbours, in the network's
input units (``asinh((image - background) / sigma)``). It is fitted by maximum
likelihood on validation tiles at their natural class frequencies (``evaluate.py``),
so the result is calibrated. It costs a few array passes per tile, no network.

``calibration.yaml`` in a model's folder holds the coefficients; ``predict.py`` and
``evaluate.py`` apply it when present.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from segnet.run_folder import read_mapping

__all__ = ["PixelCalibration", "CalibrationFit", "CalibrationError", "neighbour_features", "feature_names",
           "folder_calibration", "FILE_NAME"]

FILE_NAME = "calibration.yaml"
P_CLIP = 1e-6            # logits are clipped at +-13.8
MIN_POSITIVES = 20       # fewer positives in the fitting tiles: the class keeps the network's output
NEIGHBOUR_NAMES = ("contrast", "abs_contrast", "brightest_neighbour", "faintest_neighbour", "value")
OWN_NAMES = ("own_logit_x_contrast", "own_logit_x_abs_contrast")


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the key."""


def feature_names(classes) -> list[str]:
    return ["bias", *(f"logit_{c}" for c in classes), *NEIGHBOUR_NAMES, *OWN_NAMES]


def _ring(x: np.ndarray) -> list[np.ndarray]:
    """The 8 neighbours of every pixel, edges extended by reflection about the edge."""
    p = np.pad(x, 1, mode="symmetric")
    ny, nx = x.shape
    return [p[1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def neighbour_features(x: np.ndarray) -> np.ndarray:
    """(5, ny, nx) float32: the pixel against its 8 neighbours, in the input's units.

    contrast = x - mean of the 8 neighbours; its absolute value; the brightest
    neighbour above that mean and the faintest below it (a hot pixel stands alone,
    a cosmic-ray hit has bright neighbours); and x itself.
    """
    x = np.asarray(x, np.float32)
    ring = _ring(x)
    mean = sum(ring) / np.float32(8)
    brightest, faintest = ring[0].copy(), ring[0].copy()
    for r in ring[1:]:
        np.maximum(brightest, r, out=brightest)
        np.minimum(faintest, r, out=faintest)
    contrast = x - mean
    return np.stack([contrast, np.abs(contrast), brightest - mean, mean - faintest, x])


def _round6(v) -> float:
    return float(f"{float(v):.6g}")


def _logits(prob: np.ndarray) -> np.ndarray:
    """float32 ``log(p / (1 - p))``, p clipped to [P_CLIP, 1 - P_CLIP]."""
    p = np.clip(np.asarray(prob, np.float32), P_CLIP, 1 - P_CLIP)
    out = np.subtract(np.float32(1), p)
    np.divide(p, out, out=out)
    return np.log(out, out=out)


@dataclass(frozen=True)
class PixelCalibration:
    """Per-class coefficients over ``feature_names(classes)``; ``apply`` calibrates a tile."""

    classes: tuple[str, ...]
    coefficients: np.ndarray      # (n_class, n_features) float64
    tiles: int = 0                # validation tiles it was fitted on (for the record)

    def __post_init__(self):
        expected = (len(self.classes), len(feature_names(self.classes)))
        if self.coefficients.shape != expected:
            raise CalibrationError(f"coefficients: expected shape {expected}, got {self.coefficients.shape}")

    @classmethod
    def identity(cls, classes) -> "PixelCalibration":
        """Returns the network's probabilities unchanged (a logit's own coefficient is 1)."""
        coef = np.zeros((len(classes), len(feature_names(classes))))
        for k in range(len(classes)):
            coef[k, 1 + k] = 1.0
        return cls(tuple(classes), coef)

    def apply(self, prob: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, (n_class, ny, nx) float32.

        prob: the network's (n_class, ny, nx) outputs; x: its (ny, nx) input.
        """
        return self.apply_near(prob, neighbour_features(x))

    def apply_batch(self, prob: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``apply`` to a batch: prob (b, n_class, ny, nx), x (b, ny, nx)."""
        return np.stack([self.apply(p, xi) for p, xi in zip(prob, x)])

    def apply_near(self, prob: np.ndarray, near: np.ndarray) -> np.ndarray:
        """``apply`` with the input's ``neighbour_features`` given (cut from a larger window's)."""
        prob = np.asarray(prob)
        n = len(self.classes)
        if prob.ndim != 3 or prob.shape[0] != n or near.shape != (len(NEIGHBOUR_NAMES),) + prob.shape[1:]:
            raise ValueError(f"expected prob (n_class={n}, ny, nx) and an input (ny, nx), got {prob.shape} and "
                             f"{near.shape[1:]}")
        logits = _logits(prob)
        shared = np.concatenate([logits, near]).reshape(n + len(NEIGHBOUR_NAMES), -1)
        coef = self.coefficients.astype(np.float32)
        z = (coef[:, 1:1 + n + len(NEIGHBOUR_NAMES)] @ shared).reshape(prob.shape)  # one BLAS call
        z += coef[:, :1, None]
        # The own-logit interactions: class k's logit times the contrast and its absolute value.
        logits *= coef[:, -2, None, None] * near[0] + coef[:, -1, None, None] * near[1]
        z += logits
        np.clip(z, -30.0, 30.0, out=z)
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1.0
        return np.reciprocal(z, out=z)

    # --- File form.
    def save(self, path: Path, *, note: str = "") -> None:
        names = feature_names(self.classes)
        data = {"tiles": int(self.tiles), "features": names,
                "classes": {c: [_round6(v) for v in row] for c, row in zip(self.classes, self.coefficients)}}
        header = ("# Pixel calibration (segnet/calibration.py): per class, the coefficients of a logistic\n"
                  "# regression over the features below, fitted by maximum likelihood on validation tiles.\n")
        if note:
            header += "".join(f"# {line}\n" for line in note.splitlines())
        Path(path).write_text(header + yaml.safe_dump(data, sort_keys=False, width=1000))

    @classmethod
    def load(cls, path: Path, classes) -> "PixelCalibration":
        """Read ``path`` for a model predicting ``classes``; `CalibrationError` names what is wrong."""
        try:
            data = read_mapping(path, "calibration")
        except ValueError as exc:
            raise CalibrationError(str(exc)) from None
        rows = data.get("classes")
        if not isinstance(rows, dict) or list(rows) != list(classes):
            got = list(rows) if isinstance(rows, dict) else rows
            raise CalibrationError(f"{path}: classes: expected {list(classes)} (the model's), got {got!r}")
        names = feature_names(classes)
        if data.get("features") != names:
            raise CalibrationError(f"{path}: features: expected {names}, got {data.get('features')!r}")
        coef = []
        for c, row in rows.items():
            ok = isinstance(row, list) and len(row) == len(names) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row)
            if not ok:
                raise CalibrationError(f"{path}: classes.{c}: expected {len(names)} finite numbers, got {row!r}")
            coef.append([float(v) for v in row])
        tiles = data.get("tiles", 0)
        return cls(tuple(classes), np.array(coef), int(tiles) if isinstance(tiles, int) else 0)


def folder_calibration(folder: Path, classes) -> PixelCalibration | None:
    """A model folder's calibration.yaml, or None when it has none (the network's own outputs are used)."""
    path = Path(folder) / FILE_NAME
    return PixelCalibration.load(path, classes) if path.is_file() else None


class CalibrationFit:
    """Collects pixels from tiles (``add``), then fits a `PixelCalibration` (``fit``).

    Every positive pixel of a class is kept for that class, and a random
    ``negative_rate`` of the others, weighted by its inverse, so the fit sees the
    tiles' natural class frequencies at a fraction of the memory.
    """

    def __init__(self, classes, *, negative_rate: float = 0.03, max_positives: int = 300_000, seed: int = 0):
        if not 0 < negative_rate <= 1:
            raise ValueError(f"negative_rate must be in (0, 1], got {negative_rate!r}")
        self.classes = tuple(classes)
        self.negative_rate = float(negative_rate)
        self.max_positives = int(max_positives)
        self.rng = np.random.default_rng(seed)
        self.rows = {c: [] for c in self.classes}
        self.tiles = 0

    def add(self, prob: np.ndarray, x: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> None:
        """One tile: network outputs (n_class, ny, nx), input (ny, nx), truth (n_class, ny, nx), valid (ny, nx)."""
        logits = _logits(prob)
        near = neighbour_features(x)
        shared = np.concatenate([logits, near])
        sampled = valid & (self.rng.random(valid.shape) < self.negative_rate)
        for k, c in enumerate(self.classes):
            t = truth[k].astype(bool)
            keep = (valid & t) | (sampled & ~t)
            own = logits[k][keep]
            cols = [shared[:, keep], (own * near[0][keep])[None], (own * near[1][keep])[None]]
            self.rows[c].append(np.concatenate([np.concatenate(cols).T, t[keep][:, None]], 1).astype(np.float32))
        self.tiles += 1

    def fit(self) -> PixelCalibration:
        coef = PixelCalibration.identity(self.classes).coefficients
        self.skipped = {}
        for k, c in enumerate(self.classes):
            rows = np.concatenate(self.rows[c]) if self.rows[c] else np.zeros((0, coef.shape[1]), np.float32)
            y = rows[:, -1].astype(np.float64)
            n_pos = int(y.sum())
            if n_pos < MIN_POSITIVES or n_pos == len(y):
                self.skipped[c] = n_pos
                continue
            w = np.where(y > 0, 1.0, 1.0 / self.negative_rate)
            if n_pos > self.max_positives:  # keep memory and time bounded; reweight what is kept
                pos = np.nonzero(y > 0)[0]
                drop = self.rng.choice(pos, n_pos - self.max_positives, replace=False)
                keep = np.ones(len(y), bool)
                keep[drop] = False
                w[y > 0] *= n_pos / self.max_positives
                rows, y, w = rows[keep], y[keep], w[keep]
            features = np.concatenate([np.ones((len(y), 1)), rows[:, :-1].astype(np.float64)], 1)
            coef[k] = fit_logistic(features, y, w, start=coef[k])
        # Rounded as calibration.yaml writes them, so the file holds exactly what evaluate.py measured.
        return PixelCalibration(self.classes, np.vectorize(_round6)(coef), self.tiles)


def fit_logistic(features: np.ndarray, y: np.ndarray, w: np.ndarray, *, start=None, ridge: float = 1e-4,
                 iterations: int = 50) -> np.ndarray:
    """Weighted logistic regression by Newton's method with step halving (a small ridge keeps it defined).

    Minimises ``sum w * BCE(y, sigmoid(features @ beta)) / sum(w) + ridge/2 * |beta[1:]|^2``.
    """
    beta = np.zeros(features.shape[1]) if start is None else np.array(start, np.float64)
    w = w / w.sum()
    penalty = np.full(len(beta), ridge)
    penalty[0] = 0.0

    def loss(b):
        z = features @ b
        return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(penalty * b * b))

    current = loss(beta)
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(-np.clip(features @ beta, -30, 30)))
        grad = features.T @ (w * (q - y)) + penalty * beta
        hess = (features * (w * q * (1 - q))[:, None]).T @ features + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-4:
            trial = beta - scale * step
            value = loss(trial)
            if value <= current:
                break
            scale /= 2
        else:
            break
        beta, previous, current = trial, current, value
        if previous - current < 1e-10:
            break
    return beta
