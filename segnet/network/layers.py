"""Keras layers of the SegNet, written with ``keras.ops`` only.

They run unchanged under the TensorFlow and the JAX backends. All tensors are
channels-last, ``(batch, ny, nx, channels)``.

SegNet pools with *switches*: the position of the maximum inside each 2x2
window, kept as an int32 in ``0..3`` (row-major: 0 top-left, 1 top-right,
2 bottom-left, 3 bottom-right). The decoder writes each value back at its
switch. Switches never pass through floating point, and unpooling takes the
pre-pool tensor so that odd sizes come back exact.
"""

import keras
from keras import ops

_PACKAGE = "segnet"


def _ceil_half(n):
    """Pooled length of an axis of length ``n`` (SAME padding); None stays None."""
    return None if n is None else (n + 1) // 2


def _window_slots(x):
    """(b, ny, nx, c) with even ny, nx -> (b, ny/2, nx/2, 4, c), slots row-major."""
    shape = ops.shape(x)
    ny2, nx2, c = shape[1] // 2, shape[2] // 2, shape[3]
    x = ops.reshape(x, (-1, ny2, 2, nx2, 2, c))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, ny2, nx2, 4, c))


def _from_window_slots(x):
    """Inverse of `_window_slots`: (b, my, mx, 4, c) -> (b, 2 my, 2 mx, c)."""
    shape = ops.shape(x)
    my, mx, c = shape[1], shape[2], shape[4]
    x = ops.reshape(x, (-1, my, mx, 2, 2, c))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, 2 * my, 2 * mx, c))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxPoolWithSwitches(keras.layers.Layer):
    """2x2 max pooling, stride 2, that also returns where each maximum was.

    Odd heights or widths are padded at the bottom/right with ``-inf`` (as
    TensorFlow's SAME padding does), so padding never wins. Ties go to the
    first maximum in row-major order, as in ``tf.nn.max_pool_with_argmax``.

    Call arguments:
        inputs: ``(b, ny, nx, c)`` float tensor.

    Returns:
        ``(pooled, switches)``: ``pooled`` is ``(b, ceil(ny/2), ceil(nx/2), c)``
        in the input dtype; ``switches`` has the same shape, int32 in
        ``0..3``. The gradient flows only to the chosen position of each window.
    """

    def call(self, inputs):
        shape = ops.shape(inputs)
        pad_y, pad_x = shape[1] % 2, shape[2] % 2
        x = ops.pad(
            inputs,
            [[0, 0], [0, pad_y], [0, pad_x], [0, 0]],
            constant_values=float("-inf"),
        )
        slots = _window_slots(x)  # (b, my, mx, 4, c)
        best = ops.max(slots, axis=3, keepdims=True)
        # First maximum wins. `argmax` is avoided on purpose: Keras' TF
        # argmax ranks -0.0 below +0.0, max_pool_with_argmax does not.
        slot_id = ops.reshape(ops.arange(4, dtype="int32"), (1, 1, 1, 4, 1))
        candidates = ops.where(ops.equal(slots, best), slot_id, 4)
        # A window that is all NaN matches nothing; point it at slot 0.
        switches = ops.min(candidates, axis=3)
        switches = ops.where(switches > 3, 0, switches)
        switches = ops.cast(switches, "int32")
        # Gather (not max) so the gradient goes to the switch only, ties too.
        pooled = ops.take_along_axis(slots, switches[:, :, :, None, :], axis=3)
        return ops.squeeze(pooled, axis=3), switches

    def compute_output_shape(self, input_shape):
        b, ny, nx, c = input_shape
        shape = (b, _ceil_half(ny), _ceil_half(nx), c)
        return shape, shape

    def compute_output_spec(self, inputs):
        shape, _ = self.compute_output_shape(inputs.shape)
        return (
            keras.KerasTensor(shape, dtype=self.compute_dtype),
            keras.KerasTensor(shape, dtype="int32"),
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UnpoolWithSwitches(keras.layers.Layer):
    """Writes each pooled value back at its switch; zeros elsewhere.

    Call arguments:
        inputs: ``[values, switches, like]``. ``values`` ``(b, my, mx, c)``
            float; ``switches`` ``(b, my, mx, c)`` integer in ``0..3`` from
            `MaxPoolWithSwitches`; ``like`` the tensor that was pooled, of
            shape ``(b, ny, nx, c)`` with ``my = ceil(ny/2)``,
            ``mx = ceil(nx/2)``. Only the shape of ``like`` is used.

    Returns:
        ``(b, ny, nx, c)`` tensor in the dtype of ``values``.
    """

    def call(self, inputs):
        values, switches, like = inputs
        like_shape = ops.shape(like)
        switches = ops.cast(switches, "int32")
        slot_id = ops.reshape(ops.arange(4, dtype="int32"), (1, 1, 1, 4, 1))
        chosen = ops.equal(ops.expand_dims(switches, 3), slot_id)
        zero = ops.zeros((), dtype=values.dtype)
        # `where`, not one_hot * value: no 0 * inf = NaN, gradient only at switch.
        slots = ops.where(chosen, ops.expand_dims(values, 3), zero)
        full = _from_window_slots(slots)
        return full[:, : like_shape[1], : like_shape[2], :]

    def compute_output_shape(self, input_shape):
        values_shape, _, like_shape = input_shape
        return (values_shape[0], like_shape[1], like_shape[2], values_shape[3])

    def compute_output_spec(self, inputs):
        values = inputs[0]
        shape = self.compute_output_shape([t.shape for t in inputs])
        return keras.KerasTensor(shape, dtype=values.dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PadToMultiple(keras.layers.Layer):
    """Zero-pads height and width at the bottom/right up to a multiple.

    Zero is the background level of a normalised image, the value the
    convolutions' own "same" padding assumes too; reflection would fail on
    images smaller than the padding (a 1x1 image at depth 3).

    Args:
        multiple: positive int, the height and width become multiples of it.

    Call arguments:
        inputs: ``(b, ny, nx, c)``.

    Returns:
        ``(b, ny', nx', c)`` with ``ny'`` the smallest multiple of
        ``multiple`` that is ``>= ny`` (same for ``nx``).
    """

    def __init__(self, multiple, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1:
            raise ValueError(f"`multiple` must be a positive int, got {multiple!r}")
        self.multiple = multiple

    def call(self, inputs):
        shape = ops.shape(inputs)
        pad_y = (-shape[1]) % self.multiple
        pad_x = (-shape[2]) % self.multiple
        return ops.pad(inputs, [[0, 0], [0, pad_y], [0, pad_x], [0, 0]])

    def _padded(self, n):
        return None if n is None else -(-n // self.multiple) * self.multiple

    def compute_output_shape(self, input_shape):
        b, ny, nx, c = input_shape
        return (b, self._padded(ny), self._padded(nx), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CropLike(keras.layers.Layer):
    """Crops ``x`` to the height and width of ``like`` (top-left corner kept).

    Call arguments:
        inputs: ``[x, like]``, ``x`` ``(b, my, mx, c)``, ``like``
            ``(b, ny, nx, k)`` with ``ny <= my`` and ``nx <= mx``.

    Returns:
        ``(b, ny, nx, c)``.
    """

    def call(self, inputs):
        x, like = inputs
        like_shape = ops.shape(like)
        return x[:, : like_shape[1], : like_shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, like_shape = input_shape
        return (x_shape[0], like_shape[1], like_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassNames(keras.layers.Layer):
    """Identity layer whose config carries the class name of each channel.

    It sits last in the model so that a saved ``.keras`` file describes its own
    outputs: channel ``k`` of the output is the probability of
    ``class_names[k]``.

    Args:
        class_names: sequence of distinct non-empty strings, one per channel.
    """

    def __init__(self, class_names, **kwargs):
        super().__init__(**kwargs)
        names = list(class_names) if not isinstance(class_names, str) else None
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"`class_names` must be a non-empty sequence of non-empty strings, got {class_names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"`class_names` has duplicates: {names!r}")
        self.class_names = tuple(names)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "class_names": list(self.class_names)}
