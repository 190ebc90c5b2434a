"""SynthCXR, the offline vision source: dataset ``synthcxr``, its balanced binary finding tasks
and the image–report pairs ``synthcxr-pairs``.

The images and reports come from the generator :mod:`semalign.data.synthcxr`. The tasks stand
in for the paper's vision tasks, one per finding of :data:`semalign.vocab.ZEROSHOT_FINDINGS`:
``synthcxr-pneumonia`` (RSNA's role) and ``synthcxr-vindr-<finding>`` (the six VinDr-CXR
findings); the pairs stand in for MIMIC-CXR's image–report pairs.

**Shared pools.** As VinDr-CXR's images carry several findings and serve all six VinDr tasks,
the seven tasks draw from two shared multi-finding pools, a *test pool* and a *train pool*,
each generated and embedded once for all of them (:attr:`Task.shared_pools`). A pool for
``n`` images per class holds ``N = ceil(n / pool_prevalence)`` images in which each of the
seven task findings is present in exactly ``n`` (forced, at positions drawn independently per
finding, so the findings are independent of each other); the other four findings keep the
generator's default prevalence. Task *f* takes every image of the pool with *f* (``n``
positives) and ``n`` of the ``N - n`` without it, drawn without replacement from the task's
seed: positives and negatives alike carry the other findings at the pool's prevalence, so
nothing but *f* tells them apart. ``pool_prevalence = 0.25`` (each image shows on average 1.75
of the seven findings; 13 % show none of them) makes the pools 4 ``n`` images: the seven test
sets of ``2 n`` share ``4 n`` images instead of needing ``14 n``.

**Sizes** (the offline profile: ``n_test_per_class = n_train_per_class = 100``). A vision cell
of Table 1 is the mean over the 7 tasks, and its reading is a difference against SUB, which
should show a 5 % change (0.0375 AUROC at 0.75) at 2 standard errors. Hanley–McNeil at
AUROC 0.75 with ``n`` positives and ``n`` negatives: ``Var = (0.1875 + 0.1179 (n - 1)) / n^2``,
so SE = 0.0344 per task at n = 100 (0.0547 at the former 40); the cell's SE is
``0.0344 / sqrt(7) = 0.0130``, and the SE of a difference of two such cells (independent:
conservative, they share test sets) ``sqrt(2) · 0.0130 = 0.0184``, so 2 SE = 0.037 ≤ 0.0375
(n ≥ 96 is needed; at n = 40 it was 0.059, a 7.8 % change). The train pool is the same
design (the SVM decoder's training images). Images per encoder: 4 · 100 (test) + 4 · 100
(train) + the natural-prevalence anchor pool, 1,000 at ``n_pool = 200``, against
7 · 160 + 200 = 1,320 for the former 40 + 40 separate tasks.

**Anchors**: the whole train pool (unlabelled training images, the same for every task) and
a natural-prevalence pool of ``n_pool`` images (:attr:`Task.shared_pool_keys` keys each pool
once for all tasks); never a test image.

**Seed streams** (``s`` = the task's ``seed``): test pool ``960_000 + s`` (ids
``synthtest-…``), train pool ``970_000 + s`` (``synthtrain-…``), natural anchor pool
``100_003 s + 3`` (``synthpool-…``), pairs ``50_000 + s`` (``synthpair-…``); the stand-ins
train on ``910_000 + s``, ``920_000 + s``, ``930_000 + s``: all different images for
``0 <= s < 10_000``. Which image of a pool has which task finding depends on the pool's seed
only, which negatives a task takes on ``(s, finding)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from semalign.data import synthcxr as gen
from semalign.data.errors import DataError
from semalign.data.registry import Task, dataset, pairs, recipe_key, task
from semalign.vocab import ZEROSHOT_FINDINGS, Finding, Modality

MANIFEST = "synthcxr"

#: The tasks, by name, and the finding each is about. ``ZEROSHOT_FINDINGS`` is pneumonia (the
#: RSNA role), then the six VinDr-CXR findings.
_RSNA_ROLE, *_VINDR_ROLE = ZEROSHOT_FINDINGS
TASKS: dict[str, Finding] = {"synthcxr-pneumonia": _RSNA_ROLE,
                             **{f"synthcxr-vindr-{f.key}": f for f in _VINDR_ROLE}}


@dataset("synthcxr", manifest=MANIFEST)
def load(n: int = 1000, seed: int = 0, size: int = 224) -> pd.DataFrame:
    """``n`` generated images with their reports and labels: ``id, image, text``, one 0/1 column
    per finding, severity / location columns, ``split`` (all ``train``)."""
    n, seed, size = int(n), int(seed), int(size)
    b = gen.generate(n, seed=seed, size=size)
    df = b.labels.copy()
    df.insert(1, "image", list(b.images))
    df.insert(2, "text", b.reports)
    df["split"] = "train"
    df.attrs["dataset_key"] = recipe_key("synthcxr", {"n": n, "seed": seed, "size": size, "v": gen.SYNTHCXR_VERSION})
    return df


#: id prefix of the natural-prevalence anchor pool shared by every SynthCXR task
_POOL_PREFIX = "synthpool"

#: The shared multi-finding pools: split -> (id prefix, base of the seed stream)
SHARED_POOLS: dict[str, tuple[str, int]] = {"test": ("synthtest", 960_000), "train": ("synthtrain", 970_000)}
#: The generator findings forced in the shared pools: one per task
POOL_FINDINGS: tuple[str, ...] = tuple(f.synthcxr for f in TASKS.values())
#: Version of the pool design (part of every pool's and task's key)
POOL_DESIGN = 1


def _rows(batch: gen.SynthBatch) -> pd.DataFrame:
    """``id, input`` of every image of a pool."""
    return pd.DataFrame({"id": list(batch.labels["id"]), "input": list(batch.images)})


@functools.lru_cache(maxsize=4)
def _synth_pool(n: int, seed: int, size: int) -> tuple[gen.SynthBatch, pd.DataFrame]:
    """The natural-prevalence image pool (shared by every SynthCXR task as extra anchors) and
    its rows (one frame, shared by every task)."""
    b = gen.generate(n, seed=seed, size=size, id_prefix=_POOL_PREFIX)
    return b, _rows(b)


def pool_size(n_per_class: int, prevalence: float) -> int:
    """Images in a shared pool holding ``n_per_class`` positives of each task finding."""
    return math.ceil(n_per_class / prevalence - 1e-9)


@functools.lru_cache(maxsize=4)
def _shared_pool(split: str, n_per_class: int, prevalence: float, seed: int, size: int
                 ) -> tuple[gen.SynthBatch, pd.DataFrame]:
    """The ``split`` pool and its rows: :func:`pool_size` images, each task finding present in
    exactly ``n_per_class`` of them (positions drawn independently per finding from the pool's
    seed)."""
    prefix, base = SHARED_POOLS[split]
    n = pool_size(n_per_class, prevalence)
    rng = np.random.default_rng([base + seed, POOL_DESIGN])
    force = {}
    for f in POOL_FINDINGS:
        v = np.zeros(n, np.int8)
        v[rng.permutation(n)[:n_per_class]] = 1
        force[f] = v
    b = gen.generate(n, seed=base + seed, size=size, force=force, id_prefix=prefix)
    return b, _rows(b)


def _family(batch: gen.SynthBatch) -> str:
    # ids are f"{prefix}-{seed}-{i:06d}": the family drops i (semalign.encoders.tasks groups by it)
    return str(batch.labels["id"].iloc[0]).rstrip("0123456789") if len(batch) else ""


def _draw(pool: tuple[gen.SynthBatch, pd.DataFrame], finding: str, n_per_class: int,
          rng: np.random.Generator) -> pd.DataFrame:
    """``n_per_class`` images of the pool with ``finding`` and as many without, in pool order:
    ``id, input, label`` (1 = present)."""
    batch, rows = pool
    y = batch.labels[finding].to_numpy().astype(int)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if min(len(pos), len(neg)) < n_per_class:
        raise DataError(f"the SynthCXR pool holds {len(pos)} images with {finding} and {len(neg)} without, "
                        f"fewer than n_per_class={n_per_class}: lower it or the pool prevalence")
    keep = np.sort(np.concatenate([rng.choice(pos, n_per_class, replace=False),
                                   rng.choice(neg, n_per_class, replace=False)]))
    return rows.iloc[keep].reset_index(drop=True).assign(label=y[keep])


def _pool_key(split: str, batch: gen.SynthBatch, n_per_class: int, prevalence: float, seed: int, size: int) -> str:
    return recipe_key(f"synthcxr-{split}-pool", {
        "n_per_class": n_per_class, "prevalence": prevalence, "n": len(batch), "findings": list(POOL_FINDINGS),
        "seed": seed, "size": size, "design": POOL_DESIGN, "generator_version": gen.SYNTHCXR_VERSION})


@functools.lru_cache(maxsize=8)
def synthcxr_task(finding: str, name: str, n_train_per_class: int = 200, n_test_per_class: int = 100,
                  n_pool: int = 800, seed: int = 0, size: int = 224, pool_prevalence: float = 0.25) -> Task:
    """A balanced binary SynthCXR task for the generator's ``finding`` (module docstring).

    Test: ``n_test_per_class`` images with the finding and as many without, drawn from the
    shared test pool; train: the same for ``n_train_per_class`` from the shared train pool;
    both pools have each task finding at ``pool_prevalence`` and are shared by every task with
    the same parameters. Anchors: the whole train pool plus a natural-prevalence pool of
    ``n_pool`` images (the paper draws anchors from the training set; they carry no labels).
    Labels are 0/1 (1 = finding present); ``classes = [0, 1]``.
    """
    if finding not in POOL_FINDINGS:
        raise DataError(f"SynthCXR tasks are about the findings of its shared pools ({', '.join(POOL_FINDINGS)}); "
                        f"got {finding!r}")
    for what, v in (("n_test_per_class", n_test_per_class), ("n_train_per_class", n_train_per_class)):
        if int(v) < 1:
            raise DataError(f"{name}: {what} must be >= 1, got {v}")
    if not 0 < float(pool_prevalence) <= 0.5:
        raise DataError(f"{name}: pool_prevalence must lie in (0, 0.5] (a task needs as many images without the "
                        f"finding as with it), got {pool_prevalence}")
    n_test, n_train, n_pool, seed, size = int(n_test_per_class), int(n_train_per_class), int(n_pool), int(seed), int(size)
    prevalence = float(pool_prevalence)
    k = POOL_FINDINGS.index(finding)
    pools = {split: _shared_pool(split, n, prevalence, seed, size) for split, n in (("test", n_test), ("train", n_train))}
    test = _draw(pools["test"], finding, n_test, np.random.default_rng([seed, k, 1]))
    train = _draw(pools["train"], finding, n_train, np.random.default_rng([seed, k, 2]))
    pool_seed = 100_003 * seed + 3
    natural = _synth_pool(n_pool, pool_seed, size)
    anchors = pd.concat([pools["train"][1], natural[1]], ignore_index=True)
    recipe = {"finding": finding, "n_train_per_class": n_train, "n_test_per_class": n_test, "n_pool": n_pool,
              "pool_prevalence": prevalence, "pool_design": POOL_DESIGN, "seed": seed, "size": size,
              "generator_version": gen.SYNTHCXR_VERSION}
    # each pool's image i depends only on its seed, i and the recipe: one key for every task that
    # holds it. The natural pool keeps its former key (its content is unchanged)
    shared = {_family(pools[s][0]): _pool_key(s, pools[s][0], n, prevalence, SHARED_POOLS[s][1] + seed, size)
              for s, n in (("test", n_test), ("train", n_train))}
    shared_rows = {_family(b): rows for b, rows in pools.values()}
    if n_pool:
        shared[_family(natural[0])] = f"synthcxr-pool@size={size},v={gen.SYNTHCXR_VERSION}"
        shared_rows[_family(natural[0])] = natural[1]
    return Task(
        name=name, modality=Modality.IMAGE, classes=[0, 1], train=train, test=test, anchors=anchors,
        dataset_key=recipe_key(name, recipe), recipe=recipe, shared_pool_keys=shared, shared_pools=shared_rows,
        description=f"SynthCXR {finding.replace('_', ' ')}: balanced binary, {n_test} + {n_test} test images "
                    f"from a shared {len(pools['test'][0])}-image test pool.",
    )


for _name, _finding in TASKS.items():
    task(_name, dataset=MANIFEST, modality=Modality.IMAGE, finding=_finding, positive=1)(
        functools.partial(synthcxr_task, _finding.synthcxr, _name))


@pairs("synthcxr-pairs", dataset=MANIFEST)
def synthcxr_pairs(n: int = 2000, seed: int = 0, size: int = 224) -> pd.DataFrame:
    """``n`` image–report pairs at the default prevalence (the MIMIC-CXR role): ``id, image, text``."""
    size = int(size)
    b = gen.generate(n, seed=50_000 + seed, size=size, id_prefix="synthpair")
    df = pd.DataFrame({"id": list(b.labels["id"]), "image": list(b.images), "text": b.reports})
    df.attrs["dataset_key"] = recipe_key("synthcxr-pairs", {"n": n, "seed": seed, "size": size,
                                                            "generator_version": gen.SYNTHCXR_VERSION})
    return df
