"""The exported ONNX graph and the serving runtimes: same probabilities as the Keras model, ties resolved alike."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from astropy.io import fits

from segnet.calibration.pixel import PixelCalibration, feature_names
from segnet.network.model import build_segnet, fold_batch_norm
from segnet.serving.onnx_export import export_onnx
from segnet.serving.runtime import KerasNetwork, OnnxNetwork, OpenVinoNetwork, load_network

CLASSES = ("CR", "HPX", "OBJ")
RUNTIMES = [OnnxNetwork, OpenVinoNetwork]
ROOT = Path(__file__).resolve().parent.parent


def tiny_model(seed=0):
    """A depth-2 SegNet with random weights and batch statistics (so folding is exercised)."""
    keras.utils.set_random_seed(seed)
    model = build_segnet(class_names=CLASSES, depth=2, base_filters=4)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.3, n), rng.uniform(0.5, 2.0, n)]
            )
    return model


def calibration(seed=1, context=3, passthrough=("HPX",), hidden=5):
    rng = np.random.default_rng(seed)
    sizes = [len(feature_names(CLASSES, context)), hidden, hidden, len(CLASSES)]
    layers = tuple((rng.normal(0, 0.4, (o, i)), rng.normal(0, 0.4, o)) for i, o in zip(sizes, sizes[1:]))
    return PixelCalibration(CLASSES, layers, passthrough, context=context)


def image(shape=(48, 64), seed=2):
    rng = np.random.default_rng(seed)
    x = np.arcsinh(3 * rng.standard_normal(shape)).astype(np.float32)
    x[10:12, 5:40] += 4.0  # a track
    x[30, 50] += 9.0  # a hot pixel
    return x[None, :, :, None]


@pytest.mark.parametrize("kind", RUNTIMES)
@pytest.mark.parametrize("calibrated", [False, True])
def test_exported_graph_gives_the_keras_probabilities(kind, calibrated):
    model = tiny_model()
    cal = calibration() if calibrated else None
    reference = KerasNetwork(model, cal).predict_planes(image())
    exported = kind(export_onnx(model, cal))
    assert exported.classes == CLASSES and exported.multiple == 4
    got = exported.predict_planes(image())
    assert got.shape == (1, 3, 48, 64)
    np.testing.assert_allclose(got, reference, atol=1e-4)


def test_the_exported_model_folds_batch_normalisation_like_keras():
    model = tiny_model(seed=3)
    x = image(seed=4)
    raw = np.asarray(model.predict_on_batch(x))  # batch normalisation as trained
    folded = np.asarray(fold_batch_norm(model).predict_on_batch(x))
    np.testing.assert_allclose(folded, raw, atol=1e-5)
    got = OnnxNetwork(export_onnx(model)).predict_planes(x)
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), raw, atol=1e-4)


@pytest.mark.parametrize("kind", RUNTIMES)
def test_pooling_ties_go_to_the_first_maximum_as_in_keras(kind):
    """Integer-valued input: many 2x2 windows hold equal maxima. The switch must be the first, row-major."""
    model = tiny_model(seed=5)
    rng = np.random.default_rng(6)
    x = rng.integers(-1, 2, (1, 32, 32, 1)).astype(np.float32)
    x[0, 8:24, 8:24] = 0.0  # a constant block: every window tied
    reference = KerasNetwork(model).predict_planes(x)
    np.testing.assert_allclose(kind(export_onnx(model)).predict_planes(x), reference, atol=1e-4)


def test_a_stale_onnx_file_is_not_used(tmp_path):
    from segnet.serving.shipping import write_onnx

    model = tiny_model()
    keras_file = tmp_path / "model.keras"
    model.save(keras_file)
    write_onnx(keras_file, tmp_path)
    network, source = load_network(keras_file, tmp_path, "onnx")
    assert source == "onnx (model.onnx)"
    calibration(context=0, passthrough=()).save(tmp_path / "calibration.yaml")  # recalibrated since
    network, source = load_network(keras_file, tmp_path, "onnx")
    assert source == "onnx (exported at load)"
    expected = KerasNetwork(model, PixelCalibration.load(tmp_path / "calibration.yaml", CLASSES))
    np.testing.assert_allclose(network.predict_planes(image()), expected.predict_planes(image()), atol=1e-4)
    assert load_network(keras_file, tmp_path, "keras")[1] == "keras"
    with pytest.raises(ValueError, match="--runtime: expected one of .* got 'tensorrt'"):
        load_network(keras_file, tmp_path, "tensorrt")


def test_calibration_files_keep_their_logit_cut(tmp_path):
    cal = calibration()
    cal.save(tmp_path / "c.yaml")
    assert PixelCalibration.load(tmp_path / "c.yaml", CLASSES).clip_high == cal.clip_high
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    del data["clip_high"]  # written before the cut was recorded
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(data))
    assert PixelCalibration.load(tmp_path / "old.yaml", CLASSES).clip_high == 1e-6
    data["clip_high"] = "high"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"bad.yaml: clip_high: expected a number in \(0, 0.5\), got 'high'"):
        PixelCalibration.load(tmp_path / "bad.yaml", CLASSES)


def test_prediction_with_a_shipped_onnx_file_never_imports_tensorflow(tmp_path):
    from segnet.serving.shipping import write_onnx

    model = tiny_model()
    folder = tmp_path / "model"
    folder.mkdir()
    model.save(folder / "model.keras")
    (folder / "classes.yaml").write_text(yaml.safe_dump(list(CLASSES)))
    write_onnx(folder / "model.keras", folder)
    rng = np.random.default_rng(0)
    fits.PrimaryHDU((500 + 5 * rng.standard_normal((40, 52))).astype(np.float32)).writeto(tmp_path / "f.fits")
    script = (
        "import sys, predict; rc = predict.main(sys.argv[1:]); "
        "print('TF' if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 'no TF'); "
        "sys.exit(rc)"
    )
    outputs = {}
    for runtime in ("onnx", "openvino", "keras"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                str(tmp_path / "f.fits"),
                "-o",
                str(tmp_path / runtime),
                "--model",
                str(folder),
                "--runtime",
                runtime,
                "--quiet",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == ("TF" if runtime == "keras" else "no TF")
        with fits.open(tmp_path / runtime / "f.mask.fits") as hdul:
            assert hdul["PROB"].header["RUNTIME"].startswith(runtime)
            outputs[runtime] = (hdul["PROB"].data.astype(np.float32), hdul["FLAGS"].data.copy())
    for runtime in ("onnx", "openvino"):
        np.testing.assert_allclose(outputs[runtime][0], outputs["keras"][0], atol=1e-4)
        np.testing.assert_array_equal(outputs[runtime][1], outputs["keras"][1])
