"""Registry assets: checksum refusal, wheelhouse use, atomic unpack, re-unpack of a stale folder."""

from __future__ import annotations

import zipfile

import pytest

from semalign import assets
from semalign._io import sha256_file


@pytest.fixture
def fake_asset(tmp_path, monkeypatch):
    """A one-file wheel registered as asset 'toy', served from a wheelhouse folder."""
    house = tmp_path / "house"
    house.mkdir()
    wheel = house / "toy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("toy/data.txt", "hello")
    toy = assets.Asset("toy", "toy", "1.0", wheel.name, sha256_file(wheel))
    monkeypatch.setattr(assets, "registry", lambda: {"toy": toy})
    monkeypatch.setenv("SEMALIGN_WHEELHOUSE", str(house))
    monkeypatch.setenv("SEMALIGN_ASSETS", str(tmp_path / "assets"))
    return toy, wheel


def test_fetch_unpacks_from_wheelhouse_and_marks_complete(fake_asset):
    path = assets.fetch("toy")
    assert (path / "toy" / "data.txt").read_text() == "hello"
    assert assets.is_fetched("toy")


def test_wrong_checksum_is_refused_with_a_next_step(fake_asset):
    toy, wheel = fake_asset
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr("toy/extra.txt", "tampered")
    with pytest.raises(assets.AssetError, match="checksum mismatch.*semalign assets fetch toy"):
        assets.fetch("toy")
    assert not assets.asset_path("toy").exists(), "nothing half-unpacked is left behind"


def test_stale_folder_without_marker_is_unpacked_again(fake_asset):
    path = assets.fetch("toy")
    (path / assets.MARKER).unlink()
    (path / "toy" / "data.txt").write_text("corrupted")
    assert not assets.is_fetched("toy")
    assert (assets.fetch("toy") / "toy" / "data.txt").read_text() == "hello"


def test_unknown_asset_lists_known_names(fake_asset):
    with pytest.raises(assets.AssetError, match="unknown asset 'nope'.*toy"):
        assets.fetch("nope")


def test_declared_assets_are_pinned_wheels():
    for a in assets.registry().values():
        assert len(a.sha256) == 64 and a.wheel.endswith(".whl") and a.version in a.wheel
