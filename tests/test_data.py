"""Manifests, `semalign data check`, and the recipes of the paper's datasets on fake fixture
files (right column names, made-up ids: no content of any real dataset)."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from semalign.cli import main
from semalign.data import DataError, get_pairs, get_task, list_datasets, load_dataset
from semalign.data import manifests as M
from semalign.data.sources.mimic import MIMIC5
from semalign.data.sources.vindr import VINDR6

EXPECTED = {"mimic-cxr", "rsna-pneumonia", "vindr-cxr", "iu-xray-openi", "openi-reports-offline", "synthcxr"}


@pytest.fixture(autouse=True)
def _no_local_copies(monkeypatch):
    for var in ("SEMALIGN_DATA", "SEMALIGN_MIMIC_CXR", "SEMALIGN_RSNA", "SEMALIGN_VINDR_CXR", "SEMALIGN_IU_XRAY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def pinned_rsna():
    """Requested by tests that keep the recorded sha256 of stage_2_train_labels.csv."""


@pytest.fixture(autouse=True)
def _fake_rsna_labels_unpinned(request, monkeypatch):
    # the fake RSNA labels are made up, so they never match the sha256 recorded for the real
    # stage_2_train_labels.csv: the recipe tests run with it unpinned (tests asking for
    # ``pinned_rsna`` keep it)
    if "pinned_rsna" in request.fixturenames:
        return
    spec = next(f for f in M.get_manifest("rsna-pneumonia")["files"] if f["path"] == "stage_2_train_labels.csv")
    monkeypatch.setitem(spec, "sha256", None)


# ------------------------------------------------------------------ manifests
def test_every_manifest_passes_the_schema(repo_root):
    files = sorted((repo_root / "data_manifests").glob("*.yml"))
    names = set()
    for p in files:
        m = yaml.safe_load(p.read_text())
        assert M.validate(m, p.name) == []
        assert p.stem == m["name"]
        names.add(m["name"])
    assert names == EXPECTED


def test_schema_rejects_bad_manifests():
    good = M.get_manifest("rsna-pneumonia")
    assert M.validate({**good, "access": "free"})
    assert M.validate({k: v for k, v in good.items() if k != "licence"})
    assert M.validate({**good, "files": [{"path": "x", "description": "y", "sha256": "abc"}]})
    assert any("access_steps" in e for e in M.validate({k: v for k, v in good.items() if k != "access_steps"}))


def test_no_credentialed_content_beside_the_manifests(repo_root):
    # only Open-i ids (not content) are published beside the manifests
    extra = [p.name for p in (repo_root / "data_manifests").iterdir() if p.suffix != ".yml"]
    assert extra == ["openi-5class.test-ids.txt"]
    ids = (repo_root / "data_manifests" / "openi-5class.test-ids.txt").read_text().split()
    assert len(ids) == 500 and all(i.startswith("CXR") for i in ids)


def test_check_cli_without_local_copies(capsys):
    assert main(["data", "check", "mimic-cxr", "synthcxr"]) == 0
    out = capsys.readouterr().out
    assert "mimic-cxr  [credentialed]  MISSING" in out
    assert "physionet" in out.lower() and "SEMALIGN_MIMIC_CXR" in out
    assert "synthcxr  [generated]  READY" in out
    assert main(["data", "check", "imagenet"]) == 2
    assert main(["data", "ls"]) == 0


# ------------------------------------------------------------------ fake local copies
def _csv_gz(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as f:
        df.to_csv(f, index=False)


def fake_mimic(root: Path, n: int = 400, seed: int = 0, empty: frozenset = frozenset()) -> Path:
    """A fake MIMIC-CXR copy; studies at the row numbers in ``empty`` have a report with neither
    findings nor impression (as some real ones do)."""
    rng = np.random.default_rng(seed)
    cols = M.get_manifest("mimic-cxr")["files"][0]["columns"]
    study = 50_000_000 + np.arange(n)
    subj = 10_000_000 + np.arange(n) // 2
    lab = pd.DataFrame({"subject_id": subj, "study_id": study})
    for c in cols[2:]:
        lab[c] = rng.choice([np.nan, 0.0, 1.0, -1.0], size=n, p=[0.6, 0.2, 0.1, 0.1])
    for k, c in enumerate(MIMIC5):  # enough clean positives for each class
        rows = np.arange(k * 60, k * 60 + 40)
        lab.loc[rows, list(MIMIC5)] = 0.0
        lab.loc[rows, c] = 1.0
    _csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", lab)
    dicom = [f"d{i:06d}" for i in range(n)]
    _csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", pd.DataFrame(
        {"dicom_id": dicom, "subject_id": subj, "study_id": study, "ViewPosition": rng.choice(["PA", "AP", "LATERAL"], n)}))
    split = np.where(np.arange(n) % 3 == 0, "test", "train")
    _csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", pd.DataFrame(
        {"dicom_id": dicom, "study_id": study, "subject_id": subj, "split": split}))
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w") as z:
        for k, (s, st) in enumerate(zip(subj, study)):
            z.writestr(f"files/p{str(s)[:2]}/p{s}/s{st}.txt",
                       "EXAMINATION: CHEST\n\nINDICATION: cough.\n" if k in empty else
                       f"EXAMINATION: CHEST\n\nFINDINGS: fake finding {st}.\n\nIMPRESSION: fake impression.\n")
    (root / "files/p10/p10000000/s50000000").mkdir(parents=True)
    (root / "files/p10/p10000000/s50000000/d000000.jpg").write_bytes(b"")
    return root


def _placeholders(folder: Path, ids, suffix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids:
        (folder / f"{i}{suffix}").write_bytes(b"")


def fake_rsna(root: Path, n: int = 300, seed: int = 0, images: bool = False) -> Path:
    """A fake RSNA copy; ``images``: an empty placeholder .dcm for every patient."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pid = [f"fake-{i:05d}" for i in range(n)]
    y = (np.arange(n) % 3 == 0).astype(int)
    rows = []
    for p, t in zip(pid, y):
        for _ in range(2 if t else 1):  # positives have two boxes
            rows.append({"patientId": p, "x": rng.integers(100) if t else None, "y": 1.0 if t else None,
                         "width": 5.0 if t else None, "height": 5.0 if t else None, "Target": t})
    pd.DataFrame(rows).to_csv(root / "stage_2_train_labels.csv", index=False)
    if images:
        _placeholders(root / "stage_2_train_images", pid, ".dcm")
    return root


