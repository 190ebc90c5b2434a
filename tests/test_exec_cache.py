"""The execution cache (issue 13): a notebook whose source, parameters, package, data and recorded
reads are unchanged is reused without a kernel; any change among them executes it again.

Fast tests run the notebooks with an in-process stand-in for papermill (``_fake_kernel``), which
executes their cells in this process with the environment the book gives a kernel; the real
kernel is exercised by the slow tests at the end.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from semalign import book, runcache
from _fake_kernel import kernel, stable_package  # noqa: F401 - fixtures

PROFILE = {"name": "t", "common": {}, "notebooks": {}}

WRITER = '''# %% [markdown]
# # Writer

# %% tags=["parameters"]
profile = "none"
n = 3

# %%
import pandas as pd
from semalign import book
book.write_results(pd.DataFrame({"i": list(range(n)), "x": [0.5 * i for i in range(n)]}))
'''

READER = '''# %% tags=["parameters"]
profile = "none"

# %%
import pandas as pd
from semalign import book
up = book.read_results("07_writer")
book.write_results(pd.DataFrame({"rows_upstream": [len(up)], "sum": [float(up["x"].sum())]}))
'''

EMBEDDER = '''# %% tags=["parameters"]
profile = "none"
files = []

# %%
import numpy as np
import pandas as pd
from semalign import book
from semalign.cache import embed_cached

class Toy:
    name, dim, modality = "toy", 2, "text"
    def fingerprint(self):
        return {"name": self.name, "v": 1}
    def _sort_key(self, x):
        return len(x)
    def embed(self, items, batch_size=None, progress=False):
        return np.array([[len(t), 1.0] for t in items], np.float32)

class ToyImages(Toy):
    name, modality = "toy-img", "image"
    def embed(self, items, batch_size=None, progress=False):
        return np.array([[len(open(p, "rb").read()), 1.0] for p in items], np.float32)

e = embed_cached(Toy(), ["a", "bb", "ccc"], ids=["1", "2", "3"], dataset="toy@1", progress=False)
rows = [float(e[:, 0].sum())]
if files:
    rows.append(float(embed_cached(ToyImages(), files, ids=[str(i) for i in range(len(files))],
                                   dataset="toyimg@1", progress=False)[:, 0].sum()))
book.write_results(pd.DataFrame({"total": rows}))
'''


@pytest.fixture
def nbs(tmp_path) -> Path:
    d = tmp_path / "notebooks"
    d.mkdir()
    (d / "07_writer.py").write_text(WRITER)
    (d / "08_reader.py").write_text(READER)
    (d / "09_embedder.py").write_text(EMBEDDER)
    return d


@pytest.fixture
def out(tmp_path) -> Path:
    return tmp_path / "gen"


def go(nb: Path, out: Path, overrides=None, **kw) -> book.Outcome:
    lines: list[str] = []
    o = book.run(nb, PROFILE, overrides, out, say=lines.append, progress_prefix=None, **kw)
    o.lines = lines
    return o


# --------------------------------------------------------------------------- reuse and its key
def test_unchanged_is_reused_without_a_kernel_and_without_writing(kernel, nbs, out):
    first = go(nbs / "07_writer.py", out)
    assert kernel.runs == 1 and not first.reused and "no earlier run" in first.reason
    nb_file, res = out / "07_writer.ipynb", out / "results" / "07_writer.csv"
    stamps = (nb_file.stat().st_mtime_ns, res.stat().st_mtime_ns)
    again = go(nbs / "07_writer.py", out)
    assert kernel.runs == 1, "an unchanged notebook must not start a kernel"
    assert again.reused and again.key == first.key and again.executed == first.executed
    assert (nb_file.stat().st_mtime_ns, res.stat().st_mtime_ns) == stamps, "nothing is rewritten"
    assert again.results == [res] and again.notebook == nb_file
    assert again.lines == [f"07_writer: reused (key {first.key[:12]}, executed {first.executed})"]


def test_the_key_ignores_nbformats_random_cell_ids(nbs):
    a = book._to_ipynb(nbs / "07_writer.py")
    b = book._to_ipynb(nbs / "07_writer.py")
    assert runcache.notebook_digest(a) == runcache.notebook_digest(b)
    b.cells[0].source += " (edited)"
    assert runcache.notebook_digest(a) != runcache.notebook_digest(b)


def test_source_change_reruns(kernel, nbs, out):
    go(nbs / "07_writer.py", out)
    (nbs / "07_writer.py").write_text(WRITER.replace("# # Writer", "# # Writer, retitled"))
    o = go(nbs / "07_writer.py", out)
    assert kernel.runs == 2 and not o.reused and "the notebook changed" in o.reason


def test_parameter_change_reruns_and_the_old_run_is_reused_again(kernel, nbs, out):
    a = go(nbs / "07_writer.py", out)
    b = go(nbs / "07_writer.py", out, {"n": 5})
    assert kernel.runs == 2 and "its parameters changed" in b.reason and b.key != a.key
    assert len(pd.read_csv(out / "results" / "07_writer.csv")) == 5
    back = go(nbs / "07_writer.py", out)
    assert kernel.runs == 2 and back.reused
    assert len(pd.read_csv(out / "results" / "07_writer.csv")) == 3, "the stored run is published again"
    nb = nbformat.read(out / "07_writer.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "n" not in injected[0].source, "the restored notebook is the one that ran with n = 3"


def test_package_source_change_reruns(kernel, nbs, out, stable_package):
    pkg = stable_package
    (pkg / "__pycache__").mkdir()
    go(nbs / "07_writer.py", out)
    (pkg / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"bytecode")  # not source: ignored
    assert go(nbs / "07_writer.py", out).reused
    (pkg / "mod.py").write_text("X = 2\n")
    o = go(nbs / "07_writer.py", out)
    assert kernel.runs == 2 and "the semalign source changed" in o.reason
    (pkg / "profiles.yml").write_text("a: 1\n")  # package data counts too
    assert not go(nbs / "07_writer.py", out).reused


def test_semalign_environment_change_reruns(kernel, nbs, out, monkeypatch):
    go(nbs / "07_writer.py", out)
    monkeypatch.setenv("SEMALIGN_SOMETHING", "1")
    o = go(nbs / "07_writer.py", out)
    assert kernel.runs == 2 and "the environment changed" in o.reason


def test_force_reruns_and_stores(kernel, nbs, out):
    go(nbs / "07_writer.py", out)
    o = go(nbs / "07_writer.py", out, force=True)
    assert kernel.runs == 2 and not o.reused and o.reason == "--force"
    assert go(nbs / "07_writer.py", out).reused


def test_a_fresh_output_folder_gets_the_stored_run(kernel, nbs, out, tmp_path):
    """The store outlives book/generated (a fresh clone with a warm cache)."""
    first = go(nbs / "07_writer.py", out)
    before = {p.name: p.read_bytes() for p in (out / "07_writer.ipynb", out / "results" / "07_writer.csv")}
    other = tmp_path / "elsewhere"
    o = go(nbs / "07_writer.py", other)
    assert kernel.runs == 1 and o.reused and o.key == first.key
    assert (other / "07_writer.ipynb").read_bytes() == before["07_writer.ipynb"]
    assert (other / "results" / "07_writer.csv").read_bytes() == before["07_writer.csv"]
    assert not list(other.glob(".staging-*"))


# --------------------------------------------------------------------------- recorded reads
def test_a_reader_reruns_only_when_the_results_it_read_change(kernel, nbs, out):
    go(nbs / "07_writer.py", out)
    r1 = go(nbs / "08_reader.py", out)
    assert kernel.runs == 2 and not r1.reused
    rec = json.loads(next((runcache.executions_dir() / "08_reader").glob("*/record.json")).read_text())
    assert [r["kind"] for r in rec["reads"]] == ["results"] and rec["reads"][0]["stem"] == "07_writer"
    assert go(nbs / "08_reader.py", out).reused

    go(nbs / "07_writer.py", out, {"n": 4})  # upstream publishes other results
    r2 = go(nbs / "08_reader.py", out)
    assert kernel.runs == 4 and not r2.reused and "results of 07_writer it reads changed" in r2.reason
    assert pd.read_csv(out / "results" / "08_reader.csv")["rows_upstream"].tolist() == [4]

    assert go(nbs / "07_writer.py", out).reused  # back to n = 3: restored from the store
    back = go(nbs / "08_reader.py", out)
    assert back.reused and kernel.runs == 4, "the reader's first run read exactly these results"
    assert pd.read_csv(out / "results" / "08_reader.csv")["rows_upstream"].tolist() == [3]


def test_an_embedding_entry_no_longer_in_the_cache_reruns(kernel, nbs, out):
    from semalign import cache

    go(nbs / "09_embedder.py", out)
    rec = json.loads(next((runcache.executions_dir() / "09_embedder").glob("*/record.json")).read_text())
    (read,) = rec["reads"]
    assert read["kind"] == "embedding" and read["encoder"] == "toy" and read["dataset"] == "toy@1"
    assert cache.entry_present("toy", read["key"])
    assert go(nbs / "09_embedder.py", out).reused
    cache.clear("toy")
    o = go(nbs / "09_embedder.py", out)
    assert kernel.runs == 2 and "embeddings of toy@1 by toy are no longer in the cache" in o.reason


def test_an_image_file_replaced_in_place_reruns(kernel, nbs, out, tmp_path):
    imgs = [tmp_path / f"img{i}.bin" for i in range(2)]
    for i, p in enumerate(imgs):
        p.write_bytes(b"x" * (i + 1))
    files = [str(p) for p in imgs]
    go(nbs / "09_embedder.py", out, {"files": files})
    assert go(nbs / "09_embedder.py", out, {"files": files}).reused
    imgs[1].write_bytes(b"yyyy")  # another content at the same path
    o = go(nbs / "09_embedder.py", out, {"files": files})
    assert kernel.runs == 2 and f"the image file {imgs[1]} changed" in o.reason
    assert pd.read_csv(out / "results" / "09_embedder.csv")["total"].tolist() == [6.0, 5.0]


# --------------------------------------------------------------------------- damage never errors
@pytest.mark.parametrize("damage", ["garbage record", "record of another key", "notebook altered",
                                    "results removed", "record removed"])
def test_a_damaged_entry_is_removed_and_the_notebook_executed(damage, kernel, nbs, out):
    go(nbs / "07_writer.py", out)
    (entry,) = [p for p in (runcache.executions_dir() / "07_writer").iterdir() if not p.name.startswith(".")]
    if damage == "garbage record":
        (entry / "record.json").write_bytes(b"\x00{not json")
    elif damage == "record of another key":
        rec = json.loads((entry / "record.json").read_text())
        (entry / "record.json").write_text(json.dumps({**rec, "key": "0" * 64}))
    elif damage == "notebook altered":
        with open(entry / "notebook.ipynb", "ab") as f:
            f.write(b" ")
    elif damage == "results removed":
        (entry / "results" / "07_writer.csv").unlink()
    else:
        (entry / "record.json").unlink()
    with pytest.warns(runcache.ExecutionCacheWarning, match="damaged"):
        o = go(nbs / "07_writer.py", out)
    assert kernel.runs == 2 and not o.reused
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert go(nbs / "07_writer.py", out).reused, "the rerun stored a sound entry again"


def test_a_damaged_read_log_is_not_stored(kernel, nbs, out):
    def garble():
        with open(os.environ["SEMALIGN_READ_LOG"], "a") as f:
            f.write("{half a line\n")

    kernel.during = garble
    with pytest.warns(runcache.ExecutionCacheWarning, match="read log"):
        go(nbs / "07_writer.py", out)
    kernel.during = None
    assert not go(nbs / "07_writer.py", out).reused
    assert (out / "07_writer.ipynb").is_file(), "the run itself is published"


def test_a_package_changed_while_running_is_not_stored(kernel, nbs, out, stable_package):
    pkg = stable_package
    kernel.during = lambda: (pkg / "mod.py").write_text("X = 22\n")
    with pytest.warns(runcache.ExecutionCacheWarning, match="changed while 07_writer ran"):
        go(nbs / "07_writer.py", out)
    kernel.during = None
    assert not go(nbs / "07_writer.py", out).reused


def test_a_failed_run_is_not_stored(kernel, nbs, out):
    (nbs / "07_writer.py").write_text(WRITER + "\n# %%\nraise RuntimeError('boom')\n")
    with pytest.raises(book.BookError, match="boom"):
        go(nbs / "07_writer.py", out)
    assert not (runcache.executions_dir() / "07_writer").exists() or not any(
        p for p in (runcache.executions_dir() / "07_writer").iterdir() if not p.name.startswith("."))
    with pytest.raises(book.BookError, match="boom"):
        go(nbs / "07_writer.py", out)
    assert kernel.runs == 2


def test_old_entries_are_pruned(kernel, nbs, out, monkeypatch):
    monkeypatch.setattr(runcache, "KEEP_PER_NOTEBOOK", 2)
    for n in (1, 2, 3):
        go(nbs / "07_writer.py", out, {"n": n})
    kept = [p for p in (runcache.executions_dir() / "07_writer").iterdir() if not p.name.startswith(".")]
    assert len(kept) == 2
    assert go(nbs / "07_writer.py", out, {"n": 3}).reused
    assert not go(nbs / "07_writer.py", out, {"n": 1}).reused, "the oldest was pruned"


# --------------------------------------------------------------------------- the book command
def test_semalign_book_reuses_and_says_so(kernel, nbs, out, tmp_path, monkeypatch, capsys):
    from semalign.cli import main

    root = tmp_path
    (root / "_config.yml").write_text("title: t\n")
    monkeypatch.chdir(root)
    assert main(["book", "--no-build", "--profile", str(_profile(tmp_path))]) == 0
    first = capsys.readouterr().out
    assert kernel.runs == 3 and first.count(" done in ") == 3
    assert main(["book", "--no-build", "--profile", str(_profile(tmp_path))]) == 0
    warm = capsys.readouterr().out
    assert kernel.runs == 3, warm
    for stem in ("07_writer", "08_reader", "09_embedder"):
        assert f"[semalign book] {stem}: reused (key " in warm
    assert main(["book", "--no-build", "--profile", str(_profile(tmp_path)), "-p", "n", "4"]) == 0
    one = capsys.readouterr().out
    assert kernel.runs == 5, "one parameter of one notebook: it and its reader run, nothing else"
    assert "07_writer: executing (its parameters changed)" in one
    assert "08_reader: executing (the results of 07_writer it reads changed)" in one
    assert "09_embedder: reused" in one
    assert main(["book", "--no-build", "--force", "--profile", str(_profile(tmp_path))]) == 0
    assert kernel.runs == 8


def _profile(tmp_path: Path) -> Path:
    p = tmp_path / "t.yml"
    p.write_text("common: {}\nnotebooks: {}\n")
    return p


# --------------------------------------------------------------------------- progress
def test_progress_reaches_the_channel_and_the_monitor_draws_it(tmp_path, monkeypatch):
    import io

    from semalign import progress

    channel = tmp_path / "ch.jsonl"
    shown = io.StringIO()
    with progress.monitor(channel, stream=shown, prefix="[x] ", poll=0.01):
        monkeypatch.setenv(progress.PROGRESS_ENV, str(channel))
        with progress.bar(total=4, desc="stitch toy", disable=True) as b:
            for _ in range(4):
                b.update()
        list(progress.track(range(3), "zero-shot", disable=True))
    lines = [json.loads(x) for x in channel.read_text().splitlines()]
    assert lines[0]["n"] == 0 and lines[-1]["done"] and {x["desc"] for x in lines} == {"stitch toy", "zero-shot"}
    text = shown.getvalue()
    assert "[x] stitch toy: 4/4 in " in text and "[x] zero-shot: 3/3 in " in text


def test_without_a_channel_a_bar_is_plain_tqdm(monkeypatch, capsys):
    from semalign import progress

    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    with progress.bar(total=2, desc="quiet", disable=True) as b:
        b.update(2)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- a real kernel (slow)
PROGRESSING = '''# %% tags=["parameters"]
profile = "none"
n = 3

# %%
import pandas as pd
from semalign import book
from semalign.progress import bar
with bar(total=n, desc="toy grid", disable=True) as b:
    for i in range(n):
        b.update()
book.write_results(pd.DataFrame({"i": list(range(n))}))
print("cells ran")
'''


@pytest.mark.slow
def test_real_kernel_progress_in_the_terminal_not_in_the_page_and_reuse(tmp_path, capsys):
    from semalign.cli import main

    nb = tmp_path / "07_prog.py"
    nb.write_text(PROGRESSING)
    out = tmp_path / "gen"
    assert main(["run", str(nb), "--output-dir", str(out)]) == 0
    cap = capsys.readouterr()
    assert "toy grid: 3/3 in " in cap.err, "the terminal shows the kernel's progress"
    assert "07_prog: executing" in cap.out and str(out / "07_prog.ipynb") in cap.out
    page = (out / "07_prog.ipynb").read_text()
    assert "cells ran" in page, "the notebook's own output is kept"
    assert "toy grid" not in page.replace('desc=\\"toy grid\\"', ""), "no progress in the page"
    stamp = (out / "07_prog.ipynb").stat().st_mtime_ns
    assert main(["run", str(nb), "--output-dir", str(out)]) == 0
    cap = capsys.readouterr()
    assert "07_prog: reused (key " in cap.out and "toy grid" not in cap.err
    assert (out / "07_prog.ipynb").stat().st_mtime_ns == stamp


def test_a_stored_run_that_cannot_be_restored_is_executed(kernel, nbs, out, monkeypatch):
    go(nbs / "07_writer.py", out)

    def gone(*a, **k):
        raise FileNotFoundError("pruned by another process meanwhile")

    monkeypatch.setattr(book, "_reuse", gone)
    with pytest.warns(runcache.ExecutionCacheWarning, match="could not be restored"):
        o = go(nbs / "07_writer.py", out)
    assert kernel.runs == 2 and o.reason == "the stored run could not be restored"
