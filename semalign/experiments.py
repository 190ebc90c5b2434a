"""Notebook glue: the few steps every notebook of the book repeats, kept out of the notebooks.

``encode_task`` turns a task name and encoder names into an
:class:`semalign.stitching.EncodedTask` through the embedding cache, so a warm rerun of the
book embeds nothing. ``projection_frame`` computes the Fig. 1 projection. Everything here
wires existing modules together (data → encoders + cache → stitching); no maths lives here.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from semalign.tables import change_category  # Table 1's 5 % rule, one definition

#: How the book writes each encoder domain; a stand-in is always named as such.
DOMAIN_LABELS = {"general": "general", "medical": "medical", "medical (stand-in)": "medical (stand-in)"}


def _embed(enc, inputs: list, ids: list[str], dataset: str, batch_size: int | None) -> np.ndarray:
    from semalign.cache import embed_cached

    kw: dict[str, Any] = {"ids": ids, "dataset": dataset}
    params = inspect.signature(embed_cached).parameters
    if batch_size and "batch_size" in params:
        kw["batch_size"] = batch_size
    if "progress" in params:
        kw["progress"] = False  # tqdm bars would fill the book's pages
    return np.asarray(embed_cached(enc, inputs, **kw), dtype=np.float32)


def task_params_for(name: str, task_params: dict[str, dict] | None) -> dict:
    """Recipe overrides for task ``name`` from a profile's ``task_params``.

    Keys are task names or glob patterns (``"synthcxr-*"``); an exact name wins over patterns.
    """
    import fnmatch

    task_params = task_params or {}
    if name in task_params:
        return dict(task_params[name] or {})
    for pattern, params in task_params.items():
        if fnmatch.fnmatch(name, pattern):
            return dict(params or {})
    return {}


def get_task(name: str, task_params: dict[str, dict] | None = None):
    """:func:`semalign.data.get_task` with the profile's recipe overrides for this task."""
    from semalign.data import get_task as _get

    return _get(name, **task_params_for(name, task_params))


def _family(sample_id: str) -> str:
    # "synthpool-3-000012" -> "synthpool-3-", "CXR123" -> "CXR": rows generated together
    return re.sub(r"\d+$", "", sample_id)


def _group_key(family: str, task) -> str:
    """Cache key of a group of rows. The SynthCXR anchor pool is shared by every SynthCXR task
    (its image i depends only on its seed, i, size and the generator version — semalign.data),
    so it gets one key across tasks and is embedded once; everything else uses the task's key."""
    recipe = getattr(task, "recipe", None) or {}
    if family.startswith("synthpool-") and "generator_version" in recipe:
        return f"synthcxr-pool@size={recipe.get('size')},v={recipe['generator_version']}"
    return task.dataset_key


def embed_rows(enc, ids: Sequence[str], inputs: Sequence, task, batch_size: int | None = None) -> np.ndarray:
    """Embed rows of a task through the cache, one cache entry per family of ids (see ``_family``),
    so the same rows requested by another notebook or task hit the cache. (n, enc.dim) float32."""
    ids = [str(i) for i in ids]
    fams: dict[str, list[int]] = {}
    for k, i in enumerate(ids):
        fams.setdefault(_family(i), []).append(k)
    out = np.zeros((len(ids), enc.dim), np.float32)
    for fam, rows in fams.items():
        out[rows] = _embed(enc, [inputs[k] for k in rows], [ids[k] for k in rows], _group_key(fam, task), batch_size)
    return out


def load_encoders(names: Sequence[str], device: str = "auto") -> dict[str, Any]:
    """``{name: Encoder}`` from the registry, in the given order."""
    from semalign.encoders import get_encoder

    return {n: get_encoder(n, device=device) for n in names}


