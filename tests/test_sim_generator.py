"""Whole tiles: determinism, clean-frame statistics, saturation, truth in the full pipeline."""

import numpy as np
import pytest

from data_sim.camera import draw_camera
from data_sim.config import load_sim_section
from data_sim.generator import SampleSource, iter_pairs, iter_samples, simulate_tile, streams
from foundation.classes import CLASS_NAMES, INJECTED

NO_CONTAMINANTS = {name: {"probability": 0.0} for name in INJECTED}
EMPTY_FIELD = {
    "stars_per_mpix": [0, 0],
    "bright_stars_per_mpix": [0, 0],
    "galaxies_per_mpix": [0, 0],
    "sky_gradient": [0, 0],
    "vignetting": [0, 0],
}


def section(families=None, contaminants=None, tile=64, classes=None):
    data = {"tile": tile}
    if families is not None:
        data["families"] = families
    if contaminants is not None:
        data["contaminants"] = contaminants
    mapping = {"data": data}
    if classes is not None:
        mapping["classes"] = classes
    return load_sim_section(mapping)


def test_same_seed_same_sample_and_different_seeds_differ():
    sec = section(tile=64)
    a, b, c = SampleSource(sec, 1)[3], SampleSource(sec, 1)[3], SampleSource(sec, 2)[3]
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.truth, b.truth)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.image, SampleSource(sec, 1)[4].image)


def test_pairs_are_float32_in_contract_order():
    sec = section(tile=48)
    image, truth = next(iter_pairs(SampleSource(sec, 0), 0, 1))
    assert image.dtype == np.float32 and image.shape == (48, 48)
    assert truth.dtype == np.float32 and truth.shape == (len(CLASS_NAMES), 48, 48)
    assert set(np.unique(truth)) <= {0.0, 1.0}
    assert SampleSource(sec, 0)[0].classes == CLASS_NAMES


def test_class_subset_selects_planes_by_name():
    full = SampleSource(section(tile=48), 5)[0]
    cr_only = SampleSource(section(tile=48, classes=["CR", "OBJ"]), 5)[0]
    assert cr_only.truth.shape[0] == 2
    np.testing.assert_array_equal(cr_only.truth_of("CR"), full.truth_of("CR"))
    np.testing.assert_array_equal(cr_only.truth_of("OBJ"), full.truth_of("OBJ"))


def test_workers_give_the_same_samples():
    source = SampleSource(section(tile=32), 9)
    serial = [s.image for s in iter_samples(source, 10, 4)]
    parallel = [s.image for s in iter_samples(source, 10, 4, workers=2)]
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("detector,sky_subtracted", [("ccd", False), ("nir", False), ("ccd", True)])
def test_clean_frame_statistics_match_sky_and_noise(detector, sky_subtracted):
    sky, gain, rn, bias = 900.0, 1.5, 6.0, 300.0
    family = {
        **EMPTY_FIELD,
        "detector": detector,
        "sky_subtracted": sky_subtracted,
        "sky": [sky, sky],
        "gain": [gain, gain],
        "read_noise": [rn, rn],
        "bias": [bias, bias],
    }
    src = SampleSource(section({"flat": family}, NO_CONTAMINANTS, tile=256), 3)
    image = src[0].image.astype(np.float64)
    expected_mean = 0.0 if sky_subtracted else bias + sky / gain
    expected_std = np.sqrt(sky + rn**2) / gain
    n = image.size
    assert abs(image.mean() - expected_mean) < 5 * expected_std / np.sqrt(n) + 0.5  # + rounding to ADU
    assert image.std() == pytest.approx(np.sqrt(expected_std**2 + 1 / 12), rel=0.02)


def test_low_sky_noise_is_poisson():
    # 5 e- of sky, no read noise, gain 1: the pixel values are Poisson counts.
    family = {**EMPTY_FIELD, "sky": [5.0, 5.0], "gain": [1.0, 1.0], "read_noise": [0.0, 0.0], "bias": [0.0, 0.0]}
    image = SampleSource(section({"flat": family}, NO_CONTAMINANTS, tile=256), 1)[0].image
    assert np.allclose(image, np.round(image))
    assert image.min() >= 0
    assert image.mean() == pytest.approx(5.0, rel=0.03)
    assert image.var() == pytest.approx(5.0 + 1 / 12, rel=0.05)


