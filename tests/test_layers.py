"""Pooling with switches and unpooling, against NumPy loops and TensorFlow's own ops."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segnet.network.layers import (
    ClassNames,
    CropLike,
    MaxPoolWithSwitches,
    PadToMultiple,
    UnpoolWithSwitches,
)

# (batch, ny, nx, channels): odd sizes, a single row, even sizes.
SHAPES = [(2, 5, 7, 3), (1, 1, 3, 2), (2, 4, 6, 1), (1, 3, 1, 1)]


def _tied(shape, seed):
    """Small integers, so that most windows hold ties."""
    return np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.float32)


def _reference_pool(x):
    """Window by window; the strict '>' keeps the first maximum (row-major)."""
    b, ny, nx, c = x.shape
    my, mx = (ny + 1) // 2, (nx + 1) // 2
    pooled = np.zeros((b, my, mx, c), x.dtype)
    switches = np.zeros((b, my, mx, c), np.int64)
    for n in range(b):
        for i in range(my):
            for j in range(mx):
                for k in range(c):
                    best = -np.inf
                    for s in range(4):
                        y, xx = 2 * i + s // 2, 2 * j + s % 2
                        if y < ny and xx < nx and x[n, y, xx, k] > best:
                            best, switches[n, i, j, k] = x[n, y, xx, k], s
                    pooled[n, i, j, k] = best
    return pooled, switches


def _reference_unpool(values, switches, shape):
    out = np.zeros(shape, values.dtype)
    b, my, mx, c = values.shape
    for n in range(b):
        for i in range(my):
            for j in range(mx):
                for k in range(c):
                    s = switches[n, i, j, k]
                    y, xx = 2 * i + s // 2, 2 * j + s % 2
                    if y < shape[1] and xx < shape[2]:
                        out[n, y, xx, k] = values[n, i, j, k]
    return out


def _flat_index(switches, shape):
    """Switches -> tf.nn.max_pool_with_argmax's index ((b*H + y)*W + x)*C + c."""
    _, ny, nx, c = shape
    n, i, j, k = np.meshgrid(*[np.arange(m) for m in switches.shape], indexing="ij")
    y, x = 2 * i + switches // 2, 2 * j + switches % 2
    return ((n * ny + y) * nx + x) * c + k


@pytest.mark.parametrize("shape", SHAPES)
def test_pool_and_unpool_match_numpy_reference(shape):
    x = _tied(shape, seed=0)
    pooled, switches = MaxPoolWithSwitches()(x)
    want_pooled, want_switches = _reference_pool(x)
    np.testing.assert_array_equal(np.asarray(pooled), want_pooled)
    np.testing.assert_array_equal(np.asarray(switches), want_switches)

    restored = UnpoolWithSwitches()([pooled, switches, x])
    np.testing.assert_array_equal(np.asarray(restored), _reference_unpool(want_pooled, want_switches, shape))


@pytest.mark.parametrize("shape", SHAPES)
def test_pool_and_unpool_match_tensorflow_argmax_and_scatter(shape):
    x = _tied(shape, seed=1)
    x[0, 0, 0, 0], x[0, 0, -1, -1] = -0.0, 0.0  # signed zeros tie too
    pooled, switches = MaxPoolWithSwitches()(x)
    tf_pooled, tf_index = tf.nn.max_pool_with_argmax(x, ksize=2, strides=2, padding="SAME", include_batch_in_index=True)
    np.testing.assert_array_equal(np.asarray(pooled), tf_pooled.numpy())
    np.testing.assert_array_equal(_flat_index(np.asarray(switches), shape), tf_index.numpy())

    scattered = tf.scatter_nd(tf.reshape(tf_index, (-1, 1)), tf.reshape(tf_pooled, (-1,)), [int(np.prod(shape))])
    restored = UnpoolWithSwitches()([pooled, switches, x])
    np.testing.assert_array_equal(np.asarray(restored), tf.reshape(scattered, shape).numpy())


def test_signed_zeros_tie_like_tensorflow():
    # keras.ops.argmax ranks -0.0 below +0.0; max_pool_with_argmax does not.
    x = np.array([-0.0, 0.0, 0.0, -1.0], np.float32).reshape(1, 2, 2, 1)
    _, switches = MaxPoolWithSwitches()(x)
    _, tf_index = tf.nn.max_pool_with_argmax(x, 2, 2, "SAME", include_batch_in_index=True)
    assert int(np.asarray(switches).item()) == int(tf_index.numpy().item()) == 0