def fake_vindr(root: Path, n_test: int = 200, n_train: int = 300, seed: int = 0, images: bool = False) -> Path:
    """A fake VinDr-CXR copy; ``images``: an empty placeholder .dicom for every image."""
    rng = np.random.default_rng(seed)
    cols = ["Aortic enlargement", "Atelectasis", "Cardiomegaly", "Lung Opacity", "Pleural thickening",
            "Pulmonary fibrosis", "Tuberculosis", "No finding"]
    te = pd.DataFrame({"image_id": [f"t{i:04d}" for i in range(n_test)]})
    tr = pd.DataFrame({"image_id": np.repeat([f"r{i:04d}" for i in range(n_train)], 3),
                       "rad_id": np.tile(["R1", "R2", "R3"], n_train)})
    for c in cols:
        te[c] = (rng.random(n_test) < 0.2).astype(int)
        tr[c] = (rng.random(3 * n_train) < 0.1).astype(int)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    te.to_csv(root / "annotations/image_labels_test.csv", index=False)
    tr.to_csv(root / "annotations/image_labels_train.csv", index=False)
    if images:
        _placeholders(root / "test", te["image_id"], ".dicom")
        _placeholders(root / "train", tr["image_id"].unique(), ".dicom")
    return root


def test_mimic_5x200_recipe_on_fake_files(tmp_path, monkeypatch):
    root = fake_mimic(tmp_path / "mimic")
    monkeypatch.setenv("SEMALIGN_MIMIC_CXR", str(root))
    t = get_task("mimic-5x200", n_per_class=10, n_train_per_class=20)
    assert t.test["label"].value_counts().to_dict() == {c: 10 for c in MIMIC5}
    assert t.test["input"].str.startswith("fake finding").all() and t.test["input"].str.contains("fake impression").all()
    assert not set(t.test["id"]) & set(t.train["id"]) and not set(t.test["id"]) & set(t.anchors["id"])
    again = get_task("mimic-5x200", n_per_class=10, n_train_per_class=20)
    assert list(again.test["id"]) == list(t.test["id"]) and again.dataset_key == t.dataset_key
    assert list(get_task("mimic-5x200", n_per_class=10, n_train_per_class=20, seed=1).test["id"]) != list(t.test["id"])
    pairs = get_pairs("mimic-cxr-pairs", n=20, seed=0)
    assert list(pairs.columns) == ["id", "image", "text"] and pairs["image"].str.endswith(".jpg").all()
    # every anchor is a frontal view of the train split
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz").set_index("dicom_id")
    views = meta.loc[[Path(p).stem for p in pairs["image"]], "ViewPosition"]
    assert set(views) <= {"PA", "AP"}
    df = load_dataset("mimic-cxr")
    assert {"id", "Atelectasis", "split"} <= set(df.columns)


