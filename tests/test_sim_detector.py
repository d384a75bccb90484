"""Detector structure that is no contaminant (data_sim/detector.py): amplifier steps, overscan, unexposed edges."""

import numpy as np
import pytest

from data_sim.config import ConfigError, FamilyConfig, load_sim_section
from data_sim.detector import Structure, apply_amplifiers, draw_structure, illumination
from data_sim.generator import SampleSource

SHAPE = (64, 64)


def section(contaminants=None, **family):
    data = {"tile": 64, "families": {"f": {"sky": [500, 500], "bias": [300, 300], "gain": [2, 2], **family}}}
    if contaminants:
        data["contaminants"] = contaminants
    return load_sim_section({"data": data})


def structure(**kw):
    base = dict(
        amp_axis=None,
        amp_at=0,
        amp_gain=1.0,
        amp_offset=0.0,
        overscan_side=None,
        overscan_width=0,
        edge_side=None,
        edge_width=0,
        edge_softness=0.0,
    )
    return Structure(**{**base, **kw})


def test_nothing_is_drawn_by_default_and_the_draws_do_not_depend_on_it():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    off = draw_structure(FamilyConfig(), SHAPE, rng_a)
    on = draw_structure(FamilyConfig(amplifier_probability=1, overscan_probability=1, edge_probability=1), SHAPE, rng_b)
    assert off.amp_axis is None and off.overscan_side is None and off.edge_side is None
    assert on.amp_axis is not None and on.overscan_side is not None and on.edge_side is not None
    assert (off.amp_at, off.overscan_width, off.edge_width) == (on.amp_at, on.overscan_width, on.edge_width)
    assert rng_a.random() == rng_b.random()  # the same number of draws either way


def test_unexposed_edge_gets_no_light_then_a_ramp():
    light = illumination(structure(edge_side="left", edge_width=5, edge_softness=4.0), SHAPE)
    assert np.all(light[:, :5] == 0) and np.all(light[:, 9:] == 1)
    assert np.all(np.diff(light[0, 4:10]) > 0)
    hard = illumination(structure(edge_side="top", edge_width=3, edge_softness=0.0), SHAPE)
    assert np.all(hard[-3:] == 0) and np.all(hard[:-3] == 1)
    assert illumination(structure(), SHAPE) is None


def test_second_amplifier_steps_gain_and_bias():
    adu = np.full(SHAPE, 1300.0, np.float32)  # 1000 ADU above a bias of 300
    out = apply_amplifiers(adu, structure(amp_axis=1, amp_at=40, amp_gain=1.02, amp_offset=-7.0), 300.0)
    assert np.all(out[:, :40] == 1300.0)
    np.testing.assert_allclose(out[:, 40:], 300.0 + 1000.0 * 1.02 - 7.0)


def test_tiles_carry_the_structure_without_truth():
    noisy = SampleSource(
        section(
            overscan_probability=1.0,
            edge_probability=1.0,
            amplifier_probability=1.0,
            overscan_width=[10, 10],
            edge_width=[6, 6],
            edge_softness=[0, 0],
        ),
        2,
    )
    # Additive contaminants injected before read-out; bad lines (after it) may cross an overscan, so none here.
    before_readout = {name: {"probability": 1.0} for name in ("CR", "HCL", "HPX", "PER", "TRL")}
    quiet = SampleSource(
        section({**before_readout, "BLN": {"probability": 0.0}}, overscan_probability=1.0, overscan_width=[10, 10]),
        2,
        noise=False,
    )
    for i in range(6):
        s = noisy[i]
        assert s.header["OVERSCAN"][0] and s.header["UNEXPEDG"][0] and s.header["AMPSTEP"][0]
        q = quiet[i]
        # A 10-px strip at the bias exactly (noise-free), no truth of any class in it.
        at_bias = np.isclose(q.image, 300.0)
        rows, cols = at_bias.all(axis=1), at_bias.all(axis=0)
        strip = np.zeros(SHAPE, bool)
        if rows.sum() >= 10:
            strip[rows] = True
        else:
            strip[:, cols] = True
        assert strip.sum() == 640
        assert not q.truth[:, strip].any()
        assert np.all(q.image[~strip] > 300.0)


def test_default_families_are_unchanged_and_bad_settings_name_the_key():
    plain = SampleSource(section(), 5)[0]
    assert not plain.header["OVERSCAN"][0] and not plain.header["AMPSTEP"][0] and not plain.header["UNEXPEDG"][0]
    with pytest.raises(
        ConfigError, match=r"families.f.overscan_probability: a probability must lie in \[0, 1\], got 2"
    ):
        section(overscan_probability=2)
    with pytest.raises(ConfigError, match="families.f.amplifier_gain_step"):
        section(amplifier_gain_step=[0.1, 0.9])


def test_bayer_mosaic_filters_the_light_not_the_charge():
    from data_sim.detector import bayer_pattern

    pattern = bayer_pattern(structure(bayer=(0.5, 0.7), bayer_phase=(1, 0)), (4, 4))
    np.testing.assert_allclose(pattern, [[1, 0.7, 1, 0.7], [0.5, 1, 0.5, 1], [1, 0.7, 1, 0.7], [0.5, 1, 0.5, 1]])
    quiet = {name: {"probability": 0.0} for name in ("CR", "HCL", "BCL", "BLN", "HPX", "BPX", "PER", "TRL", "FRG")}
    empty_sky = dict(
        bayer_probability=1.0,
        stars_per_mpix=[0, 0],
        bright_stars_per_mpix=[0, 0],
        galaxies_per_mpix=[0, 0],
        sky_gradient=[0, 0],
        vignetting=[0, 0],
    )
    tile = SampleSource(section(quiet, **empty_sky), 4, noise=False)[0]
    assert tile.header["BAYER"][0]
    sky = tile.image - 300.0  # ADU above the bias: 250 on green pixels, less on red and blue
    cells = sky.reshape(32, 2, 32, 2).transpose(1, 3, 0, 2).reshape(4, -1)
    assert np.allclose(cells.std(axis=1), 0, atol=1e-3)  # every 2x2 cell alike
    levels = sorted(cells.mean(axis=1))
    assert levels[-1] == pytest.approx(250.0, rel=1e-4) and levels[-2] == pytest.approx(250.0, rel=1e-4)
    assert 0.3 * 250 <= levels[0] <= levels[1] < 250 * 0.9 + 1e-3
    # A cosmic ray's charge is deposited in the silicon: the same on every channel.
    with_cr = SampleSource(section({**quiet, "CR": {"probability": 1.0}}, **empty_sky), 4, noise=False)[0]
    added = with_cr.image - tile.image
    assert with_cr.truth_of("CR").any() and np.all(added[~with_cr.truth_of("CR")] >= -1e-3)
