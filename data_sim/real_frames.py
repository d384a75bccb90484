"""Real frames as backgrounds: the seed paper's procedure for real cameras.

The frames are the user's (a glob) or the development set's training frames
(``data/real/frames.yaml``, ``split: train``); an evaluation frame of the
development set is refused either way. Only an evaluation asks for the evaluation
frames instead (``RealFrameSet(cfg, split="eval")``, ``SampleSource(real_split="eval")``).
A random tile of a randomly chosen frame is turned by one of the eight flips and rotations and its flux scaled (when
configured), converted to electrons (gain from the config or the development
set, else the header's GAIN, else 1), its background and noise are
estimated robustly (``foundation.normalize``, as for the network's input), and
the same injectors as for simulated tiles are applied.
The frame already has noise, so the added charge gets its own Poisson noise
(multiplicative defects scale the existing noise, as a real defect does).
Truth: contaminant masks by the same rules as in simulation; OBJ is *estimated*
(photutils segmentation of the clean tile at ``truth_nsigma``, 5 connected
pixels after a 2-px Gaussian smoothing), since a real frame's objects are not
known exactly; SAT is every pixel at the saturation level. The frame's own
contaminants carry no truth: with ``ignore_own`` their pixels (astroscrappy's
flags less isolated star cores, and cold pixels; grown; and the prescan and overscan
strips a development frame names) are ``unknown``, which losses and metrics
leave out. Spikes and ghosts come from the tile's brightest point sources
(``bright_sources``). Input files are only read, never modified.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

from foundation.classes import INJECTED
from foundation.fits_io import InputError, header_number, open_input, select_planes
from foundation.normalize import normalize_image

from .camera import log_uniform
from .config import RealFramesConfig, SimConfig
from .contaminants import STAGES, Frame
from .injection import SimulatedTile, draw_presence, inject


class RealFrameError(ValueError):
    """A user frame cannot be used; the message names the file."""


def read_image(path: str | Path, hdu: int | str | None = None) -> tuple[np.ndarray, fits.Header]:
    """Read a 2-D image (float32, native byte order) and its header from a FITS file.

    ``hdu`` is an index or EXTNAME; by default the first HDU with 2-D image data
    (the same choice, and the same messages, as prediction's).
    """
    path = Path(path)
    try:
        with open_input(path) as hdul:
            plane = select_planes(path, hdul, hdu)[0]
            return np.asarray(plane.data[:, :], dtype=np.float32), plane.header.copy()
    except InputError as exc:
        raise RealFrameError(str(exc)) from None


@dataclass
class _Loaded:
    path: str
    image_e: np.ndarray  # e- above the bias
    background_e: np.ndarray  # e-
    sigma_e: np.ndarray  # e-
    gain: float
    bias: float  # ADU removed before the gain was applied
    read_noise: float
    saturation_e: float
    fwhm: float
    detector: str
    unknown: np.ndarray | None  # (ny, nx) bool: the frame's own contaminants (``ignore_own``), else None
    stars: np.ndarray | None = None  # (n, 3): y, x (px), flux (e-) of isolated round stars; None: not searched


@dataclass(frozen=True)
class _Spec:
    """Where a frame is and what is known of its camera before it is read (None: from the header)."""

    path: str
    hdu: int | str | None
    gain: float | None
    read_noise: float | None
    bias: float
    saturation: float | None  # ADU as stored
    detector: str
    region: tuple | None = None
    no_sky: tuple = ()  # (y0, y1, x0, x1) of the stored image: strips that hold no sky (``NO_SKY``)


@dataclass(frozen=True)
class RealCamera:
    """What the injectors need to know of a real frame's detector (electrons, pixels)."""

    read_noise: float  # e-
    saturation: float  # e-, the level at which the frame saturates
    fwhm: float  # px, the frame's stellar FWHM (spikes of persistence, trail widths follow it)
    detector: str  # "ccd" or "nir"


def inject_real(
    clean, background, sigma, camera: RealCamera, config: SimConfig, rngs: dict, present: dict, *, noise: bool = True
):
    """Inject the ``present`` contaminants into a real image (or part of one), in electrons.

    Parameters
    ----------
    clean, background, sigma : (ny, nx) float32, e-: the real pixels, their background and noise
        (robust estimates, ``foundation.normalize``).
    camera : the frame's read noise, saturation, FWHM and detector type.
    config : the simulator's config (contaminant parameters, ``truth_nsigma``).
    rngs : the streams of ``generator.streams`` (one per contaminant, ``noise``).
    present : class name -> bool, which contaminants to inject.
    noise : give the added charge its own Poisson noise (the frame already has its noise).

    Returns
    -------
    image : (ny, nx) float32, e-, clipped at the saturation level.
    masks : class name -> (ny, nx) bool truth, by the simulator's rule (``contaminants.base``);
        SAT: the pixels at the saturation level.
    saturated : (ny, nx) bool, pixels at the saturation level after injection.
    """
    # The sky is what sets the noise: sigma**2 - read_noise**2 (works on sky-subtracted frames too).
    sky = np.maximum(sigma**2 - camera.read_noise**2, np.maximum(background, 0)).astype(np.float32)
    signal = np.clip(clean - background, 0, None)
    frame = Frame(
        noise=np.sqrt(sigma**2 + signal).astype(np.float32),
        sky=sky,
        sky_noise=float(np.median(sigma)),
        fwhm=camera.fwhm,
        beta=3.0,
        full_well=camera.saturation,
        detector=camera.detector,
        readout_at_start=bool(rngs["real"].random() < 0.5),
        nsigma=config.truth_nsigma,
        stars=bright_sources(signal, sigma, camera.fwhm),
    )
    masks: dict = {}
    image = clean
    for _, names in STAGES:  # the frame already went through its detector: all stages at once
        image = inject(image, frame, config, names, rngs, present, masks)
    if noise:
        added = np.clip(image - clean, 0, None)
        image = image + (np.sqrt(added) * rngs["noise"].standard_normal(added.shape)).astype(np.float32)
    saturated = image >= camera.saturation
    masks["SAT"] = saturated
    return np.minimum(image, camera.saturation).astype(np.float32), masks, saturated


DEFAULT_DEVSET = Path(__file__).resolve().parent.parent / "data" / "real" / "frames.yaml"


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _devset_entries(path):
    from foundation.devset import DevSetError, load_entries  # the development set's reader (lazy: no cycle)

    try:
        return load_entries(Path(path))
    except DevSetError as exc:
        raise RealFrameError(str(exc)) from None


def bright_sources(
    signal: np.ndarray, sigma: np.ndarray, fwhm: float, *, snr: float = 50.0, limit: int = 200
) -> np.ndarray:
    """The brightest point sources of a real tile, as the spikes and ghosts injectors want them.

    Local maxima (within one FWHM) of ``signal`` above ``snr`` times the noise; their
    flux is the peak times the area of a Gaussian PSF of that FWHM. Returns (n, 3)
    float64: y, x (px), flux (e-), at most ``limit``, brightest first.
    """
    size = max(3, int(round(fwhm)) | 1)
    peaks = (signal == ndimage.maximum_filter(signal, size=size)) & (signal >= snr * sigma)
    y, x = np.nonzero(peaks)
    flux = signal[y, x].astype(np.float64) * 2.0 * np.pi * (fwhm / 2.3548) ** 2
    order = np.argsort(-flux)[:limit]
    return np.column_stack([y[order], x[order], flux[order]]).astype(np.float64)


#: Detector structure (a development frame's ``structure``) that holds no sky: with ``ignore_own``
#: its pixels are unknown too, so nothing is scored (or learnt) on a bias level as if it were sky.
NO_SKY = ("prescan", "overscan")

#: A pixel this many local sigma below the background is one of the frame's own defects
#: (no sky pixel of any development frame is: the Bayer mosaics' dimmest colour included).
COLD_NSIGMA = 5.0


def own_contaminants(image_e, background_e, sigma_e, star_cores, read_noise: float, saturation_e: float, grow: int):
    """Pixels a real frame's own contaminants may touch: truth there is unknown.

    astroscrappy's (L.A.Cosmic's) flags on the frame in electrons, less ``star_cores`` (the
    cores of isolated stars, ``foundation.stars``, nonzero there), which it mistakes for hits
    and the model must learn are no contaminant; plus the frame's cold pixels, more than
    ``COLD_NSIGMA`` sigma below its local background (dead pixels and columns, unlit edges:
    L.A.Cosmic looks for positive outliers only), and non-finite pixels; grown by ``grow`` px.
    """
    import astroscrappy

    finite = np.isfinite(image_e)
    # L.A.Cosmic's noise model is sqrt(counts + read_noise**2): where the frame is noisier than its
    # camera values say (plates, co-adds, assumed gains), an effective read noise makes up the measured sky noise.
    sky, noise = float(np.median(background_e)), float(np.median(sigma_e))
    effective = float(np.sqrt(max(noise**2 - max(sky, 0.0), read_noise**2, 1e-6)))
    flags, _ = astroscrappy.detect_cosmics(
        np.where(finite, image_e, background_e).astype(np.float32),
        gain=1.0,
        readnoise=effective,
        satlevel=float(saturation_e),
        sigclip=4.5,
        sigfrac=0.3,
        objlim=5.0,
    )
    cold = np.asarray(image_e < background_e - COLD_NSIGMA * sigma_e) & finite
    mask = (np.asarray(flags, bool) & (star_cores == 0)) | cold | ~finite
    return ndimage.binary_dilation(mask, iterations=grow) if (grow > 0 and mask.any()) else mask


#: The eight flips and rotations of a square tile: (number of quarter turns, transpose first).
DIHEDRAL = tuple((k, t) for t in (False, True) for k in range(4))


def turn(array: np.ndarray, which: int) -> np.ndarray:
    """One of the eight flips and rotations (``DIHEDRAL[which]``) of the last two axes."""
    k, transpose = DIHEDRAL[which]
    if transpose:
        array = np.swapaxes(array, -1, -2)
    return np.ascontiguousarray(np.rot90(array, k, axes=(-2, -1)))


def turn_points(points: np.ndarray, which: int, size: int) -> np.ndarray:
    """(n, 2) (y, x) positions on a ``size`` x ``size`` tile, moved as ``turn(tile, which)`` moves its pixels."""
    k, transpose = DIHEDRAL[which]
    y, x = np.asarray(points, float).T
    if transpose:
        y, x = x, y
    for _ in range(k % 4):  # np.rot90 once: new[i, j] = old[j, size - 1 - i]
        y, x = size - 1 - x, y
    return np.column_stack([y, x])


class RealFrameSet:
    """The frames of ``real_frames`` (a glob, or the development set's frames of ``split``), kept in memory.

    ``split="eval"`` is for evaluations only (training never passes it): the development set's
    evaluation frames, or with a glob the user's frames, evaluation frames of the development
    set included.
    """

    def __init__(self, cfg: RealFramesConfig, split: str = "train"):
        if split not in ("train", "eval"):
            raise RealFrameError(f"split: must be 'train' or 'eval', got {split!r}")
        self.cfg = cfg
        devset = Path(cfg.devset) if cfg.devset else DEFAULT_DEVSET
        entries = _devset_entries(devset) if (cfg.devset or devset.is_file()) else []
        reserved = {e.sha256: e.name for e in entries if e.split == "eval"}
        if cfg.devset:
            folder = devset.parent / "frames"
            self.specs = [
                _Spec(
                    str(folder / f"{e.name}.fits"),
                    e.hdu,
                    e.camera.gain,
                    e.camera.read_noise,
                    e.camera.bias,
                    e.camera.saturation,
                    e.camera.detector,
                    e.region,
                    tuple(box for kind, box in e.structure.items() if kind in NO_SKY),
                )
                for e in entries
                if e.split == split
            ]
            missing = [s.path for s in self.specs if not Path(s.path).is_file()]
            if missing:
                raise RealFrameError(
                    f"data.real_frames.devset: {missing[0]} is missing; fetch the development "
                    f"set with: python data/real/fetch.py"
                )
            if not self.specs:
                raise RealFrameError(f"data.real_frames.devset: {devset} lists no frame with split: {split}")
        else:
            paths = sorted(globlib.glob(cfg.glob, recursive=True))
            if not paths:
                raise RealFrameError(f"data.real_frames.glob: no file matches {cfg.glob!r}")
            for path in paths if split == "train" else ():
                name = reserved.get(_sha256(path)) if reserved else None
                if name is not None:
                    raise RealFrameError(
                        f"{path}: is the evaluation frame {name!r} of "
                        f"{devset} (split: eval); evaluation frames never enter training"
                    )
            self.specs = [_Spec(p, cfg.hdu, cfg.gain, cfg.read_noise, 0.0, cfg.saturation, cfg.detector) for p in paths]
        self.paths = [s.path for s in self.specs]
        self._cache: dict[str, _Loaded] = {}
        self._shapes: dict[str, tuple[int, int]] = {}

    def shape(self, spec: _Spec) -> tuple[int, int]:
        """The frame's size in px (its ``region`` if one is set), read from the header alone."""
        if spec.path not in self._shapes:
            if spec.path in self._cache:
                shape = self._cache[spec.path].image_e.shape
            else:
                try:
                    with open_input(Path(spec.path)) as hdul:
                        shape = select_planes(Path(spec.path), hdul, spec.hdu)[0].shape
                except InputError as exc:
                    raise RealFrameError(str(exc)) from None
                if spec.region:
                    y0, y1, x0, x1 = spec.region
                    shape = (len(range(*slice(y0, y1).indices(shape[0]))), len(range(*slice(x0, x1).indices(shape[1]))))
            self._shapes[spec.path] = tuple(shape)
        return self._shapes[spec.path]

    def fitting(self, tile: int) -> list[_Spec]:
        """The frames at least ``tile`` px on both sides: the only ones a tile is cut from."""
        fitting = [s for s in self.specs if min(self.shape(s)) >= tile]
        if not fitting:
            sizes = ", ".join(f"{Path(s.path).name} {self.shape(s)[0]}x{self.shape(s)[1]}" for s in self.specs)
            raise RealFrameError(f"data.tile = {tile}: every real frame is smaller ({sizes})")
        return fitting

    def load(self, spec: _Spec) -> _Loaded:
        path = spec.path
        if path not in self._cache:
            image, header = read_image(path, spec.hdu)
            if spec.region:
                y0, y1, x0, x1 = spec.region
                image = np.ascontiguousarray(image[y0:y1, x0:x1])
            finite = np.isfinite(image)
            if not finite.any():
                raise RealFrameError(f"{path}: no finite pixel")
            gain = spec.gain or header_number(header, ("GAIN", "EGAIN", "CCDGAIN"), 1.0)
            read_noise = (
                spec.read_noise
                if spec.read_noise is not None
                else header_number(header, ("RDNOISE", "READNOIS", "RON"), 0.0)
            )
            saturation = spec.saturation or header_number(
                header, ("SATURATE", "SATLEVEL"), float(np.nanmax(image[finite]))
            )
            image = (np.where(finite, image, np.nanmedian(image[finite])) - np.float32(spec.bias)) * np.float32(gain)
            # The same robust estimate the network's input normalisation uses.
            estimate = normalize_image(image, box=64)
            background, sigma = estimate.background, estimate.sigma
            saturation_e = (saturation - spec.bias) * gain
            fwhm = self.cfg.fwhm or header_number(header, ("FWHM", "SEEING"), 0.0)
            stars = None
            if self.cfg.ignore_own or not fwhm:  # the frame's stars, found once for both uses
                from foundation.stars import find_star_cores

                stars = find_star_cores(
                    np.where(finite, image, np.nan), background, sigma, ~finite | (image >= saturation_e)
                )
            if not fwhm:  # the frame's median stellar FWHM, else 3 px
                fwhm = float(stars.frame_fwhm) if np.isfinite(stars.frame_fwhm) else 3.0
            unknown = None
            if self.cfg.ignore_own:
                unknown = own_contaminants(
                    np.where(finite, image, np.nan),
                    background,
                    sigma,
                    stars.core,
                    read_noise,
                    saturation_e,
                    self.cfg.ignore_grow,
                )
                oy, ox = spec.region[::2] if spec.region else (0, 0)
                for y0, y1, x0, x1 in spec.no_sky:
                    unknown[max(y0 - oy, 0) : max(y1 - oy, 0), max(x0 - ox, 0) : max(x1 - ox, 0)] = True
            star_list = None
            if stars is not None:  # flux ~ peak x Gaussian PSF area, e- (a first cut; photometry measures it)
                rows, cols = np.round(stars.positions).astype(int).T
                flux = stars.peak_snr * sigma[rows, cols] * 2 * np.pi * (stars.fwhm / 2.3548) ** 2
                star_list = np.column_stack([stars.positions, flux])
            self._cache[path] = _Loaded(
                path,
                image,
                background,
                sigma,
                gain,
                spec.bias,
                read_noise,
                saturation_e,
                fwhm,
                spec.detector,
                unknown,
                star_list,
            )
        return self._cache[path]

    def sample(self, config: SimConfig, rngs: dict, *, noise: bool = True):
        """Inject contaminants into a random tile of a random frame.

        The tile is turned by one of the eight flips and rotations (``flips``) and its
        electrons scaled (``flux_scale``) before the injection. Returns a
        ``SimulatedTile`` like ``generator.simulate``; its ``clean`` is the frame's own
        tile before injection (ADU, turned and scaled alike), its ``stars`` None (not
        known, or with ``ignore_own`` the frame's isolated round stars on the tile: y, x in
        the tile's turned frame, flux in ADU), its ``unknown`` the frame's own contaminants.
        """
        from photutils.segmentation import detect_sources  # heavy import, only here
        from photutils.utils.exceptions import NoDetectionsWarning

        rng = rngs["real"]
        tile = config.tile
        fitting = self.fitting(tile)
        loaded = self.load(fitting[int(rng.integers(len(fitting)))])
        ny, nx = loaded.image_e.shape
        y0, x0 = int(rng.integers(0, ny - tile + 1)), int(rng.integers(0, nx - tile + 1))
        window = (slice(y0, y0 + tile), slice(x0, x0 + tile))
        which = int(rng.integers(len(DIHEDRAL))) if self.cfg.flips else 0
        scale = np.float32(log_uniform(rng, self.cfg.flux_scale))
        clean = turn(loaded.image_e[window], which) * scale
        background = turn(loaded.background_e[window], which) * scale
        sigma = turn(loaded.sigma_e[window], which) * scale
        unknown = None if loaded.unknown is None else turn(loaded.unknown[window], which)
        saturation_e = loaded.saturation_e * float(scale)
        present = draw_presence(config, None, rngs["presence"])
        camera = RealCamera(loaded.read_noise * float(scale), saturation_e, loaded.fwhm, loaded.detector)
        image, masks, saturated = inject_real(clean, background, sigma, camera, config, rngs, present, noise=noise)
        smoothed = ndimage.gaussian_filter(clean - background, 2.0 / 2.355)
        with warnings.catch_warnings():  # a tile of empty sky is no news
            warnings.simplefilter("ignore", NoDetectionsWarning)
            segments = detect_sources(smoothed, config.truth_nsigma * sigma, n_pixels=5)
        masks["OBJ"] = segments.data > 0 if segments is not None else np.zeros(clean.shape, bool)
        gain = np.float32(loaded.gain)  # the scaled tile reads ``scale`` times the ADU
        header = {
            "FAMILY": (self.cfg.family, "real frames"),
            "REALFILE": (Path(loaded.path).name[:60], "source frame"),
            "REALY0": (y0, "tile origin row (0-based)"),
            "REALX0": (x0, "tile origin column"),
            "REALTURN": (which, "flip/rotation applied (data_sim.real_frames.DIHEDRAL)"),
            "REALSCAL": (float(scale), "electrons scaled by"),
            "GAIN": (float(gain), "e-/ADU"),
            "RDNOISE": (camera.read_noise, "e-"),
            "SATURATE": (saturation_e / float(gain), "ADU"),
            "BIAS": (0.0, "ADU (removed)"),
            "FWHM": (loaded.fwhm, "px"),
            "NOISE": (noise, "noise added to the injected charge"),
        }
        for name in INJECTED:
            header[f"HAS_{name}"] = (present[name], f"{name} injected")
        stars = None
        if loaded.stars is not None:
            y, x = loaded.stars[:, 0] - y0, loaded.stars[:, 1] - x0
            on = (y >= 0) & (y <= tile - 1) & (x >= 0) & (x <= tile - 1)
            moved = turn_points(np.column_stack([y[on], x[on]]), which, tile)
            stars = np.column_stack([moved, loaded.stars[on, 2] * float(scale) / float(gain)])
        return SimulatedTile(
            (image / gain).astype(np.float32),
            masks,
            saturated,
            header,
            clean=(np.minimum(clean, saturation_e) / gain).astype(np.float32),
            clean_saturated=clean >= saturation_e,
            unknown=unknown,
            stars=stars,
        )
