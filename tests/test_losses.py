"""Class weights, weight maps and the weighted loss, on hand-computed cases."""

import math

import keras
import numpy as np
import pytest

from segnet.training.losses import (
    WeightedSigmoidCrossEntropy,
    class_weights_from_fractions,
    pack_targets,
    weight_map,
)

# Normalised 1-D Gaussian, sigma 1 px, on (-1, 0, 1): (A, B, A) with
# A = exp(-1/2) / (1 + 2 exp(-1/2)) = 0.274068619..., B = 1 / (1 + 2 exp(-1/2)) = 0.451862762...
# The 3x3 kernel is its outer product: corners A*A, edges A*B, centre B*B.
AA, AB, BB = 0.0751136080, 0.1238414032, 0.2041799556


def test_class_weights_are_inverse_fractions_with_unit_mean():
    fractions = {"CR": 0.01, "HCL": 0.04, "OBJ": 0.2}  # OBJ: not a class of this model
    class_w, background_w = class_weights_from_fractions(fractions, ["HCL", "CR"], background_fraction=0.95)
    # Raw weights 1/f: HCL 25, CR 100, background 1/0.95; mean weight
    # 0.04*25 + 0.01*100 + 0.95/0.95 = 3, so all are divided by 3.
    np.testing.assert_allclose(class_w, [25 / 3, 100 / 3], rtol=1e-6)
    assert background_w == pytest.approx(1 / (0.95 * 3))
    assert class_w.dtype == np.float32


def test_background_fraction_defaults_to_the_rest():
    class_w, background_w = class_weights_from_fractions({"CR": 0.1, "HCL": 0.3}, ["CR", "HCL"])
    # background 0.6; raw 10, 10/3, 1/0.6; mean 3 -> divided by 3.
    np.testing.assert_allclose(class_w, [10 / 3, 10 / 9], rtol=1e-6)
    assert background_w == pytest.approx(1 / 1.8)


@pytest.mark.parametrize(
    "fractions, kwargs, error, match",
    [
        ({"CR": 0.1}, {}, KeyError, "HCL"),
        ({"CR": 0.1, "HCL": 0.0}, {}, ValueError, "HCL"),
        ({"CR": 0.6, "HCL": 0.5}, {}, ValueError, "background_fraction"),
    ],
)
def test_class_weights_reject_bad_fractions(fractions, kwargs, error, match):
    with pytest.raises(error, match=match):
        class_weights_from_fractions(fractions, ["CR", "HCL"], **kwargs)


def _one_hit(classes=(0,), n_class=2):
    """3x3 image, one batch, only the centre pixel in ``classes``."""
    truth = np.zeros((1, 3, 3, n_class), bool)
    truth[0, 1, 1, list(classes)] = True
    return truth


def test_weight_map_by_hand():
    # Background 1, the centre 10. Smoothing with reflection at the border:
    # corner 1 + 9*AA, edge 1 + 9*AB, centre 1 + 9*BB.
    w = weight_map(_one_hit(), None, class_w=[10.0, 2.0], background_w=1.0)
    corner, edge, centre = 1.6760224716, 2.1145726284, 2.8376196001
    want = [[corner, edge, corner], [edge, centre, edge], [corner, edge, corner]]
    assert w.shape == (1, 3, 3) and w.dtype == np.float32
    np.testing.assert_allclose(w[0], want, rtol=1e-6)
    assert centre == pytest.approx(1 + 9 * BB) and corner == pytest.approx(1 + 9 * AA)
    assert edge == pytest.approx(1 + 9 * AB)


def test_pixel_in_several_classes_takes_the_largest_weight():
    both = np.ones((1, 3, 3, 2), bool)  # every pixel in both classes
    # A constant map is unchanged by a normalised kernel with reflection.
    np.testing.assert_allclose(weight_map(both, None, [10.0, 2.0], 1.0), 10.0, rtol=1e-6)
    np.testing.assert_allclose(weight_map(both, None, [3.0, 7.0], 1.0), 7.0, rtol=1e-6)
    # The centre in both classes weighs as if only in the rarer one.
    np.testing.assert_array_equal(
        weight_map(_one_hit((0, 1)), None, [10.0, 2.0], 1.0),
        weight_map(_one_hit((0,)), None, [10.0, 2.0], 1.0),
    )


def test_ignored_pixels_weigh_zero_after_smoothing():
    ignore = np.zeros((1, 3, 3), bool)
    ignore[0, 1, 1] = ignore[0, 0, 0] = True
    w = weight_map(_one_hit(), ignore, [10.0, 2.0], 1.0)
    assert w[0, 1, 1] == 0.0 and w[0, 0, 0] == 0.0
    # The ignored centre was smoothed into its neighbours first.
    assert w[0, 0, 1] == pytest.approx(2.1145726284, rel=1e-6)


