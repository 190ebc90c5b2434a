"""Report text never reaches the published book.

A canary string is planted in every report of a fake credentialed-style report archive (in
the Open-i XML layout the book's text route reads, placed under a throw-away
``SEMALIGN_DATA``). The real data notebook of the book runs on it and the book is built; then
every file under ``book/generated/`` and ``_build/html`` is searched for the canary.

What makes this a real test (each is asserted, not assumed):
1. the canary is in the fixture and survives the data pipeline: the task inputs the
   notebooks embed contain it;
2. the notebook really read the fixture: its output reports the fixture's report count and
   its results file the fixture's label balance;
3. the search can see a leak: the same run + build with a notebook that prints one report
   is caught by the same search (through notebook JSON and HTML escaping);
4. the search covers every file of both trees (notebooks, CSVs, HTML, search index, JS).
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from semalign import book

ROOT = Path(__file__).resolve().parents[1]
CANARY = "ZQXCANARY7319KWD"
CLASS_TERMS = {"Normal": "normal", "Cardiomegaly": "Cardiomegaly/mild", "Opacity": "Opacity/lung/base",
               "Granuloma": "Granuloma/right", "Spine degenerative": "Spine/degenerative"}
PER_CLASS = 130  # the openi-5class recipe takes 100 test reports per class


def _report_xml(i: int, term: str) -> bytes:
    # FINDINGS keeps a sentence that names no class, so the canary survives class-sentence removal.
    return (f'<?xml version="1.0"?><eCitation><uId id="CXR{i}"/><MedlineCitation><Article><Abstract>'
            f'<AbstractText Label="FINDINGS">Marker {CANARY} recorded in study {i}. Bony structures intact '
            f'with stable soft tissue {i % 7} views.</AbstractText>'
            f'<AbstractText Label="IMPRESSION">Patient {CANARY} follow up advised.</AbstractText>'
            f'</Abstract></Article></MedlineCitation><MeSH><major>{term}</major></MeSH>'
            f'<parentImage id="CXR{i}_IM-0001-{i:04d}"/></eCitation>').encode()


@pytest.fixture
def canary_data(tmp_path, monkeypatch) -> Path:
    """A fake report archive under a throw-away SEMALIGN_DATA, wired into the text route."""
    data = tmp_path / "data" / "credentialed-reports"
    data.mkdir(parents=True)
    tgz = data / "NLMCXR_reports.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        i = 1
        for term in CLASS_TERMS.values():
            for _ in range(PER_CLASS):
                raw = _report_xml(i, term)
                info = tarfile.TarInfo(f"ecgen-radiology/{i}.xml")
                info.size = len(raw)
                tf.addfile(info, io.BytesIO(raw))
                i += 1
    monkeypatch.setenv("SEMALIGN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SEMALIGN_OPENI_REPORTS", str(tgz))
    return tgz


def _scratch_book(root: Path, stems: list[str]) -> None:
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "book" / "_static").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "book" / "_static" / "semalign.css", root / "book" / "_static")
    shutil.copy(ROOT / "book" / "references.bib", root / "book")
    (root / "notebooks").mkdir(exist_ok=True)
    (root / "book" / "intro.md").write_text("# Canary book\n")
    chapters = "".join(f"  - file: book/generated/{s}\n" for s in stems)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nchapters:\n{chapters}")


def _leaks(*trees: Path) -> list[str]:
    hits, n_files = [], 0
    for tree in trees:
        for p in tree.rglob("*"):
            if p.is_file():
                n_files += 1
                data = p.read_bytes()
                if CANARY.encode() in data or CANARY.lower().encode() in data:
                    hits.append(str(p))
    assert n_files > 0, f"nothing to search in {trees}"
    return hits


def _run_data_notebook(root: Path, notebook: Path) -> Path:
    return book.run_notebook(
        notebook, "offline",
        {"text_task": "openi-5class", "vision_tasks": [], "text_dataset": "openi-reports", "gallery_n": 0},
        root / "book" / "generated")


@pytest.mark.slow
def test_canary_reaches_neither_generated_nor_html(canary_data, tmp_path):
    pytest.importorskip("semalign.data", reason="semalign.data (engineer C) has not landed")
    from semalign.data import get_task, load_dataset

    # 1. the canary is in what the notebooks read
    task = get_task("openi-5class")
    assert task.test["input"].str.contains(CANARY).all(), "the fixture must reach the task inputs"
    n_reports = len(load_dataset("openi-reports"))
    assert n_reports == PER_CLASS * len(CLASS_TERMS)

    root = tmp_path / "site"
    root.mkdir()
    _scratch_book(root, ["00_data"])
    out = _run_data_notebook(root, ROOT / "notebooks" / "00_data.py")
    book.build_book(root)

    # 2. the notebook read the fixture (not the real reports)
    import pandas as pd

    assert f"{n_reports} reports" in out.read_text(), "00_data did not read the fixture"
    balance = pd.read_csv(root / "book" / "generated" / "results" / "00_data.csv")
    test_counts = balance[(balance.task == "openi-5class") & (balance.split == "test")]["count"]
    assert list(test_counts) == [100] * 5

    # 4. every file of both trees searched
    leaks = _leaks(root / "book" / "generated", root / "_build" / "html")
    assert not leaks, f"report text reached the published book: {leaks}"


@pytest.mark.slow
def test_the_search_catches_a_leaking_notebook(canary_data, tmp_path):
    """3. the detector works: a notebook that prints a report is caught in both trees."""
    pytest.importorskip("semalign.data", reason="semalign.data (engineer C) has not landed")
    root = tmp_path / "site"
    root.mkdir()
    _scratch_book(root, ["00_leak"])
    leak = root / "notebooks" / "00_leak.py"
    leak.write_text(
        '# %% tags=["parameters"]\nprofile = "offline"\n\n'
        "# %%\nfrom semalign.data import load_dataset\n"
        "df = load_dataset('openi-reports')\nprint(df['text'].iloc[0])\n"
        "from IPython.display import HTML\nHTML('<p>' + df['text'].iloc[1] + '</p>')\n")
    book.run_notebook(leak, "offline", None, root / "book" / "generated")
    book.build_book(root)
    leaks = _leaks(root / "book" / "generated", root / "_build" / "html")
    assert any(p.endswith(".ipynb") for p in leaks) and any(p.endswith(".html") for p in leaks), leaks
