"""Zero-shot classification from embeddings (paper Sec. 3.2 and 4.2, Fig. 2 and Fig. 4).

Three approaches, one scoring rule:

* **standard** multimodal zero-shot (CLIP, MedCLIP): the model's own image embeddings are
  compared with its own text tower's embeddings of the class prompts;
* **unimodal** (the paper's method): a vision encoder trained without text is mapped into a
  text encoder's space by a :class:`semalign.align.Translator` fitted on image–report anchor
  pairs, ``T(I_i)``, and then scored against that text encoder's prompt embeddings.

Beside them, a **supervised linear probe** (:func:`linear_probe`) of each vision encoder, trained
on the task's labelled training images: not zero-shot, the ceiling a linear read-out of the same
embeddings reaches with labels.

Scoring. For an image embedding ``v`` (already in text space) and a class with prompt
embeddings ``P = {p_1..p_m}``::

    average="scores":      s(v, P) = 1/m * sum_j cos(v, p_j)          (prompt ensembling, MedCLIP)
    average="embeddings":  s(v, P) = cos(v, mean_j p_j / ||p_j||)       (CLIP-style class vector)

The binary decision score is ``s(v, P_pos) - s(v, P_neg)``; AUROC is computed from it.
Cosine similarity is the inner product of L2-normalised vectors: that is the normalisation
Sec. 3.2 says both settings need. In the unimodal method the anchors and the test images are
also L2-normalised before the Translator is fitted (``normalize=True``), so the translated
image embeddings and the prompt embeddings come from rows of the same scale.

Uncertainty. Every result carries the DeLong standard error of its AUROC on its test set
(:func:`semalign.stats.delong`, column ``auroc_se``): how much the number would move with another
test set of the same size.

The Fig. 4 grid, :func:`zeroshot_grid`, runs all three over an :class:`EncodedZeroShot` (every
task, vision encoder and anchor draw). This module works on arrays only (DESIGN: ``zeroshot`` never
loads a model or a data file): :func:`semalign.encoders.tasks.encode_zeroshot` embeds what the
grid reads; the prompts are package data read by :func:`load_prompts`.
"""

from __future__ import annotations

from semalign.errors import SemalignError

import functools
import hashlib
import itertools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from semalign.vocab import ZEROSHOT_FINDINGS

AVERAGES = ("scores", "embeddings")
#: "clip" / "medclip": the paper's baselines; "synthclip": the offline MedCLIP-like stand-in
#: (:mod:`semalign.encoders.synthclip`); "probe": the supervised linear-probe ceiling.
APPROACHES = ("clip", "medclip", "synthclip", "unimodal", "probe")
BASELINES = ("clip", "medclip", "synthclip")
#: Inverse L2 strength of :func:`linear_probe` on standardised features: scikit-learn's default,
#: fixed (never tuned on a test set).
PROBE_C = 1.0
RESULT_COLUMNS = ("task", "approach", "vision_encoder", "text_encoder", "domain", "auroc")

# The findings of Fig. 4 (the prompt file's keys): pneumonia in the RSNA role, then the six
# VinDr-CXR findings of [20] -- spelled once, in semalign.vocab.
FINDINGS: tuple[str, ...] = tuple(f.key for f in ZEROSHOT_FINDINGS)
MIN_POSITIVE = 10
N_NEGATIVE = 10


class PromptError(SemalignError, ValueError):
    """The prompt file is malformed; the message names the task and the rule broken."""


# --------------------------------------------------------------------------------------------
# prompts (package data)
# --------------------------------------------------------------------------------------------
def expand_structure(structure: Mapping[str, Sequence[str]]) -> list[str]:
    """All prompts of a MedCLIP-style structure, in order.

    ``structure`` maps ``severity``, ``subtype``, ``location`` to lists of phrases (an empty
    string means "leave this slot out"); each prompt joins one phrase of each slot with single
    spaces, in that order -- MedCLIP's ``f"{severity} {subtype} {location}"`` without its
    doubled spaces for empty slots.
    """
    slots = ("severity", "subtype", "location")
    missing = [s for s in slots if s not in structure]
    if missing:
        raise PromptError(f"prompt structure needs the slots {slots}; missing {missing}")
    out = []
    for parts in itertools.product(*(structure[s] for s in slots)):
        text = " ".join(p.strip() for p in parts if p and p.strip())
        if text:
            out.append(text)
    return out


