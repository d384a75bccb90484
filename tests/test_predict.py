"""predict.py: the CONTRACT.md output, tiling, awkward inputs, bad files, atomic writes, parallel runs."""

import gzip
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from astropy.io import fits
from conftest import SMALL, WCS, digest, frame, write

import predict
from foundation.tiling import TileSettings, predict_frame
from segnet.evaluation.metrics import adjust_priors


@pytest.fixture(scope="module")
def run_dir(smoke_run_copy):
    run = smoke_run_copy
    (run / "thresholds.yaml").write_text(
        yaml.safe_dump({c: 0.3 + 0.02 * k for k, c in enumerate(yaml.safe_load((run / "classes.yaml").read_text()))})
    )
    return run


def run(run_dir, *args):
    return predict.main([*map(str, args), "--model", str(run_dir), *SMALL])


def test_output_follows_the_contract(run_dir, tmp_path):
    src = write(tmp_path / "night.fits", frame(), {**WCS, "OBJECT": "ONC"})
    before = digest(src)
    assert run(run_dir, src, "-o", tmp_path / "out") == 0
    assert digest(src) == before
    classes = yaml.safe_load((run_dir / "classes.yaml").read_text())
    thresholds = yaml.safe_load((run_dir / "thresholds.yaml").read_text())
    with fits.open(tmp_path / "out" / "night.mask.fits") as hdul:
        prob, flags = hdul["PROB"], hdul["FLAGS"]
        assert prob.data.dtype == np.dtype(">f4") and prob.data.shape == (len(classes), 90, 77)
        assert flags.data.dtype == np.dtype(">i4") and flags.data.shape == (90, 77)
        assert prob.header["NAXIS3"] == len(classes)
        for k, name in enumerate(classes, start=1):
            assert prob.header[f"CLASS{k}"] == name and flags.header[f"BIT{k - 1}"] == name
            assert prob.header[f"THRESH{k}"] == pytest.approx(thresholds[name])
        for key, value in WCS.items():
            assert prob.header[key] == value and flags.header[key] == value
        assert {"MODEL", "MODELSHA", "SWVERSN"} <= set(prob.header)
        p = prob.data.astype(np.float32)
        assert 0 <= p.min() and p.max() <= 1
        expected = sum(((p[k] >= thresholds[c]) << k) for k, c in enumerate(classes))
        np.testing.assert_array_equal(flags.data, expected)


def random_layers(classes, seed, hidden=6):
    from segnet.calibration.pixel import feature_names

    rng = np.random.default_rng(seed)
    sizes = [len(feature_names(classes)), hidden, hidden, len(classes)]
    return tuple((rng.normal(0, 0.5, (o, i)), rng.normal(0, 0.5, o)) for i, o in zip(sizes, sizes[1:]))


@pytest.mark.parametrize("calibrated", [False, True])
def test_tiled_equals_untiled_away_from_the_border(run_dir, calibrated):
    from segnet.calibration.pixel import PixelCalibration
    from segnet.training.run_folder import load_model

    model = load_model(run_dir / "model.keras")
    classes = yaml.safe_load((run_dir / "classes.yaml").read_text())
    calibration = PixelCalibration(tuple(classes), random_layers(classes, seed=5)) if calibrated else None
    image = frame((150, 170), seed=1)
    whole = np.zeros((len(classes), 150, 170), np.float32)
    tiled = np.zeros_like(whole)
    predict_frame(model, image, whole, settings=TileSettings(tile=512, margin=0, blend=0), calibration=calibration)
    predict_frame(model, image, tiled, settings=TileSettings(tile=64, margin=16, blend=8), calibration=calibration)
    np.testing.assert_allclose(tiled[:, 16:-16, 16:-16], whole[:, 16:-16, 16:-16], atol=1e-5)


