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
    .lock                      the entry's inter-process lock (see Concurrency)

Every file is written atomically (temporary file + rename) and its checksum sidecar is written
after it, so a process killed at any moment leaves complete files or none. An interrupted run
resumes from the chunks already on disk.

**Damage.** Whatever an entry holds, it is checked before use and never served unless it checks
out: a chunk or a result whose bytes do not match its sidecar (truncated, a flipped byte), a
missing sidecar, a sidecar or ``meta.json`` that is not the expected record (``[]``, ``null``,
``{"n": "abc"}``, garbage bytes), a directory, symlink or FIFO where a file should be, a file or
symlink where an entry or encoder folder should be. Such a part is removed (a symlink itself,
never what it points to) and recomputed, with a :class:`CacheWarning`. ``semalign cache ls``
lists a damaged entry as ``damaged``; ``semalign cache clear`` removes it. (To keep the cache on
another disk, set ``SEMALIGN_CACHE``, or make ``embeddings/`` itself a symlink: that one is
followed.)

**Concurrency.** Computing or repairing an entry happens under its lock
(``semalign._io.file_lock(<entry>/.lock)``, as the Hugging Face cache takes one per entry), so
two processes embedding the same key never see each other's half-written chunks: the second
waits, then reads the finished result. Reading a complete, verified ``embeddings.npy`` takes no
lock (it works on a read-only cache). ``clear`` takes the entry lock too: it never removes an
entry that a running embed is filling (it reports it as in use), and an embed that was waiting
for an entry ``clear`` removed starts a new, complete entry (with its ``meta.json``).

**Disk full, read-only cache.** A failed write leaves every file written before it valid and
no half file (a chunk whose sidecar could not be written is removed). The error is a
:class:`CacheWriteError` (a :class:`~semalign.errors.SemalignError` and an ``OSError`` with the
original ``errno``) naming the entry folder and ``SEMALIGN_CACHE``; the rerun computes only the
missing chunks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from semalign._io import LockTimeout, atomic_write_bytes, atomic_write_text, file_lock, sha256_file
from semalign.errors import SemalignError
from semalign.paths import cache_dir

FORMAT_VERSION = 2  # 2: the key includes the inputs' content digest (every v1 entry is a miss)
DEFAULT_CHUNK = 512

#: How long an embed waits for another process computing the same entry. The lock is a flock,
#: released by the kernel the moment its holder exits or dies, so a long wait only ever waits
#: for a live process doing this very work (a large model on a CPU can take hours).
LOCK_TIMEOUT = 24 * 3600.0
#: How long ``clear`` waits for an entry's lock before reporting it as in use.
CLEAR_LOCK_TIMEOUT = 5.0

#: OS errors that mean "this disk or these permissions", not a bug in semalign.
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_MAX_SIDECAR = 1 << 20  # a sidecar or meta.json is a few hundred bytes; anything huge is damage


class CacheWarning(UserWarning):
    """A cache file was corrupt, damaged or stale and has been recomputed."""


class CacheError(SemalignError):
    """The embedding cache cannot do what was asked (e.g. ``clear`` could not remove an entry)."""


class CacheWriteError(CacheError, OSError):
    """Writing the cache failed because of the disk (full, read-only, permission denied).

    An ``OSError`` too, with the original ``errno`` and ``filename``, so code that handles disk
    errors keeps working; its message names the cache folder and what to do."""

    def __init__(self, err: OSError, message: str):
        OSError.__init__(self, err.errno, err.strerror)
        self.filename = err.filename
        self.message = message

    def __str__(self) -> str:
        return self.message


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


def stat_signature(path: str | os.PathLike) -> list[int] | None:
    """``[size, mtime_ns, ctime_ns, inode, device]`` of a file (None if it cannot be stat'ed):
    what :func:`inputs_digest` memoises a file's sha256 by, and what a recorded read of an image
    file is checked against (:func:`record_read`)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _file_sha256(path: str | os.PathLike, memo: dict, changed: list) -> str:
    """sha256 of a file's bytes, memoised by its stat signature (size, mtime, ctime, inode):
    a file is read once, and again only after it changed. ``ctime`` and the inode catch a
    replacement that kept the size and the mtime (``cp -p``, ``shutil.copy2``)."""
    p = os.path.abspath(os.fspath(path))
    sig = stat_signature(p)
    if sig is None:
        return "missing"  # the encoder reports it; a later file at this path is a miss
    hit = memo.get(p)
    # a damaged memo (hand-edited, another shape) is only a miss: the file is hashed again
    if isinstance(hit, list) and len(hit) == len(sig) + 1 and hit[:-1] == sig and isinstance(hit[-1], str):
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
                if not isinstance(memo, dict):  # valid JSON of another shape: start afresh
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
    """A folder name for an encoder name: never empty, never ``.`` or ``..`` (which would leave
    the embeddings folder), only ``[A-Za-z0-9._-]``."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_")
    return s if s.strip(".") else "encoder"


