"""The prediction's output file, as docs/CONTRACT.md fixes it: PROB, FLAGS and CLEAN HDUs and their headers.

Every header card the output file carries is written here.

Outputs are written into a temporary file in the output folder and renamed at the end
(``segnet.serving.prediction``), so an interrupted run leaves no partial file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from foundation.fits_io import WCS_KEY, ImagePlane


def wcs_cards(header: fits.Header) -> list[tuple[str, object, str]]:
    return [(k, header[k], header.comments[k]) for k in header if WCS_KEY.match(k)]


def output_headers(plane: ImagePlane, classes, thresholds, identity: dict) -> tuple[fits.Header, fits.Header]:
    """Headers of the PROB and FLAGS HDUs (CONTRACT.md), with the input's WCS."""
    prob = fits.Header()
    prob["EXTNAME"] = "PROB"
    for k, name in enumerate(classes, start=1):
        prob[f"CLASS{k}"] = (name, f"class of plane {k}")
    for k, name in enumerate(classes, start=1):
        prob[f"THRESH{k}"] = (float(thresholds[name]), f"flag threshold of {name}")
    for key, value, comment in wcs_cards(plane.header):
        prob[key] = (value, comment)
        if key == "WCSAXES":
            prob[key] = (2, "WCS on image axes 1-2 (axis 3: class)")
    for key, (value, comment) in identity.items():
        prob[key] = (value, comment)
    flags = fits.Header()
    flags["EXTNAME"] = "FLAGS"
    for k, name in enumerate(classes):
        flags[f"BIT{k}"] = (name, f"value {2**k}: {name} at or above THRESH{k + 1}")
    for key, value, comment in wcs_cards(plane.header):
        flags[key] = (value, comment)
    for key, (value, comment) in identity.items():
        flags[key] = (value, comment)
    return prob, flags


def clean_header(plane: ImagePlane, replaced, identity: dict, inpaint_identity: dict, grown: int = 0) -> fits.Header:
    """Header of a CLEAN HDU: which classes were replaced, by which models, the input's WCS and BUNIT."""
    header = fits.Header()
    header["EXTNAME"] = "CLEAN"
    header["REPLACED"] = (",".join(replaced)[:68], "classes replaced")  # a short comment: 13 names fit
    header["NREPL"] = (0, "pixels replaced")  # counted when the plane is written
    header["INGROW"] = (int(grown), "flags grown by this many px before replacing")
    for key, value, comment in wcs_cards(plane.header):
        header[key] = (value, comment)
    if "BUNIT" in plane.header:
        header["BUNIT"] = (plane.header["BUNIT"], plane.header.comments["BUNIT"])
    for key, (value, comment) in {**identity, **inpaint_identity}.items():
        header[key] = (value, comment)
    return header


def primary_header(input_name: str, identity: dict) -> fits.Header:
    """The primary HDU's cards: the input file's name and the model's identity."""
    primary = fits.Header()
    # FITS cards hold printable ASCII: other characters of the name are written as escapes (\\xe9).
    primary["INFILE"] = (input_name.encode("ascii", "backslashreplace").decode("ascii")[-68:], "input file")
    for key, (value, comment) in identity.items():
        primary[key] = (value, comment)
    return primary


def plane_headers(
    plane: ImagePlane,
    classes,
    thresholds,
    identity: dict,
    *,
    priors: str | None = None,
    replaced=None,
    inpaint_identity: dict | None = None,
    grown: int = 0,
) -> list[fits.Header]:
    """Headers of one input plane's HDUs, every card already in place: [PROB, FLAGS] (+ [CLEAN]).

    ``priors``: None, "fixed" (--priors FILE) or "auto" (the frame's own, by EM: PRIOR1 ... get
    their values later, ``record_priors``); ``replaced``: the classes CLEAN replaces (with
    --inpaint), ``grown`` the px their flags are grown by first. Cards whose values come after
    the prediction (NNONFIN, PRIORk, NREPL) are written now with a placeholder so that the header
    never has to grow in the file.
    """
    prob, flags = output_headers(plane, classes, thresholds, identity)
    outputs = [prob, flags]
    if replaced is not None:
        outputs.append(clean_header(plane, replaced, identity, inpaint_identity or {}, grown))
    for h in outputs:
        h["INHDU"] = (plane.index, "input HDU index")
        h["INEXTNAM"] = (plane.name or "PRIMARY", "input HDU name")
    for h in (prob, flags):
        h["NNONFIN"] = (0, "non-finite input pixels (predicted 0)")
        if priors == "fixed":
            h["PRIORADJ"] = (True, "moved to expected class fractions (Bayes)")
        if priors == "auto":
            h["PRIORADJ"] = (True, "moved to the frame's own class fractions (EM)")
            for j, name in enumerate(classes, start=1):
                h[f"PRIOR{j}"] = (0.0, f"{name} fraction of this frame (EM)")
    return outputs


