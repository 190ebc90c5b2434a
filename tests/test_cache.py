"""embed_cached: hits, misses on every part of the key, corrupt files detected and recomputed,
resumption after an interruption, and a process killed mid-write leaves no half entry."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from semalign.cache import CacheWarning, cli, embed_cached, embeddings_dir, list_entries
from semalign.encoders import Encoder


class Toy(Encoder):
    """Deterministic text encoder that counts how many texts it embedded."""

    def __init__(self, name="toy", dim=4, pooling="mean", revision="r1", fail_after=None):
        super().__init__(name, "text", "general", dim,
                         spec={"kind": "toy", "pooling": pooling, "revision": revision})
        self.calls = 0
        self.fail_after = fail_after

    def _embed_batch(self, batch):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += len(batch)
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for i, t in enumerate(batch):
            rng = np.random.default_rng(abs(hash(t)) % (2**32))
            out[i] = rng.standard_normal(self.dim)
        return out


TEXTS = [f"report {i} " + "x" * (i % 7) for i in range(20)]
IDS = [f"id{i}" for i in range(20)]


def test_hit_returns_the_same_and_computes_nothing():
    enc = Toy()
    a = embed_cached(enc, TEXTS, IDS, "ds@1", progress=False, chunk_size=6)
    assert enc.calls == 20 and a.shape == (20, 4) and a.dtype == np.float32
    np.testing.assert_array_equal(a, enc.embed(TEXTS, progress=False))
    enc.calls = 0
    b = embed_cached(enc, TEXTS, IDS, "ds@1", progress=False, chunk_size=6)
    assert enc.calls == 0
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change", ["ids", "order", "revision", "pooling", "dataset", "subset"])
def test_miss_when_any_part_of_the_key_changes(change):
    enc = Toy()
    embed_cached(enc, TEXTS, IDS, "ds@1", progress=False)
    texts, ids, dataset = list(TEXTS), list(IDS), "ds@1"
    if change == "ids":
        ids[3] = "other"
    elif change == "order":
        texts, ids = texts[::-1], ids[::-1]
    elif change == "revision":
        enc = Toy(revision="r2")
    elif change == "pooling":
        enc = Toy(pooling="cls")
    elif change == "dataset":
        dataset = "ds@2"
    elif change == "subset":
        texts, ids = texts[:-1], ids[:-1]
    enc.calls = 0
    out = embed_cached(enc, texts, ids, dataset, progress=False)
    assert enc.calls == len(texts)
    if change == "order":  # rows follow the ids, whatever the order
        np.testing.assert_array_equal(out[::-1], embed_cached(Toy(), TEXTS, IDS, "ds@1", progress=False))


def _final_file():
    (f,) = embeddings_dir().glob("*/*/embeddings.npy")
    return f


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop_sidecar", "edit_sidecar"])
def test_corrupt_entry_is_detected_and_recomputed(damage):
    enc = Toy()
    good = embed_cached(enc, TEXTS, IDS, "ds@1", progress=False)
    f = _final_file()
    data = bytearray(f.read_bytes())
    if damage == "truncate":
        f.write_bytes(bytes(data[: len(data) - 17]))
    elif damage == "flip":
        data[len(data) - 5] ^= 0x01  # one bit of one float: still a valid .npy
        f.write_bytes(bytes(data))
    elif damage == "drop_sidecar":
        f.with_suffix(".json").unlink()
    else:
        side = json.loads(f.with_suffix(".json").read_text())
        side["sha256"] = "0" * 64
        f.with_suffix(".json").write_text(json.dumps(side))
    enc.calls = 0
    with pytest.warns(CacheWarning):
        again = embed_cached(enc, TEXTS, IDS, "ds@1", progress=False)
    assert enc.calls == 20
    np.testing.assert_array_equal(again, good)
    enc.calls = 0
    embed_cached(enc, TEXTS, IDS, "ds@1", progress=False)  # repaired: a clean hit now
    assert enc.calls == 0


def test_interrupted_run_resumes_from_saved_chunks():
    enc = Toy(fail_after=10)
    with pytest.raises(KeyboardInterrupt):
        embed_cached(enc, TEXTS, IDS, "ds@1", progress=False, chunk_size=5, batch_size=5)
    (entry,) = list_entries()
    assert not entry["complete"] and entry["chunks"] == 2
    enc.fail_after, enc.calls = None, 0
    out = embed_cached(enc, TEXTS, IDS, "ds@1", progress=False, chunk_size=5, batch_size=5)
    assert enc.calls == 10  # only the two missing chunks
    np.testing.assert_array_equal(out, Toy().embed(TEXTS, progress=False))
    (entry,) = list_entries()
    assert entry["complete"] and entry["chunks"] == 0


def test_corrupt_chunk_is_recomputed_on_resume():
    enc = Toy(fail_after=10)
    with pytest.raises(KeyboardInterrupt):
        embed_cached(enc, TEXTS, IDS, "ds@1", progress=False, chunk_size=5, batch_size=5)
    chunk = sorted(embeddings_dir().glob("*/*/chunk-00000.npy"))[0]
    chunk.write_bytes(chunk.read_bytes()[:-3])
    enc.fail_after, enc.calls = None, 0
    with pytest.warns(CacheWarning):
        out = embed_cached(enc, TEXTS, IDS, "ds@1", progress=False, chunk_size=5, batch_size=5)
    assert enc.calls == 15
    np.testing.assert_array_equal(out, Toy().embed(TEXTS, progress=False))


def test_bad_arguments():
    enc = Toy()
    with pytest.raises(ValueError, match="ids"):
        embed_cached(enc, TEXTS, IDS[:-1], "ds@1", progress=False)
    with pytest.raises(ValueError, match="unique"):
        embed_cached(enc, TEXTS[:2], ["a", "a"], "ds@1", progress=False)
    with pytest.raises(ValueError, match="dataset"):
        embed_cached(enc, TEXTS, IDS, "", progress=False)


def test_cli_ls_and_clear(capsys):
    from types import SimpleNamespace

    embed_cached(Toy(name="a"), TEXTS, IDS, "ds@1", progress=False)
    embed_cached(Toy(name="b"), TEXTS, IDS, "ds@1", progress=False)
    assert cli(SimpleNamespace(action="ls", encoder=None)) == 0
    out = capsys.readouterr().out
    assert "ds@1" in out and "complete" in out and "2 entries" in out
    assert cli(SimpleNamespace(action="clear", encoder="a")) == 0
    assert [e["encoder"] for e in list_entries()] == ["b"]
    assert cli(SimpleNamespace(action="clear", encoder=None)) == 0
    assert list_entries() == []


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import semalign._io as io_
    from semalign.cache import embed_cached
    from semalign.encoders import Encoder

    # make every file write slow, so the kill lands inside one
    _orig = io_.atomic_write_bytes
    def slow_write(path, data):
        with io_.atomic_write(path, "wb") as f:
            half = len(data) // 2
            f.write(data[:half]); f.flush()
            print("WRITING", path, flush=True)
            time.sleep(0.4)
            f.write(data[half:])
    import os
    import semalign.cache as c
    if os.environ.get("SLOW_WRITES"):
        c.atomic_write_bytes = slow_write

    class E(Encoder):
        def _embed_batch(self, batch):
            return np.array([[len(t), 1.0, 2.0] for t in batch], dtype=np.float32)

    enc = E("killme", "text", "general", 3, spec={"kind": "t"})
    texts = [f"t{i}" * (i % 5 + 1) for i in range(40)]
    embed_cached(enc, texts, [str(i) for i in range(40)], "ds@k", progress=False, chunk_size=4)
    print("DONE", flush=True)
""")


