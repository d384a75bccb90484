"""The inpainting network (a small U-Net) and its loss, the MSE (or Huber loss) over masked pixels only.

The network sees three channels: the normalised image with the pixels to replace
filled by the biharmonic fill, ``asinh``-compressed and again in the unit of the
correction (``segnet.inpainting.data.encode``), and the mask (1 where a pixel is
replaced or unknown). It predicts a correction to that fill everywhere
(``segnet.inpainting.data`` says in which units); only the masked pixels are used
(``apply.compose``), and only they count in the loss. Built from ``keras.layers`` and ``keras.ops``, so it
runs under the TensorFlow and the JAX backends. Layer names are stable:

- ``pad`` (zero padding to a multiple of ``2**depth``) and ``crop`` (back);
- ``enc{k}_conv{j}``, ``enc{k}_bn{j}``, ``enc{k}_elu{j}``, ``enc{k}_pool`` for ``k = 1..depth``;
- ``mid_conv{j}`` ... at the lowest resolution;
- ``dec{k}_up`` (nearest-neighbour upsampling), ``dec{k}_skip`` (concatenation with
  encoder level ``k``), ``dec{k}_conv{j}`` ...;
- ``head`` (1x1 convolution, linear, zero-initialised): the correction to the fill.

Unlike the SegNet's switches, skip connections carry the encoder's features
across: the fill must match its surroundings to the noise level.
"""

from __future__ import annotations

import keras
from keras import ops

from segnet.network.layers import CropLike, PadToMultiple

__all__ = ["build_inpainter", "fold_batch_norm", "MaskedMSE", "INPUT_CHANNELS"]

INPUT_CHANNELS = ("filled_image", "fill_in_correction_units", "mask")


def _conv_block(x, *, prefix, filters, n_convs, kernel_size, batch_norm):
    for j in range(1, n_convs + 1):
        x = keras.layers.Conv2D(
            filters, kernel_size, padding="same", use_bias=not batch_norm, name=f"{prefix}_conv{j}"
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn{j}")(x)
        x = keras.layers.Activation("elu", name=f"{prefix}_elu{j}")(x)
    return x


def build_inpainter(*, depth=3, base_filters=16, convs_per_level=2, batch_norm=True, kernel_size=3, name="inpainter"):
    """Builds the inpainting U-Net.

    Parameters
    ----------
    depth : int >= 1, pooling steps.
    base_filters : int >= 1, filters of level 1; level ``k`` has ``base_filters * 2**(k-1)``
        and the bottom ``base_filters * 2**depth``.
    convs_per_level : int >= 1, convolutions per level.
    batch_norm : bool, batch normalisation after every hidden convolution.
    kernel_size : odd int >= 1.

    Returns
    -------
    keras.Model
        Input ``(b, ny, nx, 3)`` float32, any ``ny, nx >= 1`` (channels
        `INPUT_CHANNELS`); output ``(b, ny, nx, 1)`` float32, the correction to the fill.
    """
    for arg, value in dict(
        depth=depth, base_filters=base_filters, convs_per_level=convs_per_level, kernel_size=kernel_size
    ).items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{arg}` must be a positive int, got {value!r}")
    if kernel_size % 2 == 0:
        raise ValueError(f"`kernel_size` must be odd, got {kernel_size!r}")
    block = dict(n_convs=convs_per_level, kernel_size=kernel_size, batch_norm=bool(batch_norm))

    image = keras.Input((None, None, len(INPUT_CHANNELS)), name="filled_image_and_mask")
    x = PadToMultiple(2**depth, name="pad")(image)
    skips = []
    for k in range(1, depth + 1):
        x = _conv_block(x, prefix=f"enc{k}", filters=base_filters * 2 ** (k - 1), **block)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{k}_pool")(x)
    x = _conv_block(x, prefix="mid", filters=base_filters * 2**depth, **block)
    for k in range(depth, 0, -1):
        x = keras.layers.UpSampling2D(2, name=f"dec{k}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{k}_skip")([x, skips[k - 1]])
        x = _conv_block(x, prefix=f"dec{k}", filters=base_filters * 2 ** (k - 1), **block)
    # Zero-initialised: an untrained network returns the classical fill unchanged.
    x = keras.layers.Conv2D(1, 1, kernel_initializer="zeros", name="head")(x)
    return keras.Model(image, CropLike(name="crop")([x, image]), name=name)


def fold_batch_norm(model):
    """The same inpainter for inference, every batch normalisation folded into its convolution.

    As ``segnet.network.model.fold_batch_norm`` for the SegNet: the same output to float32
    rounding, one pass over memory less per hidden layer. Returns ``model`` itself if it
    has no batch normalisation.
    """
    from segnet.network.model import fold_batch_norm_with

    return fold_batch_norm_with(model, lambda **architecture: build_inpainter(name=model.name, **architecture))


@keras.saving.register_keras_serializable(package="segnet")
class MaskedMSE(keras.losses.Loss):
    """Mean squared error over the pixels of an inpainting mask only; with ``delta``, a Huber loss.

    ``y_true`` packs the target and the mask weight: shape ``(b, ny, nx, 2)``,
    channel 0 the target (``data.target``), channel 1 the weight (1 on a masked,
    usable pixel, 0 elsewhere). ``y_pred`` is ``(b, ny, nx, 1)``. The loss of a
    batch is ``sum(w * rho(t - p)) / (sum(w) + eps)``: pixels of weight 0 change
    neither the value nor the gradient (``where``, so not even a NaN or inf there
    can leak in), and a batch without masked pixels gives 0.

    ``rho(e) = e**2``, or with ``delta`` (Huber) ``e**2`` for ``|e| <= delta`` and
    ``2 * delta * |e| - delta**2`` beyond: the same value and slope at ``delta``, so
    errors within it are plain squared errors, and one beyond pulls no harder than one
    at ``delta``. Why: in the correction's units, 0.4 % of masked pixels (bright
    objects under wide holes) carry over 80 % of the squared error of the fill, and
    their gradients drown those of ordinary stars and sky.
    """

    def __init__(self, epsilon=1e-7, delta=None, name="masked_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0, got {epsilon!r}")
        if delta is not None and not delta > 0:
            raise ValueError(f"`delta` must be > 0 or None, got {delta!r}")
        self.epsilon = float(epsilon)
        self.delta = None if delta is None else float(delta)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        target, w = y_true[..., :1], y_true[..., 1:2]
        used = w > 0
        error = ops.where(used, target - ops.where(used, y_pred, 0.0), 0.0)
        if self.delta is None:
            rho = ops.square(error)
        else:
            size = ops.abs(error)
            rho = ops.where(size <= self.delta, ops.square(error), 2.0 * self.delta * size - self.delta**2)
        return ops.sum(w * rho) / (ops.sum(w) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "delta": self.delta}
