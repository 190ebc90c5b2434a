"""Kind ``adapted-text``: a general sentence encoder adapted to radiology reports, fitted here.

The paper's medical text encoders are general architectures adapted to the domain (BioLORD-2023
is MPNet fine-tuned on biomedical definitions, Meditron is Llama-2 with continued pre-training).
This stand-in is built the same way, offline and on training data only: a registry encoder
(``recipe.base``, by default ``minilm-l6``) is fine-tuned with a label-free contrastive objective
on the Open-i reports of the openi-5class *training pool* (every report outside its test set,
:func:`semalign.encoders.standins.openi_training_pool`). It is a stand-in, not a real medical
model, and the book names it ``medical (stand-in)``.

Objective
    Pairs are (findings section, impression section) of the same report, each with the
    sentences naming a class removed (:func:`semalign.data.openi.strip_class_sentences`, the rule
    openi-5class applies, so the encoder sees the task's text distribution); a report with an
    empty section after removal is skipped. Loss: symmetric InfoNCE with in-batch negatives
    (MultipleNegativesRanking both ways) on mean-pooled, L2-normalised embeddings with
    temperature ``recipe.temperature``. Many reports share a stock sentence ("No acute
    cardiopulmonary abnormality."), so an in-batch pair with the same findings or the same
    impression text as the positive is masked out rather than counted as a negative.
    Optimiser: AdamW (weight decay :data:`WEIGHT_DECAY`), linear warm-up over ``recipe.warmup``
    of the steps then linear decay to 0, gradients clipped to norm :data:`MAX_GRAD_NORM`; the
    embeddings and the first ``recipe.frozen_layers`` transformer layers are frozen (CPU cost).
    Batches follow seeded permutations of the pairs; dropout is seeded too.

Why not MeSH terms (as BioLORD uses definitions)? The openi-5class labels are derived from the
reports' MeSH major terms (:func:`semalign.data.openi.mesh_classes`): a MeSH objective would
train the encoder on the task's label source. Findings/impression pairs carry no label.

The fitted model is saved with ``save_pretrained`` (model + tokenizer, plus the base's
sentence-transformers configs) into ``$SEMALIGN_CACHE/standins/adapted-text-<key>/``, where the
key hashes everything that determines the weights: the recipe's parameters, the base model's
weights (sha256) and the pairs (ids and texts). The folder is written beside its final place and
renamed into it; a manifest of every file's sha256 is written last, and a folder whose manifest
is missing or does not match is refitted, never used. It is then loaded exactly as a hub model
or a local folder is (:func:`semalign.encoders.hf.build`), so inference is minilm-l6's: mean
pooling, L2 normalisation, the base's max length.

Leakage: ``encoder.fit_ids`` holds the ids of the reports the fit consumed. The fit uses the
training pool of the default openi-5class recipe unless the spec gives ``pool_params``
(openi-5class recipe overrides); this kind is registered with the text stand-ins, so
:func:`semalign.encoders.standins.for_task` refits it on an overridden task's own pool and
:func:`semalign.encoders.standins.check_disjoint` refuses it on any report it was fitted on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from semalign._io import atomic_write_text, file_lock, sha256_file
from semalign.encoders import standins
from semalign.encoders.base import Encoder, EncoderError, register_kind, resolve_spec
from semalign.encoders.hf import HFEncoder, pool, resolve_source, weights_sha256

KIND = "adapted-text"
#: part of every fit's cache key: bump when the training code changes what it produces
ADAPT_VERSION = 1
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
#: written last into a fitted folder: file -> sha256, the recipe key and the fit ids
MANIFEST = "semalign-fit.json"
#: the base's sentence-transformers files copied beside the weights (pooling, normalisation,
#: max length at inference), so the folder is what the base's is, with new weights
_ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
             "1_Pooling/config.json")
#: recipe keys that describe the fit for readers (the book shows them) but choose nothing
DESCRIPTIVE = ("data", "objective")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a fit is: the numeric keys of a registry entry's ``recipe:`` (see the module
    docstring). ``base``: a registry name (or local model folder) of a BERT-like text encoder."""

    base: str = "minilm-l6"
    steps: int = 100
    batch: int = 32
    max_length: int = 128
    lr: float = 5e-5
    warmup: float = 0.1
    temperature: float = 0.05
    frozen_layers: int = 4
    seed: int = 0

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None, where: str = "recipe") -> "Recipe":
        """A checked Recipe from a ``recipe:`` mapping (missing keys take the defaults; the
        descriptive keys :data:`DESCRIPTIVE` are accepted and ignored); one EncoderError otherwise."""
        m = dict(m or {})
        fields = {f.name: type(f.default) for f in dataclasses.fields(cls)}
        unknown = sorted(set(m) - set(fields) - set(DESCRIPTIVE))
        if unknown:
            raise EncoderError(f"{where}: unknown key(s) {unknown}; a recipe has {', '.join(fields)} "
                               f"(and the descriptions {', '.join(DESCRIPTIVE)})")
        kw: dict[str, Any] = {}
        for name, typ in fields.items():
            if name not in m:
                continue
            v = m[name]
            ok = (isinstance(v, str) and v.strip()) if typ is str else \
                (isinstance(v, (int, float)) and not isinstance(v, bool) and (typ is float or float(v).is_integer()))
            if not ok:
                what = {str: "a non-empty string", int: "a whole number", float: "a number"}[typ]
                raise EncoderError(f"{where}: {name} must be {what}, got {v!r}")
            kw[name] = typ(v)
        r = cls(**kw)
        bad = [(n, v) for n, v, good in (("steps", r.steps, r.steps >= 1), ("batch", r.batch, r.batch >= 2),
                                        ("max_length", r.max_length, r.max_length >= 2),
                                        ("lr", r.lr, r.lr > 0), ("warmup", r.warmup, 0 <= r.warmup < 1),
                                        ("temperature", r.temperature, r.temperature > 0),
                                        ("frozen_layers", r.frozen_layers, r.frozen_layers >= 0)) if not good]
        if bad:
            raise EncoderError(f"{where}: {bad[0][0]}={bad[0][1]!r} is out of range (steps >= 1, batch >= 2, "
                               f"max_length >= 2, lr > 0, 0 <= warmup < 1, temperature > 0, frozen_layers >= 0)")
        return r

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Fit:
    """A fitted stand-in on disk: its folder, the ids of the reports it consumed, the loss
    per step (as recorded when it was fitted) and its cache key."""

    folder: Path
    fit_ids: frozenset[str]
    losses: tuple[float, ...]
    key: dict


