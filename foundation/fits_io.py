"""Reading FITS inputs: the frames the simulator, the benchmark and prediction take.

Inputs: FITS files (also ``.fz`` tile-compressed and ``.gz``), folders of them,
or text files listing paths. Images are read lazily (``hdu.section``), so a
frame never has to be in memory whole, in any dtype (BZERO/BSCALE applied,
any byte order). Inputs are opened read-only and never modified. Writing the
prediction's output file is ``segnet.serving.output``'s.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fit.fz", ".fz", ".fits.gz", ".fit.gz", ".fts.gz")
LIST_SUFFIXES = (".txt", ".lst", ".list")
NONSTANDARD_CARD = "The following header keyword is invalid or follows an unrecognized non-standard convention"
WCS_KEY = re.compile(
    r"^(WCSAXES|CTYPE[12]|CRPIX[12]|CRVAL[12]|CDELT[12]|CUNIT[12]|CROTA[12]|CD[12]_[12]|"
    r"PC[12]_[12]|PV[12]_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH|MJD-OBS|DATE-OBS|"
    r"[AB]P?_ORDER|[AB]P?_\d_\d|A_DMAX|B_DMAX|WCSNAME)$"
)


class InputError(ValueError):
    """A file that cannot be processed; the message starts with the file's name."""


def is_fits_name(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in FITS_SUFFIXES)


def output_stem(path: Path) -> str:
    """Input name without .fits/.fits.fz/.fits.gz (and their .fit/.fts variants)."""
    name = path.name
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def describe_fits_error(exc: Exception) -> str:
    """What went wrong reading a FITS file, in a user's words: no astropy API hints, no bare KeyError."""
    text = " ".join(str(exc).split())
    if isinstance(exc, KeyError):
        return f"its header lacks a valid {text.strip(chr(39))} card"
    if "SIMPLE card" in text:
        return "no SIMPLE card at its start: not a FITS file, or a damaged one"
    if "cannot reshape array" in text or "may have been truncated" in text:
        return "its data are shorter than its header says (a truncated file?)"
    for hint in (" If this is really a FITS file, try with ignore_missing_simple=True", " try with ", ".verify("):
        text = text.split(hint)[0]
    text = text.rstrip(" ,;.")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def expand_inputs(items) -> tuple[list[Path], list[str]]:
    """Paths named on the command line -> (FITS files in order, errors for names that give none)."""
    files, errors = [], []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_fits_name(p))
            if not found:
                errors.append(f"{path}: folder holds no FITS file")
            files += found
        elif path.is_file() and path.name.lower().endswith(LIST_SUFFIXES):
            for line in path.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    listed = Path(line) if Path(line).is_absolute() else path.parent / line
                    files.append(listed)
        else:
            files.append(path)  # a missing or unreadable file fails later with its own message
    seen, unique, outputs = set(), [], {}
    for f in files:
        key = f.resolve()
        if key in seen:
            continue
        seen.add(key)
        stem = output_stem(f)
        if stem in outputs:  # m51.fits and m51.fits.gz would both write m51.mask.fits
            errors.append(
                f"{f}: its output {stem}.mask.fits is also {outputs[stem]}'s; rename one of them "
                f"or run them into different output folders"
            )
            continue
        outputs[stem] = f
        unique.append(f)
    return unique, errors


@dataclass
class ImagePlane:
    """One 2-D image HDU of an input file, read lazily."""

    index: int
    name: str
    header: fits.Header
    data: object  # array-like with .shape, sliced lazily

    @property
    def shape(self):
        return tuple(self.data.shape)


def _is_image(hdu) -> bool:
    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))


@contextlib.contextmanager
def open_input(path: Path):
    """Open an input read-only; the file handle is closed whatever happens (astropy may leak it on damaged files).

    Astropy's line per non-standard header card (ESO-LOG history cards, keywords with
    odd characters) is not printed: many real frames carry dozens, and nothing here reads
    them. Its warnings about damaged files still are.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file")
    with open(path, "rb") as handle, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NONSTANDARD_CARD, category=AstropyUserWarning)
        try:
            # memmap=False: `section` then reads just the rows asked for, scaled (BZERO/BSCALE) or not.
            hdul = fits.open(handle, mode="readonly", memmap=False, lazy_load_hdus=False)
        except Exception as exc:  # astropy raises OSError, ValueError, TypeError... on damaged files
            raise InputError(f"{path}: not a readable FITS file ({describe_fits_error(exc)})") from None
        with hdul:
            yield hdul


def select_planes(path: Path, hdul: fits.HDUList, hdu=None, all_hdus: bool = False) -> list[ImagePlane]:
    """The image HDUs to process: ``hdu`` (index or EXTNAME), every 2-D image, or the first one."""

    def plane(i, h):
        shape = h.shape if h.header.get("NAXIS", 0) else ()
        if len(shape) != 2 or 0 in shape:
            what = "empty" if not shape or 0 in shape else f"{len(shape)}-D {tuple(shape)}"
            raise InputError(f"{path}: HDU {i} ({h.name}) is {what}, not a 2-D image")
        return ImagePlane(i, h.name, h.header, h.section)

    if hdu is not None:
        try:
            index = int(hdu)
        except ValueError:
            index = next((i for i, h in enumerate(hdul) if h.name.upper() == str(hdu).upper()), None)
            if index is None:
                raise InputError(f"{path}: no HDU named {hdu!r}") from None
        if not 0 <= index < len(hdul):
            raise InputError(f"{path}: no HDU {index} (the file has {len(hdul)})")
        if not _is_image(hdul[index]):
            raise InputError(f"{path}: HDU {index} ({hdul[index].name}) is a table, not an image")
        return [plane(index, hdul[index])]
    candidates = [
        (i, h) for i, h in enumerate(hdul) if _is_image(h) and h.header.get("NAXIS", 0) == 2 and 0 not in h.shape
    ]
    if not candidates:
        shapes = ", ".join(
            f"HDU {i}: {'empty' if not h.header.get('NAXIS', 0) else f'{len(h.shape)}-D'}"
            for i, h in enumerate(hdul)
            if _is_image(h)
        )
        raise InputError(f"{path}: no HDU holds a 2-D image ({shapes or 'no image HDU'})")
    chosen = candidates if all_hdus else candidates[:1]
    return [plane(i, h) for i, h in chosen]


def header_number(header, keys, default):
    """The first of ``keys`` in ``header`` holding a positive number, else ``default``."""
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return default


def release_pages(array) -> None:
    """Drop the resident pages of a memory-mapped output array (no-op for ordinary arrays).

    Written pages of a shared file mapping stay in the page cache and reach the
    file; they just stop counting against this process, so its memory stays
    bounded by the tile batch however large the frame is.
    """
    import mmap

    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        base.madvise(mmap.MADV_DONTNEED)
