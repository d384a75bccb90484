"""Shared by the tests: one smoke model trained per session, and the small frames and files they use.

A module that needs a trained run copies the session's (``smoke_run_copy``), so what one
module writes into its run (thresholds, a calibration) never reaches another.
"""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

ROOT = Path(__file__).resolve().parent.parent
#: predict.py's tile options for the small test frames: several tiles, so tiling is exercised.
SMALL = ["--tile", "64", "--margin", "16", "--blend", "8", "--batch-size", "4", "--quiet"]
#: A celestial WCS for a test frame's header; outputs must carry it.
WCS = {
    "WCSAXES": 2,
    "CTYPE1": "RA---TAN",
    "CTYPE2": "DEC--TAN",
    "CRPIX1": 20.0,
    "CRPIX2": 30.0,
    "CRVAL1": 83.82,
    "CRVAL2": -5.39,
    "CD1_1": -7e-5,
    "CD1_2": 0.0,
    "CD2_1": 0.0,
    "CD2_2": 7e-5,
}


def frame(shape=(90, 77), seed=0, hits=40) -> np.ndarray:
    """float32 sky of 300 ADU with noise 6 and ``hits`` bright pixels of 50-2000 ADU."""
    rng = np.random.default_rng(seed)
    image = 300 + 6 * rng.standard_normal(shape)
    image[rng.integers(0, shape[0], hits), rng.integers(0, shape[1], hits)] += rng.uniform(50, 2000, hits)
    return image.astype(np.float32)


def write(path, data, header=None) -> Path:
    """``data`` as the primary HDU of a new FITS file (``header``: a dict of cards)."""
    fits.PrimaryHDU(data, header=fits.Header(header or {})).writeto(path)
    return path


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """``configs/smoke.yaml`` trained once for the whole session (seconds); copy it before writing into it."""
    from segnet.commands import train

    run = tmp_path_factory.mktemp("session") / "smoke"
    assert train.main(["--config", "smoke.yaml", "--run-dir", str(run), "--quiet"]) == 0
    return run


@pytest.fixture(scope="module")
def smoke_run_copy(smoke_run, tmp_path_factory) -> Path:
    """This module's own copy of the session's smoke run."""
    run = tmp_path_factory.mktemp("runs") / "smoke"
    shutil.copytree(smoke_run, run)
    return run
