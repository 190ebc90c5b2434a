"""ASIF: a training-free multimodal zero-shot classifier from two unimodal encoders.

Norelli et al. 2023, "ASIF: Coupled data turns unimodal models to multi-modal without
training". Like the paper's method (:func:`semalign.zeroshot.unimodal_zeroshot`) it needs only a
vision encoder, a text encoder and N image–text anchor pairs -- but fits nothing: an image and a
text are compared through their similarities to the anchors of their own modality, which are
comparable because anchor i is one image–text pair.

The relative representation of a row ``x`` (d,) against anchors ``A`` (N, d) of its modality::

    s_i   = cos(x, A_i)                          i = 1..N         (Moschella et al. 2023)
    r_i   = max(s_i, 0)^p   if s_i is among the k largest of s,  else 0
    rel(x) = r / ||r||                                            (N,), zero when r = 0

and the ASIF similarity of an image ``v`` and a text ``t`` is
``cos(rel_img(v), rel_txt(t)) = rel_img(v) · rel_txt(t)`` -- large when the anchors the image
resembles are the pairs whose texts resemble the prompt.

Parameters (ASIF used N = 1.6 M pairs, k = 800, p = 8):

* ``p`` (default :data:`DEFAULT_P` = 8, ASIF's): the exponent acts on cosines, whose scale does
  not depend on N, so ASIF's value carries over; it sharpens the weights towards the most
  similar anchors (cosines 0.9 vs 0.6 weigh 25 : 1). Negative cosines are clipped to 0 first:
  an even power would otherwise turn a dissimilar anchor into a similar one.
* ``k`` (default ``min(N, DEFAULT_K)`` with :data:`DEFAULT_K` = 800, ASIF's own k as an
  absolute count): ASIF's ratio k / N = 0.05 % would keep a single anchor of our pools of
  hundreds, and an image and a prompt would share a non-zero coordinate only if their one
  nearest anchors were the same pair -- most scores would be exactly 0. Sparsifying exists to
  drop the long tail of a huge pool; below 800 pairs there is no such tail to drop, and the
  power p already down-weights the weakly similar anchors, so the default keeps every anchor
  there and the top-k bites only on pools as large as ASIF's. Neither default is tuned on a
  test set: vary k and p to show the sensitivity, or choose them on held-out data.
* ``center`` (default False, as ASIF): subtract each modality's anchor mean from its anchors and
  queries before the cosines -- an option for anisotropic encoders whose raw cosines are all
  high.

The binary zero-shot helper :func:`asif_zeroshot` scores like :mod:`semalign.zeroshot`:
decision score = similarity to the positive prompts minus similarity to the negative prompts,
each averaged over the prompts by :func:`semalign.zeroshot.class_scores` applied to the
relative vectors (``average="scores"``: mean of the cosines; ``"embeddings"``: cosine with the
mean of the L2-normalised prompt vectors), AUROC by :func:`semalign.zeroshot.auroc`.

Arrays only: no model, no file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from semalign._arrays import as_matrix
from semalign.errors import SemalignError
from semalign.zeroshot import auroc, class_scores, l2_normalize

__all__ = [
    "AsifError",
    "AsifResult",
    "DEFAULT_K",
    "DEFAULT_P",
    "asif_scores",
    "asif_zeroshot",
    "relative_representation",
]

DEFAULT_K = 800
DEFAULT_P = 8.0


class AsifError(SemalignError, ValueError):
    """Inputs ASIF cannot use; the message names the argument and the shape or range needed."""


def _matrix(a: Any, name: str) -> np.ndarray:
    return as_matrix(a, name, AsifError, allow_row=True)


def _agree(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str, axis: int, why: str) -> None:
    """Refuse ``a`` and ``b`` whose rows (axis 0) or dims (axis 1) differ, saying ``why``."""
    if a.shape[axis] != b.shape[axis]:
        what = "rows" if axis == 0 else "dims"
        raise AsifError(f"{a_name} has {a.shape[axis]} {what} but {b_name} has {b.shape[axis]}: {why}")


_PAIRS = "anchors are image–text pairs, row i of one with row i of the other"
_VISION = "both must come from the same vision encoder"
_TEXT = "prompts and anchor texts must come from the same text encoder"


def _check_k(k: Any, n_anchors: int) -> int:
    if k is None:
        return min(n_anchors, DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise AsifError(f"k must be a whole number of anchors to keep (or None for "
                        f"min(N, {DEFAULT_K})); got {k!r}")
    if not 1 <= int(k) <= n_anchors:
        raise AsifError(f"k={k} must be between 1 and the number of anchor pairs N={n_anchors}")
    return int(k)


def _check_p(p: Any) -> float:
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise AsifError(f"p must be a positive number (the exponent; ASIF uses 8); got {p!r}") from None
    if not (math.isfinite(p) and p > 0):
        raise AsifError(f"p must be a positive finite number (the exponent; ASIF uses 8); got {p!r}")
    return p


def _relative(x: np.ndarray, anchors: np.ndarray, k: int, p: float, center: bool) -> np.ndarray:
    if center:
        mean = anchors.mean(axis=0)
        x, anchors = x - mean, anchors - mean
    sims = l2_normalize(x) @ l2_normalize(anchors).T                    # (n, N) cosines
    if k < sims.shape[1]:
        # the N - k smallest of each row go to 0 (argpartition: deterministic for one input)
        drop = np.argpartition(sims, sims.shape[1] - k, axis=1)[:, : sims.shape[1] - k]
        np.put_along_axis(sims, drop, 0.0, axis=1)
    return l2_normalize(np.maximum(sims, 0.0) ** p)


def relative_representation(x: Any, anchors: Any, k: int | None = None, p: float = DEFAULT_P,
                            *, center: bool = False) -> np.ndarray:
    """ASIF's sparse relative representation: ``x`` (n, d), ``anchors`` (N, d) -> (n, N).

    Row i: the cosines of ``x_i`` to the N anchors, all but the ``k`` largest set to 0,
    negatives clipped to 0, raised to the power ``p``, L2-normalised (module docstring); an
    all-zero row stays zero. ``k=None`` means ``min(N, DEFAULT_K)``.
    """
    xa = _matrix(x, "x")
    aa = _matrix(anchors, "anchors")
    _agree(xa, "x", aa, "anchors", 1, "both must come from the same encoder")
    return _relative(xa, aa, _check_k(k, len(aa)), _check_p(p), center)


def _spaces(image_emb: Any, prompt_emb: Any, anchor_img: Any, anchor_txt: Any, k: Any, p: Any,
            names: tuple[str, str, str, str] = ("image_emb", "prompt_emb", "anchor_img", "anchor_txt"),
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, float]:
    """The four inputs validated (names as the caller spells them), and k, p checked."""
    v, t, ai, at = (_matrix(a, n) for a, n in zip((image_emb, prompt_emb, anchor_img, anchor_txt), names))
    _agree(ai, names[2], at, names[3], 0, _PAIRS)
    _agree(v, names[0], ai, names[2], 1, _VISION)
    _agree(t, names[1], at, names[3], 1, _TEXT)
    return v, t, ai, at, _check_k(k, len(ai)), _check_p(p)


def asif_scores(image_emb: Any, prompt_emb: Any, anchor_img: Any, anchor_txt: Any,
                k: int | None = None, p: float = DEFAULT_P, *, center: bool = False) -> np.ndarray:
    """ASIF similarity of every image to every prompt -> (n_images, n_prompts).

    ``image_emb`` (n, d_i) and ``anchor_img`` (N, d_i) by one vision encoder; ``prompt_emb``
    (m, d_t) and ``anchor_txt`` (N, d_t) by one text encoder; anchor row i of both is one pair.
    Entry (a, b) = ``rel_img(image_a) · rel_txt(prompt_b)`` in [0, 1] (module docstring), with
    the same ``k``, ``p``, ``center`` for both modalities.
    """
    v, t, ai, at, k, p = _spaces(image_emb, prompt_emb, anchor_img, anchor_txt, k, p)
    return _relative(v, ai, k, p, center) @ _relative(t, at, k, p, center).T


@dataclass
class AsifResult:
    """What :func:`asif_zeroshot` returns: ``auroc``; ``scores`` (n,) positive minus negative
    similarity; ``pos_scores`` / ``neg_scores`` (n,); ``average``; ``k`` and ``p`` used."""

    auroc: float
    scores: np.ndarray
    pos_scores: np.ndarray
    neg_scores: np.ndarray
    average: str
    k: int
    p: float


def asif_zeroshot(image_test_emb: Any, y_test: Any, anchor_image_emb: Any, anchor_text_emb: Any,
                  pos_prompt_emb: Any, neg_prompt_emb: Any, k: int | None = None,
                  p: float = DEFAULT_P, *, center: bool = False,
                  average: str = "scores") -> AsifResult:
    """Binary zero-shot classification with ASIF, beside :func:`semalign.zeroshot.unimodal_zeroshot`.

    Same arguments as the paper's method (test images (n, d_i), binary ``y_test`` (n,), anchor
    pairs (N, d_i) / (N, d_t), positive (m_pos, d_t) and negative (m_neg, d_t) prompts by the
    text encoder), but nothing is fitted: images and prompts are mapped to their relative
    representations against their own modality's anchors, and the decision score is
    ``class_scores(rel_img, rel_pos, average) - class_scores(rel_img, rel_neg, average)``
    (:func:`semalign.zeroshot.class_scores` on the relative vectors). Pass the anchor rows of
    :func:`semalign.zeroshot.anchor_draws` to compare both methods on the same pairs.
    """
    v, pos, ai, at, k, p = _spaces(image_test_emb, pos_prompt_emb, anchor_image_emb, anchor_text_emb, k, p,
                                   ("image_test_emb", "pos_prompt_emb", "anchor_image_emb", "anchor_text_emb"))
    neg = _matrix(neg_prompt_emb, "neg_prompt_emb")
    _agree(neg, "neg_prompt_emb", at, "anchor_text_emb", 1, _TEXT)
    rel_v = _relative(v, ai, k, p, center)
    ps = class_scores(rel_v, _relative(pos, at, k, p, center), average)
    ns = class_scores(rel_v, _relative(neg, at, k, p, center), average)
    s = ps - ns
    return AsifResult(auroc=auroc(y_test, s), scores=s, pos_scores=ps, neg_scores=ns,
                      average=average, k=k, p=p)
