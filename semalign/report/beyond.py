"""Beyond the paper (notebook 06): how many anchors, which anchors, why a pair stitches, a
training-free baseline, and the least-squares dip.

Four parts, each a ``compute_*`` on embedded tasks (no loading) returning rows of one tidy frame
(:data:`COLUMNS`, a ``part`` column saying which), a chart and numbers read from that frame:

1. ``selection`` -- AUROC against the number of anchors when the anchors are chosen by a
   strategy of :mod:`semalign.anchors` (random, k-means, farthest-point, class-stratified) in
   the source space, for general → medical pairs; anchors needed to reach a fraction of the
   upper bound (:func:`semalign.anchors.anchors_to_reach`).
2. ``similarity`` -- linear CKA and mutual k-NN (:mod:`semalign.similarity`) of every ordered
   pair of encoders on the distinct anchor-pool samples, beside the pair's stitched AUROC.
3. ``asif`` -- ASIF (:mod:`semalign.asif`) as a zero-shot classifier on the Fig. 4 tasks, with
   the same encoders and anchor pairs as the paper's method, beside it.
4. ``dip`` -- ``linear``, ``ortho`` and ``ridge`` at anchor counts bracketing each source's
   dimension: least squares interpolates at N − 1 = d and dips there (double descent).

:func:`compute` wires them to the embedding glue (:mod:`semalign.encoders.tasks`): it embeds
through the cache exactly what notebooks 02 and 04 embed, so a warm run embeds nothing.
:func:`findings` gives the summary page its "Beyond the paper" lines, read from the frame.
Nothing here names an encoder or a task: they come from the parameters.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from semalign.report.style import check_frame, domain_of, is_medical, method_palette
from semalign.vocab import Modality

__all__ = [
    "COLUMNS", "PARTS", "NOT_APPLICABLE", "selection_pairs", "dip_counts", "compute_selection",
    "compute_similarity", "compute_asif", "compute_dip", "compute", "selection_chart",
    "similarity_chart", "asif_chart", "dip_chart", "selection_numbers", "similarity_numbers",
    "asif_numbers", "dip_numbers", "numbers", "selection_reading", "similarity_reading",
    "asif_reading", "dip_reading", "findings",
]

COLUMNS: tuple[str, ...] = (
    "part", "modality", "task", "source", "target", "source_domain", "target_domain", "method",
    "strategy", "n_anchors", "ratio", "run", "metric", "value", "n_pos", "n_neg", "note",
)  # fmt: skip
PARTS: tuple[str, ...] = ("selection", "similarity", "asif", "dip")
#: ``metric`` of a row recording that something could not be measured (``note`` says why).
NOT_APPLICABLE = "not applicable"
_NONE = "-"  # a field that does not apply to a row (never "": a CSV reads it back as NaN)


def _modality(task) -> str:
    return Modality.parse(task.modality).label


def _rows(grid: pd.DataFrame, part: str, modality: str, **fields: Any) -> pd.DataFrame:
    """A :func:`semalign.stitching.stitch_grid` frame as rows of :data:`COLUMNS`."""
    out = pd.DataFrame({
        "part": part, "modality": modality, "task": grid["task"], "source": grid["source"],
        "target": grid["target"], "source_domain": grid["source_domain"].astype(str),
        "target_domain": grid["target_domain"].astype(str), "method": grid["method"],
        "strategy": _NONE, "n_anchors": grid["n_anchors"], "ratio": math.nan, "run": grid["run"],
        "metric": "auroc", "value": grid["auroc"], "n_pos": math.nan, "n_neg": math.nan, "note": _NONE,
    })
    for k, v in fields.items():
        out[k] = v
    return out[list(COLUMNS)]


def _frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts with some of :data:`COLUMNS`) -> a frame with all of them, blanks filled."""
    blank = {c: _NONE for c in COLUMNS}
    blank.update(n_anchors=0, ratio=math.nan, run=0, value=math.nan, n_pos=math.nan, n_neg=math.nan)
    return pd.DataFrame([{**blank, **r} for r in rows], columns=list(COLUMNS))


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    out["n_anchors"] = out["n_anchors"].astype("int64")
    out["run"] = out["run"].astype("int64")
    return out


# ------------------------------------------------------------------------------------ 1. selection
def selection_pairs(task, n_sources: int = 1) -> list[tuple[str, str]]:
    """General → medical pairs of ``task``: the first ``n_sources`` general encoders (task order)
    as sources, every medical encoder (stand-ins included) as target. ``[]`` when the task has
    no general or no medical encoder."""
    general = [e for e, d in task.domains.items() if e in task.encoders and str(domain_of(d)) == "general"]
    medical = [e for e, d in task.domains.items() if e in task.encoders and is_medical(d)]
    return [(s, t) for s in general[: max(0, int(n_sources))] for t in medical]


