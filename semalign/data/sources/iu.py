"""IU X-ray / Open-i images and reports from a local copy: dataset ``iu-xray-openi`` and the
image–report pairs ``iu-xray-pairs`` (the open profile's anchor pool).

The reports are read with the Open-i archive reader (:mod:`semalign.data.openi`); images are
passed on as paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from semalign.data import openi as reader
from semalign.data.local import draw, require_images
from semalign.data.manifests import require
from semalign.data.registry import dataset, pairs, recipe_key

MANIFEST = "iu-xray-openi"


def _usable_reports(folder: Path) -> pd.DataFrame:
    """The reports of a local copy that have an image and some text (``text`` = findings +
    impression), in report order."""
    reports = reader.parse_reports(folder / "NLMCXR_reports.tgz")
    reports = reports[reports["image_ids"].map(len) > 0]
    reports["text"] = (reports["findings"] + " " + reports["impression"]).str.strip()
    return reports[reports["text"].str.len() > 0]


def _pairs_frame(folder: Path, reports: pd.DataFrame, what: str) -> pd.DataFrame:
    """``id, image, text``: the first image of each report (``*-1001``, usually the frontal
    view), every one checked to be in the copy."""
    df = pd.DataFrame({"id": reports["id"],
                       "image": [str(folder / "images" / f"{ids[0]}.png") for ids in reports["image_ids"]],
                       "text": reports["text"]}).reset_index(drop=True)
    require_images(MANIFEST, folder, list(df["image"]), what)
    return df


@dataset("iu-xray-openi")
def load(path: str | Path | None = None) -> pd.DataFrame:
    """Every image–report pair of a local copy (``id, image, text``, as :func:`iu_xray_pairs`),
    ``split`` train."""
    folder = require(MANIFEST, path)
    df = _pairs_frame(folder, _usable_reports(folder), "the iu-xray-openi dataset (every image–report pair)")
    df["split"] = "train"
    return df


@pairs("iu-xray-pairs", dataset=MANIFEST)
def iu_xray_pairs(n: int = 2000, seed: int = 0, path: str | None = None) -> pd.DataFrame:
    """``n`` Open-i image–report pairs drawn with ``seed`` from a local copy (NLMCXR_png.tgz
    unpacked + the reports): ``id, image, text`` in report order."""
    folder = require(MANIFEST, path)
    reports = _usable_reports(folder)
    rng = np.random.default_rng(seed)
    # more pairs than the copy holds is an error that says how many exist (never silently fewer)
    pick = set(draw(reports["id"].to_numpy(), n, rng, "iu-xray pairs (reports with an image and text)"))
    df = _pairs_frame(folder, reports[reports["id"].isin(pick)], "the iu-xray-pairs recipe (image–report anchors)")
    df.attrs["dataset_key"] = recipe_key("iu-xray-pairs", {"n": n, "seed": seed, "version": 1})
    return df
