"""Fig. 4 (notebook 04, paper Sec. 3.2 and 4.2): unimodal zero-shot classification.

:func:`compute` wires the embedding glue (:func:`semalign.encoders.tasks.encode_zeroshot`) to
the grid on embeddings (:func:`semalign.zeroshot.zeroshot_grid`). A result is *above chance*
only when its AUROC clears 0.5 by two standard deviations of an uninformative classifier's
AUROC on the same test set (:func:`above_chance`).

Uncertainty of a bar (:func:`means`). A bar is the mean AUROC over ``R`` anchor draws, every
draw scored on the *same* test images. Its standard error combines the test-set error, which
the draws share and so does not shrink with ``R`` (the root mean square of the runs' DeLong
standard errors), with the anchor-draw spread, which does (between-run std / sqrt(R)), in
quadrature::

    auroc_se = sqrt( mean_r SE_DeLong,r^2  +  std_r(AUROC_r)^2 / R )

A baseline or a probe is one run: its DeLong standard error. ``auroc_std`` (the std over the
draws, the paper's ±) is kept beside it. Two bars are told apart (:func:`compare`) when their
difference exceeds 2 standard errors of the difference, ``sqrt(se_a^2 + se_b^2)`` — conservative
for two scorings of the same test images, whose errors are positively correlated.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from semalign.report.style import check_frame

__all__ = ["APPROACH_LABELS", "OURS", "PROBE", "PAPER_ZEROSHOT", "compute", "means", "frame", "chart", "table",
           "above_chance", "compare", "supervised_encoders", "describe_setup", "numbers", "reading"]

APPROACH_LABELS = {"unimodal": "ours (unimodal + alignment)", "clip": "CLIP", "medclip": "MedCLIP",
                   "synthclip": "MedCLIP-like (stand-in, trained here)", "probe": "linear probe (supervised ceiling)"}
OURS = APPROACH_LABELS["unimodal"]
PROBE = APPROACH_LABELS["probe"]
#: Multimodal baselines, in the order the reading names them.
BASELINES = ("clip", "medclip", "synthclip")
#: A difference counts when it exceeds this many standard errors of the difference (:func:`compare`).
K_SE = 2.0

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
    probe: bool = True,
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
    ``baselines``: ``{approach: [image tower, text tower]}`` (approach "clip", "medclip" or
    "synthclip") scored with the standard multimodal zero-shot, once per task. ``probe``: also
    the supervised linear probe of every vision encoder on each task's labelled training images
    (:func:`semalign.zeroshot.linear_probe`), the ceiling drawn over its bars.

    Returns the frame of :func:`semalign.zeroshot.zeroshot_grid` and ``{"domains": {encoder:
    domain}, "n_pairs", "pair_pool", "runs", "supervised_on": {encoder: what its training
    labels were}, "encoded": the EncodedZeroShot scored}``. An impossible draw plan is refused
    before anything is embedded.
    """
    from semalign.encoders.tasks import encode_zeroshot
    from semalign.zeroshot import check_draws, zeroshot_grid

    check_draws(n_pairs, int(pair_pool or n_pairs), runs)
    encoded = encode_zeroshot(tasks, vision_encoders, text_encoder, pairs=pairs, pair_pool=int(pair_pool or n_pairs),
                              n_prompts=n_prompts, baselines=baselines, probe=probe, device=device,
                              batch_size=batch_size,
                              seed=seed, task_params=task_params)
    out = zeroshot_grid(encoded, n_pairs=n_pairs, runs=runs, method=method, seed=seed)
    return out, {"domains": encoded.domains, "n_pairs": int(n_pairs), "pair_pool": encoded.pair_pool,
                 "runs": int(runs), "supervised_on": encoded.supervised_on, "encoded": encoded}


