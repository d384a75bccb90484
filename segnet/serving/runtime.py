"""The network as prediction runs it: OpenVINO or ONNX Runtime on the exported graph, or Keras.

Both wrappers answer the same three things the tile loop asks: ``classes``,
``multiple`` (``2**depth``: window sides must be multiples of it) and
``predict_planes(x)``, ``(b, ny, nx, 1)`` normalised input to ``(b, n_class, ny, nx)``
calibrated probabilities.

``load_network`` prefers the ONNX graph (``model.onnx`` beside ``model.keras``,
written by ``ship``): OpenVINO and ONNX Runtime start in a fraction of a second and a
fraction of TensorFlow's memory, and compute the same probabilities but where
last-bit differences flip a pooling switch (``segnet.serving.onnx_export``). OpenVINO ran the
graph 1.8x faster than ONNX Runtime here and is preferred when both are installed.
The file records the sha256 of the ``.keras`` file and of ``calibration.yaml`` it was
made from; if either changed since (a retrained or recalibrated model), or there is
no such file (a training run), the graph is exported afresh in memory, which needs
Keras. ``runtime="keras"`` runs the Keras model itself.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

__all__ = [
    "OnnxNetwork",
    "OpenVinoNetwork",
    "KerasNetwork",
    "load_network",
    "onnx_digests",
    "ONNX_NAME",
    "RUNTIMES",
    "DIGEST_KEYS",
]

ONNX_NAME = "model.onnx"
RUNTIMES = ("auto", "onnx", "openvino", "keras")
DIGEST_KEYS = ("keras_sha256", "calibration_sha256")  # the exported graph's metadata: what it was made from


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else ""


def onnx_digests(model_path: Path, folder: Path) -> dict:
    """What an exported graph must match: sha256 of the .keras file and of calibration.yaml ('' if none)."""
    from segnet.calibration.pixel import FILE_NAME

    return dict(zip(DIGEST_KEYS, (_sha256(model_path), _sha256(Path(folder) / FILE_NAME))))


def _onnx_bytes(model) -> bytes:
    """A path to a .onnx file, its bytes, or an ``onnx.ModelProto``, as bytes."""
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    return model if isinstance(model, bytes) else Path(model).read_bytes()


def _channels_first(x: np.ndarray) -> np.ndarray:
    """The tile loop's (b, ny, nx, 1) float32 as the exported graph's contiguous (b, 1, ny, nx)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(x, np.float32), -1, 1))


def _describe(network, meta: dict) -> None:
    """Class names, ``multiple`` and whether it is calibrated, from the exported graph's metadata."""
    network.classes = tuple(meta["classes"].split(","))
    network.multiple = int(meta["multiple"])
    network.calibrated = meta.get("calibrated") == "1"
    network.metadata = meta


def _threads() -> int:
    """Intra-op threads: OMP_NUM_THREADS if set (predict.py --workers shares the cores so), else the CPUs this
    process may use."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxNetwork:
    """An exported SegNet run by ONNX Runtime on the CPU."""

    def __init__(self, model, *, threads: int | None = None):
        """``model``: a path to a .onnx file, its bytes, or an ``onnx.ModelProto``."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no optimiser chatter on the user's terminal
        options.enable_cpu_mem_arena = False  # buffers freed after each tile: less memory, same speed
        self.session = ort.InferenceSession(_onnx_bytes(model), options, providers=["CPUExecutionProvider"])
        _describe(self, self.session.get_modelmeta().custom_metadata_map)

    def predict_planes(self, x: np.ndarray) -> np.ndarray:
        """(b, ny, nx, 1) float32, ny and nx multiples of ``multiple`` -> (b, n_class, ny, nx) float32."""
        return self.session.run(None, {"image": _channels_first(x)})[0]


