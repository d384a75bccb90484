"""The tools the real-frame benchmark compares: the evaluated model, astroscrappy, and the peers.

They are bench/peers.py's adapters (``bench.peers.TOOLS``), called in this process:
the model as predict.py runs it (its calibration, its thresholds, saturated pixels
kept out of the background), astroscrappy at its defaults with the frame's gain,
read noise and saturation, and MaxiMask, deepCR and Cosmic-CoNN where their packages
are installed (``bench/requirements-peers*.txt``; otherwise each is skipped with one line).
On injected versions, astroscrappy's ``sigclip`` is swept (its ``refine``), so that
its true-positive rate can be read at a fixed false-positive rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foundation.devset import RealFrame

from .harness import Version

DEFAULT_PEERS = ("astroscrappy", "maximask", "deepcr", "cosmic-conn")


def _bench():
    from bench import peers  # the adapters live with the peers' benchmark

    return peers


def bench_frame(frame: RealFrame, version: Version):
    peers = _bench()
    cam = frame.camera
    return peers.Frame(
        version.image, version.saturated, peers.Camera(cam.gain, cam.read_noise, cam.bias, 0.0, cam.saturation)
    )


class AdapterTool:
    """One of bench/peers.py's tools, on every version it can use."""

    def __init__(self, key: str, spec: dict):
        peers = _bench()
        self.key = key
        self.adapter = peers.TOOLS[key](spec)
        self.name = "model" if key == "ours" else self.adapter.name
        self.classes = tuple(self.adapter.classes)
        self.thresholds = dict(self.adapter.thresholds)
        self.min_side = self.adapter.min_side

    def predict_versions(self, frame: RealFrame, made: list[Version]) -> list:
        if min(frame.image.shape) < self.min_side:
            return [None] * len(made)  # MaxiMask: frames over 400 px a side only
        out = []
        for version in made:
            if version.kind != "frame" and not set(version.truth) & set(self.classes):
                out.append(None)
                continue
            data = bench_frame(frame, version)
            scores = self.adapter.predict(data)
            if version.kind != "frame":
                scores = self.adapter.refine(data, scores)  # astroscrappy: the sigclip sweep
            # A non-finite score is no probability (MaxiMask divides by a zero noise map on flats): 0.
            out.append(
                {
                    c: np.nan_to_num(np.asarray(scores[c], np.float32), nan=0.0, posinf=1.0, neginf=0.0)
                    for c in self.classes
                }
            )
        return out


def load_tools(model_path: Path, folder: Path, peers=DEFAULT_PEERS, *, say=print) -> list:
    """The model first, then each peer that is installed and loads; a skipped peer gets one line."""
    bench = _bench()
    spec = {"model": str(model_path), "model_folder": str(folder)}
    tools = [AdapterTool("ours", spec)]
    for key in peers:
        missing = bench.missing_module(bench.TOOLS[key])
        if missing:
            say(f"{bench.TOOLS[key].name}: skipped ({missing} is not installed; {bench.TOOLS[key].install})")
            continue
        try:
            tools.append(AdapterTool(key, spec))
        except Exception as exc:  # a peer that fails to load must not stop the benchmark
            say(f"{bench.TOOLS[key].name}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    return tools