def _row_se(results: pd.DataFrame) -> pd.Series:
    """Each row's test-set standard error: its ``auroc_se`` (DeLong, written by the grid), or for a
    frame without it (an older CSV) the Hanley–McNeil approximation from the AUROC and the class
    counts (:func:`semalign.stats.auroc_se_hanley`); NaN without class counts."""
    from semalign.stats import auroc_se_hanley

    if "auroc_se" in results.columns:
        return results["auroc_se"].astype(float)
    if not {"n_pos", "n_neg"} <= set(results.columns):
        return pd.Series(np.nan, index=results.index)
    return pd.Series([auroc_se_hanley(a, p, n) for a, p, n in zip(results["auroc"], results["n_pos"], results["n_neg"])],
                     index=results.index)


def means(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, approach, vision encoder, text encoder): AUROC mean over runs, its std
    over the runs (NaN for one run) and the bar's standard error ``auroc_se`` (module docstring:
    the runs' shared test-set error and the anchor-draw spread over sqrt(runs), in quadrature),
    with the class counts and ``supervised_on`` carried along."""
    keys = ["task", "approach", "vision_encoder", "text_encoder", "domain"]
    results = results.assign(auroc_se=_row_se(results))
    if "run" not in results.columns:
        return results.assign(auroc_std=np.nan, runs=1)
    results = results.assign(_var=results["auroc_se"] ** 2)
    agg = {"auroc": ("auroc", "mean"), "auroc_std": ("auroc", "std"), "runs": ("auroc", "size"),
           "_var": ("_var", "mean")}
    for c in ("n_pos", "n_neg", "supervised_on"):
        if c in results.columns:
            agg[c] = (c, "first")
    out = results.groupby(keys, sort=False, dropna=False).agg(**agg).reset_index()
    between = np.where(out["runs"] > 1, out["auroc_std"].fillna(0.0) ** 2 / out["runs"], 0.0)
    out.insert(out.columns.get_loc("auroc_std"), "auroc_se", np.sqrt(out.pop("_var") + between))
    return out


def frame(results: pd.DataFrame) -> pd.DataFrame:
    """The bars of :func:`chart`: task, model, kind, auroc (mean over runs), auroc_se (the bar's
    standard error, :func:`means`) and, with several runs, auroc_std. A probe row has the
    ``model`` of its encoder's bar (it is drawn over that bar) and the kind :data:`PROBE`."""
    df = means(results)
    df["kind"] = df["approach"].map(APPROACH_LABELS).fillna(df["approach"])
    per_encoder = df["approach"].isin(["unimodal", "probe"])
    df["model"] = np.where(per_encoder, df["vision_encoder"] + " (" + df["domain"] + ")", df["kind"])
    cols = ["task", "model", "kind", "auroc"] + (["auroc_se"] if df["auroc_se"].notna().any() else []) \
        + (["auroc_std"] if df["auroc_std"].notna().any() else [])
    return df[cols]