def test_the_model_folders_calibration_is_applied(run_dir, tmp_path, capsys):
    from foundation.normalize import BackgroundGrid, to_network
    from segnet.calibration.pixel import PixelCalibration

    classes = yaml.safe_load((run_dir / "classes.yaml").read_text())
    calibrated = tmp_path / "calibrated"
    shutil.copytree(run_dir, calibrated)
    calibration = PixelCalibration(tuple(classes), random_layers(classes, seed=6), passthrough=("BPX",))
    calibration.save(calibrated / "calibration.yaml")
    calibration = PixelCalibration.load(calibrated / "calibration.yaml", classes)  # as written: 6 digits
    image = frame((70, 90), seed=2)
    src = write(tmp_path / "f.fits", image)
    one_tile = ["--tile", "128", "--margin", "0", "--blend", "0", "--quiet"]
    for folder, out in ((calibrated, "cal"), (run_dir, "raw")):
        assert predict.main([str(src), "-o", str(tmp_path / out), "--model", str(folder), *one_tile]) == 0
    with fits.open(tmp_path / "cal" / "f.mask.fits") as cal, fits.open(tmp_path / "raw" / "f.mask.fits") as raw:
        assert cal["PROB"].header["CALIBRAT"] is True and raw["PROB"].header["CALIBRAT"] is False
        p_cal, p_raw = cal["PROB"].data.astype(np.float32), raw["PROB"].data.astype(np.float32)
    background, sigma = BackgroundGrid(image).window()
    x = to_network(image, background, sigma, ~np.isfinite(image))
    # The last row and column: the 70x90 frame is padded to 80x96 for the network, and the calibration's
    # neighbours there are that padding (the network's view), not the reflected frame.
    np.testing.assert_allclose(p_cal[:, :-1, :-1], calibration.apply(p_raw, x)[:, :-1, :-1], atol=2e-5)
    assert np.abs(p_cal - p_raw).max() > 0.1
    np.testing.assert_array_equal(p_cal[classes.index("BPX")], p_raw[classes.index("BPX")])
    # A broken calibration.yaml stops the run and says which file and key.
    text = (calibrated / "calibration.yaml").read_text().replace("- HPX\n", "- HPX\n- XXX\n")
    (calibrated / "calibration.yaml").write_text(text)
    assert predict.main([str(src), "-o", str(tmp_path / "bad"), "--model", str(calibrated), *one_tile]) == 2
    err = capsys.readouterr().err
    assert "calibration.yaml: classes: expected" in err and "'XXX'" in err


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (5, 300)])
def test_odd_and_tiny_sizes(run_dir, tmp_path, shape):
    src = write(tmp_path / "odd.fits", frame(shape))
    assert run(run_dir, src, "-o", tmp_path) == 0
    with fits.open(tmp_path / "odd.mask.fits") as hdul:
        assert hdul["PROB"].data.shape[1:] == shape and hdul["FLAGS"].data.shape == shape


def test_nan_and_inf_pixels_are_predicted_zero_and_recorded(run_dir, tmp_path):
    image = frame()
    image[10:13, 20:22] = np.nan
    image[50, 50] = np.inf
    src = write(tmp_path / "holes.fits", image)
    assert run(run_dir, src, "-o", tmp_path) == 0
    with fits.open(tmp_path / "holes.mask.fits") as hdul:
        assert hdul["PROB"].header["NNONFIN"] == 7
        assert np.all(hdul["PROB"].data[:, 10:13, 20:22] == 0) and np.all(hdul["PROB"].data[:, 50, 50] == 0)
        assert np.isfinite(hdul["PROB"].data).all()


def prob_of(path):
    with fits.open(path) as hdul:
        return hdul["PROB"].data.astype(np.float32)


