"""Why the model fails on real frames: each suspected cause measured on the real development set.

    python bench/real_diagnosis.py [--model runs/<name>] [--frames all|eval|train] [--sim-tiles 120] [--out OUT]

Experiments (each a table in ``OUT/diagnosis.md``, default ``out/real_diagnosis/``; numbers
also in ``diagnosis.json``):

1. **Input normalisation.** The background and noise the network's input uses
   (``foundation.normalize``, box 64) against a careful estimate: astropy's sigma-clipped
   statistics in 64-px boxes with every source pixel masked (photutils segmentation at
   2 sigma of a 1-px-smoothed map, grown 3 px), the median over boxes; and the noise of adjacent-pixel
   differences (white-noise part) and the Poisson prediction from the gain.
2. **Correlated noise.** Lag-1 and lag-2 correlation of the source-masked background along
   rows and columns, ``1 - var(diff) / (2 var)``: 0 for white noise, as the simulator makes it;
   a gradient left in the background raises both alike, pixel-scale correlation (resampling,
   interpolation, inter-pixel capacitance) lag 1 far more than lag 2.
3. **PSF sampling.** The frame's stellar FWHM against the simulator's range.
4. **Stars taken for cosmic rays, by signal-to-noise.** Round, isolated point sources of the
   frame's FWHM (``foundation.stars``, 5 sigma): the fraction whose core has a pixel flagged
   CR, per bin of peak S/N; the same procedure on simulated test tiles (the model's own data
   config); and again at the CR prior moved to 5e-4 (Bayes' rule, as ``--priors``).
5. **Simulated stars on real backgrounds.** Stars drawn with the simulator's Moffat PSF
   (beta 3, the frame's FWHM) added to each real frame away from its sources, at each S/N:
   the fraction flagged CR. Real stars flagged while simulated ones on the same background are
   not points at the PSF; both flagged points at the background, noise or star population.
6. **Population.** Point sources and cosmic rays per Mpix, per bin of peak S/N: real frames
   (CRs: astroscrappy's groups) against simulated test tiles (CRs: the truth's groups).
7. **Detector structure.** Flagged fraction per class in the outer 16-px border, in the
   regions ``data/real/frames.yaml`` marks (overscan, quadrant steps), and elsewhere.
8. **The normalisation swapped.** The model again on each frame, its noise map scaled and its
   background shifted so that their medians are experiment 1's careful ones (the network's
   own estimate keeps its shape across the frame): flags and star-core flags before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SNR_BINS = (5, 10, 20, 50, 200, np.inf)
BORDER = 16
LOW_CR_PRIOR = 5e-4


def bin_label(i: int) -> str:
    lo, hi = SNR_BINS[i], SNR_BINS[i + 1]
    return f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">{lo:g}"


def source_mask(image, background, sigma):
    from photutils.segmentation import detect_sources

    # A 1-px Gaussian smoothing leaves 0.28 of white noise: 0.56 sigma is 2 sigma of the smoothed map.
    seg = detect_sources(ndimage.gaussian_filter(image - background, 1.0), 0.56 * sigma, n_pixels=5)
    mask = seg.data > 0 if seg is not None else np.zeros(image.shape, bool)
    return ndimage.binary_dilation(mask, iterations=3)


def noise_figures(image, camera, est):
    """Experiments 1-2 on one frame."""
    from astropy.stats import sigma_clipped_stats

    finite = np.isfinite(image)
    masked = source_mask(np.where(finite, image, est.background), est.background, est.sigma) | ~finite
    ny, nx = image.shape
    bkg, sig = [], []
    for y in range(0, ny - 63, 64):
        for x in range(0, nx - 63, 64):
            box, m = image[y : y + 64, x : x + 64], masked[y : y + 64, x : x + 64]
            if (~m).sum() > 1000:
                mean, median, std = sigma_clipped_stats(box[~m], sigma=3.0, maxiters=5)
                bkg.append(median), sig.append(std)
    careful_b, careful_s = float(np.median(bkg)), float(np.median(sig))
    resid = np.where(masked, np.nan, image - est.background)
    out = {
        "normalize_background": float(np.median(est.background)),
        "careful_background": careful_b,
        "normalize_sigma": float(np.median(est.sigma)),
        "careful_sigma": careful_s,
    }
    clip = lambda a: a[np.abs(a - np.median(a)) < 5 * 1.4826 * np.median(np.abs(a - np.median(a)))]  # noqa: E731
    var = np.var(clip(resid[np.isfinite(resid)]))
    for lag in (1, 2):
        for axis, name in ((1, "rows"), (0, "columns")):
            a = resid[:, lag:] - resid[:, :-lag] if axis == 1 else resid[lag:] - resid[:-lag]
            var_d = np.var(clip(a[np.isfinite(a)]))
            out[f"lag{lag}_{name}"] = float(1 - var_d / (2 * var)) if var > 0 else float("nan")
            if lag == 1 and axis == 1:
                out["diff_sigma"] = float(np.sqrt(var_d / 2))
    level = careful_b - camera.bias
    out["poisson_sigma"] = float(np.sqrt(max(level, 0) * camera.gain + camera.read_noise**2) / camera.gain)
    return out


def star_flags(stars, prob_cr, threshold, *, prior=None):
    """Per S/N bin: (stars, stars with a core pixel >= threshold)."""
    counts = np.zeros((len(SNR_BINS) - 1, 2), int)
    if prior is not None:
        from segnet.evaluation.metrics import adjust_priors

        prob_cr = adjust_priors(prob_cr, prior[0], prior[1])
    flagged = ndimage.maximum(prob_cr, stars.core, index=np.arange(1, stars.n + 1)) if stars.n else np.zeros(0)
    for snr, hit in zip(stars.peak_snr, np.asarray(flagged) >= threshold):
        i = int(np.searchsorted(SNR_BINS, snr, side="right") - 1)
        if 0 <= i < len(SNR_BINS) - 1:
            counts[i] += (1, int(hit))
    return counts


def group_snr_counts(mask, snr_map):
    """Groups of ``mask`` per S/N bin of their peak."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    counts = np.zeros(len(SNR_BINS) - 1, int)
    if n:
        peaks = np.asarray(ndimage.maximum(snr_map, labels, index=np.arange(1, n + 1)))
        idx = np.searchsorted(SNR_BINS, peaks, side="right") - 1
        for i in idx[(idx >= 0) & (idx < len(counts))]:
            counts[i] += 1
    return counts


