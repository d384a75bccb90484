"""Our SegNet beside MaxiMask, deepCR, Cosmic-CoNN, astroscrappy and lacosmic, on the same frames.

    .venv-peers/bin/python bench/peers.py --model runs/multiclass-v1 --n 8 --size 512
    .venv-peers/bin/python bench/peers.py --frames a.fits b.fits      # no truth: speed, flagged fractions
    python bench/peers.py --peers astroscrappy --n 2                   # only what is installed here

The peers live in their own environment (``bench/requirements-peers.txt``); a peer
that is not installed is skipped with one line. ``bench/README.md`` says what each
tool is fed (units, background, its own normalisation) and how its classes map to ours.

Simulated frames (the model's own data config, split ``test``, SIZE x SIZE, seed SEED)
carry exact truth: one table per class with a row for every tool that predicts it
(AUC, TPR at 0.1 % and 0.5 % FPR, the same with the prediction dilated 3x3, the best
MCC and its threshold, the MCC at the tool's own default threshold). FITS frames carry
none: they give the fraction of pixels each tool flags at its default threshold.
Saturated and non-finite pixels are left out, as in evaluate.py.

Each tool runs in a child process of its own, one after the other, on the same frames
in the same process tree. A child loads its model, predicts one frame untimed (warm-up),
then times only its predictions (each tool's own preprocessing included), and reports
its own peak resident memory: VmHWM of /proc/self/status, because ru_maxrss (and
os.wait4) would include the parent's resident set, inherited at exec. Speed ratios are
ours / tool (> 1: ours faster); memory ratios are ours / tool (< 1: ours lighter).
``--rounds R`` runs every tool R times, interleaved (this machine's speed drifts), and
reports the median time.

Writes ``peers.md`` (the command and every table), ``peers.csv`` (table, class, tool,
metric, value) and ``roc.png`` (one panel per class, every tool) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import math
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from segnet.evaluation.metrics import spread, unspread  # noqa: E402  (after ROOT joins sys.path)

FPR_POINTS = (1e-3, 5e-3)  # the false-positive rates the tables quote
MAXIMASK_BATCH = 8  # blocks of 400x400 per forward pass (its CLI's default)
SIGCLIP_DEFAULT = 4.5  # astroscrappy's default; L.A.Cosmic's own
SIGCLIP_SWEEP = (2.0, 3.0, 4.0, 4.5, 5.0, 6.0, 8.0, 12.0, 20.0, 40.0)  # evaluate.py's sweep


# --- What every tool is fed -------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """What a frame's header says about its pixels, relative to the image as stored (ADU).

    gain : e-/ADU. read_noise : e-. bias : ADU still in the image (0 once removed).
    sky : ADU of sky removed from the image (sky-subtracted products), else 0.
    saturation : ADU at which the image as stored saturates.
    """

    gain: float
    read_noise: float
    bias: float
    sky: float
    saturation: float

    @classmethod
    def from_header(cls, header) -> "Camera":
        """From a FITS header or a simulated sample's header (key -> (value, comment)).

        Keywords: GAIN (default 1), RDNOISE (default 6.5 e-, astroscrappy's), BIAS
        (default 0: a calibrated frame), SATURATE (default 65535), and the simulator's
        SKYSUB / SKYLEVEL (e-) for sky-subtracted products, whose bias is already gone.
        """

        def get(key, default):
            value = header.get(key, default)
            return value[0] if isinstance(value, tuple) else value

        gain = float(get("GAIN", 1.0))
        if gain <= 0:
            raise ValueError(f"GAIN: must be > 0, got {gain}")
        raw_bias = float(get("BIAS", 0.0))
        saturation = float(get("SATURATE", 65535.0))
        if get("SKYSUB", False):
            sky = float(get("SKYLEVEL", 0.0)) / gain
            return cls(gain, float(get("RDNOISE", 6.5)), 0.0, sky, saturation - raw_bias - sky)
        return cls(gain, float(get("RDNOISE", 6.5)), raw_bias, 0.0, saturation)


@dataclass
class Frame:
    image: np.ndarray  # (ny, nx) float32, ADU, as in the file or as simulated
    saturated: np.ndarray  # (ny, nx) bool
    camera: Camera


def calibrated_adu(frame: Frame) -> np.ndarray:
    """Bias removed, sky kept (given back to sky-subtracted products): a calibrated frame in ADU.

    Non-finite pixels become the frame's median. float32, native byte order.
    """
    image = frame.image.astype(np.float32) - np.float32(frame.camera.bias) + np.float32(frame.camera.sky)
    bad = ~np.isfinite(image)
    if bad.any():
        image[bad] = np.median(image[~bad]) if (~bad).any() else 0.0
    return image


def sweep_scores(masks) -> np.ndarray:
    """A score map from masks at increasing strictness: (k+1)/n where mask k is the strictest that flags.

    Thresholding the score at (k+1)/n gives back mask k wherever the masks are nested
    (LACosmic's are, up to rare pixels); 0 where no mask flags. float32 in [0, 1].
    """
    masks = list(masks)
    score = np.zeros(np.shape(masks[0]), np.float32)
    for k, mask in enumerate(masks):
        score[np.asarray(mask, bool)] = (k + 1) / len(masks)
    return score


def at_half(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Map probabilities monotonically so that ``threshold`` lands on 0.5 (0 -> 0, 1 -> 1, linear between).

    The maximum of two such maps, thresholded at 0.5, flags exactly the pixels where
    either input reaches its own threshold.
    """
    p = np.asarray(prob, np.float32)
    return np.where(p < threshold, 0.5 * p / threshold, 0.5 + 0.5 * (p - threshold) / (1.0 - threshold))


# --- The tools: one small adapter each ---------------------------------------------------


class Tool:
    """How a tool is loaded (not timed), fed and read.

    ``predict`` is what is timed: the tool as its authors run it, at its defaults.
    ``refine`` (untimed) may add what only the tables need, e.g. a threshold sweep.
    Both return {our class name: (ny, nx) score in [0, 1]}.
    """

    key = ""  # name on the command line
    name = ""  # name in the tables
    modules: tuple[str, ...] = ()  # what must be importable
    install = "pip install -r bench/requirements-peers.txt (see bench/README.md)"
    classes: tuple[str, ...] = ("CR",)
    min_side = 1  # px

    def __init__(self, spec: dict):
        self.thresholds: dict[str, float] = {}

    def predict(self, frame: Frame) -> dict:
        raise NotImplementedError

    def refine(self, frame: Frame, scores: dict) -> dict:
        return scores

    @staticmethod
    def threshold_label(threshold: float) -> str:
        return f"{threshold:.4g}"  # MaxiMask's prior-modified thresholds go far below 1e-4


class Ours(Tool):
    """Our SegNet as predict.py runs it: the frame as stored, tiled prediction, the model's thresholds."""

    key, name = "ours", "ours"
    modules = ("keras",)
    install = "pip install -e ."

    priors = None  # predict.py's --priors

    def __init__(self, spec):
        super().__init__(spec)
        from foundation.tiling import TileSettings, predict_frame
        from segnet.serving.prediction import FramePredictor

        self.predictor = FramePredictor(Path(spec["model"]), Path(spec["model_folder"]), priors_file=self.priors)
        # The network with its pixel calibration: thresholds.yaml holds thresholds of calibrated probabilities.
        self.model, self.classes = self.predictor.network, self.predictor.classes
        self.thresholds = self.predictor.thresholds
        self._predict_frame, self._settings = predict_frame, TileSettings()

    def probabilities(self, frame) -> np.ndarray:
        """(n_class, ny, nx) float32: the calibrated probabilities, as predict.py computes them."""
        out = np.zeros((len(self.classes),) + frame.image.shape, np.float32)
        self._predict_frame(self.model, frame.image, out, settings=self._settings, mask=frame.saturated)
        return out

    def predict(self, frame):
        return dict(zip(self.classes, self.probabilities(frame)))


class OursAutoPriors(Ours):
    """Our SegNet as ``predict.py --priors auto`` runs it: each frame moved to its own class proportions (EM)."""

    key, name = "ours-auto", "model, priors auto"
    priors = "auto"

    def predict(self, frame):
        out = self.probabilities(frame)
        self.predictor.adjust_to_frame(frame.image, out)
        return dict(zip(self.classes, out))


class MaxiMask(Tool):
    """MaxiMask's network called directly (its CLI re-runs its last batch), on its own normalisation.

    Fed the calibrated frame in ADU; ``image_norm`` subtracts its own background map and
    divides by its own noise map. Probabilities are prior-modified with its shipped
    priors and read against its shipped thresholds, as its CLI does by default.
    """

    key, name = "maximask", "MaxiMask"
    modules = ("maximask_and_maxitrack", "tensorflow")
    OWN = {"CR": "CR", "HCL": "HCL", "BCL": "DCL", "HPX": "HP", "BPX": "DP", "PER": "P", "TRL": "TRL", "FRG": "FR"}
    classes = ("CR", "HCL", "BCL", "BLN", "HPX", "BPX", "PER", "TRL", "FRG")
    min_side = 400  # its network's input block; its CLI refuses frames not over 400 px a side

    def __init__(self, spec):
        super().__init__(spec)
        import tensorflow as tf
        from maximask_and_maxitrack import utils
        from maximask_and_maxitrack.maximask import maximask

        here = Path(maximask.__file__).parent
        Inference = maximask.MaxiMask_inference
        n = Inference.nb_classes

        def config(name):
            return utils.read_config_file(str(here / "config" / name), n, logging, to_float=True)

        self.abbr = list(Inference.class_abbr)
        own = dict(zip(self.abbr, (float(t) for t in config("classes.thresh"))))
        # All 14 outputs, prior-modified, unthresholded.
        self.inference = Inference(None, None, np.ones(n, bool), config("classes.priors"), None, False, MAXIMASK_BATCH)
        self.net = tf.saved_model.load(str(here / "model"))
        self.image_norm = utils.image_norm
        self.own_thresholds = own
        self.thresholds = {ours: own[theirs] for ours, theirs in self.OWN.items()}
        self.thresholds["BLN"] = 0.5  # see at_half: HCL or DCL at its own threshold

    def predict(self, frame):
        image, _seconds = self.image_norm(calibrated_adu(frame))  # utils.timeit returns (result, seconds)
        ny, nx = image.shape
        out = np.zeros((ny, nx, len(self.abbr)), np.float32)
        blocks = self.inference.get_block_coords(ny, nx)
        for i in range(0, len(blocks), MAXIMASK_BATCH):
            self.inference.process_batch(image, out, self.net, blocks[i : i + MAXIMASK_BATCH])
        planes = dict(zip(self.abbr, np.moveaxis(out, -1, 0)))
        scores = {ours: planes[theirs] for ours, theirs in self.OWN.items()}
        # Its HCL and DCL classes cover lines as well as columns.
        scores["BLN"] = np.maximum(
            at_half(planes["HCL"], self.own_thresholds["HCL"]), at_half(planes["DCL"], self.own_thresholds["DCL"])
        )
        return scores


class DeepCR(Tool):
    """deepCR's ground-based ``decam`` mask model: calibrated frame in ADU, sky kept; threshold 0.5."""

    key, name = "deepcr", "deepCR"
    modules = ("deepCR", "torch")

    def __init__(self, spec):
        super().__init__(spec)
        import torch
        from deepCR import deepCR

        self.torch = torch
        self.model = deepCR(mask="decam", device="CPU")
        self.thresholds = {"CR": 0.5}

    def predict(self, frame):
        # no_grad: deepCR's clean() builds the autograd graph (its `required_grad` typo); same output.
        with self.torch.no_grad():
            prob = self.model.clean(calibrated_adu(frame), threshold=0.5, binary=False)
        return {"CR": np.asarray(prob, np.float32)}


class CosmicCoNN(Tool):
    """Cosmic-CoNN's ``ground_imaging`` model: calibrated frame in electrons, sky kept; threshold 0.5."""

    key, name = "cosmic-conn", "Cosmic-CoNN"
    modules = ("cosmic_conn", "torch")

    def __init__(self, spec):
        super().__init__(spec)
        from cosmic_conn import init_model

        self.model = init_model("ground_imaging")
        self.thresholds = {"CR": 0.5}

    def predict(self, frame):
        electrons = (calibrated_adu(frame) * np.float32(frame.camera.gain)).astype(np.float32)  # native order
        return {"CR": np.asarray(self.model.detect_cr(electrons), np.float32)}


class LACosmicSweep(Tool):
    """A LACosmic implementation: one run at sigclip 4.5 is timed; the sweep gives its ROC."""

    def __init__(self, spec):
        super().__init__(spec)
        # The score's own float32 value, so that `score >= threshold` gives back the sigclip 4.5 mask.
        self.thresholds = {"CR": float(np.float32((SIGCLIP_SWEEP.index(SIGCLIP_DEFAULT) + 1) / len(SIGCLIP_SWEEP)))}

    def mask(self, frame: Frame, sigclip: float) -> np.ndarray:
        raise NotImplementedError

    def predict(self, frame):
        return {"CR": self.mask(frame, SIGCLIP_DEFAULT)}

    def refine(self, frame, scores):
        masks = [scores["CR"] if s == SIGCLIP_DEFAULT else self.mask(frame, s) for s in SIGCLIP_SWEEP]
        return {"CR": sweep_scores(masks)}

    @staticmethod
    def threshold_label(threshold: float) -> str:
        k = round(threshold * len(SIGCLIP_SWEEP))
        return f"sigclip {SIGCLIP_SWEEP[k - 1]:g}" if k >= 1 else "0 (every pixel)"


def lacosmic_data(frame: Frame):
    """(data ADU, bias removed; background ADU removed earlier or None; saturation ADU of data)."""
    cam = frame.camera
    data = frame.image.astype(np.float32) - np.float32(cam.bias)
    return np.ascontiguousarray(data), (cam.sky or None), cam.saturation - cam.bias


class Astroscrappy(LACosmicSweep):
    """astroscrappy at its defaults, with the frame's gain, read noise and saturation (as evaluate.py)."""

    key, name = "astroscrappy", "astroscrappy"
    modules = ("astroscrappy",)
    install = "pip install -e ."

    def __init__(self, spec):
        super().__init__(spec)
        import astroscrappy

        self.detect = astroscrappy.detect_cosmics

    def mask(self, frame, sigclip):
        data, background, saturation = lacosmic_data(frame)
        inbkg = None if background is None else np.full(data.shape, background, np.float32)
        mask, _ = self.detect(
            data,
            inbkg=inbkg,
            gain=frame.camera.gain,
            readnoise=frame.camera.read_noise,
            satlevel=saturation,
            sigclip=sigclip,
        )
        return mask


class LACosmic(LACosmicSweep):
    """lacosmic (pure NumPy) with astroscrappy's defaults (objlim 5 -> contrast, sigfrac 0.3), saturation masked."""

    key, name = "lacosmic", "lacosmic"
    modules = ("lacosmic",)
    CONTRAST, SIGFRAC = 5.0, 0.3

    def __init__(self, spec):
        super().__init__(spec)
        import lacosmic

        self.remove_cosmics = lacosmic.remove_cosmics

    def mask(self, frame, sigclip):
        data, background, saturation = lacosmic_data(frame)
        _, mask = self.remove_cosmics(
            data,
            self.CONTRAST,
            sigclip,
            self.SIGFRAC * sigclip,
            background=background,
            effective_gain=frame.camera.gain,
            readnoise=frame.camera.read_noise,
            mask=frame.saturated | (data >= saturation),
        )
        return mask


TOOLS = {t.key: t for t in (Ours, OursAutoPriors, MaxiMask, DeepCR, CosmicCoNN, Astroscrappy, LACosmic)}
TOOLS_BY_NAME = {t.name: t for t in TOOLS.values()}
PEERS = [k for k in TOOLS if not k.startswith("ours")]
VARIANTS = ["ours-auto"]  # our model run otherwise; only when asked for


def missing_module(tool) -> str | None:
    """The first module of ``tool`` that cannot be imported here, or None."""
    for module in tool.modules:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):
            return module
    return None


# --- The child process: one tool, every frame -----------------------------------------------


def save_frame(path: Path, frame: Frame) -> None:
    np.savez(path, image=frame.image, saturated=frame.saturated, camera=json.dumps(asdict(frame.camera)))


def load_frame(path: Path) -> Frame:
    with np.load(path) as f:
        return Frame(f["image"], f["saturated"], Camera(**json.loads(str(f["camera"]))))


def peak_rss_mb() -> float:
    """This process's own peak resident memory (MB): VmHWM, not ru_maxrss (which counts the parent's)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(spec_path: Path) -> int:
    spec = json.loads(Path(spec_path).read_text())
    tool = TOOLS[spec["tool"]](spec)
    paths = [Path(p) for p in spec["frames"]]
    tool.predict(load_frame(paths[0]))  # warm-up: tracing, lazy initialisation
    loaded_mb = peak_rss_mb()
    seconds, pixels = 0.0, 0
    out = Path(spec["out"])
    for i, path in enumerate(paths):
        frame = load_frame(path)
        start = time.perf_counter()
        scores = tool.predict(frame)
        seconds += time.perf_counter() - start
        pixels += frame.image.size
        if spec["save"]:
            scores = tool.refine(frame, scores)
            np.savez(out / f"{i:04d}.npz", **{c: np.clip(np.asarray(s, np.float32), 0, 1) for c, s in scores.items()})
    result = {
        "classes": list(tool.classes),
        "thresholds": {c: float(tool.thresholds[c]) for c in tool.classes},
        "seconds": seconds,
        "pixels": pixels,
        "frames": len(paths),
        "peak_mb": peak_rss_mb(),
        "loaded_mb": loaded_mb,
    }
    (out / "result.json").write_text(json.dumps(result))
    return 0


# --- The parent: frames, children, metrics, tables ------------------------------------------


@dataclass
class FrameRecord:
    path: Path  # the saved Frame (npz)
    truth: Path | None  # saved truth and valid map (simulated frames)
    label: str  # "sim 3 (optical_sparse)" or the FITS file name
    shape: tuple[int, int]


def config_path(text: str) -> Path:
    path = Path(text)
    if not path.exists() and (ROOT / "configs" / text).exists():
        path = ROOT / "configs" / text
    if not path.is_file():
        raise FileNotFoundError(f"--config {text}: no such file (nor configs/{text})")
    return path


def simulate_frames(config: Path, size: int, n: int, seed: int, workdir: Path) -> tuple[list[FrameRecord], tuple]:
    """Held-out simulated frames: split 'test' of ``config``'s data section, SIZE x SIZE."""
    from data_sim import SampleSource, load_sim_section

    section = load_sim_section(config, config_dir=ROOT / "configs")
    section = replace(section, data=replace(section.data, tile=size))
    source = SampleSource(section, seed, split="test")
    records = []
    for i in range(n):
        sample = source[i]
        frame = Frame(sample.image.astype(np.float32), sample.saturated, Camera.from_header(sample.header))
        path, truth = workdir / f"sim{i:04d}.npz", workdir / f"sim{i:04d}.truth.npz"
        save_frame(path, frame)
        np.savez(truth, truth=sample.truth, valid=np.isfinite(sample.image) & ~sample.saturated)
        records.append(FrameRecord(path, truth, f"sim {i} ({sample.family})", sample.image.shape))
    return records, tuple(section.classes)


def read_fits_frames(paths, workdir: Path) -> list[FrameRecord]:
    from foundation.fits_io import open_input, select_planes

    records = []
    for k, name in enumerate(paths):
        with open_input(Path(name)) as hdul:
            plane = select_planes(Path(name), hdul)[0]
            image = np.asarray(plane.data[:, :], dtype=np.float32)
            header = plane.header
            camera = Camera.from_header(header)
        saturated = (
            np.isfinite(image) & (image >= camera.saturation) if "SATURATE" in header else np.zeros(image.shape, bool)
        )
        path = workdir / f"fits{k:04d}.npz"
        save_frame(path, Frame(image, saturated, camera))
        records.append(FrameRecord(path, None, Path(name).name, image.shape))
    return records


def run_tool(key: str, records, workdir: Path, model: tuple[Path, Path], *, save: bool) -> dict:
    """Run one tool in a child process; its result, or {"error": one line}."""
    out = workdir / key
    out.mkdir(exist_ok=True)
    spec = {
        "tool": key,
        "frames": [str(r.path) for r in records],
        "out": str(out),
        "save": save,
        "model": str(model[0].resolve()),
        "model_folder": str(model[1].resolve()),
    }
    spec_path = workdir / f"{key}.spec.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )
    if proc.returncode != 0 or not (out / "result.json").is_file():
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads((out / "result.json").read_text())


def class_metrics(key: str, result: dict, records, data_classes, workdir: Path, n_bins: int = 10_000):
    """ClassMetrics of one tool over the simulated frames, for the classes both it and the data have."""
    from segnet.evaluation.metrics import ClassMetrics

    classes = [c for c in result["classes"] if c in data_classes]
    metrics = ClassMetrics(classes, n_bins, spacing="linear")  # even bins: spread() and threshold_index assume them
    for i, record in enumerate(records):
        if record.truth is None or not classes:
            continue
        with np.load(workdir / key / f"{i:04d}.npz") as scores, np.load(record.truth) as t:
            prob = spread(np.stack([scores[c] for c in classes]))
            truth = t["truth"][[data_classes.index(c) for c in classes]]
            metrics.update(prob, truth, t["valid"])
    return metrics


def flagged_fractions(key: str, result: dict, records, workdir: Path) -> dict[str, float]:
    """Fraction of valid pixels of the FITS frames that the tool flags at its default thresholds."""
    flagged = dict.fromkeys(result["classes"], 0)
    total = 0
    for i, record in enumerate(records):
        if record.truth is not None:
            continue
        frame = load_frame(record.path)
        valid = np.isfinite(frame.image) & ~frame.saturated
        total += int(valid.sum())
        with np.load(workdir / key / f"{i:04d}.npz") as scores:
            for c in result["classes"]:
                flagged[c] += int(((scores[c] >= result["thresholds"][c]) & valid).sum())
    return {c: v / total for c, v in flagged.items()} if total else {}


METRIC_COLUMNS = [f"TPR@{f * 100:g}%FPR" for f in FPR_POINTS] + [f"TPR3x3@{f * 100:g}%FPR" for f in FPR_POINTS]
CLASS_COLUMNS = ["AUC"] + METRIC_COLUMNS + ["best MCC", "MCC threshold", "default threshold", "MCC@default"]
SPEED_COLUMNS = ["frames", "Mpix", "seconds", "Mpix/s", "peak MB", "loaded MB", "speed ours/tool", "peak MB ours/tool"]


def class_rows(summary, default_threshold: float) -> dict:
    """One table row: the figures of ``CLASS_COLUMNS`` from a ClassSummary."""
    rows = dict(summary.rows())  # scores went through spread(): thresholds come back through unspread()
    row = {c: rows[c] for c in ["AUC"] + METRIC_COLUMNS + ["best MCC"]}
    row["MCC threshold"] = float(unspread(rows["MCC threshold"]))
    row["default threshold"] = default_threshold
    row["MCC@default"] = (
        float(summary.mcc_curve()[threshold_index(summary, default_threshold)])
        if summary.n_pos and summary.n_neg
        else float("nan")
    )
    return row


def threshold_index(summary, threshold: float) -> int:
    """The bin edge at or just below ``threshold`` (in spread scores): exact for the sweeps' steps."""
    return int(np.searchsorted(summary.thresholds, float(spread(threshold)) + 1e-12, side="right")) - 1


def speed_rows(results: dict) -> dict:
    """{tool: row}, with ratios to ours where ours ran."""
    table = {}
    for key, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        mpix = runs[0]["pixels"] / 1e6
        table[TOOLS[key].name] = {
            "frames": runs[0]["frames"],
            "Mpix": mpix,
            "seconds": seconds,
            "Mpix/s": mpix / seconds if seconds > 0 else float("nan"),
            "peak MB": max(r["peak_mb"] for r in runs),
            "loaded MB": max(r["loaded_mb"] for r in runs),
        }
    ours = table.get(Ours.name)
    for row in table.values():
        row["speed ours/tool"] = ours["Mpix/s"] / row["Mpix/s"] if ours else float("nan")
        row["peak MB ours/tool"] = ours["peak MB"] / row["peak MB"] if ours else float("nan")
    return table


def fmt(value, digits: int = 4) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, np.integer)) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value + 0.0 if round(value, digits) else 0.0:.{digits}f}"  # no "-0.0000"


