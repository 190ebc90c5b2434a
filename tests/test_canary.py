"""Credentialed data never reaches the published book: no report text, no id, no image.

A canary string is planted in fake credentialed-style datasets, each in the layout its loader
reads and found the way a reader with access would point to it:

* a report archive in the Open-i XML layout (``SEMALIGN_OPENI_REPORTS``): the book's own text
  route, read by the data notebook ``00_data``;
* a MIMIC-CXR copy (``SEMALIGN_MIMIC_CXR``: label / split / metadata tables and
  ``mimic-cxr-reports.zip``): the canary in every report, study and subject ids from a reserved
  range — the paper's text task ``mimic-5x200``;
* a VinDr-CXR copy (``SEMALIGN_VINDR_CXR``: annotations and DICOM files): image ids and the
  DICOM patient name carry the canary — the vision task ``vindr-cardiomegaly``.

``00_data`` runs on the first; the notebooks that embed data — ``01_semantic_alignment`` (a
projection of held-out reports with hover tooltips), ``02_transforms`` (text and vision
curves) and ``03_general_to_medical`` (Table 1) — run on the other two, through the profile +
``-p`` overrides of ``semalign run`` (small fast encoders, one run, the smallest anchor
counts). The book is built; then every file under ``book/generated/`` (notebooks, results
CSVs) and ``_build/html`` (pages, sources, search index, JS) is searched for the canary (any
case, or base64-encoded at any alignment), for the fixture's MIMIC ids, and — these chapters
draw only vector charts — for raster images in the chapters' notebooks, pages and images.

What makes this a real test (each is asserted, not assumed):
1. the canary is in the fixtures and survives the data pipeline: the task inputs the
   notebooks embed contain it (every report, every image id, the DICOM header), and every
   MIMIC id of the tasks is one the id search recognises;
2. the notebooks really read the fixtures: their outputs and results files give the fixtures'
   sizes (report count, label balance, anchor pools) and the parameters they were given;
3. each search can see a leak: the same run + build of a notebook that prints a report, shows
   one in a chart's tooltip, offers one as a base64 download link, shows a table of test ids
   and a fixture radiograph is caught by every search, in the notebook JSON and in the page;
4. the search covers every file of both trees.
"""

from __future__ import annotations

import base64
import gzip
import io
import re
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable

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
    pytest.importorskip("semalign.data", reason="semalign.data (engineer C) has not landed")
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


# --------------------------------------------------------------------------- credentialed-style copies
#: MIMIC-CXR study / subject ids of the fixture come from reserved ranges (the recipe needs integers,
#: so they cannot carry the canary); ``_MIMIC_IDS`` finds any of them as a whole token, bare, as a
#: float (``57319004.0``) or with the ``s`` / ``p`` prefix the recipe and the report paths give
#: them — never inside a longer number, a float's decimals or a hex digest.
STUDY0, SUBJECT0 = 57_319_000, 17_319_000
_MIMIC_IDS = re.compile(rb"(?<![0-9A-Za-z.])[sp]?(?:57319|17319)\d{3}(?![0-9A-Za-z])")
MIMIC_FINDINGS = {"Atelectasis": "bibasilar atelectasis", "Cardiomegaly": "enlarged cardiac silhouette",
                  "Consolidation": "lobar consolidation", "Edema": "interstitial edema",
                  "Pleural Effusion": "blunted costophrenic angle"}
_ORGANS = ("Lungs", "Heart size", "Mediastinum", "Osseous structures", "Soft tissues")
_STATES = ("stable", "unchanged", "within limits", "as before")
MIMIC_TEST, MIMIC_TRAIN = 8, 12      # studies per class (validate+test / train split)
VINDR_TEST, VINDR_TRAIN = 4, 6       # images per class (Cardiomegaly 1 / 0)
#: Recipe overrides (a profile's ``task_params``): the whole fake copies, nothing more.
TASK_PARAMS = {
    "mimic-5x200": {"n_per_class": MIMIC_TEST, "n_train_per_class": MIMIC_TRAIN, "n_anchors": 5 * MIMIC_TRAIN},
    "vindr-cardiomegaly": {"n_test_per_class": VINDR_TEST, "n_train_per_class": VINDR_TRAIN,
                           "n_anchors": 2 * VINDR_TRAIN},
}
TEXT_ENCODERS = ["wordllama-256", "minilm-l6"]           # a static table and a small transformer
VISION_ENCODERS = ["efficientnet-lite0", "mobilenet-v2"]  # registry CNNs (no stand-in to fit)


