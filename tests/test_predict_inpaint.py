"""predict.py --inpaint: the CLEAN HDU, its header, exact copies of unflagged pixels, options and errors."""

import keras
import numpy as np
import pytest
import yaml
from astropy.io import fits
from conftest import SMALL, WCS, digest, frame, write

import predict
from foundation.classes import CLASS_NAMES
from foundation.tiling import TileSettings, predict_frame
from segnet.network.inpainting import build_inpainter
from segnet.network.model import build_segnet


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An (untrained) SegNet with an inpainter beside it, as models/default ships them.

    Thresholds: CR at the median of its probabilities on ``frame()`` (about half the pixels
    flagged), HPX at its 90th percentile, OBJ at its 80th, every other class never flagged.
    """
    keras.utils.set_random_seed(1)
    folder = tmp_path_factory.mktemp("model")
    seg = build_segnet(class_names=CLASS_NAMES, depth=2, base_filters=4, convs_per_level=1)
    seg.save(folder / "model.keras")
    prob = np.zeros((len(CLASS_NAMES), 90, 77), np.float32)
    predict_frame(seg, frame(), prob, settings=TileSettings(64, 16, 8, 4))
    thresholds = {c: 1.0 for c in CLASS_NAMES}
    thresholds["CR"] = float(np.median(prob[0]))
    thresholds["HPX"] = float(np.percentile(prob[4], 90))
    thresholds["OBJ"] = float(np.percentile(prob[9], 80))
    (folder / "thresholds.yaml").write_text(yaml.safe_dump(thresholds))
    (folder / "inpaint").mkdir()
    build_inpainter(depth=2, base_filters=4, convs_per_level=1).save(folder / "inpaint" / "model.keras")
    return folder


def run(model_dir, *args):
    return predict.main([*map(str, args), "--model", str(model_dir), *SMALL])


def bits(*names):
    return sum(2 ** CLASS_NAMES.index(n) for n in names)


def test_inpaint_adds_a_clean_hdu_that_changes_only_flagged_pixels(model_dir, tmp_path):
    from segnet.inpainting.masks import grow

    image = frame()
    image[3, 4] = np.nan
    src = write(tmp_path / "night.fits", image, {**WCS, "BUNIT": "adu"})
    before = digest(src)
    assert run(model_dir, src, "-o", tmp_path / "out", "--inpaint") == 0
    assert digest(src) == before
    with fits.open(tmp_path / "out" / "night.mask.fits") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "PROB", "FLAGS", "CLEAN"]
        clean, flags = hdul["CLEAN"], hdul["FLAGS"].data
        assert clean.data.dtype == np.dtype(">f4") and clean.data.shape == image.shape
        header = clean.header
        # Every contaminant but SAT, FRG and GHO by default.
        assert header["REPLACED"] == "CR,HCL,BCL,BLN,HPX,BPX,PER,TRL,SPK" and header["BUNIT"] == "adu"
        for key, value in WCS.items():
            assert header[key] == value
        assert {"INPMODEL", "INPMSHA", "MODEL", "MODELSHA", "SWVERSN"} <= set(header)
        assert header["INPMODEL"] == "inpaint/model.keras"
        flagged = (flags & bits(*header["REPLACED"].split(","))) != 0
        replaced = grow(flagged, 3, spare=(flags & bits("OBJ")) != 0)  # grown 3 px by default, not into OBJ
        assert header["INGROW"] == 3 and header["NREPL"] == replaced.sum() and 0 < replaced.mean() < 0.95
        data = clean.data.astype(np.float32)
        np.testing.assert_array_equal(data[~replaced], image[~replaced])  # bit for bit (NaN stays NaN)
        assert np.isfinite(data[replaced]).all()  # the NaN at (3, 4) too if replaced, else it stays NaN (above)
        assert not np.array_equal(data[replaced], image[replaced])


def test_inpaint_classes_choose_what_is_replaced(model_dir, tmp_path):
    from segnet.inpainting.masks import grow

    image = frame(seed=2)
    src = write(tmp_path / "hot.fits", image)
    assert run(model_dir, src, "-o", tmp_path, "--inpaint-classes", "HPX") == 0  # implies --inpaint
    with fits.open(tmp_path / "hot.mask.fits") as hdul:
        assert hdul["CLEAN"].header["REPLACED"] == "HPX"
        flags = hdul["FLAGS"].data
        replaced = grow((flags & bits("HPX")) != 0, 3, spare=(flags & bits("OBJ")) != 0)
        cr_only = ((flags & bits("CR")) != 0) & ~replaced
        assert cr_only.any() and replaced.any()
        data = hdul["CLEAN"].data.astype(np.float32)
        np.testing.assert_array_equal(data[~replaced], image[~replaced])


def test_every_hdu_gets_its_clean_and_compression_keeps_it_exact(model_dir, tmp_path):
    hdul = fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(frame(seed=1), name="CCD1"),
            fits.ImageHDU(frame((40, 60), seed=2), name="CCD2"),
        ]
    )
    hdul.writeto(tmp_path / "mef.fits")
    assert run(model_dir, tmp_path / "mef.fits", "-o", tmp_path / "all", "--all-hdus", "--inpaint") == 0
    assert (
        run(model_dir, tmp_path / "mef.fits", "-o", tmp_path / "packed", "--all-hdus", "--inpaint", "--compress") == 0
    )
    with (
        fits.open(tmp_path / "all" / "mef.mask.fits") as out,
        fits.open(tmp_path / "packed" / "mef.mask.fits") as packed,
    ):
        assert [h.name for h in out] == ["PRIMARY", "PROB", "FLAGS", "CLEAN", "PROB", "FLAGS", "CLEAN"]
        assert out[6].data.shape == (40, 60) and out[6].header["INEXTNAM"] == "CCD2"
        assert out[3].header["INEXTNAM"] == "CCD1"
        for k in (3, 6):
            np.testing.assert_array_equal(packed[k].data, out[k].data)  # lossless


def test_a_missing_inpainting_model_is_named(model_dir, tmp_path, capsys):
    src = write(tmp_path / "f.fits", frame())
    missing = tmp_path / "nowhere"
    assert run(model_dir, src, "-o", tmp_path / "out", "--inpaint-model", missing) == 2
    err = capsys.readouterr().err
    assert f"--inpaint: {missing}: no inpainting model there (no such folder)" in err
    assert not (tmp_path / "out" / "f.mask.fits").exists()


@pytest.mark.parametrize("names,message", [("CR,XYZ", "unknown class 'XYZ'"), ("OBJ", "OBJ is not a contaminant")])
def test_bad_inpaint_classes_stop_before_any_file(model_dir, tmp_path, capsys, names, message):
    src = write(tmp_path / "f.fits", frame())
    assert run(model_dir, src, "-o", tmp_path / "out", "--inpaint-classes", names) == 2
    assert f"--inpaint-classes: {message}" in capsys.readouterr().err


def test_inpaint_grow_replaces_a_ring_around_the_flags_but_not_objects(model_dir, tmp_path, capsys):
    from segnet.inpainting.masks import grow

    image = frame(seed=2)
    src = write(tmp_path / "hot.fits", image)
    assert run(model_dir, src, "-o", tmp_path, "--inpaint-classes", "HPX", "--inpaint-grow", "1") == 0
    with fits.open(tmp_path / "hot.mask.fits") as hdul:
        flags, clean = hdul["FLAGS"].data, hdul["CLEAN"]
        hot, objects = (flags & bits("HPX")) != 0, (flags & bits("OBJ")) != 0
        replaced = grow(hot, 1, spare=objects)
        assert clean.header["INGROW"] == 1 and clean.header["NREPL"] == replaced.sum()
        assert replaced.sum() > hot.sum()
        assert (grow(hot, 1) & objects & ~hot).any() and not (replaced & objects & ~hot).any()  # objects kept
        data = clean.data.astype(np.float32)
        np.testing.assert_array_equal(data[~replaced], image[~replaced])
        assert not np.array_equal(data[replaced], image[replaced])
    for bad, message in (
        (["--inpaint", "--inpaint-grow", "-1"], "--inpaint-grow: must be >= 0 px, got -1"),
        (["--inpaint-grow", "1"], "--inpaint-grow: only with --inpaint"),
    ):
        with pytest.raises(SystemExit):
            run(model_dir, src, "-o", tmp_path / "x", *bad)
        assert message in capsys.readouterr().err