# --------------------------------------------------------------------------------------------
# data: (findings, impression) of the Open-i training pool
# --------------------------------------------------------------------------------------------
def report_pairs(seed: int = 0, pool_params: dict | None = None) -> tuple[list[str], list[str], list[str]]:
    """``(findings, impressions, ids)`` of the openi-5class training pool (recipe ``{"seed":
    seed, **pool_params}``; default: the default recipe), class-naming sentences removed from
    each section; reports with an empty section are skipped. Rows in pool (id) order."""
    from semalign.data import openi

    _, _, pool_ids, _ = standins._text_pool(seed, pool_params)  # checks pool_params too
    df = openi.parse_reports().set_index("id")
    findings, impressions, ids = [], [], []
    for i in pool_ids:
        f = openi.strip_class_sentences(df.at[i, "findings"])
        im = openi.strip_class_sentences(df.at[i, "impression"])
        if f and im:
            findings.append(f)
            impressions.append(im)
            ids.append(i)
    return findings, impressions, ids


def _pairs_sha(findings: Sequence[str], impressions: Sequence[str], ids: Sequence[str]) -> str:
    h = hashlib.sha256()
    for row in zip(ids, findings, impressions):
        for s in row:
            b = s.encode()
            h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def _freeze(model: Any, n_layers: int) -> None:
    """Freeze the embeddings and the first ``n_layers`` layers (and an unused pooler head)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if n_layers and (layers is None or getattr(model, "embeddings", None) is None):
        raise EncoderError(f"frozen_layers={n_layers}: {type(model).__name__} has no `embeddings` and "
                           f"`encoder.layer` (a BERT-like encoder expected); use frozen_layers: 0")
    if n_layers and n_layers > len(layers):
        raise EncoderError(f"frozen_layers={n_layers}, but the base has {len(layers)} layers")
    frozen = [model.embeddings, *list(layers)[:n_layers]] if n_layers else []
    if getattr(model, "pooler", None) is not None:
        frozen.append(model.pooler)  # mean pooling never uses BERT's tanh head
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)


#: rows per forward pass inside a batch: a batch is run as length-sorted chunks of this size,
#: each padded to its own longest text (pure cost saving: the loss sees the whole batch)
CHUNK = 8


def _tokenize(tok: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text (special tokens added, truncated to ``max_length``), unpadded."""
    return tok(list(texts), truncation=True, max_length=max_length, padding=False,
               return_token_type_ids=False, return_attention_mask=False)["input_ids"]