def _csv_gz(path: Path, df) -> None:
    with gzip.open(path, "wt", newline="") as f:
        df.to_csv(f, index=False)


def _fake_mimic(root: Path) -> Path:
    """MIMIC-CXR-JPG label / metadata / split tables and mimic-cxr-reports.zip, in PhysioNet's
    layout: per class MIMIC_TEST clean positives in the test split and MIMIC_TRAIN in train."""
    import pandas as pd

    from semalign.data import manifests
    from semalign.data.sources.mimic import MIMIC5

    root.mkdir(parents=True)
    rows = [(c, split) for c in MIMIC5 for split, n in (("test", MIMIC_TEST), ("train", MIMIC_TRAIN))
            for _ in range(n)]
    study = [STUDY0 + k for k in range(len(rows))]
    subject = [SUBJECT0 + k for k in range(len(rows))]
    lab = pd.DataFrame({"subject_id": subject, "study_id": study})
    for col in manifests.get_manifest("mimic-cxr")["files"][0]["columns"][2:]:
        lab[col] = [1.0 if col == c else (0.0 if col in MIMIC5 else float("nan")) for c, _ in rows]
    _csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", lab)
    dicom = [f"{CANARY.lower()}{k:05d}" for k in range(len(rows))]
    _csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", pd.DataFrame(
        {"dicom_id": dicom, "subject_id": subject, "study_id": study, "ViewPosition": "PA"}))
    _csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", pd.DataFrame(
        {"dicom_id": dicom, "study_id": study, "subject_id": subject, "split": [s for _, s in rows]}))
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w") as z:
        for k, ((c, _), st, su) in enumerate(zip(rows, study, subject)):
            # no id in the text: a leaked id must be caught by the id search, not the canary's
            z.writestr(f"files/p{str(su)[:2]}/p{su}/s{st}.txt",
                       f"EXAMINATION: CHEST (PA AND LAT)\n\nFINDINGS: Marker {CANARY} recorded. "
                       f"{_ORGANS[k % 5]} {_STATES[k % 4]} on {k % 7 + 1} views; {MIMIC_FINDINGS[c]}.\n\n"
                       f"IMPRESSION: {CANARY} {MIMIC_FINDINGS[c]}.\n")
    return root


def _dicom(path: Path, pixels, image_id: str) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = CANARY, image_id
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def _fake_vindr(root: Path) -> Path:
    """VinDr-CXR annotations (train: three radiologists per image) and 64x64 DICOMs whose image
    ids and patient name carry the canary; Cardiomegaly images have a bright block."""
    import numpy as np
    import pandas as pd

    from semalign.data.sources.vindr import VINDR6

    rng = np.random.default_rng(0)
    (root / "annotations").mkdir(parents=True)
    for split, n, readers in (("test", VINDR_TEST, 1), ("train", VINDR_TRAIN, 3)):
        (root / split).mkdir()
        ids = [f"{CANARY}{split}{k:03d}" for k in range(2 * n)]
        y = np.arange(2 * n) % 2
        df = pd.DataFrame({"image_id": np.repeat(ids, readers)})
        if readers > 1:
            df["rad_id"] = np.tile([f"R{r}" for r in range(readers)], 2 * n)
        for col in VINDR6.values():
            df[col] = np.repeat(y if col == "Cardiomegaly" else 0 * y, readers)
        df["No finding"] = np.repeat(1 - y, readers)
        df.to_csv(root / "annotations" / f"image_labels_{split}.csv", index=False)
        for i, yy in zip(ids, y):
            px = rng.integers(0, 90, (64, 64), dtype=np.uint8)
            if yy:
                px[16:48, 10:54] += 150
            _dicom(root / split / f"{i}.dicom", px, i)
    return root


