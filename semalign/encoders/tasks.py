"""Tasks embedded: data → encoders + cache → the embeddings ``stitching`` and ``zeroshot`` read.

This is the one place that wires a task (``semalign.data``) to encoders through the embedding
cache (``semalign.cache``), so a warm rerun of the book embeds nothing:

* :func:`encode_task` — a classification task's train / test / anchor samples, each embedded
  by several encoders → :class:`semalign.stitching.EncodedTask` (Fig. 1, Fig. 3, Table 1);
* :func:`encode_zeroshot` — an image–report pair pool, the test images of binary finding
  tasks and their prompts → :class:`semalign.zeroshot.EncodedZeroShot` (Fig. 4).

No maths lives here: what is done with the embeddings is in :mod:`semalign.stitching` and
:mod:`semalign.zeroshot`, which never load a model or a file.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "task_params_for", "get_task", "load_encoders", "embed_rows", "embed_prompts", "encode_task",
    "binary_labels", "encode_zeroshot",
]


def task_params_for(name: str, task_params: Mapping[str, Mapping] | None) -> dict:
    """Recipe overrides for task ``name`` from a profile's ``task_params``.

    Keys are task names or glob patterns (``"synthcxr-*"``); an exact name wins over patterns.
    """
    task_params = task_params or {}
    if name in task_params:
        return dict(task_params[name] or {})
    for pattern, params in task_params.items():
        if fnmatch.fnmatch(name, pattern):
            return dict(params or {})
    return {}


def get_task(name: str, task_params: Mapping[str, Mapping] | None = None):
    """:func:`semalign.data.get_task` with the profile's recipe overrides for this task."""
    from semalign.data import get_task as _get

    return _get(name, **task_params_for(name, task_params))


def load_encoders(names: Sequence[str], device: str = "auto") -> dict[str, Any]:
    """``{name: Encoder}`` from the registry, in the given order."""
    from semalign.encoders import get_encoder

    return {n: get_encoder(n, device=device) for n in names}


def _embed(enc, inputs: list, ids: list[str], dataset: str, batch_size: int | None) -> np.ndarray:
    """One cache entry: ``embed_cached`` without progress bars (they would fill the book's pages)."""
    from semalign.cache import embed_cached

    return np.asarray(embed_cached(enc, inputs, ids=ids, dataset=dataset, batch_size=batch_size or None,
                                   progress=False), dtype=np.float32)


def _family(sample_id: str) -> str:
    # "synthpool-3-000012" -> "synthpool-3-", "CXR123" -> "CXR": rows generated together
    return re.sub(r"\d+$", "", sample_id)


def _group_key(family: str, task) -> str:
    """Cache key of a group of rows: a pool several tasks share (``task.shared_pool_keys``, e.g.
    the SynthCXR test, train and anchor pools) has one key across them and is embedded once;
    everything else uses the task's key."""
    return task.shared_pool_keys.get(family, task.dataset_key)