@pytest.mark.parametrize("detector", ["ccd", "nir"])
def test_saturated_stars_clip_at_the_saturation_level(detector):
    family = {
        **EMPTY_FIELD,
        "detector": detector,
        "bright_stars_per_mpix": [600, 600],
        "bright_peak": [5.0, 50.0],
        "full_well": [5e4, 5e4],
        "gain": [2.0, 2.0],
        "bias": [500, 500],
        "fwhm": [3.0, 3.0],
    }
    src = SampleSource(section({"bright": family}, NO_CONTAMINANTS, tile=128), 2)
    sample = src[0]
    level = 5e4 / 2.0 + 500
    assert sample.saturated.any()
    assert sample.image.max() == level
    np.testing.assert_array_equal(sample.image[sample.saturated], level)
    assert np.all(sample.image[~sample.saturated] < level)
    # Saturated pixels are objects; CCDs bleed along columns, NIR arrays do not.
    assert np.all(sample.truth_of("OBJ")[sample.saturated])
    from scipy import ndimage

    labels, n = ndimage.label(sample.saturated)
    boxes = ndimage.find_objects(labels)
    tall = np.mean([(b[0].stop - b[0].start) / (b[1].stop - b[1].start) for b in boxes])
    assert (tall > 2.0) if detector == "ccd" else (tall < 1.6)


def test_adc_ceiling_caps_saturation():
    family = {
        **EMPTY_FIELD,
        "bright_stars_per_mpix": [600, 600],
        "bright_peak": [5.0, 5.0],
        "full_well": [3e5, 3e5],
        "gain": [1.0, 1.0],
        "bias": [1000, 1000],
        "adc_max": 65535.0,
    }
    sample = SampleSource(section({"b": family}, NO_CONTAMINANTS, tile=64), 0)[0]
    assert sample.image.max() == 65535.0
    np.testing.assert_array_equal(sample.image[sample.saturated], 65535.0)


@pytest.mark.parametrize("name", INJECTED)
def test_full_pipeline_truth_matches_the_injected_signal(name):
    """Noise-free tiles with and without one class, same seed: the difference is that class alone."""
    family = {"sky_subtracted": False, "nebulosity_probability": 0.5, "cluster_probability": 0.5}
    on = {n: {"probability": 1.0 if n == name else 0.0} for n in INJECTED}
    off = {n: {"probability": 0.0} for n in INJECTED}
    sec_on, sec_off = section({"f": family}, on, tile=96), section({"f": family}, off, tile=96)
    for index in range(3):
        img_on, masks, sat_on, _ = simulate_tile(sec_on.data, "f", streams(4, index), noise=False)
        img_off, _, sat_off, _ = simulate_tile(sec_off.data, "f", streams(4, index), noise=False)
        camera = draw_camera(sec_on.data.families["f"], streams(4, index)["camera"])
        added = (img_on.astype(np.float64) - img_off) * camera.gain  # e-
        clean_e = (img_off.astype(np.float64) - camera.bias) * camera.gain
        threshold = sec_on.data.truth_nsigma * np.sqrt(np.clip(clean_e, 0, None) + camera.read_noise**2)
        mask = masks[name]
        ok = ~(sat_on | sat_off)  # clipping at full well hides part of any signal
        tol = 1e-3 * threshold + 1e-2
        if name == "FRG":  # the fringed area: crests, troughs and the zero crossings between them
            crests = (np.abs(added) >= threshold + tol) & ok
            assert np.all(mask[crests]) and np.all(np.abs(added[~mask & ok]) < threshold[~mask & ok] + tol[~mask & ok])
            assert not mask.any() or (mask & ok & (np.abs(added) < 0.5 * threshold)).any()
        elif name in ("HCL", "BCL", "BLN", "HPX", "BPX"):
            assert np.all(np.abs(added[~mask & ok]) < tol[~mask & ok])
            assert np.all(np.abs(added[mask & ok]) > tol[mask & ok])
        else:
            assert np.all(np.abs(added[mask & ok]) >= threshold[mask & ok] - tol[mask & ok])
            assert np.all(np.abs(added[~mask & ok]) < threshold[~mask & ok] + tol[~mask & ok])


def test_family_probability_overrides_the_class_default():
    fam = {"probabilities": {"TRL": 1.0}}
    contaminants = {n: {"probability": 0.0} for n in INJECTED}
    src = SampleSource(section({"f": fam}, contaminants, tile=64), 0)
    for i in range(3):
        s = src[i]
        assert s.header["HAS_TRL"][0] and not s.header["HAS_CR"][0]


def test_splits_never_share_tiles():
    sec = section(tile=32)
    train, test = SampleSource(sec, 1, split="train"), SampleSource(sec, 1, split="test")
    assert not np.array_equal(train[0].image, test[0].image)
    assert test[0].header["SIMSPLIT"][0] == "test"
    with pytest.raises(ValueError, match="split: unknown split 'tset'"):
        SampleSource(sec, 1, split="tset")