# --------------------------------------------------------------------------------------------
# files that are checked before use
# --------------------------------------------------------------------------------------------
class _Damaged(Exception):
    """Internal: a cache file is there but is not what it should be (the message says how)."""


def _kind(p: Path) -> str | None:
    """What is at ``p``, from ``lstat`` (a symlink is never followed): ``"file"``, ``"dir"``,
    ``"symlink"``, ``"special file"`` (FIFO, socket, device), or None if nothing is."""
    try:
        mode = os.lstat(p).st_mode
    except FileNotFoundError:
        return None
    except NotADirectoryError:  # a parent is a file: nothing can be at p
        return None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "special file"


def _remove(p: Path) -> None:
    """Remove whatever is at ``p`` without following a symlink: a file or a symlink is
    unlinked (its target is left alone), a real directory is removed with its contents.
    Nothing there is fine; any other failure raises ``OSError``."""
    if _kind(p) == "dir":
        shutil.rmtree(p)  # does not follow symlinks inside (fd-based on Linux)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def _read_small_file(p: Path) -> bytes:
    """The bytes of a small regular file. FileNotFoundError if absent, :class:`_Damaged` if
    something else is there (never opens a FIFO, never follows a symlink)."""
    kind = _kind(p)
    if kind is None:
        raise FileNotFoundError(p)
    if kind != "file":
        raise _Damaged(f"{p.name} is a {kind}, not a file")
    if os.lstat(p).st_size > _MAX_SIDECAR:
        raise _Damaged(f"{p.name} is far too large to be a cache record")
    return p.read_bytes()


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _load_sidecar(p: Path) -> dict:
    """A checksum sidecar as a dict with ``sha256`` (str), ``bytes`` (int) and ``shape`` (list of
    ints); :class:`_Damaged` (or ``ValueError`` for bytes that are not JSON) otherwise."""
    side = json.loads(_read_small_file(p))
    if not (isinstance(side, dict) and isinstance(side.get("sha256"), str) and _is_int(side.get("bytes"))
            and isinstance(side.get("shape"), list) and all(_is_int(s) for s in side["shape"])):
        raise _Damaged(f"{p.name} is not a checksum record")
    return side


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _write_checked(path: Path, arr: np.ndarray, extra: dict) -> None:
    """Array file first, then its sidecar: a sidecar exists only for a complete array file.
    If the sidecar cannot be written (disk full), the array file is removed again, so a failed
    write leaves the pair complete or absent."""
    data = _npy_bytes(arr)
    atomic_write_bytes(path, data)
    side = dict(extra, sha256=hashlib.sha256(data).hexdigest(), shape=list(arr.shape), bytes=len(data))
    try:
        atomic_write_text(path.with_suffix(".json"), _canonical(side))
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def _verify(path: Path, expect: dict) -> tuple[np.ndarray | None, str | None]:
    """``(array, None)`` if ``path`` and its sidecar agree (and match ``expect``);
    ``(None, None)`` if neither is there; ``(None, what is wrong)`` otherwise. Changes nothing,
    so it is safe without the entry lock."""
    side_path = path.with_suffix(".json")
    if _kind(path) is None and _kind(side_path) is None:
        return None, None
    try:
        side = _load_sidecar(side_path)
        kind = _kind(path)
        if kind is None:
            raise FileNotFoundError(path)
        if kind != "file":
            return None, f"{path.name} is a {kind}, not a file"
        if os.lstat(path).st_size != side["bytes"]:  # before reading: a huge stray file is not read
            return None, "size mismatch (truncated or altered file)"
        data = path.read_bytes()
        if len(data) != side["bytes"] or hashlib.sha256(data).hexdigest() != side["sha256"]:
            return None, "checksum mismatch (truncated or altered file)"
        if any(side.get(k) != v for k, v in expect.items()):
            return None, "it belongs to other rows or another shape"
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - parsing bytes: any failure means "not a valid .npy"
            return None, f"not a valid .npy file ({type(e).__name__}: {e})"
        if not isinstance(arr, np.ndarray) or list(arr.shape) != side["shape"] or arr.dtype != np.float32:
            return None, "unexpected shape or dtype"
        return arr, None
    except FileNotFoundError:
        return None, "file or checksum sidecar missing"
    except _Damaged as e:
        return None, str(e)
    except (ValueError, OSError) as e:
        return None, f"unreadable ({e})"