def test_int16_with_bzero_big_endian_fz_and_gz_give_the_same_masks(run_dir, tmp_path):
    counts = np.round(frame()).astype(np.int64)
    write(tmp_path / "float.fits", counts.astype(">f8"))  # big-endian float64
    hdu = fits.PrimaryHDU(counts.astype(np.int32))
    hdu.scale("int16", bzero=32768)
    hdu.writeto(tmp_path / "int16.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(counts.astype(np.int32))]).writeto(tmp_path / "comp.fits.fz")
    with open(tmp_path / "float.fits", "rb") as f, gzip.open(tmp_path / "zipped.fits.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    assert (
        run(
            run_dir,
            tmp_path / "float.fits",
            tmp_path / "int16.fits",
            tmp_path / "comp.fits.fz",
            tmp_path / "zipped.fits.gz",
            "-o",
            tmp_path / "out",
        )
        == 0
    )
    reference = prob_of(tmp_path / "out" / "float.mask.fits")
    for name in ("int16", "comp", "zipped"):
        np.testing.assert_allclose(prob_of(tmp_path / "out" / f"{name}.mask.fits"), reference, atol=1e-6)


def test_multi_extension_files(run_dir, tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.ones(3))], name="CAT")
    hdul = fits.HDUList(
        [
            fits.PrimaryHDU(),
            table,
            fits.ImageHDU(frame(seed=1), name="CCD1"),
            fits.ImageHDU(frame((40, 60), seed=2), name="CCD2"),
        ]
    )
    hdul.writeto(tmp_path / "mef.fits")
    assert run(run_dir, tmp_path / "mef.fits", "-o", tmp_path / "first") == 0
    with fits.open(tmp_path / "first" / "mef.mask.fits") as out:
        assert [h.name for h in out] == ["PRIMARY", "PROB", "FLAGS"] and out["PROB"].header["INEXTNAM"] == "CCD1"
    assert run(run_dir, tmp_path / "mef.fits", "-o", tmp_path / "all", "--all-hdus") == 0
    with fits.open(tmp_path / "all" / "mef.mask.fits") as out:
        assert [h.name for h in out] == ["PRIMARY", "PROB", "FLAGS", "PROB", "FLAGS"]
        assert out[3].data.shape[1:] == (40, 60) and out[3].header["INEXTNAM"] == "CCD2"
    assert run(run_dir, tmp_path / "mef.fits", "-o", tmp_path / "named", "--hdu", "CCD2") == 0
    with fits.open(tmp_path / "named" / "mef.mask.fits") as out:
        assert out["PROB"].data.shape[1:] == (40, 60)


def test_bad_files_fail_one_line_each_and_the_rest_is_written(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.fits").write_text("this is not FITS\n")
    write(bad / "full.fits", frame())
    (bad / "truncated.fits").write_bytes((bad / "full.fits").read_bytes()[:5000])
    write(bad / "line.fits", np.ones(50, np.float32))
    write(bad / "cube.fits", np.ones((3, 20, 20), np.float32))
    fits.PrimaryHDU().writeto(bad / "empty.fits")
    write(bad / "allnan.fits", np.full((20, 20), np.nan, np.float32))
    write(bad / "good.fits", frame())
    (bad / "full.fits").unlink()
    code = run(run_dir, bad, tmp_path / "missing.fits", "-o", tmp_path / "out")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert (tmp_path / "out" / "good.mask.fits").is_file()
    expected = {"text.fits", "truncated.fits", "line.fits", "cube.fits", "empty.fits", "allnan.fits", "missing.fits"}
    assert len(err) == len(expected)
    for name in expected:
        assert sum(line.startswith("error: ") and name in line for line in err) == 1, (name, err)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mask.fits"]  # no partial file


def test_an_interrupted_write_leaves_no_output(run_dir, tmp_path, monkeypatch, capsys):
    import segnet.serving.prediction as prediction

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prediction, "predict_frame", interrupted)
    src = write(tmp_path / "f.fits", frame())
    assert run(run_dir, src, "-o", tmp_path / "out") == 130  # Ctrl-C: one line, no traceback
    assert capsys.readouterr().err == "\ninterrupted: 0 of 1 written; the file being written was removed\n"
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(run_dir, tmp_path, capsys):
    src = write(tmp_path / "f.fits", frame())
    (tmp_path / "f.mask.fits").write_text("keep me")
    assert run(run_dir, src, "-o", tmp_path) == 1
    assert "exists (use --overwrite" in capsys.readouterr().err
    assert (tmp_path / "f.mask.fits").read_text() == "keep me"
    assert run(run_dir, src, "-o", tmp_path, "--overwrite") == 0
    assert prob_of(tmp_path / "f.mask.fits").shape[0] == len(yaml.safe_load((run_dir / "classes.yaml").read_text()))


