"""Datasets, subset recipes and tasks.

>>> from semalign.data import load_dataset, get_task, get_pairs
>>> df = load_dataset("openi-reports")      # id, text, findings, impression, MeSH, labels, split
>>> task = get_task("openi-5class")         # Task(name, modality, classes, train, test, anchors)
>>> pairs = get_pairs("synthcxr-pairs", n=500, seed=0)   # id, image, text

Manifests (``data_manifests/*.yml``) describe each dataset; ``semalign data check`` compares
the user's local copies with them. The offline datasets need nothing: the Open-i reports are
read in place from a registry asset and SynthCXR is generated. Nothing here imports a model.
"""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd

from semalign.data.errors import DataError
from semalign.data.tasks import Task, get_pairs, get_task, list_tasks

__all__ = ["DataError", "Task", "get_pairs", "get_task", "list_datasets", "list_tasks", "load_dataset", "cli"]

# Dataset names for load_dataset -> (manifest name, loader)
_DATASETS = {
    "openi-reports": "openi-reports-offline",
    "synthcxr": "synthcxr",
    "mimic-cxr": "mimic-cxr",
    "rsna-pneumonia": "rsna-pneumonia",
    "vindr-cxr": "vindr-cxr",
    "iu-xray-openi": "iu-xray-openi",
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_DATASETS)


def _ensure_recipes() -> None:
    import semalign.data.recipes  # noqa: F401 — registers the tasks of the paper's datasets


def load_dataset(name: str, **params: Any) -> pd.DataFrame:
    """A dataset as records: ``id``, ``text`` and/or ``image``, label columns, ``split``.

    ``openi-reports``: the 3,955 Open-i reports (see :func:`semalign.data.openi.load_reports`).
    ``synthcxr``: ``n`` (default 1000) generated images with reports and labels (``seed``).
    ``mimic-cxr`` / ``rsna-pneumonia`` / ``vindr-cxr`` / ``iu-xray-openi``: the label tables of a
    local copy, images as paths (``path=`` or the dataset's environment variable).
    """
    if name == "openi-reports":
        from semalign.data import openi

        df = openi.load_reports(params.get("path"))
        df.attrs["dataset_key"] = f"openi-reports@{openi.SHA256[:12]}"
        return df
    if name == "synthcxr":
        from semalign.data.synthcxr import generate
        from semalign.data.tasks import SYNTHCXR_VERSION, recipe_key

        n, seed, size = int(params.get("n", 1000)), int(params.get("seed", 0)), int(params.get("size", 224))
        b = generate(n, seed=seed, size=size)
        df = b.labels.copy()
        df.insert(1, "image", list(b.images))
        df.insert(2, "text", b.reports)
        df["split"] = "train"
        df.attrs["dataset_key"] = recipe_key("synthcxr", {"n": n, "seed": seed, "size": size, "v": SYNTHCXR_VERSION})
        return df
    if name in ("mimic-cxr", "rsna-pneumonia", "vindr-cxr", "iu-xray-openi"):
        return _load_local(name, params.get("path"))
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())} "
                    f"(tasks are built with get_task: {', '.join(list_tasks())})")


def _load_local(name: str, path: str | None) -> pd.DataFrame:
    from semalign.data import recipes
    from semalign.data.manifests import require

    if name == "mimic-cxr":
        folder = require(name, path, files=["mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"])
        lab = recipes.read_table(name, folder, "mimic-cxr-2.0.0-chexpert.csv.gz")
        split = recipes.read_table(name, folder, "mimic-cxr-2.0.0-split.csv.gz").drop_duplicates("study_id")
        df = lab.merge(split[["study_id", "split"]], on="study_id", how="left")
        df.insert(0, "id", "s" + df["study_id"].astype(str))
        return df
    if name == "rsna-pneumonia":
        folder = require(name, path, files=["stage_2_train_labels.csv"])
        lab = recipes.read_table(name, folder, "stage_2_train_labels.csv")
        y = lab.groupby("patientId")["Target"].max().reset_index()
        return pd.DataFrame({"id": y["patientId"], "image": [str(folder / "stage_2_train_images" / f"{p}.dcm") for p in y["patientId"]],
                             "Target": y["Target"], "split": "train"})
    if name == "vindr-cxr":
        folder = require(name, path, files=["annotations/image_labels_test.csv", "annotations/image_labels_train.csv"])
        parts = []
        for split in ("train", "test"):
            t = recipes.read_table(name, folder, f"annotations/image_labels_{split}.csv")
            t = t.drop(columns=[c for c in t.columns if c.lower() == "rad_id"]).groupby("image_id").max().reset_index()
            t.insert(0, "id", t["image_id"])
            t.insert(1, "image", [str(folder / split / f"{i}.dicom") for i in t["image_id"]])
            t["split"] = split
            parts.append(t)
        return pd.concat(parts, ignore_index=True)
    pairs = recipes.iu_xray_pairs(n=10**9, path=path)
    pairs["split"] = "train"
    return pairs


def cli(args) -> int:
    """``semalign data check [NAME ...]`` and ``semalign data ls``."""
    from semalign.data.manifests import check, manifests

    try:
        ms = manifests()
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = args.names or sorted(ms)
    unknown = [n for n in names if n not in ms]
    if unknown:
        print(f"error: unknown dataset(s) {unknown}; known: {', '.join(sorted(ms))}", file=sys.stderr)
        return 2
    if args.action == "ls":
        for n in names:
            m = ms[n]
            print(f"{n:24s} {m['access']:12s} {m['licence'][:40]:40s} {m['homepage']}")
        return 0
    worst = 0
    for n in names:
        r = check(n)
        m = ms[n]
        print(f"{n}  [{m['access']}]  {r['state'].upper()}" + (f"  ({r['folder']})" if r["folder"] else ""))
        for s in r["files"]:
            print(f"    {s.status:28s} {s.path}" + (f"  — {s.detail}" if s.detail else ""))
        if r["state"] != "ready":
            print(f"    next step: {r['next_step']}")
        if r["state"] == "damaged":
            worst = 1
    return worst


import semalign.data.recipes  # noqa: E402,F401 — registers mimic-5x200, rsna-pneumonia, vindr-* tasks
