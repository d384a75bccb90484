"""Inpainting on held-out simulated tiles: the network against the masked median and biharmonic fills.

Every method gets the same tile, the same mask (the union of the true masks of
the replaced classes) and is judged against the same truth, the tile's clean
twin (same scene and noise realisation, no contaminant; see
``data_sim.generator.simulate``). So the noise of the truth is in every error,
as in deepCR's comparison: a perfect method would score an MSE of about 1
(on the sky), not 0.

- **MSE** per class (the pixels of that class; a pixel in several counts in
  each), overall and per field family (per frame for real tiles), in units of the local sky noise
  squared: ``((method - clean) / sigma)**2``, sigma the robust noise map of the
  clean tile (64-px boxes). Saturated and non-finite pixels (in the tile or its
  clean twin) are left out. The mean is ruled by the few pixels on bright stars
  (errors of hundreds of sigma); the median squared error, the typical pixel, is
  given beside it.
- **Photometry**: stars of the simulated scene (exact positions; galaxies are
  not used) whose aperture of radius ``APERTURE_FWHM`` x FWHM lies on the tile,
  overlaps a replaced pixel and holds no saturated pixel, with an aperture
  S/N >= ``MIN_SNR`` on the clean tile. Flux = sum over the aperture
  (photutils, exact overlap) of the image minus the clean tile's background map;
  error ``(f_method - f_clean) / f_clean``. "none" is the contaminated tile itself.
- **Runtimes**: seconds of each method over the test tiles, scaled to 100 tiles
  (deepCR's Table 2 convention); the network's include normalisation.

Evaluators yield ``(name, value)`` rows; ``report`` only formats them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from data_sim.generator import Sample, SampleSource, iter_samples
from segnet.evaluation.tiles import tile_batches
from segnet.inpainting.baselines import biharmonic, masked_median
from segnet.inpainting.masks import clean_noise, replace_mask, usable_pixels

__all__ = ["METHODS", "InpaintEvaluation", "evaluate_inpainting", "examples", "tile_errors", "star_errors", "source_of"]

METHODS = ("network", "median", "biharmonic")
ALL = "all"
APERTURE_FWHM = 1.5
MIN_SNR = 20.0


@dataclass
class InpaintEvaluation:
    """Accumulated figures; ``rows`` methods give the tables."""

    replace: tuple[str, ...]
    methods: tuple[str, ...] = METHODS
    sq: dict = field(default_factory=lambda: defaultdict(float))  # (group, method) -> sum of squared errors
    values: dict = field(default_factory=lambda: defaultdict(list))  # (group, method) -> squared errors, float32
    n: dict = field(default_factory=lambda: defaultdict(int))  # group -> pixels
    stars: list = field(default_factory=list)  # (family, classes, {method: rel. error})
    seconds: dict = field(default_factory=lambda: defaultdict(float))  # method -> seconds
    n_tiles: int = 0
    skipped: int = 0  # tiles whose holes covered every finite pixel: not scored
    tile: int = 0
    families: set = field(default_factory=set)

    def add_pixels(self, group: str, errors: dict, selection: np.ndarray):
        count = int(selection.sum())
        if not count:
            return
        self.n[group] += count
        for method, e2 in errors.items():
            self.sq[(group, method)] += float(e2[selection].sum())
            self.values[(group, method)].append(e2[selection].astype(np.float32))

    def mse_rows(self, groups):
        """(group, {method: MSE, "median " + method: median squared error, "pixels": n}) per group with pixels."""
        for group in groups:
            if self.n.get(group):
                row = {m: self.sq[(group, m)] / self.n[group] for m in self.methods}
                row.update(
                    {f"median {m}": float(np.median(np.concatenate(self.values[(group, m)]))) for m in self.methods}
                )
                row["pixels"] = self.n[group]
                yield group, row

    def class_rows(self):
        return list(self.mse_rows([ALL] + list(self.replace)))

    def family_rows(self):
        return list(self.mse_rows(sorted(self.families)))

    def photometry_rows(self):
        """(group, {method: {"median": median |err|, "p90": 90th percentile |err|, "rms": rms err}, "stars": n})."""
        groups = [ALL] + list(self.replace)
        methods = ("none",) + self.methods
        for group in groups:
            chosen = [errs for _, classes, errs in self.stars if group == ALL or group in classes]
            if not chosen:
                continue
            row = {"stars": len(chosen)}
            for m in methods:
                e = np.array([errs[m] for errs in chosen])
                row[m] = {
                    "median": float(np.median(np.abs(e))),
                    "p90": float(np.percentile(np.abs(e), 90)),
                    "rms": float(np.sqrt(np.mean(e**2))),
                }
            yield group, row

    def runtime_rows(self):
        """(method, seconds per 100 tiles of ``tile`` x ``tile``)."""
        for method in self.methods:
            yield method, self.seconds[method] * 100.0 / max(self.n_tiles - self.skipped, 1)


def source_of(sample: Sample) -> str:
    """What a tile's figures are grouped by: its field family, or for a real tile its frame's file
    name (real frames differ far more from one another than simulated tiles of one family do)."""
    frame = sample.header.get("REALFILE")
    return f"real: {frame[0]}" if frame else sample.family


def anything_to_fill_from(sample: Sample, mask: np.ndarray) -> bool:
    """False when the holes cover every finite pixel of the tile: no method has anything to fill
    from, so the tile is not scored."""
    return bool((np.isfinite(sample.image) & ~mask).any())


def tile_errors(sample: Sample, outputs: dict, sigma: np.ndarray) -> dict:
    """Squared errors in units of sigma**2 of each method's output against the clean tile."""
    clean = sample.clean.astype(np.float64)
    return {m: ((out.astype(np.float64) - clean) / sigma) ** 2 for m, out in outputs.items()}