def test_mimic_recipes_skip_reports_without_findings_or_impression(tmp_path, monkeypatch):
    # rows 0-39 are the clean Atelectasis positives (fake_mimic); empty half of them, and many others
    empty = frozenset(range(0, 40, 2)) | frozenset(range(200, 400, 3))
    root = fake_mimic(tmp_path / "mimic", empty=empty)
    monkeypatch.setenv("SEMALIGN_MIMIC_CXR", str(root))
    t = get_task("mimic-5x200", n_per_class=5, n_train_per_class=8, n_anchors=60)
    for part in (t.test, t.train, t.anchors):
        assert part["input"].str.startswith("fake finding").all(), "no empty text reaches a split"
    assert t.test["label"].value_counts().to_dict() == {c: 5 for c in MIMIC5}
    # every drawn study obeys the MedCLIP rule: its class positive, the other four 0 or blank
    lab = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz").set_index("study_id")
    for part in (t.test, t.train):
        for sid, c in zip(part["id"], part["label"]):
            row = lab.loc[int(sid[1:]), list(MIMIC5)]
            assert row[c] == 1 and row.drop(c).fillna(0).eq(0).all(), (sid, c, row.to_dict())
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz").drop_duplicates("study_id").set_index("study_id")["split"]
    assert set(split[[int(i[1:]) for i in t.test["id"]]]) <= {"test", "validate"}
    assert set(split[[int(i[1:]) for i in t.anchors["id"]]]) == {"train"}
    pairs = get_pairs("mimic-cxr-pairs", n=30, seed=0)
    assert pairs["text"].str.startswith("fake finding").all() and pairs["id"].is_unique
    # asking for more usable texts than exist names the empty ones
    with pytest.raises(DataError, match=r"have a findings or impression section \(\d+ are empty\)"):
        get_task("mimic-5x200", n_per_class=5, n_train_per_class=25, n_anchors=10)


def test_recipe_asking_more_than_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMALIGN_MIMIC_CXR", str(fake_mimic(tmp_path / "mimic")))
    with pytest.raises(DataError, match=r"asks for 200 samples but only \d+ exist"):
        get_task("mimic-5x200")  # the full 5x200 from 400 fake studies
    monkeypatch.setenv("SEMALIGN_RSNA", str(fake_rsna(tmp_path / "rsna")))
    with pytest.raises(DataError, match="asks for 500 samples but only 100 exist"):
        get_task("rsna-pneumonia")


def test_rsna_and_vindr_recipes_on_fake_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMALIGN_RSNA", str(fake_rsna(tmp_path / "rsna", images=True)))
    t = get_task("rsna-pneumonia", n_test_per_class=40, n_train_per_class=30, n_anchors=50)
    assert t.test["label"].value_counts().to_dict() == {0: 40, 1: 40}
    assert not set(t.test["id"]) & set(t.anchors["id"]) and not set(t.test["id"]) & set(t.train["id"])
    assert t.test["input"].str.endswith(".dcm").all()
    monkeypatch.setenv("SEMALIGN_VINDR_CXR", str(fake_vindr(tmp_path / "vindr", images=True)))
    for slug, col in VINDR6.items():
        v = get_task(f"vindr-{slug}")
        te = pd.read_csv(tmp_path / "vindr/annotations/image_labels_test.csv")
        assert v.test["label"].sum() == te[col].sum() == (v.test["label"] == 0).sum()
        assert v.test["id"].str.startswith("t").all() and v.anchors["id"].str.startswith("r").all()
    assert set(load_dataset("vindr-cxr")["split"]) == {"train", "test"}


def test_unexpected_label_columns(tmp_path, monkeypatch):
    root = fake_rsna(tmp_path / "rsna")
    df = pd.read_csv(root / "stage_2_train_labels.csv").rename(columns={"Target": "label"})
    df.to_csv(root / "stage_2_train_labels.csv", index=False)
    monkeypatch.setenv("SEMALIGN_RSNA", str(root))
    with pytest.raises(DataError, match=r"unexpected columns \(missing: \['Target'\]; unexpected: \['label'\]\)"):
        get_task("rsna-pneumonia", n_test_per_class=10)
    assert M.check("rsna-pneumonia")["state"] == "damaged"


