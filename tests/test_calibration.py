"""segnet.calibration.pixel: neighbour features, the perceptron's fit, the file form, and what the fit buys."""

import numpy as np
import pytest
import yaml

from segnet.calibration.pixel import (
    CalibrationError,
    CalibrationFit,
    PixelCalibration,
    context_means,
    feature_names,
    neighbour_features,
    train_mlp,
)

CLASSES = ("CR", "HPX")


def test_neighbour_features_by_hand():
    x = np.zeros((4, 5), np.float32)
    x[1, 2] = 8.0
    x[2, 2] = -1.0
    near = neighbour_features(x)
    assert near.shape == (13, 4, 5) and near.dtype == np.float32
    contrast, absolute, brightest, faintest, value = near[:5, 1, 2]
    assert contrast == pytest.approx(8.0 - (-1.0) / 8)  # neighbours: seven 0 and one -1
    assert absolute == pytest.approx(abs(contrast))
    assert brightest == pytest.approx(0.0 - (-1.0 / 8))  # brightest neighbour 0, mean -1/8
    assert faintest == pytest.approx(-1.0 / 8 - (-1.0))
    assert value == 8.0
    # Below the spike: its neighbours hold the 8; at the corner (0, 0) the edge is reflected.
    assert near[0, 2, 2] == pytest.approx(-1.0 - 8.0 / 8)
    assert near[2, 2, 2] == pytest.approx(8.0 - 1.0)
    assert near[0, 0, 0] == pytest.approx(0.0)
    # Then each neighbour minus the pixel, rows first: (-1,-1) (-1,0) (-1,+1) (0,-1) (0,+1) (+1,-1) (+1,0) (+1,+1).
    np.testing.assert_allclose(near[5:, 1, 2], [-8, -8, -8, -8, -8, -8, -9, -8])
    np.testing.assert_allclose(near[5:, 0, 2], [0, 0, 0, 0, 0, 0, 8, 0])  # the row above the edge is reflected


def test_identity_keeps_the_networks_outputs():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0.001, 0.999, (2, 6, 7)).astype(np.float32)
    out = PixelCalibration.identity(CLASSES).apply(prob, rng.normal(size=(6, 7)))
    np.testing.assert_allclose(out, prob, rtol=1e-4, atol=1e-6)


def test_train_mlp_learns_a_nonlinear_probability_and_is_calibrated():
    # p(y) = sigmoid(3 |x0| - 2 x1 - 2): no logistic regression on (x0, x1) has it.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40_000, 2)).astype(np.float32)
    truth = 1 / (1 + np.exp(-(3 * np.abs(x[:, 0]) - 2 * x[:, 1] - 2)))
    y = (rng.random(len(x)) < truth)[:, None]
    layers = train_mlp(x * 5 + 3, y, np.ones(len(x)), hidden=16, epochs=60, batch_size=1024)  # any units
    h = (x * 5 + 3).T.astype(np.float64)
    for i, (w, b) in enumerate(layers):
        h = w @ h + b[:, None]
        h = np.maximum(h, 0) if i < 2 else 1 / (1 + np.exp(-h))
    assert [w.shape for w, _ in layers] == [(16, 2), (16, 16), (1, 16)]
    assert np.abs(h[0] - truth).mean() < 0.03
    # Plain numpy and a fixed seed: the same fit every time.
    again = train_mlp(x * 5 + 3, y, np.ones(len(x)), hidden=16, epochs=60, batch_size=1024)
    for (w, b), (w2, b2) in zip(layers, again):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)


def _spiky_tiles(n, rng):
    """Noise with single-pixel spikes (the truth of class HPX) and an output that knows nothing."""
    for _ in range(n):
        x = rng.normal(size=(32, 32)).astype(np.float32)
        truth = np.zeros((2, 32, 32), bool)
        ys, xs = rng.integers(1, 31, 6), rng.integers(1, 31, 6)
        x[ys, xs] += rng.uniform(6, 10, 6).astype(np.float32)
        truth[1, ys, xs] = True
        prob = np.full((2, 32, 32), 0.5, np.float32)  # the network's output, uninformative
        yield prob, x, truth


def test_a_fit_finds_single_pixel_spikes_and_is_calibrated():
    rng = np.random.default_rng(2)
    fit = CalibrationFit(CLASSES, negative_rate=0.2, seed=0, epochs=40)
    for prob, x, truth in _spiky_tiles(60, rng):
        fit.add(prob, x, truth, np.ones((32, 32), bool))
    epochs = []
    calibration = fit.fit(progress=epochs.append)
    assert len(epochs) == 40
    assert fit.skipped == {"CR": 0}  # no CR pixel: CR keeps the network's output
    assert calibration.passthrough == ("CR",)
    test = list(_spiky_tiles(20, rng))
    out = [calibration.apply(prob, x) for prob, x, _ in test]
    np.testing.assert_array_equal(np.stack([o[0] for o in out]), np.stack([prob[0] for prob, _, _ in test]))
    p = np.stack([o[1] for o in out]).ravel()
    t = np.stack([truth[1] for _, _, truth in test]).ravel()
    order = np.argsort(-p)
    assert t[order[: t.sum()]].mean() > 0.95  # the spikes rank first
    # Calibrated: the mean probability matches the frequency of the truth.
    assert p.mean() == pytest.approx(t.mean(), rel=0.15)
    assert p[t].mean() > 0.9 and (p[~t] > 0.5).sum() <= 3