def chart(bars: pd.DataFrame, *, title: str = ""):
    """Zero-shot AUROC per task, one bar per model side by side, chance at 0.5.

    ``bars`` columns (:func:`frame`): task, model (vision encoder or baseline), auroc; optional
    ``kind`` (:data:`APPROACH_LABELS`; default :data:`OURS`: drawn solid and first, the others
    lighter), ``auroc_se`` (drawn as ± 1 standard-error bars; without it ``auroc_std`` is) and
    ``auroc_std`` (in the tooltip). Rows of kind :data:`PROBE` are not bars: each is a black
    tick over its encoder's bar (same task and model) at the probe's AUROC — the supervised
    ceiling that bar could reach with labels.

    One view with grouped bars (``xOffset``), not a facet: a layer that carries its own data is
    not split by a facet, so faceted layers would stack every task's bars in every panel.
    Bars are never stacked: each bar's height is its own AUROC.
    """
    import altair as alt

    check_frame(bars, ["task", "model", "auroc"], "fig4.chart")
    df = bars.copy()
    if "kind" not in df.columns:
        df["kind"] = OURS
    ticks, df = df[df["kind"] == PROBE], df[df["kind"] != PROBE]
    for what, d in (("bar", df), ("probe tick", ticks)):
        dup = d.duplicated(["task", "model"])
        if dup.any():
            raise ValueError(f"fig4.chart: one row per (task, model) expected for the {what}s; repeated: "
                             f"{d.loc[dup, ['task', 'model']].drop_duplicates().values.tolist()[:5]}")
    stray = set(map(tuple, ticks[["task", "model"]].values)) - set(map(tuple, df[["task", "model"]].values))
    if stray:
        raise ValueError(f"fig4.chart: a probe tick is drawn over its encoder's bar; no bar for {sorted(stray)[:5]}")
    tasks = list(dict.fromkeys(df["task"]))
    models = list(dict.fromkeys(df["model"]))
    kinds = sorted(dict.fromkeys(df["kind"]), key=lambda k: (k != OURS, str(k)))
    opacities = [1.0 if k == OURS else 0.55 for k in kinds]

    def tips(d: pd.DataFrame) -> list:
        t = ["task:N", "model:N", "kind:N", alt.Tooltip("auroc:Q", format=".3f", title="AUROC")]
        t += [alt.Tooltip(f"{c}:Q", format=".3f", title=title) for c, title in
              (("auroc_se", "standard error"), ("auroc_std", "std over anchor draws")) if c in d.columns]
        return t

    x = alt.X("task:N", sort=tasks, title=None, axis=alt.Axis(labelAngle=-30, labelLimit=220))
    offset = alt.XOffset("model:N", sort=models, scale=alt.Scale(domain=models))
    y = alt.Y("auroc:Q", title="AUROC", stack=None, scale=alt.Scale(domain=[0, 1]))
    bars_ = alt.Chart(df).mark_bar().encode(
        x=x, xOffset=offset, y=y,
        color=alt.Color("model:N", sort=models, title="model", legend=alt.Legend(labelLimit=320)),
        # ours solid, baselines lighter: the kind reads at a glance even when colours are many
        opacity=alt.Opacity("kind:N", sort=kinds, scale=alt.Scale(domain=kinds, range=opacities),
                            legend=alt.Legend(title="kind", labelLimit=320)),
        tooltip=tips(df),
    )
    layers = [bars_]
    spread = "auroc_se" if "auroc_se" in df.columns else "auroc_std" if "auroc_std" in df.columns else None
    if spread:
        err = df.assign(lo=(df["auroc"] - df[spread]).clip(0, 1), hi=(df["auroc"] + df[spread]).clip(0, 1))
        layers.append(alt.Chart(err).mark_rule(color="black").encode(x=x, xOffset=offset, y="lo:Q", y2="hi:Q",
                                                                     tooltip=tips(err)))
    width = max(240, min(900, 22 * len(tasks) * len(models)))
    if len(ticks):
        # about as wide as a bar (the band of one model, less its padding)
        size = max(4, int(0.7 * width / (len(tasks) * len(models))))
        layers.append(alt.Chart(ticks).mark_tick(thickness=3, size=size, opacity=1).encode(
            x=x, xOffset=offset, y=y,
            stroke=alt.Stroke("kind:N", scale=alt.Scale(domain=[PROBE], range=["black"]),
                              legend=alt.Legend(title="ceiling", labelLimit=320, symbolType="stroke",
                                                symbolStrokeWidth=3)),
            color=alt.value("black"), tooltip=tips(ticks)))
    chance = pd.DataFrame({"auroc": [0.5]})
    layers.append(alt.Chart(chance).mark_rule(strokeDash=[4, 4], color="grey").encode(
        y=alt.Y("auroc:Q", title="AUROC"), tooltip=[alt.Tooltip("auroc:Q", title="chance")]))
    return alt.layer(*layers).properties(width=width, height=260, title=title)


def table(results: pd.DataFrame) -> pd.DataFrame:
    """Fig. 4 as numbers: one row per (kind, model), one column per task, each cell
    ``"AUROC ± SE"`` (mean over runs ± the bar's standard error, :func:`means`)."""
    df = frame(results)
    se = df["auroc_se"] if "auroc_se" in df.columns else pd.Series(np.nan, index=df.index)
    df = df.assign(cell=[f"{a:.3f} ± {e:.3f}" if np.isfinite(e) else f"{a:.3f}" for a, e in zip(df["auroc"], se)])
    out = df.pivot(index=["kind", "model"], columns="task", values="cell")
    return out.reindex(columns=list(dict.fromkeys(df["task"])),
                       index=list(dict.fromkeys(zip(df["kind"], df["model"]))))


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


