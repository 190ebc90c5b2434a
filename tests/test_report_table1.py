"""Table 1 (semalign.report.table1) on result frames built by hand, where the table is known."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from semalign.stitching import COLUMNS
from semalign.report import table1 as t1
from semalign.report.table1 import DOMAIN_PAIRS, PAPER_TABLE1
from semalign.report.table1 import aggregate as table1

UB_TEXT = {"g1": 0.70, "g2": 0.80, "m1": 0.85, "m2": 0.81}  # Gen 0.75, Med 0.83
DOM = {"g1": "general", "g2": "general", "m1": "medical", "m2": "medical (stand-in)", "v1": "general", "v2": "general", "w1": "medical"}


def rows_for(task, encoders, ub, value_of, runs=(0, 1, 2), n=100):
    rows = []
    for e in encoders:
        rows.append((task, e, e, DOM[e], DOM[e], "upper_bound", 0, 0, ub[e]))
    for s, t in itertools.permutations(encoders, 2):
        rows.append((task, s, t, DOM[s], DOM[t], "naive", 0, 0, 0.5))
        for r in runs:
            rows.append((task, s, t, DOM[s], DOM[t], "ortho", n, r, value_of(s, t, r)))
            rows.append((task, s, t, DOM[s], DOM[t], "ortho", 10, r, 0.0))  # fewer anchors: ignored
            rows.append((task, s, t, DOM[s], DOM[t], "linear", n, r, 1.0))  # other method: ignored
    return rows


def dom(e):
    return "Gen" if DOM[e] == "general" else "Med"


# text: alignment AUROC depends on the domain pair and the run: base + 0.01 * (r - 1)
BASE = {("Gen", "Med"): 0.80, ("Gen", "Gen"): 0.72, ("Med", "Gen"): 0.75, ("Med", "Med"): 0.82}


@pytest.fixture
def results():
    text = rows_for("report", ["g1", "g2", "m1", "m2"], UB_TEXT, lambda s, t, r: BASE[dom(s), dom(t)] + 0.01 * (r - 1))
    # vision: two tasks, two general encoders and ONE medical one (no Med→Med pair)
    ub_a = {"v1": 0.70, "v2": 0.72, "w1": 0.80}
    ub_b = {"v1": 0.60, "v2": 0.64, "w1": 0.90}
    va = rows_for("rsna", ["v1", "v2", "w1"], ub_a, lambda s, t, r: 0.70)
    vb = rows_for("vindr-x", ["v1", "v2", "w1"], ub_b, lambda s, t, r: 0.60 if dom(t) == "Med" else 0.50)
    frame = pd.DataFrame(text + va + vb, columns=list(COLUMNS))
    frame.attrs["modalities"] = {"report": "text", "rsna": "image", "vindr-x": "image"}
    return frame


def test_table1_text_by_hand(results):
    t = table1(results)
    assert list(t.index) == list(DOMAIN_PAIRS)
    assert t.attrs["n_anchors"] == 100 and t.attrs["method"] == "ortho"
    text = t["text"]
    assert text.loc["Gen→Med", "SUB"] == pytest.approx(0.75)
    assert text.loc["Gen→Med", "TUB"] == pytest.approx(0.83)
    assert text.loc["Med→Gen", "SUB"] == pytest.approx(0.83)
    for (s, tt), base in BASE.items():
        pair = f"{s}→{tt}"
        assert text.loc[pair, "mean"] == pytest.approx(base)
        # values base - 0.01, base, base + 0.01 equally often: population std = 0.01 * sqrt(2/3)
        assert text.loc[pair, "std"] == pytest.approx(0.01 * np.sqrt(2 / 3))
    assert text.loc["Gen→Med", "change_pct"] == pytest.approx(100 * (0.80 - 0.75) / 0.75)
    assert text.loc["Med→Gen", "change_pct"] == pytest.approx(100 * (0.75 - 0.83) / 0.83)


def test_table1_vision_averages_tasks(results):
    v = table1(results)["vision"]
    # SUB Gen: rsna mean(0.70, 0.72) = 0.71, vindr mean(0.60, 0.64) = 0.62 -> 0.665
    assert v.loc["Gen→Med", "SUB"] == pytest.approx(0.665)
    # TUB Med: rsna 0.80, vindr 0.90 -> 0.85
    assert v.loc["Gen→Med", "TUB"] == pytest.approx(0.85)
    # Gen→Med: rsna all 0.70, vindr all 0.60 -> mean of task means 0.65; pooled std 0.05
    assert v.loc["Gen→Med", "mean"] == pytest.approx(0.65)
    assert v.loc["Gen→Med", "std"] == pytest.approx(0.05)
    # Gen→Gen: rsna 0.70, vindr 0.50 -> 0.60
    assert v.loc["Gen→Gen", "mean"] == pytest.approx(0.60)
    assert v.loc["Gen→Gen", "change_pct"] == pytest.approx(100 * (0.60 - 0.665) / 0.665)
    # Med→Med vision: one medical model, no pair -> NaN throughout
    assert v.loc["Med→Med"].isna().all()


def test_table1_n_anchors_and_method_choice(results):
    t = table1(results, n_anchors=10)
    assert t.loc["Gen→Med", ("text", "mean")] == 0.0
    t = table1(results, method="linear")
    assert t.loc["Gen→Gen", ("vision", "mean")] == 1.0


def test_table1_modality_sources(results):
    plain = pd.DataFrame(results)
    plain.attrs = {}
    with pytest.raises(ValueError, match="needs each task's modality"):
        table1(plain)
    mods = {"report": "text", "rsna": "vision", "vindr-x": "vision"}
    a = table1(plain, modalities=mods)
    b = table1(plain.assign(modality=plain["task"].map(mods)))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, table1(results))


def test_table1_errors(results):
    with pytest.raises(ValueError, match="no rows with method='affine'"):
        table1(results, method="affine")
    with pytest.raises(ValueError, match="upper_bound"):
        table1(results[results.method != "upper_bound"])
    with pytest.raises(ValueError, match="lack columns"):
        table1(results.drop(columns=["run"]))


def test_paper_table1_is_the_papers():
    p = PAPER_TABLE1
    assert "paper" in p.attrs["source"]
    assert p.loc["Gen→Med", ("text", "mean")] == 0.80 and p.loc["Gen→Med", ("text", "std")] == 0.01
    assert p.loc["Gen→Med", ("text", "change_pct")] == 6
    assert p.loc["Med→Gen", ("vision", "change_pct")] == -14
    assert p.loc["Gen→Gen", ("vision", "SUB")] == 0.71
    assert p.loc["Med→Med", "vision"].isna().all()
    assert list(p.columns) == list(table1_columns())


def table1_columns():
    return PAPER_TABLE1.columns


def test_html_renders_our_table_beside_the_papers_in_one_colour_scheme(results):
    html = t1.html(table1(results), PAPER_TABLE1, ours_label="ours (offline)")
    assert html.index("paper") < html.index("ours (offline)"), "paper and ours are both labelled"
    assert "0.80 ± 0.01" in html  # Gen→Med text: 0.80, std 0.0082 rounds to 0.01
    assert "▲&nbsp;7%" in html and "#1a9641" in html  # +6.7 %: green
    assert "▼&nbsp;10%" in html and "#d7191c" in html  # Med→Gen text −9.6 %: red
    assert "▼&nbsp;1%" in html and "#888888" in html  # Med→Med text −1.2 %: grey
    rows = {r["pair"]: r for r in t1._rows(table1(results))}
    assert rows["Med→Med"]["vision"][1] == "–", "a pair without alignment rows shows a dash"
    assert rows["Gen→Med"]["text"][2] == "0.83" and rows["Gen→Gen"]["text"][2] == "", "TUB on the first row only"
    assert {"0.80 ± 0.01", "0.75", "0.83"} <= set(t1.paper_strings(PAPER_TABLE1))
    assert "▲&nbsp;6%" in t1.html(PAPER_TABLE1, PAPER_TABLE1) and "▼&nbsp;14%" in t1.html(PAPER_TABLE1, PAPER_TABLE1)


@pytest.mark.parametrize("pct, category", [(5.0, "gain"), (4.99, "≈"), (-4.99, "≈"), (-5.0, "loss"), (0.0, "≈")])
def test_the_five_percent_rule(pct, category):
    assert t1.change_category(pct) == category


def test_table_reads_each_modality_at_its_own_largest_anchor_count(results):
    r = results.assign(modality=results["task"].map({"report": "text", "rsna": "vision", "vindr-x": "vision"}))
    r = r[~((r["modality"] == "vision") & (r["n_anchors"] == 100))]  # vision: only 10 anchors left
    t = t1.table(r, method="ortho")
    assert t.loc["Gen→Med", ("text", "mean")] == pytest.approx(0.80), "text at its 100 anchors"
    assert t.loc["Gen→Med", ("vision", "mean")] == 0.0, "vision at its own largest count, 10"
    with pytest.raises(ValueError, match="say which one"):
        t1.table(r)  # ortho and linear rows: which one?
    pd.testing.assert_frame_equal(t1.table(r[r.method != "linear"]), t)


def test_long_form_and_numbers(results):
    long = t1.long_form(PAPER_TABLE1)
    row = long[(long.modality == "text") & (long.pair == "Gen→Med")].iloc[0]
    assert (row.SUB, row.alignment, row.alignment_std, row.TUB, row.change_pct) == (0.75, 0.80, 0.01, 0.83, 6)
    with pytest.raises(ValueError, match="modality, stat"):
        t1.long_form(long)
    k = t1.numbers(table1(results))
    assert k["text_gen_med"] == pytest.approx(0.80) and k["text_gen_med_sub"] == pytest.approx(0.75)
    assert k["text_gen_med_verdict"] == "a gain" and k["text_med_gen_verdict"] == "a loss"
    assert np.isnan(k["vision_med_med"]) and k["vision_med_med_verdict"] == "–", "every key exists"
    assert all(isinstance(v, (float, str)) and type(v) in (float, str) for v in k.values()), "plain types (glue)"


def t1_with(modality: str, pair: str, change: float) -> pd.DataFrame:
    """The paper's Table 1 with one alignment cell moved to a given % change against SUB."""
    t = PAPER_TABLE1.copy()
    sub = t.loc[pair, (modality, "SUB")]
    t.loc[pair, (modality, "mean")] = sub * (1 + change / 100)
    t.loc[pair, (modality, "change_pct")] = change
    return t


