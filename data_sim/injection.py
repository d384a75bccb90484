"""What a simulated tile and a real one share: which contaminants a tile gets, injecting them, the result.

``generator`` (simulated tiles) and ``real_frames`` (real backgrounds) both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foundation.classes import INJECTED

from .config import FamilyConfig, SimConfig
from .contaminants import INJECTORS, Frame


def contaminant_probability(config: SimConfig, family: FamilyConfig | None, name: str) -> float:
    if family is not None and name in family.probabilities:
        return family.probabilities[name]
    return getattr(config.contaminants, name).probability


def draw_presence(config: SimConfig, family: FamilyConfig | None, rng: np.random.Generator) -> dict[str, bool]:
    """Which contaminants a tile gets. One draw per injected class, always, so every stream is used alike."""
    draws = rng.random(len(INJECTED))
    return {name: bool(u < contaminant_probability(config, family, name)) for name, u in zip(INJECTED, draws)}


def inject(image: np.ndarray, frame: Frame, config: SimConfig, classes, rngs, present: dict, masks: dict) -> np.ndarray:
    """Apply the injectors of ``classes`` that are present, in order; fill ``masks``."""
    for name in classes:
        if present[name]:
            image, masks[name] = INJECTORS[name](image, frame, getattr(config.contaminants, name), rngs[name])
    return image


@dataclass
class SimulatedTile:
    """What ``simulate`` returns; ``clean`` and ``stars`` only when asked for."""

    image: np.ndarray  # (ny, nx) float32 ADU, contaminants injected
    masks: dict  # class name -> (ny, nx) bool truth
    saturated: np.ndarray  # (ny, nx) bool
    header: dict
    clean: np.ndarray | None = None  # (ny, nx) float32 ADU, the same tile without contaminants
    clean_saturated: np.ndarray | None = None  # (ny, nx) bool
    stars: np.ndarray | None = None  # (n, 3) float64: y, x (px), flux (ADU, before vignetting)
    unknown: np.ndarray | None = None  # (ny, nx) bool: truth unknown (a real frame's own contaminants)