def compare(a: float, se_a: float, b: float, se_b: float, k: float = K_SE) -> str:
    """``"better"``, ``"worse"`` or ``"within noise"``: is ``a - b`` beyond ``k`` standard errors of
    the difference, ``sqrt(se_a^2 + se_b^2)`` (the two taken as independent: conservative when
    both score the same test images)? NaN errors: judged on the sign alone."""
    se = float(np.hypot(se_a, se_b))
    d = float(a) - float(b)
    if not np.isfinite(se):
        return "better" if d > 0 else "worse" if d < 0 else "within noise"
    return "better" if d > k * se else "worse" if d < -k * se else "within noise"


def _versus(uni: pd.DataFrame, other: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """Ours (unimodal bars) beside ``other``'s bars matched ``on`` (task; or task and encoder),
    with :func:`compare`'s verdict of ours against them and the difference ours − other."""
    cols = ["task", "vision_encoder", "auroc", "auroc_se"]
    m = uni[cols].merge(other[[*on, "auroc", "auroc_se"]], on=on, suffixes=("", "_other"))
    m["verdict"] = [compare(a, sa, b, sb) for a, sa, b, sb in
                    zip(m["auroc"], m["auroc_se"], m["auroc_other"], m["auroc_se_other"])]
    m["diff"] = m["auroc"] - m["auroc_other"]
    return m


def _split(results: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame]:
    """Means of the unimodal rows, of each baseline present, and of the probe rows."""
    m = means(results)
    base = {a: m[m["approach"] == a] for a in BASELINES if (m["approach"] == a).any()}
    return m[m["approach"] == "unimodal"], base, m[m["approach"] == "probe"]


def numbers(results: pd.DataFrame) -> dict[str, float | int | str]:
    """The reading's numbers, on means over runs of the unimodal rows: ``tasks``; the ``best``
    vision encoder and its ``best_auroc`` (mean over tasks); ``above`` of ``results`` (encoder,
    task) results above chance, at ``threshold`` (0.5 + 2 null sd, the largest over rows; 0.5
    without class counts); ``tasks_above``: tasks whose best encoder is above chance;
    ``se_median``: the median standard error of a bar (every approach; :func:`means`).

    Per baseline present (``clip``, ``medclip``, ``synthclip``), over the (encoder, task) results of
    the encoders *not* trained on labels: ``<b>_better`` / ``<b>_tie`` / ``<b>_worse`` of
    ``<b>_pairs`` (ours against the baseline's bar of that task, :func:`compare`), and the
    baseline's mean AUROC over tasks ``<b>_mean`` with its standard error ``<b>_mean_se``
    (:func:`semalign.stats.se_of_mean`: the tasks' test sets are independent). With probe rows,
    over every (encoder, task): ``probe_mean``, ``probe_gap`` (mean of probe − ours),
    ``probe_below`` / ``probe_above`` of ``probe_pairs`` (ours worse / better than its probe by
    the same rule). ``{}``
    without unimodal rows."""
    from semalign.stats import se_of_mean

    uni, base, probe = _split(results)
    if uni.empty:
        return {}
    per_enc = uni.groupby("vision_encoder")["auroc"].mean().sort_values(ascending=False)
    best_rows = uni.loc[uni.groupby("task")["auroc"].idxmax()]
    counts = {"n_pos", "n_neg"} <= set(uni.columns)
    out: dict[str, float | int | str] = {
        "tasks": int(uni["task"].nunique()), "best": str(per_enc.index[0]), "best_auroc": float(per_enc.iloc[0]),
        "above": int(above_chance(uni).sum()), "results": int(len(uni)),
        "threshold": float(0.5 + 2 * _chance_sds(uni).max()) if counts else 0.5,
        "tasks_above": int(above_chance(best_rows).sum())}
    ses = means(results)["auroc_se"].dropna()
    if len(ses):
        out["se_median"] = float(ses.median())
    zs = uni[~uni["vision_encoder"].isin(supervised_encoders(results))]
    for a, b in base.items():
        v = _versus(zs, b, ["task"])["verdict"]
        out.update({f"{a}_better": int((v == "better").sum()), f"{a}_tie": int((v == "within noise").sum()),
                    f"{a}_worse": int((v == "worse").sum()), f"{a}_pairs": int(len(v)),
                    f"{a}_mean": float(b["auroc"].mean()), f"{a}_mean_se": se_of_mean(b["auroc_se"])})
    if len(probe):
        m = _versus(uni, probe, ["task", "vision_encoder"])
        out.update({"probe_mean": float(m["auroc_other"].mean()), "probe_gap": float(-m["diff"].mean()),
                    "probe_below": int((m["verdict"] == "worse").sum()),
                    "probe_above": int((m["verdict"] == "better").sum()), "probe_pairs": int(len(m))})
    return out


def reading(results: pd.DataFrame, supervised_on: Mapping[str, str] | None = None) -> str:
    """One paragraph reading Fig. 4 from its numbers.

    *Above chance* is AUROC > 0.5 + 2 null standard deviations (:func:`above_chance`), not
    merely > 0.5. Ours against a baseline, or against its probe ceiling, is *better* / *worse*
    only beyond 2 standard errors of the difference (:func:`compare`), else *within noise*; a
    label-trained encoder is left out of the baseline comparison (it is not zero-shot).
    ``supervised_on``: encoders trained on labels (default: read from the frame,
    :func:`supervised_encoders`), named so that a reader does not take their bars for zero-shot
    ability.
    """
    if supervised_on is None:
        supervised_on = supervised_encoders(results)
    k = numbers(results)
    if not k:
        return "**Reading.** No unimodal results."
    uni, base, probe = _split(results)
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
    zs = uni[~uni["vision_encoder"].isin(supervised_on or {})]
    for approach, b in base.items():
        label = APPROACH_LABELS[approach]
        best = uni.groupby("task")["auroc"].max().reindex(b.set_index("task").index)
        s += (f" {label} (mean AUROC {k[f'{approach}_mean']:.3f} ± {k[f'{approach}_mean_se']:.3f} over its "
              f"{len(b)} tasks): the best unimodal encoder has the higher mean on {int((best.values > b['auroc'].values).sum())} "
              f"of {len(b)} tasks")
        m = _versus(zs, b, ["task"])
        if len(m):
            parts = [f"`{enc}` better on {int((g.verdict == 'better').sum())}, within noise on "
                     f"{int((g.verdict == 'within noise').sum())}, worse on {int((g.verdict == 'worse').sum())}"
                     for enc, g in m.groupby("vision_encoder", sort=False)]
            s += (f"; beyond 2 standard errors of the difference, ours with {'; '.join(parts)} of {len(b)} tasks")
        s += "."
    if len(probe):
        m = _versus(uni, probe, ["task", "vision_encoder"])
        s += (f" The supervised linear probe of the same embeddings (trained on each task's labelled training "
              f"images — a ceiling, not zero-shot) reaches mean AUROC {k['probe_mean']:.3f}; ours is "
              f"{k['probe_gap']:.3f} below it on average, significantly below on {k['probe_below']} and "
              f"significantly above on {k['probe_above']} of {k['probe_pairs']} (encoder, task) results"
              + (" (a probe fitted on each task's few hundred labelled images, its regularisation fixed and "
                 "not tuned, is itself noisy: it bounds what labels add only roughly)."
                 if k["probe_below"] < k["probe_pairs"] else "."))
    for enc, what in (supervised_on or {}).items():
        if enc in set(uni["vision_encoder"]):
            s += (f" **Caution:** `{enc}` was trained with labels ({what}), so its bars are not zero-shot "
                  f"in the paper's sense (RAD-DINO, the paper's medical encoder, never saw a label): read "
                  f"them as an in-domain ceiling, not as a medical encoder's zero-shot ability"
                  + (", and it is left out of the comparison with the baselines." if base else "."))
    return s
