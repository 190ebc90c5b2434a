"""Open-i reports: parser, class rules, sentence removal, and the openi-5class task."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from semalign.data import DataError, get_task
from semalign.data import openi

XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation><uId id="CXR{n}"/><MedlineCitation><Article><Abstract>
<AbstractText Label="FINDINGS">{f}</AbstractText><AbstractText Label="IMPRESSION">{i}</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH>{mesh}</MeSH><parentImage id="CXR{n}_IM-0001-1001"><caption>x</caption></parentImage></eCitation>"""


def _tgz(tmp_path: Path, reports: list[tuple[str, str, list[str]]]) -> Path:
    p = tmp_path / "NLMCXR_reports.tgz"
    with tarfile.open(p, "w:gz") as tf:
        for n, (f, i, mesh) in enumerate(reports, start=1):
            raw = XML.format(n=n, f=f, i=i, mesh="".join(f"<major>{m}</major>" for m in mesh)).encode()
            info = tarfile.TarInfo(f"ecgen-radiology/{n}.xml")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return p


def test_parse_small_archive(tmp_path):
    p = _tgz(tmp_path, [("Heart is enlarged. Lungs clear.", "Cardiomegaly.", ["Cardiomegaly/mild"]),
                        ("", "Normal chest.", ["normal"])])
    df = openi.parse_reports(p)
    assert list(df["id"]) == ["CXR1", "CXR2"]
    assert df.loc[0, "mesh_major"] == ["Cardiomegaly/mild"] and df.loc[0, "image_ids"] == ["CXR1_IM-0001-1001"]
    assert df.loc[1, "findings"] == "" and df.loc[1, "impression"] == "Normal chest."


def test_truncated_or_missing_archive(tmp_path):
    p = _tgz(tmp_path, [("a.", "b.", ["normal"])] * 50)
    bad = tmp_path / "cut.tgz"
    bad.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(DataError, match="truncated or not a .tgz.*semalign assets fetch torchxrayvision"):
        openi.parse_reports(bad)
    with pytest.raises(DataError, match="not found"):
        openi.parse_reports(tmp_path / "nope.tgz")


def test_mesh_class_rules():
    assert openi.mesh_classes(["normal"]) == {"Normal"}
    assert openi.mesh_classes(["Calcified Granuloma/lung/upper lobe/right"]) == {"Granuloma"}
    assert openi.mesh_classes(["Granulomatous Disease"]) == {"Granuloma"}
    assert openi.mesh_classes(["Thoracic Vertebrae/degenerative/mild"]) == {"Spine degenerative"}
    assert openi.mesh_classes(["Spine/scoliosis"]) == set()  # degenerative qualifier required
    assert openi.mesh_classes(["Opacity/lung/base/left", "Cardiomegaly"]) == {"Opacity", "Cardiomegaly"}


def test_sentences_naming_a_class_are_removed_whatever_the_label():
    t = "Heart size is normal. Mild cardiomegaly. 1. Stable calcified granuloma. Degenerative changes of the spine. No effusion."
    assert openi.strip_class_sentences(t) == "No effusion."
    assert openi.strip_class_sentences("Left basilar opacities. Clear lungs.") == "Clear lungs."
    # whole words only: "abnormality" does not name Normal
    assert openi.strip_class_sentences("No acute abnormality.") == "No acute abnormality."


@pytest.mark.slow
def test_real_archive_and_openi_5class(repo_root):
    df = openi.parse_reports()
    assert len(df) == openi.N_REPORTS and df["id"].is_unique
    t = get_task("openi-5class")
    assert t.modality == "text" and t.classes == list(openi.CLASSES)
    assert t.test["label"].value_counts().to_dict() == {c: 100 for c in openi.CLASSES}
    test = set(t.test["id"])
    assert not test & set(t.train["id"]) and not test & set(t.anchors["id"])
    assert set(t.train["id"]) <= set(t.anchors["id"]) and len(t.anchors) >= 2000
    rx = re.compile(r"\b(?:" + "|".join(w for ws in openi.CLASS_KEYWORDS.values() for w in ws) + r")\b", re.I)
    for frame in (t.train, t.test, t.anchors):
        assert not frame["input"].str.contains(rx).any()
        assert (frame["input"].str.len() > 0).all()
    # the published id list is what the recipe gives
    published = (repo_root / "data_manifests" / "openi-5class.test-ids.txt").read_text().split()
    assert published == list(t.test["id"])
    # deterministic, and another seed gives another test set
    assert list(get_task("openi-5class").test["id"]) == published
    assert list(get_task("openi-5class", seed=1).test["id"]) != published
    with pytest.raises(DataError, match="asks for 400 test reports"):
        get_task("openi-5class", n_test_per_class=400)
    full = __import__("semalign.data", fromlist=["load_dataset"]).load_dataset("openi-reports")
    assert (full["split"] == "test").sum() == 500 and len(full) == openi.N_REPORTS


def test_iu_xray_dataset_is_every_usable_pair(tmp_path, monkeypatch):
    """load_dataset("iu-xray-openi"): every report with an image and some text, in report order
    (reports without text are left out), each image checked to be in the copy."""
    from semalign.data import get_pairs, load_dataset
    from semalign.data import manifests as M

    spec = next(f for f in M.get_manifest("iu-xray-openi")["files"] if f["path"] == "NLMCXR_reports.tgz")
    monkeypatch.setitem(spec, "sha256", None)  # a made-up archive
    root = tmp_path / "iu"
    root.mkdir()
    _tgz(root, [("Heart is enlarged.", "Cardiomegaly.", ["Cardiomegaly"]), ("", "", ["normal"]),
                ("Lungs clear.", "Normal chest.", ["normal"])])
    (root / "images").mkdir()
    for n in (1, 2, 3):
        (root / "images" / f"CXR{n}_IM-0001-1001.png").write_bytes(b"")
    monkeypatch.setenv("SEMALIGN_IU_XRAY", str(root))
    df = load_dataset("iu-xray-openi")
    assert list(df["id"]) == ["CXR1", "CXR3"] and set(df["split"]) == {"train"}
    assert list(df["text"]) == ["Heart is enlarged. Cardiomegaly.", "Lungs clear. Normal chest."]
    assert df["image"].str.endswith("_IM-0001-1001.png").all()
    assert list(get_pairs("iu-xray-pairs", n=2)["id"]) == ["CXR1", "CXR3"]
    (root / "images" / "CXR3_IM-0001-1001.png").unlink()
    with pytest.raises(DataError, match=r"1 of the 2 image files the iu-xray-openi dataset"):
        load_dataset("iu-xray-openi")
