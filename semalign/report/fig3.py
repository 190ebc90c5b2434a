"""Fig. 3 (notebook 02, paper Sec. 4.1 "Influence of 𝒯"): AUROC of stitching against the number
of anchors, per transform, beside naive stitching and the upper bound.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from semalign.report.style import check_frame, method_palette
from semalign.stitching import BASELINES  # the anchor-free rows (naive, upper bound): drawn as rules

__all__ = ["BASELINES", "counts_within", "compute", "chart", "numbers", "reading"]


def counts_within(anchor_counts: Sequence[int], pool: int) -> list[int]:
    """The anchor counts a pool of ``pool`` anchors can give (larger ones are skipped)."""
    return [n for n in anchor_counts if n <= pool]


def compute(task, methods: Sequence[str], anchor_counts: Sequence[int], *, runs: int, seed: int = 0) -> pd.DataFrame:
    """:func:`semalign.stitching.stitch_grid` of an ``EncodedTask`` for ``methods`` plus naive
    stitching and the upper bound, at every anchor count its pool holds; the tidy frame."""
    from semalign.stitching import stitch_grid

    counts = counts_within(anchor_counts, task.pool_size)
    return stitch_grid(task, ["naive", *methods, "upper_bound"], counts, runs=runs, seed=seed, progress=False)


def chart(results: pd.DataFrame, *, title: str = ""):
    """AUROC against number of anchors, mean ± std over (source, target) pairs and runs.

    ``results``: tidy stitching frame (columns method, n_anchors, auroc; naive and
    upper_bound rows may carry any n_anchors — they are drawn as horizontal rules).
    """
    import altair as alt

    check_frame(results, ["method", "n_anchors", "auroc"], "fig3.chart")
    curve = results[~results["method"].isin(BASELINES)]
    flat = results[results["method"].isin(BASELINES)]
    agg = (curve.groupby(["method", "n_anchors"])["auroc"].agg(["mean", "std", "count"]).reset_index())
    agg["std"] = agg["std"].fillna(0.0)
    agg["lo"], agg["hi"] = agg["mean"] - agg["std"], agg["mean"] + agg["std"]
    present, colours = method_palette(results["method"])
    colour = alt.Color("method:N", scale=alt.Scale(domain=present, range=colours),
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


def numbers(results: pd.DataFrame) -> dict[str, float | int | str]:
    """A panel's numbers, means over pairs and runs: at the largest anchor count ``n_max`` the
    ``best`` transform and its ``best_auroc``; ``naive`` and ``upper_bound``; how many of the
    ``n_methods`` transforms ``beat`` naive stitching there; ``anchor_gain``, the mean change of
    a transform's AUROC from ``n_min`` to ``n_max`` anchors; ``gap_closed_pct``, the share of the
    gap between naive and the upper bound the best transform closes. ``{}`` without a curve."""
    curve = results[~results["method"].isin(BASELINES)]
    if curve.empty:
        return {}
    n_max = int(curve["n_anchors"].max())
    n_min = int(curve["n_anchors"].min())
    at_max = curve[curve["n_anchors"] == n_max].groupby("method")["auroc"].mean().sort_values(ascending=False)
    at_min = curve[curve["n_anchors"] == n_min].groupby("method")["auroc"].mean()
    naive = results.loc[results["method"] == "naive", "auroc"].mean()
    ub = results.loc[results["method"] == "upper_bound", "auroc"].mean()
    best_v = at_max.iloc[0]
    return {"n_max": n_max, "n_min": n_min, "best": str(at_max.index[0]), "best_auroc": float(best_v),
            "naive": float(naive), "upper_bound": float(ub), "beat": int((at_max > naive).sum()),
            "n_methods": int(len(at_max)), "anchor_gain": float((at_max - at_min.reindex(at_max.index)).mean()),
            "gap_closed_pct": float(100 * (best_v - naive) / max(ub - naive, 1e-9))}


def reading(results: pd.DataFrame, what: str) -> str:
    """One paragraph that reads a Fig. 3 panel from its :func:`numbers` (nothing typed by hand)."""
    k = numbers(results)
    if not k:
        return f"**Reading ({what}).** No aligned results (no anchor count fits the anchor pool)."
    s = (f"**Reading ({what}).** With {k['n_max']} anchors `{k['best']}` is best (mean AUROC {k['best_auroc']:.3f}); "
         f"naive stitching gives {k['naive']:.3f} and the upper bound is {k['upper_bound']:.3f}. ")
    s += (f"All {k['n_methods']} transforms beat naive stitching" if k["beat"] == k["n_methods"]
          else f"{k['beat']} of {k['n_methods']} transforms beat naive stitching")
    s += (f"; going from {k['n_min']} to {k['n_max']} anchors changes AUROC by {k['anchor_gain']:+.3f} on average, "
          f"and the best transform closes {k['gap_closed_pct']:.0f} % of the gap between naive and the upper bound.")
    return s
