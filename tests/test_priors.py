"""Class proportions of a frame estimated from its calibrated probabilities (segnet/serving/priors.py)."""

import numpy as np
import pytest

from segnet.serving.priors import PriorEstimator


def calibrated_frame(truth_priors, train_prior, shape, separation, seed=0):
    """Probabilities that are calibrated for ``train_prior``, on pixels drawn with ``truth_priors``.

    Each class: labels with its true proportion, a unit-Gaussian score shifted by ``separation``
    on positives, and the posterior that a model calibrated at ``train_prior`` would give.
    """
    rng = np.random.default_rng(seed)
    planes = []
    for pi in truth_priors:
        label = rng.random(shape) < pi
        score = rng.standard_normal(shape) + separation * label
        likelihood_ratio = np.exp(separation * score - separation**2 / 2)  # f1(s) / f0(s)
        odds = likelihood_ratio * train_prior / (1 - train_prior)
        planes.append((odds / (1 + odds)).astype(np.float32))
    return np.stack(planes)


@pytest.mark.parametrize("separation", [4.0, 6.0])
def test_em_recovers_proportions_from_1e5_to_1e1_within_a_factor_of_2(separation):
    truth = np.array([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    prob = calibrated_frame(truth, 0.02, (2000, 2000), separation)
    estimator = PriorEstimator(len(truth))
    for y in range(0, 2000, 500):  # strips, as prediction feeds it
        estimator.update(prob[:, y : y + 500])
    got = estimator.estimate(np.full(len(truth), 0.02))
    assert np.all(got / truth < 2) and np.all(got / truth > 0.5), got
    naive = prob.reshape(len(truth), -1).mean(axis=1)  # the training prior's probabilities, unadjusted
    assert naive[0] / truth[0] > 10  # what EM corrects: a rare class overstated by the training prior


def test_estimate_ignores_invalid_pixels_and_keeps_the_prior_without_pixels():
    prob = calibrated_frame([1e-2], 0.02, (400, 400), 6.0, seed=1)
    valid = np.ones((400, 400), bool)
    valid[:, 200:] = False
    noisy = prob.copy()
    noisy[0][~valid] = 1.0  # junk where the input was not finite
    estimator = PriorEstimator(1)
    estimator.update(noisy, valid)
    assert estimator.n_pixels == valid.sum()
    assert 0.5 < estimator.estimate([0.02])[0] / 1e-2 < 2
    assert PriorEstimator(2).estimate([0.02, 0.3]).tolist() == [0.02, 0.3]
