"""Inpainting: the masked loss, the baselines on hand-made cases, masks and batches, the network,
exact copies of unreplaced pixels, the evaluation, and training through train.py."""

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

import evaluate
import train
from data_sim.config import load_sim_section
from data_sim.generator import SampleSource
from foundation.classes import CLASS_NAMES, INJECTED
from foundation.typed_config import ConfigError
from segnet.inpainting.apply import Inpainter, compose, resolve_inpaint_model
from segnet.inpainting.baselines import biharmonic, masked_median
from segnet.inpainting.data import decode, encode, make_batch, normalisation, scale, target
from segnet.inpainting.evaluation import evaluate_inpainting
from segnet.inpainting.masks import borrowed_mask, mask_rng, replace_mask, training_mask
from segnet.network.inpainting import INPUT_CHANNELS, MaskedMSE, build_inpainter, fold_batch_norm
from segnet.training.config import load_run_config
from segnet.training.run_folder import NoModelError, latest_run, load_model

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(depth=2, base_filters=4, convs_per_level=1)


def tiny_source(tile=48, seed=0, stars=(100, 2000), cosmics=(3000, 6000), nsigma=1.0):
    data = {
        "tile": tile,
        "truth_nsigma": nsigma,
        "families": {"optical_sparse": {"weight": 1.0, "fwhm": [1.5, 3.0], "stars_per_mpix": list(stars)}},
        "contaminants": {
            **{name: {"probability": 0.0} for name in INJECTED},
            "CR": {"probability": 1.0, "per_mpix": list(cosmics)},
        },
    }
    return SampleSource(load_sim_section({"data": data}), seed, clean=True)


# --- The loss ---------------------------------------------------------------------------------------------


def loss_and_grad(y_true, y_pred, delta=None):
    import tensorflow as tf

    pred = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = MaskedMSE(delta=delta)(y_true, pred)
    return float(value), tape.gradient(value, pred).numpy()


def test_masked_mse_is_the_mean_over_masked_pixels_by_hand():
    target_ = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 2, 2, 1)
    weight = np.array([1, 0, 1, 0], np.float32).reshape(1, 2, 2, 1)
    pred = np.array([0.0, 9.0, 5.0, -7.0], np.float32).reshape(1, 2, 2, 1)
    value, grad = loss_and_grad(np.concatenate([target_, weight], -1), pred)
    assert value == pytest.approx((1 + 4) / 2, rel=1e-6)
    np.testing.assert_allclose(grad.ravel(), [-1.0, 0.0, 2.0, 0.0], rtol=1e-6)  # d/dp (t-p)^2 / 2


def test_masked_mse_ignores_pixels_outside_the_mask():
    rng = np.random.default_rng(0)
    target_ = rng.normal(size=(2, 9, 7, 1)).astype(np.float32)
    weight = (rng.random((2, 9, 7, 1)) < 0.3).astype(np.float32)
    pred = rng.normal(size=(2, 9, 7, 1)).astype(np.float32)
    base = loss_and_grad(np.concatenate([target_, weight], -1), pred)
    outside = weight == 0
    target2, pred2 = target_.copy(), pred.copy()
    target2[outside] = rng.choice([np.nan, np.inf, 1e30], size=outside.sum())
    pred2[outside] = rng.normal(size=outside.sum()) * 1e6
    changed = loss_and_grad(np.concatenate([target2, weight], -1), pred2)
    assert changed[0] == base[0]
    np.testing.assert_array_equal(changed[1], base[1])
    assert np.all(base[1][outside] == 0)


