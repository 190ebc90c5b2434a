"""The data page (notebook 00, paper Sec. 4 "Datasets"): what each profile puts in the paper's
roles, the label balance of the active profile's tasks, the text source in aggregate and the
SynthCXR gallery.

Only aggregates leave this module for credentialed or licensed data: class counts and words
per report, never a report or an id. SynthCXR images and reports are synthetic (safe to show).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["profiles_table", "compute", "chart", "reading", "text_lengths", "lengths_chart",
           "lengths_numbers", "synthcxr_gallery", "gallery_chart"]


def profiles_table() -> pd.DataFrame:
    """What each profile puts in the paper's roles (from the profile files, not typed)."""
    from semalign.book import PROFILES, load_profile

    rows = []
    for name in PROFILES:
        p = load_profile(name)
        c, zs = p["common"], p["notebooks"].get("04_zeroshot") or {}
        rows.append({
            "profile": name,
            "text task": c.get("text_task"),
            "text encoders": ", ".join(c.get("text_encoders", [])),
            "vision tasks": ", ".join(c.get("vision_tasks", [])),
            "vision encoders": ", ".join(c.get("vision_encoders", [])),
            "zero-shot pairs": zs.get("pairs"),
            "zero-shot text encoder": zs.get("text_encoder"),
            "baselines": ", ".join(zs.get("baselines") or []) or "none",
        })
    return pd.DataFrame(rows).set_index("profile")


def compute(tasks: Sequence[str], task_params: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """Label balance: one row per (task, split, label) with its ``count``, splits train / test, then
    one ``anchors`` row per task (the unlabelled pool, label ``"(unlabelled pool)"``)."""
    from semalign.encoders.tasks import get_task

    rows = []
    for name in tasks:
        t = get_task(name, task_params)
        for split in ("train", "test"):
            df = getattr(t, split)
            for label, n in df["label"].astype(str).value_counts().sort_index().items():
                rows.append({"task": name, "split": split, "label": label, "count": int(n)})
        rows.append({"task": name, "split": "anchors", "label": "(unlabelled pool)", "count": len(t.anchors)})
    return pd.DataFrame(rows)


def chart(balance: pd.DataFrame, *, title: str = ""):
    """Bars of samples per class and split, one row of bars per task (a :func:`compute` frame)."""
    import altair as alt

    return alt.Chart(balance).mark_bar().encode(
        x=alt.X("count:Q", title="samples"),
        y=alt.Y("split:N", title=None),
        color=alt.Color("label:N", title="class"),
        row=alt.Row("task:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
        tooltip=["task", "split", "label", "count"],
    ).properties(width=420, height=60, title=title)


def reading(balance: pd.DataFrame) -> str:
    """Per task: how many test samples in how many classes, and whether the classes are balanced."""
    test = balance[balance["split"] == "test"]
    parts = []
    for task, g in test.groupby("task", sort=False):
        ratio = g["count"].min() / max(g["count"].max(), 1)
        parts.append(f"`{task}`: {g['count'].sum()} test samples in {len(g)} classes"
                     + (" (balanced)" if ratio > 0.95 else f" (smallest/largest class {ratio:.2f})"))
    return "**Reading.** " + "; ".join(parts) + "."


def text_lengths(dataset: str) -> pd.DataFrame:
    """Words per report of a text dataset (column ``words``): aggregates only, the text itself is
    dropped here."""
    from semalign.data import load_dataset

    df = load_dataset(dataset)
    col = "text" if "text" in df.columns else "input"
    return pd.DataFrame({"words": df[col].fillna("").astype(str).str.split().str.len()})


def lengths_chart(lengths: pd.DataFrame, *, title: str = ""):
    """Histogram of words per report (a :func:`text_lengths` frame)."""
    import altair as alt

    return alt.Chart(lengths).mark_bar().encode(
        x=alt.X("words:Q", bin=alt.Bin(maxbins=40), title="words per report (findings + impression)"),
        y=alt.Y("count():Q", title="reports"),
        tooltip=[alt.Tooltip("count():Q", title="reports")],
    ).properties(width=420, height=180, title=title)


def lengths_numbers(lengths: pd.DataFrame) -> dict[str, float | int]:
    """``reports`` (count) and the ``median``, ``p10`` and ``p90`` words per report."""
    w = lengths["words"]
    return {"reports": int(len(w)), "median": float(w.median()), "p10": float(w.quantile(0.1)),
            "p90": float(w.quantile(0.9))}


def synthcxr_gallery(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Up to ``n`` SynthCXR gallery images (a normal case, then one per finding).

    Returns images uint8 (n, H, W), captions ("Cardiomegaly (moderate, …)") and each image's
    generated report (synthetic text written by the generator: safe to show).
    """
    from semalign.data.synthcxr import gallery

    items = gallery(seed=seed)[:n]
    caps = [it["title"] + (f" ({', '.join(x for x in (it['severity'], it['location']) if x)})"
                           if it["severity"] or it["location"] else "") for it in items]
    return np.stack([it["image"] for it in items]), caps, [it["report"] for it in items]


def gallery_chart(images, captions: Sequence[str], *, details: Sequence[str] | None = None, columns: int = 6,
                  size: int = 110):
    """Grayscale images (n, H, W) uint8 as an Altair image grid.

    Images become PNG data URLs inside the spec (no file, nothing fetched); captions are shown
    under each image (up to its first " (") and in full in the tooltip, with ``details``.
    """
    import base64
    import io

    import altair as alt
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
    df["short"] = df["caption"].str.split(" (", regex=False).str[0]  # long captions go in the tooltip
    tips = ["caption:N"]
    if details is not None:
        df["details"] = list(details)
        tips.append("details:N")
    df["col"] = df["i"] % columns
    df["row"] = df["i"] // columns
    base = alt.Chart(df).encode(
        x=alt.X("col:O", axis=None), y=alt.Y("row:O", axis=None), tooltip=tips)
    img = base.mark_image(width=size, height=size, yOffset=-8).encode(url="url:N")
    text = base.mark_text(baseline="top", yOffset=size / 2 - 4, fontSize=10).encode(text="short:N")
    return alt.layer(img, text).properties(width=columns * (size + 16), height=int(df["row"].max() + 1) * (size + 30))