def test_reading_uses_the_papers_categories():
    text = t1.reading(t1_with("vision", "Gen→Med", -16.0), PAPER_TABLE1)
    assert "vision: ours -16 % against SUB (a loss), which differs from the paper's -2 % (within 5 %)" in text
    same = t1.reading(PAPER_TABLE1, PAPER_TABLE1, standins=["s"])
    assert "text: ours +6 % against SUB (a gain), which agrees with the paper's +6 % (a gain)" in same
    assert "stand-ins fitted here (s)" in same


def test_anchor_counts_are_described_per_modality():
    assert t1.describe_anchor_counts({"text": [1000], "vision": [280]}) == "text 1000, vision 280"
    assert t1.describe_anchor_counts({"text": [1000], "vision": []}) == "text 1000"


def test_domains_come_from_the_vocabulary(results):
    with pytest.raises(ValueError, match="source_domain: unknown domain"):
        table1(results.assign(source_domain="clinical"))
    with pytest.raises(ValueError, match="unknown modality"):
        table1(results, modalities={"report": "audio", "rsna": "image", "vindr-x": "image"})


# --------------------------------------------------------------------------- standard errors (issue 11)
from semalign.stats import auroc_se_hanley, macro_auroc_se_hanley, se_of_mean  # noqa: E402

