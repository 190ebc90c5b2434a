"""Table 1 (notebook 03, paper Sec. 4.1): stitching between general and medical domains.

:func:`compute` runs the stitching (one text task, every vision task, one method and anchor
count); everything else reads tidy result frames (those of
:func:`semalign.stitching.stitch_grid`, possibly concatenated over tasks).

How the numbers are aggregated (:func:`aggregate`), per modality (text; vision = every image
task, e.g. RSNA and the six VinDr findings in the paper) and per domain pair S→T (a medical
stand-in counts as Med, :attr:`semalign.vocab.Domain.category`):

- **Alignment mean**: for each task, the mean AUROC over all ordered (source, target)
  pairs with source in S, target in T, source ≠ target, and all runs, for the chosen method
  and anchor count; then the mean over the modality's tasks (each test set weighs the same;
  this equals the pooled mean when every task has the same pairs and runs, as in the grid).
- **Alignment std**: the standard deviation (ddof=0) of all those AUROCs pooled over tasks,
  pairs and runs ("across all combinations and runs", so differences between tasks count).
- **SUB / TUB**: source / target domain upper bound: for each task the mean ``upper_bound``
  AUROC of the domain's encoders, then the mean over tasks.
- **change %**: ``100 · (alignment mean − SUB) / SUB``, read in the paper's categories by
  :func:`change_category` (a gain or a loss of 5 % or more, else grey).
- **SE** (ours only; not the paper's ±): the standard error of each cell from its finite test
  sets. :func:`compute` gives every row the Hanley–McNeil SE of its AUROC
  (:func:`semalign.stats.macro_auroc_se_hanley` from the task's test class counts; binary: the
  positives and negatives) in ``auroc_se``, beside ``n_test``. The rows of one task (pairs,
  runs, encoders) share its test set, so their errors are taken as fully correlated: the task's
  SE is the mean of its rows' SEs (averaging them does not shrink it); the tasks are then
  combined as independent, :func:`semalign.stats.se_of_mean` (an approximation for the SynthCXR
  tasks, which draw from one shared test pool; checked on the offline tasks with each encoder's
  upper bound: a bootstrap over the pool's images gave the 7-task mean the same SE within 3 %,
  and the tasks' AUROCs correlations within ±0.13, mean ≈ 0). ``diff_se`` is the SE of alignment mean − SUB,
  ``sqrt(mean_se² + SUB_se²)`` — treating the two as independent, which overstates it (they
  share test sets), so "beyond 2 SE" is a conservative reading. The std column keeps the
  paper's meaning: the spread over combinations and runs, not an uncertainty of the mean.

A domain pair with no alignment rows (e.g. Med→Med vision with a single medical vision
model) is NaN throughout and rendered "–". :func:`html` is the one renderer of the table.
A frame without ``auroc_se`` (the paper's table, hand-made results) has NaN SEs, shown nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np
import pandas as pd

from semalign.report.style import GAIN, LOSS, NEUTRAL, domain_of
from semalign.stats import macro_auroc_se_hanley, se_of_mean
from semalign.vocab import Domain, Modality
from semalign.stitching import BASELINES as _BASELINES

__all__ = ["DOMAIN_PAIRS", "MODALITIES", "STATS", "LONG_COLUMNS", "PAPER_TABLE1", "CHANGE_THRESHOLD_PCT",
           "NOISE_SE", "change_category", "noise_reading", "compute", "with_test_se", "aggregate", "table",
           "long_form", "html", "paper_strings", "numbers", "reading", "describe_anchor_counts"]

DOMAIN_PAIRS: tuple[str, ...] = ("Gen→Med", "Gen→Gen", "Med→Gen", "Med→Med")
MODALITIES: tuple[str, ...] = ("text", "vision")
STATS: tuple[str, ...] = ("SUB", "mean", "std", "change_pct", "TUB", "SUB_se", "mean_se", "TUB_se", "diff_se")
#: A change against SUB is "beyond the test-set noise" when it is at least this many SE of the difference.
NOISE_SE = 2.0


def _empty() -> pd.DataFrame:
    cols = pd.MultiIndex.from_product([MODALITIES, STATS], names=["modality", "stat"])
    return pd.DataFrame(np.nan, index=pd.Index(DOMAIN_PAIRS, name="domains"), columns=cols)


def _paper_table1() -> pd.DataFrame:
    # Copied from the paper's Table 1 (Di Folco et al. 2025): the paper's numbers, not ours.
    # change_pct is the printed, rounded ▲/▼ value; TUB is printed for Gen→Med only.
    t = _empty()
    rows = {
        ("Gen→Med", "text"): (0.75, 0.80, 0.01, 6, 0.83),
        ("Gen→Gen", "text"): (0.75, 0.73, 0.04, -3, np.nan),
        ("Med→Gen", "text"): (0.83, 0.75, 0.05, -10, np.nan),
        ("Med→Med", "text"): (0.83, 0.82, 0.01, -1, np.nan),
        ("Gen→Med", "vision"): (0.71, 0.69, 0.08, -2, 0.81),
        ("Gen→Gen", "vision"): (0.71, 0.66, 0.09, -7, np.nan),
        ("Med→Gen", "vision"): (0.81, 0.70, 0.08, -14, np.nan),
        # Med→Med vision: "-" in the paper (one medical vision model)
    }
    for (pair, modality), values in rows.items():
        for stat, v in zip(STATS, values):
            t.loc[pair, (modality, stat)] = v
    t.attrs["source"] = "paper: Di Folco et al. 2025, Table 1 (ortho, 2,500 anchors; no standard errors)"
    return t


PAPER_TABLE1: pd.DataFrame = _paper_table1()
"""The paper's own Table 1 (labelled ``attrs["source"]``), in :func:`aggregate`'s layout."""

#: Table 1's colour rule: a change against SUB of at least this many % is a gain / loss, else grey.
CHANGE_THRESHOLD_PCT = 5.0


def change_category(pct: float) -> str:
    """Table 1's reading of a change against SUB: "gain" (▲ green, ≥ 5 %), "loss" (▼ red,
    ≤ −5 %) or "≈" (grey, under 5 % either way)."""
    if pct >= CHANGE_THRESHOLD_PCT:
        return "gain"
    return "loss" if pct <= -CHANGE_THRESHOLD_PCT else "≈"


_CHANGE_WORDS = {"gain": "a gain", "loss": "a loss", "≈": "within 5 %"}
_CHANGE_COLOURS = {"gain": GAIN, "loss": LOSS, "≈": NEUTRAL}


# --------------------------------------------------------------------------- the experiment
def compute(
    text_task: str,
    text_encoders: Sequence[str],
    vision_tasks: Sequence[str],
    vision_encoders: Sequence[str],
    *,
    method: str = "ortho",
    n_anchors: int = 2500,
    runs: int = 3,
    seed: int = 0,
    device: str = "auto",
    batch_size: int | None = None,
    anchor_pool: int | None = None,
    task_params: Mapping[str, Mapping] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Stitching results for Table 1: one text task, all vision tasks, one method and N.

    ``n_anchors`` is capped at each task's anchor pool. Returns the tidy frame of
    :func:`semalign.stitching.stitch_grid` with columns ``modality``, ``n_test`` (the task's test
    samples) and ``auroc_se`` (:func:`with_test_se`), and ``{"domains",
    "n_anchors": {"text": [n, ...], "vision": [n, ...]}, "standins", "encoded"}`` (the counts
    used per modality, one per distinct task pool; the stand-in encoders, sorted; ``{task name:
    EncodedTask}``).
    """
    from semalign.encoders.tasks import encode_task
    from semalign.stitching import stitch_grid

    frames, domains, encoded = [], {}, {}
    used: dict[str, list[int]] = {"text": [], "vision": []}
    for modality, tasks, encs in (("text", [text_task], text_encoders), ("vision", vision_tasks, vision_encoders)):
        for name in tasks:
            t = encode_task(name, encs, device=device, batch_size=batch_size, anchor_pool=anchor_pool, seed=seed,
                            task_params=task_params)
            n = min(n_anchors, t.pool_size)
            used[modality].append(int(n))
            res = stitch_grid(t, ["naive", method, "upper_bound"], [n], runs=runs, seed=seed, progress=False)
            frames.append(with_test_se(res, t.y_test, t.classes).assign(modality=modality))
            domains.update(t.domains)
            encoded[name] = t
    standins = sorted(n for n, d in domains.items() if (dom := domain_of(d)) is not None and dom.is_standin)
    return pd.concat(frames, ignore_index=True), {"domains": domains, "n_anchors": {m: sorted(set(v)) for m, v in used.items()},
                                                   "standins": standins, "encoded": encoded}