def compute_selection(task, strategies: Sequence[str], counts: Sequence[int], *, runs: int, seed: int = 0,
                      method: str = "ortho", n_sources: int = 1, decoders: dict | None = None) -> pd.DataFrame:
    """Part 1: :func:`semalign.stitching.stitch_grid` of the general → medical pairs
    (:func:`selection_pairs`) with ``method``, once per anchor strategy (``anchors=strategy``:
    chosen in the source space), at every count the pool holds; plus the targets' upper bounds.

    ``"stratified"`` needs a label for every anchor-pool row (``task.y_anchors``); without them
    it is recorded as a :data:`NOT_APPLICABLE` row saying so, not replaced by another draw.
    """
    from semalign.anchors import get_strategy
    from semalign.stitching import stitch_grid

    modality = _modality(task)
    pairs = selection_pairs(task, n_sources)
    if not pairs:
        return _frame([{"part": "selection", "modality": modality, "task": task.name, "metric": NOT_APPLICABLE,
                        "note": "no general → medical pair among this task's encoders"}])
    counts = sorted({int(n) for n in counts if int(n) <= task.pool_size})
    decoders = {} if decoders is None else decoders
    frames, with_bounds = [], True
    for strategy in strategies:
        get_strategy(strategy)  # an unknown name fails here, listing the strategies
        if strategy == "stratified" and task.y_anchors is None:
            frames.append(_frame([{"part": "selection", "modality": modality, "task": task.name,
                                   "strategy": strategy, "metric": NOT_APPLICABLE,
                                   "note": "the anchor pool is not fully labelled (it mixes labelled training "
                                           "samples with unlabelled ones), so a class-stratified draw is "
                                           "not possible"}]))
            continue
        g = stitch_grid(task, [method, *(["upper_bound"] if with_bounds else [])], counts, runs=runs, seed=seed,
                        progress=False, baselines=False, anchors=strategy, pairs=pairs, decoders=decoders)
        with_bounds = False  # the targets' upper bounds once
        ub = g["method"] == "upper_bound"
        frames.append(_rows(g[~ub], "selection", modality, strategy=strategy))
        targets = {t for _, t in pairs}
        frames.append(_rows(g[ub & g["target"].isin(targets)], "selection", modality))
    return _concat(frames)


def _curve(frame: pd.DataFrame, modality: str) -> pd.DataFrame:
    sel = frame[(frame["part"] == "selection") & (frame["modality"] == modality) & (frame["metric"] == "auroc")]
    return sel[sel["method"] != "upper_bound"].rename(columns={"value": "auroc"})


def _upper_bound(frame: pd.DataFrame, part: str, modality: str) -> float:
    rows = frame[(frame["part"] == part) & (frame["modality"] == modality) & (frame["method"] == "upper_bound")]
    return float(rows["value"].mean()) if len(rows) else math.nan


def _reach(curve: pd.DataFrame, target: float) -> pd.DataFrame:
    from semalign.anchors import anchors_to_reach

    return anchors_to_reach(curve, 1.0, upper_bound=target).set_index("strategy")


def selection_numbers(frame: pd.DataFrame, fraction: float = 0.95) -> dict[str, Any]:
    """Per modality ``m`` present: ``m_pairs``, ``m_n_min`` / ``m_n_max`` (anchor counts),
    ``m_upper_bound`` (mean over the pairs' targets), ``m_target`` (``fraction`` of it); per
    strategy ``s``: ``m_s_small`` / ``m_s_large`` (mean AUROC at n_min / n_max), ``m_s_reach``
    (anchors needed to reach the target: an int, or "not within N"), ``m_s_runs_reached``;
    ``m_best_small`` (best strategy at n_min) and ``m_gain_small`` (its AUROC − random's);
    ``m_random_plateau`` (random's AUROC at n_max) and ``m_s_reach_plateau`` (anchors to reach
    ``fraction`` of it); ``m_na`` (strategies not applicable, comma-separated, or "none")."""
    out: dict[str, Any] = {}
    sel = frame[frame["part"] == "selection"]
    for m in dict.fromkeys(sel["modality"]):
        curve = _curve(frame, m)
        na = sel[(sel["modality"] == m) & (sel["metric"] == NOT_APPLICABLE)]["strategy"]
        out[f"{m}_na"] = ", ".join(s for s in na if s != _NONE) or "none"
        if curve.empty:
            continue
        ub = _upper_bound(frame, "selection", m)
        n_min, n_max = int(curve["n_anchors"].min()), int(curve["n_anchors"].max())
        out.update({f"{m}_pairs": int(curve[["source", "target"]].drop_duplicates().shape[0]),
                    f"{m}_n_min": n_min, f"{m}_n_max": n_max, f"{m}_upper_bound": ub,
                    f"{m}_target": fraction * ub, f"{m}_method": str(curve["method"].iloc[0])})
        mean = curve.groupby(["strategy", "n_anchors"])["auroc"].mean()
        small = mean.xs(n_min, level="n_anchors").sort_values(ascending=False)
        reach = _reach(curve, fraction * ub)
        plateau = float(mean.get(("random", n_max), math.nan))
        reach_p = _reach(curve, fraction * plateau) if not math.isnan(plateau) else None
        for s in dict.fromkeys(curve["strategy"]):
            out[f"{m}_{s}_small"] = float(mean[(s, n_min)])
            out[f"{m}_{s}_large"] = float(mean[(s, n_max)])
            r = reach.loc[s]
            out[f"{m}_{s}_reach"] = int(r["n_anchors"]) if r["reached"] else f"not within {n_max}"
            out[f"{m}_{s}_runs_reached"] = int(r["runs_reached"])
            if reach_p is not None:
                rp = reach_p.loc[s]
                out[f"{m}_{s}_reach_plateau"] = int(rp["n_anchors"]) if rp["reached"] else f"not within {n_max}"
        out[f"{m}_best_small"] = str(small.index[0])
        if "random" in small.index:
            out[f"{m}_gain_small"] = float(small.iloc[0] - small["random"])
            out[f"{m}_random_plateau"] = plateau
    return out


