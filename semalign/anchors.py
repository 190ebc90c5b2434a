"""Which anchors to pair: selection strategies over an anchor pool (the "Beyond the paper" chapter).

Anchors are the paired samples the transforms of :mod:`semalign.align` are fitted on -- the
costly part of the method (two encoders run on the same samples, or credentialed image–report
pairs). The paper draws them uniformly at random; this module adds label-free *coverage*
strategies and a class-stratified one, all choosing ``n`` rows of an anchor pool embedded in
the SOURCE space, so the same rows can then be looked up in every target encoder's pool.

Every strategy has one signature::

    select(pool_emb (P, d), n, *, seed=0, run=0, labels=None) -> indices (n,) int64

``n`` distinct row indices of the pool (without replacement), a pure function of its inputs.
The randomness of one selection comes from ``numpy.random.default_rng([seed, run])`` -- the
generator of the stitching grid's anchor draws -- so ``run`` numbers the repeated draws of a
curve exactly as :func:`semalign.stitching.stitch_grid` does. ``labels`` (P,) is read by
``stratified`` only; the label-free strategies ignore it.

* ``random``: ``default_rng([seed, run]).permutation(P)[:n]``, the very draw of
  :func:`semalign.stitching.stitch_grid` (its run r, first n) -- the paper's uniform sampling.
  :func:`semalign.zeroshot.anchor_draws` takes the same set and sorts it.
* ``kmeans``: k-means with ``n`` centroids on the pool, then for each centroid its nearest pool
  sample (distinct samples guaranteed: see :func:`kmeans`).
* ``farthest``: greedy farthest-point sampling from a seeded first point -- every new anchor is
  the pool sample farthest from those already chosen, a 2-approximation of the k-centre cover.
* ``stratified``: class-stratified random draw, class counts proportional to the pool's class
  frequencies, rounded by largest remainder.

Geometry of the coverage strategies (``geometry=``). Default ``"standardized"``: Euclidean
distance after z-scoring every feature with the pool's mean and standard deviation. Reasons:
it is (up to the statistics: the Translator's ``std_scaling``, on by default as in the paper,
uses the chosen anchors', whose expectation under a random draw is the pool's) the space the
transforms are fitted in; it
removes the common offset that makes raw sentence embeddings anisotropic (all cosines high),
which would leave cosine distances almost uninformative; and no single high-variance feature
dominates. ``"cosine"``: Euclidean distance between L2-normalised rows, monotone in cosine
distance (``||a - b||² = 2 - 2 cos(a, b)``), for users who prefer the encoders' own metric.

Order of the returned indices: ``random`` and ``farthest`` in selection order (the first m of
a selection of n are the selection of m: nested anchor sets, like the stitching grid's);
``kmeans`` and ``stratified`` in ascending pool order (they re-solve for every n).

:func:`anchors_to_reach` reads a curve frame ``(strategy, n_anchors, run, auroc)`` and gives,
per strategy, how many anchors it needs to reach a fraction of the upper bound.

Arrays only: no model, no file (DESIGN: who may import whom).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from semalign._arrays import as_matrix
from semalign.errors import SemalignError

__all__ = [
    "AnchorError",
    "GEOMETRIES",
    "KMEANS_N_INIT",
    "REACH_COLUMNS",
    "STRATEGIES",
    "anchors_to_reach",
    "farthest",
    "get_strategy",
    "kmeans",
    "random",
    "stratified",
]

Geometry = Literal["standardized", "cosine"]
GEOMETRIES: tuple[str, ...] = ("standardized", "cosine")
# One k-means++ initialisation: scikit-learn's own default for k-means++ (n_init="auto"), and the
# initialisation dominates the cost once n is in the hundreds (benchmarks/bench_beyond.py);
# more restarts buy a slightly lower inertia at n_init times the cost.
KMEANS_N_INIT = 1


class AnchorError(SemalignError, ValueError):
    """An anchor selection that cannot be made; the message names the argument and the fix."""


# ------------------------------------------------------------------------------ validation ----
def _pool(pool_emb: Any) -> np.ndarray:
    return as_matrix(pool_emb, "pool_emb (the pool's source-space embeddings)", AnchorError, shape="(P, d)")


def _count(n: Any, pool_size: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise AnchorError(f"n must be a whole number of anchors; got {n!r}")
    n = int(n)
    if n < 1:
        raise AnchorError(f"n must be >= 1 anchor; got {n}")
    if n > pool_size:
        raise AnchorError(f"asked for n={n} anchors: more anchors than the pool holds "
                          f"({pool_size}); lower n or enlarge the anchor pool")
    return n


def _rng(seed: int, run: int) -> np.random.Generator:
    # The stitching grid's generator: run r of seed s draws from default_rng([s, r]).
    return np.random.default_rng([int(seed), int(run)])


def _features(pool: np.ndarray, geometry: str) -> np.ndarray:
    """The pool in the geometry distances are measured in: (P, d) -> (P, d)."""
    if geometry == "standardized":
        sd = pool.std(axis=0)
        # a constant feature carries no distance: leave it at 0 instead of dividing by 0
        return (pool - pool.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    if geometry == "cosine":
        norms = np.linalg.norm(pool, axis=1, keepdims=True)
        return pool / np.maximum(norms, 1e-12)
    raise AnchorError(f"geometry={geometry!r}: use one of {GEOMETRIES}")


# ------------------------------------------------------------------------------ strategies ----
def random(pool_emb: Any, n: int, *, seed: int = 0, run: int = 0, labels: Any = None) -> np.ndarray:
    """The paper's uniform draw: ``default_rng([seed, run]).permutation(P)[:n]`` -> (n,).

    Exactly run ``run``'s first ``n`` anchors of :func:`semalign.stitching.stitch_grid` with
    ``seed`` (nested over n). ``pool_emb`` (P, d) only gives P; ``labels`` is ignored.
    """
    pool = _pool(pool_emb)
    n = _count(n, len(pool))
    return _rng(seed, run).permutation(len(pool))[:n].astype(np.int64)


def kmeans(pool_emb: Any, n: int, *, seed: int = 0, run: int = 0, labels: Any = None,
           geometry: Geometry = "standardized", n_init: int = KMEANS_N_INIT) -> np.ndarray:
    """The pool samples nearest to ``n`` k-means centroids -> (n,) ascending.

    ``KMeans(n_clusters=n, init="k-means++", n_init=n_init, random_state=s)`` (scikit-learn,
    Lloyd; ``n_init`` default :data:`KMEANS_N_INIT`) is fitted on
    the pool features ``F`` (P, d) of ``geometry`` (module docstring), with ``s`` the first
    integer drawn from ``default_rng([seed, run])`` -- one seed convention for every strategy,
    and (seed, run) pairs never collide as ``seed + run`` would. Centroids ``c_1..c_n`` (n, d)
    then each claim a sample: in increasing order of ``min_i ||F_i - c_j||`` (the best-matched
    centroid first), centroid j takes its nearest sample not yet taken. So the result always
    holds n distinct samples, even when two centroids share a nearest sample or the pool holds
    fewer than n distinct points (the top-up is the next-nearest free sample, deterministic).
    ``n == P`` returns the whole pool without clustering. ``labels`` is ignored.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    pool = _pool(pool_emb)
    n = _count(n, len(pool))
    if n == len(pool):
        return np.arange(n, dtype=np.int64)
    feats = _features(pool, geometry)
    state = int(_rng(seed, run).integers(2**31 - 1))
    # One thread: k-means' OpenMP threads wait at barriers under CPU contention (60x slower on a
    # loaded 2-core machine, benchmarks/bench_beyond.py), and one thread gives the same
    # centroids on every machine whatever its core count.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # "fewer distinct clusters than n_clusters" on a pool with repeated points: the claim
        # step below still returns n distinct samples.
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=n, init="k-means++", n_init=n_init, random_state=state)
        centres = km.fit(feats).cluster_centers_
    # squared distances (n, P) without forming the (n, P, d) difference tensor
    d2 = ((centres**2).sum(1)[:, None] + (feats**2).sum(1)[None, :] - 2.0 * centres @ feats.T)
    taken = np.zeros(len(pool), dtype=bool)
    chosen = np.empty(n, dtype=np.int64)
    for k, j in enumerate(np.argsort(d2.min(axis=1), kind="stable")):
        row = np.where(taken, np.inf, d2[j])
        chosen[k] = int(np.argmin(row))
        taken[chosen[k]] = True
    return np.sort(chosen)


