"""ASIF zero-shot on constructed image–text worlds where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from semalign.asif import (
    DEFAULT_K,
    DEFAULT_P,
    AsifError,
    asif_scores,
    asif_zeroshot,
    relative_representation,
)
from semalign.errors import SemalignError
from semalign.zeroshot import class_scores


def _coupled_world(seed: int, n_pairs: int = 500, n_test: int = 400, h: int = 16):
    """Images and texts generated from the same latent samples by two different encoders.

    A latent z (h,) holds the finding in its first coordinate (about +1.5 present, -1.5 absent)
    and 15 nuisance coordinates; the "vision encoder" is a nonlinear map of z into 48
    dimensions, the "text encoder" a linear map into 32, each with its own noise. Anchor pair i
    is one latent seen by both; prompts are texts of latents with / without the finding.
    Returns test images (n_test, 48), y (n_test,), anchor images (N, 48), anchor texts (N, 32),
    positive and negative prompts (10, 32).
    """
    rng = np.random.default_rng(seed)
    w_img, w_txt = rng.normal(size=(h, 48)), rng.normal(size=(h, 32))

    def image(z):
        return np.tanh(z @ w_img / 3) + 0.05 * rng.normal(size=(len(z), 48))

    def text(z):
        return z @ w_txt + 0.5 * rng.normal(size=(len(z), 32))

    def latent(y):
        z = rng.normal(size=(len(y), h))
        z[:, 0] = np.where(y == 1, 1.5, -1.5) + 0.5 * rng.normal(size=len(y))
        return z

    z_pairs = latent(rng.integers(2, size=n_pairs))
    y = np.r_[np.ones(n_test // 2, int), np.zeros(n_test // 2, int)]
    return (image(latent(y)), y, image(z_pairs), text(z_pairs),
            text(latent(np.ones(10, int))), text(latent(np.zeros(10, int))))


# ------------------------------------------------------------------- known answers ----
def test_relative_representation_known_values():
    x = np.array([[1.0, 0.0]])
    anchors = np.array([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0], [1.0, 1.0]])  # cosines 1, 0, -1, 1/√2
    r = relative_representation(x, anchors, k=2, p=1)
    np.testing.assert_allclose(r, [[1.0, 0.0, 0.0, 2**-0.5]] / np.sqrt(1.5))
    r = relative_representation(x, anchors, k=2, p=2)
    np.testing.assert_allclose(r, [[1.0, 0.0, 0.0, 0.5]] / np.sqrt(1.25))
    # k = N keeps every anchor, and negatives are clipped to 0 before the power
    r = relative_representation(x, anchors, k=4, p=2)
    np.testing.assert_allclose(r, [[1.0, 0.0, 0.0, 0.5]] / np.sqrt(1.25))


def test_relative_representation_is_zero_when_every_anchor_is_dissimilar():
    r = relative_representation([[1.0, 0.0]], [[-1.0, 0.0], [0.0, 1.0]], k=2)
    np.testing.assert_array_equal(r, [[0.0, 0.0]])
    assert asif_scores([[1.0, 0.0]], [[1.0]], [[-1.0, 0.0], [0.0, 1.0]], [[1.0], [1.0]], k=2)[0, 0] == 0.0


def test_relative_representation_keeps_at_most_k_anchors_and_unit_rows():
    rng = np.random.default_rng(0)
    x, anchors = rng.normal(size=(30, 5)) + 1.0, rng.normal(size=(200, 5)) + 1.0
    r = relative_representation(x, anchors, k=17)
    assert r.shape == (30, 200) and (r >= 0).all()
    assert ((r > 0).sum(axis=1) <= 17).all()
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0)
    # the kept anchors are the row's 17 most similar ones
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (anchors / np.linalg.norm(anchors, axis=1, keepdims=True)).T
    top = np.argsort(-cos, axis=1)[:, :17]
    assert all(set(np.flatnonzero(r[i])) <= set(top[i]) for i in range(30))


def test_default_k_is_asifs_capped_at_the_number_of_pairs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3)) + 2.0
    small = rng.normal(size=(50, 3)) + 2.0
    np.testing.assert_array_equal(relative_representation(x, small), relative_representation(x, small, k=50))
    big = rng.normal(size=(DEFAULT_K + 100, 3)) + 2.0
    assert ((relative_representation(x, big) > 0).sum(axis=1) <= DEFAULT_K).all()
    assert DEFAULT_P == 8.0


def test_scores_are_the_product_of_the_two_relative_representations():
    img, _, a_img, a_txt, pos, _ = _coupled_world(2, n_pairs=60, n_test=8)
    s = asif_scores(img, pos, a_img, a_txt, k=20, p=3)
    assert s.shape == (8, 10) and (s >= 0).all() and (s <= 1 + 1e-12).all()
    want = relative_representation(img, a_img, 20, 3) @ relative_representation(pos, a_txt, 20, 3).T
    np.testing.assert_allclose(s, want)


def test_scores_do_not_change_under_a_rotation_or_rescaling_of_either_space():
    img, _, a_img, a_txt, pos, _ = _coupled_world(3, n_pairs=80, n_test=10)
    q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(48, 48)))
    base = asif_scores(img, pos, a_img, a_txt, k=30)
    np.testing.assert_allclose(asif_scores(3.0 * img @ q, pos, a_img @ q, a_txt, k=30), base, atol=1e-12)
    np.testing.assert_allclose(asif_scores(img, 0.1 * pos, a_img, 7.0 * a_txt, k=30), base, atol=1e-12)


@pytest.mark.parametrize("average", ["scores", "embeddings"])
def test_zeroshot_averages_prompts_like_semalign_zeroshot(average):
    img, y, a_img, a_txt, pos, neg = _coupled_world(5, n_pairs=100, n_test=20)
    r = asif_zeroshot(img, y, a_img, a_txt, pos, neg, k=40, p=4, average=average)
    rel = lambda e, a: relative_representation(e, a, 40, 4)  # noqa: E731
    np.testing.assert_allclose(r.pos_scores, class_scores(rel(img, a_img), rel(pos, a_txt), average))
    np.testing.assert_allclose(r.scores, r.pos_scores - r.neg_scores)
    if average == "scores":  # the rows are unit vectors: the mean of the score matrix's rows
        np.testing.assert_allclose(r.neg_scores, asif_scores(img, neg, a_img, a_txt, k=40, p=4).mean(axis=1))
    assert (r.k, r.p, r.average) == (40, 4.0, average)


# ------------------------------------------------------------- coupled vs decoupled ----
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coupled_pairs_classify_well(seed):
    img, y, a_img, a_txt, pos, neg = _coupled_world(seed)
    assert asif_zeroshot(img, y, a_img, a_txt, pos, neg).auroc > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decoupled_pairs_are_at_chance(seed):
    # shuffling the pairs keeps both encoders and both pools but breaks row i = one sample:
    # every shuffle is a random classifier, their mean AUROC is 0.5
    img, y, a_img, a_txt, pos, neg = _coupled_world(seed)
    aurocs = [
        asif_zeroshot(img, y, a_img, a_txt[np.random.default_rng([seed, r]).permutation(len(a_txt))], pos, neg).auroc
        for r in range(20)
    ]
    assert abs(np.mean(aurocs) - 0.5) < 0.1
    assert max(aurocs) < 0.8


# ------------------------------------------------------------------------ validation ----
@pytest.mark.parametrize("k", [0, -1, 11, 2.5, True, "3"])
def test_k_must_be_a_count_of_at_most_n_pairs(k):
    with pytest.raises(AsifError, match="k"):
        asif_scores(np.ones((2, 3)), np.ones((1, 2)), np.ones((10, 3)), np.ones((10, 2)), k=k)


@pytest.mark.parametrize("p", [0, -2.0, float("nan"), float("inf"), "eight", None])
def test_p_must_be_a_positive_finite_number(p):
    with pytest.raises(AsifError, match="p must be a positive"):
        relative_representation(np.ones((2, 3)), np.ones((10, 3)), k=5, p=p)


def test_mismatched_shapes_are_refused_with_the_argument_named():
    img, y, a_img, a_txt, pos, neg = _coupled_world(6, n_pairs=30, n_test=10)
    with pytest.raises(AsifError, match="anchor_image_emb has 30 rows but anchor_text_emb has 29"):
        asif_zeroshot(img, y, a_img, a_txt[:29], pos, neg)
    with pytest.raises(AsifError, match="image_test_emb has 47 dims"):
        asif_zeroshot(img[:, :47], y, a_img, a_txt, pos, neg)
    with pytest.raises(AsifError, match="neg_prompt_emb has 31 dims"):
        asif_zeroshot(img, y, a_img, a_txt, pos, neg[:, :31])
    with pytest.raises(AsifError, match="prompt_emb has 31 dims"):
        asif_scores(img, pos[:, :31], a_img, a_txt)
    with pytest.raises(AsifError, match="NaN"):
        asif_scores(img, pos, a_img * np.nan, a_txt)
    with pytest.raises(AsifError, match=r"\(n, d\)"):
        relative_representation(np.ones((2, 2, 2)), a_img)
    assert issubclass(AsifError, SemalignError) and issubclass(AsifError, ValueError)


def test_one_class_labels_are_refused_like_the_papers_method():
    img, y, a_img, a_txt, pos, neg = _coupled_world(7, n_pairs=30, n_test=10)
    with pytest.raises(ValueError, match="one class"):
        asif_zeroshot(img, np.ones(10, int), a_img, a_txt, pos, neg)
