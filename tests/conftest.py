"""Shared fixtures. Every test runs with a throw-away embedding cache; registry assets stay
in the real assets folder (fetched once, sha256-checked) so slow tests don't re-download."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from semalign.paths import assets_dir


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Pin the assets folder before moving the cache, so assets are shared across tests.
    monkeypatch.setenv("SEMALIGN_ASSETS", str(assets_dir()))
    monkeypatch.setenv("SEMALIGN_CACHE", str(tmp_path_factory.mktemp("semalign-cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def asset():
    """``asset("minilm-l6") -> Path``: fetch (or reuse) a registry asset."""
    from semalign.assets import fetch

    return fetch


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