def sample_prompts(structure: Mapping[str, Sequence[str]], n: int, seed: int) -> list[str]:
    """``n`` distinct prompts of ``structure``, chosen reproducibly with ``seed``.

    MedCLIP draws with ``random.sample``; we rank each combination by
    ``sha256(f"{seed}:{prompt}")`` and keep the first ``n`` -- a seeded draw without
    replacement whose result does not depend on the Python or numpy version.
    """
    pool = list(dict.fromkeys(expand_structure(structure)))
    if n > len(pool):
        raise PromptError(f"asked for {n} prompts but the structure only makes {len(pool)}")
    ranked = sorted(pool, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    return ranked[:n]


@dataclass(frozen=True)
class PromptSet:
    """The prompts of one binary task: ``positive`` (the finding) and ``negative`` (its absence)."""

    finding: str
    title: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    structure: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def finding_of_task(task: Any) -> str:
    """The prompt key (a :data:`FINDINGS` key) of a task: the ``finding`` it is registered with.

    ``task``: a :class:`semalign.data.Task`, a registered task name (``"synthcxr-vindr-cardiomegaly"``,
    ``"rsna-pneumonia"``; any case, ``_`` or space for ``-``) or a finding's own name (``"Lung
    Opacity"``). Raises ``KeyError`` with the known findings when the task has no finding (e.g. a
    multi-class task) or the name is neither.
    """
    from semalign.data import DataError, task_spec
    from semalign.vocab import finding as vocab_finding

    found = getattr(task, "finding", None)
    if found is None and isinstance(task, str):
        name = task.strip().lower().replace("_", "-").replace(" ", "-")
        for n in (task, name):
            try:
                found = task_spec(n).finding
                break
            except DataError:
                continue
        else:
            try:
                found = vocab_finding(task)
            except KeyError:
                found = None
    if found is None or found.key not in FINDINGS:
        shown = getattr(task, "name", task)
        raise KeyError(f"no prompts for task {shown!r}: the prompt file covers {', '.join(FINDINGS)} "
                       f"(a task registered with one of these findings, e.g. 'synthcxr-vindr-cardiomegaly', "
                       f"or a finding's name)")
    return found.key


def load_prompts(path: str | None = None) -> dict[str, PromptSet]:
    """Read and validate the zero-shot prompts -> ``{finding: PromptSet}``.

    ``path``: a YAML file in the same layout; default the package's ``prompts/zeroshot.yml``.
    Checks: every finding of :data:`FINDINGS` present, at least ``MIN_POSITIVE`` positive and
    exactly ``N_NEGATIVE`` negative prompts each, no empty or duplicate prompt anywhere in the
    file (a prompt cannot describe two classes), every positive prompt a combination of its
    task's ``structure`` and the positives exactly the seeded draw
    ``sample_prompts(structure, n, seed)``, and a ``provenance`` note.
    """
    import yaml

    if path is None:
        text = resources.files("semalign").joinpath("prompts", "zeroshot.yml").read_text()
        where = "semalign/prompts/zeroshot.yml"
    else:
        with open(path) as f:
            text = f.read()
        where = str(path)
    doc = yaml.safe_load(text) or {}
    if not str(doc.get("provenance", "")).strip():
        raise PromptError(f"{where}: a `provenance:` note (who wrote the prompts, how) is required")
    tasks = doc.get("tasks")
    if not isinstance(tasks, dict):
        raise PromptError(f"{where}: `tasks:` must map each finding to its prompts")
    missing = [f for f in FINDINGS if f not in tasks]
    if missing:
        raise PromptError(f"{where}: no prompts for {missing}; every finding of {FINDINGS} is needed")
    unknown = [t for t in tasks if t not in FINDINGS]
    if unknown:
        raise PromptError(f"{where}: unknown findings {unknown}; expected keys from {FINDINGS}")

    try:
        seed = int(doc["seed"])
    except (KeyError, TypeError, ValueError):
        raise PromptError(f"{where}: an integer `seed:` (used to draw the positive prompts) is "
                          f"required") from None
    seen: dict[str, str] = {}
    out: dict[str, PromptSet] = {}
    for finding in FINDINGS:
        entry = tasks[finding] or {}
        pos = [str(p) for p in entry.get("positive") or []]
        neg = [str(p) for p in entry.get("negative") or []]
        structure = entry.get("structure") or {}
        if len(pos) < MIN_POSITIVE:
            raise PromptError(f"{where}: {finding}: {len(pos)} positive prompts, at least "
                              f"{MIN_POSITIVE} needed")
        if len(neg) != N_NEGATIVE:
            raise PromptError(f"{where}: {finding}: {len(neg)} negative prompts, exactly "
                              f"{N_NEGATIVE} needed")
        for role, prompts in (("positive", pos), ("negative", neg)):
            for p in prompts:
                if not p.strip():
                    raise PromptError(f"{where}: {finding}: an empty {role} prompt")
                k = " ".join(p.lower().split())
                if k in seen:
                    raise PromptError(f"{where}: {finding}: {role} prompt {p!r} duplicates one "
                                      f"already given ({seen[k]})")
                seen[k] = f"{finding} {role}"
        pool = set(expand_structure(structure))
        stray = [p for p in pos if p not in pool]
        if stray:
            raise PromptError(f"{where}: {finding}: positive prompts not made by its structure "
                              f"(severity x subtype x location): {stray}")
        drawn = sample_prompts(structure, len(pos), seed)
        if drawn != pos:
            raise PromptError(f"{where}: {finding}: the positive prompts are not the seeded draw "
                              f"of its structure (seed={seed}, n={len(pos)}); regenerate them with "
                              f"semalign.zeroshot.sample_prompts(structure, n, seed)")
        out[finding] = PromptSet(
            finding=finding, title=str(entry.get("title", finding)),
            positive=tuple(pos), negative=tuple(neg),
            structure={k: tuple(v) for k, v in structure.items()},
        )
    return out


@functools.lru_cache(maxsize=1)
def _package_prompts() -> dict[str, PromptSet]:
    return load_prompts()


def prompts_for_task(task: str, prompts: Mapping[str, PromptSet] | None = None) -> PromptSet:
    """The :class:`PromptSet` of a task name (see :func:`finding_of_task`); ``prompts``
    defaults to the package's file (read and validated once per process)."""
    prompts = _package_prompts() if prompts is None else prompts
    return prompts[finding_of_task(task)]


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def _as_2d(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) array, got shape {np.shape(x)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def l2_normalize(x: Any, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by their L2 norm: ``(n, d) -> (n, d)``; an all-zero row stays zero."""
    a = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.maximum(norms, eps)


def class_scores(image_emb: Any, prompt_emb: Any, average: str = "scores") -> np.ndarray:
    """Similarity of each image to one class: ``(n, d), (m, d) -> (n,)``.

    ``average="scores"``: mean over the ``m`` prompts of the cosine similarity.
    ``average="embeddings"``: cosine with the mean of the L2-normalised prompt embeddings.
    """
    if average not in AVERAGES:
        raise ValueError(f"average={average!r}: use one of {AVERAGES}")
    v = l2_normalize(_as_2d(image_emb, "image_emb"))
    p = l2_normalize(_as_2d(prompt_emb, "prompt_emb"))
    if v.shape[1] != p.shape[1]:
        raise ValueError(f"image_emb has dim {v.shape[1]} but prompt_emb has dim {p.shape[1]}: "
                         f"both must live in the same (text) space -- translate the images first")
    if average == "scores":
        return (v @ p.T).mean(axis=1)
    return (v @ l2_normalize(p.mean(axis=0, keepdims=True)).T)[:, 0]


def zeroshot_scores(image_emb: Any, pos_prompt_emb: Any, neg_prompt_emb: Any,
                    average: str = "scores") -> np.ndarray:
    """Decision score per image, positive-class minus negative-class similarity: ``(n,)``."""
    return (class_scores(image_emb, pos_prompt_emb, average)
            - class_scores(image_emb, neg_prompt_emb, average))


def _binary_labels(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be a 1-d array of {n} labels (one per image), got shape {y.shape}")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1, True, False}:
        raise ValueError(f"y must be binary (0/1 or bool: 1 = finding present), got values "
                         f"{sorted(values)[:5]}")
    yb = y.astype(bool)
    if yb.all() or not yb.any():
        raise ValueError("y holds one class only: AUROC needs positive and negative images")
    return yb.astype(int)


def auroc(y: Any, scores: Any) -> float:
    """Area under the ROC curve of binary labels ``y`` (n,) for ``scores`` (n,)."""
    from semalign.stats import binary_auroc

    s = np.asarray(scores, dtype=np.float64)
    return binary_auroc(_binary_labels(y, len(s)).astype(bool), s)


def chance_sd(n_pos: int, n_neg: int) -> float:
    """Standard deviation of the AUROC of uninformative scores (continuous, no ties), for
    ``n_pos`` positives and ``n_neg`` negatives: sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))
    (the Mann–Whitney U null variance divided by (n_pos n_neg)^2; Hanley & McNeil 1982).

    With 40 + 40 test images it is 0.065: an AUROC of 0.55 is not evidence of anything. The
    book calls a result *above chance* when it exceeds 0.5 + 2 of these (one-sided p ≈ 0.02).
    """
    if n_pos < 1 or n_neg < 1:
        raise ValueError(f"chance_sd needs at least one positive and one negative; got {n_pos}, {n_neg}")
    return float(np.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg)))


def zeroshot_auroc(image_emb: Any, y: Any, pos_prompt_emb: Any, neg_prompt_emb: Any,
                   average: str = "scores") -> float:
    """AUROC of :func:`zeroshot_scores` against binary labels ``y`` (n,)."""
    return auroc(y, zeroshot_scores(image_emb, pos_prompt_emb, neg_prompt_emb, average))


@dataclass
class ZeroShotResult:
    """What a zero-shot evaluation returns.

    ``auroc``: float; ``scores`` (n,): positive minus negative similarity; ``pos_scores`` /
    ``neg_scores`` (n,); ``translator``: the fitted Translator (unimodal method only);
    ``image_text_emb`` (n, d_text): the image embeddings in text space (translated for the
    unimodal method, as given for the standard one); ``auroc_se``: DeLong standard error of
    ``auroc`` on this test set (:func:`semalign.stats.delong`).
    """

    auroc: float
    scores: np.ndarray
    pos_scores: np.ndarray
    neg_scores: np.ndarray
    average: str
    translator: Any = None
    image_text_emb: np.ndarray | None = None
    auroc_se: float = float("nan")

    def row(self, task: str, approach: str, vision_encoder: str, text_encoder: str,
            domain: str) -> dict:
        """One tidy row for the Fig. 4 frame (see :func:`result_row`)."""
        return result_row(task, approach, vision_encoder, text_encoder, domain, self.auroc)


def _evaluate(v_text: np.ndarray, y: Any, pos: Any, neg: Any, average: str,
              translator: Any = None) -> ZeroShotResult:
    ps = class_scores(v_text, pos, average)
    ns = class_scores(v_text, neg, average)
    s = ps - ns
    return ZeroShotResult(auroc=auroc(y, s), scores=s, pos_scores=ps, neg_scores=ns, average=average,
                          translator=translator, image_text_emb=v_text, auroc_se=auroc_se(y, s))


def auroc_se(y: Any, scores: Any) -> float:
    """DeLong standard error of the AUROC of ``scores`` (n,) against binary labels ``y`` (n,)."""
    from semalign.stats import delong

    s = np.asarray(scores, dtype=np.float64)
    return delong(_binary_labels(y, len(s)), s)[1]


def standard_zeroshot(image_emb: Any, y: Any, pos_prompt_emb: Any, neg_prompt_emb: Any,
                      average: str = "scores") -> ZeroShotResult:
    """Multimodal zero-shot (CLIP, MedCLIP): the model's image embeddings ``(n, d)`` against its
    own text tower's prompt embeddings ``(m_pos, d)``, ``(m_neg, d)``; ``y`` (n,) binary."""
    v = _as_2d(image_emb, "image_emb")
    return _evaluate(v, y, pos_prompt_emb, neg_prompt_emb, average)


def unimodal_zeroshot(image_test_emb: Any, y_test: Any, anchor_image_emb: Any,
                      anchor_text_emb: Any, pos_prompt_emb: Any, neg_prompt_emb: Any,
                      method: str = "ortho", std_scaling: bool = True, normalize: bool = True,
                      average: str = "scores", seed: int = 0) -> ZeroShotResult:
    """The paper's unimodal zero-shot classification (Sec. 3.2, Fig. 2).

    A :class:`semalign.align.Translator` (``method``, ``std_scaling``, ``seed``) is fitted on
    the anchor pairs -- image embeddings ``anchor_image_emb`` (N, d_img) of a vision encoder and
    the text embeddings ``anchor_text_emb`` (N, d_txt) of their reports by a text encoder --
    and maps the test images ``image_test_emb`` (n, d_img) into the text space. The translated
    images are scored against that text encoder's prompt embeddings ``(m, d_txt)``.

    ``normalize``: L2-normalise image and text rows before fitting and translating (both
    anchors and test images), as the paper's normalisation step; prompts are always
    compared by cosine similarity.
    """
    from semalign.align import Translator

    xi = _as_2d(image_test_emb, "image_test_emb")
    xa = _as_2d(anchor_image_emb, "anchor_image_emb")
    ya = _as_2d(anchor_text_emb, "anchor_text_emb")
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(f"anchor_image_emb has {xa.shape[0]} rows but anchor_text_emb has "
                         f"{ya.shape[0]}: anchors are image–report pairs, row i with row i")
    if xi.shape[1] != xa.shape[1]:
        raise ValueError(f"image_test_emb has dim {xi.shape[1]} but anchor_image_emb has dim "
                         f"{xa.shape[1]}: both must come from the same vision encoder")
    pos = _as_2d(pos_prompt_emb, "pos_prompt_emb")
    if pos.shape[1] != ya.shape[1]:
        raise ValueError(f"prompt embeddings have dim {pos.shape[1]} but anchor_text_emb has dim "
                         f"{ya.shape[1]}: prompts and reports must come from the same text encoder")
    if normalize:
        xi, xa, ya = l2_normalize(xi), l2_normalize(xa), l2_normalize(ya)
    t = Translator(method, std_scaling=std_scaling, seed=seed).fit(
        xa.astype(np.float32), ya.astype(np.float32))
    v_text = np.asarray(t.transform(xi.astype(np.float32)), dtype=np.float64)
    return _evaluate(v_text, y_test, pos, neg_prompt_emb, average, translator=t)


@dataclass
class ProbeResult:
    """What :func:`linear_probe` returns: ``auroc`` and its DeLong ``auroc_se`` on the test set,
    ``scores`` (n_test,) the classifier's decision values, ``model`` the fitted scikit-learn pipeline."""

    auroc: float
    auroc_se: float
    scores: np.ndarray
    model: Any = None


def linear_probe(train_emb: Any, y_train: Any, test_emb: Any, y_test: Any, C: float = PROBE_C) -> ProbeResult:
    """The supervised ceiling of a vision encoder on a binary task: a linear classifier on its
    embeddings, trained on the task's labelled training images, scored on its test images.

    Rows are L2-normalised (as the zero-shot scoring compares them), then standardised with the
    training rows' mean and standard deviation, then an L2-regularised logistic regression
    (L-BFGS, ``C`` = :data:`PROBE_C`, scikit-learn's default) is fitted — the linear probe of
    CLIP's evaluation, with its regularisation fixed instead of tuned on a validation split (the
    offline tasks have none to spare). Logistic regression rather than a linear SVM: its
    decision values rank test images by a calibrated log-odds and its solution is unique.
    ``train_emb`` (n_train, d), ``y_train`` (n_train,) 0/1; ``test_emb`` (n_test, d), ``y_test``
    (n_test,) 0/1.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, xte = l2_normalize(_as_2d(train_emb, "train_emb")), l2_normalize(_as_2d(test_emb, "test_emb"))
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train_emb has dim {xtr.shape[1]} but test_emb has dim {xte.shape[1]}: both must come "
                         f"from the same vision encoder")
    ytr = _binary_labels(y_train, len(xtr))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=float(C), max_iter=5000))
    model.fit(xtr, ytr)
    s = model.decision_function(xte)
    return ProbeResult(auroc=auroc(y_test, s), auroc_se=auroc_se(y_test, s), scores=s, model=model)


# --------------------------------------------------------------------------------------------
# tidy results for Fig. 4
# --------------------------------------------------------------------------------------------
def result_row(task: str, approach: str, vision_encoder: str, text_encoder: str, domain: str,
               auroc: float) -> dict:
    """One row of the Fig. 4 frame: ``approach`` in :data:`APPROACHES` ("clip", "medclip",
    "synthclip", "unimodal", "probe"); ``domain`` is the vision encoder's ("general", "medical", ...)."""
    if approach not in APPROACHES:
        raise ValueError(f"approach={approach!r}: use one of {APPROACHES}")
    a = float(auroc)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"auroc={auroc!r} is not in [0, 1]")
    return dict(task=str(task), approach=approach, vision_encoder=str(vision_encoder),
                text_encoder=str(text_encoder), domain=str(domain), auroc=a)


