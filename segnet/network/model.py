"""The SegNet builder: encoder with pooling switches, mirrored decoder, sigmoid head.

Level ``k`` (1-based, ``k = 1..depth``) works at ``1 / 2**(k-1)`` of the input
resolution with ``base_filters * 2**(k-1)`` filters. Layer names are stable:

- ``pad``: zero padding of the input to a multiple of ``2**depth``;
- ``enc{k}_conv{j}``, ``enc{k}_bn{j}``, ``enc{k}_elu{j}``, ``enc{k}_pool``;
- ``dec{k}_unpool``, ``dec{k}_conv{j}``, ``dec{k}_bn{j}``, ``dec{k}_elu{j}``;
- ``head`` (1x1 convolution, sigmoid, one channel per class), ``crop`` (back
  to the input size) and ``probabilities`` (a `ClassNames` identity layer
  whose config holds the class names, so a ``.keras`` file names its outputs).

As in SegNet, decoder level ``k`` uses the switches of encoder level ``k``;
its convolutions have the filters of level ``k`` except the last one, which
has those of level ``k - 1`` so that the next unpooling gets matching
channels.
"""

import math

import keras

from segnet.network.layers import (
    ClassNames,
    CropLike,
    MaxPoolWithSwitches,
    PadToMultiple,
    UnpoolWithSwitches,
)

__all__ = ["build_segnet", "model_class_names", "count_flops_per_pixel", "fold_batch_norm", "fold_batch_norm_with"]


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")


