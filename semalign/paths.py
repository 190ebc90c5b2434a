"""Where semalign keeps things. Each location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of computed artefacts (embeddings, fitted stand-ins, unpacked assets).

    ``SEMALIGN_CACHE`` overrides; default ``~/.cache/semalign``.
    """
    root = os.environ.get("SEMALIGN_CACHE") or Path.home() / ".cache" / "semalign"
    return Path(root).expanduser()


def fits_dir() -> Path:
    """The stand-ins fitted in this project (``semalign.encoders.standins``): one file or folder
    per recipe, keyed by everything that determines its weights.

    ``SEMALIGN_FITS`` overrides; default ``<cache_dir>/standins``. Kept apart from the embedding
    cache so that the slow tests of the real stand-ins can read the fits the book made, while
    every test still embeds into a throw-away cache.
    """
    d = os.environ.get("SEMALIGN_FITS")
    return Path(d).expanduser() if d else cache_dir() / "standins"


def assets_dir() -> Path:
    """Unpacked registry assets (model weights and data shipped inside PyPI wheels).

    ``SEMALIGN_ASSETS`` overrides; default ``<cache_dir>/assets``. Kept apart from the
    embedding cache so that tests can use a throw-away cache without re-fetching ~700 MB.
    """
    d = os.environ.get("SEMALIGN_ASSETS")
    return Path(d).expanduser() if d else cache_dir() / "assets"


def models_dir() -> Path | None:
    """``SEMALIGN_MODELS_DIR``: a folder holding hub models as ``<org>/<name>`` sub-folders."""
    d = os.environ.get("SEMALIGN_MODELS_DIR")
    return Path(d).expanduser() if d else None


def data_root() -> Path | None:
    """``SEMALIGN_DATA``: a folder holding the user's local dataset copies, one sub-folder each."""
    d = os.environ.get("SEMALIGN_DATA")
    return Path(d).expanduser() if d else None
