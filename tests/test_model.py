"""The SegNet builder: any input size, stable names, self-describing files, FLOPs."""

import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from segnet.network.model import build_segnet, count_flops_per_pixel, model_class_names

CLASSES = ["CR", "HCL", "BCL"]
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_model():
    return build_segnet(class_names=CLASSES, depth=3, base_filters=4)


def _randomize(model, seed):
    """Random weights, BatchNorm statistics included, so that every layer matters."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if w.path.endswith(("moving_variance", "gamma")):
            w.assign(rng.uniform(0.5, 1.5, size=shape).astype(np.float32))
        else:
            w.assign(rng.normal(0.0, 0.3, size=shape).astype(np.float32))


@pytest.mark.parametrize("ny, nx", [(1, 1), (17, 33), (64, 64)])
def test_output_has_input_size_and_probabilities(small_model, ny, nx):
    x = np.random.default_rng(0).normal(size=(2, ny, nx, 1)).astype(np.float32)
    y = np.asarray(small_model(x, training=False))
    assert y.shape == (2, ny, nx, len(CLASSES))
    assert np.all((y >= 0.0) & (y <= 1.0))


def test_layer_names_are_stable(small_model):
    names = {layer.name for layer in small_model.layers}
    for k in (1, 2, 3):
        for stem in ("conv1", "bn1", "elu1", "conv2", "bn2", "elu2"):
            assert f"enc{k}_{stem}" in names and f"dec{k}_{stem}" in names
        assert f"enc{k}_pool" in names and f"dec{k}_unpool" in names
    assert {"image", "pad", "head", "crop", "probabilities"} <= names
    assert small_model.get_layer("head").activation.__name__ == "sigmoid"


def test_filters_per_level():
    model = build_segnet(class_names=["CR"], depth=3, base_filters=2, batch_norm=False)
    filters = {layer.name: layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    assert filters["enc1_conv2"] == 2 and filters["enc2_conv2"] == 4 and filters["enc3_conv2"] == 8
    # The last convolution of a decoder level feeds the next unpooling.
    assert filters["dec3_conv1"] == 8 and filters["dec3_conv2"] == 4
    assert filters["dec2_conv2"] == 2 and filters["dec1_conv2"] == 2 and filters["head"] == 1
    assert not any("_bn" in layer.name for layer in model.layers)


def test_class_names_survive_a_keras_file(tmp_path, small_model):
    path = tmp_path / "segnet.keras"
    small_model.save(path)
    loaded = keras.saving.load_model(path)
    assert model_class_names(loaded) == tuple(CLASSES)
    x = np.random.default_rng(1).normal(size=(1, 9, 11, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(small_model(x)))


def test_model_class_names_needs_the_layer():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="ClassNames"):
        model_class_names(plain)


def test_flops_hand_count_one_level():
    # depth 1, 2 filters, 1 conv per level, 1 input channel, 2 classes, 3x3:
    #   enc1_conv1 1 -> 2: 3*3*1*2 = 18 MACs/pixel
    #   dec1_conv1 2 -> 2: 3*3*2*2 = 36 MACs/pixel
    #   head       2 -> 2: 1*1*2*2 =  4 MACs/pixel
    # (18 + 36 + 4) * 2 = 116 FLOPs per pixel.
    model = build_segnet(class_names=["CR", "HCL"], depth=1, base_filters=2, convs_per_level=1)
    assert count_flops_per_pixel(model) == 116.0


def test_flops_hand_count_two_levels():
    # As above plus level 2 at a quarter of the pixels:
    #   enc1_conv1 1 -> 2: 18; enc2_conv1 2 -> 4: 72 / 4 = 18;
    #   dec2_conv1 4 -> 2: 72 / 4 = 18; dec1_conv1 2 -> 2: 36; head 2 -> 2: 4
    # (18 + 18 + 18 + 36 + 4) * 2 = 188 FLOPs per pixel.
    model = build_segnet(class_names=["CR", "HCL"], depth=2, base_filters=2, convs_per_level=1)
    assert count_flops_per_pixel(model) == 188.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(class_names=["CR", "CR"]), "duplicates"),
        (dict(class_names=[]), "class_names"),
        (dict(class_names=["CR"], depth=0), "depth"),
        (dict(class_names=["CR"], kernel_size=4), "kernel_size"),
        (dict(class_names=["CR"], batch_norm="yes"), "batch_norm"),
    ],
)
def test_bad_arguments_fail_loudly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_segnet(**kwargs)


JAX_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    from segnet.network.model import model_class_names

    assert keras.backend.backend() == "jax", keras.backend.backend()
    model = keras.saving.load_model(sys.argv[1])
    print(",".join(model_class_names(model)))
    np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_backend_gives_the_same_output(tmp_path):
    model = build_segnet(class_names=CLASSES, depth=2, base_filters=4)
    _randomize(model, seed=2)
    x = np.random.default_rng(3).normal(size=(2, 37, 53, 1)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    model.save(tmp_path / "tf.keras")
    np.save(tmp_path / "x.npy", x)

    # The backend is fixed per process, hence a subprocess. XLA's CPU
    # optimisation passes are turned off there: they make compiling the
    # weight initialisers run at load time take ~1 s each (12 s in all).
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_backend_optimization_level=0",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            JAX_SCRIPT,
            str(tmp_path / "tf.keras"),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == ",".join(CLASSES)
    got = np.load(tmp_path / "y.npy")
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-5


def test_folded_batch_norm_gives_the_same_probabilities():
    from segnet.network.model import fold_batch_norm

    model = build_segnet(class_names=("CR", "OBJ"), depth=2, base_filters=4)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # batch statistics and affine terms far from their initial values
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 2, n), rng.normal(0, 1, n), rng.normal(0, 1, n), rng.uniform(0.2, 3, n)]
            )
    folded = fold_batch_norm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    assert folded.count_params() < model.count_params()
    x = rng.normal(0, 3, (2, 40, 36, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded(x)), expected, atol=2e-5)
    assert fold_batch_norm(folded) is folded