def farthest(pool_emb: Any, n: int, *, seed: int = 0, run: int = 0, labels: Any = None,
             geometry: Geometry = "standardized") -> np.ndarray:
    """Greedy farthest-point sampling -> (n,) in selection order (nested over n).

    First anchor ``i_1 = default_rng([seed, run]).integers(P)``; then
    ``i_{m+1} = argmax_i min_{l <= m} ||F_i - F_{i_l}||`` over the samples not yet chosen,
    ties to the lowest index, with ``F`` (P, d) the pool features of ``geometry`` (module
    docstring). The chosen set is a 2-approximation of the k-centre cover of the pool: it
    reaches its extremes first, so it favours outliers -- what the chapter measures.
    ``labels`` is ignored.
    """
    from threadpoolctl import threadpool_limits

    pool = _pool(pool_emb)
    n = _count(n, len(pool))
    feats = _features(pool, geometry)
    sq = (feats**2).sum(axis=1)
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = int(_rng(seed, run).integers(len(pool)))
    # min squared distance of every sample to the chosen set; a chosen sample is set to -inf
    # (which np.minimum keeps) so repeated points (distance 0) can never be picked twice
    nearest = np.full(len(pool), np.inf)
    # n small dependent matrix-vector products: BLAS threads would only wait at barriers
    with threadpool_limits(limits=1, user_api="blas"):
        for m in range(1, n + 1):
            c = chosen[m - 1]
            np.minimum(nearest, sq + sq[c] - 2.0 * (feats @ feats[c]), out=nearest)
            nearest[c] = -np.inf
            if m < n:
                chosen[m] = int(np.argmax(nearest))
    return chosen


