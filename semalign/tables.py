"""Table 1 of the paper (Sec. 4.1): stitching between general and medical domains.

Reads tidy result frames only (those of :func:`semalign.stitching.stitch_grid`, possibly
concatenated over tasks); never loads a model, embeddings or a file.

How the numbers are aggregated, per modality (text; vision = every image task, e.g. RSNA
and the six VinDr findings in the paper) and per domain pair S→T ("medical" and
"medical (stand-in)" both count as Med):

- **Alignment mean**: for each task, the mean AUROC over all ordered (source, target)
  pairs with source in S, target in T, source ≠ target, and all runs, for the chosen method
  and anchor count; then the mean over the modality's tasks (each test set weighs the same;
  this equals the pooled mean when every task has the same pairs and runs, as in the grid).
- **Alignment std**: the standard deviation (ddof=0) of all those AUROCs pooled over tasks,
  pairs and runs ("across all combinations and runs", so differences between tasks count).
- **SUB / TUB**: source / target domain upper bound: for each task the mean ``upper_bound``
  AUROC of the domain's encoders, then the mean over tasks.
- **change %**: ``100 · (alignment mean − SUB) / SUB``.

A domain pair with no alignment rows (e.g. Med→Med vision with a single medical vision
model) is NaN throughout and rendered "-".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DOMAIN_PAIRS", "STATS", "MODALITIES", "PAPER_TABLE1", "table1", "style_table1"]

DOMAIN_PAIRS: tuple[str, ...] = ("Gen→Med", "Gen→Gen", "Med→Gen", "Med→Med")
MODALITIES: tuple[str, ...] = ("text", "vision")
STATS: tuple[str, ...] = ("SUB", "mean", "std", "change_pct", "TUB")

_DOMAIN_SHORT = {"general": "Gen", "medical": "Med", "medical (stand-in)": "Med"}
_MODALITY = {"text": "text", "image": "vision", "vision": "vision"}


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
    t.attrs["source"] = "paper: Di Folco et al. 2025, Table 1 (ortho, 2,500 anchors)"
    return t


PAPER_TABLE1: pd.DataFrame = _paper_table1()
"""The paper's own Table 1 (labelled ``attrs["source"]``), in :func:`table1`'s layout."""


def _modalities(results: pd.DataFrame, modalities: Mapping[str, str] | None) -> pd.Series:
    if modalities is not None:
        mapping = dict(modalities)
    elif "modality" in results.columns:
        return results["modality"].map(lambda m: _MODALITY.get(str(m).lower(), m))
    else:
        mapping = dict(results.attrs.get("modalities", {}))
    missing = sorted(set(results["task"]) - set(mapping))
    if missing:
        raise ValueError(
            f"table1 needs each task's modality; none for {missing}: pass "
            "modalities={'task': 'text' | 'vision', ...}, add a 'modality' column, or keep "
            "stitch_grid's frame.attrs['modalities'] (pd.concat keeps attrs only when equal)"
        )
    out = results["task"].map(lambda t: _MODALITY.get(str(mapping[t]).lower(), mapping[t]))
    bad = sorted(set(out) - set(MODALITIES))
    if bad:
        raise ValueError(f"modalities must be 'text' or 'image'/'vision'; got {bad}")
    return out


def table1(
    results: pd.DataFrame,
    method: str = "ortho",
    n_anchors: int | None = None,
    modalities: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Table 1 from tidy stitching results.

    ``results``: rows of :func:`semalign.stitching.stitch_grid` (any number of tasks; must
    include ``upper_bound`` rows). ``method``: the alignment shown (the paper: ``ortho``).
    ``n_anchors``: the anchor count shown; ``None`` = the largest present for ``method``
    (the paper: 2,500). ``modalities``: ``{task: "text" | "vision"}`` when the frame carries
    neither a ``modality`` column nor ``attrs["modalities"]``.

    Returns a frame indexed by domain pair (``Gen→Med, Gen→Gen, Med→Gen, Med→Med``) with
    columns ``(modality, stat)``, modality in ``("text", "vision")`` and stat in
    ``("SUB", "mean", "std", "change_pct", "TUB")``; aggregation as in the module docstring.
    """
    need = {"task", "source", "target", "source_domain", "target_domain", "method", "n_anchors", "run", "auroc"}
    lacking = need - set(results.columns)
    if lacking:
        raise ValueError(f"results lack columns {sorted(lacking)}; expected stitch_grid's tidy frame")
    df = results.copy()
    df["modality"] = _modalities(results, modalities).values
    for side in ("source", "target"):
        unknown = sorted(set(df[f"{side}_domain"]) - set(_DOMAIN_SHORT))
        if unknown:
            raise ValueError(f"{side}_domain values must be one of {sorted(_DOMAIN_SHORT)}; got {unknown}")
        df[f"{side}_dom"] = df[f"{side}_domain"].map(_DOMAIN_SHORT)

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

    def upper(modality: str, dom: str) -> float:
        rows = ub[(ub["modality"] == modality) & (ub["source_dom"] == dom)]
        return float(rows.groupby("task")["auroc"].mean().mean()) if len(rows) else np.nan

    out = _empty()
    for modality in MODALITIES:
        for pair in DOMAIN_PAIRS:
            s, t = pair.split("→")
            rows = chosen[
                (chosen["modality"] == modality) & (chosen["source_dom"] == s) & (chosen["target_dom"] == t)
            ]
            if rows.empty:
                continue
            mean = float(rows.groupby("task")["auroc"].mean().mean())
            sub = upper(modality, s)
            out.loc[pair, (modality, "SUB")] = sub
            out.loc[pair, (modality, "mean")] = mean
            out.loc[pair, (modality, "std")] = float(rows["auroc"].std(ddof=0))
            out.loc[pair, (modality, "change_pct")] = 100.0 * (mean - sub) / sub
            out.loc[pair, (modality, "TUB")] = upper(modality, t)
    out.attrs.update(method=method, n_anchors=n_anchors, source="semalign (this run)")
    return out


