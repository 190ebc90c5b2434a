"""Notebook glue: the few steps every notebook of the book repeats, kept out of the notebooks.

``encode_task`` turns a task name and encoder names into an
:class:`semalign.stitching.EncodedTask` through the embedding cache, so a warm rerun of the
book embeds nothing. ``projection_frame`` computes the Fig. 1 projection. Everything here
wires existing modules together (data → encoders + cache → stitching); no maths lives here.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

#: How the book writes each encoder domain; a stand-in is always named as such.
DOMAIN_LABELS = {"general": "general", "medical": "medical", "medical (stand-in)": "medical (stand-in)"}


def _embed(enc, inputs: list, ids: list[str], dataset: str, batch_size: int | None) -> np.ndarray:
    from semalign.cache import embed_cached

    kw: dict[str, Any] = {"ids": ids, "dataset": dataset}
    params = inspect.signature(embed_cached).parameters
    if batch_size and "batch_size" in params:
        kw["batch_size"] = batch_size
    if "progress" in params:
        kw["progress"] = False  # tqdm bars would fill the book's pages
    return np.asarray(embed_cached(enc, inputs, **kw), dtype=np.float32)


def load_encoders(names: Sequence[str], device: str = "auto") -> dict[str, Any]:
    """``{name: Encoder}`` from the registry, in the given order."""
    from semalign.encoders import get_encoder

    return {n: get_encoder(n, device=device) for n in names}


def encode_task(
    task: Any,
    encoders: Sequence[str] | dict[str, Any],
    *,
    device: str = "auto",
    batch_size: int | None = None,
    splits: Iterable[str] = ("train", "test", "anchors"),
):
    """Embed a task's train / test / anchor samples with each encoder (cached).

    ``task``: a task name for :func:`semalign.data.get_task` or a Task. Returns an
    ``EncodedTask`` whose ``encoders[name]`` holds ``Embeddings(train (n_tr, d), test
    (n_te, d), anchors (n_a, d))``; anchor rows correspond across encoders (same ids, same order).
    """
    from semalign.data import get_task
    from semalign.stitching import EncodedTask, Embeddings

    t = get_task(task) if isinstance(task, str) else task
    encs = load_encoders(encoders, device) if not isinstance(encoders, dict) else encoders
    splits = tuple(splits)
    out, domains = {}, {}
    for name, enc in encs.items():
        parts = {}
        for split in ("train", "test", "anchors"):
            df = getattr(t, split)
            if split not in splits:
                parts[split] = np.zeros((0, enc.dim), np.float32)
                continue
            parts[split] = _embed(enc, list(df["input"]), [str(i) for i in df["id"]], t.dataset_key, batch_size)
        out[name] = Embeddings(parts["train"], parts["test"], parts["anchors"])
        domains[name] = enc.domain
    return EncodedTask(
        name=t.name, modality=t.modality, encoders=out, domains=domains,
        y_train=np.asarray(t.train["label"]), y_test=np.asarray(t.test["label"]), classes=list(t.classes),
    )


def encoder_table(encoders: dict[str, Any]) -> pd.DataFrame:
    """One row per encoder: name, modality, domain (stand-ins named), dimension."""
    return pd.DataFrame(
        [{"encoder": n, "modality": e.modality, "domain": e.domain, "dim": e.dim} for n, e in encoders.items()]
    )


def projection_frame(
    x_anchors: np.ndarray,
    y_anchors: np.ndarray,
    x_show: np.ndarray,
    y_show: np.ndarray,
    methods: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[Any] | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 1 on real embeddings: fit each method on the anchors, map held-out samples.

    ``x_anchors`` (N, d1) / ``y_anchors`` (N, d2): parallel anchors (source / target).
    ``x_show`` (n, d1) / ``y_show`` (n, d2): the same n held-out samples in both spaces.
    Returns ``(points, scores)``: points (method, role, x, y, id, label) with the target
    and the aligned samples projected on the first two principal components of the target
    anchors (one common frame, so the panels are comparable) and the source samples on
    their own PCA (a different space: only its shape means something); scores (method,
    cosine, mse) measure how close the aligned samples land to their own target embedding.
    """
    from semalign.align import Translator

    def pca2(fit: np.ndarray):
        mu = fit.mean(0)
        _, _, vt = np.linalg.svd(fit - mu, full_matrices=False)
        return lambda z: (z - mu) @ vt[:2].T

    n = len(x_show)
    ids = [str(i) for i in (ids if ids is not None else range(n))]
    labels = list(labels) if labels is not None else [""] * n
    to_target = pca2(y_anchors)
    to_source = pca2(x_anchors)
    rows, scores = [], []

    def add(method: str, role: str, xy: np.ndarray):
        rows.append(pd.DataFrame({"method": method, "role": role, "x": xy[:, 0], "y": xy[:, 1],
                                  "id": ids, "label": labels}))

    for m in methods:
        std = m != "naive"  # the paper's naive baseline: no scaling, padding/cutting only
        y_hat = Translator(m, std_scaling=std, seed=seed).fit(x_anchors, y_anchors).transform(x_show)
        add(m, "source", to_source(x_show))
        add(m, "target", to_target(y_show))
        add(m, "aligned", to_target(y_hat))
        cos = np.sum(y_hat * y_show, 1) / (np.linalg.norm(y_hat, axis=1) * np.linalg.norm(y_show, axis=1) + 1e-12)
        scores.append({"method": m, "cosine": float(cos.mean()), "mse": float(np.mean((y_hat - y_show) ** 2)),
                       "n_anchors": len(x_anchors), "n_shown": n})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(scores)
