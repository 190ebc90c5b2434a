"""Faults of the embedding cache (issue #9): a damaged entry, whatever its bytes, is detected,
recomputed, listed and cleared; concurrent processes share an entry through its lock; `cache
clear` reports exactly what it removed and fails clearly for what it could not; a full or
read-only disk leaves every finished chunk valid and no half file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import semalign.cache as cache_mod
from semalign._io import atomic_write, file_lock
from semalign.cache import (CacheError, CacheWarning, CacheWriteError, clear, embed_cached, entry_dir,
                            list_entries)
from semalign.errors import SemalignError

# A fake encoder in the shape embed_cached needs (name, dim, modality, fingerprint(), embed(),
# _sort_key), shared verbatim by the tests and by the worker processes they start. Every call to
# embed() leaves a file in $CALLS_DIR, so "each chunk computed exactly once overall" is countable
# across processes; with $GATE set, the first call waits until that file exists.
ENCODER_SRC = textwrap.dedent('''
    import os, time
    from pathlib import Path
    import numpy as np

    class SlowToy:
        name, dim, modality = "slowtoy", 3, "text"

        def __init__(self, gate=None, calls_dir=None, delay=0.0):
            self.gate, self.calls_dir, self.delay, self.calls = gate, calls_dir, delay, 0

        def fingerprint(self):
            return {"name": self.name, "kind": "slowtoy", "dim": self.dim}

        def _sort_key(self, text):
            return len(text)

        def embed(self, texts, batch_size=None, progress=False):
            texts = list(texts)
            self.calls += len(texts)
            if self.calls_dir:
                Path(self.calls_dir, f"{os.getpid()}-{self.calls}").write_text("\\n".join(texts))
            if self.gate:
                gate, self.gate = self.gate, None  # only the first chunk waits
                deadline = time.monotonic() + 60
                while not os.path.exists(gate):
                    if time.monotonic() > deadline:
                        raise SystemExit("gate never opened")
                    time.sleep(0.02)
            time.sleep(self.delay)
            return np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)
''')
exec(ENCODER_SRC)  # defines SlowToy here

TEXTS = [f"text {i} " + "y" * (i % 4) for i in range(24)]
IDS = [f"i{i}" for i in range(24)]
DS = "slow@1"
CHUNK = 4  # 6 chunks

WORKER = ENCODER_SRC + textwrap.dedent(f'''
    import sys, warnings
    from semalign.cache import CacheWarning, embed_cached
    warnings.simplefilter("error", CacheWarning)  # a warning fails the worker
    calls_dir, out, started = sys.argv[1:4]
    enc = SlowToy(gate=os.environ.get("GATE"), calls_dir=calls_dir, delay=0.05)
    Path(started).write_text("started")
    arr = embed_cached(enc, {TEXTS!r}, {IDS!r}, {DS!r}, progress=False, chunk_size={CHUNK})
    np.save(out, arr)
''')


def _reference() -> np.ndarray:
    return SlowToy().embed(TEXTS)


def _embed(enc=None, **kw) -> np.ndarray:
    return embed_cached(enc or SlowToy(), TEXTS, IDS, DS, progress=False, chunk_size=CHUNK, **kw)


def _entry() -> Path:
    return entry_dir(SlowToy(), IDS, DS, TEXTS)


def _wait_for(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _start_worker(tmp_path: Path, tag: str, gate: Path | None = None) -> tuple[subprocess.Popen, Path, Path]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    calls = tmp_path / "calls"
    calls.mkdir(exist_ok=True)
    out, started = tmp_path / f"{tag}.npy", tmp_path / f"{tag}.started"
    env = dict(os.environ)
    # the worker imports the same semalign as this test (a checkout, not only an installed copy)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(cache_mod.__file__).parents[1]),
                                                      env.get("PYTHONPATH")]))
    env.pop("GATE", None)
    if gate is not None:
        env["GATE"] = str(gate)
    proc = subprocess.Popen([sys.executable, str(script), str(calls), str(out), str(started)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, out, started


def _finish(proc: subprocess.Popen) -> None:
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, f"worker failed (exit {proc.returncode}):\n{err}"


def _chunk_calls(tmp_path: Path) -> Counter:
    return Counter(p.read_text() for p in (tmp_path / "calls").iterdir())


# --------------------------------------------------------------------------------------------
# 1. damaged entries, whatever their bytes
# --------------------------------------------------------------------------------------------
WRONG_SHAPES = {"list": b"[]", "null": b"null", "n_text": b'{"n": "abc"}', "bytes_text": b'{"bytes": "x"}',
                "number": b"42", "garbage": b"\xff\xfe\x00not json\x07"}


def _damage(p: Path, how: str, tmp_path: Path) -> Path | None:
    """Damage the file at ``p``; returns a file outside the cache that must survive, if any."""
    if how in WRONG_SHAPES:
        p.write_bytes(WRONG_SHAPES[how])
    elif how == "directory":
        _remove(p)
        (p / "inner").mkdir(parents=True)
        (p / "inner" / "x").write_text("x")
    elif how == "symlink":  # to a copy of the good file, outside the cache
        outside = tmp_path / "outside" / p.name
        outside.parent.mkdir(exist_ok=True)
        shutil.copy(p, outside)
        p.unlink()
        p.symlink_to(outside)
        return outside
    else:
        raise AssertionError(how)
    return None


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)


def _ls_clear_and_check(capsys) -> None:
    """`cache ls` shows the entry as damaged, `cache clear` removes it, nothing is left."""
    from semalign.cli import main

    (entry,) = list_entries()
    assert entry["state"] == "damaged", entry
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "1 entries" in out and "damaged" in out
    assert main(["cache", "clear"]) == 0
    err = capsys.readouterr().err
    assert entry["path"] in err and "removed 1 cache entry" in err
    assert list_entries() == []
    assert not os.path.lexists(entry["path"])


FILE_DAMAGE = list(WRONG_SHAPES) + ["directory", "symlink"]


@pytest.mark.parametrize("how", FILE_DAMAGE)
@pytest.mark.parametrize("target", ["embeddings.json", "embeddings.npy", "meta.json"])
def test_damaged_file_of_a_complete_entry_is_recomputed_listed_and_cleared(target, how, tmp_path, capsys):
    good = _embed()
    p = _entry() / target
    outside = _damage(p, how, tmp_path)
    outside_bytes = outside.read_bytes() if outside else None

    (entry,) = list_entries()  # never crashes, and flags it
    assert entry["state"] == "damaged" and entry["problem"], entry
    enc = SlowToy()
    with pytest.warns(CacheWarning):
        again = _embed(enc)
    np.testing.assert_array_equal(again, good)
    if target == "meta.json":
        assert enc.calls == 0  # the embeddings are verified: only meta.json is rewritten
    else:
        assert enc.calls == len(TEXTS)
    if outside is not None:  # a symlink is replaced, what it pointed to is left alone
        assert outside.read_bytes() == outside_bytes
        assert not p.is_symlink()
    # repaired: a clean hit, listed complete
    enc = SlowToy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(_embed(enc), good)
    assert enc.calls == 0
    (entry,) = list_entries()
    assert entry["state"] == "complete" and entry["complete"] and entry["dataset"] == DS and entry["n"] == 24

    _damage(p, how, tmp_path)  # damaged again: ls and clear cope
    _ls_clear_and_check(capsys)
    if outside is not None:
        assert outside.exists()


@pytest.mark.parametrize("how", FILE_DAMAGE)
@pytest.mark.parametrize("target", ["chunk-00001.json", "chunk-00001.npy"])
def test_damaged_chunk_is_recomputed_on_resume(target, how, tmp_path, capsys):
    enc = SlowToy()
    calls = {"n": 0}
    real_embed = enc.embed

    def interrupted(texts, **kw):  # the third chunk is interrupted
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_embed(texts, **kw)

    enc.embed = interrupted
    with pytest.raises(KeyboardInterrupt):
        _embed(enc)
    _damage(_entry() / target, how, tmp_path)
    (entry,) = list_entries()  # never crashes
    assert entry["state"] in ("partial", "damaged")
    enc = SlowToy()
    with pytest.warns(CacheWarning, match="chunk-00001"):
        out = _embed(enc)
    assert enc.calls == len(TEXTS) - CHUNK  # chunk 0 reused, chunk 1 recomputed, the rest computed
    np.testing.assert_array_equal(out, _reference())


@pytest.mark.parametrize("how", ["symlink", "file"])
@pytest.mark.parametrize("level", ["entry", "encoder folder"])
def test_file_or_symlink_where_a_folder_should_be(level, how, tmp_path, capsys):
    good = _embed()
    d = _entry()
    p = d if level == "entry" else d.parent
    outside = tmp_path / "elsewhere"
    shutil.copytree(p, outside)  # a complete copy: following the link would give a hit
    before = sorted((q.relative_to(outside), q.read_bytes()) for q in outside.rglob("*") if q.is_file())
    shutil.rmtree(p)
    if how == "symlink":
        p.symlink_to(outside, target_is_directory=True)
    else:
        p.write_text("not a folder")

    (entry,) = list_entries()
    assert entry["state"] == "damaged" and entry["path"] == str(p)
    enc = SlowToy()
    with pytest.warns(CacheWarning):
        np.testing.assert_array_equal(_embed(enc), good)
    assert enc.calls == len(TEXTS) and d.is_dir() and not d.is_symlink() and not d.parent.is_symlink()
    assert [e["state"] for e in list_entries()] == ["complete"]

    shutil.rmtree(p)
    if how == "symlink":
        p.symlink_to(outside, target_is_directory=True)
    else:
        p.write_text("not a folder")
    _ls_clear_and_check(capsys)
    # clear removed the link, never what it points to
    after = sorted((q.relative_to(outside), q.read_bytes()) for q in outside.rglob("*") if q.is_file())
    assert after == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("target", ["embeddings.json", "meta.json"])
def test_fifo_where_a_file_should_be_is_never_opened(target, capsys):
    good = _embed()
    p = _entry() / target
    p.unlink()
    os.mkfifo(p)  # reading it would block forever
    (entry,) = list_entries()
    assert entry["state"] == "damaged"
    with pytest.warns(CacheWarning):
        np.testing.assert_array_equal(_embed(), good)
    os.unlink(p)
    os.mkfifo(p)
    _ls_clear_and_check(capsys)


def test_entry_without_meta_is_listed_and_cleared(capsys):
    _embed()
    (_entry() / "meta.json").unlink()
    (entry,) = list_entries()
    assert entry["encoder"] == "slowtoy" and entry["state"] == "damaged" and "meta.json" in entry["problem"]
    enc = SlowToy()
    _embed(enc)  # a hit that also rewrites meta.json
    assert enc.calls == 0
    (entry,) = list_entries()
    assert entry["state"] == "complete" and entry["dataset"] == DS
    (_entry() / "meta.json").unlink()
    assert [e["path"] for e in clear("slowtoy")] == [str(_entry())]  # found by its folder name
    assert list_entries() == [] and not _entry().exists()


def test_files_memo_of_the_wrong_shape_is_only_a_miss(tmp_path):
    from semalign.cache import _files_memo_path, inputs_digest

    img = tmp_path / "a.bin"
    img.write_bytes(b"abc")
    ref = inputs_digest([str(img)], "image")
    for junk in (b"[]", b"null", b"42", json.dumps({os.path.abspath(img): 7}).encode(),
                 json.dumps({os.path.abspath(img): ["x"]}).encode()):
        _files_memo_path().write_bytes(junk)
        assert inputs_digest([str(img)], "image") == ref


# --------------------------------------------------------------------------------------------
# 2. concurrency: one lock per entry
# --------------------------------------------------------------------------------------------
def test_two_processes_embedding_the_same_key_compute_each_chunk_once(tmp_path):
    gate = tmp_path / "gate"
    a, out_a, started_a = _start_worker(tmp_path, "a", gate=gate)
    try:
        # A is inside its first chunk (and holds the entry lock), waiting for the gate
        _wait_for(lambda: any((tmp_path / "calls").iterdir()) or a.poll() is not None, "worker A")
        b, out_b, started_b = _start_worker(tmp_path, "b")
        try:
            _wait_for(lambda: started_b.exists() or b.poll() is not None, "worker B")
            time.sleep(1.0)  # let B reach the entry (without a lock it would now compute it all)
            gate.write_text("go")
            _finish(a)
            _finish(b)
        finally:
            b.kill()
    finally:
        gate.write_text("go")
        a.kill()
    np.testing.assert_array_equal(np.load(out_a), np.load(out_b))
    np.testing.assert_array_equal(np.load(out_a), _reference())
    calls = _chunk_calls(tmp_path)
    assert len(calls) == len(TEXTS) // CHUNK and set(calls.values()) == {1}, \
        f"chunks computed more than once across the two processes: {calls.values()}"
    (entry,) = list_entries()
    assert entry["state"] == "complete"


def test_clear_does_not_remove_an_entry_being_filled(tmp_path, capsys):
    gate = tmp_path / "gate"
    a, out_a, _ = _start_worker(tmp_path, "a", gate=gate)
    try:
        _wait_for(lambda: any((tmp_path / "calls").iterdir()) or a.poll() is not None, "worker A")
        with pytest.raises(CacheError, match="in use") as err:
            clear(lock_timeout=0.3)
        assert str(_entry()) in str(err.value) and err.value.removed == []
        assert isinstance(err.value, SemalignError)
        (entry,) = list_entries()
        assert entry["path"] == str(_entry()) and (_entry() / "meta.json").exists()
        gate.write_text("go")
        _finish(a)
    finally:
        gate.write_text("go")
        a.kill()
    (entry,) = list_entries()  # the embed finished a visible, complete entry
    assert entry["state"] == "complete" and entry["dataset"] == DS
    enc = SlowToy()
    np.testing.assert_array_equal(_embed(enc), np.load(out_a))
    assert enc.calls == 0
    assert [e["path"] for e in clear()] == [str(_entry())]
    assert list_entries() == []


def test_embed_waiting_while_clear_removes_the_entry_makes_a_complete_visible_one(tmp_path):
    d = _entry()
    d.mkdir(parents=True)
    with file_lock(d / ".lock"):  # what clear holds while it removes the entry
        b, out_b, started_b = _start_worker(tmp_path, "b")
        try:
            _wait_for(lambda: started_b.exists() or b.poll() is not None, "worker B")
            time.sleep(1.0)  # B is now waiting for the lock (it opened the old .lock file)
            shutil.rmtree(d)  # clear removes the folder, its .lock included, then releases
        except BaseException:
            b.kill()
            raise
    _finish(b)
    np.testing.assert_array_equal(np.load(out_b), _reference())
    (entry,) = list_entries()
    assert entry["state"] == "complete" and entry["dataset"] == DS and entry["n"] == len(TEXTS), \
        "the embed produced an entry invisible to `cache ls` / `cache clear`"
    enc = SlowToy()
    np.testing.assert_array_equal(_embed(enc), _reference())
    assert enc.calls == 0


def test_a_verified_hit_takes_no_lock(monkeypatch):
    good = _embed()
    monkeypatch.setattr(cache_mod, "LOCK_TIMEOUT", 0.2)
    with file_lock(_entry() / ".lock"):  # another process computing or clearing
        enc = SlowToy()
        np.testing.assert_array_equal(_embed(enc), good)
        assert enc.calls == 0

    def no_lock(*a, **kw):  # a read-only cache: the lock file cannot even be opened
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cache_mod, "file_lock", no_lock)
    (_entry() / "meta.json").unlink()  # only meta.json to repair: best effort, the hit is served
    np.testing.assert_array_equal(_embed(SlowToy()), good)


# --------------------------------------------------------------------------------------------
# 3. clear reports what it removed, and fails clearly for what it could not
# --------------------------------------------------------------------------------------------
@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: removing anything in ``folder`` fails as in a read-only folder
    (PermissionError) — for root too, whom chmod does not stop."""
    protected: list[str] = []

    def denied(p) -> bool:
        p = os.path.abspath(os.fspath(p))
        return any(p == q or p.startswith(q + os.sep) for q in protected)

    def guard(real):
        def op(path, *a, dir_fd=None, **kw):
            if dir_fd is None and denied(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real(path, *a, dir_fd=dir_fd, **kw) if dir_fd is not None else real(path, *a, **kw)
        return op

    for name in ("unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    real_rename, real_rmtree = os.rename, shutil.rmtree

    def rename(src, dst, *a, **kw):
        if denied(src) or denied(dst):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(src))
        return real_rename(src, dst, *a, **kw)

    def rmtree(path, ignore_errors=False, *a, **kw):
        if denied(path):  # nothing inside can be removed
            if ignore_errors:
                return None
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_rmtree(path, ignore_errors, *a, **kw)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    return lambda folder: protected.append(os.path.abspath(folder))


def _two_entries():
    a, b = SlowToy(), SlowToy()
    a.name, b.name = "enc-a", "enc-b"
    good = embed_cached(a, TEXTS, IDS, DS, progress=False, chunk_size=CHUNK)
    embed_cached(b, TEXTS, IDS, DS, progress=False, chunk_size=CHUNK)
    da, db = (Path(e["path"]) for e in sorted(list_entries(), key=lambda e: e["encoder"]))
    return a, good, da, db


def _clear_fails_clearly_on(da: Path, db: Path, a, good, capsys) -> None:
    from semalign.cli import main

    assert main(["cache", "clear"]) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines[-1].startswith("semalign cache: error: removed 1 of 2 cache entries"), err
    assert str(da) in lines[-1] and "writable" in lines[-1], err
    assert any(x == f"removed {db}" for x in lines), f"the entry it did remove is not reported:\n{err}"
    assert [e["path"] for e in list_entries()] == [str(da)]
    a.calls = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the failed clear left it whole: a clean hit
        np.testing.assert_array_equal(embed_cached(a, TEXTS, IDS, DS, progress=False, chunk_size=CHUNK), good)
    assert a.calls == 0


def test_clear_fails_clearly_for_an_entry_it_cannot_remove(read_only, capsys):
    a, good, da, db = _two_entries()
    read_only(da)
    _clear_fails_clearly_on(da, db, a, good, capsys)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_clear_fails_clearly_for_a_really_read_only_entry(capsys):
    a, good, da, db = _two_entries()
    da.chmod(0o555)
    try:
        _clear_fails_clearly_on(da, db, a, good, capsys)
    finally:
        da.chmod(0o755)


def test_clear_reports_each_entry_it_removed(capsys):
    from semalign.cli import main

    _, _, da, db = _two_entries()
    assert main(["cache", "clear", "--encoder", "enc-a"]) == 0
    err = capsys.readouterr().err
    assert f"removed {da} (enc-a, {DS}, complete" in err and str(db) not in err
    assert "removed 1 cache entry of enc-a" in err
    assert not da.exists() and not da.parent.exists() and db.exists()


# --------------------------------------------------------------------------------------------
# 4. disk full / read-only cache during an embed
# --------------------------------------------------------------------------------------------
def _full_disk_at(monkeypatch, name: str, err: int = errno.ENOSPC) -> None:
    """Make the atomic write of ``name`` fail half-way, as a full disk does."""
    real_bytes, real_text = cache_mod.atomic_write_bytes, cache_mod.atomic_write_text

    def failing(real, mode):
        def write(path, data):
            if Path(path).name == name:
                with atomic_write(path, mode) as f:
                    f.write(data[: len(data) // 2])
                    raise OSError(err, os.strerror(err))
            return real(path, data)
        return write

    monkeypatch.setattr(cache_mod, "atomic_write_bytes", failing(real_bytes, "wb"))
    monkeypatch.setattr(cache_mod, "atomic_write_text", failing(real_text, "w"))


@pytest.mark.parametrize("name, kept_chunks", [("chunk-00002.npy", 2), ("chunk-00002.json", 2),
                                               ("embeddings.npy", 6), ("embeddings.json", 6)])
def test_disk_full_while_writing_keeps_finished_chunks_and_the_rerun_resumes(name, kept_chunks, monkeypatch):
    with monkeypatch.context() as m:  # the disk is full until the end of this block
        _full_disk_at(m, name)
        with pytest.raises(CacheWriteError) as err:
            _embed()
    e = err.value
    assert isinstance(e, SemalignError) and isinstance(e, OSError) and e.errno == errno.ENOSPC
    assert str(_entry()) in str(e) and "SEMALIGN_CACHE" in str(e) and "\n" not in str(e)
    # finished chunks intact, nothing half-written: no temp file, no array without its sidecar
    d = _entry()
    names = sorted(os.listdir(d))
    expect = ["meta.json"] + [f"chunk-{k:05d}.{x}" for k in range(kept_chunks) for x in ("json", "npy")]
    assert [x for x in names if not x.startswith(".")] == sorted(expect)
    assert [x for x in names if x.startswith(".")] == [".lock"], f"half files left: {names}"
    enc = SlowToy()  # space freed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid chunk": what was kept is valid
        out = _embed(enc)
    assert enc.calls == len(TEXTS) - kept_chunks * CHUNK  # only the missing chunks
    np.testing.assert_array_equal(out, _reference())


@pytest.mark.parametrize("where", ["meta.json", "lock"])
@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_unwritable_cache_is_one_line_from_the_cli(err, where, monkeypatch, capsys):
    import semalign.encoders
    from semalign.cli import main

    if where == "lock":  # the whole cache is read-only: even the entry's lock cannot be made
        def no_lock(path, **kw):
            raise OSError(err, os.strerror(err), str(path))

        monkeypatch.setattr(cache_mod, "file_lock", no_lock)
    else:
        _full_disk_at(monkeypatch, "meta.json", err)
    monkeypatch.setattr(semalign.encoders, "cli", lambda args: _embed() is None)
    assert main(["embed", "slowtoy", "some-dataset"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "SEMALIGN_CACHE" in lines[0] and str(_entry()) in lines[0], lines


def test_an_encoders_own_permission_error_is_not_blamed_on_the_cache():
    enc = SlowToy()

    def unreadable(texts, **kw):  # e.g. an image file the user may not read
        raise PermissionError(errno.EACCES, "Permission denied", "/data/img0.png")

    enc.embed = unreadable
    with pytest.raises(PermissionError) as err:
        _embed(enc)
    assert not isinstance(err.value, CacheWriteError) and err.value.filename == "/data/img0.png"


@pytest.mark.parametrize("name", ["..", ".", "...", "..*", "", "/", "../.."])
def test_an_encoder_name_never_becomes_a_folder_outside_the_embeddings_folder(name):
    from semalign.cache import _safe, embeddings_dir

    folder = embeddings_dir() / _safe(name)
    assert folder.resolve().parent == embeddings_dir().resolve() and _safe(name) not in ("", ".", "..")
