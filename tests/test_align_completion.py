"""ortho and l-ortho below the dimension: the partial isometry U_r·V_rᵀ (semalign.align._polar).

With fewer anchors than dimensions the orthogonal factor U·Vᵀ is fixed on the anchors' range
only. Before, the SVD's null-space basis decided the rest, and the book's ortho cells below the
dimension moved with the thread count (up to 0.28 AUROC per cell). These tests pin the rule:
the rank-r part alone, the mean of every equally good completion, on any basis and machine.
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


def partial_reference(m: np.ndarray, rank: int) -> np.ndarray:
    """float64 numpy, literally: pad m to (D, D), keep U·Vᵀ of its top ``rank`` singular
    directions, cut back to m's shape."""
    d1, d2 = m.shape
    dim = max(d1, d2)
    mp = np.zeros((dim, dim))
    mp[:d1, :d2] = m
    u, _, vt = np.linalg.svd(mp)
    return (u[:, :rank] @ vt[:rank])[:d1, :d2]


def anchors(rng, n, d1, d2):
    x = rng.normal(size=(n, d1)) * rng.uniform(0.5, 2, size=d1) + 3.0
    y = x @ rng.normal(size=(d1, d2)) / np.sqrt(d1) + 0.3 * rng.normal(size=(n, d2))
    return x, y


def assert_partial_isometry(r: np.ndarray, rank: int, atol: float = 1e-10) -> None:
    p = r @ r.T                                   # a projector of rank `rank`
    np.testing.assert_allclose(p @ p, p, atol=atol)
    assert abs(np.trace(p) - rank) < 1e3 * atol


# (N, d1, d2): square, padded source, cut source, and N - 1 close to the dimension
SHAPES = [(6, 12, 12), (5, 8, 15), (5, 15, 8), (40, 45, 60)]


@pytest.mark.parametrize("n,d1,d2", SHAPES)
def test_ortho_below_the_dimension_is_the_rank_r_part(n, d1, d2):
    rng = np.random.default_rng(n + d1 + d2)
    x, y = anchors(rng, n, d1, d2)
    t = Translator("ortho").fit(x, y)
    xs, ys = scaled(x), scaled(y)
    r = t.R_.numpy()
    np.testing.assert_allclose(r, partial_reference(xs.T @ ys, n - 1), atol=1e-9)  # centred: rank N - 1
    assert_partial_isometry(r, n - 1)
    # still the Procrustes fit on the anchors: any full orthogonal factor maps them the same way
    dim = max(d1, d2)
    u, _, vt = np.linalg.svd(padded(xs, dim).T @ padded(ys, dim))
    np.testing.assert_allclose(xs @ r, (padded(xs, dim) @ (u @ vt))[:, :d2], atol=1e-9)


@pytest.mark.parametrize("n,d1,d2", SHAPES)
def test_l_ortho_below_the_dimension_is_the_rank_r_part(n, d1, d2):
    rng = np.random.default_rng(7 * n + d1)
    x, y = anchors(rng, n, d1, d2)
    r_lin = Translator("linear").fit(x, y).R_.numpy()
    t = Translator("l-ortho").fit(x, y)
    np.testing.assert_allclose(t.R_.numpy(), partial_reference(r_lin, n - 1), atol=1e-9)
    assert_partial_isometry(t.R_.numpy(), n - 1)
    # the batched path (fit_pairs: shared source SVD) gives the same map
    (cell,) = list(align.fit_pairs({"x": x, "y": y}, ["l-ortho"], pairs=[("x", "y")]))
    np.testing.assert_allclose(cell.translator.R_.numpy(), t.R_.numpy(), atol=1e-12)


def test_it_is_the_mean_of_two_equally_good_orthogonal_fits():
    """R_full = U_r V_rᵀ + C (a plain SVD's completion C) is one Procrustes optimum; so is
    U_r V_rᵀ − C. Their mean is what ortho returns: no direction the anchors leave free is used."""
    rng = np.random.default_rng(3)
    x, y = anchors(rng, 8, 20, 20)
    xs, ys = scaled(x), scaled(y)
    u, _, vt = np.linalg.svd(xs.T @ ys)
    full = u @ vt
    mine = Translator("ortho").fit(x, y).R_.numpy()
    other = 2 * mine - full
    np.testing.assert_allclose(other @ other.T, np.eye(20), atol=1e-9)          # orthogonal too
    best = np.linalg.norm(xs @ full - ys)
    assert abs(np.linalg.norm(xs @ other - ys) - best) < 1e-9                   # and as good


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


@pytest.mark.parametrize("n,d1,d2", [(40, 12, 10), (13, 12, 12), (40, 10, 30)])
def test_full_rank_is_an_isometry(n, d1, d2):
    """At or above the dimension the factor is unique and orthogonal, as always."""
    x, y = anchors(np.random.default_rng(n * d2), n, d1, d2)
    for method in ("ortho", "l-ortho"):
        r = Translator(method).fit(x, y).R_.numpy()
        np.testing.assert_allclose(r @ r.T if d1 <= d2 else r.T @ r, np.eye(min(d1, d2)), atol=1e-10)
