"""Altair charts of the book. Each function reads a tidy result frame and returns a chart.

No model, no file: the frames come from :mod:`semalign.stitching`, :mod:`semalign.zeroshot`
or a notebook's ``results/*.csv``. :func:`setup` makes every chart draw as SVG (the browser
test looks for ``<svg>`` marks) and keeps the whole dataset in the spec.
"""

from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd

#: One colour per method, shared by every figure (naive and upper bound in greys, as in Fig. 3).
METHOD_COLOURS = {
    "affine": "#1f77b4",
    "linear": "#ff7f0e",
    "l-ortho": "#2ca02c",
    "ortho": "#d62728",
    "naive": "#7f7f7f",
    "upper_bound": "#000000",
}
METHOD_ORDER = list(METHOD_COLOURS)


def setup() -> None:
    """Configure Altair for the book: SVG rendering, no row limit, HTML output.

    The HTML output loads vega from a CDN unless ``window.VEGA_DEBUG`` already names the
    versions; the book's ``_static/vega-bundle.js`` sets it (:func:`semalign.book.write_vega_bundle`).
    """
    alt.data_transformers.disable_max_rows()
    alt.renderers.enable("html")
    alt.renderers.set_embed_options(renderer="svg", actions={"export": True, "source": False,
                                                             "compiled": False, "editor": False})