def test_missing_file_says_what_to_do(tmp_path, monkeypatch):
    root = fake_mimic(tmp_path / "mimic")
    (root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    monkeypatch.setenv("SEMALIGN_MIMIC_CXR", str(root))
    with pytest.raises(DataError) as e:
        get_task("mimic-5x200", n_per_class=5)
    msg = str(e.value)
    assert "mimic-cxr-2.0.0-split.csv.gz: missing" in msg and "physionet.org" in msg
    r = M.check("mimic-cxr")
    assert r["state"] == "incomplete" and "mimic-cxr-2.0.0-split.csv.gz" in r["next_step"]
    monkeypatch.delenv("SEMALIGN_MIMIC_CXR")
    with pytest.raises(DataError, match="no local copy .* is configured.*SEMALIGN_MIMIC_CXR"):
        load_dataset("mimic-cxr")


def test_data_root_default_dir(tmp_path, monkeypatch):
    fake_rsna(tmp_path / "rsna-pneumonia")
    monkeypatch.setenv("SEMALIGN_DATA", str(tmp_path))
    assert M.locate("rsna-pneumonia") == tmp_path / "rsna-pneumonia"
    r = M.check("rsna-pneumonia")
    assert r["state"] == "incomplete" and "stage_2_train_images/*.dcm" in r["next_step"]
    (tmp_path / "rsna-pneumonia" / "stage_2_train_images").mkdir()
    (tmp_path / "rsna-pneumonia" / "stage_2_train_images" / "fake-00000.dcm").write_bytes(b"")
    assert M.check("rsna-pneumonia")["state"] == "ready"


def test_wrong_checksum(tmp_path, monkeypatch, capsys):
    root = tmp_path / "iu"
    (root / "images").mkdir(parents=True)
    (root / "images" / "CXR1_1_IM-0001-3001.png").write_bytes(b"")
    (root / "NLMCXR_reports.tgz").write_bytes(b"not the real archive")
    monkeypatch.setenv("SEMALIGN_IU_XRAY", str(root))
    r = M.check("iu-xray-openi")
    assert r["state"] == "damaged" and r["files"][0].status == "checksum failed"
    with pytest.raises(DataError, match="NLMCXR_reports.tgz: checksum failed"):
        get_pairs("iu-xray-pairs", n=5)
    assert main(["data", "check", "iu-xray-openi"]) == 1
    assert "download again: NLMCXR_reports.tgz (checksum failed)" in capsys.readouterr().out


def test_vindr_check_needs_the_training_images(tmp_path, monkeypatch, capsys):
    m = M.get_manifest("vindr-cxr")
    assert "train/*.dicom" in [f["path"] for f in m["files"]]
    assert "test/ is enough" not in m["access_steps"] and "train/" in m["access_steps"]
    root = fake_vindr(tmp_path / "vindr")
    _placeholders(root / "test", ["t0000"], ".dicom")  # test images only
    monkeypatch.setenv("SEMALIGN_VINDR_CXR", str(root))
    r = M.check("vindr-cxr")
    assert r["state"] == "incomplete" and "train/*.dicom" in r["next_step"]
    assert main(["data", "check", "vindr-cxr"]) == 0
    assert "vindr-cxr  [credentialed]  INCOMPLETE" in capsys.readouterr().out
    _placeholders(root / "train", ["r0000"], ".dicom")
    assert M.check("vindr-cxr")["state"] == "ready"


def test_vindr_recipe_names_missing_selected_images(tmp_path, monkeypatch):
    root = fake_vindr(tmp_path / "vindr", images=True)
    monkeypatch.setenv("SEMALIGN_VINDR_CXR", str(root))
    t = get_task("vindr-cardiomegaly", n_train_per_class=20, n_anchors=50)
    gone = Path(t.train["input"].iloc[0])
    gone.unlink()
    with pytest.raises(DataError) as e:
        get_task("vindr-cardiomegaly", n_train_per_class=20, n_anchors=50)
    msg = str(e.value)
    assert "1 of the" in msg and "image files" in msg and "is missing" in msg and str(gone) in msg
    assert "train/*.dicom" in msg and "physionet.org/content/vindr-cxr" in msg and str(root) in msg
    # the whole test/ folder absent: every selected test image is counted
    for p in (root / "test").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=rf"{len(t.test) + 1} of the \d+ image files .*test/\*\.dicom"):
        get_task("vindr-cardiomegaly", n_train_per_class=20, n_anchors=50)


