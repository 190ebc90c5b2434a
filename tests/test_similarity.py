"""Representational similarity (linear CKA, mutual k-NN) on spaces whose relation is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from semalign.errors import SemalignError
from semalign.similarity import (
    METRICS,
    SIMILARITY_COLUMNS,
    SimilarityError,
    linear_cka,
    mutual_knn,
    pairwise_similarity,
)


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def _space(n=300, d=20, seed=0):
    # anisotropic features: the case where a wrong normalisation would show
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(0.2, 3.0, d) + 4.0


def _reference_cka(x, y):
    """Kornblith et al.'s HSIC form with centring matrix H and sample Grams, written out."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.trace(k @ l_) / np.sqrt(np.trace(k @ k) * np.trace(l_ @ l_))


# ---------------------------------------------------------------------------- linear CKA ----
@pytest.mark.parametrize("d1, d2", [(5, 7), (30, 12), (80, 120)])  # the last: d > n, Gram path
def test_cka_matches_the_hsic_reference(d1, d2):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, d1))
    y = x[:, : min(d1, d2)] @ rng.normal(size=(min(d1, d2), d2)) + rng.normal(size=(60, d2))
    assert linear_cka(x, y) == pytest.approx(_reference_cka(x, y), rel=1e-10)


def test_cka_of_a_space_with_itself_rotations_and_scalings_is_one():
    x = _space()
    q = _rotation(20, 2)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 1e-6 * x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 1e6 * x @ q + 3.0) == pytest.approx(1.0, abs=1e-12)
    # an isometry into a larger space
    padded = np.pad(x, ((0, 0), (0, 10))) @ _rotation(30, 3)
    assert linear_cka(x, padded) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_not_invariant_to_a_general_linear_map():
    # an isotropic space stretched by very different factors per feature: not an isometry
    x = np.random.default_rng(15).normal(size=(300, 20))
    assert linear_cka(x, x * np.geomspace(0.01, 100.0, 20)) < 0.9


def test_cka_decreases_strictly_with_noise():
    x = _space(n=500)
    noise = np.random.default_rng(4).normal(size=x.shape)
    values = [linear_cka(x, x + s * noise) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert values[0] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(values)), values


def test_cka_of_independent_spaces_is_near_zero():
    # E[CKA] ~ sqrt(d1 d2) / n for independent Gaussian spaces with d << n
    rng = np.random.default_rng(5)
    n, d1, d2 = 2000, 16, 24
    value = linear_cka(rng.normal(size=(n, d1)), rng.normal(size=(n, d2)))
    assert 0.0 <= value < 3 * np.sqrt(d1 * d2) / n


def test_cka_is_symmetric_and_in_the_unit_interval():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(100, 9)), rng.normal(size=(100, 4))
    y[:, 0] += x[:, 0]
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), rel=1e-12)
    assert 0.0 < linear_cka(x, y) < 1.0


def test_cka_is_stable_for_huge_and_tiny_float32_inputs():
    x = _space().astype(np.float32)
    assert linear_cka(x * np.float32(1e18), x) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x * np.float32(1e-18), x) == pytest.approx(1.0, abs=1e-6)


def test_cka_refuses_what_it_cannot_compare():
    x = _space(n=10)
    with pytest.raises(SimilarityError, match="same n samples"):
        linear_cka(x, x[:9])
    for constant in (np.ones((10, 3)), np.full((10, 3), 0.1), np.tile([1e8, -3.7, 0.3], (10, 1))):
        with pytest.raises(SimilarityError, match="same vector for every sample"):
            linear_cka(x, constant)
    with pytest.raises(SimilarityError, match="at least 2 samples"):
        linear_cka(x[:1], x[:1])
    with pytest.raises(SimilarityError, match=r"\(n, d\)"):
        linear_cka(x[:, 0], x)
    with pytest.raises(SimilarityError, match="NaN"):
        linear_cka(np.full((10, 2), np.nan), x)
    assert issubclass(SimilarityError, SemalignError)


