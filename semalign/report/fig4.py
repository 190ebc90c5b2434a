"""Fig. 4 (notebook 04, paper Sec. 3.2 and 4.2): unimodal zero-shot classification.

:func:`compute` wires the embedding glue (:func:`semalign.encoders.tasks.encode_zeroshot`) to
the grid on embeddings (:func:`semalign.zeroshot.zeroshot_grid`). A result is *above chance*
only when its AUROC clears 0.5 by two standard deviations of an uninformative classifier's
AUROC on the same test set (:func:`above_chance`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from semalign.report.style import check_frame

__all__ = ["APPROACH_LABELS", "OURS", "PAPER_ZEROSHOT", "compute", "means", "frame", "chart", "above_chance",
           "supervised_encoders", "describe_setup", "numbers", "reading"]

APPROACH_LABELS = {"unimodal": "ours (unimodal + alignment)", "clip": "CLIP", "medclip": "MedCLIP"}
OURS = APPROACH_LABELS["unimodal"]

#: What the paper puts in the zero-shot roles (Sec. 4.2), to name what a profile uses instead:
#: ``(names a profile may give it by, how the book writes it)``.
PAPER_ZEROSHOT = {
    "text": (("clip-vit-b32-text", "openai/clip-vit-base-patch32"), "openai/clip-vit-base-patch32 (CLIP's text tower)"),
    "pairs": (("mimic-cxr-pairs",), "MIMIC-CXR image–report pairs"),
}


def compute(
    tasks: Sequence[str],
    vision_encoders: Sequence[str],
    text_encoder: str,
    *,
    pairs: str,
    n_pairs: int,
    method: str = "ortho",
    n_prompts: int = 10,
    baselines: Mapping[str, Sequence[str]] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    task_params: Mapping[str, Mapping] | None = None,
    runs: int = 1,
    pair_pool: int | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The paper's unimodal zero-shot for every vision encoder, plus baselines.

    A pool of ``pair_pool`` image–report pairs (default ``n_pairs``) is embedded once; run r
    (``runs`` of them, as the paper repeats each experiment with a new random anchor set)
    fits ``method`` on ``n_pairs`` of them (:func:`semalign.zeroshot.anchor_draws`) and scores
    every task's test images against the first ``n_prompts`` positive and negative prompts.
    ``baselines``: ``{approach: [image tower, text tower]}`` (approach "clip" or "medclip")
    scored with the standard multimodal zero-shot, once per task.

    Returns the frame of :func:`semalign.zeroshot.zeroshot_grid` and ``{"domains": {encoder:
    domain}, "n_pairs", "pair_pool", "runs", "supervised_on": {encoder: what its training
    labels were}, "encoded": the EncodedZeroShot scored}``. An impossible draw plan is refused
    before anything is embedded.
    """
    from semalign.encoders.tasks import encode_zeroshot
    from semalign.zeroshot import check_draws, zeroshot_grid

    check_draws(n_pairs, int(pair_pool or n_pairs), runs)
    encoded = encode_zeroshot(tasks, vision_encoders, text_encoder, pairs=pairs, pair_pool=int(pair_pool or n_pairs),
                              n_prompts=n_prompts, baselines=baselines, device=device, batch_size=batch_size,
                              seed=seed, task_params=task_params)
    out = zeroshot_grid(encoded, n_pairs=n_pairs, runs=runs, method=method, seed=seed)
    return out, {"domains": encoded.domains, "n_pairs": int(n_pairs), "pair_pool": encoded.pair_pool,
                 "runs": int(runs), "supervised_on": encoded.supervised_on, "encoded": encoded}