@pytest.fixture
def credentialed_data(tmp_path, monkeypatch) -> dict[str, Path]:
    """Fake MIMIC-CXR and VinDr-CXR copies under a throw-away SEMALIGN_DATA, each also named by its
    own environment variable (as a reader with access would set them)."""
    pytest.importorskip("semalign.data", reason="semalign.data (engineer C) has not landed")
    data = tmp_path / "data"
    out = {"mimic": _fake_mimic(data / "mimic-cxr"), "vindr": _fake_vindr(data / "vindr-cxr")}
    monkeypatch.setenv("SEMALIGN_DATA", str(data))
    monkeypatch.setenv("SEMALIGN_MIMIC_CXR", str(out["mimic"]))
    monkeypatch.setenv("SEMALIGN_VINDR_CXR", str(out["vindr"]))
    return out


def _scratch_book(root: Path, stems: list[str]) -> None:
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "book" / "_static").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "book" / "_static" / "semalign.css", root / "book" / "_static")
    shutil.copy(ROOT / "book" / "references.bib", root / "book")
    (root / "notebooks").mkdir(exist_ok=True)
    (root / "book" / "intro.md").write_text("# Canary book\n")
    chapters = "".join(f"  - file: book/generated/{s}\n" for s in stems)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nchapters:\n{chapters}")


