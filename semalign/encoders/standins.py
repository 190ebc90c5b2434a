"""Medical stand-in encoders for the offline profile, fitted here on training pools only.

No medical encoder ships in a package registry, so the offline profile fits its own and
names them ``medical (stand-in)`` everywhere their numbers appear. Each is fitted once, on
data that never includes a test item, and the fitted parameters are cached in
``$SEMALIGN_FITS`` (default ``$SEMALIGN_CACHE/standins/``; atomic writes; a damaged file is refitted, never used).

Kinds (``semalign/encoders/registry_standins.yml``):

* ``tfidf-mesh`` — radiology text: word 1–2-gram TF-IDF -> a hidden layer trained to predict
  the MeSH major-term heads of the Open-i training pool (every report not in the openi-5class
  test set), with sigmoid outputs and BCE; the hidden layer (tanh) is the embedding. It learns
  which words go with which findings from in-domain supervision, as medical models do.
* ``tfidf-svd`` — radiology text, unsupervised: TF-IDF -> truncated SVD (LSA) fitted on the
  same training pool. Weak by design (an in-domain vocabulary, no supervision).
* ``synthcxr-cnn`` — SynthCXR images: a small CNN trained for about a minute on CPU to
  predict the eleven findings of 2,000 SynthCXR training images at 80 x 80 (their own seed
  stream, never a task's test images); the global-pooled penultimate layer is the embedding.

**What a stand-in was fitted on is part of the stand-in.** Every stand-in exposes
``encoder.fit_ids`` (frozenset of the sample ids its fit consumed). The text fits store them
in the cached file and are served from the cache only when the stored ids are exactly the ids
of the pool asked for (else refitted); a pool other than the default one also changes the
cache key (``pool`` entry: its ids' sha256). The text stand-ins are fitted on the training
pool of the *default* openi-5class recipe unless given ``pool_params`` (recipe overrides of
openi-5class, e.g. ``get_encoder("standin-text-mesh", pool_params={"seed": 1})``), so an
overridden recipe whose test reports are in the default pool would leak:
:func:`check_disjoint` raises before that can happen, and :func:`for_task` refits the text
stand-ins on a given openi-5class task's own training pool.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from semalign._io import atomic_write_bytes
from semalign.encoders.base import Encoder, EncoderError, register_kind
from semalign.paths import fits_dir
from semalign.vocab import Domain

FIT_VERSION = 1  # part of every fit's cache key: bump when a fitting recipe changes
POOL_TASK = "openi-5class"  # the task whose training pool the text stand-ins are fitted on
_POOL_RECIPE_KEYS = ("n_test_per_class", "n_train_per_class", "seed")  # its recipe parameters
_META = ("fit_ids",)  # stored with a fit, not weights: left out of the weights digest


class FitOverlapError(EncoderError):
    """A stand-in would be evaluated on samples it was fitted on (test leakage)."""


def _fit_path(kind: str, params: dict) -> Path:
    h = hashlib.sha256(json.dumps({"kind": kind, "v": FIT_VERSION, **params}, sort_keys=True, default=str).encode())
    return fits_dir() / f"{kind}-{h.hexdigest()[:16]}.npz"


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """A cached fit, or None when absent or damaged (then it is refitted)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        want = d.pop("_sha256").tobytes().decode()
        got = hashlib.sha256(b"".join(d[k].tobytes() for k in sorted(d))).hexdigest()
        return d if got == want else None
    except Exception:  # noqa: BLE001 — any unreadable cache file is simply refitted
        return None


def _save_npz(path: Path, d: dict[str, np.ndarray]) -> None:
    sha = hashlib.sha256(b"".join(d[k].tobytes() for k in sorted(d))).hexdigest()
    buf = io.BytesIO()
    np.savez(buf, _sha256=np.frombuffer(sha.encode(), dtype=np.uint8), **d)
    atomic_write_bytes(path, buf.getvalue())


def _digest(d: dict[str, np.ndarray]) -> str:
    return hashlib.sha256(b"".join(d[k].tobytes() for k in sorted(d))).hexdigest()


def _weights_digest(d: dict[str, np.ndarray]) -> str:
    """sha256 of the fitted parameters only (what the embeddings depend on)."""
    return _digest({k: v for k, v in d.items() if k not in _META})


