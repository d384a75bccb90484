"""Simulator realism: pixel-integrated undersampled PSFs, correlated noise, non-linear response."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from data_sim.camera import add_noise, correlated_normal, draw_camera, nonlinear_response, saturate
from data_sim.config import ConfigError, FamilyConfig, load_sim_section
from data_sim.generator import SampleSource, readout
from data_sim.psf import SampledPSF, moffat_alpha, moffat_kernel, oversampling, sampled_psf
from data_sim.scene import render_points, render_scene
from foundation.classes import INJECTED

NO_CONTAMINANTS = {name: {"probability": 0.0} for name in INJECTED}
EMPTY_FIELD = {
    "stars_per_mpix": [0, 0],
    "bright_stars_per_mpix": [0, 0],
    "galaxies_per_mpix": [0, 0],
    "sky_gradient": [0, 0],
    "vignetting": [0, 0],
}


def section(family, contaminants=NO_CONTAMINANTS, tile=64):
    return load_sim_section({"data": {"tile": tile, "families": {"f": family}, "contaminants": contaminants}})


# --- 1. Undersampled PSFs are integrated over pixels -------------------------------------------------


def pixel_integrated_moffat(shape, stars, fwhm, beta, sub=41):
    """Reference image: each star's circular Moffat integrated over every pixel (sub x sub midpoints).

    Normalised analytically (the whole plane holds ``flux``), so stars off the image throw in only their wings.
    """
    ny, nx = shape
    alpha = moffat_alpha(fwhm, beta)
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    yy = (np.arange(ny)[:, None] + offsets).ravel()
    xx = (np.arange(nx)[:, None] + offsets).ravel()
    image = np.zeros(shape)
    for y0, x0, flux in stars:
        profile = (1 + ((yy[:, None] - y0) ** 2 + (xx[None, :] - x0) ** 2) / alpha**2) ** (-beta)
        binned = profile.reshape(ny, sub, nx, sub).sum(axis=(1, 3)) / sub**2
        image += flux * binned / (np.pi * alpha**2 / (beta - 1))  # the Moffat's integral over the plane
    return image


def peak_and_width(image, y0, x0, half=4):
    """Peak fraction of the flux and rms width per axis (px), second moments over a (2 half + 1) box."""
    cy, cx = int(round(y0)), int(round(x0))
    box = image[cy - half : cy + half + 1, cx - half : cx + half + 1].astype(np.float64)
    yy, xx = np.mgrid[cy - half : cy + half + 1, cx - half : cx + half + 1]
    total = box.sum()
    my, mx = (box * yy).sum() / total, (box * xx).sum() / total
    var = (box * ((yy - my) ** 2 + (xx - mx) ** 2)).sum() / total / 2
    return image.max() / image.sum(), np.sqrt(var)


OFFSETS = [(0.0, 0.0), (0.3, 0.5), (0.5, 0.5), (0.25, -0.1)]


@pytest.mark.parametrize("dy,dx", OFFSETS)
def test_undersampled_star_matches_the_pixel_integrated_moffat(dy, dx):
    fwhm, beta, shape = 1.2, 3.0, (25, 25)
    y0, x0 = 12 + dy, 12 + dx
    reference = pixel_integrated_moffat(shape, [(y0, x0, 1.0)], fwhm, beta)
    ref_peak, ref_width = peak_and_width(reference, y0, x0)
    image = render_points(shape, [y0], [x0], [5000.0], sampled_psf(fwhm, beta))
    assert image.dtype == np.float32
    assert image.sum() == pytest.approx(5000.0, rel=1e-5)  # flux conserved
    peak, width = peak_and_width(image, y0, x0)
    assert peak == pytest.approx(ref_peak, rel=0.05)
    assert width == pytest.approx(ref_width, rel=0.05)


def test_point_sampled_bilinear_rendering_fails_at_fwhm_1_2():
    """The rendering used above the threshold is off by far more than 5 % for an undersampled PSF."""
    fwhm, beta, shape = 1.2, 3.0, (25, 25)
    point_sampled = SampledPSF(moffat_kernel(fwhm, beta), None, 1)
    peak_errors, width_errors = [], []
    for dy, dx in OFFSETS:
        y0, x0 = 12 + dy, 12 + dx
        ref_peak, ref_width = peak_and_width(pixel_integrated_moffat(shape, [(y0, x0, 1.0)], fwhm, beta), y0, x0)
        peak, width = peak_and_width(render_points(shape, [y0], [x0], [1.0], point_sampled), y0, x0)
        peak_errors.append(abs(peak / ref_peak - 1))
        width_errors.append(abs(width / ref_width - 1))
    assert max(peak_errors) > 0.25  # a centred star: the point-sampled peak is ~30 % too high
    assert max(width_errors) > 0.05  # a star on a pixel corner: the bilinear split broadens it


def test_render_scene_integrates_an_undersampled_psf_over_pixels():
    fwhm, beta = 1.2, 3.0
    field = {**{k: tuple(v) for k, v in EMPTY_FIELD.items()}, "stars_per_mpix": (4000.0, 4000.0)}
    family = FamilyConfig(**field, fwhm=(fwhm, fwhm), moffat_beta=(beta, beta), ellipticity=(0.0, 0.0))
    camera = draw_camera(family, np.random.default_rng(0))
    scene = render_scene(camera, family, (40, 40), np.random.default_rng(1))
    assert scene.stars.shape[0] >= 5
    np.testing.assert_array_equal(scene.psf, sampled_psf(fwhm, beta).kernel)
    assert scene.psf.sum() == pytest.approx(1.0, abs=1e-6)
    expected = pixel_integrated_moffat((40, 40), scene.stars, fwhm, beta)
    # Stars at integer-centred tile positions, each through the pixel-integrated PSF.
    assert np.abs(scene.objects - expected).max() < 0.03 * expected.max()


def test_oversampling_only_below_three_pixels_and_the_well_sampled_kernel_is_unchanged():
    assert [oversampling(f) for f in (1.2, 1.99, 2.0, 2.9, 3.0, 6.0)] == [5, 5, 3, 3, 1, 1]
    well = sampled_psf(4.0, 3.0, ellipticity=0.1, angle=0.4)
    assert well.oversample == 1 and well.fine is None
    np.testing.assert_array_equal(well.kernel, moffat_kernel(4.0, 3.0, ellipticity=0.1, angle=0.4))
    under = sampled_psf(2.5, 3.0, ellipticity=0.1, angle=0.4)
    assert under.kernel.shape == moffat_kernel(2.5, 3.0).shape  # same radius, ceil(4 fwhm)
    assert under.fine.shape == (3 * under.kernel.shape[0],) * 2
    assert under.kernel.sum() == pytest.approx(1.0, abs=1e-6) and under.fine.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("fwhm", [1.2, 2.5])
def test_undersampled_flux_is_conserved_and_the_centroid_kept(fwhm):
    psf = sampled_psf(fwhm, 2.5, ellipticity=0.1, angle=1.0)
    ys, xs, fluxes = [10.3, 20.0, 30.71], [12.6, 29.5, 20.0], [100.0, 2.5e5, 7.0]
    for y0, x0, flux in zip(ys, xs, fluxes):
        image = render_points((44, 44), [y0], [x0], [flux], psf)
        assert image.sum() == pytest.approx(flux, rel=1e-5)
        yy, xx = np.mgrid[:44, :44]
        assert (image * yy).sum() / image.sum() == pytest.approx(y0, abs=0.01)
        assert (image * xx).sum() / image.sum() == pytest.approx(x0, abs=0.01)


# --- 2. Correlated noise ---------------------------------------------------------------------------


def lag1(noise):
    """Lag-1 autocorrelation along both axes."""
    n = noise - noise.mean()
    return 0.5 * ((n[:, 1:] * n[:, :-1]).mean() + (n[1:] * n[:-1]).mean()) / n.var()


@pytest.mark.parametrize("correlation", [0.0, 0.7])
def test_correlated_noise_keeps_each_pixels_variance(correlation):
    sky, rn = 900.0, 6.0
    flat = np.full((128, 128), sky, np.float32)
    noise = add_noise(flat, rn, np.random.default_rng(3), correlation=correlation) - sky
    assert noise.std() == pytest.approx(np.sqrt(sky + rn**2), rel=0.03)
    if correlation:
        assert lag1(noise) > 0.2
    else:
        assert abs(lag1(noise)) < 0.03


def test_correlated_deviates_have_unit_variance_up_to_the_edges():
    rng = np.random.default_rng(5)
    fields = np.stack([correlated_normal((12, 12), 0.8, rng) for _ in range(400)])
    var = fields.var(axis=0)
    edge = np.ones((12, 12), bool)
    edge[1:-1, 1:-1] = False
    assert var[edge].mean() == pytest.approx(1.0, abs=0.03)
    assert var[~edge].mean() == pytest.approx(1.0, abs=0.03)


def test_tiles_get_correlated_noise_and_its_header():
    sky, gain, rn = 900.0, 1.0, 5.0
    family = {
        **EMPTY_FIELD,
        "sky": [sky, sky],
        "gain": [gain, gain],
        "read_noise": [rn, rn],
        "bias": [300, 300],
        "correlated_noise_probability": 1.0,
        "noise_correlation": [0.7, 0.7],
    }
    sample = SampleSource(section(family, tile=96), 1)[0]
    assert sample.header["NOISECOR"][0] == 0.7 and sample.header["NONLIN"][0] == 0.0
    noise = sample.image.astype(np.float64)
    assert noise.std() == pytest.approx(np.sqrt(sky + rn**2 + 1 / 12), rel=0.04)
    assert lag1(noise) > 0.2
    plain = SampleSource(section({**family, "correlated_noise_probability": 0.0}, tile=96), 1)[0]
    assert plain.header["NOISECOR"][0] == 0.0
    assert abs(lag1(plain.image.astype(np.float64))) < 0.03


def test_clean_twin_gets_the_same_correlated_deviates():
    only_hot = {**NO_CONTAMINANTS, "HPX": {"probability": 1.0, "per_mpix": [20000, 20000]}}
    family = {
        "sky": [500, 1000],
        "stars_per_mpix": [500, 500],
        "correlated_noise_probability": 1.0,
        "nonlinearity": [0.05, 0.05],
    }
    sample = SampleSource(section(family, only_hot), 5, clean=True)[1]
    hot = sample.truth_of("HPX")
    assert hot.sum() > 20 and sample.header["NOISECOR"][0] > 0
    np.testing.assert_array_equal(sample.clean[~hot], sample.image[~hot])


# --- 3. Non-linear response ------------------------------------------------------------------------


def test_nonlinear_response_rolls_off_towards_saturation():
    level, a = 1e5, 0.08
    e = np.array([0.0, 1e3, level / 2, 0.9 * level], np.float32)
    out = nonlinear_response(e, a, level)
    assert out[0] == 0.0
    assert out[2] == pytest.approx(level / 2 * (1 - a / 4), rel=1e-6)
    assert out[1] == pytest.approx(1e3, rel=1e-4)  # faint pixels stay linear
    ramp = np.linspace(0, 3 * level, 30001, dtype=np.float32)
    response = nonlinear_response(ramp, 0.29, level)
    assert np.all(np.diff(response) > 0)  # monotonic, through and past the saturation level
    just = nonlinear_response(np.array([level * (1 - 1e-6), level * (1 + 1e-6)], np.float32), a, level)
    assert just[1] - just[0] < 1.0  # continuous at the saturation level
    assert nonlinear_response(e, 0.0, level) is e


def test_readout_applies_the_nonlinearity_before_saturation_and_noise():
    family = FamilyConfig(full_well=(1e5, 1e5), adc_max=1e9, nonlinearity=(0.06, 0.06))
    camera = draw_camera(family, np.random.default_rng(2))
    assert camera.nonlinearity == 0.06
    level = camera.saturation_e
    charge = np.array([[0.0, level / 2, 3 * level]], np.float32)
    pre, image, saturated = readout(charge, camera, np.random.default_rng(0), noise=False)
    assert pre[0, 0] == 0.0
    assert pre[0, 1] == pytest.approx(level / 2 * (1 - 0.06 / 4), rel=1e-6)
    assert pre[0, 2] == level and saturated.tolist() == [[False, False, True]]
    # Without non-linearity the read-out is bit for bit the same as before it existed.
    linear = dataclasses.replace(camera, nonlinearity=0.0)
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    charge = np.random.default_rng(1).uniform(0, 1.2 * level, (16, 16)).astype(np.float32)
    _, image_a, sat_a = readout(charge, linear, rng_a, noise=True)
    pre_b, sat_b = saturate(charge, level, bleed=True)
    image_b = np.minimum(add_noise(pre_b, linear.read_noise, rng_b, saturated=sat_b, level=level), level)
    np.testing.assert_array_equal(image_a, image_b)


# --- Configuration and the camera stream -----------------------------------------------------------


def test_new_draws_come_after_the_others_and_default_to_off():
    off = draw_camera(FamilyConfig(), np.random.default_rng(9))
    on = draw_camera(
        FamilyConfig(correlated_noise_probability=1.0, noise_correlation=(0.5, 0.9), nonlinearity=(0.01, 0.08)),
        np.random.default_rng(9),
    )
    assert off.noise_correlation == 0.0 and off.nonlinearity == 0.0
    assert 0.5 <= on.noise_correlation <= 0.9 and 0.01 <= on.nonlinearity <= 0.08
    same = (
        "gain",
        "read_noise",
        "bias",
        "full_well",
        "fwhm",
        "beta",
        "ellipticity",
        "psf_angle",
        "sky",
        "readout_at_start",
    )
    assert [getattr(off, k) for k in same] == [getattr(on, k) for k in same]
    header = on.as_header()
    assert header["NOISECOR"][0] == round(on.noise_correlation, 4) and header["NONLIN"][0] == round(on.nonlinearity, 5)


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("nonlinearity", [0.0, 0.4], r"families.f.nonlinearity: values must be <= 0.3"),
        ("nonlinearity", [-0.1, 0.1], r"families.f.nonlinearity: values must be >= 0"),
        ("correlated_noise_probability", 1.5, r"families.f.correlated_noise_probability: a probability"),
        ("noise_correlation", [0.0, 1.0], r"families.f.noise_correlation: values must be >= 0.05"),
    ],
)
def test_bad_settings_name_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        section({key: value})


def test_multiclass_config_spans_undersampled_to_oversampled_psfs():
    families = load_sim_section(Path(__file__).resolve().parents[1] / "configs" / "multiclass.yaml").data.families
    for name, family in families.items():
        assert family.fwhm[0] == 1.2 and family.fwhm[1] == (9.0 if family.detector == "nir" else 6.0), name
        assert family.nonlinearity[1] == (0.08 if family.detector == "nir" else 0.02), name
    assert families["sky_subtracted"].correlated_noise_probability == 0.6


@pytest.mark.parametrize("fwhm", [1.5, 4.0])
def test_a_bright_star_has_wings_beyond_the_kernel_and_no_square_edge(fwhm):
    """A star at 50x full well is tens of sigma bright at 4 FWHM: its profile goes on, smoothly."""
    from data_sim.scene import bright_wings

    field = {**{k: tuple(v) for k, v in EMPTY_FIELD.items()}}
    family = FamilyConfig(
        **field,
        fwhm=(fwhm, fwhm),
        moffat_beta=(2.5, 2.5),
        ellipticity=(0.0, 0.0),
        sky=(100.0, 100.0),
        read_noise=(5.0, 5.0),
    )
    camera = draw_camera(family, np.random.default_rng(0))
    psf = sampled_psf(fwhm, 2.5)
    r0, shape, c = psf.radius, (161, 161), 80
    flux = 50 * camera.full_well / float(psf.kernel.max())
    core = render_points(shape, [c], [c], [flux], psf)
    wings = bright_wings(shape, np.array([c]), np.array([c]), np.array([flux]), camera, r0, camera.sky_noise)
    star = core + wings
    assert (
        np.abs(wings[c - r0 : c + r0 + 1, c - r0 : c + r0 + 1]).max() < 1e-2
    )  # the core square: the kernel alone (FFT round-off)
    for cut in (star[c, c:], np.diagonal(star)[c:]):  # along a row and along the diagonal
        lit = cut[: np.argmax(cut < 1.0)]  # out to where it falls below 1 e-
        assert len(lit) > r0 + 5 and np.all(np.diff(lit) < 0)  # falls monotonically, no step at the square
    alpha = moffat_alpha(fwhm, 2.5)
    moffat = lambda r: (1 + (r / alpha) ** 2) ** -2.5  # noqa: E731
    # Across the square's edge the profile follows the Moffat (within 5 %), as it does inside.
    ratio = star[c, c + r0 + 1] / star[c, c + r0]
    assert ratio == pytest.approx(moffat(r0 + 1) / moffat(r0), rel=0.05)
    assert star[c, c + r0 + 2] > 3 * camera.sky_noise  # without its wing this pixel would be dark
    # A faint star gets no wing: tiles without bright stars are unchanged.
    faint = bright_wings(shape, np.array([c]), np.array([c]), np.array([100.0]), camera, r0, camera.sky_noise)
    assert not faint.any()