def _embed_train(model: Any, tok: Any, ids: list[list[int]], device: str):
    """Mean-pooled, L2-normalised embeddings (the inference pooling of minilm-l6), with
    gradients, of pre-tokenised texts; rows in input order. Run as length-sorted chunks of
    :data:`CHUNK` rows so little compute goes to padding (mean pooling ignores the pads)."""
    import torch

    order = sorted(range(len(ids)), key=lambda k: len(ids[k]))
    parts = []
    for c in range(0, len(order), CHUNK):
        enc = tok.pad({"input_ids": [ids[k] for k in order[c:c + CHUNK]]}, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        parts.append(pool(model(**enc), enc["attention_mask"], "mean"))
    vec = torch.cat(parts)[torch.argsort(torch.tensor(order, device=device))]
    return torch.nn.functional.normalize(vec, p=2, dim=-1)


def contrastive_loss(a: Any, b: Any, same: Any, temperature: float):
    """Symmetric InfoNCE of row-aligned unit vectors ``a``, ``b`` (n, d): cross-entropy of each
    row's similarities to the other side, both ways, with the matching row as target. ``same``
    (n, n) bool marks pairs that are not negatives (duplicate texts); the diagonal is kept."""
    import torch

    n = a.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=a.device)
    logits = (a @ b.T / temperature).masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(n, device=a.device)
    ce = torch.nn.functional.cross_entropy
    return (ce(logits, target) + ce(logits.T, target)) / 2


def _duplicates(findings: list[str], impressions: list[str]):
    import torch

    f = [hash(s) for s in findings]
    i = [hash(s) for s in impressions]
    return torch.tensor([[f[r] == f[c] or i[r] == i[c] for c in range(len(f))] for r in range(len(f))])


def _batches(n: int, recipe: Recipe) -> list[list[int]]:
    """``recipe.steps`` batches of ``recipe.batch`` indices from consecutive seeded permutations."""
    import numpy as np

    if n < 2:
        raise EncoderError(f"adapted-text: {n} training pair(s); contrastive fitting needs at least 2")
    rng = np.random.default_rng(recipe.seed)
    b = min(recipe.batch, n)
    stream: list[int] = []
    while len(stream) < recipe.steps * b:
        stream.extend(int(x) for x in rng.permutation(n))
    return [stream[k * b:(k + 1) * b] for k in range(recipe.steps)]


