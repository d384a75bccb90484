"""Training samples: a simulated (or real) tile with every contaminant injected and its truth.

Sample ``index`` of a source with seed ``seed`` and split ``split`` depends on
nothing else: its random streams come from ``SeedSequence([seed, split, index])``
(the split is a small integer, see ``SPLITS``, so training, validation and test
tiles never share a stream whatever the indices), one independent
stream per component (camera, scene, each contaminant, noise), so switching a
contaminant off leaves the rest of the tile identical, and any number of
worker processes gives the same samples in the same order.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import multiprocessing
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from foundation.classes import INJECTED

from .camera import add_noise, draw_camera, nonlinear_response, saturate, to_adu
from .config import DataSection, SimConfig
from .contaminants import STAGES, Frame, significant
from .detector import apply_amplifiers, draw_structure, illumination, overscan_strip
from .injection import SimulatedTile, draw_presence, inject
from .scene import render_scene

#: One random stream per component; new components are appended, so older streams keep their draws.
STREAMS = (
    "family",
    "camera",
    "scene",
    "noise",
    "real",
    "CR",
    "HCL",
    "BCL",
    "BLN",
    "HPX",
    "BPX",
    "PER",
    "TRL",
    "FRG",
    "presence",
    "detector",
    "SPK",
    "GHO",
)


@dataclass
class Sample:
    """One tile and its truth.

    image : (ny, nx) float32, ADU (raw frames: bias included; sky-subtracted products: around 0).
    truth : (n_class, ny, nx) bool, the configured classes in CONTRACT order.
    saturated : (ny, nx) bool, pixels that read the saturation level (their truth is unknown for every class
        but SAT: losses and metrics leave them out of the other classes).
    family : name of the camera/field family (or the real-frames family).
    header : FITS-ready cards describing the tile (camera, contaminants present, seed).
    clean : only from a source made with ``clean=True``: the same tile without any contaminant
        and with the same noise realisation (see ``simulate``), float32 ADU; else None.
    clean_saturated : with ``clean``: its saturated pixels (a bad column over a saturated
        star reads below saturation in ``image``, not in ``clean``).
    stars : only with ``clean=True``, simulated tiles: every star of the scene; else None.
    unknown : (ny, nx) bool, pixels whose truth is not known for any class (a real frame's own
        contaminants), or None: every pixel's truth is known.
    """

    image: np.ndarray
    truth: np.ndarray
    saturated: np.ndarray
    family: str
    classes: tuple[str, ...]
    header: dict = field(default_factory=dict)
    clean: np.ndarray | None = None  # (ny, nx) float32 ADU, the tile without contaminants (``clean=True``)
    clean_saturated: np.ndarray | None = None  # (ny, nx) bool, saturated pixels of ``clean``
    stars: np.ndarray | None = None  # (n, 3): y, x (px), flux (ADU, before vignetting); simulated tiles only
    unknown: np.ndarray | None = None  # (ny, nx) bool: truth unknown for every class (real frames)

    def truth_of(self, name: str) -> np.ndarray:
        return self.truth[self.classes.index(name)]


#: Named, disjoint families of seeds: a test tile can never be a training tile.
SPLITS = {"train": 0, "validation": 1, "test": 2, "fractions": 3, "examples": 4}


def streams(seed: int, index: int, split: str = "train") -> dict[str, np.random.Generator]:
    if split not in SPLITS:
        raise ValueError(f"split: unknown split {split!r} (known: {', '.join(SPLITS)})")
    children = np.random.SeedSequence([int(seed), SPLITS[split], int(index)]).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def simulate_tile(config: SimConfig, family_name: str, rngs: dict, *, noise: bool = True):
    """Simulate one tile of ``family_name``.

    Returns (image ADU float32, masks dict name -> bool, saturated bool, header dict).
    With ``noise=False`` the tile is noise-free and not digitised (for tests).
    """
    tile = simulate(config, family_name, rngs, noise=noise)
    return tile.image, tile.masks, tile.saturated, tile.header


def readout(electrons, camera, rng, *, noise: bool):
    """Non-linear response, saturation (with bleeding on CCDs), then Poisson and read noise.

    The non-linearity (``camera.nonlinearity``, see ``camera.nonlinear_response``)
    acts on the noise-free charge, so the clean tile of ``simulate`` gets it too;
    the noise is correlated between pixels when ``camera.noise_correlation`` > 0.

    Returns (pre_noise, image, saturated) in e-: the saturated noise-free charge,
    the read-out image and the pixels that read the saturation level.
    """
    electrons = nonlinear_response(electrons, camera.nonlinearity, camera.saturation_e)
    pre_noise, saturated = saturate(electrons, camera.saturation_e, bleed=camera.detector == "ccd")
    image = pre_noise
    if noise:
        image = add_noise(
            pre_noise,
            camera.read_noise,
            rng,
            saturated=saturated,
            level=camera.saturation_e,
            correlation=camera.noise_correlation,
        )
        # A pixel just under full well cannot read above it, whatever the noise says.
        saturated = saturated | (image >= camera.saturation_e)
        np.minimum(image, camera.saturation_e, out=image)
    return pre_noise, image, saturated


def simulate(
    config: SimConfig, family_name: str, rngs: dict, *, noise: bool = True, clean: bool = False
) -> SimulatedTile:
    """Simulate one tile of ``family_name``; with ``clean=True`` also the tile without contaminants.

    The clean tile is the same scene read out through the same detector with the
    same noise realisation: its noise is drawn from a copy of the tile's noise
    stream, so every pixel gets the same standard-normal deviate (the Gaussian
    regime, >= 50 e-, see ``camera.add_noise``), and wherever the contaminants
    left a pixel's charge unchanged the clean value is the contaminated one, bit
    for bit (Poisson pixels included). Only pixels whose charge a contaminant
    changed and that hold fewer than 50 e- get an independent Poisson draw.
    Asking for it changes nothing in the contaminated tile.
    """
    family = config.families[family_name]
    shape = (config.tile, config.tile)
    camera = draw_camera(family, rngs["camera"])
    scene = render_scene(camera, family, shape, rngs["scene"])
    structure = draw_structure(family, shape, rngs["detector"])
    photons, background, objects = scene.photons, scene.background, scene.objects
    light = illumination(structure, shape)
    if light is not None:  # an unexposed edge (no sky, no star there), colour filters
        photons, background, objects = photons * light, background * light, objects * light
    strip = None if camera.sky_subtracted else overscan_strip(structure, shape)
    frame = Frame(
        noise=np.sqrt(np.clip(photons, 0, None) + camera.read_noise**2).astype(np.float32),
        sky=background,
        sky_noise=camera.sky_noise,
        fwhm=camera.fwhm,
        beta=camera.beta,
        full_well=camera.saturation_e,
        detector=camera.detector,
        readout_at_start=camera.readout_at_start,
        nsigma=config.truth_nsigma,
        stars=_lit_stars(scene.stars, light),
    )
    present = draw_presence(config, family, rngs["presence"])
    masks: dict[str, np.ndarray] = {}
    image = photons
    clean_e = None
    for stage, names in STAGES:
        if stage == "readout":
            noise_state = copy.deepcopy(rngs["noise"]) if clean else None
            unsaturated = image
            pre_noise, image, saturated = readout(image, camera, rngs["noise"], noise=noise)
            bled = saturated & (unsaturated < camera.saturation_e)  # filled by bleeding, not over full well
            if clean:
                clean_pre, clean_e, clean_saturated = readout(photons, camera, noise_state, noise=noise)
                same = clean_pre == pre_noise
                clean_e[same] = image[same]
                clean_saturated[same] = saturated[same]
            if strip is not None:  # virtual pixels: read noise only, and nothing injected before read-out
                virtual = (
                    rngs["detector"].normal(0.0, camera.read_noise, shape).astype(np.float32)
                    if noise
                    else np.zeros(shape, np.float32)
                )
                image = np.where(strip, virtual, image)
                saturated, bled = saturated & ~strip, bled & ~strip
                masks = {name: mask & ~strip for name, mask in masks.items()}
                if clean:
                    clean_e, clean_saturated = np.where(strip, image, clean_e), clean_saturated & ~strip
        image = inject(image, frame, config, names, rngs, present, masks)
    masks["OBJ"] = significant(objects, frame) | bled
    masks["SAT"] = saturated.copy()  # at the saturation level, over full well or filled by bleeding
    if strip is not None:
        masks["OBJ"] &= ~strip
    to_adu_ = (
        (lambda e: to_adu(e, camera, background_e=background))
        if noise
        else (lambda e: _to_adu_exact(e, camera, background))
    )
    amplifiers = structure.amp_axis is not None and not camera.sky_subtracted  # products have no raw read-out
    if not amplifiers:
        digitise = to_adu_
    else:  # a second amplifier reads its pixels with its own gain and bias

        def digitise(e):
            return np.minimum(apply_amplifiers(to_adu_(e), structure, camera.bias), np.float32(camera.adc_max))

    header = {
        "FAMILY": (family_name, "camera and field family"),
        **camera.as_header(),
        "NSTARS": (scene.n_stars, "stars rendered (tile + PSF margin)"),
        "NGALAX": (scene.n_galaxies, "galaxies rendered"),
        "CROWDED": (scene.crowded, "a star cluster is in or near the tile"),
        "NOISE": (noise, "Poisson and read noise added"),
        "AMPSTEP": (amplifiers, "two amplifiers"),
        "OVERSCAN": (strip is not None, "an overscan strip along one edge"),
        "UNEXPEDG": (structure.edge_side is not None, "an unexposed edge"),
        "BAYER": (structure.bayer is not None, "a colour camera's Bayer mosaic"),
    }
    for name in INJECTED:
        header[f"HAS_{name}"] = (present[name], f"{name} injected")
    tile = SimulatedTile(digitise(image), masks, saturated, header)
    if clean:
        tile.clean, tile.clean_saturated = digitise(clean_e), clean_saturated
        tile.stars = scene.stars * np.array([1.0, 1.0, 1.0 / camera.gain])
    return tile


def _lit_stars(stars, light):
    """The scene's stars with the flux that reaches the pixels where they sit (edges, colour filters)."""
    if light is None or stars is None or not len(stars):
        return stars
    ny, nx = light.shape
    iy = np.clip(np.round(stars[:, 0]).astype(int), 0, ny - 1)
    ix = np.clip(np.round(stars[:, 1]).astype(int), 0, nx - 1)
    return np.column_stack([stars[:, :2], stars[:, 2] * light[iy, ix]])