def test_masked_huber_is_squared_within_delta_and_linear_beyond_by_hand():
    target_ = np.array([1.0, 2.0, 3.0, 4.0], np.float32).reshape(1, 2, 2, 1)
    weight = np.array([1, 1, 1, 0], np.float32).reshape(1, 2, 2, 1)
    pred = np.array([0.0, 12.0, -2.0, 99.0], np.float32).reshape(1, 2, 2, 1)  # errors 1, -10, 5 (and unused)
    value, grad = loss_and_grad(np.concatenate([target_, weight], -1), pred, delta=2.0)
    # rho: 1; 2*2*10 - 4 = 36; 2*2*5 - 4 = 16
    assert value == pytest.approx((1 + 36 + 16) / 3, rel=1e-6)
    # slopes d/dp: -2e within delta, -2*delta*sign(e) beyond; divided by the 3 used pixels
    np.testing.assert_allclose(grad.ravel(), [-2 / 3, 4 / 3, -4 / 3, 0.0], rtol=1e-6)
    # the same errors without delta: the plain squared error
    assert loss_and_grad(np.concatenate([target_, weight], -1), pred)[0] == pytest.approx((1 + 100 + 25) / 3)


@pytest.mark.parametrize("delta", [0.0, -1.0])
def test_masked_huber_rejects_a_non_positive_delta(delta):
    with pytest.raises(ValueError, match="delta"):
        MaskedMSE(delta=delta)


def test_masked_mse_of_an_empty_mask_is_zero():
    y_true = np.zeros((1, 4, 4, 2), np.float32)
    assert loss_and_grad(y_true, np.ones((1, 4, 4, 1), np.float32))[0] == 0.0


# --- Baselines on hand-made cases --------------------------------------------------------------------------


def test_masked_median_takes_the_unmasked_5x5_neighbours():
    image = np.arange(49, dtype=np.float32).reshape(7, 7)
    mask = np.zeros((7, 7), bool)
    mask[3, 3] = True
    mask[2, 2] = True
    out = masked_median(image, mask)
    window = image[1:6, 1:6].copy()
    keep = ~mask[1:6, 1:6]
    assert out[3, 3] == np.median(window[keep])
    assert out[2, 2] == np.median(image[0:5, 0:5][~mask[0:5, 0:5]])
    np.testing.assert_array_equal(out[~mask], image[~mask])


def test_masked_median_cuts_windows_at_the_edge_and_grows_them_when_empty():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    corner = np.zeros_like(image, bool)
    corner[0, 0] = True
    assert masked_median(image, corner)[0, 0] == np.median([1, 2, 10, 11, 12, 20, 21, 22])
    block = np.zeros_like(image, bool)
    block[2:9, 2:9] = True  # around (5, 5) the 5x5 and 7x7 windows are all masked, the 9x9 one is not
    out = masked_median(image, block)
    assert out[5, 5] == np.median(image[1:10, 1:10][~block[1:10, 1:10]])
    assert out[2, 2] == np.median(image[0:5, 0:5][~block[0:5, 0:5]])
    assert np.isfinite(out).all()


def test_masked_median_replaces_non_finite_pixels_and_never_uses_them():
    image = np.full((5, 5), 10.0, np.float32)
    image[0, 0] = np.nan
    image[4, 4] = np.inf
    out = masked_median(image, np.zeros((5, 5), bool))
    assert out[0, 0] == 10.0 and out[4, 4] == 10.0


def test_biharmonic_fills_a_plane_exactly_and_keeps_the_rest():
    y, x = np.mgrid[0:20, 0:24]
    image = (3.0 + 0.5 * x - 0.25 * y).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[5:9, 6:9] = True
    mask[12, 2:20] = True
    out = biharmonic(image, mask)
    np.testing.assert_allclose(out[mask], image[mask], atol=1e-4)
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert out.dtype == np.float32
    corner = np.zeros(image.shape, bool)
    corner[0, 0] = True  # at an edge the stencil is cut: close, not exact
    assert abs(biharmonic(image, corner)[0, 0] - image[0, 0]) < 0.1


def test_baselines_check_their_inputs():
    with pytest.raises(ValueError, match="`mask` must have the image's shape"):
        masked_median(np.zeros((4, 4)), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="`size` must be an odd int >= 3, got 4"):
        masked_median(np.zeros((4, 4)), np.zeros((4, 4), bool), size=4)
    with pytest.raises(ValueError, match="covers every finite pixel"):
        biharmonic(np.zeros((4, 4)), np.ones((4, 4), bool))


