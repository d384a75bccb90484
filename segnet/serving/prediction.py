"""One input file in, one mask file out: the job predict.py runs for every file.

A ``FramePredictor`` holds a loaded model with its class names, thresholds,
training class fractions (for the prior adjustment) and identity; ``process``
turns a FITS file into ``OUTDIR/<name>.mask.fits`` as CONTRACT.md says, or
raises ``InputError`` with a one-line message that starts with the file name.
Given an inpainting model, each image plane also gets a ``CLEAN`` HDU: the image
with the pixels flagged in the chosen classes replaced (``segnet.inpainting``).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits

from foundation.atomic import atomic_path
from foundation.fits_io import InputError, describe_fits_error, open_input, output_stem, release_pages, select_planes
from foundation.tiling import TileSettings, count_tiles, model_multiple, predict_frame
from segnet.evaluation.metrics import adjust_priors
from segnet.inpainting.defaults import DEFAULT_GROW, default_replaced
from segnet.inpainting.masks import flagged_classes, grow
from segnet.serving.output import (
    compress_file,
    create_output,
    plane_headers,
    primary_header,
    record_nonfinite,
    record_priors,
    record_replaced,
)
from segnet.serving.priors import PriorEstimator
from segnet.training.run_folder import read_mapping

DEFAULT_THRESHOLD = 0.5
AUTO_PRIORS = "auto"  # --priors auto: each frame's own class fractions (segnet.serving.priors)
STRIP = 256  # rows read or written at a time outside the network


def training_fractions(folder: Path) -> dict:
    """Class -> pixel fraction in the model's training tiles (class_fractions.yaml): the prior adjustments' start."""
    fractions_file = Path(folder) / "class_fractions.yaml"
    if not fractions_file.is_file():
        raise ValueError(
            f"--priors: the model's folder {folder} has no class_fractions.yaml "
            "(the training proportions the adjustment starts from)"
        )
    return yaml.safe_load(fractions_file.read_text())["classes"]


@dataclass
class PredictOptions:
    outdir: Path
    hdu: str | None = None
    all_hdus: bool = False
    overwrite: bool = False
    compress: bool = False
    saturation: float | None = None  # ADU; default: the header's SATURATE, if any
    bad_pixel_mask: Path | None = None  # FITS, nonzero = bad: left out of background/noise estimates
    inpaint_grow: int = DEFAULT_GROW  # px: CLEAN replaces the flagged pixels grown by this much (not into OBJ)
    settings: TileSettings = field(default_factory=TileSettings)


class FramePredictor:
    def __init__(
        self,
        model_path: Path,
        folder: Path,
        *,
        thresholds_file: Path | None = None,
        priors_file: Path | None = None,
        inpaint_model: Path | None = None,
        inpaint_classes=None,
        runtime: str = "auto",
    ):
        from segnet.serving.runtime import load_network
        from segnet.training.run_folder import software_version

        self.model_path = Path(model_path)
        # The calibrated network: the exported ONNX graph when it matches the .keras file, else Keras.
        self.network, self.runtime = load_network(self.model_path, folder, runtime)
        self.classes = self.network.classes
        self.thresholds, self.threshold_source = self._thresholds(folder, thresholds_file)
        # --priors FILE: fixed expected fractions; --priors auto: each frame's own, by EM (segnet.serving.priors).
        self.auto_priors = priors_file is not None and str(priors_file) == AUTO_PRIORS
        self.train_fractions = training_fractions(folder) if self.auto_priors else None
        self.priors = self._priors(folder, priors_file) if priors_file and not self.auto_priors else None
        self.inpainter, self.replaced = None, ()
        if inpaint_model is not None:
            from segnet.inpainting.apply import Inpainter

            self.replaced = self._replaced(inpaint_classes)
            self.inpainter = Inpainter(inpaint_model)
        digest = hashlib.sha256(self.model_path.read_bytes()).hexdigest()[:16]
        self.identity = {
            "MODEL": (f"{self.model_path.parent.name}/{self.model_path.name}"[-68:], "trained model"),
            "MODELSHA": (digest, "sha256 of the .keras file (first 16 hex digits)"),
            "SOFTWARE": ("contaminant-segnet", "SegNet contaminant masks"),
            "SWVERSN": (software_version()[:68], "software version (git describe)"),
            "THRESRC": (self.threshold_source[-68:], "where the thresholds come from"),
            "CALIBRAT": (self.network.calibrated, "pixel calibration (calibration.yaml) applied"),
            "RUNTIME": (self.runtime[:68], "what ran the network"),
        }

    def _thresholds(self, folder: Path, thresholds_file: Path | None):
        """The model's thresholds.yaml (else 0.5 for every class), overridden by --thresholds entries."""
        thresholds = {name: DEFAULT_THRESHOLD for name in self.classes}
        sources = [f"default {DEFAULT_THRESHOLD}"]
        own = Path(folder) / "thresholds.yaml"
        files = [(own, "thresholds file")] if own.is_file() else []
        if thresholds_file is not None:
            if not Path(thresholds_file).is_file():
                raise ValueError(f"--thresholds {thresholds_file}: no such file")
            files.append((Path(thresholds_file), "--thresholds"))
        for path, what in files:
            data = read_mapping(path, what)
            unknown = [k for k in data if k not in self.classes]
            if unknown:
                raise ValueError(
                    f"{what} {path}: unknown class {unknown[0]!r} (the model predicts {list(self.classes)})"
                )
            bad = {
                k: v
                for k, v in data.items()
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1
            }
            if bad:
                raise ValueError(f"{what} {path}: thresholds must be numbers in [0, 1], got {bad}")
            thresholds.update({k: float(v) for k, v in data.items()})
            sources.append(path.name)
        return thresholds, " + ".join(sources[1:]) if len(sources) > 1 else sources[0]

    def _replaced(self, names) -> tuple[str, ...]:
        """Classes whose flagged pixels CLEAN replaces, in the model's order.

        Default: every contaminant but SAT, FRG and GHO (``defaults.KEPT_BY_DEFAULT`` says why);
        ``--inpaint-classes`` may name them.
        """
        if names is None:
            return default_replaced(self.classes)
        unknown = [n for n in names if n not in self.classes]
        if unknown:
            raise ValueError(
                f"--inpaint-classes: unknown class {unknown[0]!r} (the model predicts {list(self.classes)})"
            )
        if "OBJ" in names:
            raise ValueError("--inpaint-classes: OBJ is not a contaminant; objects are never replaced")
        if not names:
            raise ValueError("--inpaint-classes: name at least one class")
        return tuple(c for c in self.classes if c in names)

    def _priors(self, folder: Path, priors_file: Path):
        wanted = read_mapping(priors_file, "--priors")
        unknown = [k for k in wanted if k not in self.classes]
        if unknown:
            raise ValueError(
                f"--priors {priors_file}: unknown class {unknown[0]!r} (the model predicts {list(self.classes)})"
            )
        train = training_fractions(folder)
        for k, v in wanted.items():
            if not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ValueError(f"--priors {priors_file}: {k}: expected a fraction in (0, 1), got {v!r}")
        return {c: (float(train[c]), float(wanted.get(c, train[c]))) for c in self.classes}

    def flags_of(self, prob: np.ndarray) -> np.ndarray:
        """FLAGS of probabilities (n_class, h, w): (h, w) int32, bit k-1 set where class k reaches its threshold."""
        thresholds = np.array([self.thresholds[c] for c in self.classes], np.float32)[:, None, None]
        bits = (2 ** np.arange(len(self.classes), dtype=np.int64))[:, None, None]
        return ((prob >= thresholds) * bits).sum(axis=0).astype(np.int32)

    def transform(self):
        if self.priors is None:
            return None
        train = np.array([self.priors[c][0] for c in self.classes])
        target = np.array([self.priors[c][1] for c in self.classes])
        return lambda p: adjust_priors(p, train, target)

    def tiles(self, path: Path, options: PredictOptions) -> int:
        """How many tiles ``process`` will run for ``path`` (for a progress bar); 0 if unreadable."""
        try:
            with open_input(path) as hdul:
                planes = select_planes(path, hdul, options.hdu, options.all_hdus)
                models = [self.network] + ([self.inpainter.model] if self.inpainter else [])
                return sum(count_tiles(p.shape, options.settings, model_multiple(m)) for p in planes for m in models)
        except InputError:
            return 0

    def process(self, path: Path, options: PredictOptions, progress=None) -> Path:
        path = Path(path)
        final = Path(options.outdir) / f"{output_stem(path)}.mask.fits"
        if final.exists() and not options.overwrite:
            raise InputError(f"{path}: output {final} exists (use --overwrite to replace it)")
        try:
            # Temporary files beside the output, removed on any failure or Ctrl-C: nothing half-written remains.
            with atomic_path(final) as tmp:
                if options.compress:
                    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".") as scratch:
                        plain = Path(scratch) / "plain.fits"
                        self._write_file(path, plain, options, progress)
                        compress_file(plain, tmp)
                else:
                    self._write_file(path, tmp, options, progress)
        except InputError:
            raise
        except Exception as exc:  # anything else about this file: report it on one line, go on with the next
            raise InputError(f"{path}: {describe_fits_error(exc)}") from exc
        return final

    def _write_file(self, path, tmp, options, progress):
        with open_input(path) as hdul:
            planes = select_planes(path, hdul, options.hdu, options.all_hdus)
            self._write(path, hdul, planes, tmp, options, progress)

    def _bad_pixel_mask(self, path, plane, options):
        """The user's --bad-pixel-mask as a bool array of the image's shape, or None."""
        if options.bad_pixel_mask is None:
            return None
        with fits.open(options.bad_pixel_mask) as hdul:
            data = next((h.data for h in hdul if h.is_image and h.data is not None and h.data.ndim == 2), None)
        if data is None:
            raise InputError(f"{path}: --bad-pixel-mask {options.bad_pixel_mask} holds no 2-D image")
        if data.shape != plane.shape:
            raise InputError(
                f"{path}: --bad-pixel-mask {options.bad_pixel_mask} has shape {data.shape}, the image {plane.shape}"
            )
        return data != 0

    def _scan(self, path, plane, options):
        """One pass over the input, before predicting it.

        Returns (number of non-finite pixels, mask of the pixels to keep out of the
        background and noise estimates: saturated and the user's bad pixels, or None,
        whether every finite pixel holds the same value).
        """
        level = options.saturation if options.saturation is not None else plane.header.get("SATURATE")
        mask = self._bad_pixel_mask(path, plane, options)
        if level is not None and mask is None:
            mask = np.zeros(plane.shape, bool)
        n_bad, lo, hi = 0, np.inf, -np.inf
        for y in range(0, plane.shape[0], STRIP):
            rows = np.asarray(plane.data[y : y + STRIP], np.float64)
            finite = np.isfinite(rows)
            n_bad += int((~finite).sum())
            if finite.any():
                lo, hi = min(lo, float(rows[finite].min())), max(hi, float(rows[finite].max()))
            if level is not None:
                mask[y : y + STRIP] |= rows >= float(level)
        if n_bad == plane.shape[0] * plane.shape[1]:
            raise InputError(f"{path}: HDU {plane.index} has no finite pixel (all NaN or inf)")
        return n_bad, mask, lo == hi

    def _write(self, path, hdul, planes, tmp, options, progress):
        primary = primary_header(path.name, self.identity)
        priors = "auto" if self.auto_priors else ("fixed" if self.priors else None)
        inpaint = {}
        if self.inpainter:
            inpaint = dict(replaced=self.replaced, inpaint_identity=self.inpainter.identity, grown=options.inpaint_grow)
        headers, cleans = [], ([] if self.inpainter else None)
        for plane in planes:
            prob, flags, *clean = plane_headers(
                plane, self.classes, self.thresholds, self.identity, priors=priors, **inpaint
            )
            if self.inpainter:
                cleans.append(clean[0])
            headers.append((prob, flags, plane.shape))
        create_output(tmp, headers, len(self.classes), primary, cleans)
        per_plane = 3 if self.inpainter else 2
        with fits.open(tmp, mode="update", memmap=True) as out:
            for k, plane in enumerate(planes):
                n_bad, mask, constant = self._scan(path, plane, options)
                prob_hdu, flags_hdu = out[1 + per_plane * k], out[2 + per_plane * k]
                record_nonfinite((prob_hdu.header, flags_hdu.header), n_bad)
                prob, flags = prob_hdu.data, flags_hdu.data
                if constant:  # no pixel differs from another: nothing can be a contaminant (or an object)
                    print(f"warning: {path}: HDU {plane.index} is constant: nothing flagged", file=sys.stderr)
                    if self.inpainter:  # nothing to replace: CLEAN is the input
                        clean_hdu = out[3 + per_plane * k]
                        record_replaced(clean_hdu.header, 0)
                        for y in range(0, plane.shape[0], STRIP):
                            clean_hdu.data[y : y + STRIP] = plane.data[y : y + STRIP]
                    continue

                def batch_done(n_tiles):
                    release_pages(prob)
                    if progress:
                        progress(n_tiles)

                predict_frame(
                    self.network,
                    plane.data,
                    prob,
                    settings=options.settings,
                    mask=mask,
                    transform=self.transform(),
                    progress=batch_done,
                )
                if self.auto_priors:
                    record_priors((prob_hdu.header, flags_hdu.header), self.adjust_to_frame(plane.data, prob))
                for y in range(0, plane.shape[0], STRIP):
                    p = prob[:, y : y + STRIP]
                    np.clip(p, 0.0, 1.0, out=p)  # blending sums of float32 can overshoot 1 by an ulp
                    flags[y : y + STRIP] = self.flags_of(p)
                    release_pages(prob)
                if self.inpainter:
                    self._inpaint(plane, flags, out[3 + per_plane * k], mask, options, progress)

    def adjust_to_frame(self, data, prob: np.ndarray) -> np.ndarray:
        """--priors auto: this frame's class proportions by EM, then ``prob`` moved to them, in place.

        ``data`` (ny, nx) is the frame (its non-finite pixels do not count), ``prob``
        (n_class, ny, nx) the calibrated probabilities (a memory map is read a strip at a
        time). Returns the (n_class,) proportions.
        """
        train = np.array([self.train_fractions[c] for c in self.classes])
        estimator = PriorEstimator(len(self.classes))
        for y in range(0, prob.shape[1], STRIP):
            valid = np.isfinite(np.asarray(data[y : y + STRIP], np.float64))
            estimator.update(np.clip(prob[:, y : y + STRIP], 0.0, 1.0), valid)
            release_pages(prob)
        frame_priors = estimator.estimate(train)
        for y in range(0, prob.shape[1], STRIP):
            prob[:, y : y + STRIP] = adjust_priors(np.clip(prob[:, y : y + STRIP], 0.0, 1.0), train, frame_priors)
            release_pages(prob)
        return frame_priors

    def _inpaint(self, plane, flags, clean_hdu, mask, options, progress):
        """CLEAN: the plane with the pixels flagged in ``self.replaced`` predicted by the inpainting network."""
        replace, objects = np.empty(plane.shape, bool), np.empty(plane.shape, bool)
        for y in range(0, plane.shape[0], STRIP):  # FLAGS is a memory map: a strip at a time, read once
            strip = np.asarray(flags[y : y + STRIP])
            replace[y : y + STRIP] = flagged_classes(strip, self.classes, self.replaced)
            objects[y : y + STRIP] = flagged_classes(strip, self.classes, ("OBJ",))
        replace = grow(replace, options.inpaint_grow, spare=objects)  # a hit's unflagged halo goes too, its stars stay
        record_replaced(clean_hdu.header, int(replace.sum()))
        clean = clean_hdu.data

        def batch_done(n_tiles):
            release_pages(clean)
            if progress:
                progress(n_tiles)

        self.inpainter.frame(plane.data, replace, clean, settings=options.settings, mask=mask, progress=batch_done)
        release_pages(clean)