def star_errors(
    sample: Sample, mask: np.ndarray, outputs: dict, background: np.ndarray, sigma: np.ndarray, replace
) -> list:
    """(classes under the aperture, {method: relative flux error}) of each usable star (see module docstring)."""
    from photutils.aperture import CircularAperture

    if sample.stars is None or not len(sample.stars):
        return []
    ny, nx = sample.image.shape
    r = APERTURE_FWHM * float(sample.header["FWHM"][0])
    y, x, flux = sample.stars.T
    inside = (y >= r) & (y <= ny - 1 - r) & (x >= r) & (x <= nx - 1 - r)
    # Cheap cut first: a star far below the S/N limit cannot pass it on the clean tile.
    noise_guess = np.median(sigma) * np.sqrt(np.pi) * r
    keep = np.flatnonzero(inside & (flux >= 0.5 * MIN_SNR * noise_guess))
    if not keep.size:
        return []
    aperture = CircularAperture(np.column_stack([x[keep], y[keep]]), r=r)
    saturated = sample.saturated | (sample.clean_saturated if sample.clean_saturated is not None else False)
    bad = aperture.do_photometry(saturated.astype(float), method="center")[0] > 0
    truth = {c: sample.truth_of(c) & mask for c in replace}
    overlap = {c: aperture.do_photometry(t.astype(float), method="exact")[0] > 0 for c, t in truth.items()}
    hit = np.any(list(overlap.values()), axis=0)
    f_clean = aperture.do_photometry(sample.clean - background, method="exact")[0]
    noise = np.sqrt(aperture.do_photometry(sigma.astype(np.float64) ** 2, method="exact")[0])
    good = hit & ~bad & (f_clean >= MIN_SNR * noise)
    if not good.any():
        return []
    sums = {
        m: aperture.do_photometry(out - background, method="exact")[0]
        for m, out in {"none": sample.image, **outputs}.items()
    }
    return [
        (
            tuple(c for c in replace if overlap[c][i]),
            {m: float((s[i] - f_clean[i]) / f_clean[i]) for m, s in sums.items()},
        )
        for i in np.flatnonzero(good)
    ]