def test_weight_map_checks_shapes():
    with pytest.raises(ValueError, match="class_w"):
        weight_map(_one_hit(), None, [1.0, 2.0, 3.0], 1.0)
    with pytest.raises(ValueError, match="ignore"):
        weight_map(_one_hit(), np.zeros((3, 3), bool), [1.0, 2.0], 1.0)


def _hand_case():
    """3x3, 2 classes. Class 0 predicted 0.8 everywhere, true at the centre only;
    class 1 predicted 0.5 everywhere, never true. Weights: centre 4, bottom-left
    two pixels 0 (ignored), the other six 1; sum 10."""
    truth = _one_hit((0,)).astype(np.float32)
    weights = np.array([[[1, 1, 1], [1, 4, 1], [0, 0, 1]]], np.float32)
    y_pred = np.empty((1, 3, 3, 2), np.float32)
    y_pred[..., 0], y_pred[..., 1] = 0.8, 0.5
    return pack_targets(truth, weights), y_pred


def test_loss_by_hand():
    y_true, y_pred = _hand_case()
    # class 0: centre 4 * -ln(0.8) = 4 * 0.2231435513, six pixels 1 * -ln(0.2) = 6 * 1.6094379124
    # class 1: sum of weights 10 * ln 2 = 10 * 0.6931471806
    # total 17.4806736..., divided by n_class * sum(w) = 2 * 10.
    want = (4 * 0.2231435513 + 6 * 1.6094379124 + 10 * 0.6931471806) / 20
    assert want == pytest.approx(0.8740336743, abs=1e-9)
    loss = WeightedSigmoidCrossEntropy()(y_true, y_pred)
    assert float(loss) == pytest.approx(want, rel=1e-6)


def test_loss_ignores_zero_weights_and_clips():
    y_true, y_pred = _hand_case()
    y_pred[0, 2, 0, :] = [1.0, 1.0]  # an ignored pixel, very wrong: log(0)
    assert float(WeightedSigmoidCrossEntropy()(y_true, y_pred)) == pytest.approx(0.8740336743, rel=1e-6)
    y_pred[0, 1, 1, 0] = 0.0  # the centre is true but predicted 0: clipped, finite
    loss = float(WeightedSigmoidCrossEntropy(epsilon=1e-7)(y_true, y_pred))
    want = (4 * -math.log(1e-7) + 6 * 1.6094379124 + 10 * 0.6931471806) / 20
    assert loss == pytest.approx(want, rel=1e-4)
    y_true[..., -1] = 0.0
    assert float(WeightedSigmoidCrossEntropy()(y_true, y_pred)) == 0.0


def test_loss_with_per_class_known_truth_by_hand():
    """The centre's class 1 unknown (a saturated pixel, say): its term and its weight leave the sums."""
    truth = _one_hit((0,)).astype(np.float32)
    weights = np.array([[[1, 1, 1], [1, 4, 1], [0, 0, 1]]], np.float32)
    known = np.ones_like(truth)
    known[0, 1, 1, 1] = 0.0
    y_true = pack_targets(truth, weights, known)
    assert y_true.shape == (1, 3, 3, 5)
    y_pred = np.empty((1, 3, 3, 2), np.float32)
    y_pred[..., 0], y_pred[..., 1] = 0.8, 0.5
    want = (4 * 0.2231435513 + 6 * 1.6094379124 + 6 * 0.6931471806) / (10 + 6)
    assert float(WeightedSigmoidCrossEntropy()(y_true, y_pred)) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="`known` must have the shape of `truth`"):
        pack_targets(truth, weights, known[..., :1])


def test_loss_config_round_trip():
    loss = WeightedSigmoidCrossEntropy(epsilon=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, WeightedSigmoidCrossEntropy)
    assert clone.get_config() == loss.get_config()


def test_loss_trains_in_a_plain_keras_pipeline():
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [keras.Input((None, None, 1)), keras.layers.Conv2D(2, 3, padding="same", activation="sigmoid")]
    )
    model.compile(optimizer="sgd", loss=WeightedSigmoidCrossEntropy())
    truth = rng.random((4, 8, 8, 2)) < 0.1
    y = pack_targets(truth, weight_map(truth, None, [5.0, 5.0], 0.5))
    history = model.fit(rng.normal(size=(4, 8, 8, 1)).astype(np.float32), y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