def with_test_se(results: pd.DataFrame, y_test: Sequence, classes: Sequence) -> pd.DataFrame:
    """``results`` of one task with ``n_test`` and ``auroc_se``: each row's Hanley–McNeil
    standard error from the task's test labels ``y_test`` (classes in ``classes`` order; binary:
    ``classes[1]`` is the positive class, as :func:`semalign.stitching.auroc` scores it;
    multi-class: the one-vs-rest macro, classes taken as independent)."""
    y = np.asarray(y_test)
    counts = [int((y == c).sum()) for c in classes]
    counts = counts if len(counts) == 2 else [c for c in counts if 0 < c < len(y)]  # the classes auroc scores
    se = [macro_auroc_se_hanley(a, counts) if np.isfinite(a) else np.nan for a in results["auroc"]]
    return results.assign(n_test=len(y), auroc_se=np.asarray(se, dtype=np.float64))


def describe_anchor_counts(n_anchors: Mapping[str, Sequence[int]]) -> str:
    """``{"text": [1000], "vision": [280]}`` -> "text 1000, vision 280" (modalities without tasks left out)."""
    return ", ".join(f"{m} {' / '.join(map(str, v))}" for m, v in n_anchors.items() if v)


# --------------------------------------------------------------------------- the table
def _modalities(results: pd.DataFrame, modalities: Mapping[str, str] | None) -> pd.Series:
    """Each row's Table 1 modality ("text" | "vision"), from ``modalities``, a ``modality``
    column or ``attrs["modalities"]``, in that order."""
    def label(m: Any) -> str:
        return Modality.parse(m).label

    if modalities is None and "modality" in results.columns:
        return results["modality"].map(label)
    mapping = dict(modalities) if modalities is not None else dict(results.attrs.get("modalities", {}))
    missing = sorted(set(results["task"]) - set(mapping))
    if missing:
        raise ValueError(
            f"table1 needs each task's modality; none for {missing}: pass "
            "modalities={'task': 'text' | 'vision', ...}, add a 'modality' column, or keep "
            "stitch_grid's frame.attrs['modalities'] (pd.concat keeps attrs only when equal)"
        )
    return results["task"].map(lambda t: label(mapping[t]))