def means(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, approach, vision encoder, text encoder): AUROC mean over runs and its
    std (NaN for one run), with the class counts and ``supervised_on`` carried along."""
    keys = ["task", "approach", "vision_encoder", "text_encoder", "domain"]
    if "run" not in results.columns:
        return results.assign(auroc_std=np.nan)
    agg = {"auroc": ("auroc", "mean"), "auroc_std": ("auroc", "std"), "runs": ("auroc", "size")}
    for c in ("n_pos", "n_neg", "supervised_on"):
        if c in results.columns:
            agg[c] = (c, "first")
    return results.groupby(keys, sort=False, dropna=False).agg(**agg).reset_index()


def frame(results: pd.DataFrame) -> pd.DataFrame:
    """The bars of :func:`chart`: task, model, kind, auroc (mean over runs) and, with several
    runs, auroc_std."""
    df = means(results)
    df["kind"] = df["approach"].map(APPROACH_LABELS).fillna(df["approach"])
    df["model"] = np.where(df["approach"] == "unimodal",
                           df["vision_encoder"] + " (" + df["domain"] + ")", df["kind"])
    cols = ["task", "model", "kind", "auroc"] + (["auroc_std"] if df["auroc_std"].notna().any() else [])
    return df[cols]


def chart(bars: pd.DataFrame, *, title: str = ""):
    """Zero-shot AUROC per task, one bar per model side by side, chance at 0.5.

    ``bars`` columns (:func:`frame`): task, model (vision encoder or baseline), auroc; optional
    ``kind`` (:data:`APPROACH_LABELS`; default :data:`OURS`: drawn solid and first, the others
    lighter) and ``auroc_std`` (drawn as ± error bars).

    One view with grouped bars (``xOffset``), not a facet: a layer that carries its own data is
    not split by a facet, so faceted layers would stack every task's bars in every panel.
    Bars are never stacked: each bar's height is its own AUROC.
    """
    import altair as alt

    check_frame(bars, ["task", "model", "auroc"], "fig4.chart")
    df = bars.copy()
    if "kind" not in df.columns:
        df["kind"] = OURS
    dup = df.duplicated(["task", "model"])
    if dup.any():
        raise ValueError("fig4.chart: one row per (task, model) expected; repeated: "
                         f"{df.loc[dup, ['task', 'model']].drop_duplicates().values.tolist()[:5]}")
    tasks = list(dict.fromkeys(df["task"]))
    models = list(dict.fromkeys(df["model"]))
    kinds = sorted(dict.fromkeys(df["kind"]), key=lambda k: (k != OURS, str(k)))
    opacities = [1.0 if k == OURS else 0.55 for k in kinds]
    tips = ["task:N", "model:N", "kind:N", alt.Tooltip("auroc:Q", format=".3f", title="AUROC")]
    if "auroc_std" in df.columns:
        tips.append(alt.Tooltip("auroc_std:Q", format=".3f", title="std"))
    x = alt.X("task:N", sort=tasks, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=220))
    offset = alt.XOffset("model:N", sort=models)
    bars_ = alt.Chart(df).mark_bar().encode(
        x=x, xOffset=offset,
        y=alt.Y("auroc:Q", title="AUROC", stack=None, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", sort=models, title="model", legend=alt.Legend(labelLimit=320)),
        # ours solid, baselines lighter: the kind reads at a glance even when colours are many
        opacity=alt.Opacity("kind:N", sort=kinds, scale=alt.Scale(domain=kinds, range=opacities),
                            legend=alt.Legend(title="kind", labelLimit=320)),
        tooltip=tips,
    )
    layers = [bars_]
    if "auroc_std" in df.columns:
        err = df.assign(lo=(df["auroc"] - df["auroc_std"]).clip(0, 1), hi=(df["auroc"] + df["auroc_std"]).clip(0, 1))
        layers.append(alt.Chart(err).mark_rule(color="black").encode(x=x, xOffset=offset, y="lo:Q", y2="hi:Q"))
    chance = pd.DataFrame({"auroc": [0.5]})
    layers.append(alt.Chart(chance).mark_rule(strokeDash=[4, 4], color="grey").encode(
        y=alt.Y("auroc:Q", title="AUROC"), tooltip=[alt.Tooltip("auroc:Q", title="chance")]))
    width = max(240, min(900, 22 * len(tasks) * len(models)))
    return alt.layer(*layers).properties(width=width, height=260, title=title)


def _chance_sds(results: pd.DataFrame) -> np.ndarray:
    """Each row's null AUROC std from its class counts (:func:`semalign.zeroshot.chance_sd`)."""
    from semalign.zeroshot import chance_sd

    return np.array([chance_sd(int(a), int(b)) for a, b in zip(results["n_pos"], results["n_neg"])])


def above_chance(results: pd.DataFrame, k: float = 2.0) -> pd.Series:
    """Per row: AUROC > 0.5 + k × its null standard deviation (:func:`semalign.zeroshot.chance_sd`).

    Rows without class counts fall back to AUROC > 0.5 (and say less).
    """
    if not {"n_pos", "n_neg"} <= set(results.columns):
        return results["auroc"] > 0.5
    return pd.Series(results["auroc"].to_numpy() > 0.5 + k * _chance_sds(results), index=results.index)


def supervised_encoders(results: pd.DataFrame) -> dict[str, str]:
    """``{vision encoder: what it was trained on}`` from a Fig. 4 frame's ``supervised_on``
    column (written by :func:`semalign.zeroshot.zeroshot_grid`); empty when the column is absent."""
    if "supervised_on" not in results.columns:
        return {}
    return {v: w for v, w in zip(results["vision_encoder"], results["supervised_on"].fillna(""))
            if isinstance(w, str) and w}