def add_moffat_stars(image, est, sources, fwhm, rng, per_bin=40):
    """Simulated stars (the simulator's Moffat, beta 3) at each S/N bin's geometric middle; their positions."""
    from data_sim.psf import moffat_kernel

    kernel = moffat_kernel(fwhm, 3.0)
    r = kernel.shape[0] // 2
    out = image.copy()
    ny, nx = image.shape
    free = ~ndimage.binary_dilation(sources, iterations=int(3 * fwhm) + 2)
    placed = []
    for b in range(len(SNR_BINS) - 1):
        lo, hi = SNR_BINS[b], (SNR_BINS[b + 1] if np.isfinite(SNR_BINS[b + 1]) else 2 * SNR_BINS[b])
        target = np.sqrt(lo * hi)
        for _ in range(per_bin):
            for _attempt in range(50):
                y, x = int(rng.integers(r + 8, ny - r - 8)), int(rng.integers(r + 8, nx - r - 8))
                if free[y - r : y + r + 1, x - r : x + r + 1].all():
                    break
            else:
                continue
            peak_e = target * est.sigma[y, x]
            out[y - r : y + r + 1, x - r : x + r + 1] += kernel * (peak_e / kernel.max())
            free[max(y - 3 * r, 0) : y + 3 * r + 1, max(x - 3 * r, 0) : x + 3 * r + 1] = False
            placed.append((y, x, b))
    return out, placed


class CarefulGrid:
    """``foundation.normalize.BackgroundGrid`` with its noise scaled and its background shifted to careful medians."""

    def __init__(self, background_shift: float, sigma_scale: float):
        self.shift, self.scale = background_shift, sigma_scale

    def __call__(self, image, **kwargs):
        from foundation.normalize import BackgroundGrid

        grid = BackgroundGrid(image, **kwargs)
        grid.background = grid.background + self.shift
        grid.sigma = grid.sigma * self.scale
        return grid