# ---------------------------------------------------------------------------- mutual kNN ----
def test_mutual_knn_of_a_space_with_itself_is_one_and_invariant_to_rotation_and_scale():
    x = _space(n=200)
    q = _rotation(20, 7)
    row_scale = np.random.default_rng(8).uniform(0.1, 10.0, size=(200, 1))
    assert mutual_knn(x, x) == 1.0
    assert mutual_knn(x, 5.0 * x @ q, k=10) == 1.0
    assert mutual_knn(x, row_scale * x, k=5) == 1.0


def test_mutual_knn_matches_a_loop_reference():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 3))
    y[:, 0] += 2 * x[:, 0]

    def neighbours(z, i, k):
        cos = [(z[i] @ z[j] / np.linalg.norm(z[i]) / np.linalg.norm(z[j]), j) for j in range(len(z)) if j != i]
        return {j for _, j in sorted(cos, key=lambda t: -t[0])[:k]}

    want = np.mean([len(neighbours(x, i, 4) & neighbours(y, i, 4)) / 4 for i in range(40)])
    assert mutual_knn(x, y, k=4) == pytest.approx(want)


def test_mutual_knn_of_independent_spaces_is_near_chance():
    rng = np.random.default_rng(10)
    n, k = 1500, 10  # chance level k / (n - 1) = 0.0067
    value = mutual_knn(rng.normal(size=(n, 16)), rng.normal(size=(n, 16)), k=k)
    assert value < 3 * k / (n - 1)


def test_mutual_knn_decreases_with_noise_and_is_symmetric():
    x = _space(n=400)
    noise = np.random.default_rng(11).normal(size=x.shape)
    values = [mutual_knn(x, x + s * noise) for s in (0.0, 0.5, 2.0, 8.0)]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    y = x + noise
    assert mutual_knn(x, y) == mutual_knn(y, x)


def test_mutual_knn_spans_the_block_boundary():
    # more rows than one block of the cosine matrix: the result must not depend on blocking
    rng = np.random.default_rng(12)
    x = rng.normal(size=(1100, 4))
    y = x + 0.3 * rng.normal(size=x.shape)
    from semalign import similarity

    blocked = mutual_knn(x, y)
    old, similarity._KNN_BLOCK = similarity._KNN_BLOCK, 10_000
    try:
        assert mutual_knn(x, y) == blocked
    finally:
        similarity._KNN_BLOCK = old


@pytest.mark.parametrize("k", [0, 10, -1, 2.0, True])
def test_mutual_knn_k_must_be_between_1_and_n_minus_1(k):
    x = _space(n=10)
    with pytest.raises(SimilarityError, match="1 <= k <= n - 1 = 9"):
        mutual_knn(x, x, k=k)


# ----------------------------------------------------------------------- pairwise frame ----
def test_pairwise_similarity_covers_every_ordered_pair_and_metric():
    x = _space(n=120)
    rng = np.random.default_rng(13)
    spaces = {"a": x, "b": x @ _rotation(20, 14), "c": rng.normal(size=(120, 7))}
    out = pairwise_similarity(spaces, k=5)
    assert list(out.columns) == list(SIMILARITY_COLUMNS)
    assert len(out) == 3 * 2 * len(METRICS)
    assert list(zip(out["source"], out["target"]))[:: len(METRICS)] == list(itertools.permutations("abc", 2))
    v = out.set_index(["source", "target", "metric"])["value"]
    assert v[("a", "b", "linear_cka")] == pytest.approx(1.0) and v[("b", "a", "mutual_knn")] == 1.0
    assert v[("a", "c", "linear_cka")] == v[("c", "a", "linear_cka")] == pytest.approx(linear_cka(x, spaces["c"]))
    assert v[("c", "b", "mutual_knn")] == pytest.approx(mutual_knn(spaces["c"], spaces["b"], k=5))


def test_pairwise_similarity_one_metric_and_errors():
    x = _space(n=30)
    out = pairwise_similarity({"a": x, "b": 2 * x}, "linear_cka")
    assert out["metric"].tolist() == ["linear_cka", "linear_cka"]
    with pytest.raises(SimilarityError, match="choose from"):
        pairwise_similarity({"a": x, "b": x}, "rsa")
    with pytest.raises(SimilarityError, match="at least 2 encoders"):
        pairwise_similarity({"a": x})
    with pytest.raises(SimilarityError, match="same samples"):
        pairwise_similarity({"a": x, "b": x[:20]})