def _conv_block(x, *, prefix, filters, kernel_size, batch_norm):
    """Conv (+ BN) + ELU, once per entry of ``filters`` (the filters of each conv)."""
    for j, f in enumerate(filters, start=1):
        x = keras.layers.Conv2D(
            f,
            kernel_size,
            padding="same",
            use_bias=not batch_norm,  # BN's offset makes a bias redundant
            name=f"{prefix}_conv{j}",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn{j}")(x)
        x = keras.layers.Activation("elu", name=f"{prefix}_elu{j}")(x)
    return x


def build_segnet(
    *,
    class_names,
    depth=3,
    base_filters=16,
    convs_per_level=2,
    batch_norm=True,
    kernel_size=3,
    in_channels=1,
    name="segnet",
):
    """Builds a fully convolutional SegNet with one sigmoid output per class.

    Parameters
    ----------
    class_names : sequence of str
        Name of each output channel, in order (see CONTRACT.md).
    depth : int
        Number of encoder levels (= pooling steps).
    base_filters : int
        Filters of the first level; level ``k`` has ``base_filters * 2**(k-1)``.
    convs_per_level : int
        Convolutions per encoder and per decoder level.
    batch_norm : bool
        Batch normalisation after every hidden convolution (then without bias).
    kernel_size : int
        Odd side of the square convolution kernels.
    in_channels : int
        Channels of the input image.
    name : str
        Model name.

    Returns
    -------
    keras.Model
        Input ``(b, ny, nx, in_channels)`` float32 for any ``ny, nx >= 1``,
        normally ``(image - background) / sigma`` from `foundation.normalize`;
        output ``(b, ny, nx, n_class)`` float32 probabilities in [0, 1].
        The input is zero-padded (zero = background level) at the
        bottom/right to a multiple of ``2**depth`` and the output cropped back.
    """
    sizes = dict(
        depth=depth,
        base_filters=base_filters,
        convs_per_level=convs_per_level,
        kernel_size=kernel_size,
        in_channels=in_channels,
    )
    for arg, value in sizes.items():
        _check_positive_int(arg, value)
    if kernel_size % 2 == 0:
        raise ValueError(f"`kernel_size` must be odd, got {kernel_size!r}")
    if not isinstance(batch_norm, bool):
        raise ValueError(f"`batch_norm` must be a bool, got {batch_norm!r}")
    class_layer = ClassNames(class_names, name="probabilities")  # validates names

    filters = [base_filters * 2**k for k in range(depth)]  # filters[k-1]: level k
    conv = dict(kernel_size=kernel_size, batch_norm=batch_norm)

    image = keras.Input((None, None, in_channels), name="image")
    x = PadToMultiple(2**depth, name="pad")(image)

    pre_pool, switches = [], []
    for k in range(1, depth + 1):
        x = _conv_block(x, prefix=f"enc{k}", filters=[filters[k - 1]] * convs_per_level, **conv)
        pre_pool.append(x)
        x, s = MaxPoolWithSwitches(name=f"enc{k}_pool")(x)
        switches.append(s)

    for k in range(depth, 0, -1):
        x = UnpoolWithSwitches(name=f"dec{k}_unpool")([x, switches[k - 1], pre_pool[k - 1]])
        out_filters = filters[max(k - 2, 0)]
        level_filters = [filters[k - 1]] * (convs_per_level - 1) + [out_filters]
        x = _conv_block(x, prefix=f"dec{k}", filters=level_filters, **conv)

    x = keras.layers.Conv2D(len(class_layer.class_names), 1, activation="sigmoid", name="head")(x)
    x = CropLike(name="crop")([x, image])
    return keras.Model(image, class_layer(x), name=name)


def model_class_names(model):
    """Class name of each output channel of a model built by `build_segnet`.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    tuple of str
        One name per output channel, in channel order.

    Raises
    ------
    ValueError
        If the model has no `ClassNames` layer, or more than one.
    """
    found = [layer for layer in model.layers if isinstance(layer, ClassNames)]
    if len(found) != 1:
        raise ValueError(f"model {model.name!r} must hold exactly one ClassNames layer, found {len(found)}")
    return found[0].class_names


def _keras_histories(obj):
    """Names of the layers whose outputs appear in a serialised call argument."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            return [obj["config"]["keras_history"][0]]
        return [n for v in obj.values() for n in _keras_histories(v)]
    if isinstance(obj, (list, tuple)):
        return [n for v in obj for n in _keras_histories(v)]
    return []


def count_flops_per_pixel(model):
    """Floating-point operations of the convolutions per input pixel.

    Counts ``2 * kh * kw * c_in/groups * c_out`` (a multiply-add is 2 FLOPs) per
    output pixel of every ``Conv2D``, scaled by that layer's output area
    relative to the input; biases, normalisation, activations and
    (un)pooling are not counted. Resolutions are followed through the
    model's functional graph (pooling halves each side, unpooling returns to
    the pre-pool size), so this holds for any model built from these layers.
    The padding to a multiple of ``2**depth`` is ignored, i.e. the count is
    exact for images whose sides are multiples of ``2**depth``.

    Parameters
    ----------
    model : keras.Model
        A functional model (e.g. from `build_segnet`).

    Returns
    -------
    float
        FLOPs per input pixel.
    """
    if isinstance(model, keras.Sequential) or "layers" not in model.get_config():
        raise ValueError(f"`model` must be a functional keras.Model, got {type(model).__name__}")
    # Linear downsampling factor of each layer's output relative to the input
    # (square strides assumed); layers come in topological order.
    scale = {}
    flops = 0.0
    for layer_cfg in model.get_config()["layers"]:
        name = layer_cfg["name"]
        layer = model.get_layer(name)
        sources = _keras_histories(layer_cfg.get("inbound_nodes", []))
        if not sources:  # an input
            scale[name] = 1
        elif isinstance(layer, UnpoolWithSwitches):
            scale[name] = scale[sources[2]]  # back to the resolution of `like`
        elif isinstance(layer, MaxPoolWithSwitches):
            scale[name] = 2 * scale[sources[0]]
        elif isinstance(layer, keras.layers.Conv2D):
            scale[name] = scale[sources[0]] * layer.strides[0]
            macs_per_output_pixel = math.prod(layer.kernel.shape)
            flops += 2.0 * macs_per_output_pixel / scale[name] ** 2
        else:
            scale[name] = scale[sources[0]]
    return flops


def fold_batch_norm(model):
    """The same SegNet for inference, with every batch normalisation folded into its convolution.

    At inference a batch normalisation is an affine map per channel,
    ``y = gamma * (x - mean) / sqrt(var + eps) + beta``, so it folds exactly into
    the convolution before it: ``W' = W * s`` and ``b' = beta - mean * s`` with
    ``s = gamma / sqrt(var + eps)``. The folded model computes the same
    probabilities (to float32 rounding) with one pass over memory less per
    hidden layer; it cannot be trained further (it has no batch statistics).

    Parameters
    ----------
    model : keras.Model
        Built by `build_segnet` (layer names as documented above).

    Returns
    -------
    keras.Model
        The model itself if it has no batch normalisation, else a new model.
    """
    in_channels = model.get_layer("enc1_conv1").kernel.shape[2]
    return fold_batch_norm_with(
        model,
        lambda **architecture: build_segnet(
            class_names=model_class_names(model), in_channels=in_channels, name=model.name, **architecture
        ),
    )


def fold_batch_norm_with(model, rebuild):
    """``model`` with its batch normalisations folded (see `fold_batch_norm`), or ``model`` if it has none.

    ``rebuild(depth=, base_filters=, convs_per_level=, kernel_size=, batch_norm=False)``
    builds the same network without batch normalisation; the architecture is read from
    the layer names that the SegNet and the inpainting U-Net share (``enc<k>_conv<j>``,
    its ``enc<k>_bn<j>``, ``enc<k>_pool``; a convolution without a ``_bn`` twin, such as
    the head, is copied as it is).
    """
    if not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers):
        return model
    names = {layer.name for layer in model.layers}
    first = model.get_layer("enc1_conv1")
    folded = rebuild(
        depth=sum(1 for n in names if n.startswith("enc") and n.endswith("_pool")),
        base_filters=first.filters,
        convs_per_level=sum(1 for n in names if n.startswith("enc1_conv")),
        kernel_size=first.kernel_size[0],
        batch_norm=False,
    )
    for layer in folded.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        conv = model.get_layer(layer.name)
        bn_name = layer.name.replace("_conv", "_bn")  # enc2_conv1 -> enc2_bn1; the head has none
        if "_conv" in layer.name and bn_name in names:
            bn = model.get_layer(bn_name)
            kernel = keras.ops.convert_to_numpy(conv.kernel)
            gamma, beta, mean, var = (
                keras.ops.convert_to_numpy(w) for w in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
            )
            scale = gamma / (var + bn.epsilon) ** 0.5
            layer.set_weights([kernel * scale, beta - mean * scale])
        else:
            layer.set_weights(conv.get_weights())
    return folded