class Model:
    """The model as predict.py runs it (calibration, thresholds), on arrays."""

    def __init__(self, model_arg):
        from segnet.serving.prediction import FramePredictor, training_fractions
        from segnet.training.run_folder import resolve_model

        model_path, folder = resolve_model(model_arg)
        self.path = model_path
        self.predictor = FramePredictor(model_path, folder)
        self.classes, self.thresholds = self.predictor.classes, self.predictor.thresholds
        self.train_cr = float(training_fractions(folder)["CR"])

    def __call__(self, image, saturated, *, grid=None):
        """Probabilities per class; ``grid`` replaces the background/noise grid (experiment 8)."""
        from unittest import mock

        import foundation.tiling as inference

        out = np.zeros((len(self.classes),) + image.shape, np.float32)
        with mock.patch.object(inference, "BackgroundGrid", grid or inference.BackgroundGrid):
            inference.predict_frame(self.predictor.network, image, out, mask=saturated)
        return dict(zip(self.classes, out))


def diagnose_frame(entry, frame, model, rng):
    import astroscrappy

    from foundation.normalize import normalize_image
    from foundation.stars import find_star_cores

    image = frame.image
    finite = np.isfinite(image)
    filled = np.where(finite, image, np.median(image[finite])).astype(np.float32)
    saturated = frame.saturated
    est = normalize_image(filled, box=64)
    row = {"frame": frame.name, "shape": list(image.shape)}
    row.update(noise_figures(image, frame.camera, est))
    stars = find_star_cores(image, est.background, est.sigma, saturated | ~finite, snr=5.0)
    row["fwhm"] = stars.frame_fwhm
    prob = model(image, saturated)
    thr = model.thresholds["CR"]
    row["star_flags"] = star_flags(stars, prob["CR"], thr).tolist()
    row["star_flags_low_prior"] = star_flags(stars, prob["CR"], thr, prior=(model.train_cr, LOW_CR_PRIOR)).tolist()
    cam = frame.camera
    crmask, _ = astroscrappy.detect_cosmics(
        np.ascontiguousarray(filled - cam.bias),
        gain=cam.gain,
        readnoise=cam.read_noise,
        satlevel=cam.saturation - cam.bias,
    )
    snr_map = (filled - est.background) / est.sigma
    row["astroscrappy_cr_fraction"] = float(crmask.mean())
    row["model_cr_fraction"] = float((prob["CR"] >= thr).mean())
    row["cr_groups_per_bin"] = group_snr_counts(crmask, snr_map).tolist()
    row["stars_per_bin"] = star_flags(stars, prob["CR"], 2.0)[:, 0].tolist()  # counts only
    row["mpix"] = image.size / 1e6
    # Experiment 5: simulated stars on the real background.
    sources = source_mask(filled, est.background, est.sigma)
    fwhm = stars.frame_fwhm if np.isfinite(stars.frame_fwhm) else 3.0
    with_stars, placed = add_moffat_stars(filled, est, sources, fwhm, rng)
    prob2 = model(with_stars, saturated)
    sim = np.zeros((len(SNR_BINS) - 1, 2), int)
    rr = max(1, int(round(fwhm / 2)))
    for y, x, b in placed:
        sim[b] += (1, int((prob2["CR"][y - rr : y + rr + 1, x - rr : x + rr + 1] >= thr).any()))
    row["simulated_star_flags"] = sim.tolist()
    # Experiment 7: detector structure.
    regions = {"border": np.zeros(image.shape, bool)}
    regions["border"][:BORDER] = regions["border"][-BORDER:] = True
    regions["border"][:, :BORDER] = regions["border"][:, -BORDER:] = True
    for name, (y0, y1, x0, x1) in (entry.structure if entry else {}).items():
        regions[name] = np.zeros(image.shape, bool)
        regions[name][y0:y1, x0:x1] = True
    rest = ~np.any(list(regions.values()), axis=0)
    regions["elsewhere"] = rest
    row["structure"] = {
        name: {c: float((prob[c][m] >= model.thresholds[c]).mean()) for c in model.classes}
        for name, m in regions.items()
        if m.any()
    }
    # Experiment 8: the same frame with the careful background and noise.
    scale = row["careful_sigma"] / row["normalize_sigma"] if row["normalize_sigma"] > 0 else float("nan")
    row["swap"] = {}
    if not (np.isfinite(scale) and scale > 0):
        return row
    prob3 = model(image, saturated, grid=CarefulGrid(row["careful_background"] - row["normalize_background"], scale))
    for label, p in (("normalize", prob), ("careful", prob3)):
        flags = {c: p[c] >= model.thresholds[c] for c in model.classes}
        core = stars.core > 0
        contaminants = np.any([flags[c] for c in model.classes if c != "OBJ"], axis=0)
        row["swap"][label] = {
            "flagged": {c: float(flags[c].mean()) for c in model.classes},
            "core_cr": float(flags["CR"][core].mean()) if core.any() else float("nan"),
            "core_any": float(contaminants[core].mean()) if core.any() else float("nan"),
        }
    return row


