"""Streaming metrics against hand-computed answers."""

import numpy as np
import pytest

from segnet.evaluation.metrics import ClassMetrics, adjust_priors, dilate3x3


def one_class(prob, truth, n_bins=1000, spacing="linear"):
    m = ClassMetrics(["X"], n_bins=n_bins, spacing=spacing)
    prob = np.asarray(prob, np.float64).reshape(1, 1, 1, -1)
    m.update(prob, np.asarray(truth, bool).reshape(prob.shape))
    return m.summary("X")


def centred(i, n=1000):
    """Probability at the centre of bin i (no rounding doubts at the edges)."""
    return (np.asarray(i) + 0.5) / n


def test_auc_by_hand():
    # The textbook case: of the 4 positive-negative pairs, 3 are ranked right.
    s = one_class(centred([100, 400, 350, 800]), [0, 0, 1, 1])
    assert s.auc() == pytest.approx(0.75)
    perfect = one_class(centred([100, 200, 700, 900]), [0, 0, 1, 1])
    assert perfect.auc() == pytest.approx(1.0)
    tied = one_class(centred([500, 500]), [0, 1])  # a tie counts one half
    assert tied.auc() == pytest.approx(0.5)


def test_tpr_at_fixed_fpr_by_hand():
    negatives = centred(np.arange(1000))  # one negative in every bin
    positives = centred([999, 996, 990, 500])
    s = one_class(np.concatenate([negatives, positives]), [0] * 1000 + [1] * 4)
    # FPR <= 0.5 %: at most 5 negatives flagged -> threshold 0.995; positives >= it: 999, 996.
    assert s.tpr_at_fpr(5e-3) == pytest.approx(0.5)
    # FPR <= 0.1 %: one negative -> threshold 0.999; positives >= it: 999.
    assert s.tpr_at_fpr(1e-3) == pytest.approx(0.25)
    # FPR <= 0.01 %: no negative at all -> threshold 1; nothing flagged.
    assert s.tpr_at_fpr(1e-4) == 0.0


def test_dilated_tpr_uses_the_undilated_fpr():
    prob = np.zeros((1, 1, 5, 5))
    truth = np.zeros((1, 1, 5, 5), bool)
    prob[0, 0, 2, 2] = centred(900)  # a confident pixel...
    truth[0, 0, 2, 2] = truth[0, 0, 2, 3] = True  # ...and a missed positive next to it
    prob[0, 0, 0, 0] = centred(800)  # one false positive far away (1 of 23 negatives)
    m = ClassMetrics(["X"], n_bins=1000, spacing="linear")
    m.update(prob, truth)
    s = m.summary("X")
    assert s.tpr_at_fpr(0.0) == pytest.approx(0.5)  # threshold above the false positive
    assert s.tpr_at_fpr(0.0, dilated=True) == pytest.approx(1.0)  # the 3x3 dilation reaches (2, 3)
    assert s.fpr[int(np.ceil(0.8 * 1000))] == pytest.approx(1 / 23)
    np.testing.assert_array_equal(dilate3x3(prob)[0, 0, 1:4, 1:4], centred(900))


def test_mcc_and_its_best_threshold_by_hand():
    s = one_class([0.25, 0.65, 0.75, 0.95], [0, 0, 1, 1], n_bins=10)
    threshold, mcc = s.best_mcc()
    assert mcc == pytest.approx(1.0) and threshold == pytest.approx(0.7)
    # At 0.6: TP 2, FP 1, TN 1, FN 0 -> (2*1 - 1*0) / sqrt(3 * 2 * 2 * 1) = 2 / sqrt(12).
    assert s.mcc_at(0.6) == pytest.approx(2 / np.sqrt(12))
    # At 0.8: TP 1, FP 0, TN 2, FN 1 -> 2 / sqrt(1 * 2 * 2 * 3).
    assert s.mcc_at(0.8) == pytest.approx(2 / np.sqrt(12))


def test_precision_at_recall_by_hand():
    # Positives 0.95, 0.85, 0.15; negatives 0.9, 0.5. Recall >= 95 % needs all three positives:
    # threshold <= 0.1 flags everything (3/5); 0.2 drops the 0.15 positive.
    s = one_class([0.95, 0.85, 0.15, 0.9, 0.5], [1, 1, 1, 0, 0], n_bins=10)
    assert s.precision_at_recall(0.95) == pytest.approx(3 / 5)
    assert s.precision_at_recall(0.6) == pytest.approx(2 / 3)  # threshold 0.8: 0.95, 0.85, 0.9


