"""Injection into the user's own clean frames: the seed paper's procedure for real cameras.

A random tile of a randomly chosen frame is converted to electrons (gain from
the config, else the header's GAIN, else 1), its background and noise are
estimated robustly (``segnet.normalize``, as for the network's input), and
the same injectors as for simulated tiles are applied.
The frame already has noise, so the added charge gets its own Poisson noise
(multiplicative defects scale the existing noise, as a real defect does).
Truth: contaminant masks by the same rules as in simulation; OBJ is *estimated*
(photutils segmentation of the clean tile at ``truth_nsigma``, 5 connected
pixels after a 2-px Gaussian smoothing), since a real frame's objects are not
known exactly. Input files are only read, never modified.
"""
from __future__ import annotations

import glob as globlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

from segnet.fits_io import InputError, open_input, select_planes
from segnet.normalize import normalize_image

from .classes import CONTAMINANTS
from .config import RealFramesConfig, SimConfig
from .contaminants import STAGES, Frame
from .generator import SimulatedTile, draw_presence, inject


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
    image_e: np.ndarray        # e-
    background_e: np.ndarray   # e-
    sigma_e: np.ndarray        # e-
    gain: float
    read_noise: float
    saturation_e: float
    fwhm: float


def header_number(header, keys, default):
    """The first of ``keys`` in ``header`` holding a positive number, else ``default``."""
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return default


@dataclass(frozen=True)
class RealCamera:
    """What the injectors need to know of a real frame's detector (electrons, pixels)."""

    read_noise: float   # e-
    saturation: float   # e-, the level at which the frame saturates
    fwhm: float         # px, the frame's stellar FWHM (spikes of persistence, trail widths follow it)
    detector: str       # "ccd" or "nir"


def inject_real(clean, background, sigma, camera: RealCamera, config: SimConfig, rngs: dict, present: dict, *,
                noise: bool = True):
    """Inject the ``present`` contaminants into a real image (or part of one), in electrons.

    Parameters
    ----------
    clean, background, sigma : (ny, nx) float32, e-: the real pixels, their background and noise
        (robust estimates, ``segnet.normalize``).
    camera : the frame's read noise, saturation, FWHM and detector type.
    config : the simulator's config (contaminant parameters, ``truth_nsigma``).
    rngs : the streams of ``generator.streams`` (one per contaminant, ``noise``).
    present : class name -> bool, which contaminants to inject.
    noise : give the added charge its own Poisson noise (the frame already has its noise).

    Returns
    -------
    image : (ny, nx) float32, e-, clipped at the saturation level.
    masks : class name -> (ny, nx) bool truth, by the simulator's rule (``contaminants.base``).
    saturated : (ny, nx) bool, pixels at the saturation level after injection.
    """
    # The sky is what sets the noise: sigma**2 - read_noise**2 (works on sky-subtracted frames too).
    sky = np.maximum(sigma ** 2 - camera.read_noise ** 2, np.maximum(background, 0)).astype(np.float32)
    signal = np.clip(clean - background, 0, None)
    frame = Frame(noise=np.sqrt(sigma ** 2 + signal).astype(np.float32), sky=sky,
                  sky_noise=float(np.median(sigma)), fwhm=camera.fwhm, beta=3.0,
                  full_well=camera.saturation, detector=camera.detector,
                  readout_at_start=bool(rngs["real"].random() < 0.5), nsigma=config.truth_nsigma)
    masks: dict = {}
    image = clean
    for _, names in STAGES:  # the frame already went through its detector: all stages at once
        image = inject(image, frame, config, names, rngs, present, masks)
    if noise:
        added = np.clip(image - clean, 0, None)
        image = image + (np.sqrt(added) * rngs["noise"].standard_normal(added.shape)).astype(np.float32)
    saturated = image >= camera.saturation
    return np.minimum(image, camera.saturation).astype(np.float32), masks, saturated


