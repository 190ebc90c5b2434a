"""Fig. 4: the zero-shot grid on embeddings (semalign.zeroshot), wired to real encoders
(semalign.encoders.tasks), and its bars and reading (semalign.report.fig4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semalign.report import fig4
from semalign.errors import SemalignError
from semalign.zeroshot import (Baseline, DrawError, EncodedZeroShot, ZeroShotTask, anchor_draws, standard_zeroshot,
                               unimodal_zeroshot, zeroshot_grid)


def zs(aurocs, n=(40, 40), domain="general", encoder="m") -> pd.DataFrame:
    return pd.DataFrame({"task": [f"t{i}" for i in range(len(aurocs))], "approach": "unimodal",
                         "vision_encoder": encoder, "text_encoder": "x", "domain": domain,
                         "auroc": aurocs, "n_pos": n[0], "n_neg": n[1]})


def test_above_chance_needs_two_null_sds():
    r = zs([0.55, 0.60, 0.70])
    assert fig4.above_chance(r).tolist() == [False, False, True], "0.5 + 2 x 0.065 = 0.63"
    assert fig4.above_chance(r.drop(columns=["n_pos", "n_neg"])).tolist() == [True, True, True]
    assert "1 of 3" in fig4.reading(r) and "0.63" in fig4.reading(r)
    k = fig4.numbers(r)
    assert (k["above"], k["results"], k["tasks_above"], k["tasks"]) == (1, 3, 1, 3)
    assert k["threshold"] == pytest.approx(0.63, abs=0.005) and k["best"] == "m"


def test_a_label_trained_encoder_is_named_in_the_reading():
    r = pd.concat([zs([0.6, 0.6], encoder="gen"), zs([0.9, 0.9], domain="medical (stand-in)", encoder="med")])
    sup = {"med": "the 11 SynthCXR findings"}
    text = fig4.reading(r, sup)
    assert "Caution" in text and "`med`" in text and "not zero-shot" in text
    assert "Caution" not in fig4.reading(r)
    r2 = r.assign(supervised_on=np.where(r["vision_encoder"] == "med", sup["med"], ""))
    assert fig4.supervised_encoders(r2) == sup and "Caution" in fig4.reading(r2), "read from the frame"


def test_setup_names_what_stands_in_for_the_papers_roles():
    offline = fig4.describe_setup("minilm-l6", "general", "synthcxr-pairs", 300, "ortho", 10, "offline")
    assert offline.count("in place of") == 2 and "CLIP" in offline and "MIMIC-CXR" in offline
    paper = fig4.describe_setup("clip-vit-b32-text", "general", "mimic-cxr-pairs", 2500, "ortho", 10, "paper")
    assert "in place of" not in paper
    assert "in place of" in fig4.describe_setup("clip-vit-b32-image", "x", "mimic-cxr-pairs", 1, "ortho", 1, "p"), (
        "an image tower is not the paper's text space (no prefix matching)")


def _encoded(rng, n_tasks=2, pool=40, n=16, baseline=True) -> EncodedZeroShot:
    tasks = []
    for i in range(n_tasks):
        y = np.r_[[1] * (n // 2), [0] * (n // 2)]
        tasks.append(ZeroShotTask(
            name=f"task{i}", y=y, images={"v1": rng.normal(size=(n, 6)), "v2": rng.normal(size=(n, 5))},
            pos=rng.normal(size=(3, 4)), neg=rng.normal(size=(3, 4)),
            baselines={"clip": (rng.normal(size=(n, 7)), rng.normal(size=(3, 7)), rng.normal(size=(3, 7)))}
            if baseline else {}))
    return EncodedZeroShot(
        text_encoder="txt", anchor_text=rng.normal(size=(pool, 4)),
        anchor_images={"v1": rng.normal(size=(pool, 6)), "v2": rng.normal(size=(pool, 5))}, tasks=tasks,
        domains={"txt": "general", "v1": "general", "v2": "medical (stand-in)"},
        baselines={"clip": Baseline("clip-img", "clip-txt", "multimodal")} if baseline else {},
        supervised_on={"v2": "the labels"})


def test_zeroshot_grid_on_embeddings_is_the_papers_method_per_run():
    e = _encoded(np.random.default_rng(0))
    res = zeroshot_grid(e, n_pairs=30, runs=2, method="ortho", seed=5)
    uni, clip = res[res.approach == "unimodal"], res[res.approach == "clip"]
    assert len(uni) == 2 * 2 * 2 and len(clip) == 2, "(task, encoder, run) rows; a baseline once per task"
    assert list(uni["vision_encoder"].iloc[:4]) == ["v1", "v1", "v2", "v2"] and list(uni["run"].iloc[:2]) == [0, 1]
    assert set(clip["run"]) == {0} and set(clip["domain"]) == {"multimodal"}
    assert (res["n_pos"] == 8).all() and (res["n_neg"] == 8).all()
    assert set(res.loc[res.vision_encoder == "v2", "supervised_on"]) == {"the labels"}
    assert set(res.loc[res.vision_encoder != "v2", "supervised_on"]) == {""}
    t, a = e.tasks[1], anchor_draws(40, 30, 2, seed=5)[1]
    by_hand = unimodal_zeroshot(t.images["v2"], t.y, e.anchor_images["v2"][a], e.anchor_text[a], t.pos, t.neg,
                                method="ortho", seed=6).auroc
    got = uni[(uni.task == "task1") & (uni.vision_encoder == "v2") & (uni.run == 1)]["auroc"].item()
    assert got == pytest.approx(by_hand, abs=1e-12), "run r: anchors of draw r, Translator seed seed + r"
    b = t.baselines["clip"]
    assert clip[clip.task == "task1"]["auroc"].item() == pytest.approx(standard_zeroshot(b[0], t.y, b[1], b[2]).auroc)


def test_anchor_draws_are_seeded_sorted_and_refuse_impossible_plans():
    d = anchor_draws(40, 30, 3, seed=1)
    assert len(d) == 3 and all(len(x) == 30 and (np.diff(x) > 0).all() for x in d)
    assert not np.array_equal(d[0], d[1]) and np.array_equal(d[2], anchor_draws(40, 30, 3, seed=1)[2])
    with pytest.raises(DrawError, match="same anchors"):
        anchor_draws(30, 30, 2)
    with pytest.raises(ValueError, match="more than the pair pool"):
        anchor_draws(20, 30, 1)
    with pytest.raises(ValueError, match="runs must be"):
        anchor_draws(40, 30, 0)
    assert issubclass(DrawError, SemalignError), "a user's parameters: a SemalignError saying what to change"


def test_bars_average_runs_and_name_the_approach():
    e = _encoded(np.random.default_rng(0))
    res = zeroshot_grid(e, n_pairs=30, runs=2, seed=0)
    bars = fig4.frame(res)
    assert len(bars) == 2 * 3 and "auroc_std" in bars.columns, "one bar per (task, model), runs averaged"
    m = res[(res.task == "task0") & (res.vision_encoder == "v1")]["auroc"].mean()
    assert bars[(bars.task == "task0") & (bars.model == "v1 (general)")]["auroc"].item() == pytest.approx(m)
    assert set(bars["kind"]) == {"ours (unimodal + alignment)", "CLIP"}
    assert "CLIP (mean AUROC" in fig4.reading(res) and "2 anchor draws" in fig4.reading(res)
    assert "auroc_se" in bars.columns and (bars["auroc_se"] > 0).all()


def _bar_heights(chart) -> dict[tuple[str, str], float]:
    """Render a chart with vega (vl-convert) and read each bar's pixel height by its aria label."""
    vlc = pytest.importorskip("vl_convert")
    import re

    svg = vlc.vegalite_to_svg(chart.to_json())
    out = {}
    for label, d in re.findall(r'<path aria-label="([^"]*)"[^>]*aria-roledescription="bar" d="([^"]*)"', svg):
        fields = dict(kv.split(": ", 1) for kv in label.split("; "))
        h = float(re.search(r"v(-?[0-9.e]+)h", d).group(1))
        out[(fields["task"], fields["model"])] = abs(h)
    return out


