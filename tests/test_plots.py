"""Charts and tables of the book, from constructed result frames (no model, no file)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semalign import plots


def fig3_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for src, tgt in (("a", "b"), ("b", "a")):
        for run in range(3):
            for m in ("affine", "linear", "l-ortho", "ortho"):
                for n in (10, 100, 1000):
                    rows.append(dict(task="t", source=src, target=tgt, method=m, n_anchors=n, run=run,
                                     auroc=0.6 + 0.05 * np.log10(n) + rng.normal(0, 0.01)))
            rows.append(dict(task="t", source=src, target=tgt, method="naive", n_anchors=0, run=run, auroc=0.5))
            rows.append(dict(task="t", source=src, target=tgt, method="upper_bound", n_anchors=0, run=run, auroc=0.8))
    return pd.DataFrame(rows)


def test_fig3_aggregates_mean_and_std_over_pairs_and_runs():
    df = fig3_frame()
    spec = plots.transforms_vs_anchors(df).to_dict()
    line = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "line")
    data = spec["datasets"][line["data"]["name"]]
    got = {(d["method"], d["n_anchors"]): d for d in data}
    sel = df[(df.method == "ortho") & (df.n_anchors == 100)]["auroc"]
    assert got[("ortho", 100)]["mean"] == pytest.approx(sel.mean())
    assert got[("ortho", 100)]["std"] == pytest.approx(sel.std())
    assert got[("ortho", 100)]["count"] == 6  # 2 pairs x 3 runs
    assert "naive" not in {d["method"] for d in data}, "naive and upper bound are rules, not curves"
    tips = [t["field"] for t in line["encoding"]["tooltip"]]
    assert {"mean", "std", "n_anchors"} <= set(tips), "Fig. 3 must be interactive (tooltips)"
    rule = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "rule")
    flat = {d["method"]: d["mean"] for d in spec["datasets"][rule["data"]["name"]]}
    assert flat == {"naive": pytest.approx(0.5), "upper_bound": pytest.approx(0.8)}


def test_fig3_refuses_a_frame_without_its_columns():
    with pytest.raises(ValueError, match="n_anchors"):
        plots.transforms_vs_anchors(pd.DataFrame({"method": ["ortho"], "auroc": [0.5]}))
    with pytest.raises(ValueError, match="empty"):
        plots.transforms_vs_anchors(fig3_frame().iloc[:0])


def test_projection_and_zeroshot_and_gallery_specs():
    pts = pd.DataFrame({"method": ["ortho"] * 3, "role": ["source", "target", "aligned"],
                        "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5], "id": ["1", "1", "1"]})
    assert plots.projection(pts).to_dict()["facet"]["field"] == "method"
    imgs = np.zeros((3, 16, 16), np.uint8)
    g = plots.gallery(imgs, ["a", "b", "c"], columns=2).to_dict()
    urls = [d["url"] for d in g["datasets"][g["data"]["name"]]]
    assert len(urls) == 3 and all(u.startswith("data:image/png;base64,") for u in urls), "images are inline"
    with pytest.raises(ValueError, match="captions"):
        plots.gallery(imgs, ["a"])


PAPER = pd.DataFrame([
    dict(modality="text", pair="Gen→Med", SUB=0.75, alignment=0.80, alignment_std=0.01, TUB=0.83),
    dict(modality="text", pair="Gen→Gen", SUB=0.75, alignment=0.73, alignment_std=0.04, TUB=0.75),
    dict(modality="vision", pair="Gen→Med", SUB=0.71, alignment=0.69, alignment_std=0.08, TUB=0.81),
    dict(modality="vision", pair="Med→Gen", SUB=0.81, alignment=0.70, alignment_std=0.08, TUB=0.71),
])


def test_table1_long_computes_change_and_normalises_names():
    df = PAPER.rename(columns={"alignment": "alignment_mean"}).assign(pair=lambda d: d["pair"].str.replace("→", " -> "))
    long = plots.table1_long(df)
    r = long[(long.modality == "text") & (long.pair == "Gen→Med")].iloc[0]
    assert r.change_pct == pytest.approx(100 * (0.80 - 0.75) / 0.75)
    with pytest.raises(ValueError, match="SUB"):
        plots.table1_long(pd.DataFrame({"modality": ["text"], "pair": ["Gen→Med"]}))


def test_table1_html_labels_colours_and_numbers():
    ours = PAPER.assign(alignment=lambda d: d["alignment"] - 0.1)
    html = plots.table1_html(ours, PAPER, ours_label="ours (offline)")
    assert html.index("paper") < html.index("ours (offline)"), "paper and ours are both labelled"
    assert "0.80 ± 0.01" in html and "0.70 ± 0.01" in html
    assert "#1a9641" in html and "#d7191c" in html, "green for gains of 5 % or more, red for losses"
    text_gm = [r for r in plots.table1_rows(PAPER) if r["pair"] == "Gen→Med"][0]["text"]
    assert "▲&nbsp;7%" in text_gm[1] and "#1a9641" in text_gm[1]
    vis_gm = [r for r in plots.table1_rows(PAPER) if r["pair"] == "Gen→Med"][0]["vision"]
    assert "▼&nbsp;3%" in vis_gm[1] and "#888888" in vis_gm[1], "under 5 % is grey"
    assert {"0.80 ± 0.01", "0.75", "0.83"} <= set(plots.paper_strings(PAPER))
    med_med = [r for r in plots.table1_rows(PAPER) if r["pair"] == "Med→Med"][0]
    assert med_med["vision"][1] == "–", "a pair the paper does not report shows a dash"


def _bar_heights(chart) -> dict[tuple[str, str], float]:
    """Render a chart with vega (vl-convert) and read each bar's pixel height by its aria label."""
    vlc = pytest.importorskip("vl_convert")
    import re

    svg = vlc.vegalite_to_svg(chart.to_json())
    out = {}
    for label, d in re.findall(r'<path aria-label="([^"]*)"[^>]*aria-roledescription="bar" d="([^"]*)"', svg):
        fields = dict(kv.split(": ", 1) for kv in label.split("; "))
        h = float(re.search(r"v(-?[0-9.e]+)h", d).group(1))
        out[(fields["task"], fields["model"])] = abs(h)
    return out


def test_zeroshot_bars_draw_each_auroc_once_and_unstacked():
    zs = pd.DataFrame({"task": ["p", "p", "q", "q", "r", "r"], "model": ["m1", "CLIP"] * 3,
                       "kind": ["ours", "CLIP"] * 3, "auroc": [0.7, 0.6, 0.9, 0.25, 0.5, 1.0]})
    heights = _bar_heights(plots.zeroshot_bars(zs))
    assert len(heights) == len(zs), "one bar per (task, model)"
    full = heights[("r", "CLIP")]  # AUROC 1.0 spans the whole axis
    for row in zs.itertuples():
        assert heights[(row.task, row.model)] == pytest.approx(row.auroc * full, rel=1e-6), (
            f"bar {row.task}/{row.model} is not drawn at its own AUROC (stacked or mis-faceted?)")
    spec = plots.zeroshot_bars(zs.assign(auroc_std=0.05)).to_dict()
    assert any(layer["mark"]["type"] == "rule" and "y2" in layer.get("encoding", {}) for layer in spec["layer"]), (
        "a std column is drawn as error bars")
    with pytest.raises(ValueError, match="one row per"):
        plots.zeroshot_bars(pd.concat([zs, zs.iloc[:1]]))
