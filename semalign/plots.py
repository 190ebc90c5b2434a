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
    label. Lines are not drawn; hover shows the sample id and role. A frame with a ``count``
    column instead of ``id`` (aggregated, :func:`semalign.experiments.projection_frame`) is
    drawn as cells sized by their counts.
    """
    dens = "count" in frame.columns  # aggregated (credentialed data): bin counts, no sample
    _check(frame, ["method", "role", "x", "y", "count" if dens else "id"], "projection")
    if dens:
        tooltip = ["method", "role", alt.Tooltip("count:Q", title="samples in cell")]
    else:
        tooltip = ["method", "role", "id"] + (["label"] if "label" in frame.columns else [])
    mark = (alt.Chart(frame).mark_point(filled=True, opacity=0.5) if dens
            else alt.Chart(frame).mark_circle(size=28, opacity=0.65))
    extra = {"size": alt.Size("count:Q", title="samples in cell")} if dens else {}
    return (
        mark
        .encode(
            x=alt.X("x:Q", title="component 1"),
            y=alt.Y("y:Q", title="component 2"),
            **extra,
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


def zeroshot_bars(results: pd.DataFrame, *, title: str = "") -> alt.LayerChart:
    """Fig. 4: zero-shot AUROC per task, one bar per model side by side, chance at 0.5.

    ``results`` columns: task, model (vision encoder or baseline), auroc; optional
    ``kind`` (e.g. "ours (unimodal)" / "CLIP" / "MedCLIP") and ``auroc_std`` (drawn as ± error bars).

    One view with grouped bars (``xOffset``), not a facet: a layer that carries its own data is
    not split by a facet, so faceted layers would stack every task's bars in every panel.
    Bars are never stacked: each bar's height is its own AUROC.
    """
    _check(results, ["task", "model", "auroc"], "zeroshot_bars")
    df = results.copy()
    if "kind" not in df.columns:
        df["kind"] = "ours (unimodal)"
    dup = df.duplicated(["task", "model"])
    if dup.any():
        raise ValueError("zeroshot_bars: one row per (task, model) expected; repeated: "
                         f"{df.loc[dup, ['task', 'model']].drop_duplicates().values.tolist()[:5]}")
    tasks = list(dict.fromkeys(df["task"]))
    models = list(dict.fromkeys(df["model"]))
    kinds = sorted(dict.fromkeys(df["kind"]), key=lambda k: (not str(k).startswith("ours"), str(k)))
    opacities = [1.0 if str(k).startswith("ours") else 0.55 for k in kinds]
    tips = ["task:N", "model:N", "kind:N", alt.Tooltip("auroc:Q", format=".3f", title="AUROC")]
    if "auroc_std" in df.columns:
        tips.append(alt.Tooltip("auroc_std:Q", format=".3f", title="std"))
    x = alt.X("task:N", sort=tasks, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=220))
    offset = alt.XOffset("model:N", sort=models)
    bars = alt.Chart(df).mark_bar().encode(
        x=x, xOffset=offset,
        y=alt.Y("auroc:Q", title="AUROC", stack=None, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", sort=models, title="model", legend=alt.Legend(labelLimit=320)),
        # ours solid, baselines lighter: the kind reads at a glance even when colours are many
        opacity=alt.Opacity("kind:N", sort=kinds, scale=alt.Scale(domain=kinds, range=opacities),
                            legend=alt.Legend(title="kind", labelLimit=320)),
        tooltip=tips,
    )
    layers = [bars]
    if "auroc_std" in df.columns:
        err = df.assign(lo=(df["auroc"] - df["auroc_std"]).clip(0, 1), hi=(df["auroc"] + df["auroc_std"]).clip(0, 1))
        layers.append(alt.Chart(err).mark_rule(color="black").encode(x=x, xOffset=offset, y="lo:Q", y2="hi:Q"))
    chance = pd.DataFrame({"auroc": [0.5]})
    layers.append(alt.Chart(chance).mark_rule(strokeDash=[4, 4], color="grey").encode(
        y=alt.Y("auroc:Q", title="AUROC"), tooltip=[alt.Tooltip("auroc:Q", title="chance")]))
    width = max(240, min(900, 22 * len(tasks) * len(models)))
    return alt.layer(*layers).properties(width=width, height=260, title=title)


def gallery(images, captions: Sequence[str], *, details: Sequence[str] | None = None, columns: int = 6,
            size: int = 110) -> alt.LayerChart:
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


# --------------------------------------------------------------------------- Table 1 (HTML)
PAIRS = ("Gen→Med", "Gen→Gen", "Med→Gen", "Med→Med")
_COLS = {
    "modality": "modality", "task": "modality", "pair": "pair", "domain_pair": "pair", "domains": "pair",
    "sub": "SUB", "tub": "TUB", "alignment": "alignment", "alignment_mean": "alignment", "mean": "alignment",
    "auroc": "alignment", "alignment_std": "alignment_std", "std": "alignment_std", "auroc_std": "alignment_std",
    "change_pct": "change_pct", "change": "change_pct", "delta_pct": "change_pct", "pct": "change_pct",
    "change_percent": "change_pct",
}


def _pair_name(s: str) -> str:
    s = str(s).replace("->", "→").replace(" ", "").replace("(Ours)", "").replace("(ours)", "")
    return s[:1].upper() + s[1:3].lower() + "→" + s.split("→")[-1][:1].upper() + s.split("→")[-1][1:3].lower() \
        if "→" in s else s


def table1_long(frame) -> pd.DataFrame:
    """Any Table 1 frame (ours from :func:`semalign.tables.table1`, or the paper's) in one shape:
    columns modality ("text" | "vision"), pair ("Gen→Med" …), SUB, alignment, alignment_std,
    TUB, change_pct (percent change of the alignment against SUB)."""
    df = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    if isinstance(df.columns, pd.MultiIndex):  # semalign.tables: index domain pair, columns (modality, stat)
        rows = []
        for pair in df.index:
            for m in df.columns.get_level_values(0).unique():
                r = df.loc[pair, m]
                rows.append({"modality": m, "pair": pair, "SUB": r.get("SUB"), "alignment": r.get("mean"),
                             "alignment_std": r.get("std"), "TUB": r.get("TUB"), "change_pct": r.get("change_pct")})
        df = pd.DataFrame(rows)
    df = df.reset_index() if not {"modality", "pair"} <= {str(c).lower() for c in df.columns} else df.copy()
    df = df.rename(columns={c: _COLS.get(str(c).lower(), c) for c in df.columns})
    missing = [c for c in ("modality", "pair", "SUB", "alignment", "TUB") if c not in df.columns]
    if missing:
        raise ValueError(f"table1_long: cannot find {missing} in a frame with columns {list(df.columns)}")
    df["modality"] = df["modality"].astype(str).str.lower()
    df["pair"] = df["pair"].map(_pair_name)
    if "alignment_std" not in df.columns:
        df["alignment_std"] = float("nan")
    if "change_pct" not in df.columns:
        df["change_pct"] = 100 * (df["alignment"] - df["SUB"]) / df["SUB"]
    return df[["modality", "pair", "SUB", "alignment", "alignment_std", "TUB", "change_pct"]]


def _num(v, fmt="{:.2f}") -> str:
    return "–" if v is None or pd.isna(v) else fmt.format(v)


def _change(pct) -> str:
    if pct is None or pd.isna(pct):
        return ""
    from semalign.tables import change_category

    colour = {"≈": "#888888", "gain": "#1a9641", "loss": "#d7191c"}[change_category(pct)]
    arrow = "▲" if pct >= 0 else "▼"
    return f' <span style="color:{colour};font-weight:600">{arrow}&nbsp;{abs(pct):.0f}%</span>'


def table1_rows(frame) -> list[dict]:
    """Rows of the rendered Table 1: pair, and per modality SUB / alignment / TUB strings."""
    df = table1_long(frame)
    out = []
    for pair in PAIRS:
        row = {"pair": pair}
        for m in ("text", "vision"):
            r = df[(df["modality"] == m) & (df["pair"] == pair)]
            if r.empty or pd.isna(r["alignment"].iloc[0]):
                row[m] = ("", "–", "") if pair != "Gen→Med" else ("–", "–", "–")
                continue
            r = r.iloc[0]
            ali = _num(r["alignment"]) + ("" if pd.isna(r["alignment_std"]) else f" ± {r['alignment_std']:.2f}")
            show_tub = pair == "Gen→Med"  # the paper prints TUB on the first row only
            row[m] = (_num(r["SUB"]), ali + _change(r["change_pct"]), _num(r["TUB"]) if show_tub else "")
        out.append(row)
    return out


def _table1_one(frame, caption: str, css: str) -> str:
    head = ("<tr><th></th><th colspan=3>Text</th><th colspan=3>Vision</th></tr>"
            "<tr><th></th>" + "<th>SUB</th><th>Alignment</th><th>TUB</th>" * 2 + "</tr>")
    body = []
    for i, row in enumerate(table1_rows(frame)):
        if i == 1:
            body.append("<tr><td colspan=7><i>Ablation study:</i></td></tr>")
        label = row["pair"].replace("→", " → ")
        cells = "".join(f"<td>{c}</td>" for m in ("text", "vision") for c in row[m])
        body.append(f"<tr><th style='text-align:left'>{label}</th>{cells}</tr>")
    return (f"<div class='{css}' style='flex:1;min-width:24em'><table class='semalign-table'>"
            f"<caption style='caption-side:top;font-weight:600'>{caption}</caption>{head}{''.join(body)}</table></div>")


def table1_html(ours, paper, *, ours_label: str = "ours", paper_label: str = "paper (Di Folco et al. 2025, Table 1)") -> str:
    """Our Table 1 beside the paper's, as HTML: two labelled tables, ▲▼ % coloured as in the paper
    (green gain, red loss, grey when the change against SUB is under 5 %)."""
    return ("<div style='display:flex;gap:1.5em;flex-wrap:wrap'>"
            + _table1_one(paper, f"<span class='semalign-badge paper'>paper</span> {paper_label}", "semalign-paper")
            + _table1_one(ours, f"<span class='semalign-badge ours'>ours</span> {ours_label}", "semalign-ours")
            + "</div>")


def paper_strings(paper) -> list[str]:
    """The numbers of the paper's Table 1 as rendered (the browser test looks for each)."""
    out = []
    for row in table1_rows(paper):
        for m in ("text", "vision"):
            for cell in row[m]:
                s = cell.split(" <span")[0]
                if s and s not in ("–",):
                    out.append(s)
    return sorted(set(out))


def claims_html(summary: pd.DataFrame, *, profile: str) -> str:
    """The claims table of the summary page: paper's value and ours side by side."""
    colour = {"yes": "#1a9641", "no": "#d7191c", "not tested": "#888888"}
    rows = "".join(
        f"<tr><td>{r.section}</td><td>{r.claim}</td><td class='semalign-paper'>{r.paper}</td>"
        f"<td class='semalign-ours'>{r.ours}</td><td style='color:{colour[r.holds]};font-weight:600'>{r.holds}</td></tr>"
        for r in summary.itertuples())
    return ("<table class='semalign-table'><tr><th>paper section</th><th>claim</th>"
            "<th><span class='semalign-badge paper'>paper</span></th>"
            f"<th><span class='semalign-badge ours'>ours</span> profile {profile}</th><th>holds in ours?</th></tr>"
            + rows + "</table>")
