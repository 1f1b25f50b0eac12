"""Every path the project uses, resolved from the package location, never from the CWD.

papermill runs kernels in the caller's working directory and nbval in the notebook's folder,
so nothing here may depend on ``os.getcwd()``.  Environment variables override the defaults:

- ``REPRO_DATA``        where the fetched data lives (default ``<root>/data``)
- ``REPRO_DATA_MIRROR`` a local mirror to copy data from (default ``<root>/../shared/data``
                        when that directory exists)
- ``REPRO_RUNS``        where training runs are stored (default ``<root>/runs``)
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (the directory holding ``repro/``)."""

CONFIGS = ROOT / "configs"
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"
MANIFESTS = ROOT / "data" / "manifests"
"""Committed manifests (sha256 and provenance of every data file)."""


def data_dir() -> Path:
    """Where fetched data lives (git-ignored): ``$REPRO_DATA`` or ``<root>/data``."""
    return Path(os.environ.get("REPRO_DATA", ROOT / "data")).expanduser().resolve()


def runs_dir() -> Path:
    """Where training runs live: ``$REPRO_RUNS`` or ``<root>/runs``."""
    return Path(os.environ.get("REPRO_RUNS", ROOT / "runs")).expanduser().resolve()


def default_mirror() -> Path | None:
    """The local data mirror: ``$REPRO_DATA_MIRROR``, else ``<root>/../shared/data`` if present."""
    env = os.environ.get("REPRO_DATA_MIRROR")
    if env:
        return Path(env).expanduser().resolve()
    candidate = (ROOT.parent / "shared" / "data").resolve()
    return candidate if candidate.is_dir() else None


def weights_dir() -> Path:
    return data_dir() / "weights"


def images_dir() -> Path:
    return data_dir() / "images"


NORMALISED_VGG19 = "vgg19_normalised_caffe_features_to_relu3_1.pth"


def normalised_vgg19_path() -> Path:
    """The local Gatys-normalised VGG-19 (conv1_1..conv3_1) weights file."""
    return weights_dir() / NORMALISED_VGG19


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (where a new file's folders would start)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
