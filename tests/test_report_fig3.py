"""Fig. 3 (semalign.report.fig3): the chart and the reading, from constructed result frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semalign.report import fig3


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


def test_chart_aggregates_mean_and_std_over_pairs_and_runs():
    df = fig3_frame()
    spec = fig3.chart(df).to_dict()
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


def test_chart_refuses_a_frame_without_its_columns():
    with pytest.raises(ValueError, match="n_anchors"):
        fig3.chart(pd.DataFrame({"method": ["ortho"], "auroc": [0.5]}))
    with pytest.raises(ValueError, match="empty"):
        fig3.chart(fig3_frame().iloc[:0])


def test_numbers_and_reading_come_from_the_frame():
    f3 = fig3_frame()
    k = fig3.numbers(f3)
    at_max = f3[f3.n_anchors == 1000].groupby("method")["auroc"].mean()
    assert k["best"] == at_max.idxmax() and k["best_auroc"] == pytest.approx(at_max.max())
    assert (k["n_min"], k["n_max"], k["beat"], k["n_methods"]) == (10, 1000, 4, 4)
    assert k["gap_closed_pct"] == pytest.approx(100 * (at_max.max() - 0.5) / 0.3)
    assert k["anchor_gain"] == pytest.approx(0.1, abs=0.02), "0.05 per decade, two decades"
    assert all(type(v) in (int, float, str) for v in k.values()), "plain types (glue)"
    text = fig3.reading(f3, "text")
    assert f"`{k['best']}` is best" in text and "naive stitching gives 0.500" in text and "All 4 transforms" in text
    worse = f3.assign(auroc=np.where(f3.method == "linear", 0.4, f3.auroc))
    assert "3 of 4 transforms beat naive stitching" in fig3.reading(worse, "text")
    assert "No aligned results" in fig3.reading(f3[f3.method.isin(fig3.BASELINES)], "text")
    assert fig3.counts_within([10, 50, 250, 1000], 280) == [10, 50, 250]