# --- Masks and batches --------------------------------------------------------------------------------------


def test_borrowed_masks_are_moved_copies_fixed_by_seed_split_and_index():
    rng = np.random.default_rng(1)
    other = rng.random((16, 16)) < 0.1
    a = borrowed_mask(other, mask_rng(3, "train", 5))
    b = borrowed_mask(other, mask_rng(3, "train", 5))
    c = borrowed_mask(other, mask_rng(3, "validation", 5))
    np.testing.assert_array_equal(a, b)
    assert a.sum() == other.sum() and not np.array_equal(a, c)
    own = np.zeros((16, 16), bool)
    own[3, 4] = True
    mixed = training_mask(own, other, mask_rng(3, "train", 5), borrow_probability=1.0, borrow_max_fraction=1.0)
    np.testing.assert_array_equal(mixed, own | a)
    alone = training_mask(own, other, mask_rng(3, "train", 5), borrow_probability=1.0, borrow_max_fraction=0.01)
    np.testing.assert_array_equal(alone, own)


def test_batches_fill_the_masked_pixels_and_target_the_clean_tile():
    source = tiny_source()
    samples = [source[0], source[1]]
    masks = [replace_mask(s, ("CR",)) for s in samples]
    x, y = make_batch(samples, masks)
    assert x.shape == (2, 48, 48, 3) and y.shape == (2, 48, 48, 2) and x.dtype == y.dtype == np.float32
    for k, (sample, mask) in enumerate(zip(samples, masks)):
        assert mask.any()
        background, sigma = normalisation(sample.image, mask, sample.saturated)
        fill = (biharmonic(sample.image, mask) - background) / sigma
        np.testing.assert_allclose(x[k, ..., 0], np.arcsinh(fill), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(x[k, ..., 1] * scale(fill), fill, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(x[k, ..., 2], mask)
        assert np.all(y[k, ..., 1][~mask] == 0) and y[k, ..., 1][mask].sum() > 0
        used = y[k, ..., 1] > 0
        np.testing.assert_allclose(
            decode(y[k, ..., 0], background, sigma, fill)[used],
            sample.clean[used],
            rtol=1e-5,
            atol=1e-3 * float(sigma.mean()),
        )


def test_encode_target_decode_round_trip_and_the_unit_of_the_correction():
    rng = np.random.default_rng(2)
    image = (100 + 5 * rng.standard_normal((20, 30))).astype(np.float32)
    image[3, 3] = 1e5
    image[7, 8] = np.nan
    hole = np.zeros(image.shape, bool)
    hole[3, 3] = True
    background, sigma = normalisation(image, hole)
    x, fill, _ = encode(image, hole, background, sigma)
    assert x[3, 3, 2] == 1 and x[7, 8, 2] == 1 and x[:, :, 2].sum() == 2  # non-finite pixels are holes too
    assert np.isfinite(x).all() and abs(fill[3, 3]) < 5  # the sky around it
    clean = image.copy()
    clean[3, 3] = 130.0
    t = target(clean, background, sigma, fill)
    unit = np.sqrt(1 + np.abs(fill[1:6, 1:6]).max())  # from the 5x5 neighbourhood's brightest pixel
    assert t[3, 3] == pytest.approx(((130 - background[3, 3]) / sigma[3, 3] - fill[3, 3]) / unit, rel=1e-5)
    np.testing.assert_allclose(decode(t, background, sigma, fill)[3, 3], 130.0, rtol=1e-5)
    everything = np.ones(image.shape, bool)
    assert np.all(encode(image, everything, background, sigma)[1] == 0)  # nothing to take a median of


def test_inpaint_config_errors_name_the_key_path():
    with pytest.raises(ConfigError, match=r"inpaint\.replace: 'OBJ' is not a contaminant class"):
        load_run_config({"inpaint": {"replace": ["CR", "OBJ"]}})
    with pytest.raises(ConfigError, match=r"inpaint\.borrow_probability: a probability must lie in \[0, 1\], got 2"):
        load_run_config({"inpaint": {"borrow_probability": 2}})
    with pytest.raises(ConfigError, match=r"inpaint\.borow: unknown key"):
        load_run_config({"inpaint": {"borow": 1}})
    with pytest.raises(ConfigError, match=r"inpaint\.huber_delta: must be > 0 or null, got 0"):
        load_run_config({"inpaint": {"huber_delta": 0}})
    with pytest.raises(ConfigError, match=r"inpaint\.replace: 'HCL' is not in classes"):
        load_run_config({"classes": ["CR", "OBJ"], "inpaint": {"replace": ["CR", "HCL"]}})
    with pytest.raises(ConfigError, match=r"train\.init_from: only a segmentation run .* got 'models/default'"):
        load_run_config({"inpaint": {}, "train": {"init_from": "models/default"}})
    config, _ = load_run_config("inpaint.yaml")  # its base, multiclass.yaml, warm-starts; it must not
    assert config.task == "inpaint" and "OBJ" not in config.inpaint.replace and config.train.init_from is None
    assert load_run_config("smoke.yaml")[0].task == "segment"


# --- The network and its application -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def inpainter_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_inpainter(**TINY)
    path = tmp_path_factory.mktemp("inpaint") / "model.keras"
    model.save(path)
    return path


def test_network_takes_any_size_and_round_trips_through_a_keras_file(inpainter_file):
    model = keras.models.load_model(inpainter_file)
    x = np.random.default_rng(3).normal(size=(1, 37, 53, len(INPUT_CHANNELS))).astype(np.float32)
    out = model.predict(x, verbose=0)
    assert out.shape == (1, 37, 53, 1)
    again = keras.models.load_model(inpainter_file)
    np.testing.assert_array_equal(again.predict(x, verbose=0), out)
    inpainter = Inpainter(inpainter_file)
    names = {layer.name for layer in inpainter.model.layers}
    assert {"pad", "enc1_conv1", "enc2_pool", "mid_conv1", "dec1_up", "dec1_skip", "head", "crop"} <= names
    assert set(inpainter.identity) == {"INPMODEL", "INPMSHA"}


def test_the_inpainter_folds_its_batch_normalisation_and_predicts_the_same():
    keras.utils.set_random_seed(1)
    model = build_inpainter(**TINY)
    rng = np.random.default_rng(5)
    for layer in model.layers:  # statistics and affine terms far from their initial values
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 2, n), rng.normal(0, 1, n), rng.normal(0, 1, n), rng.uniform(0.2, 3, n)]
            )
    head = model.get_layer("head")
    head.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in head.get_weights()])  # not all zero
    folded = fold_batch_norm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    x = rng.normal(0, 2, (2, 37, 53, len(INPUT_CHANNELS))).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded(x)), expected, atol=1e-4)
    assert fold_batch_norm(folded) is folded


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_unreplaced_pixels_come_out_unchanged_exactly(inpainter_file, dtype):
    from foundation.tiling import TileSettings

    inpainter = Inpainter(inpainter_file)
    rng = np.random.default_rng(4)
    image = (300 + 7 * rng.standard_normal((70, 90))).astype(dtype)
    replace = rng.random(image.shape) < 0.1
    if dtype != np.int16:
        image[5, 5] = np.nan  # not replaced: stays NaN
        replace[5, 5] = False
    whole = inpainter.image(image, replace)
    frame = np.zeros(image.shape, np.float32)
    inpainter.frame(image, replace, frame, settings=TileSettings(tile=32, margin=8, blend=4, batch_size=3))
    for out in (whole, frame):
        assert out.dtype == np.float32
        expected = image.astype(np.float32)
        np.testing.assert_array_equal(out[~replace], expected[~replace])  # NaN == NaN here
        assert np.isfinite(out[replace]).all() and not np.array_equal(out[replace], expected[replace])


