"""Per-class detection metrics, accumulated in a streaming way.

For every class, histograms over ``n_bins`` bins of probability are kept
for the positive pixels, the negative pixels, and the positive pixels after a
3x3 dilation of the prediction (the 3x3 maximum of the probability), plus the
sum of probabilities per bin (for calibration). Thousands of frames thus
evaluate in memory that does not grow with their number, and every figure
below is read from the histograms:

- the ROC curve and its AUC;
- the true-positive rate at fixed false-positive rates (0.01 %, 0.1 %, 0.5 %),
  and the same with the prediction dilated 3x3, the false-positive rate being
  that of the undilated prediction (deepCR's convention);
- precision at 95 % recall;
- the threshold that maximises the Matthews correlation coefficient, and that MCC;
- a reliability curve and the expected calibration error.

A threshold ``t`` flags a pixel when its probability is ``>= t``; thresholds are
bin edges, so results are exact up to the bin width. By default the edges are
evenly spaced in logit (``spacing="logit"``, 10 000 bins over logits -16 to 16:
0.07 % of p near 0.5, and 1e-7 is still told from 1e-6), because calibrated
probabilities of rare classes crowd near 0, where bins of even width in p would
tie most pixels and understate the AUC. ``spacing="linear"`` gives bins of even width.
Evaluators yield ``(name, value)`` rows; printing is left to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FPR_POINTS = (1e-4, 1e-3, 5e-3)
RECALL_FOR_PRECISION = 0.95


LOGIT_RANGE = 16.0
SPACINGS = ("logit", "linear")


def bin_edges(n_bins: int, spacing: str = "logit") -> np.ndarray:
    """The ``n_bins + 1`` thresholds: 0, then edges rising to 1."""
    if spacing == "linear":
        return np.arange(n_bins + 1) / n_bins
    if spacing == "logit":
        inner = 1.0 / (1.0 + np.exp(-np.linspace(-LOGIT_RANGE, LOGIT_RANGE, n_bins - 1)))
        return np.concatenate([[0.0], inner, [1.0]])
    raise ValueError(f"spacing: expected one of {SPACINGS}, got {spacing!r}")


def bin_index(p: np.ndarray, edges: np.ndarray) -> np.ndarray:
    n_bins = len(edges) - 1
    return np.clip(np.searchsorted(edges, np.asarray(p, np.float64), side="right") - 1, 0, n_bins - 1)


def dilate3x3(prob: np.ndarray) -> np.ndarray:
    """3x3 maximum filter over the last two axes (a dilated mask at any threshold)."""
    size = (1,) * (prob.ndim - 2) + (3, 3)
    return ndimage.maximum_filter(prob, size=size, mode="nearest")


@dataclass
class Counts:
    """Histograms of one class (length n_bins each)."""

    pos: np.ndarray
    neg: np.ndarray
    pos_dilated: np.ndarray
    prob_sum: np.ndarray

    @classmethod
    def empty(cls, n_bins: int) -> "Counts":
        z = lambda dtype: np.zeros(n_bins, dtype)  # noqa: E731
        return cls(z(np.int64), z(np.int64), z(np.int64), z(np.float64))

    def __iadd__(self, other: "Counts") -> "Counts":
        self.pos += other.pos
        self.neg += other.neg
        self.pos_dilated += other.pos_dilated
        self.prob_sum += other.prob_sum
        return self


class ClassMetrics:
    """Streaming accumulator for several classes.

    Parameters
    ----------
    class_names : names of the classes, in the order of the probability planes.
    n_bins : probability bins (default 10 000).
    spacing : "logit" (default) or "linear", see the module's docstring.
    """

    def __init__(self, class_names, n_bins: int = 10_000, spacing: str = "logit"):
        self.class_names = tuple(class_names)
        self.n_bins = int(n_bins)
        self.edges = bin_edges(self.n_bins, spacing)
        self.counts = {name: Counts.empty(self.n_bins) for name in self.class_names}

    def update(self, prob: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add frames.

        Parameters
        ----------
        prob : (n_class, ny, nx) or (b, n_class, ny, nx) float, probabilities in [0, 1].
        truth : same shape, bool.
        valid : pixels to count (default all): (ny, nx) or (b, ny, nx) bool, the same for every
            class, or shaped like ``prob``, one map per class.
        """
        prob = np.asarray(prob)
        truth = np.asarray(truth, bool)
        if prob.ndim == 3:
            prob, truth = prob[None], truth[None]
            valid = None if valid is None else np.asarray(valid)[None]
        if prob.shape != truth.shape or prob.ndim != 4 or prob.shape[1] != len(self.class_names):
            raise ValueError(
                f"prob and truth must be (b, {len(self.class_names)}, ny, nx) alike, got {prob.shape} and {truth.shape}"
            )
        if valid is None:
            valid = np.ones(prob.shape[:1] + prob.shape[2:], bool)
        valid = np.asarray(valid, bool)
        per_class = valid.shape == prob.shape
        dilated = dilate3x3(prob)
        n = self.n_bins
        for k, name in enumerate(self.class_names):
            keep = valid[:, k] if per_class else valid
            p, t, d = prob[:, k][keep], truth[:, k][keep], dilated[:, k][keep]
            idx = bin_index(p, self.edges)
            c = self.counts[name]
            c.pos += np.bincount(idx[t], minlength=n)
            c.neg += np.bincount(idx[~t], minlength=n)
            c.pos_dilated += np.bincount(bin_index(d[t], self.edges), minlength=n)
            c.prob_sum += np.bincount(idx, weights=p, minlength=n)

    def merge(self, other: "ClassMetrics") -> "ClassMetrics":
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge metrics kept over different bins")
        for name in self.class_names:
            self.counts[name] += other.counts[name]
        return self

    def summary(self, name: str) -> "ClassSummary":
        return ClassSummary(self.counts[name], self.edges)


