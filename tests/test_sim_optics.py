"""Light through the optics, noise-free: diffraction spikes (SPK) and ghosts (GHO)."""

import time

import numpy as np
import pytest

from data_sim.config import ContaminantsConfig, GhostConfig, SpikeConfig, load_sim_section
from data_sim.contaminants import INJECTORS, STAGES, Frame, significant
from data_sim.contaminants.ghosts import Ghost, draw_ghosts, inject_ghosts, render_ghost
from data_sim.contaminants.spikes import draw_spider, inject_spikes, psf_peak_fraction, render_floor, spike_lines
from data_sim.psf import moffat_alpha
from foundation.typed_config import ConfigError

SKY, READ_NOISE, FWHM, BETA, FULL_WELL = 400.0, 5.0, 3.0, 3.0, 1e5
PEAK = psf_peak_fraction(FWHM, BETA)  # PSF peak per unit flux


def flux_for_peak(peak_in_full_wells):
    return peak_in_full_wells * FULL_WELL / PEAK


def make_frame(stars=None, shape=(128, 128), nsigma=1.0):
    """A flat sky; ``stars`` (n, 3) y, x, flux. Returns (clean image, frame)."""
    clean = np.full(shape, SKY, np.float32)
    noise = np.sqrt(clean + READ_NOISE**2).astype(np.float32)
    frame = Frame(
        noise=noise,
        sky=clean.copy(),
        sky_noise=float(np.sqrt(SKY + READ_NOISE**2)),
        fwhm=FWHM,
        beta=BETA,
        full_well=FULL_WELL,
        detector="ccd",
        readout_at_start=True,
        nsigma=nsigma,
        stars=None if stars is None else np.asarray(stars, np.float64),
    )
    return clean, frame


def random_stars(rng, n, shape, margin=30.0):
    """Stars on and around the tile, peaks 0.1-50 full wells (some below the spike threshold)."""
    ny, nx = shape
    peaks = np.exp(rng.uniform(np.log(0.1), np.log(50.0), n))
    return np.c_[rng.uniform(-margin, ny + margin, n), rng.uniform(-margin, nx + margin, n), flux_for_peak(peaks)]


def spike_reference(frame, cfg, seed):
    """The spikes evaluated at every pixel for every star (brute force), from the same spider."""
    angles, strengths = draw_spider(cfg, np.random.default_rng(seed))
    cutoff = render_floor(frame)
    alpha = moffat_alpha(FWHM, BETA)
    y, x = np.mgrid[: frame.shape[0], : frame.shape[1]].astype(np.float64)
    total = np.zeros(frame.shape)
    for sy, sx, flux in frame.stars:
        if flux * PEAK < cfg.min_peak * FULL_WELL:
            continue
        for angle, strength in zip(angles, strengths):
            along = (x - sx) * np.cos(angle) + (y - sy) * np.sin(angle)
            across = (y - sy) * np.cos(angle) - (x - sx) * np.sin(angle)
            value = flux * strength / (along**2 + FWHM**2) * (1 + (across / alpha) ** 2) ** -BETA
            total += np.where(value >= cutoff, value, 0.0)
    return total


def ring(signal, cy, cx, radius, n=1440):
    """Signal sampled (nearest pixel) on a circle; returns (angles in degrees, values)."""
    phi = np.arange(n) * 360.0 / n
    y = np.rint(cy + radius * np.sin(np.radians(phi))).astype(int)
    x = np.rint(cx + radius * np.cos(np.radians(phi))).astype(int)
    return phi, signal[y, x]


def runs_on_circle(on):
    """Number of separate runs of True on a closed circle."""
    if on.all():
        return 1
    starts = on & ~np.roll(on, 1)
    return int(starts.sum())