def _to_adu_exact(electrons, camera, background):
    adu = electrons / camera.gain + camera.bias
    if camera.sky_subtracted:
        adu = adu - camera.bias - background / camera.gain
    return adu.astype(np.float32)


def stack_truth(masks: dict, classes, shape) -> np.ndarray:
    """Masks (name -> bool map; absent classes are empty) -> (n_class, ny, nx) bool in class order."""
    truth = np.zeros((len(classes),) + tuple(shape), bool)
    for k, name in enumerate(classes):
        if name in masks:
            truth[k] = masks[name]
    return truth


class SampleSource:
    """Deterministic source of samples: ``source[i]`` is sample ``i`` for this seed.

    Families (and the user's real frames, if configured) are drawn by weight.
    With ``clean=True`` every sample also carries its tile without contaminants
    (``Sample.clean``) and, for simulated tiles, its star list (``Sample.stars``).
    Picklable, so worker processes can rebuild samples from (seed, index) alone.
    """

    def __init__(
        self,
        section: DataSection,
        seed: int,
        *,
        split: str = "train",
        noise: bool = True,
        clean: bool = False,
        real_split: str = "train",
    ):
        if split not in SPLITS:
            raise ValueError(f"split: unknown split {split!r} (known: {', '.join(SPLITS)})")
        self.section = section
        self.config = section.data
        self.classes = tuple(section.classes)
        self.seed = int(seed)
        self.split = split
        self.noise = noise
        self.clean = clean
        self.real_split = real_split  # "eval": the development set's evaluation frames (evaluations only)
        names = list(self.config.families)
        weights = [self.config.families[n].weight for n in names]
        if self.config.real_frames is not None:
            names.append(self.config.real_frames.family)
            weights.append(self.config.real_frames.weight)
        self.family_names = tuple(names)
        self.family_weights = np.asarray(weights, float) / np.sum(weights)
        self._real = None

    @property
    def real_frames(self):
        if self._real is None:
            from .real_frames import RealFrameSet  # astropy is only needed for real frames

            self._real = RealFrameSet(self.config.real_frames, split=self.real_split)
        return self._real

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_real"] = None  # reloaded lazily in each worker
        return state

    def __getitem__(self, index: int) -> Sample:
        rngs = streams(self.seed, index, self.split)
        family = self.family_names[rngs["family"].choice(len(self.family_names), p=self.family_weights)]
        if self.config.real_frames is not None and family == self.config.real_frames.family:
            tile = self.real_frames.sample(self.config, rngs, noise=self.noise)
        else:
            tile = simulate(self.config, family, rngs, noise=self.noise, clean=self.clean)
        tile.header.update(
            {
                "SIMSEED": (self.seed, "sample source seed"),
                "SIMSPLIT": (self.split, "data split"),
                "SIMINDEX": (int(index), "sample index"),
            }
        )
        return Sample(
            image=tile.image,
            truth=stack_truth(tile.masks, self.classes, tile.image.shape),
            saturated=tile.saturated,
            family=family,
            classes=self.classes,
            header=tile.header,
            clean=tile.clean if self.clean else None,
            clean_saturated=tile.clean_saturated if self.clean else None,
            stars=tile.stars if self.clean else None,
            unknown=tile.unknown,
        )


def _make(source: SampleSource, index: int) -> Sample:
    return source[index]


def iter_samples(source: SampleSource, start: int, count: int, *, workers: int = 0) -> Iterator[Sample]:
    """Samples ``start .. start+count-1`` in order; ``workers`` > 0 builds them in processes.

    Worker processes are spawned (not forked), so a parent that has imported
    TensorFlow stays safe; the output does not depend on ``workers``.
    """
    indices = range(start, start + count)
    if workers <= 0:
        for i in indices:
            yield source[i]
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_make, [source] * count, indices, chunksize=max(1, min(16, count // (4 * workers))))


def iter_pairs(source: SampleSource, start: int, count: int, *, workers: int = 0):
    """(image, truth) pairs, both float32: image (ny, nx) ADU, truth (n_class, ny, nx) of 0/1."""
    for sample in iter_samples(source, start, count, workers=workers):
        yield sample.image.astype(np.float32), sample.truth.astype(np.float32)


__all__ = [
    "Sample",
    "SampleSource",
    "SimulatedTile",
    "iter_samples",
    "iter_pairs",
    "simulate",
    "simulate_tile",
    "stack_truth",
]
