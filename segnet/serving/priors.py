"""Class proportions estimated from a frame's own probabilities (``predict.py --priors auto``).

The calibrated probabilities are those of the simulator's class proportions (the
training prior, ``class_fractions.yaml``); a real frame has its own, often far
smaller for cosmic rays. Following Saerens, Latinne & Decaestecker (2002,
"Adjusting the outputs of a classifier to new a priori probabilities"), the
frame's proportion of each class is found by expectation-maximisation: move the
probabilities to a guessed prior by Bayes' rule (``metrics.adjust_priors``), take
their mean over the frame as the next guess, repeat until it settles. Each class
is a binary problem of its own (one sigmoid per class). The pixels are first
binned by probability (logit-spaced bins, each keeping its count and its mean
probability), so every iteration costs the bins, not the pixels, and a frame is
read once, a strip at a time.
"""

from __future__ import annotations

import numpy as np

from segnet.evaluation.metrics import adjust_priors, bin_edges, bin_index

N_BINS = 4096
MIN_PRIOR = 1e-9
MAX_ITERATIONS = 500
TOLERANCE = 1e-4  # relative change of every class's prior


class PriorEstimator:
    """Histograms of one frame's probabilities, then the EM estimate of its class proportions.

    Parameters
    ----------
    n_class : number of probability planes.
    n_bins : probability bins (logit-spaced, ``segnet.evaluation.metrics.bin_edges``).
    """

    def __init__(self, n_class: int, n_bins: int = N_BINS):
        self.edges = bin_edges(n_bins, "logit")
        self.counts = np.zeros((n_class, n_bins), np.float64)
        self.sums = np.zeros((n_class, n_bins), np.float64)

    def update(self, prob: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add pixels: ``prob`` (n_class, h, w) in [0, 1]; ``valid`` (h, w) bool or None (all)."""
        n_bins = self.counts.shape[1]
        for k, plane in enumerate(prob):
            p = np.asarray(plane if valid is None else plane[valid], np.float64).ravel()
            index = bin_index(p, self.edges)
            self.counts[k] += np.bincount(index, minlength=n_bins)
            self.sums[k] += np.bincount(index, weights=p, minlength=n_bins)

    @property
    def n_pixels(self) -> float:
        return float(self.counts[0].sum()) if len(self.counts) else 0.0

    def estimate(self, train_fraction) -> np.ndarray:
        """(n_class,) class proportions of the frame, starting from ``train_fraction`` (the training prior)."""
        train = np.asarray(train_fraction, np.float64)
        if not self.n_pixels:
            return train.copy()
        filled = self.counts > 0
        mean_p = np.where(filled, self.sums / np.maximum(self.counts, 1), 0.0)
        prior = train.copy()
        for _ in range(MAX_ITERATIONS):
            adjusted = adjust_priors(mean_p, train[:, None], prior[:, None])
            new = np.clip((adjusted * self.counts).sum(axis=1) / self.counts.sum(axis=1), MIN_PRIOR, 1 - MIN_PRIOR)
            done = np.all(np.abs(new - prior) <= TOLERANCE * prior)
            prior = new
            if done:
                break
        return prior
