"""Shared fixtures. Every test runs with a throw-away embedding cache; registry assets stay
in the real assets folder (fetched once, sha256-checked) so slow tests don't re-download, and
the slow tests of the book's real stand-ins (fixture ``book_fits``) read the fits the book made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from semalign.paths import assets_dir, fits_dir

#: The fitted stand-ins of this machine's book (``semalign.paths.fits_dir`` before any test
#: moves the cache), read by the slow tests that ask for ``book_fits``.
BOOK_FITS = fits_dir()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Pin the assets folder before moving the cache, so assets are shared across tests.
    monkeypatch.setenv("SEMALIGN_ASSETS", str(assets_dir()))
    monkeypatch.setenv("SEMALIGN_CACHE", str(tmp_path_factory.mktemp("semalign-cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def book_fits(monkeypatch):
    """The book's real stand-ins from the fits ``semalign book`` made (fitted here, into the same
    place, when the book has not run yet): a slow test of a real stand-in's properties then tests
    the weights the book used, instead of refitting them for minutes. Only for the default
    recipes the book uses, and only for tests that read them — the fit, cache and damage logic
    is tested on tiny recipes in throw-away caches."""
    monkeypatch.setenv("SEMALIGN_FITS", str(BOOK_FITS))
    return BOOK_FITS


@pytest.fixture
def asset():
    """``asset("minilm-l6") -> Path``: fetch (or reuse) a registry asset."""
    from semalign.assets import fetch

    return fetch


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