def describe_setup(text_encoder: str, text_domain: str, pairs: str, n_pairs: int, method: str, n_prompts: int,
                   profile: str, runs: int = 1, pair_pool: int | None = None) -> str:
    """One paragraph: the text space and anchors this run uses, beside the paper's."""
    def role(value: str, what: str) -> str:
        names, paper = PAPER_ZEROSHOT[what]
        return "" if value in names else f" — **in place of** the paper's {paper}"

    txt = (f"Text space: `{text_encoder}` ({text_domain}){role(text_encoder, 'text')}. "
           f"Anchors: {n_pairs} image–report pairs of `{pairs}`{role(pairs, 'pairs')}. ")
    draws = (f"{runs} runs, each on its own random {n_pairs} of a pool of {pair_pool} pairs. "
             if runs > 1 and pair_pool else "")
    return txt + (f"{draws}Transform `{method}`; {n_prompts} positive and {n_prompts} negative prompts per task; "
                  f"profile `{profile}`.")


def numbers(results: pd.DataFrame) -> dict[str, float | int | str]:
    """The reading's numbers, on means over runs of the unimodal rows: ``tasks``; the ``best``
    vision encoder and its ``best_auroc`` (mean over tasks); ``above`` of ``results`` (encoder,
    task) results above chance, at ``threshold`` (0.5 + 2 null sd, the largest over rows; 0.5
    without class counts); ``tasks_above``: tasks whose best encoder is above chance. ``{}``
    without unimodal rows."""
    uni = means(results)
    uni = uni[uni["approach"] == "unimodal"]
    if uni.empty:
        return {}
    per_enc = uni.groupby("vision_encoder")["auroc"].mean().sort_values(ascending=False)
    best_rows = uni.loc[uni.groupby("task")["auroc"].idxmax()]
    counts = {"n_pos", "n_neg"} <= set(uni.columns)
    return {"tasks": int(uni["task"].nunique()), "best": str(per_enc.index[0]), "best_auroc": float(per_enc.iloc[0]),
            "above": int(above_chance(uni).sum()), "results": int(len(uni)),
            "threshold": float(0.5 + 2 * _chance_sds(uni).max()) if counts else 0.5,
            "tasks_above": int(above_chance(best_rows).sum())}


def reading(results: pd.DataFrame, supervised_on: Mapping[str, str] | None = None) -> str:
    """One paragraph reading Fig. 4 from its numbers.

    *Above chance* is AUROC > 0.5 + 2 null standard deviations (:func:`above_chance`), not
    merely > 0.5. ``supervised_on``: encoders trained on labels (default: read from the
    frame, :func:`supervised_encoders`), named so that a reader does not take their bars for
    zero-shot ability.
    """
    if supervised_on is None:
        supervised_on = supervised_encoders(results)
    k = numbers(results)
    if not k:
        return "**Reading.** No unimodal results."
    results = means(results)
    uni = results[results["approach"] == "unimodal"]
    rule = ("0.5 + 2 null standard deviations, i.e. "
            f"{k['threshold']:.2f} here" if {"n_pos", "n_neg"} <= set(uni.columns) else "0.5")
    s = (f"**Reading.** Averaged over the {k['tasks']} task(s), the best vision encoder with the "
         f"paper's method is `{k['best']}` (mean AUROC {k['best_auroc']:.3f}); {k['above']} of {k['results']} "
         f"(encoder, task) results are above chance (AUROC above {rule})"
         + (f"; means over {int(uni['runs'].max())} anchor draws." if uni.get("runs", pd.Series([1])).max() > 1
            else "."))
    gen = uni[uni["domain"] == "general"]
    if len(gen):
        g = gen.groupby("vision_encoder")["auroc"].mean().sort_values(ascending=False)
        s += f" Among the general encoders, `{g.index[0]}` is best (mean {g.iloc[0]:.3f})."
    for approach in ("clip", "medclip"):
        b = results[results["approach"] == approach].set_index("task")["auroc"]
        if len(b):
            best = uni.groupby("task")["auroc"].max().reindex(b.index)
            s += (f" The best unimodal encoder beats {APPROACH_LABELS[approach]} on {int((best > b).sum())} "
                  f"of {len(b)} tasks.")
    for enc, what in (supervised_on or {}).items():
        if enc in set(uni["vision_encoder"]):
            s += (f" **Caution:** `{enc}` was trained with labels ({what}), so its bars are not zero-shot "
                  f"in the paper's sense (RAD-DINO, the paper's medical encoder, never saw a label): read "
                  f"them as an in-domain ceiling, not as a medical encoder's zero-shot ability.")
    return s

