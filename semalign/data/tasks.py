"""Tasks: what a decoder learns and is tested on, plus the anchor pool the translators use.

``get_task(name)`` returns a :class:`Task`; ``get_pairs(name, n, seed)`` the image–report pairs
of the zero-shot experiment (the paper's MIMIC-CXR role). Tasks of the offline profile:

* ``openi-5class`` — real Open-i reports, five exclusive MeSH classes (:mod:`semalign.data.openi`).
* ``synthcxr-pneumonia`` — balanced binary pneumonia on SynthCXR (the paper's RSNA role).
* ``synthcxr-vindr-<finding>`` — the six VinDr-CXR findings as balanced binary tasks.

Tasks of the paper's data (``mimic-5x200``, ``rsna-pneumonia``, ``vindr-<finding>``) come from
the user's local copies through :mod:`semalign.data.recipes`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from semalign.data.errors import DataError


@dataclass
class Task:
    """A classification task.

    train / test: DataFrames with columns ``id`` (str), ``input`` (str for text, uint8 (H, W)
    array or image path for images) and ``label`` (a member of ``classes``); anchors: DataFrame
    ``id, input`` — the pool anchors are drawn from, disjoint from test. ``dataset_key`` names
    the exact recipe (name + hash of its parameters) for the embedding cache.
    """

    name: str
    modality: str
    classes: list
    train: pd.DataFrame
    test: pd.DataFrame
    anchors: pd.DataFrame
    dataset_key: str
    description: str = ""
    recipe: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Counts per split and class (aggregates only: safe to publish)."""
        rows = []
        for split in ("train", "test"):
            vc = getattr(self, split)["label"].value_counts()
            rows += [{"split": split, "label": c, "count": int(vc.get(c, 0))} for c in self.classes]
        rows.append({"split": "anchors", "label": "(unlabelled)", "count": len(self.anchors)})
        return pd.DataFrame(rows)


def recipe_key(name: str, recipe: dict) -> str:
    """``name@<12 hex>`` from the recipe's parameters (and the generator/parser version)."""
    h = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{name}@{h}"


_TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str):
    def deco(fn):
        _TASKS[name] = fn
        return fn
    return deco


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str, **params: Any) -> Task:
    """Build task ``name`` (see :func:`list_tasks`); ``params`` override its recipe defaults."""
    if name not in _TASKS:
        raise DataError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    return _TASKS[name](**params)


# --------------------------------------------------------------------------- Open-i
@register_task("openi-5class")
def _openi_5class(n_test_per_class: int = 100, n_train_per_class: int | None = 200, seed: int = 0) -> Task:
    from semalign.data import openi

    parts = openi.build_5class(n_test_per_class=n_test_per_class, n_train_per_class=n_train_per_class, seed=seed)
    recipe = {**openi.RECIPE_5CLASS, "n_test_per_class": n_test_per_class, "n_train_per_class": n_train_per_class,
              "seed": seed, "keywords": openi.CLASS_KEYWORDS, "archive_sha256": openi.SHA256, "version": 1}
    return Task(
        name="openi-5class", modality="text", classes=list(openi.CLASSES),
        train=parts["train"], test=parts["test"], anchors=parts["anchors"],
        dataset_key=recipe_key("openi-5class", recipe), recipe=recipe,
        description="Open-i reports (findings + impression, sentences naming a class removed); "
                    "5 exclusive MeSH classes; test 100 per class.",
    )


# --------------------------------------------------------------------------- SynthCXR
SYNTHCXR_VERSION = 2  # 2: locations as drawn (labels, reports). Bump when the generator's pixels or reports change: invalidates caches


@functools.lru_cache(maxsize=4)
def _synth_pool(n: int, seed: int, size: int):
    """The natural-prevalence image pool (shared by every SynthCXR task as extra anchors)."""
    from semalign.data.synthcxr import generate

    return generate(n, seed=seed, size=size, id_prefix="synthpool")


def _balanced(finding: str, n_per_class: int, seed: int, size: int, prefix: str):
    from semalign.data.synthcxr import generate

    force = {finding: np.tile([1, 0], n_per_class)}
    return generate(2 * n_per_class, seed=seed, size=size, force=force, id_prefix=prefix)


