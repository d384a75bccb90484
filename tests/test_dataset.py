"""From samples to batches: the network input, truth/weight packing, determinism, class fractions."""
import numpy as np
import pytest

from data_sim.config import load_sim_section
from data_sim.generator import SampleSource
from segnet.dataset import (TileBatches, loss_weights, make_batch, measure_class_fractions, network_input)


def test_network_input_is_the_compressed_normalised_image():
    rng = np.random.default_rng(0)
    image = 500 + 10 * rng.standard_normal((64, 64))
    image[10, 10] = 500 + 10 * 30        # a 30-sigma hit
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


def test_make_batch_packs_truth_and_weights():
    source = tiny_source()
    samples = [source[i] for i in range(3)]
    x, y = make_batch(samples, np.arange(1, 11, dtype=np.float32), 0.5)
    assert x.shape == (3, 24, 24, 1) and y.shape == (3, 24, 24, 11)
    np.testing.assert_array_equal(y[..., :-1], np.stack([np.moveaxis(s.truth, 0, -1) for s in samples]))
    assert np.all(y[..., -1] >= 0)
    for b, s in enumerate(samples):
        assert np.all(y[b, ..., -1][s.saturated] == 0)


def test_batches_depend_only_on_their_indices():
    source = tiny_source()
    kwargs = dict(batch_size=2, class_w=np.ones(10, np.float32), background_w=1.0)
    a = TileBatches(source, first_index=0, n_batches=3, **kwargs)
    b = TileBatches(source, first_index=2, n_batches=2, **kwargs)
    np.testing.assert_array_equal(a[1][0], b[0][0])   # samples 2, 3 in both
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
