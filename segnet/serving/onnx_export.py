"""The trained SegNet, with its pixel calibration, written as one ONNX graph for serving.

Prediction does not need TensorFlow: ONNX Runtime loads this graph in a fraction of a
second, in a fraction of the memory, and the file is insurance against framework
upgrades breaking the saved Keras weights. The graph computes what the Keras model
(batch normalisation folded) followed by ``PixelCalibration.attach`` computes:

- every convolution keeps its weights (transposed to ONNX's ``(out, in, kh, kw)``);
- pooling with switches is built from standard operators: ``SpaceToDepth`` splits
  each 2x2 window into its four slots (row-major), their ``Max`` is the pooled
  value, and the *first* slot equal to it (row-major, as in `MaxPoolWithSwitches`)
  gets a 1, the others 0; unpooling multiplies the decoder's values by those four
  0/1 planes and puts them back with ``DepthToSpace``. Ties therefore resolve as in
  the Keras layers (ONNX's own ``MaxUnpool`` is not used: not every runtime has it);
- the calibration perceptron runs as 1x1 convolutions on the logits, the 3x3
  neighbour features (edge-replicated, as ``symmetric`` padding by one pixel is) and
  the box means of the logits.

The graph is channels-first, ``(batch, 1, ny, nx) -> (batch, n_class, ny, nx)``, and
takes heights and widths that are multiples of ``2**depth`` (the tile loop gives
nothing else); the Keras model's own padding layer is therefore not needed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["export_onnx", "OPSET"]

OPSET = 17


class _Graph:
    """Accumulates ONNX nodes and initialisers with unique names."""

    def __init__(self):
        import onnx.helper
        import onnx.numpy_helper

        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.nodes, self.inits, self._count = [], [], 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint: str = "c") -> str:
        name = self.name(hint)
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        self.inits.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs, hint: str | None = None, outputs: int = 1, **attrs):
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def _weights(layer):
    import keras

    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (layer.kernel, layer.bias))
    return np.transpose(kernel, (3, 2, 0, 1)).astype(np.float32), bias.astype(np.float32)


def _conv(g: _Graph, x: str, layer, activation: str | None) -> str:
    kernel, bias = _weights(layer)
    pad = kernel.shape[-1] // 2
    y = g.op(
        "Conv", [x, g.const(kernel, layer.name + "_w"), g.const(bias, layer.name + "_b")], layer.name, pads=[pad] * 4
    )
    return g.op("Elu", [y], alpha=1.0) if activation == "elu" else y


def _pool(g: _Graph, x: str):
    """(pooled, four 0/1 planes of the first maximum in each 2x2 window, row-major)."""
    slots = g.op("Split", [g.op("SpaceToDepth", [x], blocksize=2)], outputs=4, axis=1)
    best = g.op("Max", slots, "pooled")
    taken, planes = None, []
    for s in slots:
        hit = g.op("Equal", [s, best])
        first = hit if taken is None else g.op("And", [hit, g.op("Not", [taken])])
        planes.append(g.op("Cast", [first], to=1))  # float 0/1
        taken = hit if taken is None else g.op("Or", [taken, hit])
    return best, planes


def _unpool(g: _Graph, x: str, planes) -> str:
    parts = [g.op("Mul", [x, p]) for p in planes]
    return g.op("DepthToSpace", [g.op("Concat", parts, axis=1)], blocksize=2, mode="DCR")


def _segnet(g: _Graph, model, x: str) -> str:
    """The head's scores (b, n_class, ny, nx), before its sigmoid, from the folded Keras model's layers."""
    import keras

    convs = {layer.name: layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    depth = sum(1 for layer in model.layers if layer.name.startswith("enc") and layer.name.endswith("_pool"))
    switches = {}
    for k in range(1, depth + 1):
        j = 1
        while f"enc{k}_conv{j}" in convs:
            x = _conv(g, x, convs[f"enc{k}_conv{j}"], "elu")
            j += 1
        x, switches[k] = _pool(g, x)
    for k in range(depth, 0, -1):
        x = _unpool(g, x, switches[k])
        j = 1
        while f"dec{k}_conv{j}" in convs:
            x = _conv(g, x, convs[f"dec{k}_conv{j}"], "elu")
            j += 1
    return _conv(g, x, convs["head"], None)


def _calibrated(g: _Graph, calibration, image: str, score: str, prob: str) -> str:
    """`PixelCalibration.apply` on the network's input, head scores (pre-sigmoid) and output, in ONNX operators."""
    import segnet.calibration.pixel as cal

    n = len(calibration.classes)
    # The logits straight from the head's pre-activation, clipped as `_logits` clips: the
    # runtimes' sigmoids differ in the last bits, which log(p / (1 - p)) would blow up.
    low, high = (float(np.log(np.float32(q) / (1 - np.float32(q)))) for q in (cal.P_CLIP, 1 - calibration.clip_high))
    logits = g.op("Clip", [score, g.const(np.float32(low)), g.const(np.float32(high))])
    # The 8 neighbours, the image's edge replicated (what "symmetric" padding by one pixel gives).
    padded = g.op("Pad", [image, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], mode="edge")
    ny, nx = g.op("Shape", [image], start=2, end=3), g.op("Shape", [image], start=3, end=4)
    axes = g.const(np.array([2, 3], np.int64))
    shifted = []
    for dy, dx in cal._OFFSETS:  # padded[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx]
        start = g.const(np.array([1 + dy, 1 + dx], np.int64))
        stop = g.op("Add", [start, g.op("Concat", [ny, nx], axis=0)])
        shifted.append(g.op("Slice", [padded, start, stop, axes]))
    mean = g.op("Mul", [g.op("Sum", shifted), g.const(np.float32(1 / 8))])
    brightest, faintest = g.op("Max", shifted), g.op("Min", shifted)
    contrast = g.op("Sub", [image, mean])
    near = [
        contrast,
        g.op("Abs", [contrast]),
        g.op("Sub", [brightest, mean]),
        g.op("Sub", [mean, faintest]),
        image,
        *(g.op("Sub", [r, image]) for r in shifted),
    ]
    parts = [logits, *near]
    if calibration.context:
        # The mean over the part of the box inside the image (`context_means`): an average pool
        # that does not count the padding.
        r, side = calibration.context // 2, calibration.context
        parts.append(g.op("AveragePool", [logits], kernel_shape=[side, side], pads=[r] * 4, count_include_pad=0))
    h = g.op("Concat", parts, axis=1)
    for k, (w, b) in enumerate(calibration.layers):
        w = np.asarray(w, np.float32)
        h = g.op("Conv", [h, g.const(w[:, :, None, None]), g.const(np.asarray(b, np.float32))])
        if k < len(calibration.layers) - 1:
            h = g.op("Relu", [h])
    out = g.op("Sigmoid", [g.op("Clip", [h, g.const(np.float32(-30)), g.const(np.float32(30))])])
    keep = np.array([c in calibration.passthrough for c in calibration.classes])
    if keep.any():
        out = g.op("Where", [g.const(keep.reshape(1, n, 1, 1)), prob, out])
    return out


