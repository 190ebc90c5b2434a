"""The embedding cache: every embedding is computed once, and a wrong one is never served.

>>> emb = embed_cached(enc, texts, ids=ids, dataset="openi-5class@3f2a")   # np.float32 (n, dim)

**Key.** sha256 of ``encoder.fingerprint()`` (id, revision or weight sha256, pooling, dtype,
preprocessing, max length …) + ``dataset`` (name and recipe/manifest hash) + the exact ordered
ids + a digest of what the inputs hold (:func:`inputs_digest`: the text bytes, an array's
dtype/shape/bytes, an image file's sha256). Change any of them — a new revision, another
pooling, one id more, two ids swapped, one report parsed differently, an image file replaced at
the same path — and the key changes.

**Layout.** ``$SEMALIGN_CACHE/embeddings/<encoder>/<key>/``::

    meta.json                  what the key was made of (for `semalign cache ls`)
    chunk-00003.npy + .json    rows computed so far (the .json holds sha256, rows, shape)
    embeddings.npy + .json     the finished matrix in id order, and its sha256

Every file is written atomically (temporary file + rename) and its checksum sidecar is written
after it, so a process killed at any moment leaves complete files or none. A chunk or a result
whose bytes do not match its sidecar (truncated, a flipped byte, a missing sidecar) is deleted
and recomputed. An interrupted run resumes from the chunks already on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from semalign._io import atomic_write_bytes, atomic_write_text, sha256_file
from semalign.paths import cache_dir

FORMAT_VERSION = 2  # 2: the key includes the inputs' content digest (every v1 entry is a miss)
DEFAULT_CHUNK = 512


class CacheWarning(UserWarning):
    """A cache file was corrupt or stale and has been recomputed."""


def embeddings_dir() -> Path:
    return cache_dir() / "embeddings"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def cache_key(fingerprint: dict, dataset: str, ids: Sequence[str], content: str | None = None) -> str:
    """Hex sha256 over (format version, fingerprint, dataset, content digest, ordered ids).

    ``content`` is :func:`inputs_digest` of the inputs (``embed_cached`` always passes it).
    """
    h = hashlib.sha256()
    h.update(_canonical({"v": FORMAT_VERSION, "fingerprint": fingerprint, "dataset": dataset,
                         "content": content}).encode())
    for i in ids:  # length-prefixed: ["ab", "c"] and ["a", "bc"] hash differently
        b = str(i).encode()
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def _files_memo_path() -> Path:
    return cache_dir() / "files-sha256.json"


def _file_sha256(path: str | os.PathLike, memo: dict, changed: list) -> str:
    """sha256 of a file's bytes, memoised by its stat signature (size, mtime, ctime, inode):
    a file is read once, and again only after it changed. ``ctime`` and the inode catch a
    replacement that kept the size and the mtime (``cp -p``, ``shutil.copy2``)."""
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
    except OSError:
        return "missing"  # the encoder reports it; a later file at this path is a miss
    sig = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]
    hit = memo.get(p)
    if hit is not None and hit[:-1] == sig:
        return hit[-1]
    digest = sha256_file(p)
    memo[p] = sig + [digest]
    changed.append(p)
    return digest


def inputs_digest(inputs: Sequence, modality: str = "text") -> str:
    """Hex sha256 over what ``inputs`` hold, in order — part of the cache key, so an id whose
    content changed (a report parsed differently, an image file replaced) is recomputed.

    Texts (a text encoder's ``str``): their UTF-8 bytes. Arrays: dtype, shape and bytes. Image
    files (an image encoder's ``str`` / ``PathLike``): the file's sha256, memoised in
    ``<cache_dir>/files-sha256.json`` by (path, size, mtime, ctime, inode), so a warm run only
    stats the files. Anything else: its ``repr``. ~5 ms for 4k reports.
    """
    h = hashlib.sha256()
    memo: dict | None = None
    changed: list[str] = []

    def put(tag: bytes, *parts: bytes) -> None:
        h.update(tag)
        for b in parts:  # length-prefixed: no two different inputs give the same stream
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)

    for x in inputs:
        if isinstance(x, str) and modality == "text":
            put(b"t", x.encode("utf-8", "surrogatepass"))
        elif isinstance(x, np.ndarray):
            a = np.ascontiguousarray(x)
            put(b"a", f"{a.dtype.str}|{a.shape}".encode(),
                a.tobytes() if a.dtype.hasobject else a.reshape(-1).view(np.uint8).data)
        elif isinstance(x, (str, os.PathLike)):
            if memo is None:
                try:
                    memo = json.loads(_files_memo_path().read_text())
                except (OSError, ValueError):
                    memo = {}
            put(b"f", _file_sha256(x, memo, changed).encode())
        elif isinstance(x, (bytes, bytearray, memoryview)):
            put(b"b", bytes(x))
        else:
            put(b"r", f"{type(x).__module__}.{type(x).__qualname__}|{x!r}".encode())
    if changed:
        try:
            atomic_write_text(_files_memo_path(), json.dumps(memo, separators=(",", ":")))
        except OSError:
            pass  # only an optimisation
    return h.hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "encoder"


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _write_checked(path: Path, arr: np.ndarray, extra: dict) -> None:
    """Array file first, then its sidecar: a sidecar exists only for a complete array file."""
    data = _npy_bytes(arr)
    atomic_write_bytes(path, data)
    side = dict(extra, sha256=hashlib.sha256(data).hexdigest(), shape=list(arr.shape), bytes=len(data))
    atomic_write_text(path.with_suffix(".json"), _canonical(side))


def _read_checked(path: Path, expect: dict) -> np.ndarray | None:
    """The array if the file and its sidecar agree (and match ``expect``); else None, and
    whatever is there is removed so it is recomputed."""
    side_path = path.with_suffix(".json")
    if not path.exists() and not side_path.exists():
        return None
    problem = None
    try:
        side = json.loads(side_path.read_text())
        data = path.read_bytes()
        if len(data) != side.get("bytes") or hashlib.sha256(data).hexdigest() != side.get("sha256"):
            problem = "checksum mismatch (truncated or altered file)"
        elif any(side.get(k) != v for k, v in expect.items()):
            problem = "it belongs to other rows or another shape"
        else:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            if list(arr.shape) != side.get("shape") or arr.dtype != np.float32:
                problem = "unexpected shape or dtype"
            else:
                return arr
    except FileNotFoundError:
        problem = "file or checksum sidecar missing"
    except (ValueError, OSError) as e:
        problem = f"unreadable ({e})"
    warnings.warn(f"embedding cache: {path} is invalid — {problem}; recomputing", CacheWarning,
                  stacklevel=3)
    for p in (path, side_path):
        p.unlink(missing_ok=True)
    return None


def _rows_digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()


def _entry(encoder: Any, ids: Sequence[str], dataset: str, items: Sequence) -> tuple[dict, str, str, Path]:
    """``(fingerprint, content digest, key, entry folder)`` of one embedding request."""
    fp = encoder.fingerprint()
    content = inputs_digest(items, getattr(encoder, "modality", "text"))
    key = cache_key(fp, dataset, [str(i) for i in ids], content)
    return fp, content, key, embeddings_dir() / _safe(encoder.name) / key[:40]


def entry_dir(encoder: Any, ids: Sequence[str], dataset: str, inputs: Sequence) -> Path:
    """The folder :func:`embed_cached` keeps this request's embeddings in."""
    return _entry(encoder, ids, dataset, list(inputs))[3]


def embed_cached(encoder: Any, inputs: Sequence, ids: Sequence[str], dataset: str,
                 batch_size: int | None = None, progress: bool = True,
                 chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """``encoder.embed(inputs)`` computed once: ``np.float32 (len(ids), encoder.dim)``.

    ``ids`` name the inputs (unique strings, same order as ``inputs``); ``dataset`` names
    where they come from, including its version (e.g. ``"openi-5class@<recipe hash>"``).
    Rows are computed in chunks of ``chunk_size`` (texts ordered by length first, like
    :meth:`Encoder.embed`), each saved as soon as it is done. A batch size that an
    out-of-memory back-off settled on is kept for the following chunks.
    """
    ids = [str(i) for i in ids]
    n = len(ids)
    if isinstance(inputs, (str, bytes)):
        raise TypeError("embed_cached(inputs=...): give a list of inputs, not one string")
    if len(inputs) != n:
        raise ValueError(f"embed_cached: {len(inputs)} inputs but {n} ids; they must correspond one to one")
    if len(set(ids)) != n:
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"embed_cached: ids must be unique; {dup!r} appears more than once")
    if not isinstance(dataset, str) or not dataset:
        raise ValueError("embed_cached: dataset must be a non-empty string (name@version)")

    items = list(inputs)
    modality = getattr(encoder, "modality", "text")
    fp, content, key, d = _entry(encoder, ids, dataset, items)
    final = d / "embeddings.npy"
    full_expect = {"key": key, "shape": [n, int(encoder.dim)]}
    got = _read_checked(final, full_expect)
    if got is not None:
        return got

    d.mkdir(parents=True, exist_ok=True)
    if not (d / "meta.json").exists():
        atomic_write_text(d / "meta.json", _canonical({
            "key": key, "encoder": encoder.name, "fingerprint": fp, "dataset": dataset, "n": n,
            "content_sha256": content, "dim": int(encoder.dim),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "format": FORMAT_VERSION}))
    if modality == "text":
        order = np.array(sorted(range(n), key=lambda i: -encoder._sort_key(items[i])), dtype=np.int64)
    else:
        order = np.arange(n, dtype=np.int64)
    out = np.empty((n, int(encoder.dim)), dtype=np.float32)
    cs = max(1, int(chunk_size))
    bs = batch_size
    from tqdm.auto import tqdm

    bar = tqdm(total=n, desc=f"embed {encoder.name} ({dataset})", disable=not progress, leave=False)
    try:
        for k, start in enumerate(range(0, n, cs)):
            rows = order[start:start + cs]
            path = d / f"chunk-{k:05d}.npy"
            expect = {"rows": _rows_digest(rows), "shape": [len(rows), int(encoder.dim)]}
            arr = _read_checked(path, expect)
            if arr is None:
                arr = np.asarray(encoder.embed([items[i] for i in rows], batch_size=bs,
                                               progress=False), dtype=np.float32)
                # after an out-of-memory back-off, start the next chunk at the size that fitted
                # (Encoder.embed records it) instead of running out of memory again
                fitted = getattr(encoder, "last_batch_size", None)
                if fitted:
                    bs = min(int(fitted), int(bs)) if bs else int(fitted)
                _write_checked(path, arr, {"rows": expect["rows"]})
            out[rows] = arr
            bar.update(len(rows))
    finally:
        bar.close()
    _write_checked(final, out, {"key": key})
    for p in d.glob("chunk-*"):  # the final file supersedes the chunks
        p.unlink(missing_ok=True)
    return out


# --------------------------------------------------------------------------------------------
# listing and clearing (`semalign cache ls / clear`)
# --------------------------------------------------------------------------------------------
def list_entries() -> list[dict]:
    """One dict per cache entry: encoder, dataset, n, dim, complete, bytes, path."""
    root = embeddings_dir()
    out = []
    if not root.is_dir():
        return out
    for meta_path in sorted(root.glob("*/*/meta.json")):
        d = meta_path.parent
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {"encoder": d.parent.name, "dataset": "?", "n": None, "dim": None}
        size = sum(p.stat().st_size for p in d.iterdir() if p.is_file())
        chunks = len(list(d.glob("chunk-*.npy")))
        out.append({"encoder": meta.get("encoder"), "dataset": meta.get("dataset"), "n": meta.get("n"),
                    "dim": meta.get("dim"), "complete": (d / "embeddings.json").exists(),
                    "chunks": chunks, "bytes": size, "path": str(d)})
    return out


def clear(encoder: str | None = None) -> int:
    """Remove all entries (or only ``encoder``'s); returns how many were removed."""
    entries = [e for e in list_entries() if encoder is None or e["encoder"] == encoder]
    for e in entries:
        shutil.rmtree(e["path"], ignore_errors=True)
    if encoder is not None:
        folder = embeddings_dir() / _safe(encoder)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return len(entries)


def cli(args) -> int:
    """``semalign cache ls [--encoder E]`` / ``semalign cache clear [--encoder E]``."""
    enc = getattr(args, "encoder", None)
    if args.action == "ls":
        entries = [e for e in list_entries() if enc is None or e["encoder"] == enc]
        if not entries:
            print(f"no cached embeddings in {embeddings_dir()}")
            return 0
        print(f"{'encoder':20s} {'dataset':36s} {'n':>7s} {'dim':>5s} {'state':>10s} {'MB':>8s}")
        for e in entries:
            state = "complete" if e["complete"] else f"{e['chunks']} chunks"
            print(f"{str(e['encoder']):20s} {str(e['dataset'])[:36]:36s} {e['n'] or 0:7d} "
                  f"{e['dim'] or 0:5d} {state:>10s} {e['bytes'] / 1e6:8.1f}")
        print(f"({len(entries)} entries in {embeddings_dir()})")
        return 0
    if args.action == "clear":
        n = clear(enc)
        print(f"removed {n} cache entr{'y' if n == 1 else 'ies'}" + (f" of {enc}" if enc else ""),
              file=sys.stderr)
        return 0
    print(f"unknown cache action {args.action!r}", file=sys.stderr)
    return 2
