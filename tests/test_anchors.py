"""Anchor selection strategies on constructed pools whose right answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from semalign import anchors
from semalign.anchors import (
    REACH_COLUMNS,
    STRATEGIES,
    AnchorError,
    anchors_to_reach,
    farthest,
    get_strategy,
    kmeans,
    stratified,
)
from semalign.errors import SemalignError


def _labels(p: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(["normal", "opacity", "cardiomegaly"], size=p, p=[0.5, 0.3, 0.2])


def _procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin over orthogonal R of ||x R - y||_F (x, y both (n, d)): R = U Vᵀ from svd(xᵀ y)."""
    u, _, vt = np.linalg.svd(x.T @ y)
    return u @ vt


# --------------------------------------------------------------------- common contract ----
def _pool_and_labels(p: int, d: int, seed: int):
    return np.random.default_rng(seed).normal(size=(p, d)), _labels(p)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_returns_n_distinct_valid_indices_deterministically(name):
    pool, labels = _pool_and_labels(120, 6, seed=1)
    for n in (1, 7, 60, 119, 120):
        idx = get_strategy(name)(pool, n, seed=3, run=1, labels=labels)
        assert idx.shape == (n,) and idx.dtype == np.int64
        assert len(np.unique(idx)) == n and idx.min() >= 0 and idx.max() < 120
        np.testing.assert_array_equal(idx, get_strategy(name)(pool, n, seed=3, run=1, labels=labels))


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_seed_and_run_change_the_selection(name):
    pool, labels = _pool_and_labels(200, 5, seed=2)
    draw = {(seed, run): set(get_strategy(name)(pool, 20, seed=seed, run=run, labels=labels).tolist())
            for seed, run in ((0, 0), (1, 0), (0, 1))}
    assert draw[(1, 0)] != draw[(0, 0)] and draw[(0, 1)] != draw[(0, 0)]


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_hidden_isometry_is_recovered_from_every_strategys_anchors(name):
    # y = pad(x) Q: d1 = 8 into d2 = 12. From n >= d1 anchors in general position, both the
    # least-squares map and Procrustes on the padded source recover Q's first d1 rows, and so
    # map unseen samples exactly.
    rng = np.random.default_rng(3)
    d1, d2, pool_size = 8, 12, 300
    q, _ = np.linalg.qr(rng.normal(size=(d2, d2)))
    x = rng.normal(size=(pool_size, d1))
    y = np.pad(x, ((0, 0), (0, d2 - d1))) @ q
    x_new = rng.normal(size=(50, d1))
    y_new = np.pad(x_new, ((0, 0), (0, d2 - d1))) @ q
    idx = get_strategy(name)(x, 2 * d1, seed=0, labels=_labels(pool_size))
    m, *_ = np.linalg.lstsq(x[idx], y[idx], rcond=None)
    np.testing.assert_allclose(m, q[:d1], atol=1e-8)
    r = _procrustes(np.pad(x[idx], ((0, 0), (0, d2 - d1))), y[idx])
    np.testing.assert_allclose(r[:d1], q[:d1], atol=1e-8)
    np.testing.assert_allclose(np.pad(x_new, ((0, 0), (0, d2 - d1))) @ r, y_new, atol=1e-8)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_more_anchors_than_the_pool_is_a_clear_error(name):
    pool = np.zeros((10, 3))
    with pytest.raises(AnchorError, match=r"n=11 anchors: more anchors than the pool holds \(10\)"):
        get_strategy(name)(pool, 11, labels=np.zeros(10))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "5"])
def test_n_must_be_a_positive_whole_number(bad):
    with pytest.raises(AnchorError, match="n must"):
        anchors.random(np.zeros((10, 3)), bad)


@pytest.mark.parametrize("pool, what", [
    (np.zeros(10), r"\(P, d\)"),
    (np.zeros((0, 3)), r"\(P, d\)"),
    (np.full((4, 2), np.nan), "NaN"),
    (np.array([["a", "b"]]), "numbers"),
])  # fmt: skip
def test_bad_pools_are_refused(pool, what):
    with pytest.raises(AnchorError, match=what):
        farthest(pool, 1)