def _read_checked(path: Path, expect: dict) -> np.ndarray | None:
    """The array if the file and its sidecar agree (and match ``expect``); else None, and
    whatever is there is removed (with a :class:`CacheWarning`) so it is recomputed. Changes
    files: call it holding the entry lock."""
    arr, problem = _verify(path, expect)
    if problem is not None:
        warnings.warn(f"embedding cache: {path} is invalid — {problem}; recomputing", CacheWarning,
                      stacklevel=3)
        for p in (path, path.with_suffix(".json")):
            _remove(p)
    return arr


_META_FIELDS = {"key": str, "encoder": str, "dataset": str}


def _load_meta(d: Path) -> tuple[dict | None, str | None]:
    """``(meta, None)`` for a valid ``meta.json``, else ``(None, what is wrong)``."""
    p = d / "meta.json"
    try:
        meta = json.loads(_read_small_file(p))
    except FileNotFoundError:
        return None, "meta.json missing"
    except _Damaged as e:
        return None, str(e)
    except (ValueError, OSError) as e:
        return None, f"meta.json unreadable ({e})"
    if not (isinstance(meta, dict) and all(isinstance(meta.get(k), t) for k, t in _META_FIELDS.items())
            and _is_int(meta.get("n")) and _is_int(meta.get("dim"))):
        return None, "meta.json is not a valid record"
    return meta, None


def _ensure_meta(d: Path, meta: dict) -> None:
    """Write ``meta.json`` unless a valid one for this key is there (call it holding the lock)."""
    old, problem = _load_meta(d)
    if old is not None and old["key"] == meta["key"]:
        return
    if problem != "meta.json missing":
        warnings.warn(f"embedding cache: {d / 'meta.json'} is invalid — "
                      f"{problem or 'it describes another key'}; rewriting it", CacheWarning, stacklevel=4)
        _remove(d / "meta.json")
    atomic_write_text(d / "meta.json", _canonical(meta))


# --------------------------------------------------------------------------------------------
# the per-entry lock
# --------------------------------------------------------------------------------------------
class _Gone(Exception):
    """Internal: the entry folder is not there (``clear`` found it already removed)."""


def _prepare_dir(d: Path) -> None:
    """Make ``d`` (``embeddings/<encoder>/<key>``) a real folder, first removing (with a
    :class:`CacheWarning`) a file or symlink that stands where ``d`` or its encoder folder should
    be: the cache never writes through a symlink inside its own tree. (``embeddings/`` itself
    may be a symlink to a folder; if it is anything else, :class:`CacheError`.)"""
    root = embeddings_dir()
    if os.path.lexists(root) and not root.is_dir():  # it may be a symlink to a folder: the user's choice
        raise CacheError(f"{root} is not a folder (a file or a broken symlink); remove it, or set "
                         f"SEMALIGN_CACHE to another folder, and rerun")
    for p in (d.parent, d):
        kind = _kind(p)
        if kind not in (None, "dir"):
            warnings.warn(f"embedding cache: {p} is a {kind}, not a folder; removing it (not what it "
                          f"points to) and recomputing", CacheWarning, stacklevel=5)
            _remove(p)
    d.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _entry_lock(d: Path, timeout: float, create: bool = True) -> Iterator[None]:
    """Hold ``d/.lock`` (:func:`semalign._io.file_lock`), and be sure it is the lock of the entry
    folder now at ``d``.

    ``clear`` removes an entry, its ``.lock`` included, while holding that lock; a process that
    was waiting for it then holds the lock of a deleted file, and a third process may already
    hold a new ``.lock`` at the same path. So, before waiting, this opens the lock file itself
    (pinning its inode: it cannot be reused while open) and, once the lock is held, checks that
    the path still names that inode; if not, it starts again on the new folder.

    ``create=False`` (``clear``): raise :class:`_Gone` instead of creating a missing folder.
    """
    lock = d / ".lock"
    for _ in range(100):
        if create:
            _prepare_dir(d)
        elif _kind(d) is None:
            raise _Gone(d)
        if _kind(lock) not in (None, "file"):  # a dir or a symlink named .lock: damage
            if create:
                warnings.warn(f"embedding cache: {lock} is not a lock file; replacing it", CacheWarning,
                              stacklevel=4)
            _remove(lock)
        try:
            pin = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the folder was removed meanwhile
            if create:
                continue
            raise _Gone(d) from None
        try:
            pinned = os.fstat(pin)
            with file_lock(lock, timeout=timeout):
                try:
                    now = os.lstat(lock)
                except FileNotFoundError:
                    now = None
                if now is not None and (now.st_ino, now.st_dev) == (pinned.st_ino, pinned.st_dev):
                    yield
                    return
        finally:
            os.close(pin)
    raise CacheError(f"the cache entry {d} keeps being removed while semalign waits for it "
                     f"(is a `semalign cache clear` running in a loop?); rerun when it has stopped")