def _same_input(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def _pool_rows(task, family: str, ids: list[str], inputs: list) -> tuple[list[str], list, list[int]]:
    """A shared family's every row (``task.shared_pools[family]``: ids, inputs) and where each
    of the requested ``ids`` is in it. The requested inputs must be the pool's own."""
    from semalign.data import DataError

    pool = task.shared_pools[family]
    pids = [str(i) for i in pool["id"]]
    pin = list(pool["input"])
    where = {i: k for k, i in enumerate(pids)}
    missing = [i for i in ids if i not in where]
    if missing:
        raise DataError(f"task {task.name!r}: {len(missing)} rows of family {family!r} (e.g. {missing[0]!r}) are not "
                        f"in its shared pool; rebuild the task with semalign.data.get_task")
    pos = [where[i] for i in ids]
    bad = [i for i, x, k in zip(ids, inputs, pos) if not _same_input(x, pin[k])]
    if bad:
        raise DataError(f"task {task.name!r}: the inputs of {len(bad)} rows (e.g. {bad[0]!r}) differ from its shared "
                        f"pool's rows of the same ids; rebuild the task with semalign.data.get_task")
    return pids, pin, pos


def embed_rows(enc, ids: Sequence[str], inputs: Sequence, task, batch_size: int | None = None) -> np.ndarray:
    """Embed rows of a task through the cache, one cache entry per family of ids (see ``_family``),
    so the same rows requested by another notebook or task hit the cache. (n, enc.dim) float32.

    A family of ``task.shared_pools`` (a pool several tasks draw their rows from, e.g. the SynthCXR
    test pool) is embedded whole — every row of the pool, under its shared key — and the rows
    asked for are picked from it: every task drawing from the pool hits one cache entry."""
    ids = [str(i) for i in ids]
    fams: dict[str, list[int]] = {}
    for k, i in enumerate(ids):
        fams.setdefault(_family(i), []).append(k)
    pools = getattr(task, "shared_pools", None) or {}
    out = np.zeros((len(ids), enc.dim), np.float32)
    for fam, rows in fams.items():
        fam_ids, fam_inputs = [ids[k] for k in rows], [inputs[k] for k in rows]
        if fam in pools:
            pids, pin, pos = _pool_rows(task, fam, fam_ids, fam_inputs)
            out[rows] = _embed(enc, pin, pids, _group_key(fam, task), batch_size)[pos]
        else:
            out[rows] = _embed(enc, fam_inputs, fam_ids, _group_key(fam, task), batch_size)
    return out


def embed_prompts(enc, prompts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
    """Prompt texts (m,) → (m, enc.dim) float32, not cached (a handful of short sentences)."""
    return np.asarray(enc.embed(list(prompts), batch_size=batch_size or None, progress=False), dtype=np.float32)


def encode_task(
    task: Any,
    encoders: Sequence[str] | dict[str, Any],
    *,
    device: str = "auto",
    batch_size: int | None = None,
    anchor_pool: int | None = None,
    seed: int = 0,
    task_params: Mapping[str, Mapping] | None = None,
):
    """Embed a task's train / test / anchor samples with each encoder (cached).

    ``task``: a task name for :func:`semalign.data.get_task` or a Task. ``anchor_pool``:
    keep a seeded random subset of this many anchors (the pool the runs draw from; ``None``
    keeps all) — it bounds the embedding cost on CPU. Each encoder embeds the *union* of the
    three splits once (train and anchors overlap: the paper draws anchors from the training
    set), through the cache, so a warm rerun embeds nothing. ``task_params``: recipe overrides
    per task name or glob (:func:`task_params_for`).

    Returns an ``EncodedTask`` whose ``encoders[name]`` holds ``Embeddings(train (n_tr, d),
    test (n_te, d), anchors (n_a, d))``; anchor rows correspond across encoders (same ids,
    same order).
    """
    from semalign.encoders import standins
    from semalign.stitching import EncodedTask, Embeddings

    t = get_task(task, task_params) if isinstance(task, str) else task
    anchors = t.anchors
    if anchor_pool is not None and anchor_pool < len(anchors):
        keep = np.sort(np.random.default_rng(seed).choice(len(anchors), size=int(anchor_pool), replace=False))
        anchors = anchors.iloc[keep]
    parts_df = {"train": t.train, "test": t.test, "anchors": anchors}
    union: dict[str, Any] = {}
    for df in parts_df.values():
        for i, x in zip(df["id"], df["input"]):
            union.setdefault(str(i), x)
    uids = list(union)
    where = {i: k for k, i in enumerate(uids)}
    encs = load_encoders(encoders, device) if not isinstance(encoders, dict) else encoders
    # a text stand-in is refitted on an overridden openi-5class task's own training pool, and no
    # encoder is ever evaluated on a sample it was fitted on
    encs = standins.for_task(encs, t)
    for enc in encs.values():
        standins.check_disjoint(enc, t.test["id"], what=f"{t.name} test")
    out, domains = {}, {}
    for name, enc in encs.items():
        emb = embed_rows(enc, uids, list(union.values()), t, batch_size)
        sl = {k: emb[[where[str(i)] for i in df["id"]]] for k, df in parts_df.items()}
        out[name] = Embeddings(sl["train"], sl["test"], sl["anchors"])
        domains[name] = enc.domain
    return EncodedTask(
        name=t.name, modality=t.modality, encoders=out, domains=domains,
        y_train=np.asarray(t.train["label"]), y_test=np.asarray(t.test["label"]), classes=list(t.classes),
    )


# --------------------------------------------------------------------------- zero-shot (Fig. 4)
def binary_labels(task) -> np.ndarray:
    """Test labels of a binary finding task as 0/1, shape (n_test,): 1 where the label is the
    task's ``positive`` class (finding present)."""
    from semalign.data import DataError

    if task.positive is None or task.finding is None:
        raise DataError(f"task {task.name!r} is not a binary finding task (it declares no finding and "
                        f"positive class): give zero-shot one that does, e.g. -p vision_tasks "
                        f"'[synthcxr-pneumonia]'")
    return (np.asarray(task.test["label"]) == task.positive).astype(int)


def encode_zeroshot(
    tasks: Sequence[str],
    vision_encoders: Sequence[str],
    text_encoder: str,
    *,
    pairs: str,
    pair_pool: int,
    n_prompts: int = 10,
    baselines: Mapping[str, Sequence[str]] | None = None,
    probe: bool = True,
    device: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    task_params: Mapping[str, Mapping] | None = None,
):
    """Everything Fig. 4 scores, embedded once (cached where the inputs are samples).

    The pool of ``pair_pool`` image–report pairs (``semalign.data.get_pairs(pairs, n=pair_pool,
    seed=seed)``): images by each vision encoder, reports by ``text_encoder``. Per task: its
    binary test labels (:func:`binary_labels`), its test images by each vision encoder, and the
    first ``n_prompts`` positive and negative prompts (:func:`semalign.zeroshot.prompts_for_task`)
    by ``text_encoder``. ``probe``: also the task's labelled training images by each vision
    encoder (through :func:`embed_rows`, so rows shared with other tasks or notebooks are cache
    hits) and their 0/1 labels, for the supervised linear probe. ``baselines``: ``{approach:
    [image tower, text tower]}`` (``"clip"``, ``"medclip"``, ``"synthclip"``): the test images and
    prompts also embedded by the multimodal model's own towers.

    Returns a :class:`semalign.zeroshot.EncodedZeroShot` (shapes in its docstring; ``domains``
    holds the baselines' towers too). Every stand-in, a baseline's image tower included, is
    checked never to be evaluated on a test image it was fitted on.
    """
    from semalign.data import get_pairs
    from semalign.encoders import standins
    from semalign.zeroshot import Baseline, EncodedZeroShot, ZeroShotTask, prompts_for_task

    baselines = {a: list(p) for a, p in (baselines or {}).items()}
    pair_df = get_pairs(pairs, n=int(pair_pool), seed=seed)
    pkey = pair_df.attrs["dataset_key"]
    pids = [str(i) for i in pair_df["id"]]
    encs = load_encoders([text_encoder, *vision_encoders], device)
    txt = encs[text_encoder]
    anchor_text = _embed(txt, list(pair_df["text"]), pids, pkey, batch_size)
    anchor_images = {n: _embed(encs[n], list(pair_df["image"]), pids, pkey, batch_size) for n in vision_encoders}
    base_encs = {a: load_encoders(pair, device) for a, pair in baselines.items()}
    out_tasks = []
    for task_name in tasks:
        t = get_task(task_name, task_params)
        y = binary_labels(t)
        ids = [str(i) for i in t.test["id"]]
        ps = prompts_for_task(t.finding.key)
        pos, neg = list(ps.positive)[:n_prompts], list(ps.negative)[:n_prompts]
        images, train_images = {}, {}
        for n in vision_encoders:
            standins.check_disjoint(encs[n], ids, what=f"{task_name} test")
            images[n] = embed_rows(encs[n], ids, list(t.test["input"]), t, batch_size)
            if probe:
                train_images[n] = embed_rows(encs[n], list(t.train["id"]), list(t.train["input"]), t, batch_size)
        base = {}
        for approach, (img_name, txt_name) in baselines.items():
            bi, bt = base_encs[approach][img_name], base_encs[approach][txt_name]
            standins.check_disjoint(bi, ids, what=f"{task_name} test")
            base[approach] = (embed_rows(bi, ids, list(t.test["input"]), t, batch_size),
                              embed_prompts(bt, pos, batch_size), embed_prompts(bt, neg, batch_size))
        out_tasks.append(ZeroShotTask(name=task_name, y=y, images=images,
                                      pos=embed_prompts(txt, pos, batch_size),
                                      neg=embed_prompts(txt, neg, batch_size), baselines=base,
                                      train_images=train_images,
                                      y_train=(np.asarray(t.train["label"]) == t.positive).astype(int) if probe else None))
    supervised = {n: str(e.spec["supervised_on"]) for n, e in encs.items()
                  if n in vision_encoders and getattr(e, "spec", {}).get("supervised_on")}
    domains = {n: e.domain for n, e in encs.items()}
    for pair_encs in base_encs.values():
        domains.update({n: e.domain for n, e in pair_encs.items()})
    return EncodedZeroShot(
        text_encoder=text_encoder, anchor_text=anchor_text, anchor_images=anchor_images, tasks=out_tasks,
        domains=domains,
        baselines={a: Baseline(img, txt_name, base_encs[a][img].domain) for a, (img, txt_name) in baselines.items()},
        supervised_on=supervised,
    )