# ---------------------------------------------------------------------------------------------- SPK


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spikes_are_flagged_exactly_where_they_exceed_the_noise_and_nowhere_else(seed):
    rng = np.random.default_rng(100 + seed)
    clean, frame = make_frame(random_stars(rng, 12, (128, 128)))
    cfg = SpikeConfig(strength=(1e-3, 1e-2))
    out, mask = inject_spikes(clean, frame, cfg, np.random.default_rng(seed))
    added = (out - clean).astype(np.float64)
    assert mask.dtype == bool and mask.shape == frame.shape
    assert mask.any()
    np.testing.assert_array_equal(mask, significant(out - clean, frame))
    assert not np.shares_memory(out, clean) and np.all(clean == SKY)
    # The cheap renderer gives what every star's spikes evaluated over the whole tile give,
    # and nothing where those fall below the render floor.
    reference = spike_reference(frame, cfg, seed)
    np.testing.assert_allclose(added, reference, rtol=1e-4, atol=1e-3 * render_floor(frame))
    assert np.all(added[reference == 0] == 0)
    assert np.all(added >= 0)


@pytest.mark.parametrize("vanes, spikes", [(4, 4), (3, 6), (2, 2)])
def test_a_spider_of_n_vanes_gives_its_spikes_and_nothing_between_them(vanes, spikes):
    clean, frame = make_frame([[64.0, 64.0, flux_for_peak(20.0)]])
    cfg = SpikeConfig(vanes=(vanes, vanes), strength=(3e-3, 3e-3), vane_scatter=0.0)
    for seed in range(3):
        out, mask = inject_spikes(clean, frame, cfg, np.random.default_rng(seed))
        phi, on = ring(mask, 64, 64, 30)
        assert runs_on_circle(on) == spikes
        # Evenly spaced: each spike's light-weighted direction, 360/spikes apart.
        _, values = ring(out - clean, 64, 64, 30)
        unit = np.exp(1j * np.radians(phi))
        peaks = np.sort(
            [np.degrees(np.angle(np.sum(np.where(seg, values, 0) * unit))) % 360.0 for seg in _segments(on)]
        )
        gaps = np.diff(np.r_[peaks, peaks[0] + 360.0])
        np.testing.assert_allclose(gaps, 360.0 / spikes, atol=1.0)
        # Half way between two spikes there is no spike light at all.
        for mid in peaks + 180.0 / spikes:
            y = int(round(64 + 30 * np.sin(np.radians(mid))))
            x = int(round(64 + 30 * np.cos(np.radians(mid))))
            assert out[y, x] == clean[y, x]


def _segments(on):
    """Boolean masks of each run of True on a closed circle."""
    n = on.size
    shift = int(np.argmin(on)) if not on.all() else 0  # start the scan on an off sample
    rolled = np.roll(on, -shift)
    segments, current = [], None
    for i, v in enumerate(rolled):
        if v and current is None:
            current = np.zeros(n, bool)
        if v:
            current[(i + shift) % n] = True
        elif current is not None:
            segments.append(current)
            current = None
    if current is not None:
        segments.append(current)
    return segments