def _b64_forms(s: bytes) -> list[bytes]:
    """What ``s`` looks like inside base64 text, wherever it starts (offset 0, 1 or 2 in a
    3-byte group): the characters determined by ``s`` alone."""
    out = []
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + s)
        out.append(enc[-(-8 * k // 6):(8 * (k + len(s))) // 6])
    return out


_CANARY_B64 = [f for c in (CANARY, CANARY.lower(), CANARY.upper()) for f in _b64_forms(c.encode())]
_RASTER_DATA = re.compile(rb"data:image/(?:png|jpe?g|gif|webp|bmp)|\"image/(?:png|jpeg|gif|webp|bmp)\"")
_RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}


def _scan(*trees: Path, ids: re.Pattern | None = None, raster: Iterable[Path] = ()) -> list[tuple[str, str]]:
    """``(kind, path)`` for every finding in every file of ``trees``.

    ``text``: the canary in any case; ``base64``: the canary base64-encoded (a data URL, an
    embedded file); ``id``: a match of ``ids``; ``raster``: in the files of ``raster`` (files
    or folders), a PNG / JPEG / GIF / WebP / BMP — a notebook image output, a data URL or an
    image file.
    """
    raster_files = {q for r in raster for q in ([r] if r.is_file() else r.rglob("*"))}
    hits, n_files = [], 0
    for tree in trees:
        for p in tree.rglob("*"):
            if not p.is_file():
                continue
            n_files += 1
            data = p.read_bytes()
            if CANARY.lower().encode() in data.lower():
                hits.append(("text", str(p)))
            if any(f in data for f in _CANARY_B64):
                hits.append(("base64", str(p)))
            if ids is not None and ids.search(data):
                hits.append(("id", str(p)))
            if p in raster_files and (_RASTER_DATA.search(data) or p.suffix.lower() in _RASTER_SUFFIXES):
                hits.append(("raster", str(p)))
    assert n_files > 0, f"nothing to search in {trees}"
    return hits


def _leaks(*trees: Path) -> list[str]:
    """Files holding the canary (any case, or base64-encoded)."""
    return sorted({p for kind, p in _scan(*trees) if kind in ("text", "base64")})


#: ``semalign run NOTEBOOK -p name value`` overrides of the offline profile, per notebook: the
#: paper's text and vision tasks on the fake copies, small fast encoders, one run, the smallest
#: anchor counts. ``00_data`` reads the Open-i-layout archive, as the offline profile does.
RUNS = {
    "00_data": {"text_task": "openi-5class", "vision_tasks": [], "text_dataset": "openi-reports", "gallery_n": 0},
    "01_semantic_alignment": {"text_task": "mimic-5x200", "task_params": TASK_PARAMS,
                              "source": TEXT_ENCODERS[0], "target": TEXT_ENCODERS[1],
                              "n_anchors": 40, "n_show": 24},
    "02_transforms": {"text_task": "mimic-5x200", "vision_task": "vindr-cardiomegaly", "task_params": TASK_PARAMS,
                      "text_encoders": TEXT_ENCODERS, "vision_encoders": VISION_ENCODERS,
                      "runs": 1, "anchor_counts": [10]},
    "03_general_to_medical": {"text_task": "mimic-5x200", "vision_tasks": ["vindr-cardiomegaly"],
                              "task_params": TASK_PARAMS, "text_encoders": TEXT_ENCODERS,
                              "vision_encoders": VISION_ENCODERS, "runs": 1, "table_anchors": 10},
}
#: Chapters that draw only vector charts: no raster image may appear in them.
VECTOR_ONLY = ["01_semantic_alignment", "02_transforms", "03_general_to_medical"]


def _published(root: Path) -> list[Path]:
    return [root / "book" / "generated", root / "_build" / "html"]


def _chapter_files(root: Path, stems: Iterable[str]) -> list[Path]:
    """Where a chapter's images would be: its executed notebook, its page and page source, the
    images the build extracts from notebook outputs (``_build/html/_images``)."""
    html = root / "_build" / "html"
    out = [html / "_images"] if (html / "_images").is_dir() else []
    for s in stems:
        out += [root / "book" / "generated" / f"{s}.ipynb", *html.rglob(f"{s}.*")]
    return out


def _check_fixtures() -> int:
    """1. the canary reaches every input the notebooks read; returns the archive's report count."""
    from semalign.encoders.tasks import get_task
    from semalign.data import load_dataset
    from semalign.images import read_dicom

    openi = get_task("openi-5class")
    assert openi.test["input"].str.contains(CANARY).all(), "the Open-i fixture must reach the task inputs"
    n_reports = len(load_dataset("openi-reports"))
    assert n_reports == PER_CLASS * len(CLASS_TERMS)
    mimic = get_task("mimic-5x200", TASK_PARAMS)
    assert len(mimic.test) == 5 * MIMIC_TEST and len(mimic.anchors) == 5 * MIMIC_TRAIN
    for df in (mimic.test, mimic.train, mimic.anchors):
        assert df["input"].str.contains(CANARY).all(), "the MIMIC fixture must reach the task inputs"
        assert all(_MIMIC_IDS.fullmatch(str(i).encode()) for i in df["id"]), "every MIMIC id is recognised"
    vindr = get_task("vindr-cardiomegaly", TASK_PARAMS)
    assert len(vindr.test) == 2 * VINDR_TEST and len(vindr.anchors) == 2 * VINDR_TRAIN
    assert all(CANARY in str(i) for df in (vindr.test, vindr.train, vindr.anchors) for i in df["id"])
    first = vindr.test["input"].iloc[0]
    assert read_dicom(first).shape == (64, 64) and CANARY.encode() in Path(first).read_bytes()
    return n_reports


@pytest.mark.slow
def test_canary_reaches_neither_generated_nor_html(canary_data, credentialed_data, tmp_path):
    import pandas as pd

    n_reports = _check_fixtures()

    root = tmp_path / "site"
    root.mkdir()
    _scratch_book(root, list(RUNS))
    outs = {stem: book.run_notebook(ROOT / "notebooks" / f"{stem}.py", "offline", params, root / "book" / "generated")
            for stem, params in RUNS.items()}
    book.build_book(root)

    # 2. the notebooks read the fixtures (not the real reports), with the parameters given
    results = root / "book" / "generated" / "results"
    assert f"{n_reports} reports" in outs["00_data"].read_text(), "00_data did not read the fixture"
    balance = pd.read_csv(results / "00_data.csv")
    test_counts = balance[(balance.task == "openi-5class") & (balance.split == "test")]["count"]
    assert list(test_counts) == [100] * 5
    fig1 = pd.read_csv(results / "01_semantic_alignment.csv")
    assert set(fig1["n_anchors"]) == {40} and set(fig1["n_shown"]) == {24}
    assert set(fig1["source"]) == {TEXT_ENCODERS[0]} and set(fig1["target"]) == {TEXT_ENCODERS[1]}
    assert "task `mimic-5x200`" in outs["01_semantic_alignment"].read_text()
    fig3 = pd.read_csv(results / "02_transforms.csv")
    assert set(fig3["task"]) == {"mimic-5x200", "vindr-cardiomegaly"} and set(fig3["run"]) == {0}
    assert set(fig3.loc[~fig3["method"].isin(["naive", "upper_bound"]), "n_anchors"]) == {10}
    assert (f"Anchor pools: {5 * MIMIC_TRAIN} (mimic-5x200), {2 * VINDR_TRAIN} (vindr-cardiomegaly)"
            in outs["02_transforms"].read_text())
    t1 = pd.read_csv(results / "03_general_to_medical.csv")
    assert set(t1["task"]) == {"mimic-5x200", "vindr-cardiomegaly"}
    assert set(t1.loc[t1["method"] == "ortho", "n_anchors"]) == {10}
    for stem in RUNS:
        assert (root / "_build" / "html" / "book" / "generated" / f"{stem}.html").is_file(), stem

    # 4. every file of both trees searched: no report text, no MIMIC id, no image
    hits = _scan(*_published(root), ids=_MIMIC_IDS, raster=_chapter_files(root, VECTOR_ONLY))
    assert not hits, f"credentialed data reached the published book: {hits}"


#: A notebook that leaks in every way the searches look for (one cell each).
LEAK_NOTEBOOK = """# %% tags=["parameters"]
profile = "offline"
task_params = {}

# %%
import base64, io
import altair as alt
from IPython.display import HTML, Image
from PIL import Image as PILImage
from semalign.encoders.tasks import get_task
from semalign.data import load_dataset
from semalign.images import read_image
mimic = get_task("mimic-5x200", task_params)
vindr = get_task("vindr-cardiomegaly", task_params)

# %% an Open-i-layout report printed, and one as HTML
df = load_dataset("openi-reports")
print(df["text"].iloc[0])
HTML("<p>" + df["text"].iloc[1] + "</p>")

# %% MIMIC report text in a chart's hover tooltip
alt.Chart(mimic.test.head(3).assign(x=range(3))).mark_point().encode(x="x:Q", tooltip=["input"])

# %% a MIMIC report as a base64 download link (no plain text)
b = base64.b64encode(("xy" + mimic.test["input"].iloc[0]).encode()).decode()
HTML(f'<a download="r.txt" href="data:text/plain;base64,{b}">report</a>')

# %% a table of MIMIC test ids (no text)
mimic.test[["id", "label"]].head()

# %% a VinDr radiograph shown as an image (no id, no path)
buf = io.BytesIO()
PILImage.fromarray(read_image(vindr.test["input"].iloc[0])).save(buf, format="PNG")
Image(buf.getvalue())
"""


@pytest.mark.slow
def test_the_search_catches_a_leaking_notebook(canary_data, credentialed_data, tmp_path):
    """3. each search finds its leak, in the executed notebook and in the built page."""
    root = tmp_path / "site"
    root.mkdir()
    _scratch_book(root, ["01_leak"])
    leak = root / "notebooks" / "01_leak.py"
    leak.write_text(LEAK_NOTEBOOK)
    book.run_notebook(leak, "offline", {"task_params": TASK_PARAMS}, root / "book" / "generated")
    book.build_book(root)
    hits = _scan(*_published(root), ids=_MIMIC_IDS, raster=_chapter_files(root, ["01_leak"]))
    for kind in ("text", "base64", "id", "raster"):
        found = [p for k, p in hits if k == kind]
        assert any(p.endswith(".ipynb") for p in found), (kind, hits)
        assert any(p.endswith(".html") or "/_images/" in p for p in found), (kind, hits)
    assert _leaks(*_published(root)), "_leaks must report the canary"