def test_an_untrained_network_returns_the_biharmonic_fill(inpainter_file):
    rng = np.random.default_rng(6)
    image = (50 + 4 * rng.standard_normal((40, 40))).astype(np.float32)
    replace = rng.random(image.shape) < 0.05
    out = Inpainter(inpainter_file).image(image, replace)
    np.testing.assert_allclose(out, biharmonic(image, replace), rtol=1e-6)


def test_compose_copies_never_computes():
    image = np.array([[1e-45, -0.0], [np.inf, 3.0]], np.float32)  # a subnormal, a signed zero, an inf
    out = compose(image, np.array([[False, False], [False, True]]), np.full((2, 2), 7.0))
    assert out.tobytes()[:12] == image.tobytes()[:12] and out[1, 1] == 7.0


def test_missing_inpainting_models_are_named(tmp_path):
    with pytest.raises(NoModelError, match=r"nowhere: no inpainting model there \(no such folder\)"):
        resolve_inpaint_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoModelError, match="holds no model.keras"):
        resolve_inpaint_model(tmp_path / "empty")


def test_a_segmentation_model_is_not_an_inpainter(tmp_path):
    from segnet.network.model import build_segnet

    path = tmp_path / "seg.keras"
    build_segnet(class_names=("CR", "OBJ"), depth=1, base_filters=2, convs_per_level=1).save(path)
    with pytest.raises(ValueError, match="not an inpainting model"):
        Inpainter(path)


