"""The real-frame benchmark (segnet/evaluation/real/) on a small cut-out of a real frame, with injected truth."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import foundation.devset as devset
from data_sim.config import load_sim_section
from foundation.devset import Camera, RealFrame
from foundation.stars import find_star_cores
from segnet.evaluation.real.benchmark import run_benchmark
from segnet.evaluation.real.harness import ANY, InProcessTool, run_frame, versions

DATA = Path(__file__).parent / "data"
CLASSES = ("CR", "HCL", "BCL", "BLN", "HPX", "BPX", "PER", "TRL", "FRG", "OBJ")


@pytest.fixture(scope="module")
def cutout():
    """128x128 px of a real frame of the development set's training split (see the file's header)."""
    with fits.open(DATA / "real_cutout.fits") as hdul:
        header = hdul[0].header
        camera = Camera(
            gain=header["GAIN"],
            read_noise=header["RDNOISE"],
            bias=header["BIAS"],
            saturation=header["SATURATE"],
            detector=header["DETECTOR"],
        )
        return RealFrame("cutout", hdul[0].data.astype(np.float32), camera)


@pytest.fixture(scope="module")
def sim_config():
    return load_sim_section(Path("configs/multiclass.yaml")).data


def perfect(version):
    """Knows the injected truth: 1 on it, 0 elsewhere (and 0 everywhere on the frame as it is)."""
    return {c: version.truth.get(c, np.zeros(version.image.shape, bool)).astype(np.float32) for c in CLASSES}


def zero(version):
    return {c: np.zeros(version.image.shape, np.float32) for c in CLASSES}


def tools():
    thresholds = dict.fromkeys(CLASSES, 0.5)
    return [
        InProcessTool("ours", "model", CLASSES, thresholds, perfect),
        InProcessTool("zero", "zero", CLASSES, thresholds, zero),
    ]


def test_cutout_is_small_and_real():
    path = DATA / "real_cutout.fits"
    assert path.stat().st_size < 1_000_000
    header = fits.getheader(path)
    assert header["SRCFRAME"] in {e.name for e in devset.load_entries() if e.split == "train"}


def test_injected_versions_keep_the_frame_where_nothing_was_injected(cutout, sim_config):
    made = versions(cutout, sim_config, CLASSES, draws=2, seed=5)
    assert [v.kind for v in made] == ["frame", "injected", "injected", "fringe"]
    assert made[0].image is cutout.image and not made[0].truth
    for v in made[1:]:
        touched = v.image != cutout.image
        truth = np.zeros(cutout.image.shape, bool)
        for m in v.truth.values():
            truth |= m
        assert truth.any()
        # Every truth pixel is in a changed pixel's place (defects are exact, additive signal >= 2 sigma).
        assert np.all(touched[truth & ~v.saturated])
    assert "CR" in made[1].injected and set(made[3].truth) == {"FRG"}
    again = versions(cutout, sim_config, CLASSES, draws=2, seed=5)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(made, again))


def test_perfect_and_zero_predictors(cutout, sim_config):
    result = run_frame(cutout, tools(), sim_config, CLASSES, draws=1, seed=3)
    assert result.stars.n >= 1
    good = result.tallies["model"].figures()
    for c, row in good["injected"].items():
        assert row["positives"] > 0
        assert row["tpr_at_threshold"] == 1.0 and row["fpr_at_threshold"] == 0.0, c
        assert row["tpr_at_0.1%_fpr"] == 1.0, c
    assert set(good["injected"]) == set(CLASSES) - {"OBJ"}
    assert good["star_cores"]["flagged"][ANY] == 0.0 and good["star_cores"]["pixels"] > 0
    none = result.tallies["zero"].figures()
    assert all(v == 0.0 for v in none["flagged_fraction"].values())
    assert all(v == 0 for v in none["flagged_groups"].values())
    assert all(row["tpr_at_threshold"] == 0.0 for row in none["injected"].values())
    assert none["star_cores"]["flagged"][ANY] == 0.0


def test_report_files_and_json_keys(cutout, sim_config, tmp_path):
    doc = run_benchmark(
        [cutout], tools(), sim_config, CLASSES, tmp_path, model_path="perfect", command="test", draws=1, seed=3
    )
    loaded = json.loads((tmp_path / "real_metrics.json").read_text())
    assert loaded["frames"].keys() == {"cutout"}
    for figures in (loaded["frames"]["cutout"], loaded["overall"]):
        assert {"injected", "star_cores", "flagged_fraction"} <= set(figures)
        for row in figures["injected"].values():
            assert {"positives", "tpr_at_threshold", "fpr_at_threshold"} <= set(row)
        assert {"n", "flagged"} <= set(figures["star_cores"])
    assert loaded["overall"]["injected"]["CR"]["tpr_at_threshold"] == 1.0
    assert "zero" in loaded["peers"] and doc["peers"]["zero"]["overall"]["flagged_fraction"]["CR"] == 0.0
    assert (tmp_path / "cutout.png").stat().st_size > 10_000
    report = (tmp_path / "real_report.md").read_text()
    assert "| model |" in report and "| zero |" in report


def test_star_cores_skip_cosmic_rays_and_saturated_stars():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:128, 0:128]
    image = 100.0 + rng.normal(0, 5, (128, 128))
    stars = [(30, 30, 2000.0), (30, 95, 1500.0), (95, 40, 3000.0), (90, 100, 60000.0)]
    sigma = 3.0 / 2.355
    for cy, cx, flux in stars:
        image += flux / (2 * np.pi * sigma**2) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    image[64, 64] += 3000.0  # a one-pixel cosmic ray
    saturated = image >= 2000.0
    image = np.minimum(image, 2000.0)
    found = find_star_cores(image, np.full_like(image, 100.0), np.full_like(image, 5.0), saturated)
    assert abs(found.frame_fwhm - 3.0) < 0.5
    got = sorted((round(p[0]), round(p[1])) for p in found.positions)
    assert got == [(30, 30), (30, 95), (95, 40)]  # not the hit, not the saturated star
    assert found.core[64, 64] == 0 and found.core[30, 30] > 0


def test_frame_list_is_complete_and_leaves_out_the_reserved_frames():
    entries = devset.load_entries()
    assert len(entries) >= 12 and {e.split for e in entries} == {"train", "eval"}
    for e in entries:
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.name
        assert "iraf" not in e.package.lower() and "ccdproc" not in e.package.lower(), e.name
        assert "pix" != Path(e.path).stem.lower(), e.name
    manifest = (Path("data/real/MANIFEST.md")).read_text()
    assert all(e.name in manifest for e in entries)


def test_fetch_refuses_a_frame_whose_checksum_differs(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch", "data/real/fetch.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    unpacked = tmp_path / "pkg"
    (unpacked / "sub").mkdir(parents=True)
    (unpacked / "sub" / "frame.fits").write_bytes(b"SIMPLE  =                    T")
    good = fetch.sha256(unpacked / "sub" / "frame.fits")
    fetch.place("f", {"path": "sub/frame.fits", "sha256": good, "package": "p"}, unpacked, tmp_path / "f.fits")
    assert (tmp_path / "f.fits").read_bytes().startswith(b"SIMPLE")
    with pytest.raises(fetch.FetchError, match="sha256"):
        fetch.place("g", {"path": "sub/frame.fits", "sha256": "0" * 64, "package": "p"}, unpacked, tmp_path / "g.fits")
    assert not (tmp_path / "g.fits").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--real", "/nonexistent-folder", "--draws", "0"], "--draws: must be >= 1, got 0"),
        (["--heldout", "--real"], "--heldout and --real: give one"),
    ],
)
def test_evaluate_real_bad_arguments(argv, message, capsys):
    import evaluate

    with pytest.raises(SystemExit) as exc:
        evaluate.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "x"], "error: --out: only with --real or for inpainting runs"),
        (["--heldout"], "error: --heldout: only for inpainting runs; models/default holds a segmentation model"),
    ],
)
def test_options_of_other_evaluations_are_refused_for_a_segmentation_model(argv, message, capsys):
    import evaluate

    assert evaluate.main(["--run", "models/default", *argv]) == 2
    assert capsys.readouterr().err.strip() == message


def test_evaluate_real_on_a_folder_with_the_shipped_model(tmp_path, capsys):
    """The command as a user runs it: the shipped model and astroscrappy on a folder of FITS frames."""
    import shutil

    import evaluate

    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(DATA / "real_cutout.fits", frames / "cutout.fits")
    before = (frames / "cutout.fits").read_bytes()
    assert (
        evaluate.main(
            [
                "--real",
                str(frames),
                "--out",
                str(tmp_path / "out"),
                "--peers",
                "astroscrappy",
                "--draws",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "out" / "real_metrics.json").read_text())
    assert set(doc["frames"]) == {"cutout"} and set(doc["peers"]) == {"astroscrappy"}
    assert doc["frames"]["cutout"]["injected"]["CR"]["positives"] > 0
    assert (tmp_path / "out" / "cutout.png").is_file()
    assert (frames / "cutout.fits").read_bytes() == before  # the input is only read
    assert "| model |" in capsys.readouterr().out


def test_diagnosis_noise_figures_tell_white_from_correlated_noise():
    from scipy import ndimage

    from bench.real_diagnosis import group_snr_counts, noise_figures
    from foundation.normalize import normalize_image

    rng = np.random.default_rng(1)
    white = (1000.0 + rng.normal(0, 10, (256, 256))).astype(np.float32)
    smooth = (1000.0 + 10 * ndimage.uniform_filter(rng.normal(0, 1, (256, 256)), 2) * 2).astype(np.float32)
    camera = Camera(gain=10.0, read_noise=0.0)  # Poisson: sqrt(1000 / 10) = 10 ADU
    for image, lo, hi in ((white, -0.05, 0.05), (smooth, 0.3, 0.8)):
        figures = noise_figures(image, camera, normalize_image(image, box=64))
        assert lo < figures["lag1_rows"] < hi and lo < figures["lag1_columns"] < hi
    white_figures = noise_figures(white, camera, normalize_image(white, box=64))
    assert abs(white_figures["careful_sigma"] / 10 - 1) < 0.05 and abs(white_figures["poisson_sigma"] - 10) < 0.01
    mask = np.zeros((20, 20), bool)
    mask[2, 2] = mask[10, 10:13] = True
    snr = np.zeros((20, 20))
    snr[2, 2], snr[10, 11] = 7.0, 300.0
    assert group_snr_counts(mask, snr).tolist() == [1, 0, 0, 0, 1]