def record_nonfinite(headers, count: int) -> None:
    for header in headers:
        header["NNONFIN"] = int(count)


def record_priors(headers, fractions) -> None:
    for header in headers:
        for j, value in enumerate(fractions, start=1):
            header[f"PRIOR{j}"] = float(value)


def record_replaced(header, count: int) -> None:
    header["NREPL"] = int(count)


def _structural(first: tuple, bitpix: int, axes: tuple[int, ...], cards: fits.Header | None) -> fits.Header:
    """A complete header: the mandatory cards in FITS order, then ``cards``."""
    header = fits.Header([first])
    header["BITPIX"] = bitpix
    header["NAXIS"] = len(axes)
    for i, n in enumerate(axes, start=1):
        header[f"NAXIS{i}"] = n
    if first[0] == "XTENSION":
        header["PCOUNT"], header["GCOUNT"] = 0, 1
    else:
        header["EXTEND"] = True
    if cards is not None:
        for card in cards.cards:
            header.append(card)
    return header


def create_output(
    tmp: Path,
    planes: list[tuple[fits.Header, fits.Header, tuple[int, int]]],
    n_class: int,
    primary_cards: fits.Header,
    clean_headers: list[fits.Header] | None = None,
) -> None:
    """Write an output file whose PROB and FLAGS data are zeros, ready to be filled through a memory map.

    Only headers are written; the file is then extended to its final size (the
    data read as 0), so no array of the frame's size is ever built in memory.
    With ``clean_headers`` (one per plane), each plane's FLAGS is followed by a
    float32 CLEAN HDU of the image's shape.
    """
    blocks = [(_structural(("SIMPLE", True), 8, (), primary_cards), 0)]
    for k, (prob_header, flags_header, (ny, nx)) in enumerate(planes):
        blocks.append((_structural(("XTENSION", "IMAGE"), -32, (nx, ny, n_class), prob_header), 4 * nx * ny * n_class))
        blocks.append((_structural(("XTENSION", "IMAGE"), 32, (nx, ny), flags_header), 4 * nx * ny))
        if clean_headers is not None:
            blocks.append((_structural(("XTENSION", "IMAGE"), -32, (nx, ny), clean_headers[k]), 4 * nx * ny))
    with open(tmp, "wb") as f:
        for header, nbytes in blocks:
            f.write(header.tostring().encode("ascii"))
            f.seek(f.tell() + nbytes + (-nbytes) % 2880)  # data, padded to whole 2880-byte blocks
        f.truncate(f.tell())


PROB_QUANTUM = 1e-4  # --compress keeps probabilities to +-5e-5: the evaluation's own bin width


def compress_file(src: Path, dst: Path) -> None:
    """Tile-compressed copy of an output file.

    FLAGS: RICE, lossless. PROB: GZIP_2 after quantisation to steps of 1e-4 (no
    dithering, so the same input gives the same values); stored probabilities are
    within 5e-5 of the computed ones, and FLAGS were set from the computed ones.
    Lossless float compression was measured to *grow* a PROB cube (16.3 MB ->
    20.0 MB for a 700x650 frame), this quantisation shrinks it 2.3x.
    CLEAN: GZIP_2, lossless (its unreplaced pixels must stay the input's, exactly).
    """
    with fits.open(src, memmap=True) as hdul:
        out = [fits.PrimaryHDU(header=hdul[0].header)]
        for hdu in hdul[1:]:
            if hdu.name == "CLEAN":
                packed = fits.CompImageHDU(
                    np.asarray(hdu.data),
                    header=hdu.header,
                    name=hdu.name,
                    compression_type="GZIP_2",
                    quantize_level=0.0,
                )
            elif hdu.header["BITPIX"] < 0:
                packed = fits.CompImageHDU(
                    np.asarray(hdu.data),
                    header=hdu.header,
                    name=hdu.name,
                    compression_type="GZIP_2",
                    quantize_level=-PROB_QUANTUM,
                    quantize_method=-1,
                )
                packed.header["PROBQUAN"] = (PROB_QUANTUM, "probabilities stored to this step")
            else:
                packed = fits.CompImageHDU(
                    np.asarray(hdu.data), header=hdu.header, name=hdu.name, compression_type="RICE_1"
                )
            out.append(packed)
        fits.HDUList(out).writeto(dst, overwrite=True)