def _category(domains: pd.Series, side: str) -> pd.Series:
    try:
        return domains.map(lambda d: Domain.parse(d).category)
    except ValueError as e:
        raise ValueError(f"{side}_domain: {e}") from None


def aggregate(
    results: pd.DataFrame,
    method: str = "ortho",
    n_anchors: int | None = None,
    modalities: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Table 1 from tidy stitching results, every modality at one anchor count.

    ``results``: rows of :func:`semalign.stitching.stitch_grid` (any number of tasks; must
    include ``upper_bound`` rows). ``method``: the alignment shown (the paper: ``ortho``).
    ``n_anchors``: the anchor count shown; ``None`` = the largest present for ``method``
    (the paper: 2,500). ``modalities``: ``{task: "text" | "vision"}`` when the frame carries
    neither a ``modality`` column nor ``attrs["modalities"]``.

    Returns a frame indexed by domain pair (``Gen→Med, Gen→Gen, Med→Gen, Med→Med``) with
    columns ``(modality, stat)``, modality in ``("text", "vision")`` and stat in :data:`STATS`
    (``SUB, mean, std, change_pct, TUB`` and the standard errors ``SUB_se, mean_se, TUB_se,
    diff_se``, NaN when ``results`` has no ``auroc_se``); aggregation as in the module docstring.
    """
    need = {"task", "source", "target", "source_domain", "target_domain", "method", "n_anchors", "run", "auroc"}
    lacking = need - set(results.columns)
    if lacking:
        raise ValueError(f"results lack columns {sorted(lacking)}; expected stitch_grid's tidy frame")
    df = results.copy()
    df["modality"] = _modalities(results, modalities).values
    for side in ("source", "target"):
        df[f"{side}_dom"] = _category(df[f"{side}_domain"], side)

    chosen = df[df["method"] == method]
    if chosen.empty:
        raise ValueError(f"no rows with method={method!r}; methods present: {sorted(df['method'].unique())}")
    if n_anchors is None:
        n_anchors = int(chosen["n_anchors"].max())
    chosen = chosen[(chosen["n_anchors"] == n_anchors) & (chosen["source"] != chosen["target"])]
    if chosen.empty:
        raise ValueError(f"no {method!r} rows with n_anchors={n_anchors}")
    ub = df[df["method"] == "upper_bound"]
    if ub.empty:
        raise ValueError("results hold no 'upper_bound' rows: run stitch_grid with baselines=True")

    has_se = "auroc_se" in df.columns

    def se(rows: pd.DataFrame) -> float:
        # a task's rows share its test set (errors fully correlated: their mean SE); tasks independent
        return se_of_mean(rows.groupby("task")["auroc_se"].mean()) if has_se and len(rows) else np.nan

    def upper(modality: str, dom: str) -> tuple[float, float]:
        rows = ub[(ub["modality"] == modality) & (ub["source_dom"] == dom)]
        return (float(rows.groupby("task")["auroc"].mean().mean()), se(rows)) if len(rows) else (np.nan, np.nan)

    out = _empty()
    for modality in MODALITIES:
        for pair in DOMAIN_PAIRS:
            s, t = pair.split("→")
            rows = chosen[
                (chosen["modality"] == modality) & (chosen["source_dom"] == s) & (chosen["target_dom"] == t)
            ]
            if rows.empty:
                continue
            mean, mean_se = float(rows.groupby("task")["auroc"].mean().mean()), se(rows)
            (sub, sub_se), (tub, tub_se) = upper(modality, s), upper(modality, t)
            out.loc[pair, (modality, "SUB")] = sub
            out.loc[pair, (modality, "mean")] = mean
            out.loc[pair, (modality, "std")] = float(rows["auroc"].std(ddof=0))
            out.loc[pair, (modality, "change_pct")] = 100.0 * (mean - sub) / sub
            out.loc[pair, (modality, "TUB")] = tub
            out.loc[pair, (modality, "SUB_se")] = sub_se
            out.loc[pair, (modality, "mean_se")] = mean_se
            out.loc[pair, (modality, "TUB_se")] = tub_se
            out.loc[pair, (modality, "diff_se")] = float(np.hypot(mean_se, sub_se))
    out.attrs.update(method=method, n_anchors=n_anchors, source="semalign (this run)")
    return out


def table(results: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """Our Table 1: :func:`aggregate` per modality, side by side, in :data:`PAPER_TABLE1`'s layout.

    Each modality is read at its own largest anchor count for ``method`` (the offline
    vision tasks have smaller anchor pools than the text task), so neither column is empty.
    ``method=None``: the one transform the results hold besides naive and the upper bound.
    """
    if method is None:
        aligned = list(dict.fromkeys(results.loc[~results["method"].isin(_BASELINES), "method"]))
        if len(aligned) != 1:
            raise ValueError(f"the results hold the transforms {aligned}: say which one Table 1 shows (method=...)")
        method = aligned[0]
    parts = []
    for modality, sub in results.groupby("modality", sort=False):
        t = aggregate(sub, method=method)
        parts.append(t.loc[:, [c for c in t.columns if c[0] == modality]])
    return pd.concat(parts, axis=1)


LONG_COLUMNS: tuple[str, ...] = ("modality", "pair", "SUB", "alignment", "alignment_std", "TUB", "change_pct",
                                  "SUB_se", "alignment_se", "TUB_se", "diff_se")


def long_form(frame: pd.DataFrame) -> pd.DataFrame:
    """A Table 1 frame (:func:`table`, :func:`aggregate` or :data:`PAPER_TABLE1`) as one row per
    (modality, pair): columns :data:`LONG_COLUMNS` — modality, pair, SUB, alignment,
    alignment_std (the paper's ±), TUB, change_pct, then the standard errors SUB_se,
    alignment_se, TUB_se and diff_se (of alignment − SUB)."""
    if not isinstance(frame.columns, pd.MultiIndex):
        raise ValueError("long_form: expected a Table 1 frame with (modality, stat) columns, "
                         f"as table() and PAPER_TABLE1 give; got columns {list(frame.columns)}")
    rows = []
    for pair in frame.index:
        for m in frame.columns.get_level_values(0).unique():
            r = frame.loc[pair, m]
            rows.append({"modality": m, "pair": pair, "SUB": r.get("SUB"), "alignment": r.get("mean"),
                         "alignment_std": r.get("std"), "TUB": r.get("TUB"), "change_pct": r.get("change_pct"),
                         "SUB_se": r.get("SUB_se"), "alignment_se": r.get("mean_se"), "TUB_se": r.get("TUB_se"),
                         "diff_se": r.get("diff_se")})
    return pd.DataFrame(rows, columns=list(LONG_COLUMNS)).astype({c: "float64" for c in LONG_COLUMNS[2:]})


# --------------------------------------------------------------------------- rendering
def _num(v, fmt="{:.2f}") -> str:
    return "–" if v is None or pd.isna(v) else fmt.format(v)


def _change(pct) -> str:
    if pct is None or pd.isna(pct):
        return ""
    colour = _CHANGE_COLOURS[change_category(pct)]
    arrow = "▲" if pct >= 0 else "▼"
    return f' <span style="color:{colour};font-weight:600">{arrow}&nbsp;{abs(pct):.0f}%</span>'


def _se(se) -> str:
    """A cell's standard error on its own line (nothing when there is none: the paper's table)."""
    if se is None or pd.isna(se):
        return ""
    return f' <span class="semalign-se" style="display:block;font-size:80%;color:#555">SE&nbsp;{se:.3f}</span>'


def _rows(frame: pd.DataFrame) -> list[dict]:
    """Rows of the rendered Table 1: pair, and per modality (SUB, alignment, TUB) strings."""
    df = long_form(frame)
    out = []
    for pair in DOMAIN_PAIRS:
        row = {"pair": pair}
        for m in MODALITIES:
            r = df[(df["modality"] == m) & (df["pair"] == pair)]
            if r.empty or pd.isna(r["alignment"].iloc[0]):
                row[m] = ("", "–", "") if pair != "Gen→Med" else ("–", "–", "–")
                continue
            r = r.iloc[0]
            ali = _num(r["alignment"]) + ("" if pd.isna(r["alignment_std"]) else f" ± {r['alignment_std']:.2f}")
            show_tub = pair == "Gen→Med"  # the paper prints TUB on the first row only
            row[m] = (_num(r["SUB"]) + _se(r["SUB_se"]), ali + _change(r["change_pct"]) + _se(r["alignment_se"]),
                      _num(r["TUB"]) + _se(r["TUB_se"]) if show_tub else "")
        out.append(row)
    return out


_SE_NOTE = ("± is the standard deviation over encoder pairs, runs and tasks (the paper's ±); SE is the "
            "standard error of the mean from the finite test sets (Hanley–McNeil), a different quantity: "
            "a change against SUB is beyond the test-set noise when it is at least 2 SE of the difference.")


def _one(frame: pd.DataFrame, caption: str, css: str) -> str:
    head = ("<tr><th></th><th colspan=3>Text</th><th colspan=3>Vision</th></tr>"
            "<tr><th></th>" + "<th>SUB</th><th>Alignment</th><th>TUB</th>" * 2 + "</tr>")
    body = []
    for i, row in enumerate(_rows(frame)):
        if i == 1:
            body.append("<tr><td colspan=7><i>Ablation study:</i></td></tr>")
        label = row["pair"].replace("→", " → ")
        cells = "".join(f"<td>{c}</td>" for m in MODALITIES for c in row[m])
        body.append(f"<tr><th style='text-align:left'>{label}</th>{cells}</tr>")
    has_se = bool(long_form(frame)[["SUB_se", "alignment_se", "TUB_se"]].notna().to_numpy().any())
    foot = (f"<tfoot><tr><td colspan=7 style='font-size:80%;text-align:left'>{_SE_NOTE}</td></tr></tfoot>"
            if has_se else "")
    return (f"<div class='{css}' style='flex:1;min-width:24em'><table class='semalign-table'>"
            f"<caption style='caption-side:top;font-weight:600'>{caption}</caption>{head}{''.join(body)}{foot}</table></div>")


def html(ours: pd.DataFrame, paper: pd.DataFrame = PAPER_TABLE1, *, ours_label: str = "ours",
         paper_label: str = "paper (Di Folco et al. 2025, Table 1)") -> str:
    """Our Table 1 beside the paper's, as HTML: two labelled tables, Alignment as
    ``0.80 ± 0.01 ▲ 6%`` with the arrow coloured as in the paper (green gain, red loss, grey
    when the change against SUB is under 5 %, :func:`change_category`); missing cells "–".
    Where a frame has standard errors (ours), each cell adds ``SE 0.013`` on its own line and a
    footnote says what ± and SE are (the paper's table has none)."""
    return ("<div style='display:flex;gap:1.5em;flex-wrap:wrap'>"
            + _one(paper, f"<span class='semalign-badge paper'>paper</span> {paper_label}", "semalign-paper")
            + _one(ours, f"<span class='semalign-badge ours'>ours</span> {ours_label}", "semalign-ours")
            + "</div>")


def paper_strings(paper: pd.DataFrame = PAPER_TABLE1) -> list[str]:
    """The numbers of a Table 1 as :func:`html` renders them (the browser test looks for each)."""
    out = []
    for row in _rows(paper):
        for m in MODALITIES:
            for cell in row[m]:
                s = cell.split(" <span")[0]
                if s and s not in ("–",):
                    out.append(s)
    return sorted(set(out))


# --------------------------------------------------------------------------- reading
def _key(pair: str) -> str:
    return pair.replace("→", "_").lower()  # "Gen→Med" -> "gen_med"


def noise_reading(diff: float, diff_se: float) -> str:
    """Whether a change ``diff`` (alignment − SUB) is beyond the test-set noise: "beyond 2 SE"
    when ``|diff| >= NOISE_SE · diff_se``, else "within 2 SE"; "–" without a standard error."""
    if not (np.isfinite(diff) and np.isfinite(diff_se) and diff_se > 0):
        return "–"
    return f"{'beyond' if abs(diff) >= NOISE_SE * diff_se else 'within'} {NOISE_SE:g} SE"


def numbers(frame: pd.DataFrame) -> dict[str, float | str]:
    """Every cell of a Table 1 frame, keyed ``<modality>_<pair>`` (e.g. ``text_gen_med``: the
    alignment mean) with ``_sub``, ``_tub``, ``_change_pct`` and ``_verdict`` ("a gain", "a loss",
    "within 5 %") beside it, and the standard errors ``_se`` (of the alignment mean), ``_sub_se``,
    ``_tub_se``, ``_diff`` (alignment − SUB), ``_diff_se``, ``_diff_z`` (``_diff / _diff_se``) and
    ``_noise`` (:func:`noise_reading`: "beyond 2 SE", "within 2 SE"); NaN (verdict and noise
    "–") where the table has no value, so every key exists."""
    out: dict[str, float | str] = {}
    for r in long_form(frame).itertuples():
        k = f"{r.modality}_{_key(r.pair)}"
        diff = float(r.alignment - r.SUB) if pd.notna(r.alignment) and pd.notna(r.SUB) else float("nan")
        z = diff / r.diff_se if pd.notna(r.diff_se) and r.diff_se > 0 else float("nan")
        for suffix, v in (("", r.alignment), ("_sub", r.SUB), ("_tub", r.TUB), ("_change_pct", r.change_pct),
                          ("_se", r.alignment_se), ("_sub_se", r.SUB_se), ("_tub_se", r.TUB_se), ("_diff", diff),
                          ("_diff_se", r.diff_se), ("_diff_z", z)):
            out[k + suffix] = float(v) if pd.notna(v) else float("nan")
        out[f"{k}_verdict"] = _CHANGE_WORDS[change_category(float(r.change_pct))] if pd.notna(r.change_pct) else "–"
        out[f"{k}_noise"] = noise_reading(diff, float(r.diff_se) if pd.notna(r.diff_se) else float("nan"))
    return out


def reading(ours: pd.DataFrame, paper: pd.DataFrame = PAPER_TABLE1, *, standins: Sequence[str] = ()) -> str:
    """One paragraph comparing our Gen→Med row with the paper's, in :func:`change_category`'s terms,
    and saying whether each of our changes against SUB is beyond 2 SE of the difference (the
    test-set noise; :func:`noise_reading`)."""
    o, p = long_form(ours), long_form(paper)
    parts, with_se = [], False
    for modality in MODALITIES:
        oo = o[(o["modality"] == modality) & (o["pair"] == "Gen→Med")]
        pp = p[(p["modality"] == modality) & (p["pair"] == "Gen→Med")]
        if oo.empty:
            continue
        oc = float(oo["change_pct"].iloc[0])
        if pd.isna(oc):
            continue
        s = f"{modality}: ours {oc:+.0f} % against SUB ({_CHANGE_WORDS[change_category(oc)]})"
        if not pp.empty and pd.notna(pp["change_pct"].iloc[0]):
            pc = float(pp["change_pct"].iloc[0])
            agree = "agrees with" if change_category(oc) == change_category(pc) else "differs from"
            s += f", which {agree} the paper's {pc:+.0f} % ({_CHANGE_WORDS[change_category(pc)]})"
        r = oo.iloc[0]
        diff, dse = float(r["alignment"] - r["SUB"]), float(r["diff_se"])
        noise = noise_reading(diff, dse)
        if noise != "–":
            s += f", a difference of {diff:+.3f} AUROC = {diff / dse:+.1f} SE of the difference (SE {dse:.3f}): {noise}"
            with_se = True
        parts.append(s)
    text = "**Reading (Gen→Med).** " + "; ".join(parts) + "."
    if with_se:
        text += (" A change is beyond the test-set noise when it is at least 2 SE of the difference (the SE "
                 "comes from the finite test sets; the table's ± is the paper's std over pairs, runs and tasks).")
    if standins:
        text += (f" Our *medical* encoders are stand-ins fitted here ({', '.join(standins)}): the table tests "
                 f"whether stitching into a stronger in-domain encoder helps, not the paper's medical models.")
    return text