def tidy_results(rows: Iterable[Mapping[str, Any]]):
    """Rows (dicts from :func:`result_row` / :meth:`ZeroShotResult.row`) -> DataFrame with
    columns :data:`RESULT_COLUMNS`, in that order."""
    import pandas as pd

    rows = list(rows)
    for i, r in enumerate(rows):
        missing = [c for c in RESULT_COLUMNS if c not in r]
        if missing:
            raise ValueError(f"row {i} lacks columns {missing}; build rows with result_row()")
    return pd.DataFrame([{c: r[c] for c in RESULT_COLUMNS} for r in rows],
                        columns=list(RESULT_COLUMNS))


# --------------------------------------------------------------------------------------------
# the Fig. 4 grid, on embeddings
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    """A multimodal model scored with :func:`standard_zeroshot`: its two towers' names and the
    image tower's domain."""

    image_encoder: str
    text_encoder: str
    domain: str


@dataclass
class ZeroShotTask:
    """One binary finding task, embedded for zero-shot scoring.

    ``y`` (n,) 0/1 (1 = finding present); ``images``: ``{vision encoder: (n, d_v)}`` test images;
    ``pos`` / ``neg`` (m, d_t): the task's prompts by the text encoder; ``baselines``:
    ``{approach: (images (n, d), pos (m, d), neg (m, d))}`` in that multimodal model's own space;
    ``train_images``: ``{vision encoder: (n_train, d_v)}`` the task's labelled training images and
    ``y_train`` (n_train,) 0/1 their labels, for the linear probe (empty: no probe).
    """

    name: str
    y: np.ndarray
    images: dict[str, np.ndarray]
    pos: np.ndarray
    neg: np.ndarray
    baselines: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    train_images: dict[str, np.ndarray] = field(default_factory=dict)
    y_train: np.ndarray | None = None