TEXT_CLASSES = ["a", "b", "c", "d", "e"]


def with_se(results, scale=1):
    """The fixture's results with each task's test-set SE, as table1.compute adds it: text 5
    classes x 20 test reports, rsna 50 + 50, vindr-x 30 + 30 test images (times ``scale``)."""
    labels = {"report": (np.repeat(TEXT_CLASSES, 20 * scale), TEXT_CLASSES),
              "rsna": (np.repeat([0, 1], 50 * scale), [0, 1]), "vindr-x": (np.repeat([0, 1], 30 * scale), [0, 1])}
    parts = [t1.with_test_se(results[results.task == k], y, c) for k, (y, c) in labels.items()]
    out = pd.concat(parts, ignore_index=True)
    out.attrs = dict(results.attrs)
    return out


def test_every_row_gets_the_hanley_se_of_its_test_set(results):
    r = with_se(results)
    assert {"n_test", "auroc_se"} <= set(r.columns) and r["auroc_se"].notna().all()
    text = r[r.task == "report"].iloc[0]
    assert text.n_test == 100 and text.auroc_se == pytest.approx(macro_auroc_se_hanley(text.auroc, [20] * 5))
    rsna = r[r.task == "rsna"].iloc[0]
    assert rsna.n_test == 100 and rsna.auroc_se == pytest.approx(auroc_se_hanley(rsna.auroc, 50, 50))
    big = with_se(results, scale=4)
    inner = r["auroc"].between(0.01, 0.99)  # an AUROC of 0 or 1 has SE 0 at any size
    assert (big["auroc_se"][inner] < 0.6 * r["auroc_se"][inner]).all(), "four times the test set: about half the SE"


