"""Evaluation of a trained model on held-out simulated tiles, and the LACosmic baseline.

The test tiles come from the run's own data config, split ``"test"``: their
random streams never coincide with training or validation tiles. Saturated and
non-finite pixels are left out of every figure (they weigh 0 in the loss too).
Metrics are kept overall and per field family (``optical_sparse``,
``nir_crowded``, ...), like deepCR's per-field tables.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from data_sim.generator import Sample, SampleSource, iter_samples
from foundation.normalize import network_input
from segnet.calibration.pixel import CalibrationFit, PixelCalibration
from segnet.evaluation.metrics import FPR_POINTS, ClassMetrics, dilate3x3
from segnet.training.dataset import known_truth

ALL = "all"
SIGCLIPS = (2.0, 3.0, 4.0, 4.5, 5.0, 6.0, 8.0, 12.0, 20.0, 40.0)  # astroscrappy sweep; 4.5 is its default


@dataclass
class EvaluationResult:
    class_names: tuple[str, ...]
    metrics: dict[str, ClassMetrics]  # family (and "all") -> accumulator
    n_tiles: int
    tile: int
    model_seconds: float  # forward passes and calibration only
    baseline: dict | None = None  # astroscrappy, CR only
    families: list[str] = field(default_factory=list)
    thresholds: dict[str, float] | None = None  # chosen on other tiles (validation split)
    threshold_tiles: int = 0
    uncalibrated: ClassMetrics | None = None  # the network's own outputs, when calibrated


def predict_tiles(
    model, samples: list[Sample], calibration: PixelCalibration | None = None, *, with_input: bool = False
):
    """Probabilities (b, n_class, ny, nx) for a list of equally sized tiles, calibrated if ``calibration``.

    With ``with_input``, returns (probabilities, the network inputs (b, ny, nx)).
    """
    x = np.stack([network_input(s.image, saturated=s.saturated)[0] for s in samples])
    prob = np.moveaxis(model.predict(x[..., None], verbose=0, batch_size=len(samples)), -1, 1)
    if calibration is not None:
        prob = calibration.apply_batch(prob, x)
    return (prob, x) if with_input else prob


def valid_pixels(sample: Sample) -> np.ndarray:
    """(n_class, ny, nx) bool: the pixels each class is scored on, those whose truth is known."""
    return known_truth(sample)


def tile_batches(source: SampleSource, n_tiles: int, batch_size: int, progress=None):
    """Tiles 0 .. n_tiles-1 of ``source`` in lists of ``batch_size``; ``progress(k)`` after each is used."""
    samples_iter = iter_samples(source, 0, n_tiles)
    done = 0
    while done < n_tiles:
        batch = [next(samples_iter) for _ in range(min(batch_size, n_tiles - done))]
        yield batch
        done += len(batch)
        if progress:
            progress(len(batch))


def evaluate_model(
    model,
    source: SampleSource,
    n_tiles: int,
    *,
    batch_size: int = 8,
    n_bins: int = 10_000,
    calibration: PixelCalibration | None = None,
    progress=None,
) -> EvaluationResult:
    """Accumulate the model's metrics over tiles 0 .. n_tiles-1 of ``source`` (split "test").

    With ``calibration``, the figures are those of the calibrated probabilities (timed with the network).
    """
    classes = source.classes
    metrics = {ALL: ClassMetrics(classes, n_bins)}
    uncalibrated = ClassMetrics(classes, n_bins) if calibration is not None else None
    seconds = 0.0
    for batch in tile_batches(source, n_tiles, batch_size, progress):
        start = time.perf_counter()
        raw, x = predict_tiles(model, batch, with_input=True)
        prob = raw if calibration is None else calibration.apply_batch(raw, x)
        seconds += time.perf_counter() - start
        for sample, p, r in zip(batch, prob, raw):
            valid = valid_pixels(sample)
            if uncalibrated is not None:
                uncalibrated.update(r, sample.truth, valid)
            metrics[ALL].update(p, sample.truth, valid)
            metrics.setdefault(sample.family, ClassMetrics(classes, n_bins)).update(p, sample.truth, valid)
    families = sorted(k for k in metrics if k != ALL)
    return EvaluationResult(
        classes, metrics, n_tiles, source.config.tile, seconds, families=families, uncalibrated=uncalibrated
    )


def fit_calibration(
    model, source: SampleSource, n_tiles: int, *, batch_size: int = 8, progress=None, **fit_options
) -> PixelCalibration:
    """The pixel calibration of ``model``, fitted on tiles 0 .. n_tiles-1 of ``source`` (the validation split).

    ``progress(k)`` counts the tiles, then the training epochs (``fit_options["epochs"]``, default
    ``segnet.calibration.pixel.EPOCHS``).
    """
    fit = CalibrationFit(source.classes, **fit_options)
    for batch in tile_batches(source, n_tiles, batch_size, progress):
        prob, x = predict_tiles(model, batch, with_input=True)
        for sample, p, xi in zip(batch, prob, x):
            # The calibration sees every pixel whose truth is known for some class (saturated ones for SAT).
            fit.add(p, xi, sample.truth, valid_pixels(sample).any(axis=0))
    return fit.fit(progress)


def lacosmic_inputs(sample: Sample) -> dict:
    """What astroscrappy needs, from the tile's header: bias-free data in ADU, gain, noise, saturation."""
    h = {k: v[0] for k, v in sample.header.items()}
    gain, read_noise = float(h["GAIN"]), float(h["RDNOISE"])
    if h.get("SKYSUB"):
        # Sky-subtracted product: give back the sky the noise model needs.
        data, background = sample.image.astype(np.float32), float(h["SKYLEVEL"]) / gain
        saturation = float(h["SATURATE"]) - float(h["BIAS"]) - background
    else:
        data, background = sample.image.astype(np.float32) - np.float32(h["BIAS"]), None
        saturation = float(h["SATURATE"]) - float(h["BIAS"])
    return {
        "indat": np.ascontiguousarray(data),
        "gain": gain,
        "readnoise": read_noise,
        "satlevel": saturation,
        "inbkg": None if background is None else np.full(data.shape, background, np.float32),
    }


