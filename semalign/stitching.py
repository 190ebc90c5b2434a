"""Model stitching across encoders (paper Sec. 3.1 "Model stitching" and Sec. 4.1).

An encoder's test embeddings are translated into another encoder's space with a
:class:`~semalign.align.Translator` fitted on parallel anchors, then classified by the
*target* encoder's decoder. This module works on embeddings and labels only: it never loads
a model or a file.

Decoders
--------
The paper's decoder is "an SVM with a linear kernel" per (task, encoder): ``sklearn.svm.SVC
(kernel="linear", C=1)``, scored with ``decision_function`` so AUROC is defined (binary: the
score of the positive class; multi-class: the macro mean of the one-vs-rest AUROCs, averaged by
hand because ``roc_auc_score(..., multi_class="ovr")`` insists on probabilities).
``decoder="linearsvc"`` (liblinear, one-vs-rest, squared hinge) is the alternative.

Why SVC, measured (``benchmarks/RESULTS_decoders.md``, ``python benchmarks/bench_decoders.py``):
an earlier note here said LinearSVC ranks more finely because SVC's multi-class scores are
one-vs-one votes. They are not only votes: sklearn adds a continuous tie-break, and on
openi-5class both decoders give as many distinct scores as there are test reports. Upper
bounds tie (0.806 vs 0.810 mean over the four offline text encoders; vision within the noise
of 80 test images), stitched text decoding is higher with SVC (0.773 vs 0.759 with ``ortho`` at
1,000 anchors; the gain comes from the one-vs-one step), and SVC never raised a
ConvergenceWarning while LinearSVC did on 3 of 6 unscaled CNN decoders. So the default is the
paper's literal decoder.

Standard scaler in front (``scale``): on random class-structured data a StandardScaler in
front of LinearSVC helped it neither converge nor score (``benchmarks/RESULTS_align.md``), so
the default is ``scale=False`` — the SVM on the raw embeddings, as the paper describes;
``scale=True`` is a parameter.

Grid
----
:func:`stitch_grid` runs every ordered (source, target) pair, source ≠ target, for each
alignment method of the registry (:func:`semalign.align.methods`: a method added with
:func:`semalign.align.register_method` is stitched like the built-ins), anchor count and run,
plus two anchor-free baselines (:data:`BASELINES`):

- ``naive``: source test embeddings zero-padded/cut to the target dimension, straight into
  the target decoder (the paper's "no transformation"; ``Translator("naive",
  std_scaling=False)``). It does not depend on anchors: rows have ``n_anchors=0, run=0``.
- ``upper_bound``: each encoder's decoder on its own test embeddings (source = target,
  ``n_anchors=0, run=0``).

Anchor draws: run r permutes the anchor pool with ``numpy.random.default_rng([seed, r])``;
n anchors are the first n of that permutation, so within a run the sets are nested (the
curves over n are not blurred by independent draws) and every pair uses the same anchors.
The ``affine`` initialisation is seeded with ``seed + r``.

Which anchors (``anchors=``, beyond the paper): a selection strategy instead of the random
draw -- a name of :data:`semalign.anchors.STRATEGIES` (``"kmeans"``, ``"farthest"``,
``"stratified"``, ``"random"``) or any callable with their signature
``select(pool_emb (P, d), n, *, seed, run, labels) -> (n,) indices``. It chooses in the
SOURCE space, once per (source, run, n): every target of that source is fitted on the same
rows, looked up in its own pool (the rows correspond across encoders). Choosing in the target
space, or jointly, would be a different question (it needs the target's embeddings of the
whole pool before any pair is chosen). ``labels`` is the task's :attr:`EncodedTask.y_anchors`
(``None`` when the pool is not fully labelled: ``"stratified"`` then refuses).
``anchors="random"`` gives the very rows of the default draw, so the same frame.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BASELINES",
    "COLUMNS",
    "DOMAINS",
    "Embeddings",
    "EncodedTask",
    "fit_decoder",
    "decision_scores",
    "auroc",
    "aligned_methods",
    "stitch_grid",
]

#: The anchor-free rows of a grid: naive stitching and each encoder's upper bound.
BASELINES: tuple[str, ...] = ("naive", "upper_bound")
COLUMNS: tuple[str, ...] = (
    "task", "source", "target", "source_domain", "target_domain", "method", "n_anchors", "run",
    "auroc",
)  # fmt: skip
DOMAINS: tuple[str, ...] = ("general", "medical", "medical (stand-in)")


def _matrix(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must hold numbers; got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN/inf: re-embed or drop those rows")
    return arr


@dataclasses.dataclass
class Embeddings:
    """One encoder's embeddings of a task: ``train`` (n_train, d), ``test`` (n_test, d) and
    ``anchors`` (n_pool, d) — the anchor pool, whose rows correspond across encoders."""

    train: np.ndarray
    test: np.ndarray
    anchors: np.ndarray

    def __post_init__(self) -> None:
        self.train = _matrix(self.train, "train")
        self.test = _matrix(self.test, "test")
        self.anchors = _matrix(self.anchors, "anchors")
        dims = {self.train.shape[1], self.test.shape[1], self.anchors.shape[1]}
        if len(dims) != 1:
            raise ValueError(
                "train, test and anchors must share one dimension d; got shapes "
                f"{self.train.shape}, {self.test.shape}, {self.anchors.shape}"
            )

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])


@dataclasses.dataclass
class EncodedTask:
    """A classification task embedded by several encoders.

    ``encoders``: ``{encoder name: Embeddings}``; ``domains``: ``{encoder name: "general" |
    "medical" | "medical (stand-in)"}``; ``y_train`` (n_train,), ``y_test`` (n_test,) labels
    (class names or indices); ``classes``: the class names in order; ``modality``: "text" or
    "image"/"vision". ``y_anchors`` (n_pool,): the class of every anchor-pool row, or ``None``
    (default) when the pool is not fully labelled -- read only by a class-stratified anchor
    selection (:func:`stitch_grid`'s ``anchors="stratified"``).
    """

    name: str
    modality: str
    encoders: dict[str, Embeddings]
    domains: dict[str, str]
    y_train: np.ndarray
    y_test: np.ndarray
    classes: list
    y_anchors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.y_train = np.asarray(self.y_train)
        self.y_test = np.asarray(self.y_test)
        if self.y_anchors is not None:
            self.y_anchors = np.asarray(self.y_anchors)
        if not self.encoders:
            raise ValueError(f"task {self.name!r} has no encoders")
        missing = sorted(set(self.encoders) - set(self.domains))
        if missing:
            raise ValueError(f"task {self.name!r}: no domain for encoders {missing}; domains={self.domains}")
        bad = {k: v for k, v in self.domains.items() if k in self.encoders and v not in DOMAINS}
        if bad:
            raise ValueError(f"task {self.name!r}: domains must be one of {DOMAINS}; got {bad}")
        pools = {k: e.anchors.shape[0] for k, e in self.encoders.items()}
        for what, n, get in (
            ("train", len(self.y_train), lambda e: e.train.shape[0]),
            ("test", len(self.y_test), lambda e: e.test.shape[0]),
        ):
            wrong = {k: get(e) for k, e in self.encoders.items() if get(e) != n}
            if wrong:
                raise ValueError(
                    f"task {self.name!r}: y_{what} has {n} labels but {what} embeddings have rows {wrong}"
                )
        if len(set(pools.values())) != 1:
            raise ValueError(
                f"task {self.name!r}: anchor pools must have the same rows for every encoder "
                f"(row i = the same sample); got {pools}"
            )
        if len(np.unique(self.y_train)) < 2:
            raise ValueError(f"task {self.name!r}: y_train needs at least 2 classes")
        if self.y_anchors is not None and self.y_anchors.shape != (self.pool_size,):
            raise ValueError(f"task {self.name!r}: y_anchors must hold one label per anchor-pool row, "
                             f"shape ({self.pool_size},); got shape {self.y_anchors.shape}")

    @property
    def pool_size(self) -> int:
        return int(next(iter(self.encoders.values())).anchors.shape[0])


# --------------------------------------------------------------------------------------
# Decoders and scores
# --------------------------------------------------------------------------------------


def fit_decoder(
    train: np.ndarray,
    y: np.ndarray,
    *,
    decoder: str = "svc",
    scale: bool = False,
    C: float = 1.0,
    seed: int = 0,
) -> Any:
    """Fit a linear SVM decoder on one encoder's train embeddings (n, d) and labels (n,).

    ``decoder="svc"`` (default: ``SVC(kernel="linear")``, the paper's; one-vs-one with sklearn's
    one-vs-rest-shaped scores) or ``"linearsvc"`` (liblinear, one-vs-rest). ``scale=True`` puts a ``StandardScaler`` in front. Returns a fitted
    estimator with ``decision_function``; see the module docstring for the choice.
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    if decoder == "linearsvc":
        est = LinearSVC(C=C, random_state=seed)
    elif decoder == "svc":
        est = SVC(kernel="linear", C=C, decision_function_shape="ovr", random_state=seed)
    else:
        raise ValueError(f"decoder must be 'linearsvc' or 'svc'; got {decoder!r}")
    model = make_pipeline(StandardScaler(), est) if scale else est
    return model.fit(np.asarray(train), np.asarray(y))


def decision_scores(decoder: Any, x: np.ndarray) -> np.ndarray:
    """Decision scores of a fitted decoder on x (n, d): (n,) for binary, (n, K) otherwise.

    A plain linear-kernel ``SVC`` (:func:`fit_decoder`'s default) is scored through its primal
    weights, x·wᵀ + b, the same function as its ``decision_function`` (libsvm's sum over the
    support vectors, Σ αᵢ⟨svᵢ, x⟩ + b) in one matrix product: a grid scores each decoder
    hundreds of times, and libsvm's loop was 18 s of Fig. 3's chapter. The one-vs-one scores of
    more than two classes become one-vs-rest ones as sklearn's own ``decision_function`` does.
    Anything else is scored by its own ``decision_function``.
    """
    primal = _primal(decoder)
    if primal is None:
        return np.asarray(decoder.decision_function(np.asarray(x)))
    from sklearn.utils.multiclass import _ovr_decision_function

    w, b = primal
    dec = np.asarray(x, dtype=np.float64) @ w.T + b
    if len(decoder.classes_) == 2:
        return dec.ravel()
    return _ovr_decision_function(dec < 0, -dec, len(decoder.classes_))


def _primal(decoder: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(w (pairs, d), b (pairs,)) of a fitted dense linear ``SVC`` with one-vs-rest-shaped scores,
    kept on the decoder for its next calls (and recomputed once it is refitted), else ``None``."""
    from sklearn.svm import SVC

    if (type(decoder) is not SVC or decoder.kernel != "linear" or decoder.decision_function_shape != "ovr"
            or not hasattr(decoder, "dual_coef_") or getattr(decoder, "_sparse", True)):
        return None
    memo = decoder.__dict__.get("_semalign_primal")
    if memo is None or memo[0] is not decoder.dual_coef_:
        memo = (decoder.dual_coef_, np.asarray(decoder.coef_, dtype=np.float64),
                np.asarray(decoder.intercept_, dtype=np.float64))
        decoder.__dict__["_semalign_primal"] = memo
    return memo[1], memo[2]


def auroc(y_true: np.ndarray, scores: np.ndarray, classes: Sequence) -> float:
    """AUROC of decision scores against labels.

    Binary (``scores`` 1-D): score of ``classes[1]`` (sklearn's positive class). Multi-class
    (``scores`` (n, K), columns in ``classes`` order): the unweighted mean over classes of
    the one-vs-rest AUROC of ``scores[:, k]`` for ``y == c`` (:func:`semalign.stats.binary_auroc`,
    sklearn's ``roc_auc_score`` up to rounding); classes with no positive
    or no negative test sample are skipped (their AUROC is undefined).
    """
    from semalign.stats import binary_auroc

    y_true = np.asarray(y_true)
    scores = np.asarray(scores)
    if scores.ndim == 1:
        if len(classes) != 2:
            raise ValueError(f"1-D scores need 2 classes; got {list(classes)}")
        pos = y_true == classes[1]
        if pos.all() or not pos.any():
            raise ValueError("AUROC needs both classes in y_true")
        return binary_auroc(pos, scores)
    if scores.shape[1] != len(classes):
        raise ValueError(f"scores have {scores.shape[1]} columns but there are {len(classes)} classes")
    per_class = []
    for k, c in enumerate(classes):
        pos = y_true == c
        if pos.any() and not pos.all():
            per_class.append(binary_auroc(pos, scores[:, k]))
    if not per_class:
        raise ValueError("AUROC undefined: no class has both positives and negatives in y_true")
    return float(np.mean(per_class))


# --------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------


def _draws(pool: int, n_anchors: Sequence[int], runs: int, seed: int) -> dict[int, np.ndarray]:
    """Per run, one seeded permutation of the pool (nested anchor sets over n)."""
    top = max(n_anchors)
    if top > pool:
        raise ValueError(
            f"asked for {top} anchors but the pool holds {pool}: lower n_anchors or enlarge the pool"
        )
    return {r: np.random.default_rng([seed, r]).permutation(pool) for r in range(runs)}


Selector = Callable[..., np.ndarray]


def _selector(anchors: str | Selector | None) -> Selector | None:
    """``stitch_grid``'s ``anchors=``: ``None``, a strategy name or a callable -> callable or None."""
    if anchors is None or callable(anchors):
        return anchors
    from semalign.anchors import get_strategy

    return get_strategy(anchors)


def _selected(select: Selector, pool: np.ndarray, n: int, *, seed: int, run: int,
              labels: np.ndarray | None, source: str) -> np.ndarray:
    """The strategy's n rows of ``pool`` (P, d), checked: n distinct whole numbers in [0, P)."""
    from semalign.anchors import AnchorError

    idx = np.asarray(select(pool, n, seed=seed, run=run, labels=labels))
    ok = idx.shape == (n,) and np.issubdtype(idx.dtype, np.integer)
    ok = ok and bool(((idx >= 0) & (idx < len(pool))).all()) and len(np.unique(idx)) == n
    if not ok:
        name = getattr(select, "__name__", repr(select))
        raise AnchorError(f"anchor selection {name!r} for source {source!r} (n={n}, run={run}) must return "
                          f"{n} distinct integer row indices in [0, {len(pool)}); got shape {idx.shape}, "
                          f"dtype {idx.dtype}")
    return idx.astype(np.int64)


def aligned_methods() -> tuple[str, ...]:
    """The registered alignment methods stitched per anchor draw: :func:`semalign.align.methods`
    without the anchor-free ``naive`` baseline (the built-ins: affine, linear, l-ortho, ortho,
    ridge), in registration order — :func:`stitch_grid`'s default."""
    from semalign import align

    return tuple(m for m in align.methods() if m not in BASELINES)


def stitch_grid(
    task: EncodedTask,
    methods: Sequence[str] | None = None,
    n_anchors: Sequence[int] = (25, 50, 100, 250, 500, 1000, 2000),
    runs: int = 3,
    seed: int = 0,
    progress: bool = True,
    *,
    baselines: bool = True,
    std_scaling: bool = True,
    decoder: str = "svc",
    scale: bool = False,
    lr: float = 1e-3,
    steps: int = 300,
    anchors: str | Selector | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    decoders: dict[str, Any] | None = None,
) -> "pd.DataFrame":  # noqa: F821
    """Stitch every ordered (source, target) encoder pair of ``task``; one tidy frame out.

    ``methods``: registered alignment methods (:func:`semalign.align.methods`, including any
    added with :func:`semalign.align.register_method`) and/or the baselines ``"naive"`` and
    ``"upper_bound"``; default :func:`aligned_methods`. For each run r (``runs`` anchor draws)
    and each n in ``n_anchors``: the first n of run r's permutation of the anchor pool are the
    anchors of *every* pair; ``Translator(method)`` is fitted on (source anchors → target
    anchors), applied to the source's test embeddings, and the target's decoder (fitted once
    per encoder on its own train embeddings) scores them. ``baselines=True`` adds ``naive``
    and ``upper_bound`` rows (see module docstring; also added when named in ``methods``).

    ``anchors``: ``None`` (default) for the paper's random draw above; a strategy name of
    :data:`semalign.anchors.STRATEGIES` or a callable ``select(pool_emb, n, *, seed, run,
    labels) -> (n,) indices`` to choose each source's anchors in its own space instead (module
    docstring, "Which anchors"). ``pairs``: the ordered ``(source, target)`` pairs to stitch
    (default every ordered pair of distinct encoders); decoders, upper bounds and naive rows
    then cover only the encoders and pairs named. ``decoders``: ``{encoder: decoder}`` already
    fitted by :func:`fit_decoder` on that encoder's train embeddings with this call's
    ``decoder`` and ``scale`` (to reuse them across calls on one task; a missing one is fitted
    here, and this dict is filled with it).

    Returns a DataFrame with exactly the columns :data:`COLUMNS` (``task, source, target,
    source_domain, target_domain, method, n_anchors, run, auroc``); ``attrs["modalities"]``
    maps the task name to its modality (read by Table 1).

    The translators come from :func:`semalign.align.fit_pairs`, one call per (run, n): equal
    to fitting a ``Translator`` per cell, with each encoder's anchors standardised once and
    each source's shared state (its SVD for linear / l-ortho, its Gram matrix for affine)
    computed once for all its targets; decoders are fitted once.
    """
    import pandas as pd
    import torch
    from semalign.progress import bar as progress_bar

    from semalign import align

    methods = list(aligned_methods() if methods is None else methods)
    wanted_baselines = {m for m in methods if m in BASELINES}
    methods = [m for m in methods if m not in BASELINES]
    unknown = [m for m in methods if m not in align.methods()]
    if unknown:
        raise align.UnknownMethodError(
            f"unknown methods {unknown}: choose from the registered methods {aligned_methods()} "
            f"and the baselines {BASELINES}, or add one with semalign.align.register_method"
        )
    if baselines:
        wanted_baselines = set(BASELINES)
    n_list = sorted({int(n) for n in n_anchors}) if methods else []
    if any(n < 2 for n in n_list):
        raise ValueError(f"n_anchors must all be >= 2 (a Translator needs 2 anchors); got {list(n_anchors)}")
    if runs < 1:
        raise ValueError(f"runs must be >= 1; got {runs}")

    if pairs is None:
        names = list(task.encoders)
        pairs = [(s, t) for s, t in itertools.permutations(names, 2)]
    else:
        pairs = [(str(s), str(t)) for s, t in pairs]
        bad = sorted({e for p in pairs for e in p} - set(task.encoders)) + [f"{s}->{t}" for s, t in pairs if s == t]
        if bad or not pairs:
            raise ValueError(f"pairs must name distinct encoders of task {task.name!r} ({list(task.encoders)}); "
                             f"got {bad or 'no pairs'}")
        used = {e for p in pairs for e in p}
        names = [e for e in task.encoders if e in used]
    select = _selector(anchors)
    draws = _draws(task.pool_size, n_list, runs, seed) if n_list else {}
    by_source: dict[str, list[str]] = {}
    for s, t in pairs:
        by_source.setdefault(s, []).append(t)

    rows: list[tuple] = []

    def add(source: str, target: str, method: str, n: int, run: int, value: float) -> None:
        rows.append(
            (task.name, source, target, task.domains[source], task.domains[target], method, n, run, value)
        )

    total = len(names) + len(pairs) * (1 if "naive" in wanted_baselines else 0)
    total += len(n_list) * runs * len(pairs) * len(methods)
    bar = progress_bar(total=total, desc=f"stitch {task.name}", disable=not progress)  # + the terminal of semalign book

    decoders = {} if decoders is None else decoders
    score_classes: dict[str, list] = {}
    for name in names:
        dec = decoders.get(name)
        if dec is None:
            dec = decoders[name] = fit_decoder(task.encoders[name].train, task.y_train, decoder=decoder, scale=scale)
        # decision_function columns follow the decoder's classes_ (sorted labels)
        score_classes[name] = list(dec.classes_ if hasattr(dec, "classes_") else dec[-1].classes_)
        if "upper_bound" in wanted_baselines:
            s = decision_scores(dec, task.encoders[name].test)
            add(name, name, "upper_bound", 0, 0, auroc(task.y_test, s, score_classes[name]))
        bar.update()

    def score(target: str, y_hat: np.ndarray) -> float:
        return auroc(task.y_test, decision_scores(decoders[target], y_hat), score_classes[target])

    if "naive" in wanted_baselines:
        for s, t in pairs:
            x = task.encoders[s].test.astype(np.float32)
            d_t = task.encoders[t].dim
            x = np.pad(x, ((0, 0), (0, max(0, d_t - x.shape[1]))))[:, :d_t]
            add(s, t, "naive", 0, 0, score(t, x))
            bar.update()

    # float32 tensors once: every cell's Translator then computes in float32, as a
    # Translator fitted on float32 embeddings does
    tests = {k: torch.from_numpy(np.ascontiguousarray(task.encoders[k].test, dtype=np.float32)) for k in names}
    pools = {k: torch.from_numpy(np.ascontiguousarray(task.encoders[k].anchors, dtype=np.float32)) for k in names}

    def chosen(run: int, n: int, fit: dict) -> Any:
        """Each source's own choice of n anchors, in its own space, for all its targets."""
        for s, targets in by_source.items():
            idx = torch.from_numpy(_selected(select, task.encoders[s].anchors, n, seed=seed, run=run,
                                             labels=task.y_anchors, source=s))
            yield from align.fit_pairs({k: pools[k][idx] for k in (s, *targets)}, methods,
                                       [(s, t) for t in targets], **fit)

    # the whole loop on align's thread count (many small dependent ops; see align.align_threads)
    with align.align_threads(*pools.values()):
        fit = dict(std_scaling=std_scaling, seed=seed, lr=lr, steps=steps)
        for run, n in itertools.product(range(runs), n_list):
            fit["seed"] = seed + run
            if select is None:  # the paper's draw: the same rows for every pair
                idx = torch.from_numpy(draws[run][:n])
                cells = align.fit_pairs({k: pools[k][idx] for k in names}, methods, pairs, **fit)
            else:
                cells = chosen(run, n, fit)
            for s, t, method, translator in cells:
                add(s, t, method, n, run, score(t, translator.transform(tests[s]).numpy()))
                bar.update()
    bar.close()

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["n_anchors"] = frame["n_anchors"].astype("int64")
    frame["run"] = frame["run"].astype("int64")
    frame["auroc"] = frame["auroc"].astype("float64")
    frame.attrs["modalities"] = {task.name: task.modality}
    return frame