def test_table1_cells_carry_their_standard_errors(results):
    v = table1(with_se(results))["vision"]
    h = auroc_se_hanley
    # Gen→Med: rsna rows all 0.70 on 50 + 50, vindr rows 0.60 on 30 + 30; tasks independent
    assert v.loc["Gen→Med", "mean_se"] == pytest.approx(se_of_mean([h(0.70, 50, 50), h(0.60, 30, 30)]))
    # SUB Gen: per task the mean of its general encoders' SEs (one test set), then over tasks
    sub_se = se_of_mean([np.mean([h(0.70, 50, 50), h(0.72, 50, 50)]), np.mean([h(0.60, 30, 30), h(0.64, 30, 30)])])
    assert v.loc["Gen→Med", "SUB_se"] == pytest.approx(sub_se)
    assert v.loc["Gen→Med", "TUB_se"] == pytest.approx(se_of_mean([h(0.80, 50, 50), h(0.90, 30, 30)]))
    assert v.loc["Gen→Med", "diff_se"] == pytest.approx(np.hypot(v.loc["Gen→Med", "mean_se"], sub_se))
    assert v.loc["Med→Med"].isna().all()
    assert table1(results)["vision"][["mean_se", "SUB_se", "diff_se"]].isna().all().all(), "no auroc_se: no SE"
    small, big = table1(with_se(results)), table1(with_se(results, scale=4))
    assert (big.xs("mean_se", axis=1, level=1).dropna() < small.xs("mean_se", axis=1, level=1).dropna()).all().all()
    assert PAPER_TABLE1.xs("mean_se", axis=1, level=1).isna().all().all(), "the paper gives no SE"