def selection_chart(frame: pd.DataFrame, *, fraction: float = 0.95, title: str = ""):
    """AUROC against the number of anchors per strategy (mean ± std over runs of the pairs'
    mean), one panel per modality; dashed: the mean upper bound, dotted: ``fraction`` of it.
    Click a legend entry to highlight a strategy; hover a point for its numbers."""
    import altair as alt

    sel = frame[(frame["part"] == "selection") & (frame["metric"] == "auroc")]
    check_frame(sel, ["strategy", "n_anchors", "value"], "beyond.selection_chart")
    curve = sel[sel["method"] != "upper_bound"]
    per_run = curve.groupby(["modality", "strategy", "n_anchors", "run"])["value"].mean().reset_index()
    agg = per_run.groupby(["modality", "strategy", "n_anchors"])["value"].agg(["mean", "std", "count"]).reset_index()
    agg["std"] = agg["std"].fillna(0.0)
    agg["lo"], agg["hi"] = agg["mean"] - agg["std"], agg["mean"] + agg["std"]
    ub = sel[sel["method"] == "upper_bound"].groupby("modality")["value"].mean().reset_index(name="upper_bound")
    ub["target"] = fraction * ub["upper_bound"]
    pick = alt.selection_point(fields=["strategy"], bind="legend")
    colour = alt.Color("strategy:N", title="anchor strategy", sort=list(dict.fromkeys(agg["strategy"])))
    x = alt.X("n_anchors:Q", scale=alt.Scale(type="log"), title="number of anchors")
    tips = [alt.Tooltip("modality:N"), alt.Tooltip("strategy:N"), alt.Tooltip("n_anchors:Q", title="anchors"),
            alt.Tooltip("mean:Q", format=".3f", title="mean AUROC"), alt.Tooltip("std:Q", format=".3f", title="std over runs"),
            alt.Tooltip("count:Q", title="runs")]
    base = alt.Chart(agg)
    band = base.mark_area(opacity=0.12).encode(x=x, y="lo:Q", y2="hi:Q", color=colour,
                                               opacity=alt.condition(pick, alt.value(0.15), alt.value(0.02)))
    line = base.mark_line(point=True).encode(
        x=x, y=alt.Y("mean:Q", title="AUROC", scale=alt.Scale(zero=False)), color=colour, tooltip=tips,
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.2))).add_params(pick)
    rules = alt.Chart(ub).mark_rule(strokeDash=[6, 4], color="black").encode(
        y="upper_bound:Q", tooltip=[alt.Tooltip("upper_bound:Q", format=".3f", title="mean upper bound")])
    target = alt.Chart(ub).mark_rule(strokeDash=[2, 2], color="grey").encode(
        y="target:Q", tooltip=[alt.Tooltip("target:Q", format=".3f", title=f"{fraction:.0%} of the upper bound")])
    panels = []
    for m in dict.fromkeys(agg["modality"]):
        keep = alt.datum.modality == m
        panels.append(alt.layer(band.transform_filter(keep), line.transform_filter(keep),
                                rules.transform_filter(keep), target.transform_filter(keep))
                      .properties(width=330, height=250, title=f"{m}"))
    return alt.hconcat(*panels).properties(title=title)


def selection_reading(frame: pd.DataFrame, fraction: float = 0.95) -> str:
    """One paragraph per modality from :func:`selection_numbers`."""
    k = selection_numbers(frame, fraction)
    parts = []
    for m in dict.fromkeys(frame.loc[frame["part"] == "selection", "modality"]):
        if f"{m}_n_min" not in k:
            parts.append(f"**Reading ({m}).** Not measured: no general → medical pair.")
            continue
        strategies = [s for s in ("random", "kmeans", "farthest", "stratified") if f"{m}_{s}_small" in k]
        small = ", ".join(f"`{s}` {k[f'{m}_{s}_small']:.3f}" for s in strategies)
        reach = ", ".join(f"`{s}` {k[f'{m}_{s}_reach']}" for s in strategies)
        s = (f"**Reading ({m}, {k[f'{m}_pairs']} general → medical pairs, `{k[f'{m}_method']}`).** With "
             f"{k[f'{m}_n_min']} anchors: {small}; the best is `{k[f'{m}_best_small']}`"
             + (f" ({k[f'{m}_gain_small']:+.3f} over random)" if f"{m}_gain_small" in k else "") + ". "
             f"Anchors needed to reach {fraction:.0%} of the upper bound ({k[f'{m}_target']:.3f} of "
             f"{k[f'{m}_upper_bound']:.3f}): {reach}.")
        if f"{m}_random_plateau" in k and f"{m}_random_reach_plateau" in k:
            plateau = ", ".join(f"`{t}` {k[f'{m}_{t}_reach_plateau']}" for t in strategies)
            s += (f" Anchors needed to reach {fraction:.0%} of what random reaches with {k[f'{m}_n_max']} "
                  f"({k[f'{m}_random_plateau']:.3f}): {plateau}.")
        if k.get(f"{m}_na", "none") != "none":
            s += f" Not applicable here: {k[f'{m}_na']} (the anchor pool is not fully labelled)."
        parts.append(s)
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------------- 2. similarity
def compute_similarity(task, *, method: str = "ortho", n_anchors: int = 250, runs: int = 3, seed: int = 0,
                       k: int = 10, decoders: dict | None = None) -> pd.DataFrame:
    """Part 2: linear CKA and mutual k-NN (``k``) of every ordered pair of ``task``'s encoders on
    the distinct samples of the anchor pool (:func:`semalign.similarity.distinct_rows`: a
    repeated report counts once), and every pair's stitched AUROC with ``method`` at
    ``min(n_anchors, pool)`` anchors over ``runs`` random draws, with the upper bounds."""
    from semalign.similarity import distinct_rows, pairwise_similarity
    from semalign.stitching import stitch_grid

    modality = _modality(task)
    pools = {name: e.anchors for name, e in task.encoders.items()}
    rows_ = distinct_rows(pools)
    sim = pairwise_similarity({n: a[rows_] for n, a in pools.items()}, k=min(int(k), len(rows_) - 1))
    n = min(int(n_anchors), task.pool_size)
    g = stitch_grid(task, [method, "upper_bound"], [n], runs=runs, seed=seed, progress=False, baselines=False,
                    decoders=decoders)
    dom = {name: str(d) for name, d in task.domains.items()}
    sim_rows = _frame([{"part": "similarity", "modality": modality, "task": task.name, "source": r.source,
                        "target": r.target, "source_domain": dom[r.source], "target_domain": dom[r.target],
                        "n_anchors": len(rows_), "metric": r.metric, "value": float(r.value),
                        "note": f"on {len(rows_)} distinct anchor-pool samples"}
                       for r in sim.itertuples()])
    return _concat([sim_rows, _rows(g, "similarity", modality)])