#: Table 1's colour rule: a change against SUB of at least this many % is a gain / loss, else grey.
CHANGE_THRESHOLD_PCT = 5.0


def change_category(pct: float) -> str:
    """Table 1's reading of a change against SUB: "gain" (▲ green, ≥ 5 %), "loss" (▼ red,
    ≤ −5 %) or "≈" (grey, under 5 % either way)."""
    if pct >= CHANGE_THRESHOLD_PCT:
        return "gain"
    return "loss" if pct <= -CHANGE_THRESHOLD_PCT else "≈"


def _change_html(change: float) -> str:
    arrow = "▲" if change >= 0 else "▼"
    colour = {"≈": "#6e7781", "gain": "#1a7f37", "loss": "#cf222e"}[change_category(change)]
    return f'<span style="color:{colour}">{arrow}{abs(change):.0f}%</span>'


def style_table1(frame: pd.DataFrame, digits: int = 2) -> Any:
    """A pandas ``Styler`` of a :func:`table1` (or :data:`PAPER_TABLE1`) frame, as in the paper.

    Columns ``(Text | Vision) × (SUB, Alignment, TUB)``; Alignment reads ``0.80 ± 0.01 ▲6%``
    with the arrow green for an increase of at least 5 % against SUB, red for a decrease of at
    least 5 %, grey under 5 % (on the unrounded change). Missing values show "-". The
    cells hold HTML spans: render with ``.to_html()`` or in a notebook.
    """
    f = f"{{:.{digits}f}}"
    cols = pd.MultiIndex.from_product(
        [[m.capitalize() for m in MODALITIES], ["SUB", "Alignment", "TUB"]]
    )
    shown = pd.DataFrame("-", index=frame.index, columns=cols)
    for modality in MODALITIES:
        label = modality.capitalize()
        for pair in frame.index:
            get = lambda stat: frame.loc[pair, (modality, stat)]  # noqa: E731
            if pd.notna(get("SUB")):
                shown.loc[pair, (label, "SUB")] = f.format(get("SUB"))
            if pd.notna(get("TUB")):
                shown.loc[pair, (label, "TUB")] = f.format(get("TUB"))
            if pd.notna(get("mean")):
                cell = f.format(get("mean"))
                if pd.notna(get("std")):
                    cell += " ± " + f.format(get("std"))
                if pd.notna(get("change_pct")):
                    cell += " " + _change_html(float(get("change_pct")))
                shown.loc[pair, (label, "Alignment")] = cell
    styler = shown.style
    caption = frame.attrs.get("source")
    if caption:
        extra = ""
        if "method" in frame.attrs:
            extra = f" — {frame.attrs['method']}, {frame.attrs['n_anchors']} anchors"
        styler = styler.set_caption(f"{caption}{extra}")
    return styler.set_table_styles([{"selector": "td", "props": "text-align: center;"}])