def _largest_remainder(counts: np.ndarray, n: int) -> np.ndarray:
    """Integer allotment of n proportional to ``counts`` (K,), summing to n, each <= its count.

    Quotas ``q_c = n * counts_c / sum(counts)``; every class gets ``floor(q_c)`` and the
    ``n - sum floor(q)`` left go to the largest remainders ``q_c - floor(q_c)``, ties to the
    larger class, then to the class listed first. ``floor(q_c) + 1 <= ceil(q_c) <= counts_c``
    whenever the remainder is > 0, so no class is given more samples than it has.
    """
    total = int(counts.sum())
    # exact integer arithmetic: quota = n * count / total as a whole part and a numerator
    whole, num = np.divmod(n * counts.astype(np.int64), total)
    short = n - int(whole.sum())
    order = sorted(range(len(counts)), key=lambda c: (-int(num[c]), -int(counts[c]), c))
    out = whole.copy()
    for c in order[:short]:
        out[c] += 1
    return out


def stratified(pool_emb: Any, n: int, *, seed: int = 0, run: int = 0, labels: Any = None) -> np.ndarray:
    """A class-stratified random draw -> (n,) ascending.

    ``labels`` (P,): one class label per pool row (needed). Class c of the sorted distinct
    labels, with ``P_c`` rows, gets ``n_c`` anchors from the largest-remainder rounding of
    ``n * P_c / P`` (so ``sum n_c = n`` exactly and the class mix is the pool's); its ``n_c``
    are the first of a permutation of its rows drawn from ``default_rng([seed, run])``
    (one generator, classes in sorted order).
    """
    pool = _pool(pool_emb)
    n = _count(n, len(pool))
    if labels is None:
        raise AnchorError("strategy 'stratified' needs labels=: one class label per pool row "
                          f"({len(pool)} of them); the label-free strategies are "
                          f"{[s for s in STRATEGIES if s != 'stratified']}")
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(pool):
        raise AnchorError(f"labels must be 1-d with one label per pool row: shape ({len(pool)},); "
                          f"got shape {y.shape}")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = _largest_remainder(counts, n)
    rng = _rng(seed, run)
    picked = [rng.permutation(np.flatnonzero(inverse == c))[: quota[c]] for c in range(len(classes))]
    return np.sort(np.concatenate(picked)).astype(np.int64)


Strategy = Callable[..., np.ndarray]
STRATEGIES: dict[str, Strategy] = {
    "random": random,
    "kmeans": kmeans,
    "farthest": farthest,
    "stratified": stratified,
}