def encode_task(
    task: Any,
    encoders: Sequence[str] | dict[str, Any],
    *,
    device: str = "auto",
    batch_size: int | None = None,
    anchor_pool: int | None = None,
    seed: int = 0,
    task_params: dict[str, dict] | None = None,
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
    from semalign.encoders import standins

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


def encoder_table(encoders: dict[str, Any]) -> pd.DataFrame:
    """One row per encoder: name, modality, domain (stand-ins named), dimension."""
    return pd.DataFrame(
        [{"encoder": n, "modality": e.modality, "domain": e.domain, "dim": e.dim} for n, e in encoders.items()]
    )


#: Which dataset (manifest) each task family reads; its ``access`` decides what may be published.
_TASK_DATASET = {"mimic": "mimic-cxr", "vindr": "vindr-cxr", "rsna": "rsna-pneumonia", "iu": "iu-xray-openi",
                 "openi": "openi-reports-offline", "synthcxr": "synthcxr"}
#: Below this many samples a density cell is not shown (small-cell suppression of aggregates).
MIN_CELL = 5


def publishes_samples(task_name: str) -> bool:
    """May the book show per-sample points of this task (e.g. Fig. 1's scatter)? Not for a
    credentialed dataset (MIMIC-CXR, VinDr-CXR): there only aggregates are published."""
    from semalign.data.manifests import get_manifest

    family = task_name.split("-", 1)[0]
    ds = _TASK_DATASET.get(family)
    if ds is None:
        return False  # unknown provenance: publish aggregates only
    return get_manifest(ds).get("access") != "credentialed"


def _density(points: pd.DataFrame, bins: int, min_cell: int) -> pd.DataFrame:
    """2-D bin counts per (method, role) on one grid per role; cells under ``min_cell`` dropped."""
    out = []
    for role, sub in points.groupby("role", sort=False):
        xe = np.linspace(sub["x"].min(), sub["x"].max() + 1e-9, bins + 1)
        ye = np.linspace(sub["y"].min(), sub["y"].max() + 1e-9, bins + 1)
        for method, cell in sub.groupby("method", sort=False):
            h, _, _ = np.histogram2d(cell["x"], cell["y"], bins=[xe, ye])
            i, j = np.nonzero(h >= min_cell)
            out.append(pd.DataFrame({"method": method, "role": role, "x": (xe[i] + xe[i + 1]) / 2,
                                     "y": (ye[j] + ye[j + 1]) / 2, "count": h[i, j].astype(int)}))
    return pd.concat(out, ignore_index=True)


def projection_frame(
    x_anchors: np.ndarray,
    y_anchors: np.ndarray,
    x_show: np.ndarray,
    y_show: np.ndarray,
    methods: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[Any] | None = None,
    seed: int = 0,
    aggregate: bool = False,
    bins: int = 10,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 1 on real embeddings: fit each method on the anchors, map held-out samples.

    ``x_anchors`` (N, d1) / ``y_anchors`` (N, d2): parallel anchors (source / target).
    ``x_show`` (n, d1) / ``y_show`` (n, d2): the same n held-out samples in both spaces.
    Returns ``(points, scores)``: points (method, role, x, y, id, label) with the target
    and the aligned samples projected on the first two principal components of the target
    anchors (one common frame, so the panels are comparable) and the source samples on
    their own PCA (a different space: only its shape means something); scores (method,
    cosine, mse) measure how close the aligned samples land to their own target embedding.

    ``aggregate=True`` (credentialed data, :func:`publishes_samples`): no per-sample point
    leaves this function — points become (method, role, x, y, count), the counts of a
    ``bins`` × ``bins`` grid per role, cells with fewer than :data:`MIN_CELL` samples dropped;
    ``ids`` and ``labels`` are ignored.
    """
    from semalign.align import Translator

    def pca2(fit: np.ndarray):
        mu = fit.mean(0)
        _, _, vt = np.linalg.svd(fit - mu, full_matrices=False)
        return lambda z: (z - mu) @ vt[:2].T

    n = len(x_show)
    ids = [str(i) for i in (ids if ids is not None else range(n))]
    labels = list(labels) if labels is not None else [""] * n
    to_target = pca2(y_anchors)
    to_source = pca2(x_anchors)
    rows, scores = [], []

    def add(method: str, role: str, xy: np.ndarray):
        rows.append(pd.DataFrame({"method": method, "role": role, "x": xy[:, 0], "y": xy[:, 1],
                                  "id": ids, "label": labels}))

    for m in methods:
        std = m != "naive"  # the paper's naive baseline: no scaling, padding/cutting only
        y_hat = Translator(m, std_scaling=std, seed=seed).fit(x_anchors, y_anchors).transform(x_show)
        add(m, "source", to_source(x_show))
        add(m, "target", to_target(y_show))
        add(m, "aligned", to_target(y_hat))
        cos = np.sum(y_hat * y_show, 1) / (np.linalg.norm(y_hat, axis=1) * np.linalg.norm(y_show, axis=1) + 1e-12)
        scores.append({"method": m, "cosine": float(cos.mean()), "mse": float(np.mean((y_hat - y_show) ** 2)),
                       "n_anchors": len(x_anchors), "n_shown": n})
    points = pd.concat(rows, ignore_index=True)
    if aggregate:
        points = _density(points, bins, MIN_CELL)
    return points, pd.DataFrame(scores)


# --------------------------------------------------------------------------- sentences that read a figure
def describe_encoders(domains: dict[str, str]) -> str:
    """Markdown list of encoders with their domain; stand-ins flagged so no reader misses them."""
    parts = []
    for name, dom in domains.items():
        if "stand-in" in dom:
            parts.append(f"**{name}** (*{dom}* — fitted in this project, not a real medical model)")
        else:
            parts.append(f"**{name}** ({dom})")
    return "Encoders: " + ", ".join(parts) + "."


def fig3_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean / std AUROC per method at each anchor count (naive and upper bound pooled)."""
    return results.groupby(["method", "n_anchors"])["auroc"].agg(["mean", "std", "count"]).reset_index()


def read_fig3(results: pd.DataFrame, what: str) -> str:
    """One paragraph that reads a Fig. 3 panel from its numbers (nothing typed by hand)."""
    curve = results[~results["method"].isin(["naive", "upper_bound"])]
    if curve.empty:
        return f"**Reading ({what}).** No aligned results (no anchor count fits the anchor pool)."
    n_max = int(curve["n_anchors"].max())
    n_min = int(curve["n_anchors"].min())
    at_max = curve[curve["n_anchors"] == n_max].groupby("method")["auroc"].mean().sort_values(ascending=False)
    at_min = curve[curve["n_anchors"] == n_min].groupby("method")["auroc"].mean()
    naive = results.loc[results["method"] == "naive", "auroc"].mean()
    ub = results.loc[results["method"] == "upper_bound", "auroc"].mean()
    best, best_v = at_max.index[0], at_max.iloc[0]
    beat = [m for m, v in at_max.items() if v > naive]
    s = (f"**Reading ({what}).** With {n_max} anchors `{best}` is best (mean AUROC {best_v:.3f}); "
         f"naive stitching gives {naive:.3f} and the upper bound is {ub:.3f}. ")
    s += (f"All {len(at_max)} transforms beat naive stitching" if len(beat) == len(at_max)
          else f"{len(beat)} of {len(at_max)} transforms beat naive stitching")
    gain = (at_max - at_min.reindex(at_max.index)).mean()
    s += (f"; going from {n_min} to {n_max} anchors changes AUROC by {gain:+.3f} on average, and the best "
          f"transform closes {100 * (best_v - naive) / max(ub - naive, 1e-9):.0f} % of the gap between naive "
          f"and the upper bound.")
    return s


# --------------------------------------------------------------------------- zero-shot (Fig. 4)
def binary_labels(task) -> np.ndarray:
    """Test labels of a binary finding task as 0/1 (1 = finding present).

    Numeric 0/1 labels pass through; otherwise the positive class is the one whose name
    contains the task's finding (``synthcxr-vindr-cardiomegaly`` → "cardiomegaly"), else
    ``classes[1]``.
    """
    y = np.asarray(task.test["label"])
    if set(np.unique(y).tolist()) <= {0, 1, True, False}:
        return y.astype(int)
    from semalign.zeroshot import finding_of_task

    classes = [str(c) for c in task.classes]
    try:
        f = finding_of_task(task.name).replace("-", " ")
        pos = [c for c in classes if f in c.lower().replace("-", " ").replace("_", " ")]
    except KeyError:
        pos = []
    positive = pos[0] if len(pos) == 1 else classes[1]
    return (y.astype(str) == positive).astype(int)


def _embed_prompts(enc, prompts: list[str], batch_size: int | None) -> np.ndarray:
    kw = {"batch_size": batch_size} if batch_size else {}
    if "progress" in inspect.signature(enc.embed).parameters:
        kw["progress"] = False
    return np.asarray(enc.embed(list(prompts), **kw), dtype=np.float32)


def zeroshot_grid(
    tasks: Sequence[str],
    vision_encoders: Sequence[str],
    text_encoder: str,
    *,
    pairs: str,
    n_pairs: int,
    method: str = "ortho",
    n_prompts: int = 10,
    baselines: dict[str, Sequence[str]] | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    task_params: dict[str, dict] | None = None,
    runs: int = 1,
    pair_pool: int | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Fig. 4: the paper's unimodal zero-shot for every vision encoder, plus baselines.

    A pool of ``pair_pool`` image–report pairs (default ``n_pairs``;
    ``semalign.data.get_pairs(pairs)``) is embedded once: images by each vision encoder,
    reports by ``text_encoder``. Run r (``runs`` of them, as the paper repeats each experiment
    with a new random anchor set) draws ``n_pairs`` of the pool with
    ``numpy.random.default_rng([seed, r])``, fits the transform per vision encoder on them,
    maps every task's test images into text space and scores them against the first
    ``n_prompts`` positive and negative prompts. Rows carry a ``run`` column; the baselines
    use no anchors and have one row per task (``run`` 0). ``baselines``:
    ``{approach: [image tower, text tower]}`` (approach "clip" or "medclip") scored with the
    standard multimodal zero-shot. Returns the tidy frame of :func:`semalign.zeroshot.tidy_results`
    plus ``n_pos, n_neg`` (test class counts, for the chance level) and ``{"domains": {encoder:
    domain}, "n_pairs": int, "supervised_on": {encoder: what its training labels were}}`` — the
    last for encoders whose registry entry says they were trained on labels (a stand-in trained
    on the very findings it is scored on is not zero-shot in the paper's sense).
    """
    from semalign.data import get_pairs
    from semalign.encoders import standins
    from semalign.zeroshot import prompts_for_task, standard_zeroshot, tidy_results, unimodal_zeroshot

    baselines = dict(baselines or {})
    pool_n = int(pair_pool or n_pairs)
    if runs < 1:
        raise ValueError(f"runs must be >= 1; got {runs}")
    if n_pairs > pool_n:
        raise ValueError(f"n_pairs={n_pairs} is more than the pair pool ({pool_n}): lower n_pairs or raise pair_pool")
    if runs > 1 and n_pairs == pool_n:
        raise ValueError(f"runs={runs} with n_pairs == pair_pool ({pool_n}) would fit every run on the same "
                         f"anchors: give pair_pool > n_pairs (e.g. {int(n_pairs * 4 / 3)}) or runs=1")
    pair_df = get_pairs(pairs, n=pool_n, seed=seed)
    pkey = pair_df.attrs.get("dataset_key", f"{pairs}@n={n_pairs},seed={seed}")
    pids = [str(i) for i in pair_df["id"]]
    encs = load_encoders([text_encoder, *vision_encoders], device)
    txt = encs[text_encoder]
    anchor_text = _embed(txt, list(pair_df["text"]), pids, pkey, batch_size)
    anchor_img = {n: _embed(encs[n], list(pair_df["image"]), pids, pkey, batch_size) for n in vision_encoders}
    base_encs = {a: load_encoders(list(pair), device) for a, pair in baselines.items()}
    draws = [np.sort(np.random.default_rng([seed, r]).permutation(len(pair_df))[:n_pairs]) for r in range(runs)]
    rows, extra = [], []
    for task_name in tasks:
        t = get_task(task_name, task_params)
        y = binary_labels(t)
        n_pos = int(np.sum(y == 1))
        ids = [str(i) for i in t.test["id"]]
        ps = prompts_for_task(task_name)
        pos, neg = list(ps.positive)[:n_prompts], list(ps.negative)[:n_prompts]
        pos_e, neg_e = _embed_prompts(txt, pos, batch_size), _embed_prompts(txt, neg, batch_size)
        for n in vision_encoders:
            standins.check_disjoint(encs[n], ids, what=f"{task_name} test")
            test_e = embed_rows(encs[n], ids, list(t.test["input"]), t, batch_size)
            for run, a in enumerate(draws):
                r = unimodal_zeroshot(test_e, y, anchor_img[n][a], anchor_text[a], pos_e, neg_e, method=method,
                                      seed=seed + run)
                rows.append(r.row(task_name, "unimodal", n, text_encoder, encs[n].domain))
                extra.append((run, n_pos, len(y) - n_pos))
        for approach, (img_name, txt_name) in ((a, list(p)) for a, p in baselines.items()):
            bi, bt = base_encs[approach][img_name], base_encs[approach][txt_name]
            test_e = embed_rows(bi, ids, list(t.test["input"]), t, batch_size)
            r = standard_zeroshot(test_e, y, _embed_prompts(bt, pos, batch_size), _embed_prompts(bt, neg, batch_size))
            rows.append(r.row(task_name, approach, img_name, txt_name, bi.domain))
            extra.append((0, n_pos, len(y) - n_pos))
    domains = {n: e.domain for n, e in encs.items()}
    out = tidy_results(rows)
    out["run"], out["n_pos"], out["n_neg"] = ([e[k] for e in extra] for k in range(3))
    supervised = {n: str(e.spec["supervised_on"]) for n, e in encs.items()
                  if n in vision_encoders and getattr(e, "spec", {}).get("supervised_on")}
    out["supervised_on"] = [supervised.get(v, "") if a == "unimodal" else ""
                            for v, a in zip(out["vision_encoder"], out["approach"])]
    return out, {"domains": domains, "n_pairs": int(n_pairs), "pair_pool": len(pair_df), "runs": int(runs),
                 "supervised_on": supervised}


def fig4_means(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, approach, vision encoder, text encoder): AUROC mean over runs and its
    std (NaN for one run), with the class counts and ``supervised_on`` carried along."""
    keys = ["task", "approach", "vision_encoder", "text_encoder", "domain"]
    if "run" not in results.columns:
        return results.assign(auroc_std=np.nan)
    agg = {"auroc": ("auroc", "mean"), "auroc_std": ("auroc", "std"), "runs": ("auroc", "size")}
    for c in ("n_pos", "n_neg", "supervised_on"):
        if c in results.columns:
            agg[c] = (c, "first")
    return results.groupby(keys, sort=False, dropna=False).agg(**agg).reset_index()


#: What the paper puts in the zero-shot roles (Sec. 4.2), to name what a profile uses instead.
PAPER_ZEROSHOT_ROLES = {"text": "openai/clip-vit-base-patch32 (CLIP's text tower)",
                        "pairs": "MIMIC-CXR image–report pairs"}
PAPER_PAIRS = ("mimic-cxr-pairs",)


def describe_zeroshot_setup(text_encoder: str, text_domain: str, pairs: str, n_pairs: int,
                            method: str, n_prompts: int, profile: str, runs: int = 1,
                            pair_pool: int | None = None) -> str:
    """One paragraph: the text space and anchors this run uses, beside the paper's."""
    same_text = text_encoder.startswith(("clip", "openai/clip"))
    same_pairs = pairs in PAPER_PAIRS
    txt = (f"Text space: `{text_encoder}` ({text_domain})"
           + ("" if same_text else f" — **in place of** the paper's {PAPER_ZEROSHOT_ROLES['text']}") + ". "
           f"Anchors: {n_pairs} image–report pairs of `{pairs}`"
           + ("" if same_pairs else f" — **in place of** the paper's {PAPER_ZEROSHOT_ROLES['pairs']}") + ". ")
    draws = (f"{runs} runs, each on its own random {n_pairs} of a pool of {pair_pool} pairs. "
             if runs > 1 and pair_pool else "")
    return txt + (f"{draws}Transform `{method}`; {n_prompts} positive and {n_prompts} negative prompts per task; "
                  f"profile `{profile}`.")


def above_chance(results: pd.DataFrame, k: float = 2.0) -> pd.Series:
    """Per row: AUROC > 0.5 + k × its null standard deviation (:func:`semalign.zeroshot.chance_sd`).

    Rows without class counts fall back to AUROC > 0.5 (and say less).
    """
    if not {"n_pos", "n_neg"} <= set(results.columns):
        return results["auroc"] > 0.5
    return pd.Series(results["auroc"].to_numpy() > 0.5 + k * _chance_sds(results), index=results.index)


def _chance_sds(results: pd.DataFrame) -> np.ndarray:
    """Each row's null AUROC std from its class counts (:func:`semalign.zeroshot.chance_sd`)."""
    from semalign.zeroshot import chance_sd

    return np.array([chance_sd(int(a), int(b)) for a, b in zip(results["n_pos"], results["n_neg"])])


def supervised_encoders(results: pd.DataFrame) -> dict[str, str]:
    """``{vision encoder: what it was trained on}`` from a Fig. 4 frame's ``supervised_on``
    column (written by :func:`zeroshot_grid`); empty when the column is absent."""
    if "supervised_on" not in results.columns:
        return {}
    return {v: w for v, w in zip(results["vision_encoder"], results["supervised_on"].fillna(""))
            if isinstance(w, str) and w}


APPROACH_LABELS = {"unimodal": "ours (unimodal + alignment)", "clip": "CLIP", "medclip": "MedCLIP"}


def fig4_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Fig. 4 frame for :func:`semalign.plots.zeroshot_bars`: task, model, kind, auroc (mean
    over runs) and, with several runs, auroc_std."""
    df = fig4_means(results)
    df["kind"] = df["approach"].map(APPROACH_LABELS).fillna(df["approach"])
    df["model"] = np.where(df["approach"] == "unimodal",
                           df["vision_encoder"] + " (" + df["domain"] + ")", df["kind"])
    cols = ["task", "model", "kind", "auroc"] + (["auroc_std"] if df["auroc_std"].notna().any() else [])
    return df[cols]


def read_fig4(results: pd.DataFrame, supervised_on: dict[str, str] | None = None) -> str:
    """One paragraph reading Fig. 4 from its numbers.

    *Above chance* is AUROC > 0.5 + 2 null standard deviations (:func:`above_chance`), not
    merely > 0.5. ``supervised_on``: encoders trained on labels (default: read from the
    frame, :func:`supervised_encoders`), named so that a reader does not take their bars for
    zero-shot ability.
    """
    if supervised_on is None:
        supervised_on = supervised_encoders(results)
    results = fig4_means(results)
    uni = results[results["approach"] == "unimodal"]
    if uni.empty:
        return "**Reading.** No unimodal results."
    per_enc = uni.groupby("vision_encoder")["auroc"].mean().sort_values(ascending=False)
    above = int(above_chance(uni).sum())
    rule = ("0.5 + 2 null standard deviations, i.e. "
            f"{0.5 + 2 * _chance_sds(uni).max():.2f} here" if {"n_pos", "n_neg"} <= set(uni.columns) else "0.5")
    s = (f"**Reading.** Averaged over the {uni['task'].nunique()} task(s), the best vision encoder with the "
         f"paper's method is `{per_enc.index[0]}` (mean AUROC {per_enc.iloc[0]:.3f}); {above} of {len(uni)} "
         f"(encoder, task) results are above chance (AUROC above {rule})"
         + (f"; means over {int(uni['runs'].max())} anchor draws." if uni.get("runs", pd.Series([1])).max() > 1
            else "."))
    gen = uni[uni["domain"] == "general"]
    if len(gen):
        g = gen.groupby("vision_encoder")["auroc"].mean().sort_values(ascending=False)
        s += f" Among the general encoders, `{g.index[0]}` is best (mean {g.iloc[0]:.3f})."
    for approach in ("clip", "medclip"):
        b = results[results["approach"] == approach].set_index("task")["auroc"]
        if len(b):
            best = uni.groupby("task")["auroc"].max().reindex(b.index)
            s += (f" The best unimodal encoder beats {APPROACH_LABELS[approach]} on {int((best > b).sum())} "
                  f"of {len(b)} tasks.")
    for enc, what in (supervised_on or {}).items():
        if enc in set(uni["vision_encoder"]):
            s += (f" **Caution:** `{enc}` was trained with labels ({what}), so its bars are not zero-shot "
                  f"in the paper's sense (RAD-DINO, the paper's medical encoder, never saw a label): read "
                  f"them as an in-domain ceiling, not as a medical encoder's zero-shot ability.")
    return s


# --------------------------------------------------------------------------- the data page
def profiles_table() -> pd.DataFrame:
    """What each profile puts in the paper's roles (from the profile files, not typed)."""
    from semalign.book import PROFILES, load_profile

    rows = []
    for name in PROFILES:
        p = load_profile(name)
        c, zs = p["common"], p["notebooks"].get("04_zeroshot") or {}
        rows.append({
            "profile": name,
            "text task": c.get("text_task"),
            "text encoders": ", ".join(c.get("text_encoders", [])),
            "vision tasks": ", ".join(c.get("vision_tasks", [])),
            "vision encoders": ", ".join(c.get("vision_encoders", [])),
            "zero-shot pairs": zs.get("pairs"),
            "zero-shot text encoder": zs.get("text_encoder"),
            "baselines": ", ".join(zs.get("baselines") or []) or "none",
        })
    return pd.DataFrame(rows).set_index("profile")


def label_balance(tasks: Sequence[str], task_params: dict[str, dict] | None = None) -> pd.DataFrame:
    """task, split, label, count for each task's train / test / anchor samples."""
    rows = []
    for name in tasks:
        t = get_task(name, task_params)
        for split in ("train", "test"):
            df = getattr(t, split)
            for label, n in df["label"].astype(str).value_counts().sort_index().items():
                rows.append({"task": name, "split": split, "label": label, "count": int(n)})
        rows.append({"task": name, "split": "anchors", "label": "(unlabelled pool)", "count": len(t.anchors)})
    return pd.DataFrame(rows)


def read_balance(balance: pd.DataFrame) -> str:
    test = balance[balance["split"] == "test"]
    parts = []
    for task, g in test.groupby("task", sort=False):
        ratio = g["count"].min() / max(g["count"].max(), 1)
        parts.append(f"`{task}`: {g['count'].sum()} test samples in {len(g)} classes"
                     + (" (balanced)" if ratio > 0.95 else f" (smallest/largest class {ratio:.2f})"))
    return "**Reading.** " + "; ".join(parts) + "."


def text_lengths(dataset: str) -> pd.DataFrame:
    """Words per report of a text dataset: aggregates only, the text itself is dropped here."""
    from semalign.data import load_dataset

    df = load_dataset(dataset)
    col = "text" if "text" in df.columns else "input"
    return pd.DataFrame({"words": df[col].fillna("").astype(str).str.split().str.len()})


def synthcxr_gallery(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Up to ``n`` SynthCXR gallery images (a normal case, then one per finding).

    Returns images uint8 (n, H, W), captions ("Cardiomegaly (moderate, …)") and each image's
    generated report (synthetic text written by the generator: safe to show).
    """
    from semalign.data.synthcxr import gallery

    items = gallery(seed=seed)[:n]
    caps = [it["title"] + (f" ({', '.join(x for x in (it['severity'], it['location']) if x)})"
                           if it["severity"] or it["location"] else "") for it in items]
    return np.stack([it["image"] for it in items]), caps, [it["report"] for it in items]


# --------------------------------------------------------------------------- Table 1
def table1_results(
    text_task: str,
    text_encoders: Sequence[str],
    vision_tasks: Sequence[str],
    vision_encoders: Sequence[str],
    *,
    method: str = "ortho",
    n_anchors: int = 2500,
    runs: int = 3,
    seed: int = 0,
    device: str = "auto",
    batch_size: int | None = None,
    anchor_pool: int | None = None,
    task_params: dict[str, dict] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Stitching results for Table 1: one text task, all vision tasks, one method and N.

    ``n_anchors`` is capped at each task's anchor pool. Returns the tidy frame of
    :func:`semalign.stitching.stitch_grid` with a ``modality`` column, and ``{"domains",
    "n_anchors": {"text": [n, ...], "vision": [n, ...]}, "standins"}`` (the counts used per
    modality, one per distinct task pool).
    """
    from semalign.stitching import stitch_grid

    frames, domains = [], {}
    used: dict[str, list[int]] = {"text": [], "vision": []}
    for modality, tasks, encs in (("text", [text_task], text_encoders), ("vision", vision_tasks, vision_encoders)):
        for name in tasks:
            t = encode_task(name, encs, device=device, batch_size=batch_size, anchor_pool=anchor_pool, seed=seed,
                            task_params=task_params)
            pool = min(e.anchors.shape[0] for e in t.encoders.values())
            n = min(n_anchors, pool)
            used[modality].append(int(n))
            res = stitch_grid(t, ["naive", method, "upper_bound"], [n], runs=runs, seed=seed, progress=False)
            frames.append(res.assign(modality=modality))
            domains.update(t.domains)
    standins = sorted(n for n, d in domains.items() if "stand-in" in d)
    return pd.concat(frames, ignore_index=True), {"domains": domains, "n_anchors": {m: sorted(set(v)) for m, v in used.items()},
                                                   "standins": standins}


def describe_anchor_counts(n_anchors: dict[str, list[int]]) -> str:
    """``{"text": [1000], "vision": [280]}`` -> "text 1000, vision 280" (modalities without tasks left out)."""
    return ", ".join(f"{m} {' / '.join(map(str, v))}" for m, v in n_anchors.items() if v)


def table1_frame(results: pd.DataFrame, method: str = "ortho") -> pd.DataFrame:
    """``semalign.tables.table1`` per modality, side by side.

    Each modality is read at its own largest anchor count for ``method`` (the offline
    vision tasks have smaller anchor pools than the text task), so neither column is empty.
    """
    from semalign import tables

    parts = []
    for modality, sub in results.groupby("modality", sort=False):
        t = tables.table1(sub, method=method)
        parts.append(t.loc[:, [c for c in t.columns if c[0] == modality]])
    return pd.concat(parts, axis=1)


def read_table1(ours: pd.DataFrame, paper: Any, *, standins: Sequence[str] = ()) -> str:
    """One paragraph comparing our Gen→Med row with the paper's (signs of the change vs SUB)."""
    from semalign.plots import table1_long

    o, p = table1_long(ours), table1_long(paper)
    parts = []
    for modality in ("text", "vision"):
        oo = o[(o["modality"] == modality) & (o["pair"] == "Gen→Med")]
        pp = p[(p["modality"] == modality) & (p["pair"] == "Gen→Med")]
        if oo.empty:
            continue
        oc = float(oo["change_pct"].iloc[0])
        if pd.isna(oc):
            continue
        words = {"gain": "a gain", "loss": "a loss", "≈": "within 5 %"}
        s = f"{modality}: ours {oc:+.0f} % against SUB ({words[change_category(oc)]})"
        if not pp.empty and pd.notna(pp["change_pct"].iloc[0]):
            pc = float(pp["change_pct"].iloc[0])
            agree = "agrees with" if change_category(oc) == change_category(pc) else "differs from"
            s += f", which {agree} the paper's {pc:+.0f} % ({words[change_category(pc)]})"
        parts.append(s)
    text = "**Reading (Gen→Med).** " + "; ".join(parts) + "."
    if standins:
        text += (f" Our *medical* encoders are stand-ins fitted here ({', '.join(standins)}): the table tests "
                 f"whether stitching into a stronger in-domain encoder helps, not the paper's medical models.")
    return text


# --------------------------------------------------------------------------- the summary page
def _best_at_max(fig3: pd.DataFrame, panel: str) -> tuple[pd.Series, float, float, int]:
    res = fig3[fig3["panel"] == panel]
    curve = res[~res["method"].isin(["naive", "upper_bound"])]
    n_max = int(curve["n_anchors"].max())
    at_max = curve[curve["n_anchors"] == n_max].groupby("method")["auroc"].mean().sort_values(ascending=False)
    naive = res.loc[res["method"] == "naive", "auroc"].mean()
    ub = res.loc[res["method"] == "upper_bound", "auroc"].mean()
    return at_max, naive, ub, n_max


def claims_summary(fig3: pd.DataFrame, ours_t1: pd.DataFrame, paper_t1: Any, fig4: pd.DataFrame,
                   supervised_on: dict[str, str] | None = None) -> pd.DataFrame:
    """The paper's claims, each with the paper's value and ours, computed from result frames.

    Columns: section, claim, paper, ours, holds ("yes" / "no" / "not tested").
    Table 1 changes are compared in the paper's own categories (:func:`change_category`: a gain
    or loss of 5 % or more, else grey), not by sign: −2 % (grey) and −20 % (red) disagree.
    Zero-shot "above chance" uses :func:`above_chance`. ``supervised_on``: vision encoders
    trained on labels; a medical-vs-general zero-shot claim resting on one is "not tested".
    """
    from semalign.plots import table1_long

    if supervised_on is None:
        supervised_on = supervised_encoders(fig4)
    rows = []

    def add(section, claim, paper, ours, holds):
        rows.append({"section": section, "claim": claim, "paper": paper, "ours": ours,
                     "holds": {True: "yes", False: "no", None: "not tested"}[holds]})

    for panel, what, paper_best in (("(a) text", "text", "ortho"), ("(b) vision", "vision", "affine")):
        if not (fig3["panel"] == panel).any():
            continue
        at_max, naive, ub, n_max = _best_at_max(fig3, panel)
        beat = int((at_max > naive).sum())
        add("4.1, Fig. 3", f"every transform beats naive stitching ({what})", "yes",
            f"{beat} of {len(at_max)} at {n_max} anchors (naive {naive:.2f})", beat == len(at_max))
        add("4.1, Fig. 3", f"best transform ({what})", paper_best,
            f"{at_max.index[0]} ({at_max.iloc[0]:.3f})", at_max.index[0] == paper_best)
        add("4.1, Fig. 3", f"best transform approaches the upper bound ({what})", "almost reaches it",
            f"{at_max.iloc[0]:.3f} vs {ub:.3f}", bool(ub - at_max.iloc[0] < 0.05))
    o, p = table1_long(ours_t1), table1_long(paper_t1)

    def cell(frame, modality, pair, col):
        r = frame[(frame["modality"] == modality) & (frame["pair"] == pair)]
        return float(r[col].iloc[0]) if len(r) and pd.notna(r[col].iloc[0]) else None

    for modality in ("text", "vision"):
        pc, oc = cell(p, modality, "Gen→Med", "change_pct"), cell(o, modality, "Gen→Med", "change_pct")
        if oc is not None:
            add("4.1, Table 1", f"Gen→Med alignment vs SUB ({modality})",
                f"{pc:+.0f} % ({change_category(pc)})" if pc is not None else "—",
                f"{oc:+.0f} % ({change_category(oc)})",
                None if pc is None else change_category(oc) == change_category(pc))
        gm, gg = cell(o, modality, "Gen→Med", "alignment"), cell(o, modality, "Gen→Gen", "alignment")
        pgm, pgg = cell(p, modality, "Gen→Med", "alignment"), cell(p, modality, "Gen→Gen", "alignment")
        if gm is not None and gg is not None and pgm is not None and pgg is not None:
            add("4.1, Table 1", f"Gen→Med beats Gen→Gen ({modality})", f"{pgm:.2f} vs {pgg:.2f}",
                f"{gm:.2f} vs {gg:.2f}", (gm > gg) == (pgm > pgg))
        mg, pmg = cell(o, modality, "Med→Gen", "change_pct"), cell(p, modality, "Med→Gen", "change_pct")
        if mg is not None and pmg is not None:
            add("4.1, Table 1", f"Med→Gen loses against SUB ({modality})",
                f"{pmg:+.0f} % ({change_category(pmg)})", f"{mg:+.0f} % ({change_category(mg)})",
                change_category(mg) == change_category(pmg))
    fig4 = fig4_means(fig4)
    uni = fig4[fig4["approach"] == "unimodal"]
    if len(uni):
        best = uni.groupby("task")["auroc"].max()
        best_rows = uni.loc[uni.groupby("task")["auroc"].idxmax()]
        n_above = int(above_chance(best_rows).sum())
        add("4.2, Fig. 4", "unimodal zero-shot above chance (best encoder per task; > 0.5 + 2 null sd)",
            "“limited performance”", f"{n_above} of {len(best)} tasks", bool(n_above > len(best) / 2))
        clip = fig4[fig4["approach"] == "clip"].set_index("task")["auroc"]
        add("4.2, Fig. 4", "unimodal beats CLIP", "6 of 7 tasks",
            f"{int((best.reindex(clip.index) > clip).sum())} of {len(clip)} tasks" if len(clip) else
            "no CLIP in this profile", None if not len(clip) else bool((best.reindex(clip.index) > clip).mean() > 0.5))
        med = uni[uni["domain"].str.startswith("medical")]
        gen = uni[uni["domain"] == "general"]
        if len(med) and len(gen):
            g, m = gen["auroc"].mean(), med["auroc"].mean()
            sup = sorted(set(med["vision_encoder"]) & set(supervised_on or {}))
            add("4.2, Fig. 4", "general vision encoders beat medical ones (zero-shot)", "in most cases",
                f"general {g:.2f} vs medical {m:.2f}"
                + (f" — not comparable: {', '.join(sup)} was trained on these findings' labels" if sup else ""),
                None if sup else bool(g > m))
    return pd.DataFrame(rows)


def read_claims(summary: pd.DataFrame, profile: str) -> str:
    tested = summary[summary["holds"] != "not tested"]
    held = int((tested["holds"] == "yes").sum())
    return (f"**Reading.** With the `{profile}` profile, {held} of {len(tested)} tested claims hold in our "
            f"numbers ({len(summary) - len(tested)} not testable with this profile). "
            + ("The offline profile runs the paper's experiments on stand-in data and encoders: agreement "
               "shows the pipeline reproduces the paper's effects in kind, not its numbers."
               if profile == "offline" else ""))