def _pair_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (modality, source, target): similarity metrics, stitched AUROC (mean over
    runs) and its share of the target's upper bound."""
    part = frame[frame["part"] == "similarity"]
    sims = part[part["metric"].isin(["linear_cka", "mutual_knn"])].pivot_table(
        index=["modality", "source", "target"], columns="metric", values="value").reset_index()
    st = part[(part["metric"] == "auroc") & (part["method"] != "upper_bound")]
    auc = st.groupby(["modality", "source", "target"])["value"].mean().rename("auroc").reset_index()
    ub = part[part["method"] == "upper_bound"].groupby(["modality", "target"])["value"].mean().rename("target_ub")
    out = sims.merge(auc, on=["modality", "source", "target"]).merge(ub.reset_index(), on=["modality", "target"])
    out["share_of_ub"] = out["auroc"] / out["target_ub"]
    return out


def _spearman(a: pd.Series, b: pd.Series) -> float:
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return math.nan
    return float(a.rank().corr(b.rank()))


def similarity_numbers(frame: pd.DataFrame) -> dict[str, Any]:
    """Spearman correlations over ordered pairs, per modality ``m`` and ``all`` (pooled):
    ``{m}_pairs``; ``{m}_{metric}_auroc`` (similarity vs stitched AUROC) and
    ``{m}_{metric}_share`` (vs the stitched share of the target's upper bound) for metric
    ``cka`` / ``knn``; ``{m}_cka_min`` / ``{m}_cka_max``; ``n_anchors`` and ``method`` of the
    stitching. Both metrics are symmetric, so each unordered pair enters twice."""
    t = _pair_table(frame)
    if t.empty:
        return {}
    st = frame[(frame["part"] == "similarity") & (frame["metric"] == "auroc") & (frame["method"] != "upper_bound")]
    out: dict[str, Any] = {"n_anchors": int(st["n_anchors"].max()), "method": str(st["method"].iloc[0])}
    for m, g in [*t.groupby("modality", sort=False), ("all", t)]:
        out[f"{m}_pairs"] = int(len(g))
        out[f"{m}_cka_min"], out[f"{m}_cka_max"] = float(g["linear_cka"].min()), float(g["linear_cka"].max())
        for short, col in (("cka", "linear_cka"), ("knn", "mutual_knn")):
            out[f"{m}_{short}_auroc"] = _spearman(g[col], g["auroc"])
            out[f"{m}_{short}_share"] = _spearman(g[col], g["share_of_ub"])
    return out


def similarity_chart(frame: pd.DataFrame, *, title: str = ""):
    """Stitched AUROC of every ordered pair against each similarity of the two spaces, one panel
    per metric, colour by modality; hover a point for the pair."""
    import altair as alt

    t = _pair_table(frame)
    check_frame(t, ["linear_cka", "mutual_knn", "auroc"], "beyond.similarity_chart")
    long = t.melt(id_vars=["modality", "source", "target", "auroc", "target_ub", "share_of_ub"],
                  value_vars=["linear_cka", "mutual_knn"], var_name="metric", value_name="similarity")
    pick = alt.selection_point(fields=["modality"], bind="legend")
    tips = ["modality:N", "source:N", "target:N", alt.Tooltip("similarity:Q", format=".3f"),
            alt.Tooltip("auroc:Q", format=".3f", title="stitched AUROC"),
            alt.Tooltip("target_ub:Q", format=".3f", title="target upper bound"),
            alt.Tooltip("share_of_ub:Q", format=".1%", title="share of target UB")]
    point = alt.Chart(long).mark_point(filled=True, size=70).encode(
        x=alt.X("similarity:Q", title="similarity of the two spaces", scale=alt.Scale(zero=False)),
        y=alt.Y("auroc:Q", title="stitched AUROC", scale=alt.Scale(zero=False)),
        color=alt.Color("modality:N"), shape=alt.Shape("modality:N"), tooltip=tips,
        opacity=alt.condition(pick, alt.value(0.9), alt.value(0.15))).add_params(pick)
    return point.properties(width=300, height=250).facet(
        column=alt.Column("metric:N", title=None, sort=["linear_cka", "mutual_knn"])).properties(title=title)


