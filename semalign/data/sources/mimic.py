"""MIMIC-CXR from a local copy: dataset ``mimic-cxr``, task ``mimic-5x200`` and the
image–report anchor pool ``mimic-cxr-pairs`` (credentialed: its tasks are not publishable).

* :func:`mimic_5x200` — MIMIC-5x200 (MedCLIP's recipe): for each of Atelectasis,
  Cardiomegaly, Consolidation, Edema, Pleural Effusion, 200 studies where that class is
  positive (1.0) and the other four are negative or not mentioned (0.0 / blank; a study with
  an uncertain -1.0 among the other four is not used); text = findings + impression.
* :func:`mimic_pairs` — the image–report anchor pool: frontal views (PA / AP) of the train split.

Reads only label / metadata / report files (never pixels), seeded and deterministic; nothing
of this dataset is ever written into the repository or the book (see :mod:`semalign.data.local`).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from semalign.data.errors import DataError
from semalign.data.local import draw_with_text, read_table
from semalign.data.manifests import require
from semalign.data.registry import Task, dataset, pairs, recipe_key, task
from semalign.vocab import Modality

MANIFEST = "mimic-cxr"
#: The five CheXpert classes of MIMIC-5x200 (the label file's column names).
MIMIC5 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


@dataset("mimic-cxr")
def load(path: str | Path | None = None) -> pd.DataFrame:
    """The CheXpert label table of a local copy, one row per study: ``id`` (``s<study_id>``),
    the label columns and the official ``split``."""
    folder = require(MANIFEST, path, files=["mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"])
    lab = read_table(MANIFEST, folder, "mimic-cxr-2.0.0-chexpert.csv.gz")
    split = read_table(MANIFEST, folder, "mimic-cxr-2.0.0-split.csv.gz").drop_duplicates("study_id")
    df = lab.merge(split[["study_id", "split"]], on="study_id", how="left")
    df.insert(0, "id", "s" + df["study_id"].astype(str))
    return df


_SECTION = re.compile(r"^\s*([A-Z][A-Z /&-]+):", re.MULTILINE)


def report_sections(text: str) -> dict[str, str]:
    """Upper-case ``NAME:`` sections of a free-text report, whitespace collapsed."""
    out, marks = {}, list(_SECTION.finditer(text))
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        out[m.group(1).strip()] = " ".join(text[m.end():end].split())
    return out


def findings_impression(text: str) -> str:
    s = report_sections(text)
    return " ".join(x for x in (s.get("FINDINGS", ""), s.get("IMPRESSION", "")) if x)


def _mimic_report(folder: Path, subject_id: int, study_id: int, zf: zipfile.ZipFile | None) -> str:
    rel = f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}.txt"
    if zf is not None:
        try:
            return zf.read(rel).decode("utf-8", "replace")
        except KeyError:
            raise DataError(f"mimic-cxr: report {rel} is not in mimic-cxr-reports.zip; the zip is incomplete — "
                            f"download it again from PhysioNet (mimic-cxr 2.0.0).") from None
    p = folder / "reports" / rel
    if p.is_dir():
        raise DataError(f"mimic-cxr: report {p} is a folder, not a text file; unzip "
                        f"mimic-cxr-reports.zip into {folder / 'reports'} again (or keep the zip in {folder}).")
    if not p.is_file():
        raise DataError(f"mimic-cxr: report {p} not found; unzip mimic-cxr-reports.zip into {folder / 'reports'} "
                        f"or keep the zip in {folder}.")
    return p.read_text(errors="replace")


def _open_reports(folder: Path) -> zipfile.ZipFile | None:
    z = folder / "mimic-cxr-reports.zip"
    if z.exists() and not z.is_file():
        raise DataError(f"mimic-cxr: {z} is a folder, not the zip: keep the zip file itself there, or "
                        f"unzip it into {folder / 'reports'} and remove {z}.")
    if z.is_file():
        try:
            return zipfile.ZipFile(z)
        except zipfile.BadZipFile:
            raise DataError(f"mimic-cxr: {z} is not a valid zip (truncated download?); download it again.") from None
    return None


@task("mimic-5x200", dataset=MANIFEST, modality=Modality.TEXT)
def mimic_5x200(n_per_class: int = 200, n_train_per_class: int = 200, n_anchors: int = 2500, seed: int = 0,
                path: str | None = None) -> Task:
    """MIMIC-5x200: ``n_per_class`` test studies per class of :data:`MIMIC5` from the validate +
    test splits, up to ``n_train_per_class`` per class and ``n_anchors`` unlabelled anchor
    reports from the train split (text: findings + impression; studies without either skipped)."""
    folder = require(MANIFEST, path, files=["mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"])
    lab = read_table(MANIFEST, folder, "mimic-cxr-2.0.0-chexpert.csv.gz")
    split = read_table(MANIFEST, folder, "mimic-cxr-2.0.0-split.csv.gz")
    study_split = split.drop_duplicates("study_id").set_index("study_id")["split"]
    lab["split"] = lab["study_id"].map(study_split).fillna("train")
    L = lab[list(MIMIC5)]
    rng = np.random.default_rng(seed)
    subj = lab.drop_duplicates("study_id").set_index("study_id")["subject_id"]
    zf = _open_reports(folder)

    def text_of(s) -> str:  # the MedCLIP text: findings + impression ("" when neither section exists)
        return findings_impression(_mimic_report(folder, int(subj[s]), int(s), zf))

    test_parts, train_parts = [], []
    for c in MIMIC5:
        others = [o for o in MIMIC5 if o != c]
        # MedCLIP's recipe: positive for c, and 0 or blank (never 1, never -1 uncertain) for the other four
        ok = (L[c] == 1) & L[others].isin([0]).where(L[others].notna(), True).all(axis=1)
        cand_test = lab.loc[ok & lab["split"].isin(["test", "validate"]), "study_id"].to_numpy()
        cand_train = lab.loc[ok & (lab["split"] == "train"), "study_id"].to_numpy()
        test_parts.append((c, draw_with_text(cand_test, n_per_class, rng, f"mimic-5x200 test class {c!r}", text_of)))
        train_parts.append((c, draw_with_text(cand_train, min(n_train_per_class, len(cand_train)), rng,
                                              f"mimic-5x200 train {c!r}", text_of)))

    def frame(parts):
        rows = [{"id": f"s{s}", "input": t, "label": c} for c, drawn in parts for s, t in drawn]
        return pd.DataFrame(rows).sort_values("id").reset_index(drop=True)

    test, train = frame(test_parts), frame(train_parts)
    # anchors: reports of train-split studies (the paper draws anchors from the training set)
    pool = lab.loc[lab["split"] == "train", "study_id"].drop_duplicates().to_numpy()
    pick = draw_with_text(pool, min(n_anchors, len(pool)), rng, "mimic-5x200 anchors", text_of)
    anchors = frame([(None, pick)])[["id", "input"]]
    recipe = {"n_per_class": n_per_class, "n_train_per_class": n_train_per_class, "n_anchors": n_anchors,
              "seed": seed, "version": 2}  # 2: studies without findings/impression text are skipped
    return Task("mimic-5x200", Modality.TEXT, list(MIMIC5), train, test, anchors, recipe_key("mimic-5x200", recipe),
                "MIMIC-5x200 (MedCLIP recipe), findings + impression", recipe)


@pairs("mimic-cxr-pairs", dataset=MANIFEST)
def mimic_pairs(n: int = 2000, seed: int = 0, path: str | None = None) -> pd.DataFrame:
    """Frontal (PA/AP) image–report pairs of the MIMIC-CXR train split: ``id, image, text``."""
    folder = require(MANIFEST, path, files=["mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"])
    meta = read_table(MANIFEST, folder, "mimic-cxr-2.0.0-metadata.csv.gz")
    split = read_table(MANIFEST, folder, "mimic-cxr-2.0.0-split.csv.gz")
    meta = meta.merge(split[["dicom_id", "split"]], on="dicom_id", how="left")
    fr = meta[meta["ViewPosition"].isin(["PA", "AP"]) & (meta["split"] == "train")]
    fr = fr.sort_values("dicom_id").drop_duplicates("study_id")  # one image per study
    rng = np.random.default_rng(seed)
    zf = _open_reports(folder)
    by_dicom = fr.set_index("dicom_id")

    def text_of(d) -> str:
        r = by_dicom.loc[d]
        return findings_impression(_mimic_report(folder, int(r.subject_id), int(r.study_id), zf))

    picked = dict(draw_with_text(fr["dicom_id"].to_numpy(), n, rng, "mimic-cxr anchor pool (frontal views)", text_of))
    rows = []
    for d in sorted(picked):
        r = by_dicom.loc[d]
        sid, st = int(r.subject_id), int(r.study_id)
        img = folder / f"files/p{str(sid)[:2]}/p{sid}/s{st}/{d}.jpg"
        rows.append({"id": f"s{st}", "image": str(img), "text": picked[d]})
    df = pd.DataFrame(rows)
    df.attrs["dataset_key"] = recipe_key("mimic-cxr-pairs", {"n": n, "seed": seed, "version": 2})
    return df