def test_logit_bins_tell_tiny_probabilities_apart():
    # Calibrated probabilities of a rare class: negatives near 1e-7, positives near 1e-5.
    prob = np.concatenate([np.full(1000, 1e-7), np.full(10, 1e-5)])
    truth = [0] * 1000 + [1] * 10
    assert one_class(prob, truth, n_bins=10_000).auc() == pytest.approx(0.5)  # even bins: one tied bin
    logit = one_class(prob, truth, n_bins=10_000, spacing="logit")
    assert logit.auc() == pytest.approx(1.0)
    threshold, mcc = logit.best_mcc()
    assert mcc == pytest.approx(1.0) and 1e-7 < threshold <= 1e-5
    assert logit.mcc_at(threshold) == pytest.approx(1.0)
    assert logit.thresholds[0] == 0.0 and logit.thresholds[-1] == 1.0
    assert np.all(np.diff(logit.thresholds) > 0)
    with pytest.raises(ValueError, match="spacing: expected one of"):
        ClassMetrics(["X"], spacing="log")


def test_reliability_and_calibration_error():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    truth = rng.uniform(0, 1, p.size) < p
    calibrated = one_class(p, truth)
    assert calibrated.expected_calibration_error() < 0.01
    assert one_class(p, truth, n_bins=10_000, spacing="logit").expected_calibration_error() < 0.01
    overconfident = one_class(np.full(1000, centred(899)), np.arange(1000) % 2 == 0)
    assert overconfident.expected_calibration_error() == pytest.approx(0.8995 - 0.5)
    conf, freq, count = overconfident.reliability(10)
    assert count.sum() == 1000 and freq[8] == pytest.approx(0.5) and np.isnan(freq[0])


def test_streaming_equals_one_shot():
    rng = np.random.default_rng(1)
    prob = rng.uniform(0, 1, (6, 2, 16, 16))
    truth = rng.uniform(0, 1, prob.shape) < prob**3
    whole = ClassMetrics(["A", "B"])
    whole.update(prob, truth)
    parts = [ClassMetrics(["A", "B"]) for _ in range(3)]
    for i, part in enumerate(parts):
        for b in range(2 * i, 2 * i + 2):
            part.update(prob[b], truth[b])  # one frame at a time
    streamed = parts[0].merge(parts[1]).merge(parts[2])
    for name in ("A", "B"):
        a, b = whole.summary(name), streamed.summary(name)
        assert dict(a.rows()) == dict(b.rows())
    # And the AUC agrees with the rank statistic computed directly.
    p, t = prob[:, 0].ravel(), truth[:, 0].ravel()
    pos, neg = p[t], p[~t]
    direct = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
    assert whole.summary("A").auc() == pytest.approx(direct, abs=1e-3)  # 1e-4 bins


def test_update_checks_shapes():
    m = ClassMetrics(["A", "B"])
    with pytest.raises(ValueError, match=r"must be \(b, 2, ny, nx\)"):
        m.update(np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 4, 4), bool))


def test_prior_adjustment_known_answer_and_identity():
    # p = 0.5 under a 10 % prior, moved to a 50 % prior: odds x 9 -> 0.9.
    assert adjust_priors(np.array([0.5]), 0.1, 0.5)[0] == pytest.approx(0.9)
    # And back again.
    assert adjust_priors(np.array([0.9]), 0.5, 0.1)[0] == pytest.approx(0.5)
    p = np.random.default_rng(2).uniform(0, 1, (2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(adjust_priors(p, [0.01, 0.2], [0.01, 0.2]), p, rtol=1e-6)
    shifted = adjust_priors(p, [0.01, 0.2], [0.02, 0.2])
    assert np.all(shifted[0] >= p[0]) and np.allclose(shifted[1], p[1], rtol=1e-6)
    assert shifted.dtype == np.float32
    with pytest.raises(ValueError, match="target_fraction: fractions must lie in"):
        adjust_priors(p, 0.1, 1.0)


def test_valid_pixels_may_differ_per_class():
    """A saturated pixel counts for SAT but not for CR: one valid map per class."""
    rng = np.random.default_rng(0)
    prob = rng.random((2, 8, 8)).astype(np.float32)
    truth = rng.random((2, 8, 8)) < 0.3
    valid = np.ones((2, 8, 8), bool)
    valid[0, :4] = False  # CR not known in the top half
    per_class = ClassMetrics(["CR", "SAT"])
    per_class.update(prob, truth, valid)
    cr_only = ClassMetrics(["CR"])
    cr_only.update(prob[:1], truth[:1], valid[0])
    sat_only = ClassMetrics(["SAT"])
    sat_only.update(prob[1:], truth[1:])
    assert per_class.summary("CR").n_pos == cr_only.summary("CR").n_pos == int(truth[0, 4:].sum())
    assert per_class.summary("CR").auc() == cr_only.summary("CR").auc()
    assert per_class.summary("SAT").n_pos + per_class.summary("SAT").n_neg == 64
    assert per_class.summary("SAT").auc() == sat_only.summary("SAT").auc()