def _random_calibration(rng, hidden=4, context=0):
    sizes = [len(feature_names(CLASSES, context)), hidden, hidden, len(CLASSES)]
    return tuple(
        (np.round(rng.normal(size=(o, i)), 4), np.round(rng.normal(size=o), 4)) for i, o in zip(sizes, sizes[1:])
    )


def test_file_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    calibration = PixelCalibration(CLASSES, _random_calibration(rng, context=3), ("CR",), tiles=7, context=3)
    path = tmp_path / "calibration.yaml"
    calibration.save(path, note="for a test")
    again = PixelCalibration.load(path, CLASSES)
    assert again.context == 3
    for (w, b), (w2, b2) in zip(calibration.layers, again.layers):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    assert again.tiles == 7 and again.passthrough == ("CR",) and "# for a test" in path.read_text()
    data = yaml.safe_load(path.read_text())
    with pytest.raises(CalibrationError, match=r"classes: expected \['CR', 'OBJ'\]"):
        PixelCalibration.load(path, ("CR", "OBJ"))

    def broken(**changes):
        path.write_text(yaml.safe_dump(dict(data, **changes)))
        return pytest.raises(CalibrationError, match=r"calibration.yaml: ")

    with broken(layers=data["layers"][:1] + [dict(data["layers"][1], bias=[1.0, "x", 0, 0])]) as caught:
        PixelCalibration.load(path, CLASSES)
    assert "layers[1].bias: expected a list of finite numbers" in str(caught.value)
    with broken(layers=data["layers"][:2]) as caught:  # 4 outputs for 2 classes
        PixelCalibration.load(path, CLASSES)
    assert "the last gives 4 outputs, expected 2" in str(caught.value)
    with broken(layers=[dict(data["layers"][0], weights=[[1.0, 2.0]] * 4)] + data["layers"][1:]) as caught:
        PixelCalibration.load(path, CLASSES)
    assert "layers[0]: weights (4, 2) and bias (4,) do not take 17 inputs" in str(caught.value)
    with broken(context=4) as caught:
        PixelCalibration.load(path, CLASSES)
    assert "context: expected 0 or an odd number of pixels, got 4" in str(caught.value)
    with broken(context=0) as caught:  # the features name the 3x3 means
        PixelCalibration.load(path, CLASSES)
    assert "features: expected ['logit_CR'" in str(caught.value)
    with broken(passthrough=["HCL"]) as caught:
        PixelCalibration.load(path, CLASSES)
    assert "passthrough: ['HCL'] are not among the classes" in str(caught.value)
    with broken(features=["bias"]) as caught:
        PixelCalibration.load(path, CLASSES)
    assert "features: expected ['logit_CR'" in str(caught.value)
    with pytest.raises(CalibrationError, match="cannot be read"):
        PixelCalibration.load(tmp_path / "missing.yaml", CLASSES)


def test_apply_near_on_a_cut_window_equals_apply_on_the_whole():
    rng = np.random.default_rng(4)
    calibration = PixelCalibration(CLASSES, _random_calibration(rng))
    prob, x = rng.uniform(0.01, 0.99, (2, 20, 24)).astype(np.float32), rng.normal(size=(20, 24)).astype(np.float32)
    whole = calibration.apply(prob, x)
    cut = calibration.apply_near(prob[:, 3:15, 5:20], neighbour_features(x)[:, 3:15, 5:20])
    np.testing.assert_allclose(cut, whole[:, 3:15, 5:20], rtol=1e-6)
    with pytest.raises(ValueError, match="expected prob"):
        calibration.apply(prob[:1], x)


def test_context_means_by_hand():
    rng = np.random.default_rng(8)
    planes = rng.normal(size=(2, 11, 7)).astype(np.float32)
    got = context_means(planes, 5)
    for y, x in [(0, 0), (5, 3), (10, 6), (2, 6), (8, 1)]:
        box = planes[:, max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]  # the part of the 5x5 box inside the image
        np.testing.assert_allclose(got[:, y, x], box.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("context", [0, 5])
def test_attached_to_a_model_it_equals_apply(context):
    import keras

    rng = np.random.default_rng(7)
    keras.utils.set_random_seed(7)
    image = keras.Input((None, None, 1))
    network = keras.Model(image, keras.layers.Conv2D(2, 3, padding="same", activation="sigmoid")(image))
    calibration = PixelCalibration(
        CLASSES, _random_calibration(rng, hidden=5, context=context), ("CR",), context=context
    )
    x = rng.normal(0, 2, (2, 12, 20, 1)).astype(np.float32)
    raw = np.moveaxis(np.asarray(network.predict_on_batch(x)), -1, 1)
    got = np.moveaxis(np.asarray(calibration.attach(network).predict_on_batch(x)), -1, 1)
    np.testing.assert_allclose(got, calibration.apply_batch(raw, x[..., 0]), atol=1e-5)
    np.testing.assert_array_equal(got[:, 0], raw[:, 0])  # CR passes through
    assert PixelCalibration.identity(CLASSES).attach(network) is network
