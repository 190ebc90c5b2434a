"""The summary page (notebook 05, paper Sec. 4 and 5): each of the paper's claims beside what
this book computed, from the result files of notebooks 02–04.

Table 1 changes are compared in the paper's own categories
(:func:`semalign.report.table1.change_category`: a gain or loss of 5 % or more, else grey),
not by sign: −2 % (grey) and −20 % (red) disagree. Zero-shot "above chance" is
:func:`semalign.report.fig4.above_chance`.

A claim that one number beats another ("Gen→Med beats Gen→Gen") is read against the test-set
noise where our results carry standard errors: a difference under 2 SE of the difference
(:data:`semalign.report.table1.NOISE_SE`) is "within noise" — neither reproduced nor
contradicted, counted as tested but not as holding. The SE of the difference is that of two
independent means (the two rows share their test sets, so it is, if anything, too wide), as
Table 1's own reading against SUB computes it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from semalign.report import fig3, fig4, table1
from semalign.report.style import GAIN, LOSS, NEUTRAL, is_medical

__all__ = ["OFFLINE_DIFFERENCES", "beyond_list", "compute", "counts", "differences", "html", "reading"]

_HOLDS = {True: "yes", False: "no", None: "not tested", "noise": "within noise"}
_NOT_HELD = ("no", "within noise")  # tested, and not reproduced
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

    def beats(a, b, a_se, b_se, paper_beats):
        """(ours, holds) for "a beats b", judged against the noise when both SEs are known."""
        if a_se is None or b_se is None:
            return f"{a:.2f} vs {b:.2f}", (a > b) == paper_beats
        diff, se = a - b, float(np.hypot(a_se, b_se))
        noise = table1.noise_reading(diff, se)
        ours = f"{a:.2f} vs {b:.2f} (difference {diff:+.3f}, SE {se:.3f}: {noise})"
        if noise.startswith("within"):
            return ours, "noise"
        return ours, (a > b) == paper_beats

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
                *beats(gm, gg, cell(o, modality, "Gen→Med", "alignment_se"),
                       cell(o, modality, "Gen→Gen", "alignment_se"), pgm > pgg))
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
        k4 = fig4.numbers(fig4_results)
        for a in ("medclip", "synthclip"):
            if f"{a}_pairs" in k4 and k4[f"{a}_pairs"]:
                ok = k4[f"{a}_better"] + k4[f"{a}_tie"]
                add("4.2, Fig. 4", f"unimodal comparable to {fig4.APPROACH_LABELS[a]} (better or within 2 SE "
                    "of the difference, on most (encoder, task) results)", "comparable to MedCLIP",
                    f"{k4[f'{a}_better']} better, {k4[f'{a}_tie']} within noise, {k4[f'{a}_worse']} worse of "
                    f"{k4[f'{a}_pairs']}", bool(ok > k4[f"{a}_pairs"] / 2))
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
    """``held`` of ``tested`` claims hold, ``noise`` of the other tested ones are within the
    test-set noise; ``untested`` could not be tested with this profile."""
    tested = summary[summary["holds"] != "not tested"]
    return {"held": int((tested["holds"] == "yes").sum()), "tested": int(len(tested)),
            "noise": int((tested["holds"] == "within noise").sum()),
            "untested": int(len(summary) - len(tested))}


#: What the offline profile changes in the setting of each section's claims: shown beside a claim
#: that does not hold in the offline numbers (a description of the set-up, not a number).
OFFLINE_DIFFERENCES = {
    "4.1, Fig. 3": "Open-i 5-class reports and SynthCXR images instead of MIMIC-CXR and RSNA; small registry "
                   "encoders and stand-ins instead of RoBERTa / Llama-2 / ViT / DINOv2; at most the task's "
                   "anchor pool (1,000–1,200) instead of 2,500 anchors",
    "4.1, Table 1": "the medical encoders are stand-ins adapted here for minutes (contrastive fine-tuning on "
                    "≈ 2,700 Open-i report pairs; self-supervised continuation on 2,000 SynthCXR images), not "
                    "BioLORD / Meditron / RAD-DINO's domain training at scale; Open-i 5-class reports instead "
                    "of MIMIC-CXR; SynthCXR findings instead of RSNA / VinDr-CXR",
    "4.2, Fig. 4": "text space MiniLM (a unimodal text encoder) instead of CLIP's text tower; SynthCXR "
                   "image–report pairs instead of MIMIC-CXR; the multimodal baseline is a MedCLIP-like model "
                   "trained here on 2,048 synthetic pairs, not MedCLIP; no CLIP offline",
}


def differences(summary: pd.DataFrame, profile: str) -> pd.Series:
    """Per claim: what differs from the paper's setting, for a claim that does not hold with the
    offline profile (:data:`OFFLINE_DIFFERENCES`); empty otherwise."""
    return pd.Series([OFFLINE_DIFFERENCES.get(r.section, "") if profile == "offline" and r.holds in _NOT_HELD else ""
                      for r in summary.itertuples()], index=summary.index, dtype=object)


def html(summary: pd.DataFrame, *, profile: str) -> str:
    """The claims table: the paper's value and ours side by side, the verdict coloured, and for a
    claim that fails offline what differs from the paper's setting (:func:`differences`)."""
    colour = {"yes": GAIN, "no": LOSS, "within noise": NEUTRAL, "not tested": NEUTRAL}
    diff = differences(summary, profile)
    rows = "".join(
        f"<tr><td>{r.section}</td><td>{r.claim}</td><td class='semalign-paper'>{r.paper}</td>"
        f"<td class='semalign-ours'>{r.ours}</td><td style='color:{colour[r.holds]};font-weight:600'>{r.holds}</td>"
        f"<td class='semalign-differs'>{d}</td></tr>"
        for r, d in zip(summary.itertuples(), diff))
    return ("<table class='semalign-table'><tr><th>paper section</th><th>claim</th>"
            "<th><span class='semalign-badge paper'>paper</span></th>"
            f"<th><span class='semalign-badge ours'>ours</span> profile {profile}</th><th>holds in ours?</th>"
            "<th>what differs from the paper's setting (where it does not hold)</th></tr>"
            + rows + "</table>")


