"""The Python API of CONTRACT.md: load_masker, masker(image), masker.many(images)."""

import keras
import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.nddata import CCDData
from conftest import frame as noisy_frame

import predict
from foundation.classes import CLASS_NAMES
from foundation.tiling import TileSettings, predict_frame
from segnet import load_masker
from segnet.network.model import build_segnet

SMALL = ["--tile", "64", "--margin", "16", "--blend", "8", "--quiet"]


def frame(shape=(70, 90), seed=0):
    return noisy_frame(shape, seed, hits=30)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained SegNet with thresholds at the median of each class's probabilities on ``frame()``."""
    keras.utils.set_random_seed(3)
    folder = tmp_path_factory.mktemp("model")
    seg = build_segnet(class_names=CLASS_NAMES, depth=2, base_filters=4, convs_per_level=1)
    seg.save(folder / "model.keras")
    prob = np.zeros((len(CLASS_NAMES), 70, 90), np.float32)
    predict_frame(seg, frame(), prob, settings=TileSettings(64, 16, 8, 1))
    (folder / "thresholds.yaml").write_text(
        yaml.safe_dump({c: float(np.median(prob[k])) for k, c in enumerate(CLASS_NAMES)})
    )
    return folder


def test_a_masker_equals_predict_on_the_same_pixels(model_dir, tmp_path):
    image = frame()
    src = tmp_path / "f.fits"
    fits.PrimaryHDU(image).writeto(src)
    assert predict.main([str(src), "-o", str(tmp_path), "--model", str(model_dir), *SMALL]) == 0
    with fits.open(tmp_path / "f.mask.fits") as hdul:
        prob, flags = hdul["PROB"].data.astype(np.float32), hdul["FLAGS"].data
    masker = load_masker(model_dir, settings=TileSettings(64, 16, 8))
    result = masker(image)
    assert result.classes == CLASS_NAMES and result.prob.shape == prob.shape and result.flags.dtype == np.int32
    np.testing.assert_allclose(result.prob, prob, atol=1e-6)
    np.testing.assert_array_equal(result.flags, flags)
    cr = result.mask("CR")
    assert cr.dtype == bool and np.array_equal(cr, (flags & 1) != 0)
    with pytest.raises(ValueError, match="mask: unknown class 'DUST'"):
        result.mask("DUST")


def test_any_dtype_and_ccddata_with_its_mask_and_unit(model_dir):
    masker = load_masker(model_dir)
    image = np.round(frame()).astype(np.uint16)
    as_int = masker(image)
    as_float = masker(image.astype(np.float64))
    np.testing.assert_array_equal(as_int.flags, as_float.flags)
    bad = np.zeros(image.shape, bool)
    bad[10:20, 10:20] = True
    ccd = CCDData(image.astype(np.float32), unit="electron", mask=bad)
    result = masker(ccd)
    np.testing.assert_array_equal(result.flags, masker(image, bad_pixels=bad).flags)
    out = result.to_ccddata()
    assert out.unit == "electron" and out.mask.shape == image.shape and out.flags.dtype == np.int32
    np.testing.assert_array_equal(out.mask, result.contaminated())


def test_many_small_images_equal_one_by_one(model_dir):
    masker = load_masker(model_dir)
    images = [frame((64, 64), seed=s) for s in range(5)] + [frame((50, 70), seed=9)]
    batched = masker.many(images, batch_size=2)
    for image, got in zip(images, batched):
        alone = masker(image)
        np.testing.assert_allclose(got.prob, alone.prob, atol=1e-5)
        assert (got.flags != alone.flags).mean() < 1e-3


def test_tile_settings_are_checked_when_loading(model_dir):
    with pytest.raises(ValueError, match=r"tile - 2\*margin \(-64\) must exceed blend"):
        load_masker(model_dir, settings=TileSettings(tile=64))


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros((3, 4, 5)), r"image: expected a 2-D array, got shape \(3, 4, 5\)"),
        (np.full((8, 8), np.nan), "image: no finite pixel"),
        (np.array([["a", "b"], ["c", "d"]]), "image: expected numbers"),
    ],
)
def test_bad_images_get_a_clear_error(model_dir, bad, message):
    with pytest.raises(ValueError, match=message):
        load_masker(model_dir)(bad)


def test_a_constant_image_flags_nothing(model_dir):
    masker = load_masker(model_dir)
    for result in [masker(np.zeros((40, 40))), *masker.many([np.full((32, 32), 7.0)])]:
        assert not result.flags.any() and not result.prob.any()