def simulated_reference(model, n_tiles, seed=1):
    """Experiments 4 and 6 on simulated test tiles of the model's own data config."""
    from data_sim.generator import SampleSource
    from foundation.normalize import normalize_image
    from foundation.stars import find_star_cores
    from segnet.training.config import load_run_config

    config, _ = load_run_config(model.path.parent / "config.yaml")
    source = SampleSource(config.data_section, config.train.seed, split="test")
    flags = np.zeros((len(SNR_BINS) - 1, 2), int)
    low = np.zeros_like(flags)
    stars_per_bin = np.zeros(len(SNR_BINS) - 1, int)
    cr_per_bin = np.zeros(len(SNR_BINS) - 1, int)
    thr = model.thresholds["CR"]
    for i in range(n_tiles):
        s = source[i]
        est = normalize_image(s.image, box=64)
        stars = find_star_cores(s.image, est.background, est.sigma, s.saturated, snr=5.0)
        # Stars hit by an injected CR do not count.
        cr = s.truth_of("CR")
        prob = model(s.image, s.saturated)
        clean_cores = stars.core * ~ndimage.binary_dilation(cr, iterations=2)
        keep = np.isin(np.arange(1, stars.n + 1), np.unique(clean_cores[clean_cores > 0]))
        stars.core = np.where(np.isin(stars.core, np.flatnonzero(keep) + 1), stars.core, 0)
        f = star_flags(stars, np.where(stars.core > 0, prob["CR"], 0), thr)
        counted = star_flags(stars, np.zeros_like(prob["CR"]), 1.0)  # every kept star, by bin
        flags[:, 0] += counted[:, 0]
        flags[:, 1] += f[:, 1]
        low[:, 0] += counted[:, 0]
        low[:, 1] += star_flags(
            stars, np.where(stars.core > 0, prob["CR"], 0), thr, prior=(model.train_cr, LOW_CR_PRIOR)
        )[:, 1]
        stars_per_bin += counted[:, 0]
        cr_per_bin += group_snr_counts(cr, (s.image - est.background) / est.sigma)
    mpix = n_tiles * config.data.tile**2 / 1e6
    return {
        "tiles": n_tiles,
        "mpix": mpix,
        "star_flags": flags.tolist(),
        "star_flags_low_prior": low.tolist(),
        "stars_per_bin": stars_per_bin.tolist(),
        "cr_groups_per_bin": cr_per_bin.tolist(),
        "fwhm_range": [
            min(f.fwhm[0] for f in config.data.families.values()),
            max(f.fwhm[1] for f in config.data.families.values()),
        ],
    }


def rate(pair):
    n, k = pair
    return f"{k / n:.2f} ({k}/{n})" if n else "–"