def test_process_killed_mid_write_leaves_no_half_entry(tmp_path):
    script = tmp_path / "kill_me.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env=dict(env, SLOW_WRITES="1"))
    writes = 0
    deadline = time.time() + 60
    try:
        for line in proc.stdout:  # kill during the 4th file write
            if line.startswith("WRITING"):
                writes += 1
                if writes == 4:
                    time.sleep(0.1)
                    proc.send_signal(signal.SIGKILL)
                    break
            assert time.time() < deadline
    finally:
        proc.kill()
        proc.wait()
    assert writes == 4
    d = embeddings_dir() / "killme"
    assert not list(d.glob("*/embeddings.npy"))
    # every visible chunk is complete and checks out; leftovers are only hidden temp files
    from semalign.cache import _read_checked

    chunks = sorted(d.glob("*/chunk-*.npy"))
    assert 1 <= len(chunks) <= 3
    for c in chunks:
        side = json.loads(c.with_suffix(".json").read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arr = _read_checked(c, {"shape": side["shape"]})
        assert arr is not None and arr.shape == (4, 3)
    assert all(p.name.startswith(".") for p in d.glob("*/*") if p.suffix not in (".npy", ".json"))
    # the next run resumes and completes; the result equals a fresh computation
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert "DONE" in done.stdout, done.stderr
    assert len(list(d.glob("*/embeddings.npy"))) == 1
    arr = np.load(next(d.glob("*/embeddings.npy")))
    texts = [f"t{i}" * (i % 5 + 1) for i in range(40)]
    np.testing.assert_array_equal(arr[:, 0], [len(t) for t in texts])


# --------------------------------------------------------------------------------------------
# the key covers the inputs' content, not only their ids
# --------------------------------------------------------------------------------------------
def test_changed_text_behind_the_same_id_is_a_miss():
    enc = Toy()
    before = embed_cached(enc, TEXTS, IDS, "ds@1", progress=False)
    texts = list(TEXTS)
    texts[5] = "report 5 parsed by the new parser"
    enc.calls = 0
    after = embed_cached(enc, texts, IDS, "ds@1", progress=False)
    assert enc.calls == 20, "a stale embedding was served for a changed text"
    np.testing.assert_array_equal(after, enc.embed(texts, progress=False))
    assert not np.array_equal(after[5], before[5])
    enc.calls = 0
    embed_cached(enc, texts, IDS, "ds@1", progress=False)  # the same content again: a hit
    embed_cached(enc, TEXTS, IDS, "ds@1", progress=False)  # the old content's entry is still there
    assert enc.calls == 0


class ToyImage(Encoder):
    """Image encoder over file paths or arrays: the vector is a function of the bytes it reads."""

    def __init__(self, dim=3):
        super().__init__("toyimg", "image", "general", dim, spec={"kind": "toyimg"})
        self.calls = 0

    def _embed_batch(self, batch):
        self.calls += len(batch)
        rows = []
        for x in batch:
            b = Path(x).read_bytes() if isinstance(x, (str, os.PathLike)) else np.asarray(x).tobytes()
            a = np.frombuffer(b, dtype=np.uint8).astype(np.float32)
            rows.append([a.sum(), (a * np.arange(len(a))).sum() % 9973, len(a)])
        return np.asarray(rows, dtype=np.float32)


def _pgm(rng, size=16) -> bytes:
    return f"P5 {size} {size} 255\n".encode() + rng.integers(0, 256, size * size, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("how", ["rewritten", "same_size_and_mtime", "renamed_over"])
def test_image_file_replaced_at_the_same_path_is_a_miss(tmp_path, how, monkeypatch):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        p = tmp_path / f"img{i}.pgm"
        p.write_bytes(_pgm(rng))
        paths.append(str(p))
    ids = [f"img{i}" for i in range(4)]
    enc = ToyImage()
    before = embed_cached(enc, paths, ids, "imgs@1", progress=False)
    assert enc.calls == 4
    target = Path(paths[2])
    st = target.stat()
    time.sleep(0.05)  # file timestamps tick in jiffies: let the clock move past the first stat
    new = _pgm(rng)
    assert len(new) == st.st_size and new != target.read_bytes()
    if how == "rewritten":
        target.write_bytes(new)
    elif how == "same_size_and_mtime":  # like cp -p / shutil.copy2 from an equal-sized file
        target.write_bytes(new)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (target.stat().st_size, target.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    else:
        other = tmp_path / "incoming.pgm"
        other.write_bytes(new)
        os.replace(other, target)
    enc.calls = 0
    after = embed_cached(enc, paths, ids, "imgs@1", progress=False)
    assert enc.calls == 4, "a stale embedding was served for a replaced image file"
    np.testing.assert_array_equal(after, enc.embed(paths, progress=False))
    assert not np.array_equal(after[2], before[2])
    # unchanged files are not read again to check them: stat only (sha256 memoised)
    import semalign.cache as cache_mod

    reads = []
    monkeypatch.setattr(cache_mod, "sha256_file", lambda p: reads.append(p) or "x")
    enc.calls = 0
    np.testing.assert_array_equal(embed_cached(enc, paths, ids, "imgs@1", progress=False), after)
    assert enc.calls == 0 and reads == []


def test_changed_image_array_behind_the_same_id_is_a_miss():
    imgs = np.random.default_rng(1).integers(0, 256, size=(5, 8, 8), dtype=np.uint8)
    ids = [f"a{i}" for i in range(5)]
    enc = ToyImage()
    embed_cached(enc, imgs, ids, "arr@1", progress=False)
    enc.calls = 0
    embed_cached(enc, imgs.copy(), ids, "arr@1", progress=False)
    assert enc.calls == 0  # same bytes: a hit
    for changed in (imgs.copy(), imgs.astype(np.float32), imgs.reshape(5, 4, 16)):
        if changed.dtype == np.uint8 and changed.shape == imgs.shape:
            changed[3, 0, 0] ^= 1
        enc.calls = 0
        embed_cached(enc, changed, ids, "arr@1", progress=False)
        assert enc.calls == 5, f"stale hit for a changed array ({changed.dtype}, {changed.shape})"


# --------------------------------------------------------------------------------------------
# out-of-memory back-off carries over from chunk to chunk
# --------------------------------------------------------------------------------------------
class OOMToy(Toy):
    """Runs out of memory on batches larger than ``fits``, like a GPU would."""

    def __init__(self, fits=4):
        super().__init__(name="oomtoy")
        self.fits, self.ooms, self.batches = fits, 0, []

    def _embed_batch(self, batch):
        self.batches.append(len(batch))
        if len(batch) > self.fits:
            self.ooms += 1
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return super()._embed_batch(batch)


def test_oom_back_off_is_carried_to_the_next_chunks():
    texts = [f"report {i} " + "y" * (i % 5) for i in range(24)]
    ids = [f"r{i}" for i in range(24)]
    enc = OOMToy(fits=4)
    out = embed_cached(enc, texts, ids, "oom@1", progress=False, chunk_size=8, batch_size=8)
    assert enc.ooms == 1, f"{enc.ooms} OOMs (batches tried: {enc.batches}); only the first chunk backs off"
    assert enc.batches == [8, 4, 4] + [4, 4] * 2
    np.testing.assert_array_equal(out, Toy().embed(texts, progress=False))


# --------------------------------------------------------------------------------------------
# a real input error in chunk k: earlier chunks survive, nothing final, the rerun resumes
# --------------------------------------------------------------------------------------------
class ImageReader(Encoder):
    """Image encoder that reads every path with the real :func:`semalign.images.read_image`
    (so a bad file raises the reader's own :class:`ImageReadError`) and records what it read.

    ``undecodable`` paths fail like a compressed DICOM without its decoder installed: the bytes
    are fine, only this environment cannot decode them, so fixing it (installing the decoder)
    leaves the inputs, hence the cache key, unchanged."""

    def __init__(self):
        super().__init__("reader", "image", "general", 3, spec={"kind": "reader"})
        self.calls, self.read, self.undecodable = 0, [], set()

    def _embed_batch(self, batch):
        from semalign.images import ImageReadError, read_image

        rows = []
        for x in batch:
            if str(x) in self.undecodable:
                raise ImageReadError(f"{x}: cannot decode the DICOM pixels (simulated: JPEG 2000 "
                                     f"decoder not installed). Install a decoder.")
            a = read_image(x).astype(np.float32)
            self.calls += 1
            self.read.append(str(x))
            rows.append([a.mean(), a.std(), (a * np.arange(a.size).reshape(a.shape)).sum() % 9973])
        return np.asarray(rows, dtype=np.float32)


def test_input_error_in_chunk_k_keeps_earlier_chunks_and_the_rerun_resumes(tmp_path, monkeypatch):
    import semalign.cache as cache_mod
    from semalign.cache import _read_checked
    from semalign.images import ImageReadError

    rng = np.random.default_rng(7)
    paths = []
    for i in range(12):  # chunks of 3: chunk 0 = items 0-2, ..., chunk 3 = items 9-11
        p = tmp_path / f"img{i:02d}.pgm"
        p.write_bytes(_pgm(rng))
        paths.append(str(p))
    ids = [f"img{i}" for i in range(12)]
    args = dict(progress=False, chunk_size=3, batch_size=1)
    ref = ImageReader().embed(paths, progress=False)  # what an uninterrupted run computes
    bad = paths[7]  # second item of chunk k = 2: item 6 of that chunk is embedded before it fails

    # 1. the real reader's error on a truncated copy names the file (what the user would see)
    truncated = tmp_path / "truncated.pgm"
    truncated.write_bytes(Path(bad).read_bytes()[:-40])
    with pytest.raises(ImageReadError, match="truncated") as err:
        ImageReader().embed([str(truncated)], progress=False)
    assert str(truncated) in str(err.value)

    # 2. an input error in chunk 2 propagates, as is, naming the bad input
    enc = ImageReader()
    enc.undecodable = {bad}
    with pytest.raises(ImageReadError) as err:
        embed_cached(enc, paths, ids, "imgs@err", **args)
    assert bad in str(err.value), f"the error does not name the bad input: {err.value}"
    assert enc.read == paths[:7]

    # chunks 0 and 1 are on disk and check out; nothing of chunk 2 or later, no final entry
    entries = list_entries()
    assert len(entries) == 1, f"the failed run left {len(entries)} cache entries, not its partial one"
    (entry,) = entries
    d = Path(entry["path"])
    assert not entry["complete"], "a final entry was written although the run failed"
    assert entry["chunks"] == 2, f"{entry['chunks']} chunks kept, expected chunks 0 and 1"
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) == [
        "chunk-00000.json", "chunk-00000.npy", "chunk-00001.json", "chunk-00001.npy", "meta.json"]
    kept = {}
    for k in (0, 1):
        c = d / f"chunk-{k:05d}.npy"
        side = json.loads(c.with_suffix(".json").read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a CacheWarning (invalid chunk) fails the test
            arr = _read_checked(c, {"shape": side["shape"]})
        np.testing.assert_array_equal(arr, ref[3 * k:3 * k + 3])
        kept[c] = (c.read_bytes(), c.stat().st_mtime_ns, c.stat().st_ino)

    written = []
    real_write = cache_mod._write_checked
    monkeypatch.setattr(cache_mod, "_write_checked",
                        lambda path, arr, extra: written.append(path.name) or real_write(path, arr, extra))

    # 3. a retry before the fix fails again at the same input, and neither recomputes nor
    #    rewrites the kept chunks
    enc.calls, enc.read = 0, []
    with pytest.raises(ImageReadError, match=re.escape(bad)):
        embed_cached(enc, paths, ids, "imgs@err", **args)
    assert enc.read == paths[6:7], f"the retry read {enc.read}: it recomputed the kept chunks"
    assert written == [], f"the failed retry wrote {written}"
    for c, (data, mtime, ino) in kept.items():
        assert (c.read_bytes(), c.stat().st_mtime_ns, c.stat().st_ino) == (data, mtime, ino), \
            f"{c.name} was rewritten by the failed retry"

    # 4. fixed (the decoder is installed; the file is unchanged): only chunks 2 and 3 are computed
    enc.undecodable.clear()
    enc.calls, enc.read = 0, []
    out = embed_cached(enc, paths, ids, "imgs@err", **args)
    assert enc.read == paths[6:], f"the rerun read {enc.read}, not only the items of chunks 2 and 3"
    assert enc.calls == 6
    assert written == ["chunk-00002.npy", "chunk-00003.npy", "embeddings.npy"], \
        f"the rerun wrote {written}: the kept chunks must be read, not recomputed or rewritten"
    np.testing.assert_array_equal(out, ref)
    (entry,) = list_entries()
    assert entry["complete"] and entry["chunks"] == 0
    enc.calls = 0
    np.testing.assert_array_equal(embed_cached(enc, paths, ids, "imgs@err", **args), ref)
    assert enc.calls == 0