def _ids_sha(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# leakage guard
# --------------------------------------------------------------------------------------------
def check_disjoint(encoder: Encoder, ids, what: str = "test") -> None:
    """Raise :class:`FitOverlapError` when any of ``ids`` is among the samples ``encoder`` was
    fitted on (``encoder.fit_ids``). A no-op for encoders that are not stand-ins; a stand-in
    that does not say what it was fitted on cannot be checked and is refused."""
    fit_ids = getattr(encoder, "fit_ids", None)
    if fit_ids is None:
        if getattr(encoder, "domain", None) == Domain.MEDICAL_STANDIN:
            raise FitOverlapError(
                f"{encoder.name} is a stand-in but does not expose `fit_ids` (the ids it was fitted on), so "
                f"it cannot be checked against the {what} samples; give its class a `fit_ids` frozenset.")
        return
    want = {str(i) for i in ids}
    overlap = sorted(want & fit_ids)
    if not overlap:
        return
    name = getattr(encoder, "name", type(encoder).__name__)
    if getattr(encoder, "spec", {}).get("kind") in _TEXT_BUILDERS:
        pool = getattr(encoder, "pool_params", None)
        fitted = (f"the {POOL_TASK} training pool with recipe overrides {pool}" if pool
                  else f"the default {POOL_TASK} training pool")
        todo = (f"Refit it on this task's training pool: `semalign.encoders.standins.for_task(encoders, task)`, "
                f"or get_encoder({name!r}, pool_params={{...}}) with the task's {POOL_TASK} recipe overrides "
                f"({', '.join(_POOL_RECIPE_KEYS)}); or evaluate on the default {POOL_TASK} recipe "
                f"(remove its task_params override).")
    else:
        fitted = "its own training samples"
        todo = "Evaluate it on samples outside its training set (another seed stream or task)."
    raise FitOverlapError(
        f"{name} (medical stand-in) was fitted on {len(overlap)} of the {len(want)} {what} ids "
        f"(e.g. {overlap[0]!r}; fitted on {fitted}, {len(fit_ids)} ids): its {what} numbers would be "
        f"inflated by leakage. {todo}")


# --------------------------------------------------------------------------------------------
# text: the Open-i training pool
# --------------------------------------------------------------------------------------------
def openi_training_pool(seed: int = 0, **task_params: Any) -> tuple[list[str], list[list[str]], list[str]]:
    """Texts, MeSH heads and ids of every Open-i report outside the openi-5class test set
    (same sentence removal as the task, so the encoder sees the task's text distribution).
    ``seed`` / ``task_params``: the openi-5class recipe (default: the default recipe)."""
    from semalign.data import get_task, openi

    task = get_task(POOL_TASK, seed=seed, **task_params)
    df = openi.parse_reports()
    heads = {r.id: sorted({t.split("/")[0].strip().lower() for t in r.mesh_major}) for r in df.itertuples()}
    test = set(task.test["id"])
    pool = task.anchors[~task.anchors["id"].isin(test)]
    return list(pool["input"]), [heads[i] for i in pool["id"]], [str(i) for i in pool["id"]]


def _text_pool(seed: int, pool_params: dict | None) -> tuple[list[str], list[list[str]], list[str], dict]:
    """The training pool a text fit consumes and what it adds to the fit's cache key: nothing
    for the default pool (so its cache path is the historical one), else the pool's ids."""
    pool_params = dict(pool_params or {})
    unknown = sorted(set(pool_params) - set(_POOL_RECIPE_KEYS))
    if unknown:
        raise EncoderError(f"pool_params: unknown {POOL_TASK} recipe parameter(s) {unknown}; "
                           f"known: {', '.join(_POOL_RECIPE_KEYS)}")
    texts, heads, ids = openi_training_pool(**{"seed": seed, **pool_params})
    extra: dict = {}
    if pool_params and ids != openi_training_pool(seed=seed)[2]:
        extra = {"pool": {"task": POOL_TASK, "n": len(ids), "ids_sha256": _ids_sha(ids)}}
    return texts, heads, ids, extra


def _load_fit(path: Path, ids: list[str]) -> dict[str, np.ndarray] | None:
    """A cached text fit, only if it was fitted on exactly ``ids`` (else None: refit)."""
    d = _load_npz(path)
    if d is None or "fit_ids" not in d or d["fit_ids"].tolist() != ids:
        return None
    return d


def _tfidf_arrays(texts: list[str], max_features: int) -> dict[str, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    v = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=max_features, sublinear_tf=True)
    v.fit(texts)
    vocab = sorted(v.vocabulary_, key=v.vocabulary_.get)
    return {"vocab": np.array(vocab), "idf": v.idf_.astype(np.float32)}


def _tfidf_from(d: dict[str, np.ndarray]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    v = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, vocabulary={w: i for i, w in enumerate(d["vocab"].tolist())})
    v.fit(["x"])  # sets up the vocabulary; idf replaced below
    v.idf_ = d["idf"].astype(np.float64)
    return v


class _TextStandin(Encoder):
    default_batch_size = 256

    def __init__(self, *a, fit: dict[str, np.ndarray], **kw):
        super().__init__(*a, **kw)
        self._fit = fit
        self._vec = _tfidf_from(fit)
        self._sha = _weights_digest(fit)
        #: ids of the Open-i reports this encoder was fitted on (stored with the fit)
        self.fit_ids: frozenset[str] = frozenset(fit["fit_ids"].tolist())
        #: openi-5class recipe overrides of its training pool (None: the default recipe)
        self.pool_params: dict | None = dict(self.spec["pool_params"]) if self.spec.get("pool_params") else None

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "weights_sha256": self._sha}

    def _features(self, batch: list[str]) -> np.ndarray:
        return self._vec.transform(batch)


