"""Masks for images already in memory: ``load_masker`` (../shared/CONTRACT.md, "Python API").

    from segnet import load_masker
    masker = load_masker()                 # the shipped model; load_masker("runs/x") for another
    result = masker(image)                 # 2-D numpy array (any dtype) or astropy CCDData/NDData
    result.prob, result.flags, result.mask("CR")
    results = masker.many(cutouts)         # many small images, batched through the network

The same tiling, pixel calibration, thresholds and priors as ``predict.py`` (one
``segnet.serving.prediction.FramePredictor`` underneath), so a masker's output equals
``predict.py``'s on the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foundation.tiling import TileSettings, mirror_to, predict_frame


@dataclass
class MaskResult:
    """The masks of one image.

    classes : class names, in output order (CONTRACT.md).
    prob : (n_class, ny, nx) float32, calibrated probabilities in [0, 1].
    flags : (ny, nx) int32, bit k-1 set where class k is at or above its threshold.
    thresholds : class name -> threshold used for ``flags``.
    priors : (n_class,) the frame's own class fractions with ``priors="auto"``, else None.
    """

    classes: tuple[str, ...]
    prob: np.ndarray
    flags: np.ndarray
    thresholds: dict
    priors: np.ndarray | None = None
    _data: np.ndarray | None = None
    _unit: object = None

    def mask(self, name: str) -> np.ndarray:
        """(ny, nx) bool: the pixels of class ``name`` at its threshold."""
        if name not in self.classes:
            raise ValueError(f"mask: unknown class {name!r} (the model predicts {list(self.classes)})")
        return (self.flags & (1 << self.classes.index(name))) != 0

    def contaminated(self) -> np.ndarray:
        """(ny, nx) bool: pixels flagged in any class but OBJ (objects are no contaminant)."""
        bits = sum(1 << k for k, c in enumerate(self.classes) if c != "OBJ")
        return (self.flags & bits) != 0

    def to_ccddata(self):
        """An ``astropy.nddata.CCDData`` of the image with the contaminated pixels as its mask.

        The flags go with it as ``flags`` (a bit plane, int32); the input's unit is kept
        (``adu`` when the input had none).
        """
        from astropy.nddata import CCDData

        return CCDData(self._data, unit=self._unit or "adu", mask=self.contaminated(), flags=self.flags)


class Masker:
    """A loaded model that masks images: ``masker(image)``, or ``masker.many(images)`` for small ones."""

    def __init__(self, predictor, settings: TileSettings = TileSettings()):
        self.predictor = predictor
        self.settings = settings
        self.classes = predictor.classes

    def __call__(self, image, *, saturation: float | None = None, bad_pixels=None) -> MaskResult:
        """Mask one image.

        Parameters
        ----------
        image : (ny, nx) numpy array of any numeric dtype, or astropy ``NDData``/``CCDData``
            (its ``mask`` is kept out of the background and noise estimates, its ``unit`` is kept).
        saturation : the saturation level in the image's units; pixels at or above it are kept
            out of the background and noise estimates (as ``predict.py`` does with SATURATE).
        bad_pixels : (ny, nx) bool, known bad pixels, likewise; or None.

        Returns
        -------
        MaskResult
        """
        data, unit, bad = _unpack(image, bad_pixels)
        mask = bad
        if saturation is not None:
            level = data >= np.float32(saturation)
            mask = level if mask is None else (mask | level)
        prob = np.zeros((len(self.classes),) + data.shape, np.float32)
        if not _constant(data):  # a constant image holds no contaminant (nor object): nothing is flagged
            predict_frame(
                self.predictor.network,
                data,
                prob,
                settings=self.settings,
                mask=mask,
                transform=self.predictor.transform(),
            )
        return self._finish(data, unit, prob)

    def many(self, images, *, batch_size: int = 16) -> list[MaskResult]:
        """Mask many small images, batched through the network: a list of ``MaskResult``, in order.

        Images of the same shape that fit in one tile go through the network together
        (``batch_size`` at a time); each is normalised on its own, as ``masker(image)``
        does, and larger ones are masked one by one with the tiles.
        """
        from foundation.normalize import network_input

        unpacked = [_unpack(image, None) for image in images]
        results: list[MaskResult | None] = [None] * len(unpacked)
        multiple = self.predictor.network.multiple
        groups: dict[tuple, list[int]] = {}
        for i, (data, unit, _) in enumerate(unpacked):
            if _constant(data):
                results[i] = self._finish(data, unit, np.zeros((len(self.classes),) + data.shape, np.float32))
            elif max(data.shape) <= self.settings.tile:
                groups.setdefault(data.shape, []).append(i)
            else:
                results[i] = self(images[i])
        transform = self.predictor.transform()
        for shape, members in groups.items():
            padded = tuple(-(-n // multiple) * multiple for n in shape)
            for first in range(0, len(members), batch_size):
                chunk = members[first : first + batch_size]
                x = np.zeros((len(chunk),) + padded + (1,), np.float32)
                invalid = []
                for b, i in enumerate(chunk):
                    data, _, bad = unpacked[i]
                    xi, inv = network_input(data, saturated=bad)
                    x[b, ..., 0] = mirror_to(xi, padded)
                    invalid.append(inv)
                out = self.predictor.network.predict_planes(x)
                for b, i in enumerate(chunk):
                    prob = np.array(out[b, :, : shape[0], : shape[1]], np.float32)
                    prob[:, invalid[b]] = 0.0
                    if transform is not None:
                        prob = transform(prob).astype(np.float32)
                    data, unit, _ = unpacked[i]
                    results[i] = self._finish(data, unit, prob)
        return results

    def _finish(self, data, unit, prob) -> MaskResult:
        priors = self.predictor.adjust_to_frame(data, prob) if self.predictor.auto_priors else None
        np.clip(prob, 0.0, 1.0, out=prob)
        flags = self.predictor.flags_of(prob)
        return MaskResult(self.classes, prob, flags, dict(self.predictor.thresholds), priors, data, unit)


def _constant(data: np.ndarray) -> bool:
    finite = data[np.isfinite(data)]
    return bool(finite.min() == finite.max())


def _unpack(image, bad_pixels):
    """(data float32 (ny, nx), unit or None, bad-pixel mask or None) of a numpy array or NDData."""
    unit, bad = None, None
    if hasattr(image, "data") and hasattr(image, "unit") and not isinstance(image, np.ndarray):  # NDData, CCDData
        unit = image.unit
        if getattr(image, "mask", None) is not None:
            bad = np.asarray(image.mask, bool)
        image = image.data
    data = np.asarray(image)
    if data.ndim != 2 or min(data.shape) < 1:
        raise ValueError(f"image: expected a 2-D array, got shape {data.shape}")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ValueError(f"image: expected numbers, got dtype {data.dtype}")
    data = data.astype(np.float32)
    if not np.isfinite(data).any():
        raise ValueError("image: no finite pixel (all NaN or inf)")
    if bad_pixels is not None:
        extra = np.asarray(bad_pixels, bool)
        if extra.shape != data.shape:
            raise ValueError(f"bad_pixels: shape {extra.shape} differs from the image's {data.shape}")
        bad = extra if bad is None else (bad | extra)
    if bad is not None and bad.shape != data.shape:
        raise ValueError(f"image.mask: shape {bad.shape} differs from the image's {data.shape}")
    return data, unit, bad


def load_masker(
    model: str | Path | None = None,
    *,
    thresholds: str | Path | None = None,
    priors: str | Path | None = None,
    settings: TileSettings | None = None,
    runtime: str = "auto",
) -> Masker:
    """Load a model for masking images in memory.

    Parameters
    ----------
    model : a run folder, model folder or .keras file; None: the shipped model (models/default).
    thresholds : YAML file of class -> threshold overriding the model's thresholds.yaml, or None.
    priors : YAML file of class -> expected pixel fraction, or "auto" (each image's own, by EM), or None.
    settings : the tiles (``foundation.tiling.TileSettings``: largest side, context margin, blended
        overlap); default ``predict.py``'s. Smaller tiles use less memory.
    runtime : what runs the network: "auto" (ONNX Runtime if installed, else Keras), "onnx" or "keras";
        the same probabilities either way (``segnet.serving.runtime``).

    Returns
    -------
    Masker
    """
    from segnet.serving.prediction import FramePredictor
    from segnet.training.run_folder import DEFAULT_MODEL_DIR, resolve_model

    model_path, folder = resolve_model(model or DEFAULT_MODEL_DIR)
    predictor = FramePredictor(
        model_path,
        folder,
        thresholds_file=None if thresholds is None else Path(thresholds),
        priors_file=None if priors is None else Path(priors),
        runtime=runtime,
    )
    settings = settings or TileSettings()
    settings.check(predictor.network.multiple)
    return Masker(predictor, settings)