class ClassSummary:
    """Figures of one class, read from its histograms."""

    def __init__(self, counts: Counts, edges: np.ndarray):
        self.c = counts
        self.n_bins = len(edges) - 1
        # Pixels flagged at threshold edge i (probability >= edges[i]), i = 0 .. n_bins.
        tail = lambda h: np.concatenate([np.cumsum(h[::-1])[::-1], [0]])  # noqa: E731
        self.tp = tail(counts.pos).astype(np.float64)
        self.fp = tail(counts.neg).astype(np.float64)
        self.tp_dilated = tail(counts.pos_dilated).astype(np.float64)
        self.n_pos = float(counts.pos.sum())
        self.n_neg = float(counts.neg.sum())
        self.thresholds = edges

    @property
    def tpr(self):
        return self.tp / self.n_pos if self.n_pos else np.full_like(self.tp, np.nan)

    @property
    def fpr(self):
        return self.fp / self.n_neg if self.n_neg else np.full_like(self.fp, np.nan)

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fpr, tpr, thresholds), from (1, 1) at threshold 0 down to (0, 0)."""
        return self.fpr, self.tpr, self.thresholds

    def auc(self) -> float:
        if not (self.n_pos and self.n_neg):
            return float("nan")
        fpr, tpr = self.fpr[::-1], self.tpr[::-1]
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))

    def threshold_at_fpr(self, target: float) -> int:
        """Index of the lowest threshold whose false-positive rate is <= target."""
        ok = np.flatnonzero(self.fpr <= target)
        return int(ok[0]) if ok.size else self.n_bins

    def tpr_at_fpr(self, target: float, *, dilated: bool = False) -> float:
        if not (self.n_pos and self.n_neg):
            return float("nan")
        i = self.threshold_at_fpr(target)
        return float((self.tp_dilated if dilated else self.tp)[i] / self.n_pos)

    def precision_at_recall(self, recall: float = RECALL_FOR_PRECISION) -> float:
        """Best precision among thresholds whose recall is >= ``recall``."""
        if not self.n_pos:
            return float("nan")
        ok = self.tpr >= recall
        flagged = self.tp + self.fp
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(flagged > 0, self.tp / flagged, np.nan)
        candidates = precision[ok & (flagged > 0)]
        return float(np.nanmax(candidates)) if candidates.size else float("nan")

    def mcc_curve(self) -> np.ndarray:
        tp, fp = self.tp, self.fp
        fn, tn = self.n_pos - tp, self.n_neg - fp
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, (tp * tn - fp * fn) / denom, 0.0)

    def best_mcc(self) -> tuple[float, float]:
        """(threshold, MCC) maximising the Matthews correlation coefficient."""
        mcc = self.mcc_curve()
        i = int(np.argmax(mcc))
        return float(self.thresholds[i]), float(mcc[i])

    def mcc_at(self, threshold: float) -> float:
        """MCC at the first edge at or above ``threshold`` (the flags ``p >= threshold`` give, to a bin)."""
        i = int(np.searchsorted(self.thresholds, threshold, side="left"))
        return float(self.mcc_curve()[min(i, self.n_bins)])

    def reliability(self, n_groups: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean predicted probability, observed positive fraction, pixel count) in ``n_groups`` equal ranges of p."""
        group = np.minimum((self.thresholds[:-1] * n_groups).astype(int), n_groups - 1)  # each bin's range
        pos = np.bincount(group, self.c.pos, minlength=n_groups)
        count = pos + np.bincount(group, self.c.neg, minlength=n_groups)
        psum = np.bincount(group, self.c.prob_sum, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, psum / count, np.nan), np.where(count > 0, pos / count, np.nan), count

    def expected_calibration_error(self, n_groups: int = 20) -> float:
        conf, freq, count = self.reliability(n_groups)
        ok = count > 0
        return float(np.sum(count[ok] * np.abs(conf[ok] - freq[ok])) / max(count.sum(), 1))

    def rows(self):
        """(name, value) rows: what evaluate.py tabulates."""
        yield "AUC", self.auc()
        for f in FPR_POINTS:
            yield f"TPR@{f * 100:g}%FPR", self.tpr_at_fpr(f)
        for f in FPR_POINTS:
            yield f"TPR3x3@{f * 100:g}%FPR", self.tpr_at_fpr(f, dilated=True)
        yield "precision@95%recall", self.precision_at_recall()
        threshold, mcc = self.best_mcc() if self.n_pos and self.n_neg else (float("nan"), float("nan"))
        yield "best MCC", mcc
        yield "MCC threshold", threshold
        yield "ECE", self.expected_calibration_error()
        yield "positives", self.n_pos
        yield "pixels", self.n_pos + self.n_neg


