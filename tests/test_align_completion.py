"""ortho and l-ortho below the dimension: the deterministic completion (semalign.align._complete_isometry).

With fewer anchors than dimensions the orthogonal factor U·Vᵀ is fixed on the anchors' range
only; before this completion the SVD's null-space basis decided the rest, and the book's
ortho cells below the dimension moved with the thread count (up to 0.28 AUROC per cell).
These tests pin the rule instead: the completion closest to naive stitching, on any basis.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semalign import align
from semalign.align import Translator


def scaled(a: np.ndarray) -> np.ndarray:
    std = a.std(axis=0, ddof=1)
    return (a - a.mean(0)) / np.where(std == 0, 1.0, std)


def padded(a: np.ndarray, dim: int) -> np.ndarray:
    return np.pad(a, ((0, 0), (0, dim - a.shape[1])))


def completed_reference(m: np.ndarray, rank: int) -> np.ndarray:
    """float64 numpy, literally: pad m to (D, D), U·Vᵀ on its range plus the orthogonal factor
    of Π_U⊥ Π_V⊥ (its D − rank non-zero singular values), cut back to m's shape."""
    d1, d2 = m.shape
    dim = max(d1, d2)
    mp = np.zeros((dim, dim))
    mp[:d1, :d2] = m
    u, s, vt = np.linalg.svd(mp)
    u, v = u[:, :rank], vt[:rank].T
    q = (np.eye(dim) - u @ u.T) @ (np.eye(dim) - v @ v.T)
    qu, _, qvt = np.linalg.svd(q)
    full = u @ v.T + qu[:, : dim - rank] @ qvt[: dim - rank]
    return full[:d1, :d2]


def anchors(rng, n, d1, d2):
    x = rng.normal(size=(n, d1)) * rng.uniform(0.5, 2, size=d1) + 3.0
    y = x @ rng.normal(size=(d1, d2)) / np.sqrt(d1) + 0.3 * rng.normal(size=(n, d2))
    return x, y


# (N, d1, d2): square, padded source, cut source, and 2(N-1) >= D (the whole-space route)
SHAPES = [(6, 12, 12), (5, 8, 15), (5, 15, 8), (40, 45, 60)]


@pytest.mark.parametrize("n,d1,d2", SHAPES)
def test_ortho_below_the_dimension_is_the_reference_completion(n, d1, d2):
    rng = np.random.default_rng(n + d1 + d2)
    x, y = anchors(rng, n, d1, d2)
    t = Translator("ortho").fit(x, y)
    xs, ys = scaled(x), scaled(y)
    want = completed_reference(xs.T @ ys, n - 1)          # centred: rank N - 1
    np.testing.assert_allclose(t.R_.numpy(), want, atol=1e-9)
    # still the Procrustes optimum on the anchors, and an isometry (rows or columns orthonormal)
    r = t.R_.numpy()
    gram = r @ r.T if d1 <= d2 else r.T @ r
    np.testing.assert_allclose(gram, np.eye(min(d1, d2)), atol=1e-10)
    dim = max(d1, d2)
    fit = padded(xs, dim) @ align._polar(torch.from_numpy(padded(xs, dim).T @ padded(ys, dim))).numpy()
    np.testing.assert_allclose(xs @ r, fit[:, :d2], atol=1e-9)


@pytest.mark.parametrize("n,d1,d2", SHAPES)
def test_l_ortho_below_the_dimension_is_the_reference_completion(n, d1, d2):
    rng = np.random.default_rng(7 * n + d1)
    x, y = anchors(rng, n, d1, d2)
    r_lin = Translator("linear").fit(x, y).R_.numpy()
    t = Translator("l-ortho").fit(x, y)
    np.testing.assert_allclose(t.R_.numpy(), completed_reference(r_lin, n - 1), atol=1e-9)
    # the batched path (fit_pairs: shared source SVD) gives the same map
    (cell,) = [c for c in align.fit_pairs({"x": x, "y": y}, ["l-ortho"], pairs=[("x", "y")])]
    np.testing.assert_allclose(cell.translator.R_.numpy(), t.R_.numpy(), atol=1e-12)