def test_rsna_recipe_names_missing_selected_images(tmp_path, monkeypatch):
    root = fake_rsna(tmp_path / "rsna", images=True)
    monkeypatch.setenv("SEMALIGN_RSNA", str(root))
    t = get_task("rsna-pneumonia", n_test_per_class=20, n_train_per_class=20, n_anchors=30)
    gone = Path(t.test["input"].iloc[-1])
    gone.unlink()
    with pytest.raises(DataError) as e:
        get_task("rsna-pneumonia", n_test_per_class=20, n_train_per_class=20, n_anchors=30)
    msg = str(e.value)
    assert "1 of the" in msg and str(gone) in msg and "stage_2_train_images/*.dcm" in msg
    assert "kaggle" in msg.lower() and str(root) in msg
    # no image folder at all (only the labels downloaded): still one DataError, not a crash later
    for p in (root / "stage_2_train_images").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"(\d+) of the \1 image files"):
        get_task("rsna-pneumonia", n_test_per_class=20, n_train_per_class=20, n_anchors=30)


def test_optional_files_are_shown_as_optional(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEMALIGN_RSNA", str(fake_rsna(tmp_path / "rsna", images=True)))
    assert main(["data", "check", "rsna-pneumonia"]) == 0
    out = capsys.readouterr().out
    assert "rsna-pneumonia  [registration]  READY" in out
    line = next(x for x in out.splitlines() if "stage_2_detailed_class_info.csv" in x)
    assert line.split()[:2] == ["missing", "(optional)"]
    # IU: the image archive is optional (not needed once unpacked into images/), the reports are not
    root = tmp_path / "iu"
    _placeholders(root / "images", ["CXR1_1_IM-0001-3001"], ".png")
    monkeypatch.setenv("SEMALIGN_IU_XRAY", str(root))
    r = M.check("iu-xray-openi")
    st = {s.path: s.status for s in r["files"]}
    assert st["NLMCXR_png.tgz"] == "missing (optional)" and st["NLMCXR_reports.tgz"] == "missing"
    assert r["state"] == "incomplete" and "NLMCXR_png.tgz" not in r["next_step"]


def test_iu_next_step_is_exact():
    r = M.check("iu-xray-openi")  # no local copy configured
    nxt = r["next_step"]
    assert r["state"] == "missing"
    for s in ("https://openi.nlm.nih.gov/imgs/collections/NLMCXR_png.tgz",
              "https://openi.nlm.nih.gov/imgs/collections/NLMCXR_reports.tgz",
              "tar -xzf NLMCXR_png.tgz -C images", "SEMALIGN_IU_XRAY"):
        assert s in nxt, s


def test_schema_checks_the_required_flag():
    good = M.get_manifest("rsna-pneumonia")
    f = {"path": "x", "description": "y"}
    assert M.validate({**good, "files": [{**f, "required": False}]}) == []
    assert any("required must be true or false" in e for e in M.validate({**good, "files": [{**f, "required": "no"}]}))
    assert any("required: false" in e for e in M.validate({**good, "files": [{**f, "optional": True}]}))


def test_rsna_labels_with_another_sha256_fail_the_check(tmp_path, monkeypatch, capsys, pinned_rsna):
    spec = next(f for f in M.get_manifest("rsna-pneumonia")["files"] if f["path"] == "stage_2_train_labels.csv")
    assert spec["sha256"] == "bb40b7e956e9922a6b275ed4a158197568cf9ab618017d53db6159b1b624bb65"
    monkeypatch.setenv("SEMALIGN_RSNA", str(fake_rsna(tmp_path / "rsna", images=True)))
    r = M.check("rsna-pneumonia")
    assert r["state"] == "damaged"
    assert {s.path: s.status for s in r["files"]}["stage_2_train_labels.csv"] == "checksum failed"
    assert main(["data", "check", "rsna-pneumonia"]) == 1
    out = capsys.readouterr().out
    assert "next step: download again: stage_2_train_labels.csv (checksum failed)" in out
    assert "kaggle.com/competitions/rsna-pneumonia-detection-challenge" in out
    assert "kaggle_stage_2_train_labels.csv.zip" in out  # the identical copy in the torchxrayvision wheel
    with pytest.raises(DataError, match="stage_2_train_labels.csv: checksum failed"):
        get_task("rsna-pneumonia", n_test_per_class=10)


@pytest.mark.slow
def test_rsna_labels_sha256_is_the_torchxrayvision_copy(asset, tmp_path, monkeypatch, pinned_rsna):
    z = asset("torchxrayvision") / "torchxrayvision/data/kaggle_stage_2_train_labels.csv.zip"
    root = tmp_path / "rsna"
    root.mkdir()
    with zipfile.ZipFile(z) as zf:
        assert zf.getinfo("stage_2_train_labels.csv").file_size == 1_490_034
        zf.extract("stage_2_train_labels.csv", root)
    monkeypatch.setenv("SEMALIGN_RSNA", str(root))
    st = {s.path: s.status for s in M.check("rsna-pneumonia")["files"]}
    assert st["stage_2_train_labels.csv"] == "present"  # sha256 and columns both match


@pytest.mark.slow
def test_iu_copy_is_ready_without_the_optional_archive(asset, tmp_path, monkeypatch, capsys):
    root = tmp_path / "iu"
    _placeholders(root / "images", ["CXR1_1_IM-0001-3001"], ".png")
    (root / "NLMCXR_reports.tgz").symlink_to(asset("torchxrayvision") / "torchxrayvision/data/NLMCXR_reports.tgz")
    monkeypatch.setenv("SEMALIGN_IU_XRAY", str(root))
    assert main(["data", "check", "iu-xray-openi"]) == 0
    out = capsys.readouterr().out
    assert "iu-xray-openi  [open]  READY" in out and "missing (optional)" in out and "NLMCXR_png.tgz" in out
    assert M.require("iu-xray-openi") == root  # an absent optional file does not block the recipe


def test_truncated_image_gives_one_clear_message(tmp_path):
    from PIL import Image

    from semalign.images import ImageReadError, read_image

    p = tmp_path / "x.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(p)
    cut = tmp_path / "cut.png"
    cut.write_bytes(p.read_bytes()[:40])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(cut)


def test_unknown_names():
    assert set(list_datasets()) >= {"openi-reports", "synthcxr", "mimic-cxr"}
    with pytest.raises(DataError, match="unknown task"):
        get_task("nope")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("nope")
    with pytest.raises(DataError, match="unknown pairs"):
        get_pairs("nope")


def test_synthcxr_tasks_are_balanced_and_disjoint():
    t = get_task("synthcxr-vindr-cardiomegaly", n_train_per_class=6, n_test_per_class=5, n_pool=8, size=64)
    assert t.modality == "image" and t.classes == [0, 1]
    assert t.test["label"].value_counts().to_dict() == {0: 5, 1: 5}
    assert t.test["input"].iloc[0].shape == (64, 64)
    assert not set(t.test["id"]) & set(t.anchors["id"]) and set(t.train["id"]) <= set(t.anchors["id"])
    other = get_task("synthcxr-pneumonia", n_train_per_class=6, n_test_per_class=5, n_pool=8, size=64)
    # one shared test pool (tests/test_data_synthcxr_pools.py): the tasks' test sets overlap
    assert other.dataset_key != t.dataset_key and not set(other.test["id"]) & set(t.anchors["id"])
    df = load_dataset("synthcxr", n=4, size=64)
    assert {"id", "image", "text", "cardiomegaly", "split"} <= set(df.columns)


@pytest.mark.slow
def test_iu_pairs_check_their_images_and_never_return_fewer(asset, tmp_path, monkeypatch):
    """iu-xray-pairs on the real Open-i reports: every selected PNG must exist (one error naming
    the missing ones), and asking for more pairs than the copy holds says how many exist."""
    from semalign.data import openi

    root = tmp_path / "iu"
    (root / "NLMCXR_reports.tgz").parent.mkdir(parents=True)
    (root / "NLMCXR_reports.tgz").symlink_to(asset("torchxrayvision") / "torchxrayvision/data/NLMCXR_reports.tgz")
    reports = openi.parse_reports(root / "NLMCXR_reports.tgz")
    firsts = [ids[0] for ids in reports["image_ids"] if len(ids)]
    _placeholders(root / "images", firsts, ".png")
    monkeypatch.setenv("SEMALIGN_IU_XRAY", str(root))
    pairs = get_pairs("iu-xray-pairs", n=50, seed=0)
    assert len(pairs) == 50 and pairs["text"].str.len().gt(0).all()
    Path(pairs["image"].iloc[0]).unlink()
    with pytest.raises(DataError, match=r"1 of the 50 image files .*images/"):
        get_pairs("iu-xray-pairs", n=50, seed=0)
    with pytest.raises(DataError, match=r"asks for 100000 samples but only \d+ exist"):
        get_pairs("iu-xray-pairs", n=100_000, seed=0)