def test_errors_are_semalign_errors_and_registry_names_the_choices():
    assert issubclass(AnchorError, SemalignError) and issubclass(AnchorError, ValueError)
    with pytest.raises(AnchorError, match="choose from.*random.*kmeans.*farthest.*stratified"):
        get_strategy("greedy")
    assert list(STRATEGIES) == ["random", "kmeans", "farthest", "stratified"]


@pytest.mark.parametrize("select", [kmeans, farthest])
def test_unknown_geometry_is_refused(select):
    with pytest.raises(AnchorError, match="geometry"):
        select(np.eye(5), 2, geometry="manhattan")


# -------------------------------------------------------------------------------- random ----
def test_random_is_the_stitching_grids_draw():
    from semalign.stitching import _draws

    pool = np.zeros((500, 4))
    for seed, run, n in ((0, 0, 25), (0, 2, 250), (7, 1, 500)):
        want = np.random.default_rng([seed, run]).permutation(500)[:n]
        np.testing.assert_array_equal(anchors.random(pool, n, seed=seed, run=run), want)
        np.testing.assert_array_equal(anchors.random(pool, n, seed=seed, run=run),
                                      _draws(500, [n], run + 1, seed)[run][:n])


def test_random_is_the_zeroshot_grids_pairs_as_a_set():
    from semalign.zeroshot import anchor_draws

    pool = np.zeros((800, 2))
    for run, rows in enumerate(anchor_draws(800, 600, 3, seed=0)):
        np.testing.assert_array_equal(np.sort(anchors.random(pool, 600, seed=0, run=run)), rows)


def test_random_and_farthest_are_nested_over_n():
    pool = np.random.default_rng(4).normal(size=(100, 3))
    for select in (anchors.random, farthest):
        big = select(pool, 40, seed=5, run=2)
        np.testing.assert_array_equal(select(pool, 10, seed=5, run=2), big[:10])


# -------------------------------------------------------------------------------- kmeans ----
def test_kmeans_picks_one_sample_per_well_separated_cluster():
    rng = np.random.default_rng(5)
    centres = 50.0 * np.eye(5, 8)
    cluster = np.repeat(np.arange(5), 30)
    pool = centres[cluster] + rng.normal(size=(150, 8))
    for seed in range(4):
        idx = kmeans(pool, 5, seed=seed)
        assert sorted(cluster[idx].tolist()) == [0, 1, 2, 3, 4]


def test_kmeans_picks_the_sample_nearest_each_centroid():
    # each cluster is a symmetric cross around an exact centre point: the centroid is that point
    offsets = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=float)
    centres = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0]])
    pool = (centres[:, None, :] + offsets[None]).reshape(-1, 2)
    np.testing.assert_array_equal(kmeans(pool, 3, seed=0), [0, 5, 10])


def test_kmeans_tops_up_with_distinct_samples_when_the_pool_repeats_points():
    pool = np.repeat(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), 4, axis=0)  # 3 distinct points
    idx = kmeans(pool, 6, seed=0)
    assert len(np.unique(idx)) == 6
    # every distinct point is represented before any is repeated
    assert len({tuple(p) for p in pool[idx]}) == 3


def test_kmeans_with_the_whole_pool_returns_it():
    np.testing.assert_array_equal(kmeans(np.random.default_rng(0).normal(size=(9, 2)), 9), np.arange(9))


# ------------------------------------------------------------------------------ farthest ----
def test_farthest_reaches_the_corners_first():
    # a unit square's 4 corners and a tight cloud at its centre: whatever the seeded first
    # point, the first 5 anchors hold all 4 corners
    rng = np.random.default_rng(6)
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    pool = np.vstack([0.5 + 0.01 * rng.normal(size=(40, 2)), corners])
    for seed in range(20):
        assert {40, 41, 42, 43} <= set(farthest(pool, 5, seed=seed).tolist())