@dataclass
class EncodedZeroShot:
    """What Fig. 4 scores (built by :func:`semalign.encoders.tasks.encode_zeroshot`).

    ``anchor_text`` (P, d_t): the pair pool's reports by ``text_encoder``; ``anchor_images``:
    ``{vision encoder: (P, d_v)}``, row i the image of report i; ``tasks`` in order; ``domains``:
    ``{encoder: domain}`` of the text and vision encoders; ``baselines``: ``{approach:
    Baseline}``; ``supervised_on``: ``{vision encoder: what its training labels were}`` for
    encoders trained on labels (not zero-shot in the paper's sense).
    """

    text_encoder: str
    anchor_text: np.ndarray
    anchor_images: dict[str, np.ndarray]
    tasks: list[ZeroShotTask]
    domains: dict[str, str]
    baselines: dict[str, Baseline] = field(default_factory=dict)
    supervised_on: dict[str, str] = field(default_factory=dict)

    @property
    def pair_pool(self) -> int:
        return int(len(self.anchor_text))


class DrawError(SemalignError, ValueError):
    """The anchor-draw plan of the zero-shot grid (``n_pairs``, ``pair_pool``, ``runs``) cannot work;
    the message says which parameter to change."""


def check_draws(n_pairs: int, pair_pool: int, runs: int) -> None:
    """Refuse a draw plan that cannot work (:class:`DrawError`): ``runs`` >= 1, ``n_pairs`` <=
    ``pair_pool``, and several runs only from a pool larger than one draw (else every run fits
    the same anchors)."""
    if runs < 1:
        raise DrawError(f"runs must be >= 1; got {runs}: give -p runs 1 or more")
    if n_pairs > pair_pool:
        raise DrawError(f"n_pairs={n_pairs} is more than the pair pool ({pair_pool}): lower n_pairs or raise pair_pool")
    if runs > 1 and n_pairs == pair_pool:
        raise DrawError(f"runs={runs} with n_pairs == pair_pool ({pair_pool}) would fit every run on the same "
                         f"anchors: give pair_pool > n_pairs (e.g. {int(n_pairs * 4 / 3)}) or runs=1")