class TfidfMeshEncoder(_TextStandin):
    """TF-IDF -> tanh hidden layer trained on MeSH heads; embedding = hidden layer (dim)."""

    def _embed_batch(self, batch):
        X = self._features(batch)
        return np.tanh(X @ self._fit["W1"] + self._fit["b1"]).astype(np.float32)


class TfidfSvdEncoder(_TextStandin):
    """TF-IDF -> truncated SVD components (LSA)."""

    def _embed_batch(self, batch):
        return np.asarray(self._features(batch) @ self._fit["components"].T, dtype=np.float32)


def fit_tfidf_mesh(dim: int = 128, max_features: int = 5000, min_term_count: int = 5, epochs: int = 150,
                   seed: int = 0, pool_params: dict | None = None) -> dict[str, np.ndarray]:
    """Fit (or load from the cache) the tfidf-mesh stand-in on the Open-i training pool of the
    openi-5class recipe ``{"seed": seed, **pool_params}``; ``d["fit_ids"]``: the reports used."""
    texts, heads, ids, extra = _text_pool(seed, pool_params)
    params = {"dim": dim, "max_features": max_features, "min_term_count": min_term_count, "epochs": epochs, "seed": seed,
              **extra}
    path = _fit_path("tfidf-mesh", params)
    if (d := _load_fit(path, ids)) is not None:
        return d
    import torch

    d = _tfidf_arrays(texts, max_features)
    X = _tfidf_from(d).transform(texts).tocoo()
    counts: dict[str, int] = {}
    for h in heads:
        for t in h:
            counts[t] = counts.get(t, 0) + 1
    terms = sorted(t for t, c in counts.items() if c >= min_term_count)
    Y = np.array([[t in set(h) for t in terms] for h in heads], np.float32)
    g = torch.Generator().manual_seed(seed)
    Xt = torch.sparse_coo_tensor(np.vstack([X.row, X.col]).astype(np.int64), X.data.astype(np.float32), X.shape,
                                 check_invariants=True).coalesce()
    Yt = torch.from_numpy(Y)
    W1 = torch.nn.Parameter(torch.randn(X.shape[1], dim, generator=g) * 0.01)
    b1 = torch.nn.Parameter(torch.zeros(dim))
    W2 = torch.nn.Parameter(torch.randn(dim, len(terms), generator=g) * (1 / dim ** 0.5))
    b2 = torch.nn.Parameter(torch.zeros(len(terms)))
    opt = torch.optim.Adam([W1, b1, W2, b2], lr=1e-2)
    pos = Yt.mean(0).clamp(min=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=((1 - pos) / pos).clamp(max=20.0))
    for _ in range(epochs):  # full batch: 3.4k sparse rows, a fraction of a second per epoch
        opt.zero_grad()
        h = torch.tanh(torch.sparse.mm(Xt, W1) + b1)
        loss = loss_fn(h @ W2 + b2, Yt) + 1e-5 * W1.pow(2).sum()
        loss.backward()
        opt.step()
    d.update(W1=W1.detach().numpy().astype(np.float32), b1=b1.detach().numpy().astype(np.float32),
             terms=np.array(terms), fit_ids=np.array(ids, dtype=str))
    _save_npz(path, d)
    return d


