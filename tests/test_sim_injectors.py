"""Each injector, noise-free: the signal lies where the mask says and nowhere else."""

import numpy as np
import pytest
from scipy import ndimage

from data_sim.config import (
    ColumnConfig,
    CosmicRayConfig,
    FringeConfig,
    LineConfig,
    PersistenceConfig,
    PixelDefectConfig,
    TrailConfig,
)
from data_sim.contaminants import INJECTORS, Frame
from data_sim.contaminants.base import capped_response

SHAPE = (96, 80)
SKY, READ_NOISE = 400.0, 5.0


def make_frame(*, readout_at_start=True, detector="ccd", sky=SKY, nsigma=1.0):
    rng = np.random.default_rng(7)
    # A clean frame with structure: sky plus a few bright blobs, so the local noise varies.
    clean = np.full(SHAPE, sky, np.float32)
    for _ in range(5):
        y, x = rng.integers(0, SHAPE[0]), rng.integers(0, SHAPE[1])
        clean[max(y - 3, 0) : y + 3, max(x - 3, 0) : x + 3] += rng.uniform(1e3, 1e4)
    noise = np.sqrt(clean + READ_NOISE**2).astype(np.float32)
    frame = Frame(
        noise=noise,
        sky=np.full(SHAPE, sky, np.float32),
        sky_noise=float(np.sqrt(sky + READ_NOISE**2)),
        fwhm=3.0,
        beta=3.0,
        full_well=1e5,
        detector=detector,
        readout_at_start=readout_at_start,
        nsigma=nsigma,
    )
    return clean, frame


ADDITIVE = {
    "CR": CosmicRayConfig(per_mpix=(3000.0, 3000.0)),
    "PER": PersistenceConfig(sources=(3, 3)),
    "TRL": TrailConfig(count=(2, 2), modulated_probability=0.5, dashed_probability=0.5, partial_probability=0.5),
}


@pytest.mark.parametrize("name", sorted(ADDITIVE))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_additive_signal_is_flagged_exactly_where_it_exceeds_the_noise(name, seed):
    clean, frame = make_frame()
    out, mask = INJECTORS[name](clean, frame, ADDITIVE[name], np.random.default_rng(seed))
    added = out - clean
    threshold = frame.nsigma * frame.noise
    assert mask.dtype == bool and mask.shape == SHAPE
    assert mask.any(), f"{name}: nothing injected"
    assert np.all(np.abs(added[mask]) >= threshold[mask])
    assert np.all(np.abs(added[~mask]) < threshold[~mask])
    assert not np.shares_memory(out, clean)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fringe_mask_is_the_fringed_area(seed):
    """FRG marks where the pattern's envelope reaches the threshold: crests, troughs and zero crossings alike."""
    from data_sim.contaminants.fringes import fringe_signal

    clean, frame = make_frame()
    cfg = FringeConfig(amplitude=(0.2, 0.2))  # 4 sigma on this 400 e- sky, where no star raises the noise
    out, mask = INJECTORS["FRG"](clean, frame, cfg, np.random.default_rng(seed))
    added = out - clean
    signal, local = fringe_signal(frame, cfg, np.random.default_rng(seed))
    np.testing.assert_allclose(added, signal, atol=1e-3)
    threshold = frame.nsigma * frame.noise
    np.testing.assert_array_equal(mask, local >= threshold)
    assert np.all(np.abs(signal) <= local + 1e-3)  # the envelope bounds the pattern
    crests = np.abs(added) >= threshold
    assert np.all(mask[crests])  # every crest and trough is in the area ...
    assert (mask & (np.abs(added) < 0.25 * threshold)).sum() > 0.05 * mask.sum()  # ... and the crossings too
    assert not mask[clean > 2000].all()  # stars' noise keeps a weak pattern out there


def test_additive_mask_follows_the_threshold():
    # The same trail flagged at 1 sigma covers more pixels than at 5 sigma, and contains it.
    clean, frame1 = make_frame(nsigma=1.0)
    _, frame5 = make_frame(nsigma=5.0)
    cfg = TrailConfig(count=(1, 1), amplitude=(30.0, 30.0))
    _, wide = INJECTORS["TRL"](clean, frame1, cfg, np.random.default_rng(3))
    _, narrow = INJECTORS["TRL"](clean, frame5, cfg, np.random.default_rng(3))
    assert narrow.sum() < wide.sum() and np.all(wide[narrow])