def test_compressed_output_keeps_flags_exactly_and_probabilities_to_1e_4(run_dir, tmp_path):
    src = write(tmp_path / "f.fits", frame())
    assert run(run_dir, src, "-o", tmp_path / "plain") == 0
    assert run(run_dir, src, "-o", tmp_path / "packed", "--compress") == 0
    assert run(run_dir, src, "-o", tmp_path / "again", "--compress") == 0
    packed = tmp_path / "packed" / "f.mask.fits"
    with fits.open(packed) as hdul, fits.open(tmp_path / "plain" / "f.mask.fits") as plain:
        assert isinstance(hdul["PROB"], fits.CompImageHDU) and isinstance(hdul["FLAGS"], fits.CompImageHDU)
        assert hdul["PROB"].header["PROBQUAN"] == 1e-4 and hdul["PROB"].header["CLASS1"] == "CR"
        np.testing.assert_allclose(hdul["PROB"].data, plain["PROB"].data, rtol=0, atol=5.01e-5)
        np.testing.assert_array_equal(hdul["FLAGS"].data, plain["FLAGS"].data)
    # Deterministic content (the bytes differ: gzip stamps each compressed tile with the time).
    np.testing.assert_array_equal(prob_of(packed), prob_of(tmp_path / "again" / "f.mask.fits"))


def test_priors_move_probabilities_by_bayes_rule(run_dir, tmp_path):
    src = write(tmp_path / "f.fits", frame())
    fractions = yaml.safe_load((run_dir / "class_fractions.yaml").read_text())["classes"]
    priors = tmp_path / "priors.yaml"
    priors.write_text(yaml.safe_dump({"CR": 0.001}))
    assert run(run_dir, src, "-o", tmp_path / "plain") == 0
    assert run(run_dir, src, "-o", tmp_path / "adjusted", "--priors", priors) == 0
    plain, adjusted = prob_of(tmp_path / "plain" / "f.mask.fits"), prob_of(tmp_path / "adjusted" / "f.mask.fits")
    np.testing.assert_allclose(adjusted[0], adjust_priors(plain[0], fractions["CR"], 0.001), atol=2e-6)
    np.testing.assert_allclose(adjusted[1:], plain[1:], atol=2e-6)


def test_auto_priors_move_each_frame_to_its_own_em_estimate(run_dir, tmp_path):
    from segnet.serving.priors import PriorEstimator

    src = write(tmp_path / "f.fits", frame())
    fractions = yaml.safe_load((run_dir / "class_fractions.yaml").read_text())["classes"]
    assert run(run_dir, src, "-o", tmp_path / "plain") == 0
    assert run(run_dir, src, "-o", tmp_path / "auto", "--priors", "auto") == 0
    plain = prob_of(tmp_path / "plain" / "f.mask.fits")
    with fits.open(tmp_path / "auto" / "f.mask.fits") as hdul:
        prob, flags = hdul["PROB"], hdul["FLAGS"]
        names = [prob.header[f"CLASS{k}"] for k in range(1, prob.data.shape[0] + 1)]
        estimated = np.array([prob.header[f"PRIOR{k}"] for k in range(1, len(names) + 1)])
        assert prob.header["PRIORADJ"] and flags.header["PRIOR1"] == prob.header["PRIOR1"]
        train = np.array([fractions[n] for n in names])
        estimator = PriorEstimator(len(names))
        estimator.update(plain)
        np.testing.assert_allclose(estimated, estimator.estimate(train), rtol=1e-3)
        np.testing.assert_allclose(prob.data, adjust_priors(plain, train, estimated), atol=1e-4)
        thresholds = np.array([prob.header[f"THRESH{k}"] for k in range(1, len(names) + 1)])[:, None, None]
        bits = (2 ** np.arange(len(names)))[:, None, None]
        np.testing.assert_array_equal(flags.data, ((prob.data >= thresholds) * bits).sum(axis=0))


def test_missing_model_and_bad_options_say_what_is_wrong(tmp_path, capsys, run_dir):
    src = write(tmp_path / "f.fits", frame())
    assert predict.main([str(src), "-o", str(tmp_path), "--model", str(tmp_path / "nomodel")]) == 2
    assert "holds no model.keras" in capsys.readouterr().err
    bad = tmp_path / "t.yaml"
    bad.write_text("CR: 2.0\n")
    assert predict.main([str(src), "-o", str(tmp_path), "--model", str(run_dir), "--thresholds", str(bad)]) == 2
    assert "thresholds must be numbers in [0, 1]" in capsys.readouterr().err