LOGIT_SCALE = 8.0  # see spread()


def spread(p):
    """A monotone map of [0, 1] onto itself that keeps probabilities from 1e-9 to 1 - 1e-9 apart.

    ``sigmoid(logit(p) / 8)``: even bins step by 1e-4 and logit-spaced ones stop at 1e-7,
    and MaxiMask's prior-modified probabilities of rare classes live far below both. Scores
    passed through it keep their ranking; thresholds are mapped back by `unspread`.
    """
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        z = np.log(p) - np.log1p(-p)
        return np.where(p <= 0, 0.0, np.where(p >= 1, 1.0, 1.0 / (1.0 + np.exp(-z / LOGIT_SCALE))))


def unspread(q):
    """Inverse of `spread`."""
    q = np.asarray(q, np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        z = np.log(q) - np.log1p(-q)
        return np.where(q <= 0, 0.0, np.where(q >= 1, 1.0, 1.0 / (1.0 + np.exp(-z * LOGIT_SCALE))))


def adjust_priors(prob: np.ndarray, train_fraction, target_fraction) -> np.ndarray:
    """Move probabilities from the training class proportions to expected ones (Bayes' rule).

    A sigmoid output p estimates P(class | x) under the training prior pi; under a
    prior pi' the posterior odds scale by the prior odds ratio:
    ``odds' = odds * (pi' / (1 - pi')) / (pi / (1 - pi))``.

    Parameters
    ----------
    prob : (..., ) probabilities of one class, or (n_class, ny, nx) with per-class fractions.
    train_fraction, target_fraction : scalars, or one value per class (leading axis of ``prob``).

    Returns
    -------
    Adjusted probabilities, same shape and dtype; identity when the fractions are equal.
    """
    prob = np.asarray(prob)
    pi = np.asarray(train_fraction, np.float64)
    pi_new = np.asarray(target_fraction, np.float64)
    for name, value in (("train_fraction", pi), ("target_fraction", pi_new)):
        if np.any((value <= 0) | (value >= 1)):
            raise ValueError(f"{name}: fractions must lie in (0, 1), got {value.tolist()}")
    ratio = (pi_new / (1 - pi_new)) / (pi / (1 - pi))
    if ratio.ndim == 1:
        ratio = ratio.reshape((-1,) + (1,) * (prob.ndim - 1))
    p = prob.astype(np.float64)
    adjusted = p * ratio / (p * ratio + (1 - p))
    return adjusted.astype(prob.dtype)