def test_chart_draws_each_auroc_once_and_unstacked():
    bars = pd.DataFrame({"task": ["p", "p", "q", "q", "r", "r"], "model": ["m1", "CLIP"] * 3,
                         "kind": [fig4.OURS, "CLIP"] * 3, "auroc": [0.7, 0.6, 0.9, 0.25, 0.5, 1.0]})
    heights = _bar_heights(fig4.chart(bars))
    assert len(heights) == len(bars), "one bar per (task, model)"
    full = heights[("r", "CLIP")]  # AUROC 1.0 spans the whole axis
    for row in bars.itertuples():
        assert heights[(row.task, row.model)] == pytest.approx(row.auroc * full, rel=1e-6), (
            f"bar {row.task}/{row.model} is not drawn at its own AUROC (stacked or mis-faceted?)")
    spec = fig4.chart(bars.assign(auroc_std=0.05)).to_dict()
    opacity = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "bar")["encoding"]["opacity"]
    assert opacity["scale"] == {"domain": [fig4.OURS, "CLIP"], "range": [1.0, 0.55]}, "ours solid and first"
    assert any(layer["mark"]["type"] == "rule" and "y2" in layer.get("encoding", {}) for layer in spec["layer"]), (
        "a std column is drawn as error bars")
    with pytest.raises(ValueError, match="one row per"):
        fig4.chart(pd.concat([bars, bars.iloc[:1]]))