def _write_error(err: OSError, d: Path) -> CacheWriteError:
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = ("free space, or set SEMALIGN_CACHE to a folder on a larger disk, and rerun")
    else:
        todo = "set SEMALIGN_CACHE to a folder you can write and rerun"
    return CacheWriteError(err, f"cannot write the embedding cache entry {d}: {err.strerror}{where}. "
                                f"The cache is {cache_dir()}; {todo}. Everything computed so far is "
                                f"kept and reused.")


# --------------------------------------------------------------------------------------------
# embedding
# --------------------------------------------------------------------------------------------
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

    A verified complete entry is returned without a lock. Otherwise the entry is computed (or
    resumed, or repaired) holding its lock; a process computing the same entry is waited for
    (up to :data:`LOCK_TIMEOUT`) and its result read. Raises :class:`CacheWriteError` if the
    disk is full or the cache is not writable.
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
    fp, content, key, d = _entry(encoder, ids, dataset, items)
    final = d / "embeddings.npy"
    full_expect = {"key": key, "shape": [n, int(encoder.dim)]}
    meta = {"key": key, "encoder": encoder.name, "fingerprint": fp, "dataset": dataset, "n": n,
            "content_sha256": content, "dim": int(encoder.dim),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "format": FORMAT_VERSION}

    # lock-free: complete files are only ever replaced atomically. Not through a symlinked entry
    # or encoder folder, though: those are damage (repaired below), as `cache ls` shows them
    got = None
    if _kind(d.parent) == "dir" and _kind(d) == "dir":
        got, _ = _verify(final, full_expect)
    if got is not None:
        old, _ = _load_meta(d)
        if old is None or old["key"] != key:  # repair what `cache ls` shows; the result is verified
            try:
                with _entry_lock(d, LOCK_TIMEOUT):
                    if _kind(final) == "file":  # not removed by a `clear` meanwhile
                        _ensure_meta(d, meta)
            except (OSError, SemalignError):
                pass  # a read-only cache still serves its verified results
        _record_embedding_read(encoder, dataset, key, items)
        return got

    locked = False
    try:
        with _entry_lock(d, LOCK_TIMEOUT):
            locked = True
            got = _fill(encoder, items, dataset, d, meta, full_expect, batch_size, progress, chunk_size)
    except OSError as e:
        # taking the lock failed on the disk (read-only cache...); what _fill raises is either
        # already a CacheWriteError or the encoder's own error (an unreadable input image)
        if locked or isinstance(e, CacheWriteError) or e.errno not in _DISK_ERRNOS:
            raise
        raise _write_error(e, d) from e
    _record_embedding_read(encoder, dataset, key, items)
    return got


# --------------------------------------------------------------------------------------------
# what a notebook run read (semalign.book's execution cache)
# --------------------------------------------------------------------------------------------
#: The file a notebook kernel appends what it read to, one JSON line per read (set by
#: :func:`semalign.book.run_notebook` for its kernel; unset, nothing is recorded).
READ_LOG_ENV = "SEMALIGN_READ_LOG"


