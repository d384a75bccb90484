"""Injection into the user's own clean FITS frames."""

import hashlib

import numpy as np
import pytest
from astropy.io import fits

from data_sim.config import load_sim_section
from data_sim.generator import SampleSource
from data_sim.real_frames import RealFrameError, read_image
from foundation.classes import INJECTED


def write_clean_frame(path, *, shape=(150, 170), sky=800.0, gain=2.0, as_int16=False, seed=0):
    """A clean 'real' frame in ADU with a few stars, written as the user's camera would."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    electrons = np.full(shape, sky)
    for _ in range(6):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        electrons += rng.uniform(2e3, 2e4) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 1.5**2))
    adu = rng.poisson(electrons) / gain
    header = fits.Header({"GAIN": gain, "RDNOISE": 4.0, "SATURATE": 30000.0})
    if as_int16:
        hdu = fits.PrimaryHDU(np.round(adu).astype(np.int32), header=header)
        hdu.scale("int16", bzero=32768)
    else:
        hdu = fits.PrimaryHDU(adu.astype(np.float32), header=header)
    hdu.writeto(path)
    return adu


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def real_section(glob, tile=64, probability=1.0):
    contaminants = {name: {"probability": probability} for name in INJECTED}
    return load_sim_section(
        {
            "data": {
                "tile": tile,
                "families": {},
                "real_frames": {"glob": glob, "weight": 1.0},
                "contaminants": contaminants,
            }
        }
    )


@pytest.mark.parametrize("as_int16", [False, True])
def test_injection_into_a_frame_read_from_fits(tmp_path, as_int16):
    path = tmp_path / "clean.fits"
    adu = write_clean_frame(path, as_int16=as_int16)
    before = digest(path)
    source = SampleSource(real_section(str(tmp_path / "*.fits")), 3)
    sample = source[0]
    assert sample.family == "real" and sample.image.shape == (64, 64) and sample.image.dtype == np.float32
    y0, x0 = sample.header["REALY0"][0], sample.header["REALX0"][0]
    crop = adu[y0 : y0 + 64, x0 : x0 + 64]
    if as_int16:
        crop = np.round(crop)
    # Defects are exact: every flagged bad-column pixel changed, and CR pixels rose.
    cr = sample.truth_of("CR")
    lowered = sample.truth_of("BCL") | sample.truth_of("BPX") | sample.truth_of("BLN")
    assert cr.any()
    assert np.all(sample.image[cr & ~lowered] > crop[cr & ~lowered])
    for name in ("HCL", "BCL"):
        assert sample.truth_of(name).any()
    changed = ~np.isclose(sample.image, crop, rtol=0, atol=1e-3)
    flagged = np.any([sample.truth_of(name) for name in INJECTED], axis=0)  # any injected contaminant
    # Pixels changed outside every mask are only sub-threshold tails of additive signals.
    stray = changed & ~flagged
    local_sigma = np.sqrt(np.clip(crop, 0, None) * 2.0 + 16) / 2.0  # ADU, from the frame's own counts
    assert np.all(np.abs(sample.image - crop)[stray] < 3 * local_sigma[stray])
    sky_sigma = np.sqrt(800.0 + 16) / 2.0
    assert sample.truth_of("OBJ").any() or not (crop > 800 / 2 + 10 * sky_sigma).any()
    assert digest(path) == before, "the input file was modified"


def test_real_frames_without_noise_are_exact(tmp_path):
    path = tmp_path / "clean.fits"
    adu = write_clean_frame(path)
    sec = real_section(str(path), probability=0.0)
    sample = SampleSource(sec, 1, noise=False)[2]
    y0, x0 = sample.header["REALY0"][0], sample.header["REALX0"][0]
    np.testing.assert_allclose(sample.image, adu[y0 : y0 + 64, x0 : x0 + 64], rtol=1e-6)


def test_missing_files_and_small_frames_give_clear_errors(tmp_path):
    with pytest.raises(RealFrameError, match="no file matches"):
        SampleSource(real_section(str(tmp_path / "none*.fits")), 0)[0]
    small = tmp_path / "small.fits"
    fits.PrimaryHDU(np.ones((20, 20), np.float32)).writeto(small)
    with pytest.raises(RealFrameError, match=r"data.tile = 64: every real frame is smaller \(small.fits 20x20\)"):
        SampleSource(real_section(str(small)), 0)[0]
    bad = tmp_path / "bad.fits"
    bad.write_text("not a fits file")
    with pytest.raises(RealFrameError, match="bad.fits"):
        read_image(bad)
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.ones((2, 3, 4), np.float32)).writeto(cube)
    with pytest.raises(RealFrameError, match="cube.fits: no HDU holds a 2-D image"):
        read_image(cube)


def test_frames_smaller_than_the_tile_are_skipped_when_others_fit(tmp_path):
    write_clean_frame(tmp_path / "big.fits")
    fits.PrimaryHDU(np.ones((20, 20), np.float32)).writeto(tmp_path / "small.fits")
    source = SampleSource(real_section(str(tmp_path / "*.fits")), 0)
    assert {source[i].header["REALFILE"][0] for i in range(6)} == {"big.fits"}


def test_non_standard_header_cards_are_read_quietly_and_damage_is_still_reported(tmp_path):
    import warnings

    path = tmp_path / "eso.fits"
    hdu = fits.PrimaryHDU(np.ones((8, 8), np.float32))
    hdu.header["COMMENT"] = "to be replaced"
    hdu.writeto(path)
    raw = path.read_bytes()
    card = b"COMMENT to be replaced".ljust(80)
    eso = b"ESO-LOG 00:00:00> DATE         = '1992-10-26'  / Mon Oct 26, 1992".ljust(80)
    assert raw.count(card) == 1
    path.write_bytes(raw.replace(card, eso))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        image, _ = read_image(path)
    assert image.shape == (8, 8) and not seen
    with warnings.catch_warnings(record=True) as seen:  # astropy alone still speaks of that card
        warnings.simplefilter("always")
        with fits.open(path) as hdul:
            list(hdul[0].header.cards)
    assert any("non-standard convention" in str(w.message) for w in seen)
    (tmp_path / "cut.fits").write_bytes(path.read_bytes()[:-100])  # a truncated file is still named
    with pytest.raises(RealFrameError, match="cut.fits"):
        read_image(tmp_path / "cut.fits")