# ------------------------------------------------ Fig. 4 end to end, with a CLIP baseline ----
from test_zeroshot import tiny_clip  # noqa: E402,F401 — the locally built tiny CLIP fixture


@pytest.mark.slow
def test_compute_runs_draws_and_a_clip_baseline(tiny_clip, monkeypatch):
    """fig4.compute on real SynthCXR tasks with a real registry CNN and text encoder, the tiny
    local CLIP standing in for the CLIP baseline: rows per run, class counts, means and std in the
    Fig. 4 frame, the baseline scored once per task."""
    from semalign.encoders import get_encoder
    from semalign.encoders import tasks as glue

    folder, _ = tiny_clip
    real = glue.load_encoders

    def load(names, device="cpu"):
        clip = {n: get_encoder(n, device="cpu", id=str(folder), dim=0) for n in names if n.startswith("clip-")}
        return {**real([n for n in names if n not in clip], device), **clip}

    monkeypatch.setattr(glue, "load_encoders", load)
    tasks = ["synthcxr-pneumonia", "synthcxr-vindr-cardiomegaly"]
    tp = {"synthcxr-*": {"n_train_per_class": 4, "n_test_per_class": 10, "n_pool": 8}}
    res, info = fig4.compute(
        tasks, ["mobilenet-v2"], "wordllama-256", pairs="synthcxr-pairs", n_pairs=24, pair_pool=32, runs=2,
        baselines={"clip": ["clip-vit-b32-image", "clip-vit-b32-text"]}, device="cpu", task_params=tp)
    uni, clip = res[res.approach == "unimodal"], res[res.approach == "clip"]
    assert len(uni) == 2 * 2 and sorted(set(uni["run"])) == [0, 1]
    assert len(clip) == 2 and set(clip["run"]) == {0}, "the baseline uses no anchors: one row per task"
    assert (res["n_pos"] == 10).all() and (res["n_neg"] == 10).all()
    assert info["runs"] == 2 and info["pair_pool"] == 32 and info["n_pairs"] == 24
    assert info["encoded"].tasks[0].images["mobilenet-v2"].shape == (20, 1280)
    f4 = fig4.frame(res)
    assert len(f4[f4.kind != fig4.PROBE]) == 4 and "auroc_std" in f4.columns, "one bar per (task, model), runs averaged"
    assert len(f4[f4.kind == fig4.PROBE]) == 2 and (res["auroc_se"] > 0).all(), "a probe per (task, encoder); SEs"
    assert "CLIP (mean AUROC" in fig4.reading(res) and "2 anchor draws" in fig4.reading(res)
    with pytest.raises(ValueError, match="same anchors"):
        fig4.compute(tasks, ["mobilenet-v2"], "wordllama-256", pairs="synthcxr-pairs", n_pairs=24,
                     runs=2, device="cpu", task_params=tp)



