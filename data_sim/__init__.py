"""Simulated training data: clean COSMIC-DANCE-like tiles with every contaminant injected.

Layout: ``config`` (typed settings), ``camera`` (instrument and detector
physics), ``psf`` and ``scene`` (the clean sky), ``contaminants/`` (one injector
per class), ``real_frames`` (injection into the user's clean FITS frames),
``generator`` (deterministic samples, optionally in worker processes) and
``export`` (FITS and PNG montage). ``python -m data_sim`` writes examples.
"""

from foundation.classes import CLASS_NAMES, CONTAMINANTS

from .config import DataSection, SimConfig, load_sim_section
from .generator import Sample, SampleSource, iter_pairs, iter_samples

__all__ = [
    "CLASS_NAMES",
    "CONTAMINANTS",
    "DataSection",
    "SimConfig",
    "load_sim_section",
    "Sample",
    "SampleSource",
    "iter_pairs",
    "iter_samples",
]