def test_a_list_file_and_two_worker_processes(run_dir, tmp_path):
    for i in range(3):
        write(tmp_path / f"f{i}.fits", frame(seed=i))
    (tmp_path / "list.txt").write_text("# tonight\nf0.fits\nf1.fits\n\nf2.fits\n")
    assert run(run_dir, tmp_path / "list.txt", "-o", tmp_path / "serial") == 0
    assert run(run_dir, tmp_path / "list.txt", "-o", tmp_path / "parallel", "--workers", "2") == 0
    for i in range(3):
        np.testing.assert_array_equal(
            prob_of(tmp_path / "serial" / f"f{i}.mask.fits"), prob_of(tmp_path / "parallel" / f"f{i}.mask.fits")
        )


def test_a_dask_local_cluster(run_dir, tmp_path):
    from dask.distributed import LocalCluster

    for i in range(2):
        write(tmp_path / f"f{i}.fits", frame(seed=i))
    write(tmp_path / "bad.fits", np.ones(5, np.float32))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code = run(
            run_dir,
            tmp_path / "f0.fits",
            tmp_path / "f1.fits",
            tmp_path / "bad.fits",
            "-o",
            tmp_path / "out",
            "--scheduler",
            cluster.scheduler_address,
        )
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.mask.fits", "f1.mask.fits"]