def get_strategy(name: str) -> Strategy:
    """The selection function registered as ``name`` in :data:`STRATEGIES`."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise AnchorError(f"unknown anchor strategy {name!r}: choose from {list(STRATEGIES)}") from None


# ------------------------------------------------------------------------ anchors to reach ----
REACH_COLUMNS: tuple[str, ...] = (
    "upper_bound", "fraction", "target", "n_anchors", "reached", "runs", "runs_reached",
    "n_run_mean", "n_run_std", "n_run_min", "n_run_max",
)  # fmt: skip


def _first_reach(n: np.ndarray, a: np.ndarray, target: float, interpolate: bool) -> float:
    """Smallest n (ascending ``n``, values ``a``) with ``a >= target``; NaN when never.

    ``interpolate``: linear in n between the last point below and the first point at or above
    the target; the first measured n when it already reaches (no extrapolation below it).
    """
    hit = np.flatnonzero(a >= target)
    if len(hit) == 0:
        return math.nan
    i = int(hit[0])
    if not interpolate or i == 0:
        return float(n[i])
    n0, n1, a0, a1 = float(n[i - 1]), float(n[i]), float(a[i - 1]), float(a[i])
    return n0 + (target - a0) / (a1 - a0) * (n1 - n0)


def anchors_to_reach(curve: Any, fraction: float = 0.95, *, upper_bound: float | Mapping[Any, float],
                     interpolate: bool = False, by: Sequence[str] = ("strategy",)):
    """Anchors needed to reach ``fraction`` × the upper bound, per strategy -> DataFrame.

    ``curve``: a tidy frame with the columns of ``by`` (default ``strategy``), ``n_anchors``,
    ``run``, ``auroc``. Several rows at one (group, n_anchors, run) -- e.g. several ordered
    encoder pairs -- are averaged first. ``upper_bound``: one AUROC, or a mapping from the
    group key (the value of ``by[0]`` for one column, the tuple otherwise) to its AUROC.
    The target is ``fraction * upper_bound``.

    Per group: ``n_anchors`` is the smallest measured n whose mean AUROC over runs reaches the
    target (the first crossing: a curve that dips after reaching still counts), NaN and
    ``reached=False`` when no n does. ``interpolate=True`` reads the crossing linearly between
    the two measured n around it instead. The spread over runs: the same reading on every
    run's own curve; ``runs`` counts the runs, ``runs_reached`` those that reach, and
    ``n_run_mean/std/min/max`` (std with ddof=1, NaN for one run) summarise the runs that
    reach (NaN when none does).

    Returns the ``by`` columns then :data:`REACH_COLUMNS`, one row per group in sorted order.
    """
    import pandas as pd

    by = list(by)
    needed = [*by, "n_anchors", "run", "auroc"]
    missing = [c for c in needed if c not in getattr(curve, "columns", ())]
    if missing:
        raise AnchorError(f"curve must be a DataFrame with columns {needed}; missing {missing}")
    if not 0.0 < float(fraction) <= 1.0:
        raise AnchorError(f"fraction must be in (0, 1]; got {fraction!r}")
    if curve["auroc"].isna().any():
        raise AnchorError("curve has NaN AUROCs: drop or recompute those rows first")
    per_run = curve.groupby([*by, "n_anchors", "run"], sort=True)["auroc"].mean().reset_index()
    rows = []
    for key, g in per_run.groupby(by, sort=True):
        key = key if len(by) > 1 else key[0] if isinstance(key, tuple) else key
        if isinstance(upper_bound, Mapping):
            if key not in upper_bound:
                raise AnchorError(f"upper_bound has no value for group {key!r}; it covers "
                                  f"{list(upper_bound)}")
            ub = float(upper_bound[key])
        else:
            ub = float(upper_bound)
        target = float(fraction) * ub
        mean = g.groupby("n_anchors", sort=True)["auroc"].mean()
        n_mean = _first_reach(mean.index.to_numpy(), mean.to_numpy(), target, interpolate)
        per = [
            _first_reach(r["n_anchors"].to_numpy(), r["auroc"].to_numpy(), target, interpolate)
            for _, r in g.sort_values("n_anchors").groupby("run", sort=True)
        ]
        ok = np.array([v for v in per if not math.isnan(v)])
        stats = ((ok.mean(), ok.std(ddof=1) if len(ok) > 1 else math.nan, ok.min(), ok.max())
                 if len(ok) else (math.nan,) * 4)
        rows.append((*(key if len(by) > 1 else (key,)), ub, float(fraction), target, n_mean,
                     not math.isnan(n_mean), len(per), len(ok), *map(float, stats)))
    return pd.DataFrame(rows, columns=[*by, *REACH_COLUMNS])
