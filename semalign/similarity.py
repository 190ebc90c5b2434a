"""How alike two encoders' spaces are: representational similarity on the same samples.

The "Beyond the paper" chapter asks why some encoder pairs stitch better than others. Two
measures of how similar two embeddings of the SAME n samples are (row i of ``x`` and row i of
``y`` embed sample i), both in [0, 1] and both symmetric in (x, y):

* :func:`linear_cka` -- linear centred kernel alignment (Kornblith et al. 2019, "Similarity of
  neural network representations revisited"): invariant to orthogonal transforms and isotropic
  scaling of either space, not to arbitrary invertible linear maps.
* :func:`mutual_knn` -- mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic
  representation hypothesis"): the mean fraction of each sample's k nearest neighbours that the
  two spaces share; invariant to rotations and to rescaling any row.

:func:`pairwise_similarity` evaluates them over all ordered pairs of a set of encoders into a
tidy frame ``(source, target, metric, value)``, to set beside each pair's stitched AUROC.

Arrays only: no model, no file.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from semalign._arrays import as_matrix
from semalign.errors import SemalignError

__all__ = [
    "METRICS",
    "SIMILARITY_COLUMNS",
    "SimilarityError",
    "distinct_rows",
    "linear_cka",
    "mutual_knn",
    "pairwise_similarity",
]

SIMILARITY_COLUMNS: tuple[str, ...] = ("source", "target", "metric", "value")
# rows of the (n, n) cosine matrix computed at once in mutual_knn: bounds memory to 1024·n floats
_KNN_BLOCK = 1024


class SimilarityError(SemalignError, ValueError):
    """Embeddings that cannot be compared; the message names the argument and the shape needed."""


def _paired(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_matrix(x, "x", SimilarityError), as_matrix(y, "y", SimilarityError)
    if x.shape[0] != y.shape[0]:
        raise SimilarityError(f"x has {x.shape[0]} rows but y has {y.shape[0]}: both must embed the "
                              f"same n samples, row i of x and row i of y the same sample")
    return x, y


def _centred_unit(m: np.ndarray, name: str) -> np.ndarray:
    """Columns centred, then the whole matrix scaled to unit Frobenius norm: (n, d) -> (n, d)."""
    c = m - m.mean(axis=0)
    norm = np.linalg.norm(c)
    # relative test: centring a constant column leaves rounding residue, not signal
    if norm <= 1e-12 * max(np.linalg.norm(m), np.finfo(np.float64).tiny):
        raise SimilarityError(f"{name} is the same vector for every sample: CKA is undefined")
    return c / norm


def linear_cka(x: Any, y: Any) -> float:
    """Linear CKA of two embeddings of the same samples: ``x`` (n, d1), ``y`` (n, d2) -> float.

    With ``X``, ``Y`` the column-centred matrices (each feature minus its mean over the n
    samples)::

        CKA(X, Y) = ||Yᵀ X||²_F / (||Xᵀ X||_F · ||Yᵀ Y||_F)

    the HSIC of the linear kernels normalised (Kornblith et al. 2019, eq. 5 in its feature-space
    form). Equal to 1 iff the Gram matrices X Xᵀ and Y Yᵀ are proportional, e.g. Y = c X Q
    with c != 0 and Q (d1, d2) with orthonormal rows (an isometry into a larger space). The
    cross term is also ``<X Xᵀ, Y Yᵀ>_F`` (sample-space Gram matrices), which is what is computed
    when a space has more features than samples (same value, smaller matrices). Both inputs
    are scaled to unit Frobenius norm before the products (CKA is scale invariant) so the
    float64 products neither overflow nor lose the small terms; the result is clipped to
    [0, 1] against rounding.

    Raises :class:`SimilarityError` when either space is constant over the samples (CKA is
    0/0) or n < 2.
    """
    x, y = _paired(x, y)
    if x.shape[0] < 2:
        raise SimilarityError(f"linear_cka needs at least 2 samples; got n={x.shape[0]}")
    x, y = _centred_unit(x, "x"), _centred_unit(y, "y")
    n = x.shape[0]
    if max(x.shape[1], y.shape[1]) <= n:
        cross = np.linalg.norm(y.T @ x) ** 2
        norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    else:
        kx, ky = x @ x.T, y @ y.T
        cross = float(np.vdot(kx, ky))
        norm_x, norm_y = np.linalg.norm(kx), np.linalg.norm(ky)
    return float(np.clip(cross / (norm_x * norm_y), 0.0, 1.0))


def _knn(z: np.ndarray, k: int) -> np.ndarray:
    """Indices (n, k) of each row's k nearest other rows by cosine, ties to the lower index."""
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    n = len(z)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, _KNN_BLOCK):
        stop = min(start + _KNN_BLOCK, n)
        sims = z[start:stop] @ z.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # self is no neighbour
        out[start:stop] = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return out


