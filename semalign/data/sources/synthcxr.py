"""SynthCXR, the offline vision source: dataset ``synthcxr``, its balanced binary finding tasks
and the image–report pairs ``synthcxr-pairs``.

The images and reports come from the generator :mod:`semalign.data.synthcxr`. The tasks stand
in for the paper's vision tasks, one per finding of :data:`semalign.vocab.ZEROSHOT_FINDINGS`:
``synthcxr-pneumonia`` (RSNA's role) and ``synthcxr-vindr-<finding>`` (the six VinDr-CXR
findings); the pairs stand in for MIMIC-CXR's image–report pairs.
"""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=4)
def _synth_pool(n: int, seed: int, size: int) -> gen.SynthBatch:
    """The natural-prevalence image pool (shared by every SynthCXR task as extra anchors)."""
    return gen.generate(n, seed=seed, size=size, id_prefix=_POOL_PREFIX)


def _balanced(finding: str, n_per_class: int, seed: int, size: int, prefix: str) -> gen.SynthBatch:
    force = {finding: np.tile([1, 0], n_per_class)}
    return gen.generate(2 * n_per_class, seed=seed, size=size, force=force, id_prefix=prefix)


def _frame(batch: gen.SynthBatch, finding: str | None = None) -> pd.DataFrame:
    d = {"id": list(batch.labels["id"]), "input": list(batch.images)}
    if finding is not None:
        d["label"] = batch.labels[finding].to_numpy().astype(int)
    return pd.DataFrame(d)


@functools.lru_cache(maxsize=8)
def synthcxr_task(finding: str, name: str, n_train_per_class: int = 200, n_test_per_class: int = 100,
                  n_pool: int = 800, seed: int = 0, size: int = 224) -> Task:
    """A balanced binary SynthCXR task for the generator's ``finding``.

    Test: ``n_test_per_class`` images with the finding and as many without (other findings at
    their default prevalence in both halves). Train: the same for ``n_train_per_class``, from
    another seed stream. Anchors: the train images plus a natural-prevalence pool of
    ``n_pool`` images shared by all SynthCXR tasks (the paper draws anchors from the training
    set; they carry no labels; :attr:`Task.shared_pool_keys` keys the pool's rows once for all
    tasks). All three are different random images (different seeds). Labels are 0/1
    (1 = finding present); ``classes = [0, 1]``.
    """
    if finding not in gen.FINDINGS:
        raise DataError(f"unknown SynthCXR finding {finding!r}; known: {', '.join(gen.FINDINGS)}")
    base = 7919 * (gen.FINDINGS.index(finding) + 1) + 100_003 * seed
    test = _balanced(finding, n_test_per_class, base + 1, size, f"{name}-test")
    train = _balanced(finding, n_train_per_class, base + 2, size, f"{name}-train")
    pool_seed = 100_003 * seed + 3
    pool = _synth_pool(n_pool, pool_seed, size)
    tr = _frame(train, finding)
    anchors = pd.concat([tr[["id", "input"]], _frame(pool)], ignore_index=True)
    recipe = {"finding": finding, "n_train_per_class": n_train_per_class, "n_test_per_class": n_test_per_class,
              "n_pool": n_pool, "seed": seed, "size": size, "generator_version": gen.SYNTHCXR_VERSION}
    # the pool's image i depends only on its seed, i, size and the generator version: one key
    # for every task that holds it (ids are f"{prefix}-{seed}-{i:06d}", the family drops i)
    shared = {f"{_POOL_PREFIX}-{pool_seed}-": f"synthcxr-pool@size={size},v={gen.SYNTHCXR_VERSION}"}
    return Task(
        name=name, modality=Modality.IMAGE, classes=[0, 1], train=tr, test=_frame(test, finding), anchors=anchors,
        dataset_key=recipe_key(name, recipe), recipe=recipe, shared_pool_keys=shared,
        description=f"SynthCXR {finding.replace('_', ' ')}: balanced binary, {n_test_per_class} + "
                    f"{n_test_per_class} test images.",
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