def train_contrastive(base_folder: str | os.PathLike, findings: Sequence[str], impressions: Sequence[str],
                      recipe: Recipe, *, device: str = "cpu", progress: bool | None = None):
    """Fine-tune the model in ``base_folder`` on (findings[k], impressions[k]) pairs with the
    module's objective. Returns ``(model, tokenizer, losses)``: the model in eval mode on
    ``device``, one loss per step. ``progress``: a tqdm bar (None: only in a terminal)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    findings, impressions = list(findings), list(impressions)
    if len(findings) != len(impressions):
        raise EncoderError(f"adapted-text: {len(findings)} findings but {len(impressions)} impressions")
    batches = _batches(len(findings), recipe)
    tok = AutoTokenizer.from_pretrained(base_folder)
    tok.padding_side = "right"
    f_ids, i_ids = _tokenize(tok, findings, recipe.max_length), _tokenize(tok, impressions, recipe.max_length)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):  # seeded dropout without touching the caller's RNG
        torch.manual_seed(recipe.seed)
        model = AutoModel.from_pretrained(base_folder, dtype=torch.float32).to(device)
        _freeze(model, recipe.frozen_layers)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=WEIGHT_DECAY)
        warm = max(1, round(recipe.warmup * recipe.steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (recipe.steps - s) / max(1, recipe.steps - warm)))
        model.train()
        bar = tqdm(batches, desc=f"fit {KIND} ({Path(base_folder).name})", unit="step", leave=False,
                   disable=None if progress is None else not progress)  # None: off outside a terminal
        try:
            for idx in bar:
                f, im = [findings[k] for k in idx], [impressions[k] for k in idx]
                a = _embed_train(model, tok, [f_ids[k] for k in idx], device)
                b = _embed_train(model, tok, [i_ids[k] for k in idx], device)
                loss = contrastive_loss(a, b, _duplicates(f, im).to(device), recipe.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        finally:
            bar.close()
    for p in model.parameters():
        p.requires_grad_(True)  # a saved model carries no freezing; this only restores the default
    return model.eval(), tok, losses


# --------------------------------------------------------------------------------------------
# the cached folder
# --------------------------------------------------------------------------------------------
def base_folder(base: str) -> Path:
    """The local model folder of a base (a registry name, e.g. ``minilm-l6``, or a folder)."""
    folder, local = resolve_source(resolve_spec(base))
    if not local:
        raise EncoderError(f"adapted-text: base {base!r} is not on this machine ({folder}); the stand-in is "
                           f"fitted offline from a registry asset (e.g. minilm-l6) or a local model folder")
    return Path(folder)


def _files_sha(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def read_manifest(folder: Path, key: dict | None = None) -> dict | None:
    """The manifest of a complete, undamaged fitted folder (every file's sha256 as recorded,
    and the recorded key equal to ``key`` when given); None otherwise (then it is refitted)."""
    try:
        man = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if key is not None and man.get("key") != json.loads(json.dumps(key)):
            return None
        files = man["files"]
        if not files or _files_sha(folder) != files:
            return None
        return man
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_model(model: Any, tok: Any, base: Path, tmp: Path) -> None:
    """``save_pretrained`` (model, tokenizer) into ``tmp`` and the base's sentence-transformers configs."""
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    for rel in _ST_FILES:
        if (base / rel).is_file():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base / rel, tmp / rel)


def write_folder(folder: Path, kind: str, key: dict, ids: Sequence[str], write: Callable[[Path], dict]) -> None:
    """Write a fitted folder atomically: ``write(tmp)`` fills a temporary folder beside ``folder``
    and returns what the manifest records besides (e.g. ``{"losses": [...]}``); the manifest
    (every file's sha256, the key, the ids) is written last, then the folder is renamed into place
    (a folder already there is moved aside and deleted)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        extra = write(tmp)
        man = {**extra, "kind": kind, "key": key, "files": _files_sha(tmp), "fit_ids": [str(i) for i in ids]}
        atomic_write_text(tmp / MANIFEST, json.dumps(man, indent=1, default=str))
        if folder.exists():  # damaged: moved aside, then deleted
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_folder(kind: str, key: dict, ids: Sequence[str], write: Callable[[Path], dict]) -> Fit:
    """The verified folder of a fit keyed by ``key`` and fitted on ``ids``, fitting it with
    :func:`write_folder` when it is absent or damaged. An inter-process lock is held while
    fitting, so two processes never fit the same key twice; temporary folders left by a killed
    fit are removed."""
    ids = [str(i) for i in ids]
    folder = standins._fit_path(kind, key).with_suffix("")

    def done() -> Fit | None:
        man = read_manifest(folder, key)
        if man is None or man.get("fit_ids") != ids:
            return None
        return Fit(folder, frozenset(ids), tuple(man.get("losses", ())), key)

    if (fit := done()) is not None:
        return fit
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if (fit := done()) is not None:  # fitted by another process while we waited
            return fit
        for stale in folder.parent.glob(f".{folder.name}.tmp-*"):  # left by a killed fit
            shutil.rmtree(stale, ignore_errors=True)
        write_folder(folder, kind, key, ids, write)
    if (fit := done()) is None:
        raise EncoderError(f"{kind}: the fitted folder {folder} does not verify right after writing it "
                           f"(disk full or being changed?): delete it and retry")
    return fit


def save_fitted(model: Any, tok: Any, folder: Path, *, base: Path, key: dict, fit_ids: Sequence[str],
                losses: Sequence[float]) -> None:
    """Write a fitted model into ``folder`` atomically (:func:`write_folder`): ``save_pretrained``
    (model, tokenizer) and the base's sentence-transformers configs, the manifest last."""
    def write(tmp: Path) -> dict:
        _save_model(model, tok, base, tmp)
        return {"losses": [round(float(x), 6) for x in losses]}

    write_folder(folder, KIND, key, fit_ids, write)