def evaluate_inpainting(
    inpainter, source: SampleSource, n_tiles: int, *, replace, batch_size: int = 8, progress=None, mask_of=None
) -> InpaintEvaluation:
    """Run every method on tiles 0 .. n_tiles-1 of ``source`` (made with ``clean=True``) and accumulate.

    ``mask_of(sample)`` gives the pixels every method replaces: by default the true masks of the
    ``replace`` classes; end to end, a segmentation model's own flags (``segnet evaluate --masks
    predicted``). Per-class figures count the replaced pixels that truly hold the class.
    """
    if not source.clean:
        raise ValueError("`source` must be made with clean=True")
    mask_of = mask_of or (lambda sample: replace_mask(sample, replace))
    result = InpaintEvaluation(tuple(replace), n_tiles=n_tiles, tile=int(source.config.tile))
    warm = True
    for batch in tile_batches(source, n_tiles, batch_size, progress):
        masks = [mask_of(s) for s in batch]
        fillable = [(s, m) for s, m in zip(batch, masks) if anything_to_fill_from(s, m)]
        result.skipped += len(batch) - len(fillable)
        if not fillable:
            continue
        batch, masks = [s for s, _ in fillable], [m for _, m in fillable]
        if warm:  # the first call traces the model: not part of its runtime
            inpainter.images([batch[0].image], [masks[0]], [batch[0].saturated])
            warm = False
        start = time.perf_counter()
        networks = inpainter.images([s.image for s in batch], masks, [s.saturated for s in batch])
        result.seconds["network"] += time.perf_counter() - start
        for sample, mask, net in zip(batch, masks, networks):
            outputs = {"network": net}
            for name, method in (("median", masked_median), ("biharmonic", biharmonic)):
                start = time.perf_counter()
                outputs[name] = method(sample.image, mask)
                result.seconds[name] += time.perf_counter() - start
            background, sigma = clean_noise(sample)
            errors = tile_errors(sample, outputs, sigma)
            usable = usable_pixels(sample, mask)
            group = source_of(sample)
            result.families.add(group)
            result.add_pixels(ALL, errors, usable)
            result.add_pixels(group, errors, usable)
            for name in replace:
                result.add_pixels(name, errors, usable & sample.truth_of(name))
            for classes, errs in star_errors(sample, mask, outputs, background, sigma, replace):
                result.stars.append((sample.family, classes, errs))
    return result


def examples(
    inpainter, source: SampleSource, n_tiles: int, *, replace, classes=("CR", "HCL", "BLN", "TRL", "PER"), mask_of=None
):
    """One example per class of ``classes``: the first test tile holding it, centred on its
    brightest (clean) pixel, so a hit on a star is shown where there is one.

    Returns a list of (title, image, mask, {method: output}, clean, (cy, cx)) for ``report.plot_examples``.
    """
    out = []
    wanted = [c for c in classes if c in replace]
    for sample in iter_samples(source, 0, n_tiles):
        present = [c for c in wanted if sample.truth_of(c).any()]
        if not present:
            continue
        mask = mask_of(sample) if mask_of else replace_mask(sample, replace)
        if not anything_to_fill_from(sample, mask):
            continue
        name = present[0]
        wanted.remove(name)
        outputs = {
            "network": inpainter.image(sample.image, mask, sample.saturated),
            "median": masked_median(sample.image, mask),
            "biharmonic": biharmonic(sample.image, mask),
        }
        where = sample.truth_of(name) & usable_pixels(sample, mask)
        if not where.any():
            where = sample.truth_of(name)
        flat = np.argmax(np.where(where, sample.clean, -np.inf))
        centre = np.unravel_index(flat, where.shape)
        title = f"{name}, {sample.family}\ntile {sample.header['SIMINDEX'][0]}"
        out.append((title, sample.image, mask, outputs, sample.clean, centre))
        if not wanted:
            break
    return out
