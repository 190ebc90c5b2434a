"""Fig. 1 (notebook 01, paper Sec. 3.1): what the transforms do, on real embeddings.

Each method is fitted on parallel anchors of a source and a target encoder and maps held-out
samples into the target space; :func:`compute` projects source, target and aligned samples
to 2-D and scores how close each aligned sample lands to its own target embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from semalign.report.style import check_frame

__all__ = ["MIN_CELL", "HeldOut", "held_out", "publishes_samples", "cosine", "compute", "chart", "numbers"]

#: Below this many samples a density cell is not shown (small-cell suppression of aggregates).
MIN_CELL = 5


@dataclass
class HeldOut:
    """Fig. 1's samples: ``x_anchors`` (N, d1) / ``y_anchors`` (N, d2) parallel anchors of the
    source / target encoder; ``x_test`` (n, d1) / ``y_test`` (n, d2) the same n held-out test
    samples in both spaces; ``ids`` and ``labels`` (n,) of those test samples."""

    x_anchors: np.ndarray
    y_anchors: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    ids: list[str]
    labels: list[str]


def held_out(task, source: str, target: str, *, n_anchors: int, n_show: int, seed: int = 0) -> HeldOut:
    """Draw ``n_anchors`` anchors and ``n_show`` test samples of an ``EncodedTask`` (each capped by
    what the task holds) with one ``numpy.random.default_rng(seed)``: anchors first, then tests."""
    src, tgt = task.encoders[source], task.encoders[target]
    rng = np.random.default_rng(seed)
    a = rng.choice(len(src.anchors), size=min(n_anchors, len(src.anchors)), replace=False)
    s = rng.choice(len(task.y_test), size=min(n_show, len(task.y_test)), replace=False)
    return HeldOut(src.anchors[a], tgt.anchors[a], src.test[s], tgt.test[s],
                   ids=[str(i) for i in s], labels=[str(c) for c in task.y_test[s]])


def publishes_samples(task_name: str) -> bool:
    """May the book show per-sample points of this task? Not for a credentialed dataset
    (MIMIC-CXR, VinDr-CXR): there only aggregates are published (``Task.publishable``)."""
    from semalign.data import task_spec

    return task_spec(task_name).publishable


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (n, d) and (n, d) -> (n,)."""
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def _density(points: pd.DataFrame, bins: int, min_cell: int) -> pd.DataFrame:
    """2-D bin counts per (method, role) on one grid per role; cells under ``min_cell`` dropped."""
    out = []
    for role, sub in points.groupby("role", sort=False):
        xe = np.linspace(sub["x"].min(), sub["x"].max() + 1e-9, bins + 1)
        ye = np.linspace(sub["y"].min(), sub["y"].max() + 1e-9, bins + 1)
        for method, cell in sub.groupby("method", sort=False):
            h, _, _ = np.histogram2d(cell["x"], cell["y"], bins=[xe, ye])
            i, j = np.nonzero(h >= min_cell)
            out.append(pd.DataFrame({"method": method, "role": role, "x": (xe[i] + xe[i + 1]) / 2,
                                     "y": (ye[j] + ye[j + 1]) / 2, "count": h[i, j].astype(int)}))
    return pd.concat(out, ignore_index=True)


def compute(
    x_anchors: np.ndarray,
    y_anchors: np.ndarray,
    x_show: np.ndarray,
    y_show: np.ndarray,
    methods: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[Any] | None = None,
    seed: int = 0,
    aggregate: bool = False,
    bins: int = 10,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit each method on the anchors, map the held-out samples, project everything to 2-D.

    ``x_anchors`` (N, d1) / ``y_anchors`` (N, d2): parallel anchors (source / target).
    ``x_show`` (n, d1) / ``y_show`` (n, d2): the same n held-out samples in both spaces.
    ``naive`` is fitted without standard scaling (the paper's baseline: padding/cutting only),
    every other method with it.

    Returns ``(points, scores)``: points (method, role, x, y, id, label) with the target
    and the aligned samples projected on the first two principal components of the target
    anchors (one common frame, so the panels are comparable) and the source samples on
    their own PCA (a different space: only its shape means something); scores (method,
    cosine, mse, n_anchors, n_shown) measure how close the aligned samples land to their own
    target embedding.

    ``aggregate=True`` (credentialed data, :func:`publishes_samples`): no per-sample point
    leaves this function — points become (method, role, x, y, count), the counts of a
    ``bins`` × ``bins`` grid per role, cells with fewer than :data:`MIN_CELL` samples dropped;
    ``ids`` and ``labels`` are ignored.
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
        std = m != "naive"
        y_hat = Translator(m, std_scaling=std, seed=seed).fit(x_anchors, y_anchors).transform(x_show)
        add(m, "source", to_source(x_show))
        add(m, "target", to_target(y_show))
        add(m, "aligned", to_target(y_hat))
        scores.append({"method": m, "cosine": float(cosine(y_hat, y_show).mean()),
                       "mse": float(np.mean((y_hat - y_show) ** 2)), "n_anchors": len(x_anchors), "n_shown": n})
    points = pd.concat(rows, ignore_index=True)
    if aggregate:
        points = _density(points, bins, MIN_CELL)
    return points, pd.DataFrame(scores)


def chart(points: pd.DataFrame, *, title: str = ""):
    """Source, target and aligned samples in 2-D, one panel per method.

    ``points`` columns: method, role ("source" | "target" | "aligned"), x, y, id; optionally
    label. Hover shows the sample id and role. An aggregated frame (a ``count`` column instead
    of ``id``, :func:`compute` with ``aggregate=True``) is drawn as cells sized by their counts.
    """
    import altair as alt

    dens = "count" in points.columns  # aggregated (credentialed data): bin counts, no sample
    check_frame(points, ["method", "role", "x", "y", "count" if dens else "id"], "fig1.chart")
    if dens:
        tooltip = ["method", "role", alt.Tooltip("count:Q", title="samples in cell")]
    else:
        tooltip = ["method", "role", "id"] + (["label"] if "label" in points.columns else [])
    mark = (alt.Chart(points).mark_point(filled=True, opacity=0.5) if dens
            else alt.Chart(points).mark_circle(size=28, opacity=0.65))
    extra = {"size": alt.Size("count:Q", title="samples in cell")} if dens else {}
    roles = ["source", "target", "aligned"]
    return (
        mark
        .encode(
            x=alt.X("x:Q", title="component 1"),
            y=alt.Y("y:Q", title="component 2"),
            **extra,
            color=alt.Color("role:N", scale=alt.Scale(domain=roles, range=["#9467bd", "#2ca02c", "#d62728"])),
            shape=alt.Shape("role:N", scale=alt.Scale(domain=roles, range=["square", "circle", "triangle"])),
            tooltip=tooltip,
        )
        .properties(width=210, height=210)
        .facet(facet=alt.Facet("method:N", sort=list(points["method"].unique()), title=None), columns=3)
        .properties(title=title)
    )


def numbers(scores: pd.DataFrame) -> dict[str, float | str]:
    """The reading's numbers: ``naive_cosine`` (no transform), ``min_cosine`` / ``best_cosine``
    (the range over the fitted transforms) and ``best`` (the method with the highest cosine)."""
    best = scores.loc[scores["cosine"].idxmax()]
    return {"naive_cosine": float(scores.set_index("method").loc["naive", "cosine"]),
            "min_cosine": float(scores.loc[scores["method"] != "naive", "cosine"].min()),
            "best_cosine": float(best["cosine"]), "best": str(best["method"])}