def similarity_reading(frame: pd.DataFrame) -> str:
    k = similarity_numbers(frame)
    if not k:
        return "**Reading.** No similarity results."
    mods = [m for m in dict.fromkeys(frame.loc[frame["part"] == "similarity", "modality"])]

    def rho(v: float) -> str:
        return "undefined" if math.isnan(v) else f"{v:+.2f}"

    per = "; ".join(f"{m} ({k[f'{m}_pairs']} ordered pairs): CKA {rho(k[f'{m}_cka_auroc'])}, mutual k-NN "
                    f"{rho(k[f'{m}_knn_auroc'])}" for m in mods)
    return (f"**Reading.** Spearman correlation of a pair's similarity with its stitched AUROC (`{k['method']}`, "
            f"{k['n_anchors']} anchors) — {per}; pooled over both modalities ({k['all_pairs']} pairs): CKA "
            f"{rho(k['all_cka_auroc'])}, mutual k-NN {rho(k['all_knn_auroc'])}. Against the stitched share of "
            f"the target's own upper bound (which removes how good the target is): pooled CKA "
            f"{rho(k['all_cka_share'])}, mutual k-NN {rho(k['all_knn_share'])}. Both measures are symmetric "
            f"while stitching is not, so each unordered pair enters twice; with this few encoders the "
            f"correlations are descriptive, not tests.")


# ------------------------------------------------------------------------------------- 3. ASIF
def compute_asif(encoded, *, n_pairs: int, runs: int, seed: int = 0, method: str = "ortho",
                 k: int | None = None, p: float | None = None) -> pd.DataFrame:
    """Part 3: for every Fig. 4 task, vision encoder and run, the paper's unimodal zero-shot
    (:func:`semalign.zeroshot.zeroshot_grid`, ``method``) and ASIF
    (:func:`semalign.asif.asif_zeroshot`, ``k``/``p``: its defaults when None) on the SAME
    anchor pairs (:func:`semalign.zeroshot.anchor_draws`), images and prompts.
    ``encoded``: a :class:`semalign.zeroshot.EncodedZeroShot`."""
    from semalign import asif
    from semalign.zeroshot import anchor_draws, zeroshot_grid

    draws = anchor_draws(encoded.pair_pool, n_pairs, runs, seed)
    paper = zeroshot_grid(encoded, n_pairs=n_pairs, runs=runs, method=method, seed=seed)
    paper = paper[paper["approach"] == "unimodal"]
    text = encoded.text_encoder
    dom = {n: str(d) for n, d in encoded.domains.items()}
    rows = [{"part": "asif", "modality": "vision → text", "task": r.task, "source": r.vision_encoder, "target": text,
             "source_domain": dom[r.vision_encoder], "target_domain": dom[text], "method": method,
             "strategy": "random", "n_anchors": int(n_pairs), "run": int(r.run), "metric": "auroc",
             "value": float(r.auroc), "n_pos": int(r.n_pos), "n_neg": int(r.n_neg)} for r in paper.itertuples()]
    kw = {key: v for key, v in (("k", k), ("p", p)) if v is not None}
    for t in encoded.tasks:
        n_pos = int(np.sum(t.y == 1))
        for name, images in t.images.items():
            for run, a in enumerate(draws):
                res = asif.asif_zeroshot(images, t.y, encoded.anchor_images[name][a], encoded.anchor_text[a],
                                         t.pos, t.neg, **kw)
                rows.append({"part": "asif", "modality": "vision → text", "task": t.name, "source": name,
                             "target": text, "source_domain": dom[name], "target_domain": dom[text],
                             "method": "asif", "strategy": "random", "n_anchors": int(n_pairs), "run": run,
                             "metric": "auroc", "value": float(res.auroc), "n_pos": n_pos,
                             "n_neg": int(len(t.y) - n_pos), "note": f"k={res.k}, p={res.p:g}"})
    return _concat([_frame(rows)])


def _asif_means(frame: pd.DataFrame) -> pd.DataFrame:
    a = frame[(frame["part"] == "asif") & (frame["metric"] == "auroc")]
    return (a.groupby(["task", "source", "method"], sort=False)
            .agg(auroc=("value", "mean"), std=("value", "std"), runs=("value", "size"),
                 n_pos=("n_pos", "first"), n_neg=("n_neg", "first")).reset_index())


def asif_numbers(frame: pd.DataFrame) -> dict[str, Any]:
    """Means over runs, then: ``paper_method``; ``asif_mean`` / ``paper_mean`` (over tasks and
    vision encoders); ``asif_wins`` of ``cells`` (task, encoder) where ASIF's mean AUROC is
    higher; ``asif_above`` / ``paper_above``: cells above chance (AUROC > 0.5 + 2 null sd,
    :func:`semalign.zeroshot.chance_sd`); ``best_asif`` encoder and its ``best_asif_auroc``;
    ``tasks``; ``asif_k`` (the k, p used)."""
    from semalign.zeroshot import chance_sd

    m = _asif_means(frame)
    if m.empty or not (m["method"] == "asif").any():
        return {}
    paper_method = str(next(x for x in m["method"] if x != "asif"))
    m["above"] = [a > 0.5 + 2 * chance_sd(int(p), int(n)) for a, p, n in zip(m["auroc"], m["n_pos"], m["n_neg"])]
    wide = m.pivot_table(index=["task", "source"], columns="method", values="auroc")
    per_enc = m[m["method"] == "asif"].groupby("source")["auroc"].mean().sort_values(ascending=False)
    notes = frame.loc[(frame["part"] == "asif") & (frame["method"] == "asif"), "note"]
    return {"paper_method": paper_method, "asif_mean": float(m.loc[m["method"] == "asif", "auroc"].mean()),
            "paper_mean": float(m.loc[m["method"] == paper_method, "auroc"].mean()),
            "asif_wins": int((wide["asif"] > wide[paper_method]).sum()), "cells": int(len(wide)),
            "asif_above": int(m.loc[m["method"] == "asif", "above"].sum()),
            "paper_above": int(m.loc[m["method"] == paper_method, "above"].sum()),
            "best_asif": str(per_enc.index[0]), "best_asif_auroc": float(per_enc.iloc[0]),
            "tasks": int(m["task"].nunique()), "asif_k": str(notes.iloc[0]) if len(notes) else ""}