def test_cosmic_rays_make_spots_tracks_and_worms():
    clean, frame = make_frame()
    sizes = {}
    for kind in ("spot", "track", "worm"):
        cfg = CosmicRayConfig(per_mpix=(2000.0, 2000.0), kinds={kind: 1.0}, track_length=(20.0, 30.0))
        _, mask = INJECTORS["CR"](clean, frame, cfg, np.random.default_rng(5))
        labels, n = ndimage.label(mask)
        sizes[kind] = np.median(np.bincount(labels.ravel())[1:])
    assert sizes["spot"] < sizes["worm"] and sizes["spot"] < sizes["track"]
    assert sizes["spot"] <= 9


DEFECTS = {
    "HCL": ColumnConfig(count=(3, 3), partial_probability=0.5),
    "BCL": ColumnConfig(count=(3, 3), partial_probability=0.5),
    "BLN": LineConfig(count=(2, 2), partial_probability=0.5, hot_probability=0.5),
    "HPX": PixelDefectConfig(per_mpix=(3000.0, 3000.0)),
    "BPX": PixelDefectConfig(per_mpix=(3000.0, 3000.0)),
}


@pytest.mark.parametrize("name", sorted(DEFECTS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defect_masks_are_exact(name, seed):
    clean, frame = make_frame()
    out, mask = INJECTORS[name](clean, frame, DEFECTS[name], np.random.default_rng(seed))
    changed = out != clean
    assert mask.any()
    np.testing.assert_array_equal(changed, mask)  # every defective pixel changed, nothing else


@pytest.mark.parametrize("readout_at_start", [True, False])
def test_partial_columns_run_from_the_trap_away_from_the_readout(readout_at_start):
    clean, frame = make_frame(readout_at_start=readout_at_start)
    cfg = ColumnConfig(count=(3, 3), partial_probability=1.0)
    for seed in range(5):
        for name in ("HCL", "BCL"):
            _, mask = INJECTORS[name](clean, frame, cfg, np.random.default_rng(seed))
            for x in np.flatnonzero(mask.any(axis=0)):
                rows = np.flatnonzero(mask[:, x])
                assert np.all(np.diff(rows) == 1)  # one contiguous run
                far_edge = SHAPE[0] - 1 if readout_at_start else 0
                assert far_edge in rows


def test_bad_lines_are_rows_touching_an_edge():
    clean, frame = make_frame()
    _, mask = INJECTORS["BLN"](
        clean, frame, LineConfig(count=(2, 2), partial_probability=1.0), np.random.default_rng(4)
    )
    for y in np.flatnonzero(mask.any(axis=1)):
        cols = np.flatnonzero(mask[y])
        assert np.all(np.diff(cols) == 1)
        assert cols[0] == 0 or cols[-1] == SHAPE[1] - 1


def test_pixel_defects_are_isolated_or_tiny_clusters():
    clean, frame = make_frame()
    _, mask = INJECTORS["HPX"](
        clean, frame, PixelDefectConfig(per_mpix=(500.0, 500.0), cluster_probability=0.5), np.random.default_rng(2)
    )
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    assert n > 0 and sizes.max() <= 8  # at most 4 px each; two neighbours may touch
    assert np.median(sizes) <= 4


def test_low_response_is_capped_to_stay_visible():
    _, frame = make_frame(sky=400.0)
    deficit_needed = 2.0 * frame.sky_noise / 400.0
    assert capped_response(0.99, frame, 2.0) == pytest.approx(1.0 - deficit_needed)
    assert capped_response(0.1, frame, 2.0) == pytest.approx(0.1)
    _, dark = make_frame(sky=1.0)
    assert capped_response(0.5, dark, 2.0) == 0.0  # never negative


def test_persistence_follows_the_earlier_saturated_stars():
    clean, frame = make_frame()
    cfg = PersistenceConfig(sources=(1, 1), peak=(50.0, 50.0), amplitude=(20.0, 20.0))
    out, mask = INJECTORS["PER"](clean, frame, cfg, np.random.default_rng(11))
    residual = out - clean
    # One compact ghost (plus its bleed trail on a CCD), brightest at its centre.
    labels, n = ndimage.label(mask)
    assert n >= 1
    peak = np.unravel_index(np.argmax(residual), SHAPE)
    assert mask[peak]


def test_nir_persistence_has_no_bleed_trail():
    clean, frame = make_frame(detector="nir")
    cfg = PersistenceConfig(sources=(1, 1), peak=(100.0, 100.0), amplitude=(20.0, 20.0))
    _, mask_nir = INJECTORS["PER"](clean, frame, cfg, np.random.default_rng(12))
    _, ccd = make_frame(detector="ccd")
    _, mask_ccd = INJECTORS["PER"](clean, ccd, cfg, np.random.default_rng(12))
    extent = lambda m: np.ptp(np.flatnonzero(m.any(axis=1))) if m.any() else 0  # noqa: E731
    assert extent(mask_ccd) > extent(mask_nir)
