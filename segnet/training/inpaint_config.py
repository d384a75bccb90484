"""The ``inpaint:`` section of a run config: what the inpainting network is trained to replace.

A run config with this section trains the inpainting network instead of the
SegNet (``train.py`` dispatches on it); ``classes``, ``data``, ``model`` and
``train`` keep their meaning (``train.fraction_samples`` and
``train.max_weight_ratio`` are not used: the loss is a masked MSE, or with
``huber_delta`` a masked Huber loss, ``network.MaskedMSE``).
"""

from __future__ import annotations

from dataclasses import dataclass

from foundation.classes import CONTAMINANTS
from foundation.typed_config import ConfigError


@dataclass(frozen=True)
class InpaintConfig:
    # Classes whose true masks are replaced. OBJ never is; SAT not by default: a saturated core filled in
    # would pass for a fainter, unsaturated star in photometry, where masking it is what is wanted.
    replace: tuple[str, ...] = tuple(c for c in CONTAMINANTS if c != "SAT")
    borrow_probability: float = 1.0  # chance a tile also gets another tile's mask laid over it
    borrow_max_fraction: float = 0.25  # a borrowed mask covering more of the tile is not used
    huber_delta: float | None = None  # None: squared error; else Huber beyond this error (the correction's units)
    hole_nsigma: float | None = None  # None: holes are the truth; else only where contaminants add >= this many sigma

    def validate(self, path: str):
        where = f"{path}.replace" if path else "replace"
        if not self.replace:
            raise ConfigError(f"{where}: at least one class is needed")
        bad = [n for n in self.replace if n not in CONTAMINANTS]
        if bad:
            raise ConfigError(f"{where}: {bad[0]!r} is not a contaminant class (known: {', '.join(CONTAMINANTS)})")
        if len(set(self.replace)) != len(self.replace):
            raise ConfigError(f"{where}: repeated class in {list(self.replace)}")
        if not 0.0 <= self.borrow_probability <= 1.0:
            raise ConfigError(
                f"{path}.borrow_probability: a probability must lie in [0, 1], got {self.borrow_probability}"
            )
        if not 0.0 < self.borrow_max_fraction <= 1.0:
            raise ConfigError(f"{path}.borrow_max_fraction: must lie in (0, 1], got {self.borrow_max_fraction}")
        if self.hole_nsigma is not None and not self.hole_nsigma > 0:
            raise ConfigError(f"{path}.hole_nsigma: must be > 0 or null, got {self.hole_nsigma}")
        if self.huber_delta is not None and not self.huber_delta > 0:
            raise ConfigError(f"{path}.huber_delta: must be > 0 or null, got {self.huber_delta}")