def fit_tfidf_svd(dim: int = 256, max_features: int = 5000, seed: int = 0,
                  pool_params: dict | None = None) -> dict[str, np.ndarray]:
    """Fit (or load from the cache) the tfidf-svd stand-in; pool as :func:`fit_tfidf_mesh`."""
    texts, _, ids, extra = _text_pool(seed, pool_params)
    params = {"dim": dim, "max_features": max_features, "seed": seed, **extra}
    path = _fit_path("tfidf-svd", params)
    if (d := _load_fit(path, ids)) is not None:
        return d
    from sklearn.decomposition import TruncatedSVD

    d = _tfidf_arrays(texts, max_features)
    X = _tfidf_from(d).transform(texts)
    svd = TruncatedSVD(n_components=min(dim, X.shape[1] - 1), random_state=seed).fit(X)
    d["components"] = svd.components_.astype(np.float32)
    d["fit_ids"] = np.array(ids, dtype=str)
    _save_npz(path, d)
    return d


@register_kind("tfidf-mesh")
def build_tfidf_mesh(spec: dict, device: str) -> Encoder:
    fit = fit_tfidf_mesh(dim=int(spec.get("dim", 128)), epochs=int(spec.get("epochs", 150)),
                         pool_params=spec.get("pool_params"))
    return TfidfMeshEncoder.from_spec({**spec, "dim": fit["W1"].shape[1]}, device="cpu", fit=fit)


@register_kind("tfidf-svd")
def build_tfidf_svd(spec: dict, device: str) -> Encoder:
    fit = fit_tfidf_svd(dim=int(spec.get("dim", 256)), pool_params=spec.get("pool_params"))
    return TfidfSvdEncoder.from_spec({**spec, "dim": fit["components"].shape[0]}, device="cpu", fit=fit)


_TEXT_BUILDERS = {"tfidf-mesh": build_tfidf_mesh, "tfidf-svd": build_tfidf_svd}


def pool_params_of(task) -> dict:
    """The openi-5class recipe overrides that rebuild ``task`` (its ``recipe``), checked: the
    rebuilt task must have the same ``dataset_key``."""
    from semalign.data import get_task

    if getattr(task, "name", None) != POOL_TASK:
        raise EncoderError(f"the text stand-ins can only be fitted on the training pool of {POOL_TASK}, "
                           f"not of {getattr(task, 'name', task)!r}")
    recipe = getattr(task, "recipe", None) or {}
    params = {k: recipe[k] for k in _POOL_RECIPE_KEYS if k in recipe}
    if get_task(POOL_TASK, **params).dataset_key != task.dataset_key:
        raise EncoderError(f"cannot rebuild {task.dataset_key} from its recipe parameters {params}: refit the "
                           f"stand-ins by hand (fit_tfidf_mesh / fit_tfidf_svd with pool_params) or use the "
                           f"default {POOL_TASK} recipe")
    return params


def for_task(encoders: dict[str, Encoder], task) -> dict[str, Encoder]:
    """``encoders`` with every text stand-in that was fitted on any of ``task``'s test reports
    replaced by one fitted on ``task``'s own training pool (openi-5class with overridden
    recipe). Other encoders are returned as they are; the input dict is not changed. Follow
    with :func:`check_disjoint`, which still refuses anything that would leak."""
    out = dict(encoders)
    test = {str(i) for i in task.test["id"]}
    for name, enc in encoders.items():
        fit_ids, kind = getattr(enc, "fit_ids", None), getattr(enc, "spec", {}).get("kind")
        if fit_ids is None or kind not in _TEXT_BUILDERS or not (fit_ids & test) or task.name != POOL_TASK:
            continue
        params = pool_params_of(task)
        spec = {k: v for k, v in enc.spec.items() if k != "pool_params"}
        out[name] = _TEXT_BUILDERS[kind]({**spec, "pool_params": params} if params else spec, enc.device)
    return out


# --------------------------------------------------------------------------------------------
# images: a small CNN trained on SynthCXR training images
# --------------------------------------------------------------------------------------------
CNN_INPUT = 80
TRAIN_SEED = 910_000  # SynthCXR seed stream of the stand-in's training images (no task uses it)
_CNN_ID_PREFIX = "synth"  # SynthCXR's default id prefix: the ids of the CNN's training images