def test_collinear_vanes_share_one_spike_line():
    angles, strengths = spike_lines(np.radians([10, 100, 190, 280]), [1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(np.sort(np.degrees(angles)), [10.0, 100.0])
    np.testing.assert_allclose(strengths, [2.0, 2.0])  # each line carries two vanes' light
    angles, _ = spike_lines(np.radians([0, 120, 240]), [1.0, 1.0, 1.0])
    assert len(angles) == 3


def test_a_brighter_star_has_longer_spikes():
    cfg = SpikeConfig(vanes=(4, 4), strength=(1e-3, 1e-3))
    lengths = []
    for flux in (4e6, 4e7):
        clean, frame = make_frame([[64.0, 64.0, flux]])
        _, mask = inject_spikes(clean, frame, cfg, np.random.default_rng(5))
        y, x = np.nonzero(mask)
        lengths.append(np.hypot(y - 64, x - 64).max())
    # Surface brightness ~ flux / r**2: 10x the flux reaches sqrt(10) x as far.
    assert lengths[1] > 2.5 * lengths[0]
    assert lengths[0] > 8


def test_a_star_off_the_tile_throws_its_spikes_in():
    clean, frame = make_frame([[-25.0, 64.0, flux_for_peak(40.0)]])
    out, mask = inject_spikes(clean, frame, SpikeConfig(vanes=(4, 4), strength=(3e-3, 3e-3)), np.random.default_rng(0))
    assert mask.any()
    assert mask[0].any()  # enters through the near edge


@pytest.mark.parametrize(
    "stars", [None, np.zeros((0, 3)), [[64.0, 64.0, flux_for_peak(0.2)]]], ids=["unknown", "none", "too-faint"]
)
def test_no_bright_star_no_spikes(stars):
    clean, frame = make_frame(stars)
    out, mask = inject_spikes(clean, frame, SpikeConfig(), np.random.default_rng(0))
    np.testing.assert_array_equal(out, clean)
    assert not np.shares_memory(out, clean)
    assert mask.shape == frame.shape and not mask.any()


def test_spikes_are_deterministic():
    clean, frame = make_frame(random_stars(np.random.default_rng(3), 10, (64, 64)), shape=(64, 64))
    a = inject_spikes(clean, frame, SpikeConfig(), np.random.default_rng(9))
    b = inject_spikes(clean, frame, SpikeConfig(), np.random.default_rng(9))
    c = inject_spikes(clean, frame, SpikeConfig(), np.random.default_rng(10))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


# ---------------------------------------------------------------------------------------------- GHO


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ghosts_are_flagged_exactly_where_they_exceed_the_noise_and_stay_within_their_extent(seed):
    rng = np.random.default_rng(200 + seed)
    clean, frame = make_frame(random_stars(rng, 6, (128, 128)))
    cfg = GhostConfig(count=(3, 3), amplitude=(3.0, 20.0), radius=(8.0, 40.0))
    out, mask = inject_ghosts(clean, frame, cfg, np.random.default_rng(seed))
    added = out - clean
    assert mask.any()
    np.testing.assert_array_equal(mask, significant(added, frame))
    assert not np.shares_memory(out, clean) and np.all(clean == SKY)
    ghosts = draw_ghosts(frame, cfg, np.random.default_rng(seed))
    y, x = np.mgrid[:128, :128]
    inside = np.zeros(frame.shape, bool)
    for g in ghosts:
        inside |= np.hypot(y - g.y, x - g.x) <= g.extent
    assert np.all(added[~inside] == 0)
    assert np.all(added >= 0)


def pupil_config(**kw):
    base = dict(
        count=(1, 1),
        radius=(30.0, 30.0),
        obstruction=(0.4, 0.4),
        softness=(1.0, 1.0),
        amplitude=(10.0, 10.0),
        offset=(0.0, 0.0),
        halo_probability=0.0,
        vane_probability=0.0,
    )
    return GhostConfig(**{**base, **kw})


def test_a_pupil_ghost_is_an_annulus_with_a_dark_centre():
    clean, frame = make_frame([[64.0, 64.0, flux_for_peak(10.0)]])
    out, mask = inject_ghosts(clean, frame, pupil_config(), np.random.default_rng(0))
    added = out - clean
    amplitude = 10.0 * frame.sky_noise
    assert added[64, 64] < 1e-3 * amplitude  # the central obstruction's shadow
    _, ring_values = ring(added, 64, 64, 21.0)  # half way between 12 and 30 px
    np.testing.assert_allclose(ring_values, amplitude, rtol=1e-3)
    assert not mask[64, 64] and mask[64, 64 + 21]
    assert added[64, 64 + 40] == 0  # beyond the blurred edge


def test_vane_shadows_cross_the_pupil_image():
    clean, frame = make_frame([[64.0, 64.0, flux_for_peak(10.0)]])
    cfg = pupil_config(vane_probability=1.0, vanes=(4, 4), vane_width=(0.1, 0.1))
    out, _ = inject_ghosts(clean, frame, cfg, np.random.default_rng(0))
    _, values = ring(out - clean, 64, 64, 21.0)
    shadowed = values < 0.5 * values.max()
    assert runs_on_circle(shadowed) == 4


def test_a_halo_is_brightest_at_its_centre_and_fades_outwards():
    clean, frame = make_frame([[64.0, 64.0, flux_for_peak(10.0)]])
    out, _ = inject_ghosts(
        clean, frame, pupil_config(halo_probability=1.0, radius=(15.0, 15.0)), np.random.default_rng(0)
    )
    profile = (out - clean)[64, 64:]
    assert np.argmax(out - clean) == 64 * 128 + 64
    assert np.all(np.diff(profile) <= 0)


def test_ghost_brightness_follows_the_configured_amplitude():
    clean, frame = make_frame([[64.0, 64.0, flux_for_peak(10.0)]])
    faint, _ = inject_ghosts(clean, frame, pupil_config(amplitude=(5.0, 5.0)), np.random.default_rng(4))
    bright, _ = inject_ghosts(clean, frame, pupil_config(amplitude=(10.0, 10.0)), np.random.default_rng(4))
    np.testing.assert_allclose(bright - clean, 2.0 * (faint - clean), rtol=1e-5, atol=1e-4)
    assert (bright - clean).max() == pytest.approx(10.0 * frame.sky_noise, rel=1e-3)


def test_ghosts_of_a_tile_lie_in_one_direction_from_their_parents():
    stars = [[30.0, 40.0, flux_for_peak(20.0)], [90.0, 80.0, flux_for_peak(5.0)], [60.0, 100.0, flux_for_peak(1e-3)]]
    _, frame = make_frame(stars)
    cfg = GhostConfig(count=(3, 3), offset=(1.0, 3.0), radius=(8.0, 20.0))
    for seed in range(5):
        ghosts = draw_ghosts(frame, cfg, np.random.default_rng(seed))
        directions = []
        for g in ghosts:
            assert (g.parent_y, g.parent_x) in {(30.0, 40.0), (90.0, 80.0)}  # bright parents only
            d = np.array([g.y - g.parent_y, g.x - g.parent_x])
            assert 1.0 - 1e-9 <= np.hypot(*d) / g.radius <= 3.0 + 1e-9
            directions.append(d / np.hypot(*d))
        np.testing.assert_allclose(directions, [directions[0]] * len(directions), atol=1e-9)


@pytest.mark.parametrize("stars", [None, [[64.0, 64.0, flux_for_peak(0.1)]]], ids=["unknown", "too-faint"])
def test_without_a_bright_star_ghosts_come_from_a_source_off_the_tile(stars):
    clean, frame = make_frame(stars)
    cfg = GhostConfig(count=(2, 2), amplitude=(10.0, 10.0), radius=(10.0, 30.0))
    for seed in range(5):
        ghosts = draw_ghosts(frame, cfg, np.random.default_rng(seed))
        for g in ghosts:
            assert -0.5 <= g.y <= 127.5 and -0.5 <= g.x <= 127.5
            off_y = g.parent_y < -0.5 or g.parent_y > 127.5
            off_x = g.parent_x < -0.5 or g.parent_x > 127.5
            assert off_y or off_x
        out, mask = inject_ghosts(clean, frame, cfg, np.random.default_rng(seed))
        assert mask.any()


def test_render_ghost_clips_at_the_tile_edges():
    signal = np.zeros((32, 32), np.float32)
    render_ghost(
        signal,
        Ghost(
            y=-10.0,
            x=16.0,
            parent_y=-50.0,
            parent_x=16.0,
            radius=20.0,
            inner=5.0,
            softness=1.0,
            amplitude=7.0,
            halo=False,
        ),
    )
    assert signal[0, 16] == pytest.approx(7.0, rel=1e-3) and signal[31, 16] == 0
    far = np.zeros((32, 32), np.float32)
    render_ghost(
        far,
        Ghost(
            y=-200.0,
            x=16.0,
            parent_y=-250.0,
            parent_x=16.0,
            radius=20.0,
            inner=5.0,
            softness=1.0,
            amplitude=7.0,
            halo=False,
        ),
    )
    assert not far.any()


def test_ghosts_are_deterministic():
    clean, frame = make_frame(random_stars(np.random.default_rng(4), 5, (64, 64)), shape=(64, 64))
    cfg = GhostConfig(count=(2, 2), amplitude=(5.0, 5.0))
    a = inject_ghosts(clean, frame, cfg, np.random.default_rng(9))
    b = inject_ghosts(clean, frame, cfg, np.random.default_rng(9))
    c = inject_ghosts(clean, frame, cfg, np.random.default_rng(10))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


# ------------------------------------------------------------------------------ registration, configs


def test_spikes_and_ghosts_are_registered_first_in_the_optics_stage():
    assert INJECTORS["SPK"] is inject_spikes and INJECTORS["GHO"] is inject_ghosts
    assert STAGES[0] == ("optics", ("SPK", "GHO", "TRL", "FRG"))
    contaminants = ContaminantsConfig()
    assert isinstance(contaminants.SPK, SpikeConfig) and isinstance(contaminants.GHO, GhostConfig)


@pytest.mark.parametrize(
    "cls, kwargs, key, shown",
    [
        (SpikeConfig, {"probability": 1.5}, "SPK.probability", "1.5"),
        (SpikeConfig, {"vanes": (0, 4)}, "SPK.vanes", "[0, 4]"),
        (SpikeConfig, {"strength": (1e-2, 1e-3)}, "SPK.strength", "0.01"),
        (SpikeConfig, {"min_peak": 0.0}, "SPK.min_peak", "0.0"),
        (SpikeConfig, {"vane_scatter": 1.0}, "SPK.vane_scatter", "1.0"),
        (GhostConfig, {"count": (3, 1)}, "GHO.count", "3"),
        (GhostConfig, {"radius": (0.5, 10.0)}, "GHO.radius", "[0.5, 10.0]"),
        (GhostConfig, {"obstruction": (0.2, 1.0)}, "GHO.obstruction", "[0.2, 1.0]"),
        (GhostConfig, {"amplitude": (-1.0, 2.0)}, "GHO.amplitude", "[-1.0, 2.0]"),
        (GhostConfig, {"softness": (0.0, 2.0)}, "GHO.softness", "[0.0, 2.0]"),
        (GhostConfig, {"vane_probability": -0.1}, "GHO.vane_probability", "-0.1"),
        (GhostConfig, {"min_peak": -1.0}, "GHO.min_peak", "-1.0"),
    ],
)
def test_bad_config_values_are_reported_with_their_key(cls, kwargs, key, shown):
    with pytest.raises(ConfigError) as err:
        cls(**kwargs).validate(f"data.contaminants.{key.split('.')[0]}")
    assert f"data.contaminants.{key}" in str(err.value) and shown in str(err.value)


def test_configs_load_from_a_run_config():
    section = load_sim_section(
        {
            "data": {
                "contaminants": {
                    "SPK": {"vanes": [3, 3], "strength": [1e-3, 1e-3]},
                    "GHO": {"count": [2, 2], "halo_probability": 1.0},
                }
            }
        }
    )
    assert section.data.contaminants.SPK.vanes == (3, 3)
    assert section.data.contaminants.GHO == GhostConfig(count=(2, 2), halo_probability=1.0)
    with pytest.raises(ConfigError, match=r"data\.contaminants\.GHO\.radius"):
        load_sim_section({"data": {"contaminants": {"GHO": {"radius": [50, 10]}}}})


def test_a_crowded_tile_is_cheap():
    # 100 stars with peaks 0.5-50 full wells, N(>F) ~ F**-0.7, on and around a 256 x 256 tile.
    rng = np.random.default_rng(0)
    peaks = np.minimum(0.5 * rng.random(100) ** (-1 / 0.7), 50.0)
    stars = np.c_[rng.uniform(-20, 276, 100), rng.uniform(-20, 276, 100), flux_for_peak(peaks)]
    clean, frame = make_frame(stars, shape=(256, 256))
    for inject, cfg in ((inject_spikes, SpikeConfig(strength=(1e-2, 1e-2))), (inject_ghosts, GhostConfig())):
        inject(clean, frame, cfg, np.random.default_rng(0))
        start = time.perf_counter()
        for seed in range(3):
            inject(clean, frame, cfg, np.random.default_rng(seed))
        assert (time.perf_counter() - start) / 3 < 0.5  # ~20 ms measured; generous for a busy machine
