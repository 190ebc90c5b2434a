"""Fig. 1 (semalign.report.fig1): the projection on arrays, and what credentialed data may show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semalign.data import DataError
from semalign.report import fig1
from semalign.stitching import EncodedTask, Embeddings


def test_credentialed_tasks_publish_densities_not_samples():
    assert not fig1.publishes_samples("mimic-5x200") and not fig1.publishes_samples("vindr-cardiomegaly")
    assert fig1.publishes_samples("openi-5class") and fig1.publishes_samples("synthcxr-pneumonia")
    with pytest.raises(DataError, match="unknown task"):
        fig1.publishes_samples("someone-elses-task")
    rng = np.random.default_rng(0)
    xa, ya = rng.normal(size=(80, 6)), rng.normal(size=(80, 4))
    xs, ys = rng.normal(size=(60, 6)), rng.normal(size=(60, 4))
    ids = [f"s5{i:07d}" for i in range(60)]
    pts, scores = fig1.compute(xa, ya, xs, ys, ["naive", "ortho"], ids=ids, labels=["x"] * 60, aggregate=True, bins=4)
    assert "id" not in pts.columns and "label" not in pts.columns
    assert (pts["count"] >= fig1.MIN_CELL).all(), "small cells are suppressed"
    assert pts.groupby(["method", "role"])["count"].sum().max() <= 60
    assert not any(i in pts.to_csv() for i in ids)
    spec = fig1.chart(pts).to_dict()
    assert not any("id" == t.get("field") for t in spec["spec"]["encoding"]["tooltip"])
    full, _ = fig1.compute(xa, ya, xs, ys, ["ortho"], ids=ids)
    assert len(full) == 3 * 60 and set(full["id"]) == set(ids), "open data: one point per sample"
    assert fig1.chart(full).to_dict()["facet"]["field"] == "method"


def test_scores_measure_how_close_the_aligned_samples_land():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    xa, xs = rng.normal(size=(200, 8)), rng.normal(size=(30, 8))
    _, scores = fig1.compute(xa, xa @ q, xs, xs @ q, ["naive", "linear"])
    s = scores.set_index("method")
    assert s.loc["linear", "cosine"] == pytest.approx(1.0, abs=1e-4), "a rotation is recovered exactly"
    assert s.loc["naive", "cosine"] < 0.9 and list(s["n_shown"]) == [30, 30]
    k = fig1.numbers(scores)
    assert k["best"] == "linear" and k["naive_cosine"] == pytest.approx(s.loc["naive", "cosine"])
    assert k["min_cosine"] == k["best_cosine"], "one fitted transform: its range is one value"
    assert fig1.cosine(np.eye(2), -np.eye(2)).tolist() == pytest.approx([-1.0, -1.0])


def test_held_out_draws_anchors_then_tests_from_one_seed():
    rng = np.random.default_rng(2)
    emb = {k: Embeddings(rng.normal(size=(20, d)), rng.normal(size=(12, d)), rng.normal(size=(50, d)))
           for k, d in (("s", 3), ("t", 5))}
    task = EncodedTask("x", "text", emb, {"s": "general", "t": "medical"}, np.r_[[0, 1] * 10],
                       np.r_[[0, 1] * 6], [0, 1])
    h = fig1.held_out(task, "s", "t", n_anchors=30, n_show=100, seed=0)
    g = np.random.default_rng(0)
    a, s = g.choice(50, size=30, replace=False), g.choice(12, size=12, replace=False)
    assert np.array_equal(h.x_anchors, emb["s"].anchors[a]) and np.array_equal(h.y_anchors, emb["t"].anchors[a])
    assert np.array_equal(h.y_test, emb["t"].test[s]) and h.ids == [str(i) for i in s], "n_show capped at 12"
