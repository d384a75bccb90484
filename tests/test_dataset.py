"""From samples to batches: the network input, truth/weight packing, determinism, class fractions."""

import numpy as np
import pytest

from data_sim.config import load_sim_section
from data_sim.generator import SampleSource
from segnet.training.dataset import TileBatches, loss_weights, make_batch, measure_class_fractions, network_input


def test_network_input_is_the_compressed_normalised_image():
    rng = np.random.default_rng(0)
    image = 500 + 10 * rng.standard_normal((64, 64))
    image[10, 10] = 500 + 10 * 30  # a 30-sigma hit
    image[20, 20] = np.nan
    saturated = np.zeros(image.shape, bool)
    saturated[40, 40] = True
    image[40, 40] = 60000.0
    x, invalid = network_input(image, saturated=saturated)
    assert x.dtype == np.float32 and x.shape == image.shape
    assert invalid[20, 20] and invalid.sum() == 1 and x[20, 20] == 0
    assert x[10, 10] == pytest.approx(np.arcsinh(30.0), rel=0.05)
    assert x[40, 40] == pytest.approx(np.arcsinh((60000 - 500) / 10), rel=0.05)  # kept, compressed
    assert np.std(x[~invalid & ~saturated]) == pytest.approx(np.std(np.arcsinh(rng.standard_normal(10**5))), rel=0.1)


def tiny_source(classes=None, seed=0):
    mapping = {"data": {"tile": 24}}
    if classes:
        mapping["classes"] = classes
    return SampleSource(load_sim_section(mapping), seed)


def test_make_batch_packs_truth_known_truth_and_weights():
    source = tiny_source()
    n = len(source.classes)
    samples = [source[i] for i in range(3)]
    x, y = make_batch(samples, np.arange(1, n + 1, dtype=np.float32), 0.5)
    assert x.shape == (3, 24, 24, 1) and y.shape == (3, 24, 24, 2 * n + 1)
    np.testing.assert_array_equal(y[..., :n], np.stack([np.moveaxis(s.truth, 0, -1) for s in samples]))
    assert np.all(y[..., -1] >= 0)
    sat = source.classes.index("SAT")
    for b, s in enumerate(samples):
        known = y[b, ..., n : 2 * n]
        # Saturated pixels: truth known for SAT only; everywhere else known for every class.
        assert np.all(known[s.saturated][:, sat] == 1)
        assert np.all(np.delete(known[s.saturated], sat, axis=1) == 0)
        assert np.all(known[~s.saturated] == 1)


def test_saturated_pixels_count_for_sat_only():
    """A saturated star's pixels: weight > 0 (SAT is learnt there), yet no other class is known there."""
    family = {
        "bright_stars_per_mpix": [3000, 3000],
        "bright_peak": [20, 20],
        "stars_per_mpix": [0, 0],
        "galaxies_per_mpix": [0, 0],
    }
    source = SampleSource(load_sim_section({"data": {"tile": 32, "families": {"f": family}}}), 0)
    sample = source[0]
    assert sample.saturated.any() and np.array_equal(sample.truth_of("SAT"), sample.saturated)
    n = len(source.classes)
    _, y = make_batch([sample], np.ones(n, np.float32), 0.5)
    assert np.all(y[0, ..., -1][sample.saturated] > 0)
    only_obj = SampleSource(
        load_sim_section({"classes": ["CR", "OBJ"], "data": {"tile": 32, "families": {"f": family}}}), 0
    )
    _, y = make_batch([only_obj[0]], np.ones(2, np.float32), 0.5)
    assert np.all(y[0, ..., -1][only_obj[0].saturated] == 0)  # no class known there: no weight


def test_unknown_pixels_get_no_weight():
    source = tiny_source()
    sample = source[0]
    sample.unknown = np.zeros(sample.image.shape, bool)
    sample.unknown[5:9, 5:9] = True
    n = len(source.classes)
    _, y = make_batch([sample], np.ones(n, np.float32), 0.5)
    assert np.all(y[0, 5:9, 5:9, -1] == 0) and np.all(y[0, 5:9, 5:9, n : 2 * n] == 0)


def test_batches_depend_only_on_their_indices():
    source = tiny_source()
    kwargs = dict(batch_size=2, class_w=np.ones(len(source.classes), np.float32), background_w=1.0)
    a = TileBatches(source, first_index=0, n_batches=3, **kwargs)
    b = TileBatches(source, first_index=2, n_batches=2, **kwargs)
    np.testing.assert_array_equal(a[1][0], b[0][0])  # samples 2, 3 in both
    np.testing.assert_array_equal(a[1][1], b[0][1])
    assert len(a) == 3
    with pytest.raises(IndexError):
        a[3]


def test_class_fractions_and_weights():
    source = tiny_source(["CR", "OBJ"])
    fractions = measure_class_fractions(source, 6)
    samples = [source[i] for i in range(6)]
    cr = np.mean([s.truth[0].mean() for s in samples])
    none = np.mean([(~s.truth.any(axis=0)).mean() for s in samples])
    assert fractions["classes"]["CR"] == pytest.approx(cr) and fractions["background"] == pytest.approx(none)
    class_w, background_w = loss_weights(fractions, ["CR", "OBJ"])
    assert class_w[0] / background_w == pytest.approx(fractions["background"] / fractions["classes"]["CR"], rel=1e-5)
    capped, background_w2 = loss_weights(fractions, ["CR", "OBJ"], max_weight_ratio=2.0)
    assert np.all(capped <= 2.0 * background_w2 + 1e-6)


def test_a_class_that_never_appears_is_an_error():
    mapping = {"classes": ["TRL"], "data": {"tile": 24, "contaminants": {"TRL": {"probability": 0.0}}}}
    source = SampleSource(load_sim_section(mapping), 0, split="fractions")
    with pytest.raises(ValueError, match=r"class TRL never appears in 3 tiles .* data\.contaminants\.TRL\.probability"):
        measure_class_fractions(source, 3)