def export_onnx(model, calibration=None):
    """The ONNX model (an ``onnx.ModelProto``) of a SegNet and, optionally, its pixel calibration.

    Parameters
    ----------
    model : keras.Model
        Built by ``segnet.network.model.build_segnet``; batch normalisation is folded here.
    calibration : segnet.calibration.pixel.PixelCalibration or None
        Applied after the network, as ``PixelCalibration.attach`` does.

    Returns
    -------
    onnx.ModelProto
        Input ``image`` ``(batch, 1, ny, nx)`` float32 (normalised, as the Keras model's),
        ``ny`` and ``nx`` multiples of ``2**depth``; output ``prob``
        ``(batch, n_class, ny, nx)`` float32. Its metadata holds the class names,
        ``multiple`` (``2**depth``) and ``calibrated`` ("1" when a calibration was given).
    """
    import onnx

    from segnet.network.model import fold_batch_norm, model_class_names

    model = fold_batch_norm(model)
    classes = model_class_names(model)
    multiple = next(int(layer.multiple) for layer in model.layers if hasattr(layer, "multiple"))
    g = _Graph()
    score = _segnet(g, model, "image")
    prob = g.op("Sigmoid", [score])
    if calibration is not None and calibration.layers:
        prob = _calibrated(g, calibration, "image", score, prob)
    g.nodes.append(g.helper.make_node("Identity", [prob], ["prob"]))
    graph = g.helper.make_graph(
        g.nodes,
        model.name,
        [g.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 1, "ny", "nx"])],
        [g.helper.make_tensor_value_info("prob", onnx.TensorProto.FLOAT, ["batch", len(classes), "ny", "nx"])],
        g.inits,
    )
    proto = g.helper.make_model(
        graph, opset_imports=[g.helper.make_opsetid("", OPSET)], ir_version=8, producer_name="segnet"
    )
    calibrated = "1" if calibration is not None else "0"
    g.helper.set_model_props(proto, {"classes": ",".join(classes), "multiple": str(multiple), "calibrated": calibrated})
    onnx.checker.check_model(proto)
    return proto
