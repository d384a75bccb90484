"""The real development set: frames shipped inside installable packages, listed in ``data/real/frames.yaml``.

Each entry names the package a frame comes from (Debian's or PyPI's), the path inside
it, its sha256, whether training may use it (``split: train``) or it is kept for
evaluation only (``split: eval``), and what its header does not say about its camera
(gain, read noise, bias, saturation, detector type). ``data/real/fetch.py`` puts the
frames in ``data/real/frames/<name>.fits``; ``data/real/MANIFEST.md`` describes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from foundation.fits_io import InputError, expand_inputs, header_number, open_input, output_stem, select_planes
from foundation.resources import ROOT

FRAMES_YAML = ROOT / "data" / "real" / "frames.yaml"
FRAMES_DIR = ROOT / "data" / "real" / "frames"
SPLITS = ("train", "eval")


class DevSetError(ValueError):
    """The frame list or a frame is unusable; the message names the file and the key."""


@dataclass(frozen=True)
class Camera:
    """What is known of a frame's pixels, relative to the image as stored (ADU).

    gain : e-/ADU. read_noise : e-. bias : ADU still in the image (0 once removed).
    saturation : ADU at which the image as stored saturates (bias included).
    detector : "ccd" or "nir".
    """

    gain: float = 1.0
    read_noise: float = 6.5
    bias: float = 0.0
    saturation: float = 65535.0
    detector: str = "ccd"


@dataclass(frozen=True)
class Entry:
    """One frame of the development set, as ``frames.yaml`` lists it."""

    name: str
    split: str
    manager: str  # "debian" or "pypi"
    package: str
    version: str
    path: str  # inside the package
    sha256: str
    hdu: int
    camera: Camera
    region: tuple | None  # (y0, y1, x0, x1) of the stored image to use, or None: all of it
    kind: str = "sky"  # "sky" (stars, galaxies), "flat", "bias": what the frame shows
    structure: dict = None  # name -> (y0, y1, x0, x1): detector structure (overscan, quadrant step)

    @property
    def file(self) -> Path:
        return FRAMES_DIR / f"{self.name}.fits"


def _camera(name, data: dict, where: str) -> Camera:
    known = set(Camera.__dataclass_fields__)
    unknown = [k for k in data if k not in known]
    if unknown:
        raise DevSetError(f"{where}: {name}.camera: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    camera = Camera(**data)
    if camera.detector not in ("ccd", "nir"):
        raise DevSetError(f"{where}: {name}.camera.detector: expected ccd or nir, got {camera.detector!r}")
    for key in ("gain", "saturation"):
        if not getattr(camera, key) > 0:
            raise DevSetError(f"{where}: {name}.camera.{key}: must be > 0, got {getattr(camera, key)}")
    return camera


def load_entries(path: Path = FRAMES_YAML) -> list[Entry]:
    """Every frame listed in ``path`` (``data/real/frames.yaml``), checked."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DevSetError(f"{path}: cannot read the frame list ({type(exc).__name__})") from None
    packages, frames = data.get("packages", {}), data.get("frames", {})
    entries = []
    for name, item in frames.items():
        package = item.get("package")
        if package not in packages:
            raise DevSetError(f"{path}: frames.{name}.package: {package!r} is not under packages:")
        split = item.get("split")
        if split not in SPLITS:
            raise DevSetError(f"{path}: frames.{name}.split: expected one of {SPLITS}, got {split!r}")
        region = item.get("region")
        entries.append(
            Entry(
                name,
                split,
                packages[package]["manager"],
                package,
                str(packages[package]["version"]),
                item["path"],
                item["sha256"],
                int(item.get("hdu", 0)),
                _camera(name, item.get("camera", {}), str(path)),
                tuple(region) if region else None,
                item.get("kind", "sky"),
                {k: tuple(v) for k, v in (item.get("structure") or {}).items()},
            )
        )
    return entries


def eval_entries(path: Path = FRAMES_YAML) -> list[Entry]:
    return [e for e in load_entries(path) if e.split == "eval"]


@dataclass
class RealFrame:
    """A real frame as the benchmark uses it.

    image : (ny, nx) float32, ADU as stored (bias included where the camera says so).
    camera : its ``Camera``.
    name : a short name (the development set's, else the file's stem).
    """

    name: str
    image: np.ndarray
    camera: Camera

    @property
    def saturated(self) -> np.ndarray:
        return np.isfinite(self.image) & (self.image >= self.camera.saturation)


def header_camera(header, default: Camera = Camera()) -> Camera:
    """A camera from a FITS header (GAIN, RDNOISE, BIAS, SATURATE), else the defaults."""
    return Camera(
        gain=header_number(header, ("GAIN", "EGAIN"), default.gain),
        read_noise=header_number(header, ("RDNOISE", "READNOIS", "RON"), default.read_noise),
        bias=header_number(header, ("BIAS",), default.bias),
        saturation=header_number(header, ("SATURATE", "SATLEVEL"), default.saturation),
        detector=default.detector,
    )


def read_frame(path: Path, entry: Entry | None = None) -> RealFrame:
    """Read a frame: the development set's camera if ``entry`` is given, else its header's."""
    path = Path(path)
    try:
        with open_input(path) as hdul:
            plane = select_planes(path, hdul, entry.hdu if entry else None)[0]
            image = np.array(plane.data[:, :], dtype=np.float32)
            camera = entry.camera if entry else header_camera(plane.header)
    except InputError as exc:
        raise DevSetError(str(exc)) from None
    if entry and entry.region:
        y0, y1, x0, x1 = entry.region
        image = np.ascontiguousarray(image[y0:y1, x0:x1])
    return RealFrame(entry.name if entry else output_stem(path), image, camera)


def frames_to_evaluate(folder: Path | None = None) -> list[RealFrame]:
    """The evaluation frames of the development set, or every FITS file in ``folder``.

    A file in ``folder`` named like a development-set frame takes that frame's camera.
    """
    if folder is None:
        entries = eval_entries()
        missing = [e.file for e in entries if not e.file.is_file()]
        if missing:
            raise DevSetError(f"{missing[0]}: not fetched (run: python data/real/fetch.py)")
        return [read_frame(e.file, e) for e in entries]
    files, errors = expand_inputs([folder])
    if errors:
        raise DevSetError(errors[0])
    by_name = {e.name: e for e in load_entries()} if FRAMES_YAML.is_file() else {}
    return [read_frame(f, by_name.get(output_stem(f))) for f in files]
