"""The clean twin of a simulated tile (the inpainting truth): same scene and noise, no contaminant."""

import numpy as np

from data_sim.config import load_sim_section
from data_sim.generator import SampleSource, simulate, streams
from foundation.classes import INJECTED

OFF = {name: {"probability": 0.0} for name in INJECTED}


def section(contaminants, tile=64, families=None):
    data = {"tile": tile, "contaminants": contaminants}
    if families is not None:
        data["families"] = families
    return load_sim_section({"data": data})


def test_asking_for_the_clean_twin_changes_nothing_else():
    sec = section({})
    for index in range(3):
        plain, with_clean = SampleSource(sec, 7)[index], SampleSource(sec, 7, clean=True)[index]
        np.testing.assert_array_equal(plain.image, with_clean.image)
        np.testing.assert_array_equal(plain.truth, with_clean.truth)
        np.testing.assert_array_equal(plain.saturated, with_clean.saturated)
        assert plain.clean is None and with_clean.clean.dtype == np.float32
        assert with_clean.clean.shape == with_clean.image.shape
        assert with_clean.clean_saturated.shape == with_clean.image.shape


def test_without_contaminants_the_clean_twin_is_the_tile():
    sample = SampleSource(section(OFF), 3, clean=True)[0]
    np.testing.assert_array_equal(sample.clean, sample.image)
    np.testing.assert_array_equal(sample.clean_saturated, sample.saturated)


def test_clean_twin_equals_the_tile_wherever_no_contaminant_changed_the_charge():
    # Hot pixels change exactly their own pixels; a faint sky puts many pixels in the Poisson regime.
    only_hot = {**OFF, "HPX": {"probability": 1.0, "per_mpix": [20000, 20000]}}
    faint = {"f": {"sky": [5, 10], "read_noise": [2, 3], "stars_per_mpix": [500, 500]}}
    sample = SampleSource(section(only_hot, families=faint), 5, clean=True)[1]
    hot = sample.truth_of("HPX")
    assert hot.sum() > 20
    np.testing.assert_array_equal(sample.clean[~hot], sample.image[~hot])
    assert np.all(sample.clean[hot] < sample.image[hot])


def test_same_noise_deviates_under_additive_contaminants_in_the_gaussian_regime():
    # Flat 5000 e- sky, gain 1: clean = sky + s0 z, tile = sky + A + s1 z under a hot column of A e-,
    # with the same z (s = sqrt(mean + read_noise**2)); an independent draw would be ~100 ADU off.
    amplitude = 20
    cols = {
        **OFF,
        "HCL": {"probability": 1.0, "count": [2, 2], "partial_probability": 0.0, "amplitude": [amplitude, amplitude]},
    }
    flat = {
        "f": {
            "sky": [5000, 5000],
            "gain": [1, 1],
            "sky_gradient": [0, 0],
            "vignetting": [0, 0],
            "stars_per_mpix": [0, 0],
            "bright_stars_per_mpix": [0, 0],
            "galaxies_per_mpix": [0, 0],
        }
    }
    sample = SampleSource(section(cols, families=flat), 2, clean=True)[0]
    hot = sample.truth_of("HCL")
    bias, rn2 = float(sample.header["BIAS"][0]), float(sample.header["RDNOISE"][0]) ** 2
    added = amplitude * np.sqrt(5000 + rn2)  # the amplitude is in sky sigmas
    s0, s1 = np.sqrt(5000 + rn2), np.sqrt(5000 + added + rn2)
    z = (sample.clean[hot] - bias - 5000) / s0
    np.testing.assert_allclose(sample.image[hot] - bias - 5000 - added, s1 * z, atol=1.5)  # digitisation


def test_simulate_gives_the_scene_stars_in_adu():
    sparse = {
        "f": {
            "sky": [100, 100],
            "sky_gradient": [0, 0],
            "vignetting": [0, 0],
            "stars_per_mpix": [3000, 3000],
            "bright_stars_per_mpix": [0, 0],
            "galaxies_per_mpix": [0, 0],
            "fwhm": [2, 2],
        }
    }
    sec = section(OFF, families=sparse)
    tile = simulate(sec.data, "f", streams(4, 0), clean=True, noise=False)
    plain = simulate(sec.data, "f", streams(4, 0), noise=False)
    assert plain.clean is None and plain.stars is None
    assert tile.stars.ndim == 2 and tile.stars.shape[1] == 3 and len(tile.stars) == tile.header["NSTARS"][0]
    y, x, flux = tile.stars.T
    interior = (y > 12) & (y < 51) & (x > 12) & (x < 51)
    k = np.argmax(np.where(interior, flux, 0))
    cy, cx = int(round(y[k])), int(round(x[k]))
    cut = tile.clean[cy - 10 : cy + 11, cx - 10 : cx + 11].astype(np.float64)
    measured = (cut - np.median(tile.clean)).sum()
    # Flux in ADU at the stated position (the 21x21 box misses a little of the Moffat wings, and may
    # catch a faint neighbour).
    assert 0.85 * flux[k] < measured < 1.15 * flux[k], (measured, flux[k])
    assert np.unravel_index(np.argmax(cut), cut.shape) in {(9, 10), (10, 9), (10, 10), (10, 11), (11, 10)}