class RealFrameSet:
    """The frames named by ``real_frames.glob``, loaded lazily and kept in memory."""

    def __init__(self, cfg: RealFramesConfig):
        self.cfg = cfg
        self.paths = sorted(globlib.glob(cfg.glob, recursive=True))
        if not self.paths:
            raise RealFrameError(f"data.real_frames.glob: no file matches {cfg.glob!r}")
        self._cache: dict[str, _Loaded] = {}

    def load(self, path: str) -> _Loaded:
        if path not in self._cache:
            image, header = read_image(path, self.cfg.hdu)
            finite = np.isfinite(image)
            if not finite.any():
                raise RealFrameError(f"{path}: no finite pixel")
            gain = self.cfg.gain or header_number(header, ("GAIN", "EGAIN", "CCDGAIN"), 1.0)
            read_noise = (self.cfg.read_noise if self.cfg.read_noise is not None
                          else header_number(header, ("RDNOISE", "READNOIS", "RON"), 0.0))
            saturation = self.cfg.saturation or header_number(header, ("SATURATE", "SATLEVEL"),
                                                               float(np.nanmax(image[finite])))
            fwhm = self.cfg.fwhm or header_number(header, ("FWHM", "SEEING"), 3.0)
            image = np.where(finite, image, np.nanmedian(image[finite])) * np.float32(gain)
            # The same robust estimate the network's input normalisation uses.
            estimate = normalize_image(image, box=64)
            background, sigma = estimate.background, estimate.sigma
            self._cache[path] = _Loaded(path, image, background, sigma, gain, read_noise,
                                        saturation * gain, fwhm)
        return self._cache[path]

    def sample(self, config: SimConfig, rngs: dict, *, noise: bool = True):
        """Inject contaminants into a random tile of a random frame.

        Returns a ``SimulatedTile`` like ``generator.simulate``; its ``clean`` is the
        frame's own tile before injection (ADU), its ``stars`` None (not known).
        """
        from photutils.segmentation import detect_sources  # heavy import, only here

        rng = rngs["real"]
        loaded = self.load(self.paths[int(rng.integers(len(self.paths)))])
        ny, nx = loaded.image_e.shape
        tile = config.tile
        if ny < tile or nx < tile:
            raise RealFrameError(f"{loaded.path}: image is {ny}x{nx} px, smaller than data.tile = {tile}")
        y0, x0 = int(rng.integers(0, ny - tile + 1)), int(rng.integers(0, nx - tile + 1))
        window = (slice(y0, y0 + tile), slice(x0, x0 + tile))
        clean = loaded.image_e[window].copy()
        background = loaded.background_e[window]
        sigma = loaded.sigma_e[window]
        present = draw_presence(config, None, rngs["presence"])
        camera = RealCamera(loaded.read_noise, loaded.saturation_e, loaded.fwhm, self.cfg.detector)
        image, masks, saturated = inject_real(clean, background, sigma, camera, config, rngs, present,
                                              noise=noise)
        smoothed = ndimage.gaussian_filter(clean - background, 2.0 / 2.355)
        segments = detect_sources(smoothed, config.truth_nsigma * sigma, n_pixels=5)
        masks["OBJ"] = segments.data > 0 if segments is not None else np.zeros(clean.shape, bool)
        header = {"FAMILY": (self.cfg.family, "user's real frames"),
                  "REALFILE": (Path(loaded.path).name[:60], "source frame"),
                  "REALY0": (y0, "tile origin row (0-based)"), "REALX0": (x0, "tile origin column"),
                  "GAIN": (loaded.gain, "e-/ADU"), "RDNOISE": (loaded.read_noise, "e-"),
                  "SATURATE": (loaded.saturation_e / loaded.gain, "ADU"),
                  "FWHM": (loaded.fwhm, "px"), "NOISE": (noise, "noise added to the injected charge")}
        for name in CONTAMINANTS:
            header[f"HAS_{name}"] = (present[name], f"{name} injected")
        gain = np.float32(loaded.gain)
        return SimulatedTile((image / gain).astype(np.float32), masks, saturated, header,
                             clean=(np.minimum(clean, loaded.saturation_e) / gain).astype(np.float32),
                             clean_saturated=clean >= loaded.saturation_e)