def reading(summary: pd.DataFrame, profile: str) -> str:
    """How many tested claims hold, and what agreement means for the offline profile."""
    k = counts(summary)
    noise = (f" Of the others, {k['noise']} {'is' if k['noise'] == 1 else 'are'} within the test-set noise: our "
             "difference is under 2 SE, neither reproduced nor contradicted." if k["noise"] else "")
    return (f"**Reading.** With the `{profile}` profile, {k['held']} of {k['tested']} tested claims hold in our "
            f"numbers ({k['untested']} not testable with this profile).{noise} "
            + ("The offline profile runs the paper's experiments on stand-in data and encoders: agreement "
               "shows the pipeline reproduces the paper's effects in kind, not its numbers."
               if profile == "offline" else ""))


def beyond_list(results: pd.DataFrame | None, profile: str | None = None) -> str:
    """The summary's "Beyond the paper" list: the findings of notebook 06 (one line per part,
    :func:`semalign.report.beyond.findings`) read from its results frame; ``None`` (it has not
    run) gives a line saying how to run it, and so do results of another ``profile`` than this
    page's (their ``profile`` column). Not claims of the paper."""
    from semalign.report.beyond import findings

    todo = "run it (`semalign run 06_beyond" + (f" --profile {profile}" if profile else "") + "`), then this page."
    if results is None:
        return "The chapter *Beyond the paper* has not run yet: " + todo
    ran = sorted(set(results["profile"].astype(str))) if "profile" in results.columns else []
    if profile is not None and ran and ran != [profile]:
        return f"The chapter *Beyond the paper* last ran with profile {', '.join(ran)}, not `{profile}`: " + todo
    lines = findings(results)
    if not lines:
        return "The chapter *Beyond the paper* wrote no results this summary can read."
    return "\n".join(f"- {line}" for line in lines)