def _check(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: the frame lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{what}: the frame is empty")


def projection(frame: pd.DataFrame, *, title: str = "") -> alt.Chart:
    """Fig. 1: a 2-D projection of source, target and aligned anchors, one panel per method.

    ``frame`` columns: method, role ("source" | "target" | "aligned"), x, y, id; optionally
    label. Lines are not drawn; hover shows the sample id and role.
    """
    _check(frame, ["method", "role", "x", "y", "id"], "projection")
    tooltip = ["method", "role", "id"] + (["label"] if "label" in frame.columns else [])
    return (
        alt.Chart(frame)
        .mark_circle(size=28, opacity=0.65)
        .encode(
            x=alt.X("x:Q", title="component 1"),
            y=alt.Y("y:Q", title="component 2"),
            color=alt.Color("role:N", scale=alt.Scale(domain=["source", "target", "aligned"],
                                                      range=["#9467bd", "#2ca02c", "#d62728"])),
            shape=alt.Shape("role:N", scale=alt.Scale(domain=["source", "target", "aligned"],
                                                      range=["square", "circle", "triangle"])),
            tooltip=tooltip,
        )
        .properties(width=210, height=210)
        .facet(facet=alt.Facet("method:N", sort=list(frame["method"].unique()), title=None), columns=3)
        .properties(title=title)
    )


def transforms_vs_anchors(results: pd.DataFrame, *, title: str = "") -> alt.LayerChart:
    """Fig. 3: AUROC against number of anchors, mean ± std over (source, target) pairs and runs.

    ``results``: tidy stitching frame (columns method, n_anchors, auroc; naive and
    upper_bound rows may carry any n_anchors — they are drawn as horizontal bands).
    """
    _check(results, ["method", "n_anchors", "auroc"], "transforms_vs_anchors")
    curve = results[~results["method"].isin(["naive", "upper_bound"])]
    flat = results[results["method"].isin(["naive", "upper_bound"])]
    agg = (curve.groupby(["method", "n_anchors"])["auroc"].agg(["mean", "std", "count"]).reset_index())
    agg["std"] = agg["std"].fillna(0.0)
    agg["lo"], agg["hi"] = agg["mean"] - agg["std"], agg["mean"] + agg["std"]
    present = [m for m in METHOD_ORDER if m in set(results["method"])]
    colour = alt.Color("method:N", scale=alt.Scale(domain=present,
                                                   range=[METHOD_COLOURS[m] for m in present]),
                       sort=present, title="method")
    x = alt.X("n_anchors:Q", scale=alt.Scale(type="log"), title="number of anchors")
    tip = [alt.Tooltip("method:N"), alt.Tooltip("n_anchors:Q", title="anchors"),
           alt.Tooltip("mean:Q", format=".3f", title="mean AUROC"),
           alt.Tooltip("std:Q", format=".3f", title="std"), alt.Tooltip("count:Q", title="pairs × runs")]
    band = alt.Chart(agg).mark_area(opacity=0.15).encode(x=x, y="lo:Q", y2="hi:Q", color=colour)
    line = alt.Chart(agg).mark_line(point=True).encode(
        x=x, y=alt.Y("mean:Q", title="AUROC", scale=alt.Scale(zero=False)), color=colour, tooltip=tip)
    layers = [band, line]
    if not flat.empty:
        fagg = flat.groupby("method")["auroc"].agg(["mean", "std", "count"]).reset_index()
        fagg["std"] = fagg["std"].fillna(0.0)
        rule = alt.Chart(fagg).mark_rule(strokeDash=[6, 4], size=2).encode(
            y="mean:Q", color=colour,
            tooltip=[alt.Tooltip("method:N"), alt.Tooltip("mean:Q", format=".3f", title="mean AUROC"),
                     alt.Tooltip("std:Q", format=".3f"), alt.Tooltip("count:Q", title="pairs × runs")])
        layers.append(rule)
    return alt.layer(*layers).properties(width=420, height=280, title=title)


def zeroshot_bars(results: pd.DataFrame, *, title: str = "") -> alt.Chart:
    """Fig. 4: zero-shot AUROC per task, one bar per model, chance at 0.5.

    ``results`` columns: task, model (vision encoder or baseline), auroc; optional
    ``kind`` (e.g. "ours (unimodal)" / "CLIP" / "MedCLIP") and ``auroc_std``.
    """
    _check(results, ["task", "model", "auroc"], "zeroshot_bars")
    df = results.copy()
    if "kind" not in df.columns:
        df["kind"] = "ours (unimodal)"
    tips = ["task:N", "model:N", "kind:N", alt.Tooltip("auroc:Q", format=".3f")]
    if "auroc_std" in df.columns:
        tips.append(alt.Tooltip("auroc_std:Q", format=".3f", title="std"))
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("model:N", title=None, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("auroc:Q", title="AUROC", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", title="model"),
        opacity=alt.Opacity("kind:N", legend=alt.Legend(title="kind")),
        tooltip=tips,
    ).properties(width=90, height=220)
    chance = alt.Chart(pd.DataFrame({"auroc": [0.5]})).mark_rule(strokeDash=[4, 4], color="grey").encode(y="auroc:Q")
    return alt.layer(bars, chance, data=df).facet(
        column=alt.Column("task:N", title=None, header=alt.Header(labelAngle=0, labelAlign="center"))
    ).properties(title=title)


def gallery(images, captions: Sequence[str], *, columns: int = 6, size: int = 110) -> alt.Chart:
    """SynthCXR gallery: grayscale images (n, H, W) uint8 shown as an Altair image grid.

    Images become PNG data URLs inside the spec (no file, nothing fetched), captions are
    shown under each image and in the tooltip.
    """
    import base64
    import io

    import numpy as np
    from PIL import Image

    arr = np.asarray(images)
    if arr.ndim != 3 or len(arr) != len(captions):
        raise ValueError(f"gallery: expected images (n, H, W) and n captions, got {arr.shape} and {len(captions)}")
    urls = []
    for im in arr:
        buf = io.BytesIO()
        Image.fromarray(im.astype("uint8")).resize((size * 2, size * 2)).save(buf, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    df = pd.DataFrame({"url": urls, "caption": list(captions), "i": range(len(urls))})
    df["col"] = df["i"] % columns
    df["row"] = df["i"] // columns
    base = alt.Chart(df).encode(
        x=alt.X("col:O", axis=None), y=alt.Y("row:O", axis=None), tooltip=["caption:N"])
    img = base.mark_image(width=size, height=size).encode(url="url:N")
    return img.properties(width=columns * (size + 10), height=int(df["row"].max() + 1) * (size + 10))