def asif_chart(frame: pd.DataFrame, *, title: str = ""):
    """Zero-shot AUROC per task, the paper's method beside ASIF, one row of panels per vision
    encoder (mean ± std over runs); dashed: chance. Hover a bar for its numbers."""
    import altair as alt

    m = _asif_means(frame)
    check_frame(m, ["task", "source", "method", "auroc"], "beyond.asif_chart")
    m["std"] = m["std"].fillna(0.0)
    m["lo"], m["hi"], m["chance"] = (m["auroc"] - m["std"]).clip(0, 1), (m["auroc"] + m["std"]).clip(0, 1), 0.5
    tasks, methods = list(dict.fromkeys(m["task"])), list(dict.fromkeys(m["method"]))
    x = alt.X("task:N", sort=tasks, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=200))
    off = alt.XOffset("method:N", sort=methods)
    tips = ["task:N", alt.Tooltip("source:N", title="vision encoder"), "method:N",
            alt.Tooltip("auroc:Q", format=".3f", title="mean AUROC"), alt.Tooltip("std:Q", format=".3f"),
            alt.Tooltip("runs:Q")]
    base = alt.Chart(m)
    bars = base.mark_bar().encode(x=x, xOffset=off, y=alt.Y("auroc:Q", title="AUROC", scale=alt.Scale(domain=[0, 1])),
                                  color=alt.Color("method:N", sort=methods, title="zero-shot"), tooltip=tips)
    err = base.mark_rule(color="black").encode(x=x, xOffset=off, y="lo:Q", y2="hi:Q")
    chance = base.mark_rule(strokeDash=[4, 4], color="grey").encode(y="chance:Q")
    width = max(240, min(700, 24 * len(tasks) * len(methods)))
    return alt.layer(bars, err, chance).properties(width=width, height=170).facet(
        row=alt.Row("source:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left"))).properties(title=title)


def asif_reading(frame: pd.DataFrame) -> str:
    k = asif_numbers(frame)
    if not k:
        return "**Reading.** No ASIF results."
    return (f"**Reading.** Over {k['cells']} (task, vision encoder) cells on {k['tasks']} task(s), ASIF ({k['asif_k']}) "
            f"has mean AUROC {k['asif_mean']:.3f} against {k['paper_mean']:.3f} for the paper's method "
            f"(`{k['paper_method']}`) on the same anchor pairs; it is higher in {k['asif_wins']} of {k['cells']} cells. "
            f"Above chance (AUROC > 0.5 + 2 null sd): ASIF {k['asif_above']}, the paper's method {k['paper_above']} "
            f"of {k['cells']}. ASIF's best vision encoder is `{k['best_asif']}` (mean {k['best_asif_auroc']:.3f}). "
            f"ASIF fits nothing: an image and a prompt meet only through the anchor pairs they resemble.")


# ---------------------------------------------------------------------------------------- 4. dip
def dip_counts(dim: int, pool: int, ratios: Sequence[float]) -> list[int]:
    """Anchor counts ``N = round(r · dim) + 1`` for each ratio r = (N − 1) / d (so r = 1 is the
    count at which centred least squares interpolates: rank N − 1 = d), those the pool holds."""
    return sorted({int(round(float(r) * dim)) + 1 for r in ratios if int(round(float(r) * dim)) + 1 <= pool})


def compute_dip(task, methods: Sequence[str], ratios: Sequence[float], *, runs: int, seed: int = 0,
                decoders: dict | None = None) -> pd.DataFrame:
    """Part 4: for every encoder of ``task`` as source (to every other encoder), ``methods`` at
    the anchor counts :func:`dip_counts` of its own dimension; ``ratio`` = (N − 1) / d_source. A
    source whose pool cannot reach N − 1 = d is recorded as :data:`NOT_APPLICABLE`."""
    from semalign.stitching import stitch_grid

    modality = _modality(task)
    frames = []
    for s, e in task.encoders.items():
        counts = dip_counts(e.dim, task.pool_size, ratios)
        if not counts or max(counts) < e.dim + 1:
            frames.append(_frame([{"part": "dip", "modality": modality, "task": task.name, "source": s,
                                   "source_domain": str(task.domains[s]), "metric": NOT_APPLICABLE,
                                   "n_anchors": e.dim + 1,
                                   "note": f"the anchor pool ({task.pool_size}) is smaller than d + 1 = {e.dim + 1}"}]))
            continue
        g = stitch_grid(task, list(methods), counts, runs=runs, seed=seed, progress=False, baselines=False,
                        pairs=[(s, t) for t in task.encoders if t != s], decoders=decoders)
        rows = _rows(g, "dip", modality)
        rows["ratio"] = (rows["n_anchors"] - 1) / e.dim
        rows["note"] = f"d = {e.dim}"
        frames.append(rows)
    return _concat(frames)