def fit_key(recipe: Recipe, base: Path, findings: Sequence[str], impressions: Sequence[str],
            ids: Sequence[str]) -> dict:
    """Everything that determines a fit's weights (the folder's name hashes it)."""
    return {"version": ADAPT_VERSION, "recipe": recipe.params(), "base_weights_sha256": weights_sha256(base),
            "pairs": {"n": len(ids), "sha256": _pairs_sha(findings, impressions, ids)},
            "weight_decay": WEIGHT_DECAY, "max_grad_norm": MAX_GRAD_NORM}


def fit_adapted_text(recipe: Recipe | None = None, *, pool_params: dict | None = None, device: str = "cpu",
                     progress: bool | None = None, pairs: tuple[Sequence[str], Sequence[str], Sequence[str]] | None = None) -> Fit:
    """Fit (or load from the cache) the stand-in of ``recipe`` on the Open-i training pool
    (:func:`report_pairs` with ``pool_params``), or on ``pairs`` = ``(findings, impressions,
    ids)`` when given. Holds an inter-process lock while fitting; a damaged folder is refitted."""
    recipe = recipe or Recipe()
    findings, impressions, ids = (list(x) for x in pairs) if pairs is not None else \
        report_pairs(seed=0, pool_params=pool_params)
    base = base_folder(recipe.base)
    key = fit_key(recipe, base, findings, impressions, ids)

    def write(tmp: Path) -> dict:
        model, tok, losses = train_contrastive(base, findings, impressions, recipe, device=device, progress=progress)
        _save_model(model, tok, base, tmp)
        return {"losses": [round(float(x), 6) for x in losses]}

    return cached_folder(KIND, key, ids, write)


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------
class FittedStandIn:
    """What a stand-in fitted on Open-i report pairs adds to the encoder class that loads its
    folder: ``fit_ids``, ``pool_params``, ``recipe``, ``fit`` (a cooperative mixin: list it first)."""

    def __init__(self, *a: Any, fit: Fit, recipe: Any, pool_params: dict | None, **kw: Any):
        super().__init__(*a, **kw)
        self.fit, self.recipe = fit, recipe
        #: ids of the Open-i reports whose (findings, impression) pairs the fit consumed
        self.fit_ids: frozenset[str] = fit.fit_ids
        #: openi-5class recipe overrides of its training pool (None: the default recipe)
        self.pool_params: dict | None = dict(pool_params) if pool_params else None

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "recipe": self.recipe.params(), "fit": self.fit.folder.name}


class AdaptedTextEncoder(FittedStandIn, HFEncoder):
    """The fitted folder loaded by :func:`semalign.encoders.hf.build` (as any local model
    folder), plus what it was fitted on (:class:`FittedStandIn`)."""


@register_kind(KIND)
def build(spec: dict, device: str) -> Encoder:
    """Fit (or load) the stand-in of ``spec["recipe"]`` and load its folder as a local model."""
    from semalign.encoders import hf

    name = spec.get("name", KIND)
    recipe = Recipe.from_mapping(spec.get("recipe"), where=f"encoder {name!r}: recipe")
    pool_params = spec.get("pool_params") or None
    fit = fit_adapted_text(recipe, pool_params=pool_params, device=device, progress=spec.get("progress"))
    base = hf.build({**spec, "path": str(fit.folder)}, device)
    return AdaptedTextEncoder(base.name, base.modality, base.domain, base.dim, spec=base.spec, device=device,
                              dtype=base.dtype, model=base.model, processor=base.processor, source=base.source,
                              local=True, fit=fit, recipe=recipe, pool_params=pool_params)


# A text stand-in fitted on the openi-5class pool: for_task refits it on an overridden task's pool.
standins._TEXT_BUILDERS.setdefault(KIND, build)