def test_switches_are_int32_also_symbolically():
    _, switches = MaxPoolWithSwitches()(np.zeros((1, 3, 3, 1), np.float32))
    assert switches.dtype == tf.int32
    _, symbolic = MaxPoolWithSwitches()(keras.Input((None, None, 2)))
    assert symbolic.dtype == "int32"
    assert symbolic.shape == (None, None, None, 2)


def test_padding_never_wins_on_odd_sizes():
    x = np.full((1, 3, 3, 1), -1e30, np.float32)  # far below 0, above -inf
    pooled, switches = MaxPoolWithSwitches()(x)
    np.testing.assert_array_equal(np.asarray(pooled), np.float32(-1e30))
    np.testing.assert_array_equal(np.asarray(switches)[0, :, :, 0], [[0, 0], [0, 0]])


def test_gradient_reaches_only_the_switches():
    shape = (2, 5, 7, 3)
    x = tf.Variable(_tied(shape, seed=2))
    r = np.random.default_rng(3).uniform(1.0, 2.0, size=shape).astype(np.float32)
    with tf.GradientTape() as tape:
        pooled, switches = MaxPoolWithSwitches()(x)
        loss = tf.reduce_sum(UnpoolWithSwitches()([pooled, switches, x]) * r)
    grad = tape.gradient(loss, x).numpy()

    at_switch = np.zeros(shape, bool).ravel()
    at_switch[_flat_index(np.asarray(switches), shape).ravel()] = True
    at_switch = at_switch.reshape(shape)
    np.testing.assert_array_equal(grad[at_switch], r[at_switch])
    np.testing.assert_array_equal(grad[~at_switch], 0.0)
    # One switch per window: as many non-zero gradients as pooled values.
    assert at_switch.sum() == np.asarray(pooled).size


@pytest.mark.parametrize(
    "layer",
    [
        MaxPoolWithSwitches(name="p"),
        UnpoolWithSwitches(name="u"),
        PadToMultiple(8, name="pad"),
        CropLike(name="crop"),
        ClassNames(["CR", "HCL"], name="names"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.name == layer.name


def _pool_unpool_model():
    image = keras.Input((None, None, 2))
    pooled, switches = MaxPoolWithSwitches(name="pool")(image)
    restored = UnpoolWithSwitches(name="unpool")([pooled, switches, image])
    return keras.Model(image, [pooled, switches, restored])


def test_keras_file_round_trip(tmp_path):
    model = _pool_unpool_model()
    path = tmp_path / "pool_unpool.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("pool"), MaxPoolWithSwitches)
    x = _tied((2, 5, 7, 2), seed=4)
    for got, want in zip(loaded(x), model(x)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_functional_model_takes_any_size():
    model = _pool_unpool_model()
    for ny, nx in [(1, 1), (5, 7), (8, 6)]:
        pooled, switches, restored = model.predict(_tied((1, ny, nx, 2), seed=5), verbose=0)
        assert pooled.shape == (1, (ny + 1) // 2, (nx + 1) // 2, 2)
        assert np.issubdtype(switches.dtype, np.integer)
        assert restored.shape == (1, ny, nx, 2)


def test_pad_to_multiple_and_crop_like():
    x = np.arange(15, dtype=np.float32).reshape(1, 3, 5, 1)
    padded = np.asarray(PadToMultiple(4)(x))
    assert padded.shape == (1, 4, 8, 1)
    np.testing.assert_array_equal(padded[:, :3, :5], x)
    assert padded[:, 3:].sum() == 0 and padded[:, :, 5:].sum() == 0
    np.testing.assert_array_equal(np.asarray(CropLike()([padded, x])), x)
    assert PadToMultiple(4).compute_output_shape((None, 3, None, 1)) == (None, 4, None, 1)


@pytest.mark.parametrize("bad", [[], ["CR", "CR"], "CR", ["CR", ""], [1, 2]])
def test_class_names_rejects_bad_lists(bad):
    with pytest.raises(ValueError, match="class_names"):
        ClassNames(bad)