def run_astroscrappy(sample: Sample, sigclip: float) -> np.ndarray:
    import astroscrappy

    mask, _ = astroscrappy.detect_cosmics(sigclip=sigclip, **lacosmic_inputs(sample))
    return mask


def evaluate_astroscrappy(source: SampleSource, n_tiles: int, sigclips=SIGCLIPS, progress=None) -> dict:
    """ROC points of astroscrappy (LACosmic) for CR, by a sweep of ``sigclip``, on the same tiles.

    Returns {"sigclip": [...], "fpr": [...], "tpr": [...], "tpr_dilated": [...], "mcc": [...],
    "tpr_at_fpr": {f: tpr}, "tpr_dilated_at_fpr": {f: tpr}} with TPRs at fixed FPRs
    linearly interpolated between sweep points (no threshold of LACosmic hits them exactly).
    """
    k = source.classes.index("CR")
    tp = np.zeros(len(sigclips))
    tp_dil = np.zeros(len(sigclips))
    fp = np.zeros(len(sigclips))
    n_pos = n_neg = 0
    for sample in iter_samples(source, 0, n_tiles):
        valid = valid_pixels(sample)[k]
        truth = sample.truth[k]
        pos, neg = truth & valid, ~truth & valid
        n_pos += int(pos.sum())
        n_neg += int(neg.sum())
        for j, s in enumerate(sigclips):
            mask = run_astroscrappy(sample, s)
            dilated = dilate3x3(mask.astype(np.uint8)).astype(bool)
            tp[j] += (mask & pos).sum()
            tp_dil[j] += (dilated & pos).sum()
            fp[j] += (mask & neg).sum()
        if progress:
            progress(1)
    fpr, tpr, tpr_dil = fp / max(n_neg, 1), tp / max(n_pos, 1), tp_dil / max(n_pos, 1)
    fn, tn = n_pos - tp, n_neg - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        mcc = np.nan_to_num((tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    order = np.argsort(fpr)

    def at(curve, f):
        xs = np.concatenate([[0.0], fpr[order], [1.0]])
        ys = np.concatenate([[0.0], curve[order], [1.0]])
        return float(np.interp(f, xs, ys))

    return {
        "sigclip": list(sigclips),
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "tpr_dilated": tpr_dil.tolist(),
        "mcc": mcc.tolist(),
        "tpr_at_fpr": {f: at(tpr, f) for f in FPR_POINTS},
        "tpr_dilated_at_fpr": {f: at(tpr_dil, f) for f in FPR_POINTS},
        "positives": n_pos,
        "pixels": n_pos + n_neg,
    }


def time_per_100(
    model, source: SampleSource, *, batch_size: int = 8, calibration: PixelCalibration | None = None
) -> dict:
    """Seconds for 100 tiles (deepCR's Table 1 convention) for the model and astroscrappy, same tiles."""
    samples = list(iter_samples(source, 0, 100))
    network = calibration.attach(model) if calibration is not None else model  # in the graph, as predict.py runs it
    predict_tiles(network, samples[:batch_size])  # warm-up (tracing)
    start = time.perf_counter()
    for i in range(0, 100, batch_size):
        predict_tiles(network, samples[i : i + batch_size])
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for sample in samples:
        run_astroscrappy(sample, 4.5)
    theirs = time.perf_counter() - start
    mpix = 100 * samples[0].image.size / 1e6
    return {
        "tiles": 100,
        "tile": int(samples[0].image.shape[0]),
        "model_seconds": ours,
        "astroscrappy_seconds": theirs,
        "model_mpix_per_s": mpix / ours,
        "astroscrappy_mpix_per_s": mpix / theirs,
    }
