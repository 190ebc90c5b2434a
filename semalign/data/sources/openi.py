"""The offline Open-i reports: dataset ``openi-reports`` and task ``openi-5class``.

The 3,955 Indiana/Open-i reports ship in the torchxrayvision 1.5.7 wheel (manifest
``openi-reports-offline``, bundled) and are read in place by :mod:`semalign.data.openi`, which
also holds the openi-5class recipe (:func:`~semalign.data.openi.build_5class`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from semalign._io import sha256_file
from semalign.data import openi as reader
from semalign.data.manifests import FileStatus, not_a_file
from semalign.data.registry import Task, dataset, recipe_key, task
from semalign.vocab import Modality

MANIFEST = "openi-reports-offline"


def check_archive(manifest: dict, verify: bool = True) -> dict:
    """``semalign data check`` of the archive read in place: where it is and whether it is the
    pinned one (``{"folder", "files", "state", "next_step"}``)."""
    fetch = f"run `semalign assets fetch {reader.ASSET}`"
    folder = None
    try:
        rp = reader.reports_path()
        folder = rp.parent
        st = FileStatus(str(rp.name), "present")
        state, nxt = "ready", manifest.get("access_steps", "nothing to do").strip()
        if rp.exists() and not rp.is_file():
            st = FileStatus(rp.name, "not a file", not_a_file(rp))
            state, nxt = "damaged", (f"{rp} must be the NLMCXR_reports.tgz file: point "
                                     f"{reader.ENV_VAR} at the file, or unset it to use the "
                                     f"{reader.ASSET} asset")
        elif verify and sha256_file(rp) != reader.SHA256:
            st = FileStatus(rp.name, "checksum failed", f"re-fetch: semalign assets fetch {reader.ASSET}")
            state, nxt = "damaged", f"{fetch} (the archive differs from the pinned one)"
        return {"folder": folder, "files": [st], "state": state, "next_step": nxt}
    except Exception as e:  # noqa: BLE001 — asset fetch errors carry their own advice
        return {"folder": folder, "files": [FileStatus(reader.MEMBER.name, "missing", str(e)[:200])],
                "state": "missing", "next_step": fetch}


@dataset("openi-reports", manifest=MANIFEST, check=check_archive)
def load(path: str | Path | None = None) -> pd.DataFrame:
    """The 3,955 Open-i reports (:func:`semalign.data.openi.load_reports`); ``path``: another
    copy of NLMCXR_reports.tgz."""
    df = reader.load_reports(path)
    df.attrs["dataset_key"] = f"openi-reports@{reader.SHA256[:12]}"
    return df


@task("openi-5class", dataset=MANIFEST, modality=Modality.TEXT)
def openi_5class(n_test_per_class: int = 100, n_train_per_class: int | None = 200, seed: int = 0) -> Task:
    """Five exclusive MeSH classes of the Open-i reports (:func:`semalign.data.openi.build_5class`)."""
    parts = reader.build_5class(n_test_per_class=n_test_per_class, n_train_per_class=n_train_per_class, seed=seed)
    recipe = {**reader.RECIPE_5CLASS, "n_test_per_class": n_test_per_class, "n_train_per_class": n_train_per_class,
              "seed": seed, "keywords": reader.CLASS_KEYWORDS, "archive_sha256": reader.SHA256, "version": 1}
    return Task(
        name="openi-5class", modality=Modality.TEXT, classes=list(reader.CLASSES),
        train=parts["train"], test=parts["test"], anchors=parts["anchors"],
        dataset_key=recipe_key("openi-5class", recipe), recipe=recipe,
        description="Open-i reports (findings + impression, sentences naming a class removed); "
                    "5 exclusive MeSH classes; test 100 per class.",
    )