def markdown(rows, sim, model) -> str:
    from segnet.evaluation.real.report import markdown_table as table

    bins = [bin_label(i) for i in range(len(SNR_BINS) - 1)]
    parts = [f"# Real-frame diagnosis of {model.path}", ""]
    parts += [
        "## 1-3. Normalisation, correlated noise, PSF sampling",
        "",
        table(
            [
                "frame",
                "bkg (normalize)",
                "bkg (careful)",
                "sigma (normalize)",
                "sigma (careful)",
                "sigma (adjacent diff)",
                "sigma (Poisson, gain)",
                "lag-1 rows",
                "lag-1 cols",
                "lag-2 rows",
                "lag-2 cols",
                "FWHM px",
            ],
            [
                [
                    r["frame"],
                    f"{r['normalize_background']:.1f}",
                    f"{r['careful_background']:.1f}",
                    f"{r['normalize_sigma']:.2f}",
                    f"{r['careful_sigma']:.2f}",
                    f"{r['diff_sigma']:.2f}",
                    f"{r['poisson_sigma']:.2f}",
                    f"{r['lag1_rows']:.2f}",
                    f"{r['lag1_columns']:.2f}",
                    f"{r['lag2_rows']:.2f}",
                    f"{r['lag2_columns']:.2f}",
                    f"{r['fwhm']:.2f}",
                ]
                for r in rows
            ],
        ),
        "",
        f"Simulator's FWHM range: {sim['fwhm_range'][0]:g}-{sim['fwhm_range'][1]:g} px; its noise is white.",
        "",
    ]
    parts += [
        "## 4-5. Stars flagged CR, by peak S/N (fraction of stars with a core pixel flagged)",
        "",
        table(
            ["frame"] + bins,
            [[r["frame"]] + [rate(p) for p in r["star_flags"]] for r in rows]
            + [["**all real**"] + [rate(p) for p in np.sum([r["star_flags"] for r in rows], axis=0)]]
            + [["real, CR prior 5e-4"] + [rate(p) for p in np.sum([r["star_flags_low_prior"] for r in rows], axis=0)]]
            + [["**simulated test tiles**"] + [rate(p) for p in sim["star_flags"]]]
            + [["simulated, CR prior 5e-4"] + [rate(p) for p in sim["star_flags_low_prior"]]]
            + [
                ["**simulator's PSF on real backgrounds**"]
                + [rate(p) for p in np.sum([r["simulated_star_flags"] for r in rows], axis=0)]
            ],
        ),
        "",
    ]
    real_mpix = sum(r["mpix"] for r in rows)
    stars_real = np.sum([r["stars_per_bin"] for r in rows], axis=0) / real_mpix
    cr_real = np.sum([r["cr_groups_per_bin"] for r in rows], axis=0) / real_mpix
    parts += [
        "## 6. Population per Mpix, by peak S/N",
        "",
        table(
            ["source"] + bins,
            [
                ["real: isolated round stars"] + [f"{v:.0f}" for v in stars_real],
                ["real: CR groups (astroscrappy)"] + [f"{v:.0f}" for v in cr_real],
                ["simulated: isolated round stars"] + [f"{v / sim['mpix']:.0f}" for v in sim["stars_per_bin"]],
                ["simulated: CR groups (truth)"] + [f"{v / sim['mpix']:.0f}" for v in sim["cr_groups_per_bin"]],
            ],
        ),
        "",
        "CR pixel fraction: training "
        f"{model.train_cr:.4f}; real frames, astroscrappy: "
        + ", ".join(f"{r['frame']} {r['astroscrappy_cr_fraction']:.5f}" for r in rows)
        + "; the model: "
        + ", ".join(f"{r['frame']} {r['model_cr_fraction']:.5f}" for r in rows),
        "",
    ]
    body = []
    for r in rows:
        for region, fractions in r["structure"].items():
            body.append([r["frame"], region] + [f"{100 * fractions[c]:.3f}" for c in model.classes if c != "OBJ"])
    parts += [
        "## 7. Detector structure: flagged % per class and region",
        "",
        table(["frame", "region"] + [c for c in model.classes if c != "OBJ"], body),
        "",
    ]
    body = []
    for r in rows:
        for label, f in r["swap"].items():
            body.append(
                [r["frame"], label, f"{100 * f['core_cr']:.1f}", f"{100 * f['core_any']:.1f}"]
                + [f"{100 * f['flagged'][c]:.3f}" for c in model.classes if c != "OBJ"]
            )
    parts += [
        "## 8. The normalisation swapped: star-core pixels flagged (CR, any) % and flagged % per class",
        "",
        table(
            ["frame", "background and noise", "cores CR", "cores any"] + [c for c in model.classes if c != "OBJ"], body
        ),
        "",
    ]
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="run folder or .keras (default: latest run, else models/default)")
    parser.add_argument("--frames", choices=("all", "eval", "train"), default="all")
    parser.add_argument("--sim-tiles", type=int, default=120)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "real_diagnosis")
    args = parser.parse_args(argv)
    from foundation.devset import load_entries, read_frame

    entries = [e for e in load_entries() if args.frames in ("all", e.split) and e.kind == "sky"]
    model = Model(args.model)
    rng = np.random.default_rng(7)
    rows = []
    for e in entries:
        rows.append(diagnose_frame(e, read_frame(e.file, e), model, rng))
        print(f"done {e.name}", flush=True)
    sim = simulated_reference(model, args.sim_tiles)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, sim, model)
    (args.out / "diagnosis.md").write_text(text)
    (args.out / "diagnosis.json").write_text(json.dumps({"frames": rows, "simulated": sim}, indent=1, default=float))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