# --- Evaluation ---------------------------------------------------------------------------------------------


class Oracle:
    """Answers the clean tile on every replaced pixel: the evaluation must score it 0."""

    def __init__(self, samples):
        self.samples = samples

    def images(self, images, replace, saturated=None):
        cleans = [next(s.clean for s in self.samples if np.array_equal(s.image, im, equal_nan=True)) for im in images]
        return [compose(im, mask, clean) for im, mask, clean in zip(images, replace, cleans)]


def test_evaluation_scores_a_perfect_fill_zero_and_the_baselines_not():
    # Truth down to 1e-6 sigma: no contaminant charge is left outside the masks, even in the wings.
    source = tiny_source(tile=96, seed=1, stars=(3000, 3000), cosmics=(20000, 20000), nsigma=1e-6)
    oracle = Oracle([source[i] for i in range(3)])
    result = evaluate_inpainting(oracle, source, 3, replace=("CR",), batch_size=2)
    rows = dict(result.class_rows())
    assert rows["all"]["network"] == 0 and rows["all"]["median"] > 0 and rows["all"]["biharmonic"] > 0
    assert (
        rows["all"]["pixels"]
        == rows["CR"]["pixels"]
        == sum(int((s.truth_of("CR") & ~s.saturated & ~s.clean_saturated).sum()) for s in oracle.samples)
    )
    assert dict(result.family_rows())["optical_sparse"]["network"] == 0
    photometry = dict(result.photometry_rows())
    assert photometry["all"]["stars"] > 0
    assert photometry["all"]["network"]["rms"] == 0 and photometry["all"]["none"]["rms"] > 0
    assert {m for m, _ in result.runtime_rows()} == {"network", "median", "biharmonic"}
    assert rows["CR"]["median network"] == 0 and rows["CR"]["median median"] > 0
    from segnet.inpainting.report import markdown

    text = markdown(result)
    assert "| CR | 0 |" in text and "Runtimes per 100 images of 96x96" in text


# --- Training through train.py ------------------------------------------------------------------------------


def write_inpaint_config(tmp_path, **train_overrides):
    smoke = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    smoke["inpaint"] = {"replace": ["CR", "HPX", "HCL"], "huber_delta": 3.0}
    smoke["model"] = {**TINY, "batch_norm": True}
    smoke["train"] = {
        **smoke["train"],
        "epochs": 2,
        "steps_per_epoch": 3,
        "batch_size": 2,
        "validation_samples": 2,
        **train_overrides,
    }
    path = tmp_path / "inpaint_smoke.yaml"
    path.write_text(yaml.safe_dump(smoke))
    return path


def final_weights(run_dir):
    return [np.asarray(w) for w in load_model(run_dir / "model.keras").get_weights()]


