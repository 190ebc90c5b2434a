"""RSNA Pneumonia Detection Challenge from a local copy: dataset ``rsna-pneumonia`` and the
balanced binary task ``rsna-pneumonia`` (the paper's pneumonia task).

The Kaggle stage-2 test labels were never released, so the recipe splits stage_2_train
(:func:`rsna_task`). Reads only the label table; images are passed on as paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from semalign.data.local import draw, read_table, require_images
from semalign.data.manifests import require
from semalign.data.registry import Task, dataset, recipe_key, task
from semalign.vocab import Modality

MANIFEST = "rsna-pneumonia"


@dataset("rsna-pneumonia")
def load(path: str | Path | None = None) -> pd.DataFrame:
    """One row per patient of a local copy: ``id`` (patientId), ``image`` (its DICOM path),
    ``Target`` (1 = pneumonia box present: max over the patient's rows), ``split`` (``train``)."""
    folder = require(MANIFEST, path, files=["stage_2_train_labels.csv"])
    lab = read_table(MANIFEST, folder, "stage_2_train_labels.csv")
    y = lab.groupby("patientId")["Target"].max().reset_index()
    return pd.DataFrame({"id": y["patientId"], "image": [str(folder / "stage_2_train_images" / f"{p}.dcm") for p in y["patientId"]],
                         "Target": y["Target"], "split": "train"})


@task("rsna-pneumonia", dataset=MANIFEST, modality=Modality.IMAGE, finding="pneumonia", positive=1)
def rsna_task(n_test_per_class: int = 500, n_train_per_class: int = 1000, n_anchors: int = 2500,
              seed: int = 0, path: str | None = None) -> Task:
    """Balanced RSNA pneumonia test split from stage_2_train_labels.csv (the Kaggle stage-2
    test labels were never released): per patient, Target = max over its boxes."""
    folder = require(MANIFEST, path, files=["stage_2_train_labels.csv"])
    lab = read_table(MANIFEST, folder, "stage_2_train_labels.csv")
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
    require_images(MANIFEST, folder, [*train["input"], *test["input"], *anchors["input"]],
                   "the rsna-pneumonia recipe (test, training pool and anchors)")
    return Task("rsna-pneumonia", Modality.IMAGE, [0, 1], train, test, anchors, recipe_key("rsna-pneumonia", recipe),
                "RSNA pneumonia, balanced test split", recipe)