SPEED_FORMATS = {
    "Mpix": 3,
    "seconds": 2,
    "Mpix/s": 3,
    "peak MB": 0,
    "loaded MB": 0,
    "speed ours/tool": 2,
    "peak MB ours/tool": 2,
}


def markdown_table(first: str, columns, rows: dict, formats=None) -> str:
    """A markdown table: one row per key of ``rows``; ``formats``: column -> digits or callable(row name, value)."""
    formats = formats or {}

    def cell(name, column, value):
        how = formats.get(column, 4)
        return how(name, value) if callable(how) else fmt(value, how)

    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        f"| {name} | " + " | ".join(cell(name, c, row.get(c)) for c in columns) + " |" for name, row in rows.items()
    ]
    return "\n".join(lines)


def threshold_cell(tool_name, value):
    return TOOLS_BY_NAME[tool_name].threshold_label(value) if value is not None and not math.isnan(value) else "–"


@dataclass
class Report:
    classes: dict  # class -> {tool: row}, rows of CLASS_COLUMNS
    positives: dict  # class -> (positive pixels, pixels)
    speed: dict  # tool -> row of SPEED_COLUMNS
    flagged: dict  # tool -> {class: fraction}
    skipped: dict  # tool -> why
    header: str

    def markdown(self) -> str:
        parts = [self.header]
        thresholds = {"MCC threshold": threshold_cell, "default threshold": threshold_cell}
        for name, rows in self.classes.items():
            pos, pix = self.positives[name]
            parts.append(
                f"### {name} ({pos:,} positive pixels of {pix:,})\n\n"
                + markdown_table("tool", CLASS_COLUMNS, rows, thresholds)
            )
        if self.flagged:
            from foundation.classes import CLASS_NAMES

            names = [c for c in CLASS_NAMES if any(c in row for row in self.flagged.values())]
            percent = {c: (lambda _, v: "–" if v is None else f"{100 * v:.3f}") for c in names}
            parts.append(
                "### Flagged on the FITS frames at default thresholds (% of valid pixels)\n\n"
                + markdown_table("tool", names, self.flagged, percent)
            )
        parts.append(
            "### Speed and memory\n\n"
            + markdown_table("tool", SPEED_COLUMNS, self.speed, SPEED_FORMATS)
            + "\n\nspeed ours/tool > 1: ours is faster; peak MB ours/tool < 1: ours needs less memory. "
            "Peak MB is each child process's own peak resident memory (libraries included); "
            "loaded MB, its peak after loading and one warm-up frame."
        )
        if self.skipped:
            parts.append("Skipped: " + "; ".join(f"{k}: {v}" for k, v in self.skipped.items()))
        return "\n\n".join(parts) + "\n"

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["table", "class", "tool", "metric", "value"])
            for name, rows in self.classes.items():
                for tool, row in rows.items():
                    writer.writerows(["class", name, tool, m, row[m]] for m in CLASS_COLUMNS)
            for tool, row in self.flagged.items():
                writer.writerows(["flagged", c, tool, "fraction", v] for c, v in row.items())
            for tool, row in self.speed.items():
                writer.writerows(["speed", "", tool, m, row[m]] for m in SPEED_COLUMNS)


