"""The summary page (notebook 05, paper Sec. 4 and 5): each of the paper's claims beside what
this book computed, from the result files of notebooks 02–04.

Table 1 changes are compared in the paper's own categories
(:func:`semalign.report.table1.change_category`: a gain or loss of 5 % or more, else grey),
not by sign: −2 % (grey) and −20 % (red) disagree. Zero-shot "above chance" is
:func:`semalign.report.fig4.above_chance`.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from semalign.report import fig3, fig4, table1
from semalign.report.style import GAIN, LOSS, NEUTRAL, is_medical

__all__ = ["compute", "counts", "html", "reading"]

_HOLDS = {True: "yes", False: "no", None: "not tested"}
_PANELS = (("(a) text", "text", "ortho"), ("(b) vision", "vision", "affine"))  # (panel, modality, paper's best)


def compute(fig3_results: pd.DataFrame, ours_t1: pd.DataFrame, paper_t1: pd.DataFrame, fig4_results: pd.DataFrame,
            supervised_on: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The paper's claims, each with the paper's value and ours, computed from result frames.

    ``fig3_results``: notebook 02's frame (with its ``panel`` column); ``ours_t1`` / ``paper_t1``:
    Table 1 frames (:func:`semalign.report.table1.table`, :data:`~semalign.report.table1.PAPER_TABLE1`);
    ``fig4_results``: notebook 04's frame. ``supervised_on``: vision encoders trained on labels
    (default: read from the Fig. 4 frame); a medical-vs-general zero-shot claim resting on one is
    "not tested". Returns columns section, claim, paper, ours, holds ("yes" / "no" / "not tested").
    """
    change_category = table1.change_category
    if supervised_on is None:
        supervised_on = fig4.supervised_encoders(fig4_results)
    rows = []

    def add(section, claim, paper, ours, holds):
        rows.append({"section": section, "claim": claim, "paper": paper, "ours": ours, "holds": _HOLDS[holds]})

    for panel, what, paper_best in _PANELS:
        if not (fig3_results["panel"] == panel).any():
            continue
        k = fig3.numbers(fig3_results[fig3_results["panel"] == panel])
        add("4.1, Fig. 3", f"every transform beats naive stitching ({what})", "yes",
            f"{k['beat']} of {k['n_methods']} at {k['n_max']} anchors (naive {k['naive']:.2f})",
            k["beat"] == k["n_methods"])
        add("4.1, Fig. 3", f"best transform ({what})", paper_best,
            f"{k['best']} ({k['best_auroc']:.3f})", k["best"] == paper_best)
        add("4.1, Fig. 3", f"best transform approaches the upper bound ({what})", "almost reaches it",
            f"{k['best_auroc']:.3f} vs {k['upper_bound']:.3f}", bool(k["upper_bound"] - k["best_auroc"] < 0.05))
    o, p = table1.long_form(ours_t1), table1.long_form(paper_t1)

    def cell(frame, modality, pair, col):
        r = frame[(frame["modality"] == modality) & (frame["pair"] == pair)]
        return float(r[col].iloc[0]) if len(r) and pd.notna(r[col].iloc[0]) else None

    for modality in table1.MODALITIES:
        pc, oc = cell(p, modality, "Gen→Med", "change_pct"), cell(o, modality, "Gen→Med", "change_pct")
        if oc is not None:
            add("4.1, Table 1", f"Gen→Med alignment vs SUB ({modality})",
                f"{pc:+.0f} % ({change_category(pc)})" if pc is not None else "—",
                f"{oc:+.0f} % ({change_category(oc)})",
                None if pc is None else change_category(oc) == change_category(pc))
        gm, gg = cell(o, modality, "Gen→Med", "alignment"), cell(o, modality, "Gen→Gen", "alignment")
        pgm, pgg = cell(p, modality, "Gen→Med", "alignment"), cell(p, modality, "Gen→Gen", "alignment")
        if gm is not None and gg is not None and pgm is not None and pgg is not None:
            add("4.1, Table 1", f"Gen→Med beats Gen→Gen ({modality})", f"{pgm:.2f} vs {pgg:.2f}",
                f"{gm:.2f} vs {gg:.2f}", (gm > gg) == (pgm > pgg))
        mg, pmg = cell(o, modality, "Med→Gen", "change_pct"), cell(p, modality, "Med→Gen", "change_pct")
        if mg is not None and pmg is not None:
            add("4.1, Table 1", f"Med→Gen loses against SUB ({modality})",
                f"{pmg:+.0f} % ({change_category(pmg)})", f"{mg:+.0f} % ({change_category(mg)})",
                change_category(mg) == change_category(pmg))
    zs = fig4.means(fig4_results)
    uni = zs[zs["approach"] == "unimodal"]
    if len(uni):
        best = uni.groupby("task")["auroc"].max()
        n_above = fig4.numbers(fig4_results)["tasks_above"]
        add("4.2, Fig. 4", "unimodal zero-shot above chance (best encoder per task; > 0.5 + 2 null sd)",
            "“limited performance”", f"{n_above} of {len(best)} tasks", bool(n_above > len(best) / 2))
        clip = zs[zs["approach"] == "clip"].set_index("task")["auroc"]
        add("4.2, Fig. 4", "unimodal beats CLIP", "6 of 7 tasks",
            f"{int((best.reindex(clip.index) > clip).sum())} of {len(clip)} tasks" if len(clip) else
            "no CLIP in this profile", None if not len(clip) else bool((best.reindex(clip.index) > clip).mean() > 0.5))
        med = uni[uni["domain"].map(is_medical)]
        gen = uni[uni["domain"] == "general"]
        if len(med) and len(gen):
            g, m = gen["auroc"].mean(), med["auroc"].mean()
            sup = sorted(set(med["vision_encoder"]) & set(supervised_on or {}))
            add("4.2, Fig. 4", "general vision encoders beat medical ones (zero-shot)", "in most cases",
                f"general {g:.2f} vs medical {m:.2f}"
                + (f" — not comparable: {', '.join(sup)} was trained on these findings' labels" if sup else ""),
                None if sup else bool(g > m))
    return pd.DataFrame(rows)


