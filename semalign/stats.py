"""Standard errors of AUROCs: how much a number would move with another test set of the same size.

The book reports, beside every vision result, the standard error that comes from its finite test
set, so that a reader can tell a 5 % difference from noise:

* :func:`delong` — the AUROC of binary scores and its DeLong (1988) standard error, from the
  scores themselves (exact placement values, ties counted one half);
* :func:`auroc_se_hanley` — the Hanley & McNeil (1982) approximation from an AUROC and the two
  class counts alone, for results that no longer carry their scores;
* :func:`macro_auroc_se_hanley` — the same for a one-vs-rest macro AUROC over several classes
  (each class's AUROC treated as independent: an approximation, stated where it is used);
* :func:`se_of_mean` — the standard error of a mean of independent estimates,
  ``sqrt(sum se_i^2) / k``.

Pure numpy; no model, no file. The standard error describes the test-set sampling only: the
spread over anchor draws (the paper's ± std) is a different quantity and is reported separately.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["binary_auroc", "auroc_se_hanley", "macro_auroc_se_hanley", "delong", "se_of_mean"]


def binary_auroc(positive: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """AUROC of ``scores`` (n,) for the boolean mask ``positive`` (n,), ties counted one half:
    the Mann–Whitney statistic from midranks, ``(Σ ranks of the positives − n₁(n₁+1)/2) / (n₁ n₀)``.

    The same number as ``sklearn.metrics.roc_auc_score(positive, scores)`` (the area under the
    trapezoidal ROC curve) up to float rounding, at a fraction of its per-call cost — the book
    scores tens of thousands of stitched cells. Raises ``ValueError`` for non-finite scores or a
    missing class."""
    pos = np.asarray(positive, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if pos.ndim != 1 or s.shape != pos.shape:
        raise ValueError(f"AUROC: labels and scores must be 1-D and of one length, got {pos.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"AUROC: the scores hold {int((~np.isfinite(s)).sum())} NaN/inf values")
    n1 = int(pos.sum())
    n0 = len(pos) - n1
    if n1 == 0 or n0 == 0:
        raise ValueError(f"AUROC needs both classes, got {n1} positives and {n0} negatives")
    ranks = _midranks(s)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def auroc_se_hanley(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley–McNeil standard error of an AUROC ``auc`` measured on ``n_pos`` positives and
    ``n_neg`` negatives (Radiology 143:29–36, 1982, eq. 2 with its exponential approximations
    ``Q1 = A / (2 - A)``, ``Q2 = 2 A^2 / (1 + A)``). NaN when a class is empty or ``auc`` is NaN."""
    a, n1, n0 = float(auc), int(n_pos), int(n_neg)
    if not np.isfinite(a) or n1 < 1 or n0 < 1:
        return float("nan")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"auroc_se_hanley: an AUROC lies in [0, 1], got {a}")
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    return float(np.sqrt(max(var, 0.0)))


def macro_auroc_se_hanley(auc: float, class_counts: Mapping | Sequence[int]) -> float:
    """Standard error of a one-vs-rest macro AUROC ``auc`` over classes with ``class_counts``
    test samples each: every class's AUROC is taken to equal ``auc`` and to be independent of
    the others, so ``SE = sqrt(sum_c SE_c^2) / C`` with ``SE_c`` the Hanley–McNeil error of class
    c against the rest. An approximation (the classes share their test samples); for two classes
    it is the binary error."""
    counts = [int(c) for c in (class_counts.values() if isinstance(class_counts, Mapping) else class_counts)]
    if len(counts) < 2:
        raise ValueError(f"macro_auroc_se_hanley: need at least 2 classes, got counts {counts}")
    n = sum(counts)
    if len(counts) == 2:
        return auroc_se_hanley(auc, counts[1], counts[0])
    return se_of_mean(auroc_se_hanley(auc, c, n - c) for c in counts)


def _midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` with ties given their mean rank (midranks), float64."""
    from scipy.stats import rankdata

    return rankdata(x, method="average").astype(np.float64)


def delong(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``(auroc, se)`` of binary ``scores`` against labels ``y`` (1 = positive), with DeLong,
    DeLong & Clarke-Pearson's (Biometrics 44:837–845, 1988) variance from the placement values,
    computed with midranks (Sun & Xu 2014). Ties count one half. Raises ``ValueError`` for
    non-binary labels, a missing class, or non-finite scores."""
    y = np.asarray(y)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"delong: y and scores must be 1-D and of one length, got {y.shape} and {s.shape}")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError(f"delong: labels must be 0/1, got {sorted(set(np.unique(y).tolist()))[:5]}")
    if not np.isfinite(s).all():
        raise ValueError("delong: scores must be finite")
    pos, neg = s[y == 1], s[y == 0]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise ValueError(f"delong: both classes are needed, got {m} positives and {n} negatives")
    tx, ty, tz = _midranks(pos), _midranks(neg), _midranks(np.concatenate([pos, neg]))
    auc = float(tz[:m].sum() / (m * n) - (m + 1) / (2 * n))
    v01 = (tz[:m] - tx) / n           # placement of each positive among the negatives
    v10 = 1.0 - (tz[m:] - ty) / m     # placement of each negative among the positives
    var = (np.var(v01, ddof=1) / m if m > 1 else 0.0) + (np.var(v10, ddof=1) / n if n > 1 else 0.0)
    return auc, float(np.sqrt(max(var, 0.0)))


def se_of_mean(ses: Iterable[float]) -> float:
    """Standard error of the mean of ``k`` independent estimates with standard errors ``ses``:
    ``sqrt(sum se^2) / k``. NaN for none, or when any is NaN."""
    a = np.asarray(list(ses), dtype=np.float64)
    if a.size == 0 or not np.isfinite(a).all():
        return float("nan")
    return float(np.sqrt(np.sum(a * a)) / a.size)