@pytest.mark.skipif(shutil.which("fitsverify") is None, reason="fitsverify is not installed (Debian: fitsverify)")
def test_outputs_pass_fitsverify(run_dir, tmp_path):
    src = write(tmp_path / "f.fits", frame(), WCS)
    assert run(run_dir, src, "-o", tmp_path) == 0
    assert run(run_dir, src, "-o", tmp_path / "packed", "--compress") == 0
    for out in (tmp_path / "f.mask.fits", tmp_path / "packed" / "f.mask.fits"):
        result = subprocess.run(["fitsverify", "-q", str(out)], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.startswith("verification OK"), result.stdout


def test_a_constant_image_gives_finite_masks(run_dir, tmp_path):
    src = write(tmp_path / "flat.fits", np.full((40, 50), 1234, np.int16))
    assert run(run_dir, src, "-o", tmp_path) == 0
    with fits.open(tmp_path / "flat.mask.fits") as hdul:
        p = hdul["PROB"].data
        assert np.isfinite(p).all() and 0 <= p.min() and p.max() <= 1
        assert hdul["PROB"].header["NNONFIN"] == 0


@pytest.mark.parametrize("tile", ["2560", "256", "192"])
def test_no_false_flags_along_the_frame_edge_whatever_the_tile(tmp_path, tile):
    """The shipped model on pure noise: its border band is flagged no more than its interior.

    A window at the frame's bottom or right edge used to be zero-padded to the tile size, which
    the network reads as noise-free sky next to real pixels: trails and fringes along the edge.
    """
    rng = np.random.default_rng(1)
    image = (1000 + 20 * rng.standard_normal((300, 300))).astype(np.float32)
    src = write(tmp_path / "noise.fits", image, {"GAIN": 2.5, "RDNOISE": 5.0})
    assert (
        predict.main([str(src), "-o", str(tmp_path), "--tile", tile, "--margin", "32", "--blend", "16", "--quiet"]) == 0
    )
    with fits.open(tmp_path / "noise.mask.fits") as hdul:
        flags, header = hdul["FLAGS"].data, hdul["FLAGS"].header
        names = [header[f"BIT{k}"] for k in range(hdul["PROB"].data.shape[0])]
    contaminant = (flags & ~(1 << names.index("OBJ"))) != 0
    band = np.zeros(contaminant.shape, bool)
    band[:8] = band[-8:] = True
    band[:, :8] = band[:, -8:] = True
    n_band = band.sum()
    expected = contaminant[~band].mean() * n_band
    # Within 4 binomial sigmas (plus one pixel) of the interior's rate.
    assert contaminant[band].sum() <= expected + 4 * np.sqrt(expected) + 1, (contaminant[band].sum(), expected)


def test_an_output_folder_that_is_a_file_is_one_line_error(run_dir, tmp_path, capsys):
    src = write(tmp_path / "f.fits", frame())
    (tmp_path / "taken").write_text("a file")
    assert run(run_dir, src, "-o", tmp_path / "taken") == 2
    assert f"error: -o {tmp_path / 'taken'}: exists and is not a folder" in capsys.readouterr().err


def test_two_inputs_with_one_output_name_never_replace_each_other(run_dir, tmp_path, capsys):
    a = write(tmp_path / "m51.fits", frame(seed=1))
    with gzip.open(tmp_path / "m51.fits.gz", "wb") as out:
        out.write(a.read_bytes())
    assert run(run_dir, a, tmp_path / "m51.fits.gz", "-o", tmp_path / "out", "--overwrite") == 1
    err = capsys.readouterr().err
    assert "m51.fits.gz: its output m51.mask.fits is also" in err
    assert (tmp_path / "out" / "m51.mask.fits").is_file()


def test_a_non_ascii_file_name_is_processed(run_dir, tmp_path):
    src = write(tmp_path / "nébula.fits", frame())
    assert run(run_dir, src, "-o", tmp_path) == 0
    with fits.open(tmp_path / "nébula.mask.fits") as hdul:
        assert hdul[0].header["INFILE"] == "n\\xe9bula.fits"


@pytest.mark.parametrize("value", [0.0, 1234.5])
def test_a_constant_frame_flags_nothing_and_says_so(run_dir, tmp_path, capsys, value):
    src = write(tmp_path / "flat.fits", np.full((70, 90), value, np.float32))
    assert run(run_dir, src, "-o", tmp_path) == 0
    assert "flat.fits: HDU 0 is constant: nothing flagged" in capsys.readouterr().err
    with fits.open(tmp_path / "flat.mask.fits") as hdul:
        assert not hdul["FLAGS"].data.any() and not hdul["PROB"].data.any()


def _damaged(tmp_path, name, edit):
    good = tmp_path / "good.fits"
    if not good.exists():
        fits.PrimaryHDU(frame((32, 32))).writeto(good)
    data = bytearray(good.read_bytes())
    path = tmp_path / name
    path.write_bytes(edit(data))
    return path


@pytest.mark.parametrize(
    "name,edit,message",
    [
        ("naxis.fits", lambda b: b.replace(b"NAXIS1", b"NAXISX", 1), "its header lacks a valid NAXIS1 card"),
        ("simple.fits", lambda b: b"SIMPLX" + b[6:], "no SIMPLE card at its start"),
        ("short.fits", lambda b: b[:3000], "its data are shorter than its header says"),
    ],
)
def test_damaged_files_get_a_plain_one_line_reason(run_dir, tmp_path, capsys, name, edit, message):
    path = _damaged(tmp_path, name, edit)
    assert run(run_dir, path, "-o", tmp_path / "out") == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and message in err[0]
    assert "KeyError" not in err[0] and "ignore_missing_simple" not in err[0] and "reshape" not in err[0]


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--tile", "0", "--tile: must be >= 1, got 0"),
        ("--tile", "-5", "--tile: must be >= 1, got -5"),
        ("--margin", "-1", "--margin: must be >= 0, got -1"),
        ("--batch-size", "0", "--batch-size: must be >= 1, got 0"),
        ("--tile", "128", "--tile 128, --margin 64, --blend 32: the tile must exceed"),
    ],
)
def test_tile_options_are_checked_before_the_model_loads(tmp_path, capsys, option, value, message):
    src = write(tmp_path / "f.fits", frame())
    with pytest.raises(SystemExit) as stop:
        predict.main([str(src), "-o", str(tmp_path), "--model", str(tmp_path / "no-model-here"), option, value])
    assert stop.value.code == 2 and message in capsys.readouterr().err  # the missing model is never reached


def test_a_bad_pixel_mask_of_the_wrong_shape_or_without_an_image_is_one_line(run_dir, tmp_path, capsys):
    src = write(tmp_path / "f.fits", frame())
    write(tmp_path / "small.fits", np.zeros((10, 10), np.uint8))
    write(tmp_path / "cube.fits", np.zeros((2, 90, 77), np.uint8))
    for mask, reason in (("small.fits", "has shape (10, 10), the image (90, 77)"), ("cube.fits", "holds no 2-D image")):
        assert run(run_dir, src, "-o", tmp_path / "out", "--bad-pixel-mask", tmp_path / mask) == 1
        err = capsys.readouterr().err
        assert err == f"error: {src}: --bad-pixel-mask {tmp_path / mask} {reason}\n"
    bad = np.zeros((90, 77), np.uint8)
    bad[:, :10] = 1
    write(tmp_path / "mask.fits", bad)
    assert run(run_dir, src, "-o", tmp_path / "out", "--bad-pixel-mask", tmp_path / "mask.fits") == 0
