"""What every injector knows about the tile, and the rule for "affected pixel".

Rule (documented once, used by every additive injector): a pixel is affected
when the signal the contaminant adds is at least ``nsigma`` times the noise
the clean frame has at that pixel, ``sqrt(clean_e + read_noise**2)`` in
electrons (``|signal|`` for fringes, which add and subtract). Detector
defects (HCL, BCL, BLN, HPX, BPX) are exact: every defective pixel is in the
mask, however faint its effect on this particular tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """Context shared by the injectors. Maps are (ny, nx) float32 in electrons."""

    noise: np.ndarray  # 1-sigma noise of the clean frame at each pixel, e-
    sky: np.ndarray  # sky level at each pixel, e- (fringes scale with it)
    sky_noise: float  # typical 1-sigma sky noise, e-: the unit of 'nsigma' amplitudes
    fwhm: float  # PSF FWHM, px
    beta: float  # PSF Moffat index
    full_well: float  # e-
    detector: str  # "ccd" or "nir"
    readout_at_start: bool  # columns read out towards row 0
    nsigma: float  # truth threshold of the rule above
    stars: np.ndarray | None = None  # (n, 3) float64: y, x (px, tile frame, may lie off the tile), flux (e-,
    # total); the sources spikes and ghosts come from. None: not known

    @property
    def shape(self) -> tuple[int, int]:
        return self.noise.shape

    @property
    def mean_sky(self) -> float:
        return float(np.mean(self.sky))


def significant(signal: np.ndarray, frame: Frame) -> np.ndarray:
    """The truth rule: ``|signal| >= nsigma * noise`` (boolean map)."""
    return np.abs(signal) >= frame.nsigma * frame.noise


def capped_response(drawn: float, frame: Frame, min_deficit: float) -> float:
    """Low response, made low enough that the lost sky is at least ``min_deficit`` sky sigmas.

    A 0.7-response column on a faint sky would be invisible and its truth
    meaningless, so the response is pulled down (never below 0).
    """
    sky = max(frame.mean_sky, 1e-6)
    return float(np.clip(min(drawn, 1.0 - min_deficit * frame.sky_noise / sky), 0.0, 1.0))
