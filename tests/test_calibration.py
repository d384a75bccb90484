"""segnet.calibration: neighbour features, the logistic fit, the file form, and what the fit buys."""
import numpy as np
import pytest
import yaml

from segnet.calibration import (CalibrationError, CalibrationFit, PixelCalibration, feature_names, fit_logistic,
                                neighbour_features)

CLASSES = ("CR", "HPX")


def test_neighbour_features_by_hand():
    x = np.zeros((4, 5), np.float32)
    x[1, 2] = 8.0
    x[2, 2] = -1.0
    near = neighbour_features(x)
    assert near.shape == (5, 4, 5) and near.dtype == np.float32
    contrast, absolute, brightest, faintest, value = near[:, 1, 2]
    assert contrast == pytest.approx(8.0 - (-1.0) / 8)        # neighbours: seven 0 and one -1
    assert absolute == pytest.approx(abs(contrast))
    assert brightest == pytest.approx(0.0 - (-1.0 / 8))       # brightest neighbour 0, mean -1/8
    assert faintest == pytest.approx(-1.0 / 8 - (-1.0))
    assert value == 8.0
    # Below the spike: its neighbours hold the 8; at the corner (0, 0) the edge is reflected.
    assert near[0, 2, 2] == pytest.approx(-1.0 - 8.0 / 8)
    assert near[2, 2, 2] == pytest.approx(8.0 - 1.0)
    assert near[0, 0, 0] == pytest.approx(0.0)


def test_identity_keeps_the_networks_outputs():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0.001, 0.999, (2, 6, 7)).astype(np.float32)
    out = PixelCalibration.identity(CLASSES).apply(prob, rng.normal(size=(6, 7)))
    np.testing.assert_allclose(out, prob, rtol=1e-4, atol=1e-6)


def test_fit_logistic_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    features = np.column_stack([np.ones(200_000), rng.normal(size=(200_000, 2))])
    beta = np.array([-1.0, 2.0, -0.5])
    y = (rng.random(200_000) < 1 / (1 + np.exp(-features @ beta))).astype(float)
    np.testing.assert_allclose(fit_logistic(features, y, np.ones_like(y), ridge=0.0), beta, atol=0.05)


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
    fit = CalibrationFit(CLASSES, negative_rate=0.2, seed=0)
    for prob, x, truth in _spiky_tiles(60, rng):
        fit.add(prob, x, truth, np.ones((32, 32), bool))
    calibration = fit.fit()
    assert fit.skipped == {"CR": 0}                       # no CR pixel: CR keeps the network's output
    np.testing.assert_array_equal(calibration.coefficients[0], PixelCalibration.identity(CLASSES).coefficients[0])
    test = list(_spiky_tiles(20, rng))
    p = np.stack([calibration.apply(prob, x)[1] for prob, x, _ in test]).ravel()
    t = np.stack([truth[1] for _, _, truth in test]).ravel()
    order = np.argsort(-p)
    assert t[order[:t.sum()]].mean() > 0.95               # the spikes rank first
    # Calibrated: the mean probability matches the frequency of the truth.
    assert p.mean() == pytest.approx(t.mean(), rel=0.15)
    assert p[t].mean() > 0.9 and (p[~t] > 0.5).sum() <= 3


def test_file_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(3)
    calibration = PixelCalibration(CLASSES, np.round(rng.normal(size=(2, len(feature_names(CLASSES)))), 4), tiles=7)
    path = tmp_path / "calibration.yaml"
    calibration.save(path, note="for a test")
    again = PixelCalibration.load(path, CLASSES)
    np.testing.assert_array_equal(again.coefficients, calibration.coefficients)
    assert again.tiles == 7 and "# for a test" in path.read_text()
    data = yaml.safe_load(path.read_text())
    with pytest.raises(CalibrationError, match=r"classes: expected \['CR', 'OBJ'\]"):
        PixelCalibration.load(path, ("CR", "OBJ"))
    bad = dict(data, classes={"CR": data["classes"]["CR"], "HPX": [1.0, "x"]})
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(CalibrationError, match=r"calibration.yaml: classes.HPX: expected 10 finite numbers"):
        PixelCalibration.load(path, CLASSES)
    path.write_text(yaml.safe_dump(dict(data, features=["bias"])))
    with pytest.raises(CalibrationError, match=r"features: expected \['bias', 'logit_CR'"):
        PixelCalibration.load(path, CLASSES)
    with pytest.raises(CalibrationError, match="cannot be read"):
        PixelCalibration.load(tmp_path / "missing.yaml", CLASSES)


def test_apply_near_on_a_cut_window_equals_apply_on_the_whole():
    rng = np.random.default_rng(4)
    calibration = PixelCalibration(CLASSES, rng.normal(size=(2, len(feature_names(CLASSES)))))
    prob, x = rng.uniform(0.01, 0.99, (2, 20, 24)).astype(np.float32), rng.normal(size=(20, 24)).astype(np.float32)
    whole = calibration.apply(prob, x)
    cut = calibration.apply_near(prob[:, 3:15, 5:20], neighbour_features(x)[:, 3:15, 5:20])
    np.testing.assert_allclose(cut, whole[:, 3:15, 5:20], rtol=1e-6)
    with pytest.raises(ValueError, match="expected prob"):
        calibration.apply(prob[:1], x)
