"""The real-frame benchmark: inject and recover, star cores, and what each tool flags.

For every real frame:

1. **Versions.** The frame as it is, ``draws`` versions with every contaminant but
   fringes injected (seeded: ``SeedSequence([seed, crc32(name), draw])``), and one
   with a fringe pattern alone (a fringe covers the frame and would leave no
   negatives for the other classes). Injection is the simulator's
   (``data_sim.real_frames.inject_real``) with the evaluated model's data config,
   so the truth follows the simulator's rule.
2. **Tools.** Every tool predicts every version it can use (a CR-only tool skips the
   fringe version): ``{class: score}`` maps and its own thresholds.
3. **Pre-existing contaminants.** The frame's own hits, defects and saturation carry
   no truth: ``preexisting`` is what the reference tools (astroscrappy and the model)
   flag on the frame as it is (a tool flagging over ``MAX_REFERENCE_FRACTION`` of the
   frame is failing there and is not used), with its saturated and non-finite pixels,
   grown by ``GROW`` px. It is left out of positives and negatives, and reported apart.
4. **Figures per tool.**
   - ``injected``: per class, positives are the injected truth pixels; negatives are
     the frame's pixels farther than ``NEAR`` px from any injected truth pixel; both
     outside ``preexisting``. TPR and FPR at the tool's threshold, and TPR at 0.1 %
     and 0.5 % FPR (``segnet.evaluation.metrics.ClassMetrics``).
   - ``star_cores``: the core pixels of isolated, round, unsaturated stars
     (``stars.find_star_cores``), and per class the fraction flagged (``ANY``: any
     contaminant class; the right answer is 0; OBJ is the fraction found as objects).
   - ``flagged_fraction`` and ``flagged_groups``: per class, on the frame as it is, the
     fraction of valid pixels flagged and the number of 8-connected groups.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from data_sim.generator import STREAMS
from data_sim.real_frames import RealCamera, inject_real
from foundation.classes import CONTAMINANTS, INJECTED
from foundation.devset import RealFrame
from foundation.normalize import normalize_image
from foundation.stars import StarCores, find_star_cores
from segnet.evaluation.metrics import ClassMetrics, spread

ANY = "ANY"  # star cores flagged as any contaminant class
NEAR = 3  # px: negatives lie farther than this from any injected truth pixel
GROW = 2  # px: pre-existing contaminants are grown by this much
FPR_POINTS = (1e-3, 5e-3)
REFERENCE_TOOLS = ("ours", "astroscrappy")
MAX_REFERENCE_FRACTION = 0.05  # a reference tool flagging more of a frame is not used for its pre-existing mask
SEED = 2026


@dataclass
class Version:
    """The frame as it is (``kind`` "frame") or with contaminants injected ("injected", "fringe").

    image : (ny, nx) float32, ADU as stored. saturated : (ny, nx) bool.
    truth : class -> (ny, nx) bool, the injected contaminants (empty for the frame as it is).
    """

    kind: str
    image: np.ndarray
    saturated: np.ndarray
    truth: dict = field(default_factory=dict)

    @property
    def injected(self) -> tuple[str, ...]:
        return tuple(c for c, m in self.truth.items() if m.any())


def versions(
    frame: RealFrame, sim_config, classes, *, draws: int = 2, seed: int = SEED, fwhm: float = 3.0
) -> list[Version]:
    """The frame as it is, then its injected versions (see the module's docstring)."""
    finite = np.isfinite(frame.image)
    gain, bias = np.float32(frame.camera.gain), np.float32(frame.camera.bias)
    fill = np.median(frame.image[finite]) if finite.any() else 0.0
    # Electrons above the bias: the sky (which fringes scale with) and the noise model need them.
    clean_e = (np.where(finite, frame.image, fill).astype(np.float32) - bias) * gain
    estimate = normalize_image(clean_e, box=64)
    camera = RealCamera(
        frame.camera.read_noise, (frame.camera.saturation - float(bias)) * float(gain), fwhm, frame.camera.detector
    )
    wanted = [c for c in classes if c in INJECTED]  # SAT is not injected
    out = [Version("frame", frame.image, frame.saturated)]
    plans = [("injected", [c for c in wanted if c != "FRG"])] * draws
    if "FRG" in wanted:
        plans.append(("fringe", ["FRG"]))
    for draw, (kind, present_classes) in enumerate(plans):
        children = np.random.SeedSequence([seed, zlib.crc32(frame.name.encode()), draw]).spawn(len(STREAMS))
        rngs = {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}
        present = {c: c in present_classes for c in CONTAMINANTS}
        image_e, masks, saturated = inject_real(
            clean_e, estimate.background, estimate.sigma, camera, sim_config, rngs, present
        )
        # The frame's own pixels plus what was injected: bit for bit the frame wherever nothing was.
        delta = (image_e - np.minimum(clean_e, np.float32(camera.saturation))) / gain
        image = np.where(finite, frame.image + delta, frame.image).astype(np.float32)
        truth = {c: masks[c] & finite for c in present_classes if c in masks}
        out.append(Version(kind, image, (saturated & finite) | frame.saturated, truth))
    return out


# --- Tallies ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """One tool's counts over one frame, or over all of them (``+=``)."""

    classes: tuple[str, ...]
    thresholds: dict
    counts: dict = field(default_factory=dict)  # class -> [tp, fp, n_pos, n_neg] at the threshold
    curves: dict = field(default_factory=dict)  # class -> ClassMetrics([class])
    core_pixels: int = 0
    core_flagged: dict = field(default_factory=dict)
    stars: int = 0
    valid_pixels: int = 0
    flagged: dict = field(default_factory=dict)  # class -> pixels flagged on the frame as it is
    groups: dict = field(default_factory=dict)  # class -> 8-connected groups flagged

    def __iadd__(self, other: "Tally") -> "Tally":
        for c, v in other.counts.items():
            mine = self.counts.setdefault(c, [0, 0, 0, 0])
            for k in range(4):
                mine[k] += v[k]
        for c, m in other.curves.items():
            if c not in self.curves:
                self.curves[c] = ClassMetrics([c])  # a fresh one: merging must not change ``other``'s
            self.curves[c].merge(m)
        self.core_pixels += other.core_pixels
        self.stars += other.stars
        self.valid_pixels += other.valid_pixels
        for name in ("core_flagged", "flagged", "groups"):
            mine = getattr(self, name)
            for c, v in getattr(other, name).items():
                mine[c] = mine.get(c, 0) + v
        return self

    def figures(self) -> dict:
        """``{"injected": ..., "star_cores": ..., "flagged_fraction": ..., "flagged_groups": ...}``."""
        injected = {}
        for c, (tp, fp, n_pos, n_neg) in self.counts.items():
            row = {
                "positives": int(n_pos),
                "negatives": int(n_neg),
                "tpr_at_threshold": tp / n_pos if n_pos else float("nan"),
                "fpr_at_threshold": fp / n_neg if n_neg else float("nan"),
            }
            summary = self.curves[c].summary(c)
            for f in FPR_POINTS:
                row[f"tpr_at_{f * 100:g}%_fpr"] = summary.tpr_at_fpr(f)
            injected[c] = row
        cores = {c: (v / self.core_pixels if self.core_pixels else float("nan")) for c, v in self.core_flagged.items()}
        flagged = {c: (v / self.valid_pixels if self.valid_pixels else float("nan")) for c, v in self.flagged.items()}
        return {
            "injected": injected,
            "star_cores": {"n": self.stars, "pixels": self.core_pixels, "flagged": cores},
            "flagged_fraction": flagged,
            "flagged_groups": dict(self.groups),
        }


def preexisting_mask(frame_version: Version, reference: dict) -> tuple[np.ndarray, list[str]]:
    """Pixels with contaminants of their own, grown by ``GROW``; and the reference tools used.

    The reference tools' flags on the frame as it is, its saturated and non-finite pixels.
    A tool that flags more than ``MAX_REFERENCE_FRACTION`` of the frame is not used: it is
    failing on this frame (astroscrappy on a Bayer mosaic flags half of it), and its mask
    would leave nothing to measure.
    """
    mask = frame_version.saturated | ~np.isfinite(frame_version.image)
    used = []
    for tool, scores in reference.items():
        flags = np.zeros(mask.shape, bool)
        for c in tool.classes:
            if c in CONTAMINANTS:
                flags |= scores[c] >= tool.thresholds[c]
        if flags.mean() <= MAX_REFERENCE_FRACTION:
            mask |= flags
            used.append(tool.name)
    return (ndimage.binary_dilation(mask, iterations=GROW) if mask.any() else mask), used


def tally_frame(tool, scores: list, versions_: list[Version], preexisting: np.ndarray, stars: StarCores) -> Tally:
    """One tool's figures on one frame: ``scores[i]`` is its output on ``versions_[i]`` (None: not run)."""
    tally = Tally(tuple(tool.classes), dict(tool.thresholds))
    frame, frame_scores = versions_[0], scores[0]
    valid = np.isfinite(frame.image) & ~frame.saturated
    tally.valid_pixels = int(valid.sum())
    eight = np.ones((3, 3), bool)
    core = (stars.core > 0) & valid
    tally.stars, tally.core_pixels = stars.n, int(core.sum())
    any_flag = np.zeros(core.shape, bool)
    for c in tool.classes:
        flags = (frame_scores[c] >= tool.thresholds[c]) & valid
        tally.flagged[c] = int(flags.sum())
        tally.groups[c] = int(ndimage.label(flags, structure=eight)[1])
        hit = flags & core
        tally.core_flagged[c] = int(hit.sum())
        if c in CONTAMINANTS:
            any_flag |= hit
    tally.core_flagged[ANY] = int(any_flag.sum())
    for version, out in zip(versions_[1:], scores[1:]):
        if out is None or not version.truth:
            continue
        usable = np.isfinite(version.image) & ~version.saturated & ~preexisting
        near = np.zeros(core.shape, bool)
        for m in version.truth.values():
            near |= m
        near = ndimage.binary_dilation(near, iterations=NEAR)
        negative = usable & ~near
        for c, truth in version.truth.items():
            if c not in tool.classes:
                continue
            positive = truth & usable
            flags = out[c] >= tool.thresholds[c]
            counts = tally.counts.setdefault(c, [0, 0, 0, 0])
            counts[0] += int((flags & positive).sum())
            counts[1] += int((flags & negative).sum())
            counts[2] += int(positive.sum())
            counts[3] += int(negative.sum())
            curve = tally.curves.setdefault(c, ClassMetrics([c]))
            keep = positive | negative
            # spread() keeps apart the probabilities far below 1e-7 that MaxiMask's priors give; it ranks alike.
            curve.update(spread(out[c])[None], positive[None], keep)
    return tally


# --- The benchmark ---------------------------------------------------------------------------


@dataclass
class FrameResult:
    """What a frame's figures and pictures need: its versions, stars, pre-existing mask, every tool's output."""

    frame: RealFrame
    estimate: object  # foundation.normalize.Normalized of the frame as it is (background, sigma in ADU)
    versions: list
    stars: StarCores
    preexisting: np.ndarray
    reference: list  # the tools whose flags made ``preexisting``
    scores: dict  # tool name -> list of {class: score} (or None) per version
    tallies: dict  # tool name -> Tally


def run_frame(
    frame: RealFrame, tools: list, sim_config, classes, *, draws: int = 2, seed: int = SEED, progress=None
) -> FrameResult:
    """Every tool on one frame and its injected versions; their tallies."""
    finite = np.isfinite(frame.image)
    estimate = normalize_image(np.where(finite, frame.image, np.median(frame.image[finite])), box=64)
    stars = find_star_cores(frame.image, estimate.background, estimate.sigma, frame.saturated | ~finite)
    fwhm = stars.frame_fwhm if np.isfinite(stars.frame_fwhm) else 3.0
    made = versions(frame, sim_config, classes, draws=draws, seed=seed, fwhm=fwhm)
    scores = {}
    for tool in tools:
        scores[tool.name] = tool.predict_versions(frame, made)
        if progress:
            progress(tool.name)
    reference = {t: scores[t.name][0] for t in tools if t.key in REFERENCE_TOOLS and scores[t.name][0] is not None}
    preexisting, used = preexisting_mask(made[0], reference)
    tallies = {
        t.name: tally_frame(t, scores[t.name], made, preexisting, stars) for t in tools if scores[t.name][0] is not None
    }  # a tool that cannot take the frame has no figures for it
    return FrameResult(frame, estimate, made, stars, preexisting, used, scores, tallies)


class InProcessTool:
    """A tool called in this process: ``predict(version) -> {class: score}``; versions it cannot use get None."""

    def __init__(self, key: str, name: str, classes, thresholds: dict, predict):
        self.key, self.name, self.classes, self.thresholds, self._predict = (
            key,
            name,
            tuple(classes),
            thresholds,
            predict,
        )

    def predict_versions(self, frame: RealFrame, made: list[Version]) -> list:
        return [self._predict(v) if v.kind == "frame" or set(v.truth) & set(self.classes) else None for v in made]