def anchor_draws(pair_pool: int, n_pairs: int, runs: int, seed: int = 0) -> list[np.ndarray]:
    """Run r's anchor rows: ``n_pairs`` sorted indices of the pool, drawn with
    ``numpy.random.default_rng([seed, r])`` (the paper repeats each experiment with new anchors)."""
    check_draws(n_pairs, pair_pool, runs)
    return [np.sort(np.random.default_rng([seed, r]).permutation(pair_pool)[:n_pairs]) for r in range(runs)]


def zeroshot_grid(encoded: EncodedZeroShot, *, n_pairs: int, runs: int = 1, method: str = "ortho",
                  seed: int = 0):
    """Fig. 4 on embeddings: the paper's unimodal zero-shot for every (task, vision encoder, run),
    the supervised linear probe of every vision encoder whose training images were embedded, then
    each baseline's standard zero-shot, once per task.

    Run r fits ``method`` on the pairs of :func:`anchor_draws` (Translator seed ``seed + r``)
    and scores the task's test images against its prompts (:func:`unimodal_zeroshot`).
    Returns the frame of :func:`tidy_results` plus ``auroc_se`` (DeLong standard error of that
    row's AUROC on its test set), ``run`` (0 for the probe and baselines, which use no anchors),
    ``n_pos``, ``n_neg`` (test class counts, for the chance level) and ``supervised_on`` (what a
    label-trained vision encoder was trained on, else ""; the probe's own labels are said by its
    approach).
    """
    draws = anchor_draws(encoded.pair_pool, n_pairs, runs, seed)
    rows, extra = [], []
    from semalign.progress import track  # the terminal of semalign book, never the page
    for t in track(encoded.tasks, f"zero-shot {method}", disable=True):
        n_pos = int(np.sum(t.y == 1))
        counts = (n_pos, len(t.y) - n_pos)
        for name, test_e in t.images.items():
            for run, a in enumerate(draws):
                r = unimodal_zeroshot(test_e, t.y, encoded.anchor_images[name][a], encoded.anchor_text[a],
                                      t.pos, t.neg, method=method, seed=seed + run)
                rows.append(r.row(t.name, "unimodal", name, encoded.text_encoder, encoded.domains[name]))
                extra.append((r.auroc_se, run, *counts))
            if name in t.train_images:
                p = linear_probe(t.train_images[name], t.y_train, test_e, t.y)
                rows.append(result_row(t.name, "probe", name, "", encoded.domains[name], p.auroc))
                extra.append((p.auroc_se, 0, *counts))
        for approach, b in encoded.baselines.items():
            images, pos, neg = t.baselines[approach]
            r = standard_zeroshot(images, t.y, pos, neg)
            rows.append(r.row(t.name, approach, b.image_encoder, b.text_encoder, b.domain))
            extra.append((r.auroc_se, 0, *counts))
    out = tidy_results(rows)
    out["auroc_se"], out["run"], out["n_pos"], out["n_neg"] = ([e[k] for e in extra] for k in range(4))
    out["supervised_on"] = [encoded.supervised_on.get(v, "") if a == "unimodal" else ""
                            for v, a in zip(out["vision_encoder"], out["approach"])]
    return out
