"""Where the project's own files are: in a clone, at the repository's root; once installed, in the package.

``pip install .`` puts ``configs/`` and the shipped ``models/`` inside the ``segnet`` package
(``segnet._configs``, ``segnet._shipped``; see pyproject.toml). A clone is recognised by its
``pyproject.toml`` beside these folders, so an installed copy never picks up an unrelated
``models/`` folder in site-packages. Runs go to ``runs/`` in the clone, or in the current folder
when installed.
"""

from __future__ import annotations

from importlib import util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IN_CLONE = (ROOT / "pyproject.toml").is_file() and (ROOT / "configs").is_dir()


def _packaged(package: str) -> Path:
    """The folder of a data package (a namespace package: it has no __init__.py)."""
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package}: not installed with this copy of the project (pip install .)")
    return Path(list(spec.submodule_search_locations)[0])


def configs_dir() -> Path:
    """The folder of the run configs (a bare ``--config`` name is looked up here)."""
    return ROOT / "configs" if IN_CLONE else _packaged("segnet._configs")


def models_dir() -> Path:
    """The folder of the shipped models (``default/`` is the one used when none is named)."""
    return ROOT / "models" if IN_CLONE else _packaged("segnet._shipped")


def runs_dir() -> Path:
    """Where new runs go and where ``evaluate`` looks for the latest one."""
    return ROOT / "runs" if IN_CLONE else Path.cwd() / "runs"