def _dip_curves(frame: pd.DataFrame) -> pd.DataFrame:
    d = frame[(frame["part"] == "dip") & (frame["metric"] == "auroc")]
    return d.groupby(["modality", "source", "note", "method", "ratio"], sort=False)["value"].mean().reset_index()


def dip_numbers(frame: pd.DataFrame) -> dict[str, Any]:
    """Per method ``m``: ``{m}_depth``, the mean over sources of how far its curve (mean over
    targets and runs) falls below the lower of its two ends — ``min(a(r_min), a(r_max)) −
    min_r a(r)``, 0 for a curve that never falls below its ends — and ``{m}_depth_max``;
    ``{m}_at_d``: mean AUROC at the ratio nearest 1 (N − 1 ≈ d); ``{m}_worst_ratio``: where the
    curves' minima fall (median ratio); ``sources`` measured, ``skipped`` (sources whose pool
    is too small, comma-separated, or "none"), ``methods``."""
    cur = _dip_curves(frame)
    skipped = frame[(frame["part"] == "dip") & (frame["metric"] == NOT_APPLICABLE)]
    out: dict[str, Any] = {"skipped": ", ".join(f"{s} ({n})" for s, n in zip(skipped["source"], skipped["note"])) or "none"}
    if cur.empty:
        return out
    out["sources"] = int(cur["source"].nunique())
    out["methods"] = ", ".join(dict.fromkeys(cur["method"]))
    for m, g in cur.groupby("method", sort=False):
        depths, at_d, worst = [], [], []
        for _, c in g.groupby("source", sort=False):
            c = c.sort_values("ratio")
            a = c["value"].to_numpy()
            depths.append(float(min(a[0], a[-1]) - a.min()))
            at_d.append(float(a[np.argmin(np.abs(c["ratio"].to_numpy() - 1.0))]))
            worst.append(float(c["ratio"].iloc[int(np.argmin(a))]))
        out.update({f"{m}_depth": float(np.mean(depths)), f"{m}_depth_max": float(np.max(depths)),
                    f"{m}_at_d": float(np.mean(at_d)), f"{m}_worst_ratio": float(np.median(worst))})
    return out


def dip_chart(frame: pd.DataFrame, *, title: str = ""):
    """AUROC against (N − 1) / d_source per method, one panel per source (mean over its targets
    and the runs); the rule marks N − 1 = d. Click a legend entry to highlight a method."""
    import altair as alt

    cur = _dip_curves(frame)
    check_frame(cur, ["method", "ratio", "value"], "beyond.dip_chart")
    cur["panel"] = cur["modality"] + ": " + cur["source"] + " (" + cur["note"] + ")"
    present, colours = method_palette(cur["method"])
    pick = alt.selection_point(fields=["method"], bind="legend")
    x = alt.X("ratio:Q", scale=alt.Scale(type="log"), title="(N − 1) / d of the source")
    line = alt.Chart(cur).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title="AUROC", scale=alt.Scale(zero=False)),
        color=alt.Color("method:N", scale=alt.Scale(domain=present, range=colours), sort=present),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.2)),
        tooltip=["panel:N", "method:N", alt.Tooltip("ratio:Q", format=".2f", title="(N − 1) / d"),
                 alt.Tooltip("value:Q", format=".3f", title="mean AUROC")]).add_params(pick)
    one = alt.Chart(cur).mark_rule(strokeDash=[4, 4], color="grey").encode(x=alt.datum(1.0))
    return alt.layer(line, one).properties(width=210, height=170).facet(
        facet=alt.Facet("panel:N", title=None, sort=list(dict.fromkeys(cur["panel"]))), columns=3).properties(title=title)


def dip_reading(frame: pd.DataFrame) -> str:
    k = dip_numbers(frame)
    if "sources" not in k:
        return f"**Reading.** No source could show the dip (pool too small: {k['skipped']})."
    methods = k["methods"].split(", ")
    depth = ", ".join(f"`{m}` {k[f'{m}_depth']:.3f} (largest {k[f'{m}_depth_max']:.3f})" for m in methods)
    at_d = ", ".join(f"`{m}` {k[f'{m}_at_d']:.3f}" for m in methods)
    s = (f"**Reading.** Over {k['sources']} source encoder(s), how far a curve falls below the lower of its two "
         f"ends (0: no dip): {depth}. At N − 1 ≈ d the mean AUROC is {at_d}.")
    if "linear_worst_ratio" in k:
        s += f" `linear`'s curves bottom out at (N − 1) / d ≈ {k['linear_worst_ratio']:.2f} (median over sources)."
    if k["skipped"] != "none":
        s += f" Not shown (the anchor pool is smaller than d + 1): {k['skipped']}."
    return s