def _frame(batch, finding: str | None = None) -> pd.DataFrame:
    d = {"id": list(batch.labels["id"]), "input": list(batch.images)}
    if finding is not None:
        d["label"] = batch.labels[finding].to_numpy().astype(int)
    return pd.DataFrame(d)


@functools.lru_cache(maxsize=8)
def synthcxr_task(finding: str, name: str, n_train_per_class: int = 200, n_test_per_class: int = 100,
                  n_pool: int = 800, seed: int = 0, size: int = 224) -> Task:
    """A balanced binary SynthCXR task for ``finding``.

    Test: ``n_test_per_class`` images with the finding and as many without (other findings at
    their default prevalence in both halves). Train: the same for ``n_train_per_class``, from
    another seed stream. Anchors: the train images plus a natural-prevalence pool of
    ``n_pool`` images shared by all SynthCXR tasks (the paper draws anchors from the training
    set; they carry no labels). All three are different random images (different seeds).
    Labels are 0/1 (1 = finding present); ``classes = [0, 1]``.
    """
    from semalign.data.synthcxr import FINDINGS

    if finding not in FINDINGS:
        raise DataError(f"unknown SynthCXR finding {finding!r}; known: {', '.join(FINDINGS)}")
    base = 7919 * (FINDINGS.index(finding) + 1) + 100_003 * seed
    test = _balanced(finding, n_test_per_class, base + 1, size, f"{name}-test")
    train = _balanced(finding, n_train_per_class, base + 2, size, f"{name}-train")
    pool = _synth_pool(n_pool, 100_003 * seed + 3, size)
    tr = _frame(train, finding)
    anchors = pd.concat([tr[["id", "input"]], _frame(pool)], ignore_index=True)
    recipe = {"finding": finding, "n_train_per_class": n_train_per_class, "n_test_per_class": n_test_per_class,
              "n_pool": n_pool, "seed": seed, "size": size, "generator_version": SYNTHCXR_VERSION}
    return Task(
        name=name, modality="image", classes=[0, 1], train=tr, test=_frame(test, finding), anchors=anchors,
        dataset_key=recipe_key(name, recipe), recipe=recipe,
        description=f"SynthCXR {finding.replace('_', ' ')}: balanced binary, {n_test_per_class} + "
                    f"{n_test_per_class} test images.",
    )


def _register_synth():
    from semalign.data.synthcxr import VINDR_FINDINGS

    register_task("synthcxr-pneumonia")(functools.partial(synthcxr_task, "pneumonia", "synthcxr-pneumonia"))
    for slug, f in VINDR_FINDINGS.items():
        name = f"synthcxr-vindr-{slug}"
        register_task(name)(functools.partial(synthcxr_task, f, name))


_register_synth()


# --------------------------------------------------------------------------- pairs
def get_pairs(name: str = "synthcxr-pairs", n: int = 2000, seed: int = 0, **params: Any) -> pd.DataFrame:
    """Image–report pairs (the paper's MIMIC-CXR role in the zero-shot experiment).

    Returns a DataFrame ``id, image, text`` (image: uint8 (H, W) array or a file path) with
    ``df.attrs["dataset_key"]`` for the embedding cache. Names: ``synthcxr-pairs`` (offline),
    ``mimic-cxr-pairs`` (the frontal-view anchor pool of a local MIMIC-CXR copy),
    ``iu-xray-pairs`` (a local Open-i image + report copy).
    """
    if name == "synthcxr-pairs":
        from semalign.data.synthcxr import generate

        size = int(params.get("size", 224))
        b = generate(n, seed=50_000 + seed, size=size, id_prefix="synthpair")
        df = pd.DataFrame({"id": list(b.labels["id"]), "image": list(b.images), "text": b.reports})
        df.attrs["dataset_key"] = recipe_key(name, {"n": n, "seed": seed, "size": size, "generator_version": SYNTHCXR_VERSION})
        return df
    if name == "mimic-cxr-pairs":
        from semalign.data import recipes

        return recipes.mimic_pairs(n=n, seed=seed, **params)
    if name == "iu-xray-pairs":
        from semalign.data import recipes

        return recipes.iu_xray_pairs(n=n, seed=seed, **params)
    raise DataError(f"unknown pairs {name!r}; known: synthcxr-pairs, mimic-cxr-pairs, iu-xray-pairs")
