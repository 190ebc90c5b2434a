"""Kind ``adapted-static``: WordLlama's Llama-2-derived token table continued on radiology reports.

Meditron is Llama-2 with continued pre-training on medical text. Its offline stand-in is built
the same way from the offline general encoder ``wordllama-256`` (a static 32000 x 256 table
distilled from Llama-2's token embeddings, Llama-2 tokenizer, mean pooling): that table is
trained further, label-free, on the Open-i reports of the openi-5class *training pool* (every
report outside its test set, :func:`semalign.encoders.standins.openi_training_pool`). It is a
stand-in, not a real medical model, and the book names it ``medical (stand-in)``.

Objective
    Pairs are (findings section, impression section) of the same report, each with the
    sentences naming a class removed (:func:`semalign.data.openi.strip_class_sentences`, the
    rule openi-5class applies); a report with an empty section is skipped
    (:func:`semalign.encoders.adapted_text.report_pairs`). Each section is embedded as at
    inference — the mean of its tokens' rows, L2-normalised — and the loss is the symmetric
    in-batch InfoNCE of :func:`semalign.encoders.adapted_text.contrastive_loss` (temperature
    ``recipe.temperature``; an in-batch pair sharing the positive's findings or impression text
    is not counted as a negative), plus an L2 pull toward the base table,
    ``recipe.pull / 2 * ||E - E0||^2`` over the trained rows (the L2-SP form of Li et al., 2018),
    so a token seen in few reports stays near Llama-2's. Only the rows of tokens that occur in
    the fit's reports are trained (sparse rows); every other row is the base's, bit for bit.
    Optimiser: Adam (``recipe.lr``), ``recipe.epochs`` passes over seeded permutations of the
    pairs in batches of ``recipe.batch``.

Why not MeSH terms? The openi-5class labels are derived from the reports' MeSH major terms
(:func:`semalign.data.openi.mesh_classes`): a MeSH objective would train the encoder on the
task's label source. Findings/impression pairs carry no label.

Saved and loaded like any model: the trained table (``embedding.safetensors``, tensor
``embedding.weight``, float32) and the base's tokenizer (``tokenizer.json``) are written into
``$SEMALIGN_CACHE/standins/adapted-static-<key>/``, where the key hashes everything that
determines the table (recipe, base table and tokenizer sha256, the pairs' ids and texts). The
folder is written beside its place and renamed into it, with a manifest of every file's sha256
written last; a folder whose manifest is missing or does not match is refitted, never used. The
encoder is then built by the ``wordllama`` kind's own loader (:func:`semalign.encoders.static.build`)
pointed at that folder, so its fingerprint carries the trained table's sha256.

Leakage: ``encoder.fit_ids`` holds the ids of the reports the fit consumed. The fit uses the
default openi-5class recipe's training pool unless the spec gives ``pool_params`` (openi-5class
recipe overrides); the kind is registered with the text stand-ins, so
:func:`semalign.encoders.standins.for_task` refits it on an overridden task's own pool and
:func:`semalign.encoders.standins.check_disjoint` refuses it on any report it was fitted on.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from semalign.encoders import standins
from semalign.encoders.adapted_text import (Fit, FittedStandIn, _duplicates, _pairs_sha, cached_folder,  # noqa: F401
                                            contrastive_loss, read_manifest, report_pairs)  # read_manifest: checks a fit
from semalign.encoders.base import Encoder, EncoderError, get_encoder, register_kind
from semalign.encoders.static import WordLlamaEncoder

KIND = "adapted-static"
#: part of every fit's cache key: bump when the training code changes what it produces
ADAPT_VERSION = 1
WEIGHTS_FILE = "embedding.safetensors"
TOKENIZER_FILE = "tokenizer.json"
TENSOR = "embedding.weight"
#: recipe keys that describe the fit for readers (the book shows them) but choose nothing
DESCRIPTIVE = ("data", "objective")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a fit is: the keys of a registry entry's ``recipe:`` that choose something.
    ``base``: a registry name of a ``wordllama``-kind encoder."""

    base: str = "wordllama-256"
    epochs: int = 5
    batch: int = 64
    lr: float = 1e-3
    temperature: float = 0.05
    pull: float = 0.01
    seed: int = 0

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None, where: str = "recipe") -> "Recipe":
        """A checked Recipe from a ``recipe:`` mapping (missing keys take the defaults, the
        descriptive keys :data:`DESCRIPTIVE` are accepted and ignored); one EncoderError otherwise."""
        m = {k: v for k, v in dict(m or {}).items() if k not in DESCRIPTIVE}
        defaults = cls()
        unknown = sorted(set(m) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise EncoderError(f"{where}: unknown key(s) {unknown}; a recipe has "
                               f"{', '.join(f.name for f in dataclasses.fields(cls))} and the descriptions "
                               f"{', '.join(DESCRIPTIVE)}")
        for k, v in m.items():
            want = type(getattr(defaults, k))
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ((want is str and isinstance(v, str) and v.strip()) or
                    (want is float and number) or (want is int and number and float(v).is_integer())):
                raise EncoderError(f"{where}: {k} must be a {want.__name__}, got {v!r}")
        r = cls(**{k: type(getattr(defaults, k))(v) for k, v in m.items()})
        limits = {"epochs": r.epochs >= 1, "batch": r.batch >= 2, "lr": r.lr > 0,
                  "temperature": r.temperature > 0, "pull": r.pull >= 0}
        bad = [k for k, ok in limits.items() if not ok]
        if bad:
            raise EncoderError(f"{where}: {bad[0]}={getattr(r, bad[0])!r} is out of range (epochs >= 1, "
                               f"batch >= 2, lr > 0, temperature > 0, pull >= 0)")
        return r

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def _mean_rows(rows: list[np.ndarray], emb: Any) -> Any:
    """Unit-norm means of the rows of ``emb`` listed in each of ``rows`` (inference pooling)."""
    import torch

    flat = torch.from_numpy(np.concatenate(rows)).to(emb.device)
    offsets = torch.tensor([0, *np.cumsum([len(r) for r in rows])[:-1]], dtype=torch.long, device=emb.device)
    pooled = torch.nn.functional.embedding_bag(flat, emb, offsets, mode="mean")
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


def train_table(table: np.ndarray, findings: Sequence[Sequence[int]], impressions: Sequence[Sequence[int]],
                recipe: Recipe, *, device: str = "cpu", progress: bool | None = None,
                same: Callable[[list[int]], Any] | None = None) -> tuple[np.ndarray, list[float], np.ndarray]:
    """Train the rows of ``table`` (n_tokens, d) used by the token-id lists ``findings[k]`` /
    ``impressions[k]`` (non-empty) with the module's objective.

    ``same(batch_indices)``: (b, b) bool tensor, pairs that are not negatives (default: none
    but the diagonal). Returns ``(new table (float32, a copy), loss per step, trained row
    ids)``; every row not among the last is exactly ``table``'s."""
    import torch
    from tqdm.auto import tqdm

    n = len(findings)
    if n != len(impressions):
        raise EncoderError(f"{KIND}: {n} findings but {len(impressions)} impressions")
    if n < 2:
        raise EncoderError(f"{KIND}: {n} training pair(s); contrastive fitting needs at least 2")
    if any(len(x) == 0 for x in (*findings, *impressions)):
        raise EncoderError(f"{KIND}: a section has no tokens; drop empty sections before fitting")
    # ids clipped to the table as at inference (WordLlamaEncoder._embed_batch)
    ids_f = [np.clip(np.asarray(x, dtype=np.int64), 0, len(table) - 1) for x in findings]
    ids_i = [np.clip(np.asarray(x, dtype=np.int64), 0, len(table) - 1) for x in impressions]
    rows = np.unique(np.concatenate([*ids_f, *ids_i]))
    # positions in the trained sub-table (rows), which is all the optimiser sees
    sub_f = [np.searchsorted(rows, x) for x in ids_f]
    sub_i = [np.searchsorted(rows, x) for x in ids_i]
    b = min(recipe.batch, n)
    rng = np.random.default_rng(recipe.seed)
    batches: list[list[int]] = []
    for _ in range(recipe.epochs):
        perm = rng.permutation(n)
        batches.extend([int(k) for k in perm[s:s + b]] for s in range(0, n, b))
    batches = [idx for idx in batches if len(idx) >= 2]  # a last batch of one has no negative
    e0 = torch.from_numpy(np.asarray(table[rows], dtype=np.float32)).to(device)
    emb = torch.nn.Parameter(e0.clone())
    opt = torch.optim.Adam([emb], lr=recipe.lr)
    losses: list[float] = []
    bar = tqdm(batches, desc=f"fit {KIND} ({recipe.base})", unit="step", leave=False,
               disable=None if progress is None else not progress)  # None: off outside a terminal
    # the ops are tiny (a few thousand rows): more CPU threads only add synchronisation, which
    # on a shared machine costs ~20x the work itself
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for idx in bar:
            a, p = _mean_rows([sub_f[k] for k in idx], emb), _mean_rows([sub_i[k] for k in idx], emb)
            mask = same(idx) if same is not None else torch.zeros(len(idx), len(idx), dtype=torch.bool)
            loss = contrastive_loss(a, p, mask.to(device), recipe.temperature)
            opt.zero_grad(set_to_none=True)
            (loss + recipe.pull / 2 * (emb - e0).pow(2).sum()).backward()
            opt.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    finally:
        bar.close()
        torch.set_num_threads(threads)
    out = np.array(table, dtype=np.float32, copy=True)
    out[rows] = emb.detach().cpu().numpy()
    return out, losses, rows


# --------------------------------------------------------------------------------------------
# the cached folder
# --------------------------------------------------------------------------------------------
def base_encoder(base: str) -> WordLlamaEncoder:
    """The base encoder of a recipe: a registry entry of the ``wordllama`` kind."""
    enc = get_encoder(base, device="cpu")
    if not isinstance(enc, WordLlamaEncoder) or isinstance(enc, AdaptedStaticEncoder):
        raise EncoderError(f"{KIND}: recipe base {base!r} is a {type(enc).__name__}, not a static token table "
                           f"of the wordllama kind (e.g. wordllama-256)")
    return enc


def fit_adapted_static(recipe: Recipe | None = None, *, pool_params: dict | None = None, device: str = "cpu",
                       progress: bool | None = None,
                       pairs: tuple[Sequence[str], Sequence[str], Sequence[str]] | None = None) -> Fit:
    """Fit (or load from the cache) the stand-in of ``recipe`` on the Open-i training pool
    (:func:`~semalign.encoders.adapted_text.report_pairs` with ``pool_params``), or on ``pairs``
    = ``(findings, impressions, ids)`` when given. Pairs either of whose sections has no token
    are left out (and from ``fit_ids``)."""
    recipe = recipe or Recipe()
    findings, impressions, ids = (list(x) for x in pairs) if pairs is not None else \
        report_pairs(seed=0, pool_params=pool_params)
    base = base_encoder(recipe.base)
    tf, ti = base.token_ids(findings), base.token_ids(impressions)
    keep = [k for k in range(len(ids)) if tf[k] and ti[k]]
    findings, impressions, ids = ([x[k] for k in keep] for x in (findings, impressions, ids))
    tf, ti = [tf[k] for k in keep], [ti[k] for k in keep]
    tokenizer_json = base.tokenizer.to_str()
    key = {"version": ADAPT_VERSION, "recipe": recipe.params(), "base_weights_sha256": base.weights_sha256,
           "base_tokenizer_sha256": hashlib.sha256(tokenizer_json.encode()).hexdigest(),
           "pairs": {"n": len(ids), "sha256": _pairs_sha(findings, impressions, ids)}}

    def write(tmp: Path) -> dict:
        from safetensors.numpy import save_file

        def same(idx: list[int]):  # in-batch pairs with the positive's findings or impression text
            return _duplicates([findings[k] for k in idx], [impressions[k] for k in idx])

        table, losses, rows = train_table(base.table, tf, ti, recipe, device=device, progress=progress, same=same)
        save_file({TENSOR: table}, str(tmp / WEIGHTS_FILE))
        (tmp / TOKENIZER_FILE).write_text(tokenizer_json, encoding="utf-8")
        return {"losses": [round(x, 6) for x in losses], "rows_trained": int(len(rows))}

    return cached_folder(KIND, key, ids, write)


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------
class AdaptedStaticEncoder(FittedStandIn, WordLlamaEncoder):
    """The fitted folder loaded by the ``wordllama`` kind's loader, plus what it was fitted on
    (:class:`~semalign.encoders.adapted_text.FittedStandIn`)."""


@register_kind(KIND)
def build(spec: dict, device: str) -> Encoder:
    """Fit (or load) the stand-in of ``spec["recipe"]`` and load its folder with the
    ``wordllama`` kind's loader."""
    from semalign.encoders import static

    name = spec.get("name", KIND)
    recipe = Recipe.from_mapping(spec.get("recipe"), where=f"encoder {name!r}: recipe")
    pool_params = spec.get("pool_params") or None
    fit = fit_adapted_static(recipe, pool_params=pool_params, device=device, progress=spec.get("progress"))
    enc = static.build({**spec, "asset": None, "weights": str(fit.folder / WEIGHTS_FILE),
                        "tokenizer": str(fit.folder / TOKENIZER_FILE), "tensor": TENSOR}, device)
    return AdaptedStaticEncoder(enc.name, enc.modality, enc.domain, enc.dim, spec=spec, device=enc.device,
                                dtype=enc.dtype, table=enc.table, tokenizer=enc.tokenizer,
                                weights_sha256=enc.weights_sha256, fit=fit, recipe=recipe, pool_params=pool_params)


# A text stand-in fitted on the openi-5class pool: for_task refits it on an overridden task's pool.
standins._TEXT_BUILDERS.setdefault(KIND, build)