def plot_roc(metrics: dict, results: dict, path: Path) -> None:
    from foundation.classes import CLASS_NAMES
    from segnet.evaluation.figures import class_panels, close, roc_axis

    names = [c for c in CLASS_NAMES if any(c in m.class_names for m in metrics.values())]
    fig, axes = class_panels(names)
    for name, ax in axes.items():
        for key, m in metrics.items():
            if name not in m.class_names:
                continue
            s = m.summary(name)
            if not (s.n_pos and s.n_neg):
                continue
            (line,) = ax.plot(
                s.fpr, s.tpr, lw=1.5 if key == "ours" else 1.0, label=f"{TOOLS[key].name} ({s.auc():.3f})"
            )
            i = threshold_index(s, results[key]["thresholds"][name])
            ax.plot(s.fpr[i], s.tpr[i], "o", ms=4, color=line.get_color())
        roc_axis(ax, name)
        if ax.get_lines():
            ax.legend(fontsize=6, loc="lower right")
    fig.suptitle("ROC per class (dot: the tool's default threshold)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    close(fig)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="run folder or .keras file (default: latest run, else models/default)")
    parser.add_argument(
        "--config",
        help="config whose data section simulates the frames (default: the model's "
        "run folder config.yaml); a bare name is looked up in configs/",
    )
    parser.add_argument("--n", type=int, help="simulated frames (default 8; 0 with --frames)")
    parser.add_argument(
        "--size", type=int, default=512, help="simulated frame side, px (default 512: MaxiMask needs >= 400)"
    )
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (split 'test'; default 0)")
    parser.add_argument("--frames", nargs="+", default=[], metavar="FITS", help="FITS frames (no truth)")
    parser.add_argument(
        "--peers",
        nargs="*",
        default=PEERS,
        choices=PEERS + VARIANTS,
        metavar="PEER",
        help=f"peers to run beside ours (default all: {' '.join(PEERS)}; none: ours alone)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds, tools interleaved (default 1)")
    parser.add_argument("--out", default=str(ROOT / "out" / "peers"), help="folder for peers.md, peers.csv, roc.png")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.n is None:
        args.n = 0 if args.frames else 8
    for name, low in (("n", 0), ("size", 8), ("rounds", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name}: must be >= {low}, got {getattr(args, name)}")
    if args.n == 0 and not args.frames:
        parser.error("--n 0 without --frames: nothing to run on")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(Path(args.child))
    from segnet.training.run_folder import NoModelError, resolve_model

    try:
        model = resolve_model(args.model)
        config = config_path(args.config) if args.config else model[1] / "config.yaml"
        if args.n and not config.is_file():
            raise FileNotFoundError(f"{model[1]} has no config.yaml: give --config to simulate frames")
    except (NoModelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="peers."))
    try:
        return benchmark(args, model, config, workdir, out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def benchmark(args, model, config: Path, workdir: Path, out: Path) -> int:
    from foundation.fits_io import InputError

    started = time.perf_counter()
    records, data_classes = [], ()
    if args.n:
        records, data_classes = simulate_frames(config, args.size, args.n, args.seed, workdir)
    try:
        records += read_fits_frames(args.frames, workdir)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    smallest = min(min(r.shape) for r in records)
    header = (
        f"## Peers benchmark\n\nmodel: `{model[0]}`; "
        + (
            f"{args.n} simulated frames of {args.size}x{args.size} (`{config}`, split 'test', seed {args.seed})"
            if args.n
            else "no simulated frames"
        )
        + (f"; FITS frames: {', '.join(r.label for r in records if r.truth is None)}" if args.frames else "")
        + f"; {os.cpu_count()} CPU cores; timing rounds: {args.rounds}."
    )
    print(header.split("\n\n", 1)[1], flush=True)

    skipped, runnable = {}, []
    for key in ["ours"] + [p for p in PEERS + VARIANTS if p in args.peers]:
        tool = TOOLS[key]
        missing = missing_module(tool)
        if missing:
            skipped[tool.name] = f"not installed here (no module {missing}; {tool.install})"
        elif smallest < tool.min_side:
            skipped[tool.name] = f"needs frames of at least {tool.min_side} px a side (smallest here: {smallest})"
        else:
            runnable.append(key)
            continue
        print(f"{tool.name}: skipped, {skipped[tool.name]}", flush=True)

    results: dict[str, list[dict]] = {}
    for round_ in range(args.rounds):
        for key in runnable:
            if round_ and key not in results:
                continue
            result = run_tool(key, records, workdir, model, save=round_ == 0)
            if "error" in result:
                skipped[TOOLS[key].name] = f"failed: {result['error']}"
                print(f"{TOOLS[key].name}: skipped, failed: {result['error']}", flush=True)
                continue
            results.setdefault(key, []).append(result)
            where = f" (round {round_ + 1})" if args.rounds > 1 else ""
            print(
                f"{TOOLS[key].name}{where}: {result['frames']} frames in {result['seconds']:.2f} s "
                f"({result['pixels'] / 1e6 / result['seconds']:.3f} Mpix/s), peak {result['peak_mb']:.0f} MB",
                flush=True,
            )

    first = {key: runs[0] for key, runs in results.items()}
    metrics = {key: class_metrics(key, r, records, data_classes, workdir) for key, r in first.items()}
    classes, positives = {}, {}
    from foundation.classes import CLASS_NAMES

    for name in CLASS_NAMES:
        rows = {}
        for key, m in metrics.items():
            if name in m.class_names:
                s = m.summary(name)
                rows[TOOLS[key].name] = class_rows(s, first[key]["thresholds"][name])
                positives[name] = (int(s.n_pos), int(s.n_pos + s.n_neg))
        if rows:
            classes[name] = rows
    flagged = {}
    if args.frames:
        flagged = {TOOLS[key].name: flagged_fractions(key, r, records, workdir) for key, r in first.items()}
    report = Report(classes, positives, speed_rows(results), flagged, skipped, header)
    text = report.markdown()
    print("\n" + text, flush=True)

    python = Path(sys.executable)
    python = python.relative_to(ROOT) if python.is_relative_to(ROOT) else Path("python")
    command = " ".join(shlex.quote(str(a)) for a in [python, "bench/peers.py"] + list(args.argv))
    (out / "peers.md").write_text(f"{text}\ncommand: `{command}` ({time.perf_counter() - started:.0f} s)\n")
    report.write_csv(out / "peers.csv")
    if classes:
        plot_roc(metrics, first, out / "roc.png")
    print(f"wrote {out}/ (peers.md, peers.csv{', roc.png' if classes else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