def cnn_train_ids(n_train: int = 2000, seed: int = 0) -> list[str]:
    """Ids of the SynthCXR images the CNN stand-in is trained on (a function of its cache key)."""
    return [f"{_CNN_ID_PREFIX}-{TRAIN_SEED + seed}-{i:06d}" for i in range(n_train)]


def _cnn(width: int = 32):
    import torch.nn as nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                             nn.MaxPool2d(2))

    from semalign.data.synthcxr import FINDINGS

    feat = nn.Sequential(block(1, width), block(width, width * 2), block(width * 2, width * 4),
                         block(width * 4, width * 4), nn.Conv2d(width * 4, width * 8, 3, padding=1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return feat, nn.Linear(width * 8, len(FINDINGS))


def _prep(images: list, size: int = CNN_INPUT) -> np.ndarray:
    """Images (paths or arrays) -> float32 (n, 1, size, size) in [0, 1]."""
    from PIL import Image

    from semalign.images import read_image

    out = np.empty((len(images), 1, size, size), np.float32)
    for i, im in enumerate(images):
        a = read_image(im, mode="gray")
        if a.shape != (size, size):
            a = np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR))
        out[i, 0] = a / 255.0
    return out


def fit_synthcxr_cnn(n_train: int = 2000, epochs: int = 4, width: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    from semalign.data.synthcxr import SYNTHCXR_VERSION

    params = {"n_train": n_train, "epochs": epochs, "width": width, "seed": seed, "input": CNN_INPUT,
              "generator_version": SYNTHCXR_VERSION}
    path = _fit_path("synthcxr-cnn", params)
    if (d := _load_npz(path)) is not None:
        return d
    import torch

    from semalign.data.synthcxr import FINDINGS, generate

    torch.manual_seed(seed)
    # a richer mix than the default prevalence, so every finding has examples to learn from
    b = generate(n_train, seed=TRAIN_SEED + seed, size=224, prevalence=0.15, id_prefix=_CNN_ID_PREFIX)
    if list(b.labels["id"]) != cnn_train_ids(n_train, seed):
        raise EncoderError("synthcxr-cnn: SynthCXR ids of the training images changed; update cnn_train_ids")
    X = torch.from_numpy(_prep(list(b.images)))
    Y = torch.from_numpy(b.labels[list(FINDINGS)].to_numpy().astype(np.float32))
    feat, head = _cnn(width)
    model = torch.nn.Sequential(feat, head)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss_fn(model(X[idx]), Y[idx]).backward()
            opt.step()
    model.eval()
    d = {k: v.detach().numpy().copy() for k, v in feat.state_dict().items()}
    d = {f"feat.{k}": v for k, v in d.items()}
    _save_npz(path, d)
    return d


class SynthCxrCnnEncoder(Encoder):
    """Global-average-pooled last conv features of the SynthCXR-trained CNN (8 * width dims)."""

    default_batch_size = 64

    def __init__(self, *a, fit: dict[str, np.ndarray], width: int, fit_ids: frozenset[str] = frozenset(), **kw):
        super().__init__(*a, **kw)
        import torch

        #: ids of the SynthCXR training images (its own seed stream)
        self.fit_ids: frozenset[str] = frozenset(fit_ids)
        self._sha = _digest(fit)
        self._feat, _ = _cnn(width)
        self._feat.load_state_dict({k[5:]: torch.from_numpy(np.array(v)) for k, v in fit.items()}, strict=True)
        self._feat.eval()

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "weights_sha256": self._sha, "input": CNN_INPUT}

    def _embed_batch(self, batch):
        import torch

        return self._feat(torch.from_numpy(_prep(batch)))


@register_kind("synthcxr-cnn")
def build_synthcxr_cnn(spec: dict, device: str) -> Encoder:
    width, n_train = int(spec.get("width", 12)), int(spec.get("n_train", 2000))
    fit = fit_synthcxr_cnn(n_train=n_train, epochs=int(spec.get("epochs", 4)), width=width)
    return SynthCxrCnnEncoder.from_spec({**spec, "dim": 8 * width}, device="cpu", fit=fit, width=width,
                                        fit_ids=frozenset(cnn_train_ids(n_train)))