def test_numbers_and_reading_say_whether_a_change_is_beyond_2_se(results):
    for scale in (1, 100):
        t = table1(with_se(results, scale=scale))
        k = t1.numbers(t)
        assert all(type(v) in (float, str) for v in k.values()), "plain types (glue)"
        for m, pair in itertools.product(("text", "vision"), ("gen_med", "gen_gen", "med_gen")):
            key = f"{m}_{pair}"
            assert k[f"{key}_diff"] == pytest.approx(k[key] - k[f"{key}_sub"])
            assert k[f"{key}_diff_z"] == pytest.approx(k[f"{key}_diff"] / k[f"{key}_diff_se"])
            beyond = abs(k[f"{key}_diff"]) >= 2 * k[f"{key}_diff_se"]
            assert k[f"{key}_noise"] == ("beyond 2 SE" if beyond else "within 2 SE"), key
    assert t1.numbers(table1(with_se(results)))["text_gen_med_noise"] == "within 2 SE"  # +0.05, SE of the difference 0.041
    assert k["text_gen_med_noise"] == "beyond 2 SE", "the same +0.05 on 100 times the test set"
    assert k["vision_med_med_noise"] == "–" and t1.numbers(PAPER_TABLE1)["text_gen_med_noise"] == "–"
    text = t1.reading(t, PAPER_TABLE1)
    assert "text: ours +7 % against SUB (a gain), which agrees with the paper's +6 % (a gain), a difference of " \
           "+0.050 AUROC" in text and "SE of the difference" in text and "beyond 2 SE" in text
    assert "SE" not in t1.reading(PAPER_TABLE1, PAPER_TABLE1), "no SE, no SE sentence"


def test_html_shows_the_se_labelled_apart_from_the_std(results):
    ours = table1(with_se(results))
    page = t1.html(ours, PAPER_TABLE1)
    paper_part, ours_part = page.split("semalign-ours")
    se = ours.loc["Gen→Med", ("vision", "mean_se")]
    assert f"SE&nbsp;{se:.3f}" in ours_part and "0.65 ± 0.05" in ours_part
    assert "SE&nbsp;" not in paper_part and "standard error" not in paper_part
    assert "standard deviation over encoder pairs" in ours_part and "standard error" in ours_part
    assert t1.paper_strings(PAPER_TABLE1) == t1.paper_strings(), "the paper's cells unchanged"
    assert "0.80 ± 0.01" in t1.paper_strings(PAPER_TABLE1)


def test_compute_adds_test_counts_and_se(monkeypatch):
    from semalign.encoders import tasks as glue
    from semalign.stitching import EncodedTask, Embeddings

    rng = np.random.default_rng(0)

    def fake(name, encs, **kw):
        classes = TEXT_CLASSES if name == "txt" else [0, 1]
        n_te = 50 if name == "txt" else 24 if name == "img-a" else 40
        y_tr, y_te = np.resize(classes, 60), np.resize(classes, n_te)
        emb = {e: Embeddings(rng.normal(size=(60, 4)) + np.searchsorted(classes, y_tr)[:, None],
                             rng.normal(size=(n_te, 4)) + np.searchsorted(classes, y_te)[:, None],
                             rng.normal(size=(30, 4))) for e in encs}
        return EncodedTask(name, "text" if name == "txt" else "image", emb,
                           {e: "general" if e.startswith("g") else "medical" for e in encs}, y_tr, y_te, classes)

    monkeypatch.setattr(glue, "encode_task", fake)
    res, info = t1.compute("txt", ["g1", "m1"], ["img-a", "img-b"], ["g2", "m2"], n_anchors=20, runs=2, device="cpu")
    assert res.groupby("task")["n_test"].first().to_dict() == {"txt": 50, "img-a": 24, "img-b": 40}
    a = res[res.task == "img-a"]
    np.testing.assert_allclose(a["auroc_se"], [auroc_se_hanley(x, 12, 12) for x in a["auroc"]])
    txt = res[res.task == "txt"]
    np.testing.assert_allclose(txt["auroc_se"], [macro_auroc_se_hanley(x, [10] * 5) for x in txt["auroc"]])
    t = t1.table(res, method="ortho")
    assert t.xs("mean_se", axis=1, level=1).loc[["Gen→Med", "Med→Gen"]].notna().all().all()
