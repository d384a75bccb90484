"""Typed run configuration: the whole YAML file of ``train.py``, validated on load.

Sections: ``classes`` (names, CONTRACT order), ``data`` (the simulator, see
``data_sim.config``), ``model`` (the SegNet), ``train`` (optimisation),
``distribute`` (scale-out on existing engines) and, for an inpainting run only,
``inpaint`` (``segnet.training.inpaint_config``; ``model`` is then the inpainting
network's). Every error names the full key path and the value received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from data_sim.config import DataSection, SimConfig, parse_classes
from foundation.classes import CLASS_NAMES
from foundation.resources import configs_dir
from foundation.typed_config import ConfigError, load_dataclass, read_yaml, to_plain
from segnet.training.inpaint_config import InpaintConfig

CONFIG_DIR = configs_dir()


@dataclass(frozen=True)
class ModelConfig:
    depth: int = 3  # pooling steps; inputs are padded to a multiple of 2**depth
    base_filters: int = 16  # filters of the first level, doubled at every level
    convs_per_level: int = 2
    batch_norm: bool = True
    kernel_size: int = 3

    def validate(self, path: str):
        for name in ("depth", "base_filters", "convs_per_level", "kernel_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{path}.{name}: must be >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"{path}.kernel_size: must be odd, got {self.kernel_size}")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0  # seeds the data (per split), the weights and the run
    batch_size: int = 8
    epochs: int = 10
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3  # Adam
    schedule: Literal["constant", "cosine"] = "cosine"  # cosine decays to 1% over all steps
    warmup_steps: int = 0  # linear warm-up from 0
    validation_samples: int = 32  # fixed, seeded validation tiles (split "validation")
    fraction_samples: int = 100  # tiles (split "fractions") used to measure class fractions
    max_weight_ratio: float = 0.0  # cap on class weight / background weight (0: no cap)
    data_workers: int = 0  # threads that build batches (0: the training thread)
    deterministic: bool = True  # TensorFlow op determinism (resume reproduces a run exactly)
    init_from: str | None = None  # start from a trained model's weights (run folder, model folder or .keras;
    # layers by name, head columns by class: segnet/training/warm_start.py)

    def validate(self, path: str):
        for name in ("batch_size", "epochs", "steps_per_epoch", "validation_samples", "fraction_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{path}.{name}: must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"{path}.learning_rate: must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0 or self.data_workers < 0:
            raise ConfigError(
                f"{path}.warmup_steps / data_workers: must be >= 0, got {self.warmup_steps} / {self.data_workers}"
            )
        if self.max_weight_ratio < 0:
            raise ConfigError(f"{path}.max_weight_ratio: must be >= 0, got {self.max_weight_ratio}")


@dataclass(frozen=True)
class DistributeConfig:
    """Scale-out on existing engines; nothing hand-made.

    - ``none``: one device.
    - ``mirrored``: ``tf.distribute.MirroredStrategy`` over ``devices`` (default: all GPUs, else the CPU).
    - ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``.
    - ``data_parallel``: ``keras.distribution.DataParallel`` (JAX backend) over ``devices`` (default: all).
    """

    strategy: Literal["none", "mirrored", "multi_worker", "data_parallel"] = "none"
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    classes: tuple[str, ...] = CLASS_NAMES
    data: SimConfig = field(default_factory=SimConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    inpaint: InpaintConfig | None = None  # present: the run trains the inpainting network

    def validate(self, path: str):
        parse_classes(list(self.classes), "classes")
        if self.inpaint is not None:
            missing = [n for n in self.inpaint.replace if n not in self.classes]
            if missing:
                raise ConfigError(f"inpaint.replace: {missing[0]!r} is not in classes {list(self.classes)}")
            if self.train.init_from:
                raise ConfigError(
                    f"train.init_from: only a segmentation run can start from a trained model, and this config "
                    f"has an inpaint: section; got {self.train.init_from!r} (set it to null)"
                )

    @property
    def task(self) -> str:
        """``"inpaint"`` for an inpainting run, else ``"segment"``."""
        return "segment" if self.inpaint is None else "inpaint"

    @property
    def data_section(self) -> DataSection:
        return DataSection(classes=self.classes, data=self.data)


def load_run_config(source: str | Path | dict) -> tuple[RunConfig, Path | None]:
    """Load and validate a run config; a bare name is looked up in ``configs/``.

    Returns the config and the file it came from (None for a mapping).
    """
    if isinstance(source, dict):
        return load_dataclass(RunConfig, source), None
    mapping, path = read_yaml(source, search_dir=CONFIG_DIR)
    return load_dataclass(RunConfig, mapping), path


def dump_run_config(config: RunConfig) -> str:
    """The resolved config (every default filled in) as YAML; loads back to an equal config."""
    return yaml.safe_dump(to_plain(config), sort_keys=False)