def mutual_knn(x: Any, y: Any, k: int = 10) -> float:
    """Mutual k-NN alignment of two embeddings of the same samples -> float in [0, 1].

    ``x`` (n, d1), ``y`` (n, d2). With ``N_x(i)`` the k samples j != i of largest cosine
    similarity to sample i in x (rows L2-normalised; ties to the lower index), and ``N_y(i)``
    the same in y (Huh et al. 2024)::

        m_kNN(x, y) = 1/n · sum_i |N_x(i) ∩ N_y(i)| / k

    1 when the two spaces order every sample's neighbours alike up to k; for unrelated spaces
    its expectation is k / (n - 1) (each of y's k neighbours falls among x's k by chance).
    ``k``: 1 <= k <= n - 1 (10 as in Huh et al.'s smaller settings). Invariant to rotations and
    to scaling rows of either space, not to translations. Exact duplicate samples (e.g. the
    same report twice) tie, and ties go to the lower index in both spaces, so duplicates count
    as shared neighbours: de-duplicate the samples first if that is not wanted.
    """
    x, y = _paired(x, y)
    n = x.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 1:
        raise SimilarityError(f"k must be a whole number with 1 <= k <= n - 1 = {n - 1} (neighbours "
                              f"other than the sample itself); got k={k!r}")
    nx, ny = _knn(x, int(k)), _knn(y, int(k))
    # neighbour lists hold distinct indices, so equal pairs count the intersection exactly
    shared = (nx[:, :, None] == ny[:, None, :]).sum(axis=(1, 2))
    return float(shared.mean() / k)


METRICS: dict[str, Callable[..., float]] = {"linear_cka": linear_cka, "mutual_knn": mutual_knn}


def distinct_rows(embeddings: Mapping[str, Any]) -> np.ndarray:
    """Indices of the first occurrence of every distinct sample -> (m,) ascending int64.

    ``embeddings``: ``{encoder name: (n, d_name)}`` of the same n samples. A sample repeats an
    earlier one when its rows are equal in EVERY encoder (the same report twice): such repeats
    are ties of :func:`mutual_knn` and extra weight in :func:`linear_cka`, so drop them first
    with ``{name: e[idx] for name, e in embeddings.items()}``.
    """
    arrays = [as_matrix(a, f"embeddings[{name!r}]", SimilarityError) for name, a in embeddings.items()]
    if not arrays:
        raise SimilarityError("distinct_rows needs at least one encoder's embeddings")
    if len({a.shape[0] for a in arrays}) != 1:
        raise SimilarityError(f"every encoder must embed the same samples (same rows); got rows "
                              f"{ {name: np.shape(a)[0] for name, a in embeddings.items()} }")
    _, first = np.unique(np.hstack(arrays), axis=0, return_index=True)
    return np.sort(first).astype(np.int64)


def pairwise_similarity(embeddings: Mapping[str, Any], metric: str | Sequence[str] = tuple(METRICS),
                        *, k: int = 10):
    """Similarity of every ordered pair of encoders -> DataFrame ``(source, target, metric, value)``.

    ``embeddings``: ``{encoder name: (n, d_name)}``, at least two encoders, all embedding the
    same n samples in the same row order. ``metric``: a name of :data:`METRICS` or a sequence of
    them; ``k`` is passed to :func:`mutual_knn`. Both metrics are symmetric, so each unordered
    pair is computed once and written for both orders (the frame then merges row by row with a
    stitching frame's ordered ``(source, target)`` pairs). Rows follow
    ``itertools.permutations`` of the names in the given order, metrics in the given order.
    """
    import pandas as pd

    names = list(embeddings)
    metrics = [metric] if isinstance(metric, str) else list(metric)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise SimilarityError(f"unknown metrics {unknown or metrics}: choose from {list(METRICS)}")
    if len(names) < 2:
        raise SimilarityError(f"pairwise_similarity needs at least 2 encoders; got {names}")
    arrays = {name: as_matrix(embeddings[name], f"embeddings[{name!r}]", SimilarityError) for name in names}
    rows_per = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(rows_per.values())) != 1:
        raise SimilarityError(f"every encoder must embed the same samples (same rows); got rows {rows_per}")
    values: dict[tuple[str, str, str], float] = {}
    for a, b in itertools.combinations(names, 2):
        for m in metrics:
            kwargs = {"k": k} if m == "mutual_knn" else {}
            values[(a, b, m)] = values[(b, a, m)] = METRICS[m](arrays[a], arrays[b], **kwargs)
    rows = [(s, t, m, values[(s, t, m)]) for s, t in itertools.permutations(names, 2) for m in metrics]
    return pd.DataFrame(rows, columns=list(SIMILARITY_COLUMNS))
