"""VinDr-CXR from a local copy: dataset ``vindr-cxr`` and the paper's six findings as balanced
binary tasks ``vindr-<finding>`` (credentialed: its tasks are not publishable).

Reads only the label tables; images are passed on as paths (:func:`vindr_task`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from semalign.data.local import draw, read_table, require_images
from semalign.data.manifests import require
from semalign.data.registry import Task, dataset, recipe_key, task
from semalign.vocab import Modality, finding

MANIFEST = "vindr-cxr"
#: The label columns of the paper's six findings, as the annotation files spell them.
COLUMNS = ("Aortic enlargement", "Cardiomegaly", "Lung Opacity", "Pleural thickening", "Pulmonary fibrosis",
           "Tuberculosis")
#: ``{finding key: label column}``: the vocabulary's finding of each column.
VINDR6: dict[str, str] = {finding(c).key: c for c in COLUMNS}


@dataset("vindr-cxr")
def load(path: str | Path | None = None) -> pd.DataFrame:
    """One row per image of a local copy: ``id`` (image_id), ``image`` (its DICOM path), one 0/1
    column per finding (train: positive when any radiologist marks it), ``split``."""
    folder = require(MANIFEST, path, files=["annotations/image_labels_test.csv", "annotations/image_labels_train.csv"])
    parts = []
    for split in ("train", "test"):
        t = read_table(MANIFEST, folder, f"annotations/image_labels_{split}.csv")
        t = t.drop(columns=[c for c in t.columns if c.lower() == "rad_id"]).groupby("image_id").max().reset_index()
        t.insert(0, "id", t["image_id"])
        t.insert(1, "image", [str(folder / split / f"{i}.dicom") for i in t["image_id"]])
        t["split"] = split
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def vindr_task(slug: str, n_test_per_class: int | None = None, n_train_per_class: int = 500, n_anchors: int = 2500,
               seed: int = 0, path: str | None = None) -> Task:
    """One of the six VinDr-CXR findings as a balanced binary task.

    Test: from image_labels_test.csv (radiologists' consensus), ``n_test_per_class`` positives
    and as many negatives (default: all positives). Train / anchors: image_labels_train.csv,
    an image positive when any of its three radiologists marks the finding.
    """
    col = VINDR6[slug]
    folder = require(MANIFEST, path, files=["annotations/image_labels_test.csv", "annotations/image_labels_train.csv"])
    te = read_table(MANIFEST, folder, "annotations/image_labels_test.csv")
    tr = read_table(MANIFEST, folder, "annotations/image_labels_train.csv").groupby("image_id")[col].max()
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
    require_images(MANIFEST, folder, [*train["input"], *test["input"], *anchors["input"]],
                   f"the {name} recipe (test from test/, training pool and anchors from train/)")
    return Task(name, Modality.IMAGE, [0, 1], train, test, anchors, recipe_key(name, recipe),
                f"VinDr-CXR {col}, balanced test subset", recipe)


for _key in VINDR6:
    task(f"vindr-{_key}", dataset=MANIFEST, modality=Modality.IMAGE, finding=_key, positive=1)(
        functools.partial(vindr_task, _key))