# ---------------------------------------------------------------------------------- everything
def compute(*, text_task: str, text_encoders: Sequence[str], vision_task: str, vision_encoders: Sequence[str],
            vision_tasks: Sequence[str], text_encoder: str, pairs: str, n_pairs: int, pair_pool: int,
            n_prompts: int, strategies: Sequence[str], selection_counts: Sequence[int], selection_method: str,
            selection_sources: int, similarity_method: str, similarity_anchors: int, knn_k: int,
            dip_methods: Sequence[str], dip_ratios: Sequence[float], dip_runs: int, zeroshot_method: str, asif_k: int | None,
            asif_p: float | None, runs: int, seed: int, device: str, batch_size: int | None,
            anchor_pool: int | None, task_params: Mapping[str, Mapping] | None) -> tuple[pd.DataFrame, dict]:
    """All four parts from the notebook's parameters: embeds (through the cache) the text and
    vision tasks as :func:`semalign.encoders.tasks.encode_task` does for notebook 02, and the
    Fig. 4 set-up as :func:`semalign.encoders.tasks.encode_zeroshot` does for notebook 04.
    Returns the frame (:data:`COLUMNS`) and ``{"text", "vision", "zeroshot"}``: the embedded
    tasks (for the notebook's method cell). ``runs`` repeats parts 1–3, ``dip_runs`` part 4."""
    from semalign.encoders.tasks import encode_task, encode_zeroshot

    embedded = dict(device=device, batch_size=batch_size, anchor_pool=anchor_pool, seed=seed, task_params=task_params)
    text = encode_task(text_task, list(text_encoders), **embedded)
    vision = encode_task(vision_task, list(vision_encoders), **embedded)
    zs = encode_zeroshot(list(vision_tasks), list(vision_encoders), text_encoder, pairs=pairs, pair_pool=int(pair_pool),
                         n_prompts=n_prompts, device=device, batch_size=batch_size, seed=seed, task_params=task_params)
    frames = []
    for task in (text, vision):
        decoders: dict = {}  # each encoder's decoder fitted once for all parts
        frames.append(compute_selection(task, strategies, selection_counts, runs=runs, seed=seed,
                                        method=selection_method, n_sources=selection_sources, decoders=decoders))
        frames.append(compute_similarity(task, method=similarity_method, n_anchors=similarity_anchors, runs=runs,
                                         seed=seed, k=knn_k, decoders=decoders))
        frames.append(compute_dip(task, dip_methods, dip_ratios, runs=dip_runs, seed=seed, decoders=decoders))
    frames.append(compute_asif(zs, n_pairs=n_pairs, runs=runs, seed=seed, method=zeroshot_method, k=asif_k, p=asif_p))
    order = {p: i for i, p in enumerate(PARTS)}
    out = _concat(frames)
    out = out.iloc[np.argsort(out["part"].map(order).to_numpy(), kind="stable")].reset_index(drop=True)
    return out, {"text": text, "vision": vision, "zeroshot": zs}


def numbers(frame: pd.DataFrame, fraction: float = 0.95) -> dict[str, Any]:
    """Every part's numbers for the prose, keys prefixed ``sel_``, ``sim_``, ``asif_``, ``dip_``;
    an undefined number (NaN, e.g. a correlation over constant values) is the string "n/a"."""
    out: dict[str, Any] = {}
    for prefix, fn in (("sel", lambda f: selection_numbers(f, fraction)), ("sim", similarity_numbers),
                       ("asif", asif_numbers), ("dip", dip_numbers)):
        out.update({f"{prefix}_{k}": ("n/a" if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in fn(frame).items()})
    return out


def findings(frame: pd.DataFrame, fraction: float = 0.95) -> list[str]:
    """The summary page's "Beyond the paper" lines: one sentence per part, from the frame alone
    (e.g. ``book.read_results("06_beyond")``)."""
    out = []
    s = selection_numbers(frame, fraction)
    for m in dict.fromkeys(frame.loc[frame["part"] == "selection", "modality"]):
        if f"{m}_n_min" not in s:
            continue
        strategies = [x for x in ("random", "kmeans", "farthest", "stratified") if f"{m}_{x}_small" in s]
        best = s[f"{m}_best_small"]
        out.append(f"Anchor selection ({m}): with {s[f'{m}_n_min']} anchors the best strategy is "
                   f"{best} ({s[f'{m}_{best}_small']:.3f} vs random {s.get(f'{m}_random_small', math.nan):.3f}); "
                   f"anchors to reach {fraction:.0%} of the upper bound: "
                   + ", ".join(f"{x} {s[f'{m}_{x}_reach']}" for x in strategies)
                   + (f"; not applicable: {s[f'{m}_na']}" if s.get(f"{m}_na", "none") != "none" else "") + ".")
    k = similarity_numbers(frame)
    if k:
        out.append(f"Why a pair stitches: Spearman correlation with the stitched AUROC over {k['all_pairs']} ordered "
                   f"pairs, linear CKA {k['all_cka_auroc']:+.2f}, mutual k-NN {k['all_knn_auroc']:+.2f} (with the "
                   f"share of the target's upper bound: {k['all_cka_share']:+.2f}, {k['all_knn_share']:+.2f}).")
    a = asif_numbers(frame)
    if a:
        out.append(f"Training-free baseline: ASIF's mean zero-shot AUROC {a['asif_mean']:.3f} vs {a['paper_mean']:.3f} "
                   f"for the paper's method on the same pairs; ASIF higher in {a['asif_wins']} of {a['cells']} "
                   f"(task, encoder) cells, above chance in {a['asif_above']} (the paper's method: {a['paper_above']}).")
    d = dip_numbers(frame)
    if "sources" in d:
        methods = d["methods"].split(", ")
        out.append("The least-squares dip: depth below the curve's ends (0 = none), "
                   + ", ".join(f"{m} {d[f'{m}_depth']:.3f}" for m in methods)
                   + "; at N − 1 ≈ d: " + ", ".join(f"{m} {d[f'{m}_at_d']:.3f}" for m in methods) + ".")
    return out