def test_the_completion_is_the_fit_tilted_toward_naive_in_the_limit():
    """Ties broken toward "no transformation": Procrustes of m + εI tends to the completion."""
    rng = np.random.default_rng(3)
    x, y = anchors(rng, 8, 20, 20)
    xs, ys = scaled(x), scaled(y)
    m = xs.T @ ys
    eps = 1e-7 * np.linalg.svd(m, compute_uv=False)[6]
    u, _, vt = np.linalg.svd(m + eps * np.eye(20))
    np.testing.assert_allclose(Translator("ortho").fit(x, y).R_.numpy(), u @ vt, atol=1e-5)


def test_the_completion_depends_on_the_subspaces_not_their_bases():
    rng = np.random.default_rng(11)
    for d1, d2, r in [(30, 30, 4), (20, 35, 6), (35, 20, 6), (24, 24, 15)]:
        u = np.linalg.qr(rng.normal(size=(d1, r)))[0]
        v = np.linalg.qr(rng.normal(size=(d2, r)))[0]
        q = np.linalg.qr(rng.normal(size=(r, r)))[0]                 # another basis of both
        a = align._complete_isometry(torch.from_numpy(u), torch.from_numpy(v), d1, d2).numpy()
        b = align._complete_isometry(torch.from_numpy(u @ q), torch.from_numpy(v @ q), d1, d2).numpy()
        np.testing.assert_allclose(a, b, atol=1e-12)
        np.testing.assert_allclose(a @ v, u, atol=1e-12) if d1 >= d2 else None
        np.testing.assert_allclose(u.T @ a, v.T, atol=1e-12)         # u·vᵀ on span(u)


def test_below_the_dimension_a_last_bit_change_of_the_anchors_moves_nothing():
    """The bug it fixes: the SVD's null-space basis is decided by rounding noise, so the same
    anchors perturbed in their last bits (or on another thread count) gave another map."""
    rng = np.random.default_rng(5)
    x, y = anchors(rng, 30, 64, 48)
    for method in ("ortho", "l-ortho"):
        a = Translator(method).fit(x, y).R_.numpy()
        for _ in range(3):
            b = Translator(method).fit(x * (1 + 1e-13 * rng.normal(size=x.shape)), y).R_.numpy()
            np.testing.assert_allclose(a, b, atol=1e-8)


def test_float32_vision_shape_agrees_with_float64():
    """The book's vision case: 200 anchors of 1280-d encoders, float32."""
    rng = np.random.default_rng(2)
    x, y = anchors(rng, 200, 1280, 1280)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    test = rng.normal(size=(20, 1280)) * 2 + 3
    for method in ("ortho", "l-ortho"):
        t32, t64 = Translator(method).fit(x32, y32), Translator(method).fit(x, y)
        assert t32.dtype_ == torch.float32
        np.testing.assert_allclose(t32.R_.numpy(), t64.R_.numpy(), atol=2e-4)
        np.testing.assert_allclose(t32.transform(test.astype(np.float32)), t64.transform(test),
                                   rtol=1e-3, atol=1e-3)


def test_full_rank_never_completes(monkeypatch):
    """At or above the dimension the factor is unique: plain U·Vᵀ of the SVD, as before."""
    def boom(*a, **k):
        raise AssertionError("completed a full-rank factor")

    monkeypatch.setattr(align, "_complete_isometry", boom)
    rng = np.random.default_rng(9)
    for n, d1, d2 in [(40, 12, 10), (13, 12, 12), (40, 10, 30)]:
        x, y = anchors(rng, n, d1, d2)
        for method in ("ortho", "l-ortho"):
            r = Translator(method).fit(x, y).R_.numpy()
            np.testing.assert_allclose(r @ r.T if d1 <= d2 else r.T @ r, np.eye(min(d1, d2)), atol=1e-10)
    with pytest.raises(AssertionError, match="completed"):
        Translator("ortho").fit(*anchors(rng, 12, 12, 12))  # N - 1 = 11 < 12: below the dimension