def test_farthest_on_a_line_goes_to_the_far_end_then_the_widest_gap():
    x = np.arange(11, dtype=float) ** 1.5  # uneven gaps: no distance ties
    for seed in range(10):
        idx = farthest(x[:, None], 3, seed=seed)
        start = np.random.default_rng([seed, 0]).integers(11)
        far = 0 if x[start] - x[0] > x[10] - x[start] else 10  # the end farther from the start
        assert idx[0] == start and idx[1] == far
        # third: the point farthest from both (the other end or the middle of the wider gap)
        assert idx[2] == max(range(11), key=lambda i: min(abs(x[i] - x[start]), abs(x[i] - x[far])))


def test_farthest_cosine_geometry_uses_directions_only():
    # points on rays at 0°, 90°, 180°, 270° with different norms: by cosine, four directions
    angles = np.repeat(np.array([0, 90, 180, 270]) * np.pi / 180, 5)
    radius = np.tile([1.0, 2.0, 3.0, 4.0, 5.0], 4)
    pool = np.c_[radius * np.cos(angles), radius * np.sin(angles)]
    idx = farthest(pool, 4, seed=0, geometry="cosine")
    assert sorted((idx // 5).tolist()) == [0, 1, 2, 3]


def test_farthest_never_repeats_a_sample_of_a_pool_with_duplicates():
    pool = np.repeat(np.eye(3), 3, axis=0)
    idx = farthest(pool, 9, seed=1)
    assert sorted(idx.tolist()) == list(range(9))


def test_farthest_standardized_geometry_ignores_feature_scale():
    pool = np.random.default_rng(7).normal(size=(80, 3))
    scaled = pool * np.array([1.0, 1000.0, 0.001]) + 5.0
    np.testing.assert_array_equal(farthest(pool, 15, seed=2), farthest(scaled, 15, seed=2))


# ---------------------------------------------------------------------------- stratified ----
@pytest.mark.parametrize("counts, n, want", [
    ((50, 30, 20), 10, (5, 3, 2)),        # exact proportions
    ((5, 3, 2), 4, (2, 1, 1)),            # quotas 2, 1.2, 0.8: the 0.8 remainder wins
    ((6, 3, 3), 2, (1, 1, 0)),            # quotas 1, .5, .5: tie to the class listed first
    ((2, 7), 3, (1, 2)),                  # quotas 0.67, 2.33
    ((1, 1, 1, 1), 4, (1, 1, 1, 1)),      # the whole pool
])  # fmt: skip
def test_stratified_class_counts_are_largest_remainder_exact(counts, n, want):
    labels = np.concatenate([np.full(c, f"class-{k}") for k, c in enumerate(counts)])
    labels = np.random.default_rng(0).permutation(labels)
    idx = stratified(np.zeros((len(labels), 2)), n, seed=4, labels=labels)
    got = tuple(int((labels[idx] == f"class-{k}").sum()) for k in range(len(counts)))
    assert got == want


def test_stratified_ties_go_to_the_larger_class():
    labels = np.array(["a"] * 2 + ["b"] * 4)  # n=1: quotas 1/3, 2/3 -> b; n=3: 1, 2 exact
    idx = stratified(np.zeros((6, 1)), 1, labels=labels)
    assert labels[idx].tolist() == ["b"]


def test_stratified_needs_labels():
    with pytest.raises(AnchorError, match="needs labels="):
        stratified(np.zeros((5, 2)), 2)
    with pytest.raises(AnchorError, match=r"shape \(5,\)"):
        stratified(np.zeros((5, 2)), 2, labels=[0, 1, 0])


def test_stratified_draws_randomly_within_each_class():
    labels = np.array([0] * 50 + [1] * 50)
    a = stratified(np.zeros((100, 1)), 10, seed=0, labels=labels)
    b = stratified(np.zeros((100, 1)), 10, seed=1, labels=labels)
    assert set(a.tolist()) != set(b.tolist())


# ---------------------------------------------------------------------- anchors_to_reach ----
def _curve(values: dict[str, dict[int, list[float]]]) -> pd.DataFrame:
    rows = [(s, n, r, a) for s, by_n in values.items() for n, runs in by_n.items() for r, a in enumerate(runs)]
    return pd.DataFrame(rows, columns=["strategy", "n_anchors", "run", "auroc"])


def test_anchors_to_reach_reads_the_first_n_of_the_mean_curve():
    # upper bound 0.8: target 0.76
    curve = _curve({
        "random": {25: [0.60, 0.62], 100: [0.70, 0.74], 500: [0.76, 0.78], 2000: [0.79, 0.79]},
        "kmeans": {25: [0.70, 0.72], 100: [0.76, 0.77], 500: [0.78, 0.78], 2000: [0.79, 0.79]},
        "farthest": {25: [0.50, 0.52], 100: [0.60, 0.62], 500: [0.70, 0.70], 2000: [0.74, 0.75]},
    })  # fmt: skip
    out = anchors_to_reach(curve, 0.95, upper_bound=0.8).set_index("strategy")
    assert list(out.reset_index().columns) == ["strategy", *REACH_COLUMNS]
    assert out.loc["random", "target"] == pytest.approx(0.76)
    assert out.loc["random", "n_anchors"] == 500 and out.loc["kmeans", "n_anchors"] == 100
    assert math.isnan(out.loc["farthest", "n_anchors"]) and not out.loc["farthest", "reached"]
    assert out.loc["random", "reached"] and out.loc["random", "runs"] == 2
    # per run: random's run 0 reaches at 500, run 1 at 500; kmeans's run 0 at 100, run 1 at 100
    assert out.loc["random", "n_run_mean"] == 500 and out.loc["random", "n_run_std"] == 0
    assert out.loc["farthest", "runs_reached"] == 0 and math.isnan(out.loc["farthest", "n_run_mean"])


def test_anchors_to_reach_spread_over_runs():
    curve = _curve({"random": {10: [0.9, 0.5, 0.5], 20: [0.9, 0.9, 0.5], 40: [0.9, 0.9, 0.9]}})
    row = anchors_to_reach(curve, 1.0, upper_bound=0.9).iloc[0]
    assert row["n_anchors"] == 40  # the mean reaches 0.9 only at 40
    assert (row["runs_reached"], row["n_run_min"], row["n_run_max"]) == (3, 10, 40)
    assert row["n_run_mean"] == pytest.approx(70 / 3)
    assert row["n_run_std"] == pytest.approx(np.std([10, 20, 40], ddof=1))


def test_anchors_to_reach_interpolates_linearly_between_measured_n():
    curve = _curve({"random": {100: [0.6], 300: [0.8], 500: [0.9]}})
    assert anchors_to_reach(curve, 0.7 / 0.9, upper_bound=0.9, interpolate=True).iloc[0]["n_anchors"] == pytest.approx(200)
    # reached at the first n already: no extrapolation below it
    assert anchors_to_reach(curve, 0.5, upper_bound=0.9, interpolate=True).iloc[0]["n_anchors"] == 100


def test_anchors_to_reach_averages_pairs_and_takes_upper_bounds_per_group():
    curve = _curve({"random": {10: [0.5], 20: [0.7]}})
    two_pairs = pd.concat([curve, curve.assign(auroc=curve["auroc"] + 0.2)])  # pair means 0.6, 0.8
    two_pairs["modality"] = "text"
    vision = two_pairs.assign(modality="vision")
    both = pd.concat([two_pairs, vision])
    # targets 0.59 (reached by the mean 0.6 at n=10) and 0.79 (by the mean 0.8 at n=20)
    out = anchors_to_reach(both, 1.0, upper_bound={("text", "random"): 0.59, ("vision", "random"): 0.79},
                           by=("modality", "strategy"))
    assert out[["modality", "n_anchors"]].values.tolist() == [["text", 10], ["vision", 20]]


def test_anchors_to_reach_refuses_bad_input():
    curve = _curve({"random": {10: [0.5]}})
    with pytest.raises(AnchorError, match="missing"):
        anchors_to_reach(curve.drop(columns="run"), upper_bound=0.8)
    with pytest.raises(AnchorError, match="fraction"):
        anchors_to_reach(curve, 1.5, upper_bound=0.8)
    with pytest.raises(AnchorError, match="NaN"):
        anchors_to_reach(curve.assign(auroc=np.nan), upper_bound=0.8)
    with pytest.raises(AnchorError, match="no value for group 'random'"):
        anchors_to_reach(curve, upper_bound={"kmeans": 0.8})