def test_train_py_trains_the_inpainter_resumes_exactly_and_keeps_it_out_of_latest_run(tmp_path):
    cfg = write_inpaint_config(tmp_path)
    straight, interrupted = tmp_path / "runs" / "straight", tmp_path / "runs" / "interrupted"
    assert train.main(["--config", str(cfg), "--run-dir", str(straight), "--quiet"]) == 0
    assert train.main(["--config", str(cfg), "--run-dir", str(interrupted), "--quiet", "--stop-after", "1"]) == 0
    assert train.main(["--resume", str(interrupted), "--quiet"]) == 0
    for a, b in zip(final_weights(straight), final_weights(interrupted)):
        np.testing.assert_array_equal(a, b)
    config, _ = load_run_config(straight / "config.yaml")
    assert config.task == "inpaint" and set(config.inpaint.replace) == {"CR", "HCL", "HPX"}
    assert load_model(interrupted / "checkpoints" / "last.keras").loss.delta == 3.0  # resumed with its Huber loss
    assert not (straight / "class_fractions.yaml").exists()
    assert Inpainter(straight / "model.keras").model.outputs[0].shape[-1] == 1
    assert latest_run(tmp_path / "runs") is None
    assert latest_run(tmp_path / "runs", task="inpaint") in (straight, interrupted)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_the_inpainter_trains_under_jax_and_loads_under_tensorflow(tmp_path):
    cfg = write_inpaint_config(tmp_path, epochs=1, steps_per_epoch=2)
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_backend_optimization_level=0",
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [sys.executable, "train.py", "--config", str(cfg), "--run-dir", str(tmp_path / "jax"), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    inpainter = Inpainter(tmp_path / "jax" / "model.keras")
    image = np.random.default_rng(5).normal(100, 3, (21, 35)).astype(np.float32)
    replace = np.zeros(image.shape, bool)
    replace[10, 3:30] = True
    out = inpainter.image(image, replace)
    assert np.isfinite(out).all() and np.array_equal(out[~replace], image[~replace])


def test_masks_grow_by_whole_pixels_and_flags_choose_the_classes():
    from segnet.inpainting.masks import flagged_mask, grow

    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    assert grow(mask, 0).sum() == 1 and grow(mask, 1).sum() == 9 and grow(mask, 2).sum() == 25
    with pytest.raises(ValueError, match="--inpaint-grow: must be >= 0 px, got -1"):
        grow(mask, -1)
    flags = np.zeros((9, 9), np.int32)
    flags[1, 1], flags[7, 7] = 1, 2**9  # CR, OBJ
    chosen = flagged_mask(flags, CLASS_NAMES, ("CR", "HPX"), 1)
    assert chosen[:3, :3].all() and chosen.sum() == 9  # OBJ is never replaced
    flags[2, 2] |= 2**9  # an object next to the hit, and a hit on an object
    flags[7, 7] |= 1
    chosen = flagged_mask(flags, CLASS_NAMES, ("CR",), 1)
    assert not chosen[2, 2] and chosen[:3, :3].sum() == 8  # the ring spares the object ...
    assert chosen[6:9, 6:9].all() and chosen.sum() == 17  # ... whose own flagged pixels are replaced


def test_evaluation_fills_the_holes_it_is_given_and_scores_the_true_class_inside_them():
    from segnet.inpainting.masks import grow, replace_mask

    source = tiny_source(tile=96, seed=1, stars=(3000, 3000), cosmics=(20000, 20000), nsigma=1e-6)
    oracle = Oracle([source[i] for i in range(3)])
    grown = lambda s: grow(replace_mask(s, ("CR",)), 2)  # noqa: E731
    result = evaluate_inpainting(oracle, source, 3, replace=("CR",), batch_size=2, mask_of=grown)
    rows = dict(result.class_rows())
    usable = [grown(s) & ~s.saturated & ~s.clean_saturated for s in oracle.samples]
    assert rows["all"]["pixels"] == sum(int(u.sum()) for u in usable)
    assert rows["CR"]["pixels"] == sum(int((u & s.truth_of("CR")).sum()) for u, s in zip(usable, oracle.samples))
    assert rows["all"]["pixels"] > rows["CR"]["pixels"]  # the ring is replaced too
    assert rows["all"]["network"] == 0 and rows["all"]["median"] > 0


def test_a_tile_with_nothing_left_to_fill_from_is_counted_not_scored():
    from segnet.inpainting import report
    from segnet.inpainting.masks import replace_mask

    source = tiny_source(tile=96, seed=1, stars=(3000, 3000), cosmics=(20000, 20000), nsigma=1e-6)
    samples = [source[i] for i in range(3)]

    def holes(s):  # the first tile: all of it
        return np.ones(s.image.shape, bool) if s.header["SIMINDEX"][0] == 0 else replace_mask(s, ("CR",))

    result = evaluate_inpainting(Oracle(samples), source, 3, replace=("CR",), batch_size=2, mask_of=holes)
    assert result.skipped == 1
    assert dict(result.class_rows())["all"]["pixels"] == sum(int(holes(s).sum()) for s in samples[1:])
    assert "1 of 3 tiles not scored: their holes covered every finite pixel." in report.markdown(result)


def test_evaluate_py_scores_the_whole_chain_with_a_segmentation_models_flags(tmp_path, smoke_run, capsys):
    cfg = write_inpaint_config(tmp_path)
    run = tmp_path / "runs" / "inpaint"
    assert train.main(["--config", str(cfg), "--run-dir", str(run), "--quiet"]) == 0
    args = ["--run", str(run), "--n", "2", "--tile", "64", "--batch-size", "2", "--quiet"]
    with pytest.raises(SystemExit):
        evaluate.main([*args, "--inpaint-grow", "1"])
    assert "--mask-model and --inpaint-grow: only with --masks predicted" in capsys.readouterr().err
    assert evaluate.main([*args, "--masks", "predicted", "--mask-model", str(smoke_run), "--inpaint-grow", "1"]) == 0
    out = capsys.readouterr().out
    replaced = "CR, HCL, BCL, BLN, HPX, BPX, PER, TRL, SPK"  # as predict.py --inpaint: not SAT, FRG, GHO
    text = f"masks: the flags of {smoke_run} at its thresholds of the classes predict.py --inpaint replaces by default"
    assert f"{text} ({replaced}), grown by 1 px" in out
    report = (run / "evaluation" / "report_predicted_grow1.md").read_text()
    assert "grown by 1 px" in report
    assert "| SPK |" in report and "| FRG |" not in report  # per-class rows of the replaced classes
    assert (run / "evaluation" / "examples_predicted_grow1.png").stat().st_size > 1000
    assert not (run / "evaluation" / "report.md").exists()  # the truth-mask report is its own file


def test_training_holes_cut_higher_than_the_truth_leave_the_faint_wings_outside():
    from foundation.normalize import BackgroundGrid
    from segnet.inpainting.masks import hole_mask, replace_mask

    source = tiny_source(tile=96, seed=3, nsigma=0.5)  # truth down to half a sigma: wide, faint wings
    sample = source[0]
    truth = replace_mask(sample, ("CR",))
    assert np.array_equal(hole_mask(sample, ("CR",)), truth)
    hole = hole_mask(sample, ("CR",), nsigma=5.0)
    _, sigma = BackgroundGrid(sample.clean, box=64, mask=sample.clean_saturated).window()
    changed = np.abs(sample.image.astype(np.float64) - sample.clean)
    assert hole.any() and (hole <= truth).all() and hole.sum() < truth.sum()
    assert (changed[hole] >= 5.0 * sigma[hole]).all()
    wings = truth & ~hole
    assert (changed[wings] < 5.0 * sigma[wings]).all()
    with pytest.raises(ConfigError, match=r"inpaint\.hole_nsigma: must be > 0 or null, got -1"):
        load_run_config({"classes": ["CR", "OBJ"], "inpaint": {"replace": ["CR"], "hole_nsigma": -1}})


def test_batch_masks_cut_the_holes_at_the_configured_level():
    from segnet.inpainting.data import batch_masks

    source = tiny_source(tile=96, seed=3, nsigma=0.5)
    samples = [source[i] for i in range(2)]
    kwargs = dict(replace=("CR",), seed=0, split="train", borrow_probability=0.0, borrow_max_fraction=1.0)
    full = batch_masks(samples, [0, 1], **kwargs)
    cut = batch_masks(samples, [0, 1], **kwargs, hole_nsigma=5.0)
    assert all((c <= f).all() for c, f in zip(cut, full)) and sum(c.sum() for c in cut) < sum(f.sum() for f in full)


def test_evaluate_py_scores_inpainting_on_the_heldout_family_and_on_real_frames(tmp_path, capsys):
    from astropy.io import fits

    cfg = write_inpaint_config(tmp_path)
    run = tmp_path / "runs" / "inpaint"
    assert train.main(["--config", str(cfg), "--run-dir", str(run), "--quiet"]) == 0
    args = ["--run", str(run), "--n", "2", "--tile", "64", "--batch-size", "2", "--quiet"]
    assert evaluate.main([*args, "--heldout"]) == 0
    assert "held-out field family of heldout.yaml (heldout_bright_sky)" in capsys.readouterr().out
    report = (run / "evaluation" / "report_heldout.md").read_text()
    assert "| heldout_bright_sky |" in report  # the per-family table names the held-out family only
    frames = tmp_path / "frames"
    frames.mkdir()
    with fits.open(Path(__file__).parent / "data" / "real_cutout.fits") as hdul:
        fits.PrimaryHDU(hdul[0].data, header=hdul[0].header).writeto(frames / "mine.fits")
    before = (frames / "mine.fits").read_bytes()
    out = tmp_path / "real_out"
    assert evaluate.main([*args, "--real", str(frames), "--out", str(out)]) == 0
    assert f"the FITS files of {frames}, contaminants injected" in capsys.readouterr().out
    assert "| real: mine.fits |" in (out / "report_real.md").read_text()  # figures per real frame
    assert (out / "examples_real.png").stat().st_size > 1000
    assert (frames / "mine.fits").read_bytes() == before  # the input is only read
    with pytest.raises(SystemExit):
        evaluate.main([*args, "--heldout", "--real"])
    assert "--heldout and --real: give one" in capsys.readouterr().err


def test_a_real_frames_own_contaminants_are_never_scored():
    from segnet.inpainting.masks import usable_pixels

    sample = SampleSource(load_sim_section({"data": {"tile": 32}}), 0, split="test", clean=True)[0]
    mask = np.ones(sample.image.shape, bool)
    unknown = np.zeros(sample.image.shape, bool)
    unknown[3:6, 4:9] = True
    own = dataclasses.replace(sample, unknown=unknown)
    assert usable_pixels(sample, mask)[unknown].all()
    assert not usable_pixels(own, mask)[unknown].any()
    assert usable_pixels(own, mask)[~unknown].sum() == usable_pixels(sample, mask)[~unknown].sum()


def test_a_bayer_mosaic_is_filled_phase_by_phase():
    from segnet.inpainting.data import base_fill, is_mosaic

    rng = np.random.default_rng(4)
    grey = 1000.0 + rng.normal(0.0, 10.0, (64, 64))
    response = np.ones((64, 64))
    response[0::2, 0::2], response[1::2, 1::2] = 0.5, 0.7  # red and blue under a green checkerboard
    colour = grey * response
    holes = np.zeros((64, 64), bool)
    holes[20:26, 30:37] = True
    assert is_mosaic(colour, holes) and not is_mosaic(grey, holes)
    filled = base_fill(colour, holes)
    np.testing.assert_array_equal(filled[~holes], colour[~holes].astype(np.float32))
    # Each hole pixel at its own colour's level (within the noise), not at the mean of its neighbours'.
    assert np.abs(filled - 1000.0 * response)[holes].max() < 40.0
    assert np.abs(biharmonic(colour, holes) - 1000.0 * response)[holes].max() > 100.0
    np.testing.assert_array_equal(base_fill(grey, holes), biharmonic(grey, holes))  # a grey sensor: unchanged
