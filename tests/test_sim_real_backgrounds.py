"""Real backgrounds in training: the development set's training frames, turned and scaled, own contaminants unknown."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from data_sim.config import load_sim_section
from data_sim.generator import SampleSource
from data_sim.real_frames import DIHEDRAL, RealFrameError, turn
from foundation.classes import INJECTED
from segnet.training.dataset import make_batch

DATA = Path(__file__).parent / "data"
OFF = {name: {"probability": 0.0} for name in INJECTED}
HIT = (40, 100)  # where a cosmic-ray-like spot is planted in the cut-out (away from its stars)
OVERSCAN = [0, 128, 122, 128]  # (y0, y1, x0, x1): a strip the devset says holds no sky
DEAD = (slice(70, 90), slice(12, 24))  # and a dead patch (L.A.Cosmic flags no negative outlier)


def cutout():
    with fits.open(DATA / "real_cutout.fits") as hdul:  # 128 x 128 px of a training frame (DSS plate)
        return hdul[0].data.astype(np.float32), hdul[0].header.copy()


def devset(tmp_path, *, hit=True):
    """A development set of two frames: the cut-out (split train) and a turned copy (split eval)."""
    image, header = cutout()
    if hit:
        image = image.copy()
        image[HIT] += 4000.0
        image[HIT[0], HIT[1] + 1] += 2500.0
        image[DEAD] = 0.0
    folder = tmp_path / "frames"
    folder.mkdir()
    fits.PrimaryHDU(image, header=header).writeto(folder / "cut_train.fits")
    fits.PrimaryHDU(np.rot90(image).copy(), header=header).writeto(folder / "cut_eval.fits")
    camera = {"gain": 1.0, "read_noise": 5.0, "bias": 0.0, "saturation": 32767.0, "detector": "ccd"}
    import hashlib

    frames = {
        name: {
            "split": split,
            "package": "p",
            "path": f"{name}.fits",
            "camera": camera,
            "sha256": hashlib.sha256((folder / f"{name}.fits").read_bytes()).hexdigest(),
            "structure": {"overscan": OVERSCAN, "quadrant_step": [0, 64, 0, 128]},
        }
        for name, split in (("cut_train", "train"), ("cut_eval", "eval"))
    }
    path = tmp_path / "frames.yaml"
    path.write_text(yaml.safe_dump({"packages": {"p": {"manager": "pypi", "version": "1"}}, "frames": frames}))
    return path, folder


def section(real, tile=64, contaminants=None):
    return load_sim_section(
        {"data": {"tile": tile, "families": {}, "real_frames": real, "contaminants": contaminants or OFF}}
    )


def test_devset_mode_takes_its_training_frames_only(tmp_path):
    path, _ = devset(tmp_path)
    source = SampleSource(section({"devset": str(path), "flips": True}), 0)
    names = {source[i].header["REALFILE"][0] for i in range(8)}
    assert names == {"cut_train.fits"}


def test_an_evaluation_frame_is_refused_even_renamed(tmp_path, monkeypatch):
    from data_sim import real_frames

    path, folder = devset(tmp_path)
    monkeypatch.setattr(real_frames, "DEFAULT_DEVSET", path)  # the repository's list guards every glob
    with pytest.raises(
        RealFrameError, match=r"cut_eval.fits: is the evaluation frame 'cut_eval'.*never enter training"
    ):
        SampleSource(section({"glob": str(folder / "*.fits")}), 0)[0]
    shutil.copy(folder / "cut_eval.fits", tmp_path / "renamed.fits")  # recognised by its bytes, not its name
    with pytest.raises(RealFrameError, match="renamed.fits: is the evaluation frame 'cut_eval'"):
        SampleSource(section({"glob": str(tmp_path / "renamed.fits")}), 0)[0]
    assert SampleSource(section({"glob": str(folder / "cut_train.fits")}), 0)[0].image.shape == (64, 64)


def test_missing_devset_frames_say_how_to_fetch_them(tmp_path):
    path, folder = devset(tmp_path)
    (folder / "cut_train.fits").unlink()
    with pytest.raises(RealFrameError, match=r"cut_train.fits is missing; fetch .* python data/real/fetch.py"):
        SampleSource(section({"devset": str(path)}), 0)[0]


def test_turns_and_flux_scaling_are_exact_without_noise(tmp_path):
    path, _ = devset(tmp_path, hit=False)
    image, _ = cutout()
    source = SampleSource(
        section({"devset": str(path), "flips": True, "flux_scale": [0.5, 2.0]}, tile=128), 3, noise=False
    )
    seen = set()
    for i in range(12):
        sample = source[i]
        which, scale = sample.header["REALTURN"][0], sample.header["REALSCAL"][0]
        seen.add(which)
        np.testing.assert_allclose(sample.image, turn(image, which) * np.float32(scale), rtol=1e-5)
    assert len(seen) >= 5 and len(DIHEDRAL) == 8
    assert {tuple(np.rot90(np.arange(4).reshape(2, 2), k).ravel()) for k in range(4)} <= {
        tuple(turn(np.arange(4).reshape(2, 2), w).ravel()) for w in range(8)
    }


def test_own_contaminants_carry_no_truth_and_no_loss_weight(tmp_path):
    path, _ = devset(tmp_path)
    source = SampleSource(section({"devset": str(path), "ignore_own": True, "ignore_grow": 2}, tile=128), 0)
    sample = source[0]
    assert sample.header["REALTURN"][0] == 0 and sample.unknown is not None
    unknown = sample.unknown
    # The planted hit and dead patch and 2 px around them are unknown; most of the frame is not
    # (its stars stay known).
    assert unknown[HIT] and unknown[HIT[0] + 2, HIT[1]] and unknown[HIT[0], HIT[1] + 3]
    assert unknown[DEAD].all() and unknown[80, 25] and not unknown[80, 28]
    assert unknown[:, 122:].all() and unknown[:, :122].mean() < 0.05  # the overscan; a quadrant step is sky
    assert unknown.mean() < 0.1
    assert sample.truth_of("OBJ")[~unknown].any()
    n = len(source.classes)
    _, y = make_batch([sample], np.ones(n, np.float32), 0.5)
    assert np.all(y[0, ..., -1][unknown] == 0) and np.all(y[0, ..., -1][~unknown & ~sample.saturated] > 0)


def test_injection_into_real_backgrounds_has_truth(tmp_path):
    path, _ = devset(tmp_path)
    on = {name: {"probability": 1.0} for name in INJECTED}
    on["CR"]["per_mpix"] = [3000, 3000]
    source = SampleSource(
        section({"devset": str(path), "flips": True, "ignore_own": True}, tile=128, contaminants=on), 1
    )
    sample = source[0]
    assert sample.truth_of("CR").any() and sample.truth_of("HCL").any()
    assert sample.header["HAS_CR"][0]


def test_the_cli_says_in_one_line_that_the_frames_must_be_fetched(tmp_path):
    import subprocess
    import sys

    path, folder = devset(tmp_path)
    (folder / "cut_train.fits").unlink()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"tile": 64, "families": {}, "real_frames": {"devset": str(path)}}}))
    result = subprocess.run(
        [sys.executable, "-m", "data_sim", "--config", str(cfg), "--n", "1", "-o", str(tmp_path / "out")],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: data.real_frames.devset:")
    assert "Traceback" not in result.stderr and "python data/real/fetch.py" in result.stderr


def test_evaluations_take_the_evaluation_frames_and_only_when_asked(tmp_path):
    path, _ = devset(tmp_path)
    real = section({"devset": str(path), "flips": True})
    assert {SampleSource(real, 0, real_split="eval")[i].header["REALFILE"][0] for i in range(4)} == {"cut_eval.fits"}
    assert {SampleSource(real, 0)[i].header["REALFILE"][0] for i in range(4)} == {"cut_train.fits"}
    with pytest.raises(RealFrameError, match="split: must be 'train' or 'eval', got 'test'"):
        SampleSource(real, 0, real_split="test")[0]


@pytest.mark.parametrize("which", range(8))
def test_turned_points_land_where_the_turned_pixels_do(which):
    from data_sim.real_frames import turn_points

    image = np.zeros((9, 9))
    points = np.array([[1.0, 6.0], [7.0, 2.0]])
    for k, (y, x) in enumerate(points.astype(int)):
        image[y, x] = k + 1
    moved = turn_points(points, which, 9)
    turned = turn(image, which)
    for k, (y, x) in enumerate(moved):
        assert turned[int(y), int(x)] == k + 1


def test_real_tiles_carry_their_isolated_stars_where_the_turned_tile_has_them(tmp_path):
    path, _ = devset(tmp_path, hit=False)
    source = SampleSource(
        section({"devset": str(path), "flips": True, "ignore_own": True}, tile=128), 0, noise=False, clean=True
    )
    turns = set()
    for i in range(6):
        sample = source[i]
        turns.add(sample.header["REALTURN"][0])
        assert sample.stars is not None and len(sample.stars) > 0
        background = np.median(sample.clean)
        for y, x, flux in sample.stars:  # each star's position is a local peak of the clean tile
            assert flux > 0
            y, x = int(round(y)), int(round(x))
            box = sample.clean[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
            assert sample.clean[y, x] >= box.max() - 0.2 * (box.max() - background)
    assert len(turns) >= 3
