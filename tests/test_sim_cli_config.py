"""python -m data_sim, and config validation with the full key path in every error."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from data_sim.config import load_sim_section
from data_sim.export import read_sample_file
from foundation.classes import CLASS_NAMES
from foundation.typed_config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_cli_writes_fits_and_montage(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("classes: [CR, HCL, BCL, BLN, HPX, BPX, PER, TRL, FRG, OBJ, SAT, SPK, GHO]\ndata: {tile: 40}\n")
    out = tmp_path / "examples"
    result = subprocess.run(
        [sys.executable, "-m", "data_sim", "--config", str(cfg), "--n", "3", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("sample_*.fits"))
    assert len(files) == 3
    image, truth, classes = read_sample_file(files[0])
    assert classes == CLASS_NAMES and truth.shape == (13, 40, 40) and image.shape == (40, 40)
    with fits.open(files[0]) as hdul:
        assert hdul["TRUTH"].header["CLASS1"] == "CR" and hdul["TRUTH"].header["CLASS10"] == "OBJ"
        assert [hdul["TRUTH"].header[f"CLASS{k}"] for k in (11, 12, 13)] == ["SAT", "SPK", "GHO"]
        assert "GAIN" in hdul[0].header and "FAMILY" in hdul[0].header
    assert (out / "montage.png").stat().st_size > 1000
    # An existing sample is kept unless --overwrite.
    again = subprocess.run(
        [sys.executable, "-m", "data_sim", "--config", str(cfg), "--n", "1", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1 and "sample_0000.fits: exists" in again.stderr


def test_cli_finds_a_bare_config_name_in_configs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data_sim", "--config", "smoke.yaml", "--n", "1", "-o", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sample_0000.fits").exists()


def test_cli_reports_a_missing_config(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data_sim", "--config", "nope.yaml", "-o", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "'nope.yaml' not found" in result.stderr


def test_shipped_configs_load():
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        load_sim_section(path)


@pytest.mark.parametrize(
    "mapping,message",
    [
        ({"data": {"tiel": 64}}, r"data\.tiel: unknown key"),
        ({"data": {"tile": "big"}}, r"data\.tile: expected an integer, got 'big'"),
        ({"data": {"tile": 4}}, r"data\.tile: must be >= 8 px, got 4"),
        ({"data": {"contaminants": {"CR": {"probability": 1.5}}}}, r"data\.contaminants\.CR\.probability: .* got 1\.5"),
        (
            {"data": {"contaminants": {"CR": {"per_mpix": [10]}}}},
            r"data\.contaminants\.CR\.per_mpix: expected 2 values",
        ),
        ({"data": {"contaminants": {"TRL": {"count": [3, 1]}}}}, r"data\.contaminants\.TRL\.count: low end 3"),
        ({"data": {"contaminants": {"XYZ": {}}}}, r"data\.contaminants\.XYZ: unknown key"),
        ({"data": {"families": {"f": {"detector": "cmos"}}}}, r"data\.families\.f\.detector: must be one of"),
        (
            {"data": {"families": {"f": {"probabilities": {"OBJ": 0.5}}}}},
            r"data\.families\.f\.probabilities\.OBJ: unknown contaminant",
        ),
        ({"data": {"families": {"f": {"sky_subtracted": "yes"}}}}, r"data\.families\.f\.sky_subtracted: expected true"),
        ({"classes": ["OBJ", "CR"]}, r"classes: classes must follow the contract order"),
        ({"classes": ["CR", "DUST"]}, r"classes: unknown class 'DUST'"),
    ],
)
def test_config_errors_name_the_key_path(mapping, message):
    with pytest.raises(ConfigError, match=message):
        load_sim_section(mapping)


def test_defaults_fill_what_the_config_leaves_out():
    sec = load_sim_section({"data": {"families": {"f": {"fwhm": [2.0, 2.0]}}}})
    fam = sec.data.families["f"]
    assert fam.fwhm == (2.0, 2.0) and fam.detector == "ccd"
    assert sec.classes == CLASS_NAMES
    assert np.isclose(sec.data.contaminants.CR.probability, 1.0)


def test_a_config_can_override_a_base_file(tmp_path):
    (tmp_path / "base.yaml").write_text("classes: [CR, OBJ]\ndata: {tile: 48, truth_nsigma: 2.0}\n")
    (tmp_path / "variant.yaml").write_text("base: base.yaml\nclasses: [CR]\ndata: {tile: 64}\n")
    sec = load_sim_section(tmp_path / "variant.yaml")
    assert sec.classes == ("CR",) and sec.data.tile == 64 and sec.data.truth_nsigma == 2.0
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_sim_section(tmp_path / "loop.yaml")