# ------------------------------------- probe ceiling, baselines and standard errors -----------
def _with_probe(rng, n_tasks=2, pool=40, n=16, n_train=20) -> EncodedZeroShot:
    e = _encoded(rng, n_tasks, pool, n)
    for t in e.tasks:
        t.y_train = np.r_[[1] * (n_train // 2), [0] * (n_train // 2)]
        t.train_images = {"v1": rng.normal(size=(n_train, 6)), "v2": rng.normal(size=(n_train, 5))}
    return e


def test_grid_adds_a_probe_per_encoder_and_a_standard_error_per_row():
    from semalign.stats import delong
    from semalign.zeroshot import linear_probe

    e = _with_probe(np.random.default_rng(1))
    res = zeroshot_grid(e, n_pairs=30, runs=2, seed=0)
    probe = res[res.approach == "probe"]
    assert len(probe) == 2 * 2 and set(probe["run"]) == {0}, "one probe per (task, encoder), no anchors"
    t = e.tasks[0]
    p = linear_probe(t.train_images["v2"], t.y_train, t.images["v2"], t.y)
    row = probe[(probe.task == "task0") & (probe.vision_encoder == "v2")]
    assert row["auroc"].item() == pytest.approx(p.auroc) and row["auroc_se"].item() == pytest.approx(p.auroc_se)
    assert (res["auroc_se"] > 0).all(), "every row carries its test-set standard error"
    clip = res[(res.approach == "clip") & (res.task == "task1")]
    b = e.tasks[1].baselines["clip"]
    assert clip["auroc_se"].item() == pytest.approx(delong(e.tasks[1].y, standard_zeroshot(b[0], e.tasks[1].y, b[1], b[2]).scores)[1])
    assert (res.approach == "probe").sum() == 4 and not (zeroshot_grid(_encoded(np.random.default_rng(1)), n_pairs=30)
                                                         .approach == "probe").any(), "no training images: no probe"


def test_bar_standard_error_combines_test_set_and_anchor_draw_error():
    r = pd.DataFrame({"task": "t", "approach": ["unimodal"] * 3 + ["synthclip"], "vision_encoder": ["m"] * 3 + ["b"],
                      "text_encoder": "x", "domain": "general", "auroc": [0.6, 0.7, 0.8, 0.65],
                      "auroc_se": [0.03, 0.04, 0.05, 0.045], "run": [0, 1, 2, 0], "n_pos": 50, "n_neg": 50})
    m = fig4.means(r).set_index("approach")
    want = np.sqrt(np.mean([0.03 ** 2, 0.04 ** 2, 0.05 ** 2]) + 0.1 ** 2 / 3)
    assert m.loc["unimodal", "auroc_se"] == pytest.approx(want) and m.loc["unimodal", "auroc_std"] == pytest.approx(0.1)
    assert m.loc["synthclip", "auroc_se"] == pytest.approx(0.045), "one run: its DeLong error"
    from semalign.stats import auroc_se_hanley

    old = fig4.means(r.drop(columns="auroc_se")).set_index("approach")
    assert old.loc["synthclip", "auroc_se"] == pytest.approx(auroc_se_hanley(0.65, 50, 50)), "older CSV: Hanley-McNeil"
    bars = fig4.frame(r)
    assert {"auroc_se", "auroc_std"} <= set(bars.columns)
    assert "± 0.045" in fig4.table(r).loc[(fig4.APPROACH_LABELS["synthclip"], fig4.APPROACH_LABELS["synthclip"]), "t"]


def test_compare_needs_two_standard_errors_of_the_difference():
    assert fig4.compare(0.80, 0.03, 0.70, 0.03) == "better"     # 0.10 > 2 x 0.042
    assert fig4.compare(0.75, 0.03, 0.70, 0.03) == "within noise"
    assert fig4.compare(0.60, 0.03, 0.70, 0.03) == "worse"
    assert fig4.compare(0.71, np.nan, 0.70, np.nan) == "better", "no errors: the sign alone"


def _zs_frame():
    """Two tasks x two encoders (one label-trained), three runs each, a MedCLIP-like baseline and probes."""
    rows = []
    for task, (ours_g, ours_m, base, pg, pm) in {"p": (0.80, 0.9, 0.60, 0.95, 0.97),
                                                 "q": (0.62, 0.9, 0.63, 0.70, 0.97)}.items():
        for enc, dom, a in (("gen", "general", ours_g), ("med", "medical (stand-in)", ours_m)):
            for run in range(3):
                rows.append(dict(task=task, approach="unimodal", vision_encoder=enc, domain=dom, auroc=a + 0.001 * run,
                                 run=run, supervised_on="labels" if enc == "med" else ""))
            rows.append(dict(task=task, approach="probe", vision_encoder=enc, domain=dom, auroc=pg if enc == "gen" else pm,
                             run=0, supervised_on=""))
        rows.append(dict(task=task, approach="synthclip", vision_encoder="synthclip-image", domain="medical (stand-in)",
                         auroc=base, run=0, supervised_on=""))
    return pd.DataFrame(rows).assign(text_encoder="x", n_pos=100, n_neg=100, auroc_se=0.03)


def test_reading_counts_wins_against_the_baseline_and_the_gap_to_the_probe():
    r = _zs_frame()
    k = fig4.numbers(r)
    assert (k["synthclip_better"], k["synthclip_tie"], k["synthclip_worse"], k["synthclip_pairs"]) == (1, 1, 0, 2), (
        "the label-trained encoder is left out; task p: 0.80 vs 0.60 is beyond 2 SE, task q is not")
    assert k["synthclip_mean"] == pytest.approx(0.615) and k["synthclip_mean_se"] == pytest.approx(0.03 / np.sqrt(2))
    assert k["probe_pairs"] == 4 and k["probe_below"] == 1 and k["probe_above"] == 0, (
        "only gen on p (0.80 vs 0.95) is beyond 2 x 0.042; 0.62 vs 0.70 and 0.90 vs 0.97 are within noise")
    assert k["probe_gap"] == pytest.approx(np.mean([0.15, 0.08, 0.07, 0.07]), abs=2e-3)
    assert k["se_median"] > 0
    text = fig4.reading(r)
    assert "MedCLIP-like (stand-in, trained here)" in text and "`gen` better on 1, within noise on 1, worse on 0" in text
    assert "linear probe" in text and "ceiling" in text and "Caution" in text and "left out" in text


def test_chart_draws_probe_ticks_over_their_bars_and_standard_error_bars():
    bars = fig4.frame(_zs_frame())
    spec = fig4.chart(bars).to_dict()
    layers = {layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]: layer for layer in spec["layer"]}
    assert "tick" in layers, "the probe ceiling is drawn as ticks"
    err = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rule" and "y2" in layer.get("encoding", {})]
    assert err, "standard-error bars"
    titles = [t.get("title") for t in layers["bar"]["encoding"]["tooltip"] if isinstance(t, dict)]
    assert "standard error" in titles and "std over anchor draws" in titles
    vlc = pytest.importorskip("vl_convert")
    import re

    svg = vlc.vegalite_to_svg(fig4.chart(bars).to_json())
    bar_x = {}
    for label, d in re.findall(r'<path aria-label="([^"]*)"[^>]*aria-roledescription="bar" d="([^"]*)"', svg):
        f = dict(kv.split(": ", 1) for kv in label.split("; "))
        x0, w = map(float, re.match(r"M(-?[0-9.e]+),-?[0-9.e]+h(-?[0-9.e]+)", d).groups())
        bar_x[(f["task"], f["model"])] = x0 + w / 2
    ticks = re.findall(r'<path aria-label="([^"]*)"[^>]*aria-roledescription="tick" d="([^"]*)"', svg)
    assert len(bar_x) == 6 and len(ticks) == 4, "bars: 2 tasks x (2 encoders + baseline); ticks: 2 x 2 probes"
    for label, d in ticks:
        f = dict(kv.split(": ", 1) for kv in label.split("; "))
        x0, w = map(float, re.match(r"M(-?[0-9.e]+),-?[0-9.e]+h(-?[0-9.e]+)", d).groups())
        assert x0 + w / 2 == pytest.approx(bar_x[(f["task"], f["model"])], abs=0.5), "a tick sits over its encoder's bar"
    with pytest.raises(ValueError, match="over its encoder's bar"):
        fig4.chart(pd.concat([bars, bars[bars.kind == fig4.PROBE].head(1).assign(model="nobody")]))
