"""Subset recipes on the user's local copies of the paper's (credentialed) datasets.

Each recipe reads only label / metadata / report files (never pixels: images are passed on as
paths), is seeded and deterministic (same files + same seed -> same ids in the same order),
and fails with one :class:`DataError` that says what is wrong and what to do — including when
image files it selected are absent from the copy (:func:`require_images`). Nothing of these
datasets is ever written into the repository or the book; only counts are shown.

* :func:`mimic_5x200` — MIMIC-5x200 (MedCLIP's recipe): for each of Atelectasis,
  Cardiomegaly, Consolidation, Edema, Pleural Effusion, 200 studies where that class is
  positive (1.0) and the other four are negative or not mentioned (0.0 / blank; a study with
  an uncertain -1.0 among the other four is not used); text = findings + impression.
* :func:`mimic_pairs` — the image–report anchor pool: frontal views (PA / AP) of the train split.
* :func:`rsna_task` — balanced RSNA pneumonia test split (and the training pool).
* :func:`vindr_task` — the six VinDr-CXR findings as balanced binary tasks on the test set.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from semalign.data.errors import DataError
from semalign.data.manifests import check_columns, get_manifest, require
from semalign.data.tasks import Task, recipe_key, register_task

MIMIC5 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
VINDR6 = {
    "aortic-enlargement": "Aortic enlargement",
    "cardiomegaly": "Cardiomegaly",
    "lung-opacity": "Lung Opacity",
    "pleural-thickening": "Pleural thickening",
    "pulmonary-fibrosis": "Pulmonary fibrosis",
    "tuberculosis": "Tuberculosis",
}


def _file_spec(dataset: str, path: str) -> dict:
    for f in get_manifest(dataset)["files"]:
        if f["path"] == path:
            return f
    raise KeyError(path)


def read_table(dataset: str, folder: Path, path: str) -> pd.DataFrame:
    """A label / metadata CSV of a local copy, its columns checked against the manifest."""
    spec = _file_spec(dataset, path)
    p = folder / path
    if p.exists() and not p.is_file():
        raise DataError(f"{dataset}: {p} is a folder, but the manifest expects a file there: move it "
                        f"away and put the file itself there (`semalign data check {dataset}`).")
    if spec.get("columns"):
        check_columns(p, spec["columns"], dataset, exact=spec.get("columns_exact", True))
    try:
        return pd.read_csv(p)
    except Exception as e:  # noqa: BLE001 — pandas raises many types for damaged files
        raise DataError(f"{dataset}: cannot parse {p} ({type(e).__name__}: {e}); download it again.") from None


def require_images(dataset: str, folder: Path, paths, what: str) -> None:
    """One DataError when any of the image files a recipe selected is not in the local copy:
    how many, an example path, which manifest entry (folder pattern) they belong to, and where
    to download them to. (``semalign data check`` only sees whether a folder holds *some* images.)
    """
    paths = list(dict.fromkeys(str(p) for p in paths))
    missing = [p for p in paths if not Path(p).is_file()]
    if not missing:
        return
    m = get_manifest(dataset)
    specs = [f for f in m["files"] if f.get("glob")]
    by_spec: dict[str, int] = {}
    for p in missing:
        try:
            rel = PurePosixPath(Path(p).relative_to(folder).as_posix())
        except ValueError:
            rel = PurePosixPath(Path(p).as_posix())
        spec = next((f for f in specs if rel.match(f["path"])), None)
        key = spec["path"] if spec else f"{rel.parent}/"
        by_spec[key] = by_spec.get(key, 0) + 1
    desc = {f["path"]: f["description"] for f in specs}
    where = "; ".join(f"{n:,} in {k}" for k, n in by_spec.items())
    get = "; ".join(f"{k} ({desc[k]})" if k in desc else k for k in by_spec)
    how = f" How to get them: {' '.join(m['access_steps'].split())}" if m.get("access_steps") else ""
    raise DataError(
        f"{dataset}: {len(missing):,} of the {len(paths):,} image files {what} selected "
        f"{'is' if len(missing) == 1 else 'are'} missing from {folder} ({where}; e.g. {missing[0]}). "
        f"Download {get} from {m['homepage']} into {folder}.{how} "
        f"`semalign data check {dataset}` shows what the copy holds.")


def draw(ids: np.ndarray, k: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """``k`` ids drawn without replacement, or a DataError naming how many exist."""
    ids = np.sort(np.asarray(ids))
    if k > len(ids):
        raise DataError(f"{what}: the recipe asks for {k} samples but only {len(ids)} exist in this copy. "
                        f"Lower the count to at most {len(ids)} or check that the copy is complete.")
    return rng.permutation(ids)[:k]


def draw_with_text(ids: np.ndarray, k: int, rng: np.random.Generator, what: str, text_of) -> list[tuple]:
    """``k`` ``(id, text)`` drawn without replacement among the ids whose ``text_of(id)`` is not
    empty. Texts are read lazily in the seeded order, so only about ``k`` reports are opened
    (MIMIC-CXR has 227k); the result is deterministic for a seed. A DataError names how many
    usable ids exist when fewer than ``k`` do.
    """
    ids = np.sort(np.asarray(ids))
    if k > len(ids):
        draw(ids, k, rng, what)  # raises the usual "asks for k but only n exist"
    out, empty = [], 0
    for i in rng.permutation(ids):
        t = text_of(i)
        if t and t.strip():
            out.append((i, t))
            if len(out) == k:
                return out
        else:
            empty += 1
    raise DataError(f"{what}: the recipe asks for {k} samples but only {len(out)} of the {len(ids)} candidates "
                    f"have a findings or impression section ({empty} are empty). Lower the count to at most "
                    f"{len(out)} or check that the reports are complete.")


# --------------------------------------------------------------------------- MIMIC-CXR
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


def mimic_5x200(n_per_class: int = 200, n_train_per_class: int = 200, n_anchors: int = 2500, seed: int = 0,
                path: str | None = None) -> Task:
    folder = require("mimic-cxr", path, files=["mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"])
    lab = read_table("mimic-cxr", folder, "mimic-cxr-2.0.0-chexpert.csv.gz")
    split = read_table("mimic-cxr", folder, "mimic-cxr-2.0.0-split.csv.gz")
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
    return Task("mimic-5x200", "text", list(MIMIC5), train, test, anchors, recipe_key("mimic-5x200", recipe),
                "MIMIC-5x200 (MedCLIP recipe), findings + impression", recipe)


def mimic_pairs(n: int = 2000, seed: int = 0, path: str | None = None) -> pd.DataFrame:
    """Frontal (PA/AP) image–report pairs of the MIMIC-CXR train split: ``id, image, text``."""
    folder = require("mimic-cxr", path, files=["mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"])
    meta = read_table("mimic-cxr", folder, "mimic-cxr-2.0.0-metadata.csv.gz")
    split = read_table("mimic-cxr", folder, "mimic-cxr-2.0.0-split.csv.gz")
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


# --------------------------------------------------------------------------- RSNA
def rsna_task(n_test_per_class: int = 500, n_train_per_class: int = 1000, n_anchors: int = 2500,
              seed: int = 0, path: str | None = None) -> Task:
    """Balanced RSNA pneumonia test split from stage_2_train_labels.csv (the Kaggle stage-2
    test labels were never released): per patient, Target = max over its boxes."""
    folder = require("rsna-pneumonia", path, files=["stage_2_train_labels.csv"])
    lab = read_table("rsna-pneumonia", folder, "stage_2_train_labels.csv")
    y = lab.groupby("patientId")["Target"].max()
    rng = np.random.default_rng(seed)
    test = np.concatenate([draw(y.index[y == k].to_numpy(), n_test_per_class, rng, f"rsna-pneumonia test (Target={k})")
                           for k in (1, 0)])
    rest = y.drop(index=test)
    train = np.concatenate([draw(rest.index[rest == k].to_numpy(), min(n_train_per_class, int((rest == k).sum())), rng,
                                 "rsna-pneumonia train") for k in (1, 0)])
    pool = draw(rest.index.to_numpy(), min(n_anchors, len(rest)), rng, "rsna-pneumonia anchors")
    img = lambda pid: str(folder / "stage_2_train_images" / f"{pid}.dcm")  # noqa: E731
    fr = lambda ids: pd.DataFrame({"id": sorted(ids), "input": [img(i) for i in sorted(ids)],  # noqa: E731
                                   "label": [int(y[i]) for i in sorted(ids)]})
    recipe = {"n_test_per_class": n_test_per_class, "n_train_per_class": n_train_per_class, "n_anchors": n_anchors,
              "seed": seed, "version": 1}
    anchors = pd.DataFrame({"id": sorted(pool), "input": [img(i) for i in sorted(pool)]})
    train, test = fr(train), fr(test)
    require_images("rsna-pneumonia", folder, [*train["input"], *test["input"], *anchors["input"]],
                   "the rsna-pneumonia recipe (test, training pool and anchors)")
    return Task("rsna-pneumonia", "image", [0, 1], train, test, anchors, recipe_key("rsna-pneumonia", recipe),
                "RSNA pneumonia, balanced test split", recipe)


# --------------------------------------------------------------------------- VinDr-CXR
def vindr_task(slug: str, n_test_per_class: int | None = None, n_train_per_class: int = 500, n_anchors: int = 2500,
               seed: int = 0, path: str | None = None) -> Task:
    """One of the six VinDr-CXR findings as a balanced binary task.

    Test: from image_labels_test.csv (radiologists' consensus), ``n_test_per_class`` positives
    and as many negatives (default: all positives). Train / anchors: image_labels_train.csv,
    an image positive when any of its three radiologists marks the finding.
    """
    col = VINDR6[slug]
    folder = require("vindr-cxr", path, files=["annotations/image_labels_test.csv", "annotations/image_labels_train.csv"])
    te = read_table("vindr-cxr", folder, "annotations/image_labels_test.csv")
    tr = read_table("vindr-cxr", folder, "annotations/image_labels_train.csv").groupby("image_id")[col].max()
    yte = te.drop_duplicates("image_id").set_index("image_id")[col]
    rng = np.random.default_rng(seed)
    k = int((yte == 1).sum()) if n_test_per_class is None else n_test_per_class
    test = np.concatenate([draw(yte.index[yte == v].to_numpy(), k, rng, f"vindr-{slug} test (label={v})") for v in (1, 0)])
    train = np.concatenate([draw(tr.index[tr == v].to_numpy(), min(n_train_per_class, int((tr == v).sum())), rng,
                                 f"vindr-{slug} train") for v in (1, 0)])
    pool = draw(tr.index.to_numpy(), min(n_anchors, len(tr)), rng, f"vindr-{slug} anchors")
    def fr(ids, y, sub):
        ids = sorted(ids)
        return pd.DataFrame({"id": ids, "input": [str(folder / sub / f"{i}.dicom") for i in ids], "label": [int(y[i]) for i in ids]})
    recipe = {"finding": col, "n_test_per_class": k, "n_train_per_class": n_train_per_class, "n_anchors": n_anchors,
              "seed": seed, "version": 1}
    anchors = pd.DataFrame({"id": sorted(pool), "input": [str(folder / "train" / f"{i}.dicom") for i in sorted(pool)]})
    name = f"vindr-{slug}"
    train, test = fr(train, tr, "train"), fr(test, yte, "test")
    require_images("vindr-cxr", folder, [*train["input"], *test["input"], *anchors["input"]],
                   f"the {name} recipe (test from test/, training pool and anchors from train/)")
    return Task(name, "image", [0, 1], train, test, anchors, recipe_key(name, recipe),
                f"VinDr-CXR {col}, balanced test subset", recipe)


# --------------------------------------------------------------------------- IU X-ray images
def iu_xray_pairs(n: int = 2000, seed: int = 0, path: str | None = None) -> pd.DataFrame:
    """Open-i image–report pairs from a local copy (NLMCXR_png.tgz unpacked + the reports):
    the first image of each report (``*-1001``, usually the frontal view)."""
    from semalign.data import openi

    folder = require("iu-xray-openi", path)
    reports = openi.parse_reports(folder / "NLMCXR_reports.tgz")
    reports = reports[reports["image_ids"].map(len) > 0]
    reports["text"] = (reports["findings"] + " " + reports["impression"]).str.strip()
    reports = reports[reports["text"].str.len() > 0]
    rng = np.random.default_rng(seed)
    # more pairs than the copy holds is an error that says how many exist (never silently fewer)
    pick = set(draw(reports["id"].to_numpy(), n, rng, "iu-xray pairs (reports with an image and text)"))
    r = reports[reports["id"].isin(pick)]
    df = pd.DataFrame({"id": r["id"], "image": [str(folder / "images" / f"{ids[0]}.png") for ids in r["image_ids"]],
                       "text": r["text"]}).reset_index(drop=True)
    require_images("iu-xray-openi", folder, list(df["image"]), "the iu-xray-pairs recipe (image–report anchors)")
    df.attrs["dataset_key"] = recipe_key("iu-xray-pairs", {"n": n, "seed": seed, "version": 1})
    return df


register_task("mimic-5x200")(mimic_5x200)
register_task("rsna-pneumonia")(rsna_task)
for _slug in VINDR6:
    register_task(f"vindr-{_slug}")(lambda _s=_slug, **kw: vindr_task(_s, **kw))