def record_read(record: dict) -> None:
    """Append ``record`` as one JSON line to ``$SEMALIGN_READ_LOG`` (nothing when it is unset).

    The book's execution cache reuses a notebook's outputs only while everything its run read
    still resolves: each embedding entry (:func:`embed_cached` records ``kind: "embedding"``)
    and each other notebook's results file (:func:`semalign.book.read_results` records
    ``kind: "results"``). A write failure is not swallowed: a log missing a read could make the
    execution cache reuse a run it should not.
    """
    path = os.environ.get(READ_LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(_canonical(record) + "\n")


def _record_embedding_read(encoder: Any, dataset: str, key: str, items: Sequence) -> None:
    """:func:`record_read` of one :func:`embed_cached` call: the encoder, the dataset key, the
    entry key, and for inputs that are image files their :func:`stat_signature` (the embedding
    key holds their sha256, memoised by exactly that signature)."""
    if not os.environ.get(READ_LOG_ENV):
        return
    rec: dict[str, Any] = {"kind": "embedding", "encoder": str(encoder.name), "dataset": dataset,
                           "key": key, "n": len(items)}
    if getattr(encoder, "modality", "text") != "text":
        files = [[os.path.abspath(os.fspath(x)), stat_signature(x)] for x in items
                 if isinstance(x, (str, os.PathLike))]
        if files:
            rec["files"] = files
    record_read(rec)


def entry_present(encoder_name: str, key: str) -> bool:
    """Whether the cache holds a complete entry for ``key`` of encoder ``encoder_name``: its
    result file is there with a sidecar naming this key and its size (cheap, no hashing;
    :func:`embed_cached` verifies the checksum before any use)."""
    d = embeddings_dir() / _safe(encoder_name) / str(key)[:40]
    try:
        side = _load_sidecar(d / "embeddings.json")
        return (side.get("key") == key and _kind(d / "embeddings.npy") == "file"
                and os.lstat(d / "embeddings.npy").st_size == side["bytes"])
    except (FileNotFoundError, _Damaged, ValueError, OSError):
        return False


@contextlib.contextmanager
def _cache_io(d: Path) -> Iterator[None]:
    """Turn a disk error (full, read-only, permission) of the cache's own I/O into a
    :class:`CacheWriteError` naming the entry; an encoder's errors are never wrapped."""
    try:
        yield
    except OSError as e:
        if isinstance(e, CacheWriteError) or e.errno not in _DISK_ERRNOS:
            raise
        raise _write_error(e, d) from e


def _fill(encoder: Any, items: list, dataset: str, d: Path, meta: dict, full_expect: dict,
          batch_size: int | None, progress: bool, chunk_size: int) -> np.ndarray:
    """The body of :func:`embed_cached`, run holding the entry lock: check (again: another
    process may have finished it while we waited), resume from valid chunks, finish."""
    final = d / "embeddings.npy"
    with _cache_io(d):
        got = _read_checked(final, full_expect)
        _ensure_meta(d, meta)
    if got is not None:
        return got
    n = len(items)
    if getattr(encoder, "modality", "text") == "text":
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
            with _cache_io(d):
                arr = _read_checked(path, expect)
            if arr is None:
                arr = np.asarray(encoder.embed([items[i] for i in rows], batch_size=bs,
                                               progress=False), dtype=np.float32)
                # after an out-of-memory back-off, start the next chunk at the size that fitted
                # (Encoder.embed records it) instead of running out of memory again
                fitted = getattr(encoder, "last_batch_size", None)
                if fitted:
                    bs = min(int(fitted), int(bs)) if bs else int(fitted)
                with _cache_io(d):
                    _write_checked(path, arr, {"rows": expect["rows"]})
            out[rows] = arr
            bar.update(len(rows))
    finally:
        bar.close()
    with _cache_io(d):
        _write_checked(final, out, {"key": meta["key"]})
    for p in sorted(d.glob("chunk-*")):  # the final file supersedes the chunks
        with contextlib.suppress(OSError):  # a leftover chunk is only wasted space
            _remove(p)
    return out


def _rows_digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# listing and clearing (`semalign cache ls / clear`)
# --------------------------------------------------------------------------------------------
def _describe(path: Path, folder: str) -> dict:
    """The :func:`list_entries` record of whatever is at ``embeddings/<folder>/<name>`` (or at
    ``embeddings/<folder>`` when that is not a folder). Cheap: sizes and sidecars, no hashing
    (``embed_cached`` verifies checksums before use)."""
    rec = {"encoder": folder, "dataset": None, "n": None, "dim": None, "state": "damaged",
           "complete": False, "chunks": 0, "bytes": 0, "problem": None, "folder": folder,
           "path": str(path)}
    kind = _kind(path)
    if kind != "dir":
        rec["problem"] = f"a {kind} where a cache folder should be"
        with contextlib.suppress(OSError):
            rec["bytes"] = os.lstat(path).st_size if kind == "file" else 0
        return rec
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        rec["problem"] = f"unreadable ({e.strerror})"
        return rec
    problems = []
    for name in names:
        kind = _kind(path / name)
        if kind == "file":
            with contextlib.suppress(OSError):
                rec["bytes"] += os.lstat(path / name).st_size
        elif kind is not None and not name.startswith("."):
            problems.append(f"{name} is a {kind}")
    rec["chunks"] = sum(1 for x in names if x.startswith("chunk-") and x.endswith(".npy"))
    visible = [x for x in names if not x.startswith(".")]
    meta, meta_problem = _load_meta(path)
    if meta is not None:
        rec.update(encoder=meta["encoder"], dataset=meta["dataset"], n=meta["n"], dim=meta["dim"])
    elif not visible:
        rec.update(state="empty", problem="no files (an embed that was starting, or was stopped)")
        return rec
    else:
        problems.append(meta_problem)
    complete = False
    if "embeddings.npy" in names or "embeddings.json" in names:
        try:
            side = _load_sidecar(path / "embeddings.json")
            complete = (_kind(path / "embeddings.npy") == "file"
                        and os.lstat(path / "embeddings.npy").st_size == side["bytes"])
        except (FileNotFoundError, _Damaged, ValueError, OSError):
            pass
        if not complete:
            problems.append("embeddings.npy or its sidecar is damaged")
    if problems:
        rec["problem"] = "; ".join(problems)
    else:
        rec.update(state="complete" if complete else "partial", complete=complete)
    return rec


def list_entries() -> list[dict]:
    """One dict per entry folder under ``embeddings/<encoder>/``, whatever it holds (an entry
    without ``meta.json``, a symlink or a file where a folder should be are listed too).

    Keys: ``encoder``, ``dataset``, ``n``, ``dim`` (from ``meta.json``; for an entry without a
    valid one, ``encoder`` is the folder name and the others are None), ``state``
    (``"complete"``, ``"partial"``, ``"damaged"`` or ``"empty"``), ``complete`` (bool),
    ``chunks``, ``bytes``, ``problem`` (what is damaged, or None), ``folder``, ``path``.
    """
    root = embeddings_dir()
    if not root.is_dir():
        return []
    out = []
    for enc_path in sorted(root.iterdir()):
        if _kind(enc_path) != "dir":
            out.append(_describe(enc_path, enc_path.name))
            continue
        try:
            children = sorted(enc_path.iterdir())
        except OSError as e:
            rec = _describe(enc_path, enc_path.name)
            rec["problem"] = f"unreadable ({e.strerror})"
            out.append(rec)
            continue
        out.extend(_describe(d, enc_path.name) for d in children)
    return out


def _selected(e: dict, encoder: str | None) -> bool:
    """Whether ``clear(encoder)`` removes entry ``e``: entries of that encoder, by ``meta.json``,
    or by folder name for an entry whose ``meta.json`` is gone or damaged."""
    return encoder is None or e["encoder"] == encoder or (e["dataset"] is None and e["folder"] == _safe(encoder))


def _remove_entry(path: Path, lock_timeout: float) -> bool:
    """Remove one entry; True if removed, False if it was already gone. Raises ``OSError`` or
    :class:`LockTimeout` (in use) if it could not; what was removed until then is consistent
    (the result's sidecar goes first, so a half-removed entry is never a hit)."""
    kind = _kind(path)
    if kind is None:
        return False
    if kind != "dir":
        os.unlink(path)  # a symlink is removed itself: what it points to is never touched
        return True
    try:
        with _entry_lock(path, lock_timeout, create=False):
            names = os.listdir(path)
            first = [x for x in ("embeddings.json", "embeddings.npy") if x in names]
            last = [x for x in ("meta.json", ".lock") if x in names]
            for name in first + sorted(set(names) - set(first) - set(last)) + last:
                _remove(path / name)
            # still holding the (now unlinked) lock: an embed arriving now creates a new .lock,
            # and this rmdir fails rather than removing its work
            os.rmdir(path)
    except _Gone:
        return False
    return True


def clear(encoder: str | None = None, lock_timeout: float | None = None) -> list[dict]:
    """Remove all entries (or only ``encoder``'s), whatever they hold; returns the
    :func:`list_entries` records of the entries removed.

    An entry a running embed holds is waited for up to ``lock_timeout`` seconds (default
    :data:`CLEAR_LOCK_TIMEOUT`). If any entry
    could not be removed (in use, read-only, permission denied), the others are still removed
    and a :class:`CacheError` names each one left and what to do (its ``removed`` attribute
    lists what was removed). A symlink is removed, never followed.
    """
    root = embeddings_dir()
    lock_timeout = CLEAR_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    removed: list[dict] = []
    failed: list[tuple[dict, str]] = []
    for e in (e for e in list_entries() if _selected(e, encoder)):
        path = Path(e["path"])
        try:
            if _remove_entry(path, lock_timeout):
                removed.append(e)
        except LockTimeout:
            failed.append((e, "in use by another semalign process (an embed is filling it); "
                              "rerun `semalign cache clear` when it has finished"))
        except OSError as err:
            if err.errno == errno.ENOTEMPTY:
                why = ("an embed started filling it meanwhile; rerun `semalign cache clear` when it "
                       "has finished")
            else:
                why = (f"{err.strerror or err}; make it writable (chmod -R u+w) or delete it by "
                       f"hand, then rerun `semalign cache clear`")
            failed.append((e, why))
    for folder in sorted({Path(e["path"]).parent for e in removed} - {root}):
        with contextlib.suppress(OSError):  # not empty (another entry, a new embed): kept
            folder.rmdir()
    if failed:
        shown = "; ".join(f"{e['path']}: {why}" for e, why in failed[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        err = CacheError(f"removed {len(removed)} of {len(removed) + len(failed)} cache entries; "
                         f"could not remove {shown}{more}")
        err.removed = removed
        raise err
    return removed


def _state(e: dict) -> str:
    return f"{e['chunks']} chunks" if e["state"] == "partial" else e["state"]


def cli(args) -> int:
    """``semalign cache ls [--encoder E]`` / ``semalign cache clear [--encoder E]``."""
    enc = getattr(args, "encoder", None)
    if args.action == "ls":
        entries = [e for e in list_entries() if _selected(e, enc)]
        if not entries:
            print(f"no cached embeddings in {embeddings_dir()}")
            return 0
        print(f"{'encoder':20s} {'dataset':36s} {'n':>7s} {'dim':>5s} {'state':>10s} {'MB':>8s}")
        for e in entries:
            print(f"{str(e['encoder']):20s} {str(e['dataset'] or '?')[:36]:36s} {e['n'] or 0:7d} "
                  f"{e['dim'] or 0:5d} {_state(e):>10s} {e['bytes'] / 1e6:8.1f}")
        print(f"({len(entries)} entries in {embeddings_dir()})")
        damaged = [e for e in entries if e["state"] == "damaged"]
        for e in damaged:
            print(f"damaged: {e['path']}: {e['problem']}")
        if damaged:
            print("(the next embed of a damaged entry recomputes what is damaged; "
                  "`semalign cache clear` removes it)")
        return 0
    if args.action == "clear":
        try:
            removed = clear(enc)
        except CacheError as err:  # say what was removed, then the one-line error (exit 2)
            for e in getattr(err, "removed", []):
                print(f"removed {e['path']}", file=sys.stderr)
            raise
        for e in removed:
            print(f"removed {e['path']} ({e['encoder']}, {e['dataset'] or '?'}, {_state(e)}, "
                  f"{e['bytes'] / 1e6:.1f} MB)", file=sys.stderr)
        n = len(removed)
        print(f"removed {n} cache entr{'y' if n == 1 else 'ies'}" + (f" of {enc}" if enc else ""),
              file=sys.stderr)
        return 0
    print(f"unknown cache action {args.action!r}", file=sys.stderr)
    return 2