class OpenVinoNetwork:
    """An exported SegNet run by OpenVINO on the CPU, in float32 (its bf16 mode changes FLAGS; see docs)."""

    def __init__(self, model, *, threads: int | None = None):
        import openvino as ov

        self.core = ov.Core()
        self.graph = self.core.read_model(io.BytesIO(_onnx_bytes(model)))
        # The ONNX metadata, as OpenVINO keeps it (without importing onnx, which takes 0.8 s).
        keys = ("classes", "multiple", "calibrated", *DIGEST_KEYS)
        framework = [["framework", key] for key in keys]
        _describe(self, {k[1]: self.graph.get_rt_info(k).astype(str) for k in framework if self.graph.has_rt_info(k)})
        self.threads = threads or _threads()
        self.compiled = {}  # input shape -> compiled model

    def _for_shape(self, shape):
        """The graph compiled for one input shape. A static shape lets OpenVINO plan its buffers: on a
        1024^2 tile it used 594 MB instead of 916 MB and ran 20 % faster than with dynamic sizes. A
        frame's tiles share one shape; the last few shapes are kept."""
        if shape not in self.compiled:
            if len(self.compiled) >= 4:
                self.compiled.pop(next(iter(self.compiled)))
            self.graph.reshape({"image": list(shape)})
            self.compiled[shape] = self.core.compile_model(
                self.graph,
                "CPU",
                {
                    "INFERENCE_PRECISION_HINT": "f32",
                    "INFERENCE_NUM_THREADS": self.threads,
                    "PERFORMANCE_HINT": "LATENCY",
                },
            )
        return self.compiled[shape]

    def predict_planes(self, x: np.ndarray) -> np.ndarray:
        x = _channels_first(x)
        compiled = self._for_shape(x.shape)
        # The request's own output buffer, not a copy: every caller uses it before the next call.
        return compiled({"image": x}, share_outputs=True)[compiled.output(0)]


class KerasNetwork:
    """The Keras model (batch normalisation folded, calibration attached) behind the same interface."""

    def __init__(self, model, calibration=None):
        from foundation.tiling import model_multiple
        from segnet.network.model import fold_batch_norm, model_class_names

        self.model = fold_batch_norm(model)
        self.classes = tuple(model_class_names(self.model))
        self.multiple = model_multiple(self.model)
        self.calibrated = calibration is not None
        # The calibration joins the network's graph once, not once per frame.
        self.graph = calibration.attach(self.model) if calibration is not None else self.model

    def predict_planes(self, x: np.ndarray) -> np.ndarray:
        return np.moveaxis(np.asarray(self.graph.predict_on_batch(np.asarray(x, np.float32))), -1, 1)


def load_network(model_path: Path, folder: Path, runtime: str = "auto"):
    """The network of a trained model, calibrated: an `OpenVinoNetwork`, `OnnxNetwork` or `KerasNetwork`.

    Parameters
    ----------
    model_path : the ``.keras`` file; folder : the folder with its calibration.yaml.
    runtime : "auto" (OpenVINO when installed, else ONNX Runtime, else Keras), "openvino", "onnx" or
        "keras".

    Returns
    -------
    (network, source): ``source`` says what runs, for the output header: "<runtime> (model.onnx)",
    "<runtime> (exported at load)" or "keras". ``network.calibrated`` says whether calibration.yaml
    is applied.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"--runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "auto":  # the fastest installed (measured: bench/results/predict-runtimes-2026-12-01.md)
        from importlib.util import find_spec

        runtime = next(
            (
                name
                for name, module in (("openvino", "openvino"), ("onnx", "onnxruntime"))
                if find_spec(module) is not None
            ),
            "keras",
        )
    model_path, folder = Path(model_path), Path(folder)
    if runtime in ("onnx", "openvino"):
        kind = OnnxNetwork if runtime == "onnx" else OpenVinoNetwork
        shipped = model_path.with_name(ONNX_NAME)
        if shipped.is_file():
            network = kind(shipped)
            wanted = onnx_digests(model_path, folder)
            if all(network.metadata.get(k) == v for k, v in wanted.items()):
                return network, f"{runtime} ({ONNX_NAME})"
        return kind(export_folder(model_path, folder)), f"{runtime} (exported at load)"
    from segnet.calibration.pixel import folder_calibration
    from segnet.network.model import model_class_names
    from segnet.training.run_folder import load_model

    model = load_model(model_path)
    return KerasNetwork(model, folder_calibration(folder, tuple(model_class_names(model)))), "keras"


def export_folder(model_path: Path, folder: Path):
    """The ONNX graph (ModelProto) of a model file and its folder's calibration, stamped with their digests."""
    from segnet.calibration.pixel import folder_calibration
    from segnet.network.model import model_class_names
    from segnet.serving.onnx_export import export_onnx
    from segnet.training.run_folder import load_model

    model = load_model(model_path)
    proto = export_onnx(model, folder_calibration(Path(folder), tuple(model_class_names(model))))
    for key, value in onnx_digests(model_path, folder).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto
