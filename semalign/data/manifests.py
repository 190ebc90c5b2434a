"""Dataset manifests (``data_manifests/*.yml``) and the check of a user's local copies.

A manifest says what a dataset is (name, version, homepage, licence, access), which files a
local copy must hold (with sha256 where the file is stable), what its label columns mean, its
splits and the subset recipes built from it. :func:`check` compares a local copy with its
manifest and says, for each file, present / missing / checksum failed, and the next step.

A file entry holds ``path`` and ``description``, and optionally ``sha256`` (null when the file
is not stable), ``columns`` / ``columns_exact``, ``glob: true`` (a pattern: present when a file
matches; recipes check the files they select themselves), ``required: false`` (an optional file:
shown as "missing (optional)" and never blocking) and ``also_in`` (where an identical copy
ships, e.g. inside a registry asset, named in the next step when the file is missing or damaged).

Where a copy lives, in order: ``locate(name, path=...)`` argument, the dataset's own
environment variable (``env_var`` in the manifest, e.g. ``SEMALIGN_MIMIC_CXR``), then
``$SEMALIGN_DATA/<default_dir>``. Bundled datasets (Open-i reports, SynthCXR) need none.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from semalign._io import sha256_file
from semalign.data.errors import DataError
from semalign.paths import data_root

ACCESS = ("credentialed", "registration", "open", "bundled", "generated")
REQUIRED_KEYS = {
    "name": str, "title": str, "version": str, "homepage": str, "sources": list, "licence": str,
    "access": str, "files": list, "labels": dict, "splits": dict, "recipes": dict,
}


def manifests_dir() -> Path:
    """``$SEMALIGN_MANIFESTS`` or ``data_manifests/`` at the repository root."""
    env = os.environ.get("SEMALIGN_MANIFESTS")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "data_manifests"
    if not d.is_dir():
        raise DataError(f"manifest folder {d} not found: run from a source checkout of semalign "
                        f"(pip install -e .) or set SEMALIGN_MANIFESTS to its data_manifests/ folder.")
    return d


def validate(m: dict, where: str = "manifest") -> list[str]:
    """Problems of one manifest (empty when valid)."""
    errs = []
    for k, t in REQUIRED_KEYS.items():
        if k not in m:
            errs.append(f"{where}: missing key {k!r}")
        elif not isinstance(m[k], t):
            errs.append(f"{where}: {k!r} must be a {t.__name__}, got {type(m[k]).__name__}")
    if m.get("access") not in ACCESS:
        errs.append(f"{where}: access must be one of {ACCESS}, got {m.get('access')!r}")
    if m.get("access") in ("credentialed", "registration", "open") and not (m.get("env_var") and m.get("default_dir")):
        errs.append(f"{where}: a downloadable dataset needs env_var and default_dir")
    if m.get("access") in ("credentialed", "registration") and not m.get("access_steps"):
        errs.append(f"{where}: access_steps (how to register / get access) are required")
    for i, s in enumerate(m.get("sources") or []):
        if not isinstance(s, dict) or not {"name", "url"} <= set(s):
            errs.append(f"{where}: sources[{i}] needs name and url")
    for i, f in enumerate(m.get("files") or []):
        if not isinstance(f, dict) or "path" not in f or "description" not in f:
            errs.append(f"{where}: files[{i}] needs path and description")
            continue
        sha = f.get("sha256")
        if sha is not None and (not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            errs.append(f"{where}: files[{i}].sha256 must be 64 lowercase hex digits or null")
        if "columns" in f and not isinstance(f["columns"], list):
            errs.append(f"{where}: files[{i}].columns must be a list")
        if "required" in f and not isinstance(f["required"], bool):
            errs.append(f"{where}: files[{i}].required must be true or false")
        if "optional" in f:
            errs.append(f"{where}: files[{i}] has 'optional'; an optional file is marked required: false")
        if "also_in" in f and not isinstance(f["also_in"], str):
            errs.append(f"{where}: files[{i}].also_in must be a string")
    for k, r in (m.get("recipes") or {}).items():
        if not isinstance(r, dict) or "description" not in r:
            errs.append(f"{where}: recipes[{k!r}] needs a description")
    return errs


@functools.lru_cache(maxsize=1)
def _load_all(folder: str) -> dict[str, dict]:
    out = {}
    for p in sorted(Path(folder).glob("*.yml")):
        try:
            m = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
            detail = " ".join(str(e).split())
            raise DataError(f"invalid manifest {p}: cannot be read as YAML ({type(e).__name__}: "
                            f"{detail}). Restore it from the semalign repository (git checkout "
                            f"data_manifests/) or fix SEMALIGN_MANIFESTS.") from None
        if m is not None and not isinstance(m, dict):
            raise DataError(f"invalid manifest {p}: holds a {type(m).__name__}, not a mapping of "
                            f"the keys {', '.join(REQUIRED_KEYS)}")
        errs = validate(m or {}, p.name)
        if errs:
            raise DataError("invalid manifest:\n  " + "\n  ".join(errs))
        out[m["name"]] = m
    return out


def manifests() -> dict[str, dict]:
    """Every manifest by name."""
    return _load_all(str(manifests_dir()))


def get_manifest(name: str) -> dict:
    ms = manifests()
    if name not in ms:
        raise DataError(f"no manifest named {name!r}; known datasets: {', '.join(sorted(ms))}")
    return ms[name]


def locate(name: str, path: str | os.PathLike | None = None) -> Path | None:
    """The folder of a local copy of dataset ``name`` (None when none is configured)."""
    m = get_manifest(name)
    if path is not None:
        return Path(path).expanduser()
    if m.get("env_var") and os.environ.get(m["env_var"]):
        return Path(os.environ[m["env_var"]]).expanduser()
    root = data_root()
    if root is not None and m.get("default_dir"):
        return root / m["default_dir"]
    return None


def where_to_put(m: dict) -> str:
    return (f"put it in ${m['env_var']} (or $SEMALIGN_DATA/{m['default_dir']})"
            if m.get("env_var") else "")


@dataclass
class FileStatus:
    path: str
    status: str  # present | present (no stable sha256) | missing | missing (optional) | checksum failed | bad columns | not a file
    detail: str = ""


#: statuses that mean "this file is there but is not what the manifest describes"
DAMAGED = ("checksum failed", "bad columns", "not a file")


def not_a_file(p: Path) -> str:
    """The detail of a ``not a file`` status: what is at ``p`` instead of a file."""
    what = "a folder" if p.is_dir() else "not a regular file"
    return f"{p} is {what}, but the manifest expects a file there (an archive unpacked in place?)"


def _read_header(p: Path) -> list[str]:
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", newline="") as f:
        line = f.readline()
    return [c.strip().strip('"') for c in line.rstrip("\r\n").split(",")]


def check_columns(p: Path, expected: list[str], dataset: str, exact: bool = True) -> None:
    """Raise DataError when the label file's header lacks an expected column, or (``exact``)
    has others, or when ``p`` is a folder (or anything but a file)."""
    if p.exists() and not p.is_file():
        raise DataError(f"{dataset}: {not_a_file(p)}: move it away and put the file itself there.")
    try:
        got = _read_header(p)
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise DataError(f"{dataset}: cannot read {p} ({type(e).__name__}: {e}); download it again.") from None
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected] if exact else []
    if missing or extra:
        raise DataError(
            f"{dataset}: {p.name} has unexpected columns (missing: {missing or 'none'}; unexpected: "
            f"{extra or 'none'}). This is not the file the manifest describes — check the version "
            f"(expected columns: {', '.join(expected)})."
        )


def check_file(m: dict, folder: Path | None, f: dict, *, verify: bool = True) -> FileStatus:
    missing = "missing" if f.get("required", True) else "missing (optional)"
    if folder is None:
        return FileStatus(f["path"], missing, "no local folder configured")
    p = folder / f["path"]
    if f.get("glob"):
        hits = list(folder.glob(f["path"]))
        return FileStatus(f["path"], "present" if hits else missing, f"{len(hits)} files" if hits else "")
    if not p.exists():
        return FileStatus(f["path"], missing)
    if not p.is_file():  # a folder where a file should be: never hashed, never "present"
        return FileStatus(f["path"], "not a file", not_a_file(p))
    if verify and f.get("sha256"):
        got = sha256_file(p)
        if got != f["sha256"]:
            return FileStatus(f["path"], "checksum failed", f"sha256 {got[:12]}…, expected {f['sha256'][:12]}…")
    if f.get("columns"):
        try:
            check_columns(p, f["columns"], m["name"], exact=f.get("columns_exact", True))
        except DataError as e:
            return FileStatus(f["path"], "bad columns", str(e))
    return FileStatus(f["path"], "present" if f.get("sha256") else "present (no stable sha256)")


#: ``{manifest name: check(manifest, verify) -> {"folder", "files", "state", "next_step"}}`` of the
#: bundled / generated datasets whose source checks something (filled by
#: :func:`semalign.data.registry.dataset`; the others are always ready).
_BUNDLED_CHECKS: dict[str, Callable[[dict, bool], dict]] = {}


def register_check(name: str, fn: Callable[[dict, bool], dict]) -> None:
    """Let :func:`check` report on bundled / generated dataset ``name`` with ``fn``."""
    _BUNDLED_CHECKS[name] = fn


def check(name: str, path: str | os.PathLike | None = None, *, verify: bool = True) -> dict[str, Any]:
    """Status of dataset ``name``: ``{"name", "access", "folder", "files": [FileStatus], "state",
    "next_step"}``; state is ``ready``, ``missing``, ``incomplete`` or ``damaged``."""
    m = get_manifest(name)
    if m["access"] in ("bundled", "generated"):
        # nothing to download: ready, unless the dataset's source registered a check of its own
        # (e.g. a file read in place from a registry asset, see register_check)
        r = {"folder": None, "files": [], "state": "ready",
             "next_step": m.get("access_steps", "nothing to do").strip()}
        if name in _BUNDLED_CHECKS:
            r.update(_BUNDLED_CHECKS[name](m, verify))
        return {"name": name, "access": m["access"], **r}
    folder = locate(name, path)
    if folder is not None and folder.exists() and not folder.is_dir():
        # the configured copy is a file (e.g. the variable points at one of its CSVs)
        if path is not None:
            src = "the path given"
        elif m.get("env_var") and os.environ.get(m["env_var"]):
            src = f"${m['env_var']}"
        else:
            src = f"$SEMALIGN_DATA/{m.get('default_dir')}"
        files = [FileStatus(f["path"], "missing" if f.get("required", True) else "missing (optional)",
                            f"{folder} is a file, not a folder") for f in m["files"]]
        nxt = (f"{src} points at {folder}, which is a file: point it at the folder that holds "
               f"{m['files'][0]['path'] if m['files'] else 'the dataset'}")
        return {"name": name, "access": m["access"], "folder": folder, "files": files, "state": "damaged",
                "next_step": nxt}
    files = [check_file(m, folder, f, verify=verify) for f in m["files"]]
    req = [s for s, f in zip(files, m["files"]) if f.get("required", True)]
    # a folder in place of an optional file is reported too: it would be silently ignored
    wrong = [s for s in files if s.status == "not a file"]
    if folder is None or (req and all(s.status == "missing" for s in req) and not wrong):
        state = "missing"
        nxt = (f"{m['access_steps'].strip()} Then {where_to_put(m)}." if m.get("access_steps")
               else f"Download from {m['homepage']}, then {where_to_put(m)}.")
    elif wrong:
        state = "damaged"
        others = [s for s in req if s.status in DAMAGED and s not in wrong]
        nxt = (f"move {', '.join(str(folder / s.path) for s in wrong)} away and put the file"
               f"{'s' if len(wrong) > 1 else ''} the manifest describes there (from {m['homepage']})"
               + (f"; download again: {', '.join(f'{s.path} ({s.status})' for s in others)}" if others else "")
               + _also_in(m, wrong))
    elif any(s.status in DAMAGED for s in req):
        bad = [s for s in req if s.status in DAMAGED]
        state = "damaged"
        nxt = ("download again: " + ", ".join(f"{s.path} ({s.status})" for s in bad) + f" from {m['homepage']}"
               + f" into {folder}" + _also_in(m, bad))
    elif any(s.status == "missing" for s in req):
        state = "incomplete"
        miss = [s for s in req if s.status == "missing"]
        nxt = f"add {', '.join(s.path for s in miss)} (from {m['homepage']}) to {folder}" + _also_in(m, miss)
    else:
        state, nxt = "ready", "nothing to do"
    return {"name": name, "access": m["access"], "folder": folder, "files": files, "state": state, "next_step": nxt}


def _also_in(m: dict, statuses: list[FileStatus]) -> str:
    """``"; an identical copy of X ships in ..."`` for the files whose manifest entry says so."""
    spec = {f["path"]: f for f in m["files"]}
    notes = [f"an identical copy of {s.path} ships in {spec[s.path]['also_in']}"
             for s in statuses if spec.get(s.path, {}).get("also_in")]
    return "".join(f"; {n}" for n in notes)


def require(name: str, path: str | os.PathLike | None = None, files: list[str] | None = None) -> Path:
    """The folder of a ready local copy, or one DataError saying what is wrong and what to do."""
    m = get_manifest(name)
    r = check(name, path)
    relevant = [s for s in r["files"] if files is None or s.path in files]
    bad = [s for s in relevant if s.status == "missing" or s.status in DAMAGED]
    if r["folder"] is None or bad:
        if r["folder"] is None:
            what = f"no local copy of {m['title']} is configured"
        else:
            what = "; ".join(f"{s.path}: {s.status}" + (f" ({s.detail})" if s.detail else "") for s in bad)
            what = f"{m['title']} at {r['folder']}: {what}"
        raise DataError(f"{what}. Next step: {r['next_step']}")
    return r["folder"]
