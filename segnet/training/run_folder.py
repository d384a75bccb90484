"""A run folder that describes itself.

runs/<config>-<YYYYmmdd-HHMMSS>/
    config.yaml            resolved config (every default filled in)
    classes.yaml           output class names, in channel order
    class_fractions.yaml   measured pixel fractions (loss weights come from them; not for inpainting runs)
    code_version.yaml      git commit, dirty flag, library versions, Keras backend
    history.csv            one row per epoch: loss, val_loss, learning rate, seconds
    state.yaml             epochs completed (what --resume continues from)
    checkpoints/last.keras model + optimizer state after the last completed epoch
    model.keras            the trained model, when the run has finished
    tensorboard/           TensorBoard logs (TensorFlow backend)
"""

from __future__ import annotations

import csv
import datetime
import platform
import subprocess
from pathlib import Path

import yaml

from foundation.atomic import atomic_path
from foundation.resources import ROOT, models_dir, runs_dir
from segnet.training.config import RunConfig, dump_run_config, load_run_config

RUNS_DIR = runs_dir()


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _git(*args) -> str | None:
    """Output of a git command in this repository, or None where git or the repository is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def software_version() -> str:
    """``git describe --always --dirty`` of this code, or "unknown"."""
    return _git("describe", "--always", "--dirty") or "unknown"


def code_version() -> dict:
    """Where the code came from: git commit and dirty flag, and library versions."""
    import keras
    import numpy

    info = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": numpy.__version__,
    }
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    except ImportError:
        info["tensorflow"] = None
    info["git_commit"] = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no") if info["git_commit"] else None
    info["git_dirty"] = None if dirty is None else bool(dirty)
    return info


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- creation and opening -------------------------------------------------
    @classmethod
    def create(cls, config: RunConfig, *, name: str, path: str | Path | None = None) -> "RunFolder":
        if path is None:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            path = RUNS_DIR / f"{name}-{stamp}"
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"--run-dir: {path} exists and is not empty (use --resume {path} to continue it)")
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        run = cls(path)
        _write_text_atomic(path / "config.yaml", dump_run_config(config))
        _write_text_atomic(path / "classes.yaml", yaml.safe_dump(list(config.classes)))
        _write_text_atomic(path / "code_version.yaml", yaml.safe_dump(code_version(), sort_keys=False))
        run.write_state(epochs_done=0)
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise FileNotFoundError(f"--resume: {path} is not a run folder (no config.yaml)")
        if not (path / "state.yaml").is_file():
            raise FileNotFoundError(
                f"--resume: {path} is not a training run (no state.yaml: a shipped model "
                f"folder cannot be resumed; start a run from it with train.init_from)"
            )
        return cls(path)

    # -- contents -------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        return load_run_config(self.path / "config.yaml")[0]

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.keras"

    @property
    def model_file(self) -> Path:
        return self.path / "model.keras"

    @property
    def epochs_done(self) -> int:
        state = yaml.safe_load((self.path / "state.yaml").read_text()) or {}
        return int(state.get("epochs_done", 0))

    def write_state(self, *, epochs_done: int) -> None:
        _write_text_atomic(self.path / "state.yaml", yaml.safe_dump({"epochs_done": int(epochs_done)}))

    def read_fractions(self) -> dict | None:
        path = self.path / "class_fractions.yaml"
        return yaml.safe_load(path.read_text()) if path.is_file() else None

    def write_fractions(self, fractions: dict) -> None:
        _write_text_atomic(self.path / "class_fractions.yaml", yaml.safe_dump(fractions, sort_keys=False))

    def history(self) -> list[dict]:
        path = self.path / "history.csv"
        if not path.is_file():
            return []
        with path.open() as f:
            return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in csv.DictReader(f)]

    # -- progress ---------------------------------------------------------------
    def record_epoch(self, model, epoch: int, metrics: dict) -> None:
        """Append the epoch's metrics, checkpoint the model and optimizer, then mark the epoch done.

        The checkpoint is written to a temporary file and renamed, and the state
        is updated last: an interruption at any point leaves a consistent folder.
        """
        rows = [r for r in self.history() if r["epoch"] < epoch]  # a re-run epoch replaces its row
        rows.append({"epoch": int(epoch), **{k: float(v) for k, v in metrics.items()}})
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with atomic_path(self.path / "history.csv") as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        with atomic_path(self.checkpoint, suffix=".keras") as tmp:
            model.save(tmp)
        self.write_state(epochs_done=epoch + 1)

    def finish(self, model) -> None:
        with atomic_path(self.model_file, suffix=".keras") as tmp:
            model.save(tmp)


def run_task(folder: str | Path) -> str:
    """``"inpaint"`` if the folder's config.yaml has an ``inpaint:`` section, else ``"segment"``."""
    path = Path(folder) / "config.yaml"
    try:
        mapping = yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError:
        mapping = None
    return "inpaint" if isinstance(mapping, dict) and mapping.get("inpaint") is not None else "segment"


def latest_run(root: str | Path = RUNS_DIR, *, task: str = "segment") -> Path | None:
    """The most recently modified run folder of ``task`` under ``root`` that holds a model or a checkpoint."""
    root = Path(root)
    if not root.is_dir():
        return None
    runs = [
        p
        for p in root.iterdir()
        if ((p / "model.keras").is_file() or (p / "checkpoints" / "last.keras").is_file()) and run_task(p) == task
    ]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


DEFAULT_MODEL_DIR = models_dir() / "default"


class NoModelError(FileNotFoundError):
    """No trained model where one was looked for; the message says how to get one."""


def read_mapping(path: Path, what: str) -> dict:
    """A YAML file that must hold a mapping (thresholds, priors, calibration); ValueError names ``what`` and path."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{what} {path}: cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path}: expected a mapping of names to values, got {data!r}")
    return data


def resolve_model(where: str | Path | None = None) -> tuple[Path, Path]:
    """Find a trained model: (the .keras file, the folder whose files describe it).

    ``where`` is a run folder, a ``.keras`` file, or None: the latest segmentation
    run under ``runs/``, else the shipped default model ``models/default``. ``models/NAME``
    that is not a folder here names a shipped model (the package's, once installed).
    """
    if where is None:
        folder = latest_run() or (DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "model.keras").is_file() else None)
        if folder is None:
            raise NoModelError(
                "no trained model: no run under runs/ and no shipped model in models/default; "
                "train one with: python train.py --config multiclass.yaml"
            )
        where = folder
    where = Path(where)
    if not where.exists() and where.parts[:1] == ("models",) and (models_dir() / Path(*where.parts[1:])).exists():
        where = models_dir() / Path(*where.parts[1:])  # "models/default" names the shipped model wherever installed
    if where.suffix == ".keras":
        if not where.is_file():
            raise NoModelError(f"{where}: no such model file")
        # A run's checkpoint is described by its run folder (config, calibration, thresholds), not by checkpoints/.
        run = where.parent.parent
        if where.parent.name == "checkpoints" and (run / "config.yaml").is_file():
            return where, run
        return where, where.parent
    for candidate in (where / "model.keras", where / "checkpoints" / "last.keras"):
        if candidate.is_file():
            return candidate, where
    raise NoModelError(f"{where}: holds no model.keras nor checkpoints/last.keras")


def load_model(path: str | Path):
    """Load a .keras model with the project's layers and loss registered."""
    from foundation.process import import_keras

    keras = import_keras()

    import segnet.network.inpainting  # noqa: F401  (registers the inpainting loss)
    import segnet.network.layers  # noqa: F401  (registers the custom layers)
    import segnet.training.losses  # noqa: F401  (registers the loss)

    return keras.models.load_model(path)