def counts(summary: pd.DataFrame) -> dict[str, int]:
    """``held`` of ``tested`` claims hold; ``untested`` could not be tested with this profile."""
    tested = summary[summary["holds"] != "not tested"]
    return {"held": int((tested["holds"] == "yes").sum()), "tested": int(len(tested)),
            "untested": int(len(summary) - len(tested))}


def html(summary: pd.DataFrame, *, profile: str) -> str:
    """The claims table: the paper's value and ours side by side, the verdict coloured."""
    colour = {"yes": GAIN, "no": LOSS, "not tested": NEUTRAL}
    rows = "".join(
        f"<tr><td>{r.section}</td><td>{r.claim}</td><td class='semalign-paper'>{r.paper}</td>"
        f"<td class='semalign-ours'>{r.ours}</td><td style='color:{colour[r.holds]};font-weight:600'>{r.holds}</td></tr>"
        for r in summary.itertuples())
    return ("<table class='semalign-table'><tr><th>paper section</th><th>claim</th>"
            "<th><span class='semalign-badge paper'>paper</span></th>"
            f"<th><span class='semalign-badge ours'>ours</span> profile {profile}</th><th>holds in ours?</th></tr>"
            + rows + "</table>")


def reading(summary: pd.DataFrame, profile: str) -> str:
    """How many tested claims hold, and what agreement means for the offline profile."""
    k = counts(summary)
    return (f"**Reading.** With the `{profile}` profile, {k['held']} of {k['tested']} tested claims hold in our "
            f"numbers ({k['untested']} not testable with this profile). "
            + ("The offline profile runs the paper's experiments on stand-in data and encoders: agreement "
               "shows the pipeline reproduces the paper's effects in kind, not its numbers."
               if profile == "offline" else ""))
