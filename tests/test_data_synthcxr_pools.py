"""The SynthCXR tasks' shared pools (issue 11): every task draws its balanced test and train
sets from one shared multi-finding test pool and one train pool, each embedded once for all
tasks; the pools are deterministic, disjoint from each other and from every other seed stream."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from semalign.data import DataError, get_pairs, get_task
from semalign.data.sources import synthcxr as S
from semalign.encoders import Encoder
from semalign.encoders.standins import TRAIN_SEED, cnn_train_ids
from semalign.encoders.tasks import _family, embed_rows, encode_task

SMALL = {"n_train_per_class": 4, "n_test_per_class": 5, "n_pool": 6, "size": 32}
TASKS = list(S.TASKS)


def _tasks(**kw):
    return {name: get_task(name, **{**SMALL, **kw}) for name in TASKS}


def _digest(x) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def _clear():
    for f in (S.synthcxr_task, S._shared_pool, S._synth_pool):
        f.cache_clear()


class ToyImage(Encoder):
    """Image -> [pixel sum, weighted sum mod p, size]: a function of the pixels; counts rows embedded."""

    def __init__(self, name="toyimg"):
        super().__init__(name, "image", "general", 3, spec={"kind": "toyimg"})
        self.calls = 0

    def _embed_batch(self, batch):
        self.calls += len(batch)
        rows = []
        for x in batch:
            a = np.asarray(x, dtype=np.float64).ravel()
            rows.append([a.sum(), (a * np.arange(len(a))).sum() % 9973, len(a)])
        return np.asarray(rows, dtype=np.float32)


def test_every_task_draws_a_balanced_subset_of_one_shared_pool():
    ts = _tasks()
    first = ts[TASKS[0]]
    test_fam, train_fam = _family(first.test["id"].iloc[0]), _family(first.train["id"].iloc[0])
    test_pool, train_pool = first.shared_pools[test_fam], first.shared_pools[train_fam]
    # each finding in a quarter of the images: n / 0.25 images per pool
    assert len(test_pool) == 4 * SMALL["n_test_per_class"] and len(train_pool) == 4 * SMALL["n_train_per_class"]
    batch = S._shared_pool("test", SMALL["n_test_per_class"], 0.25, 0, SMALL["size"])[0]
    for name, t in ts.items():
        f = S.TASKS[name].synthcxr
        assert t.test["label"].value_counts().to_dict() == {0: 5, 1: 5}, name
        assert t.train["label"].value_counts().to_dict() == {0: 4, 1: 4}, name
        assert set(t.test["id"]) <= set(test_pool["id"]) and set(t.train["id"]) <= set(train_pool["id"]), name
        assert t.shared_pool_keys[test_fam] == first.shared_pool_keys[test_fam], "one key for every task"
        assert t.shared_pools[test_fam] is test_pool, "one frame for every task"
        # the labels are the pool image's finding, exactly n positives of it in the pool
        truth = batch.labels.set_index("id")[f]
        assert (t.test.set_index("id")["label"] == truth.loc[t.test["id"]]).all(), name
        assert int(truth.sum()) == SMALL["n_test_per_class"], name
        pix = dict(zip(test_pool["id"], map(_digest, test_pool["input"])))
        assert all(pix[i] == _digest(x) for i, x in zip(t.test["id"], t.test["input"])), "the pool's own pixels"
    assert len({tuple(t.test["id"]) for t in ts.values()}) == len(TASKS), "each task its own draw of negatives"
    # the four findings no task is about keep the generator's default prevalence (not forced)
    assert set(S.POOL_FINDINGS) == {f.synthcxr for f in S.TASKS.values()} and len(S.POOL_FINDINGS) == 7


def test_pools_and_draws_are_deterministic():
    a = _tasks()
    _clear()
    b = _tasks()
    for name in TASKS:
        for split in ("train", "test", "anchors"):
            x, y = getattr(a[name], split), getattr(b[name], split)
            assert list(x["id"]) == list(y["id"]), (name, split)
            assert [_digest(v) for v in x["input"]] == [_digest(v) for v in y["input"]], (name, split)
        assert list(a[name].test["label"]) == list(b[name].test["label"])
        assert a[name].dataset_key == b[name].dataset_key and a[name].shared_pool_keys == b[name].shared_pool_keys
    other = get_task(TASKS[0], **SMALL, seed=1)
    assert not set(other.test["id"]) & set(a[TASKS[0]].test["id"]), "another seed, other images"
    assert other.shared_pool_keys != a[TASKS[0]].shared_pool_keys


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_test_train_anchors_and_pairs_are_different_images(seed):
    ts = _tasks(seed=seed)
    t = ts[TASKS[0]]
    pairs = get_pairs("synthcxr-pairs", n=12, seed=seed, size=SMALL["size"])
    test = set().union(*(set(x.test["id"]) for x in ts.values()))
    train = set().union(*(set(x.train["id"]) for x in ts.values()))
    anchors = set().union(*(set(x.anchors["id"]) for x in ts.values()))
    assert train <= anchors and not test & anchors and not test & set(pairs["id"]) and not anchors & set(pairs["id"])
    assert not (test | anchors) & set(cnn_train_ids(50, seed)), "never the stand-in CNN's training images"
    # and by content, not only by id: no test image is an anchor or pair image
    seen = {_digest(x) for x in t.anchors["input"]} | {_digest(x) for x in pairs["image"]}
    assert not {_digest(x) for x in t.test["input"]} & seen
    # the seed streams (documented in the module): all different for these seeds
    streams = [S.SHARED_POOLS["test"][1] + seed, S.SHARED_POOLS["train"][1] + seed, 100_003 * seed + 3,
               50_000 + seed, TRAIN_SEED + seed, 920_000 + seed, 930_000 + seed]
    assert len(set(streams)) == len(streams)


def test_a_second_task_hits_the_same_cache_entries():
    ts = _tasks()
    enc = ToyImage()
    first = encode_task(ts[TASKS[0]], {"toy": enc})
    n_pools = sum(len(p) for p in ts[TASKS[0]].shared_pools.values())
    assert enc.calls == n_pools == 20 + 16 + 6, "every pool embedded whole, once"
    for name in TASKS[1:]:
        e = encode_task(ts[name], {"toy": enc})
        assert e.encoders["toy"].test.shape == (10, 3)
    assert enc.calls == n_pools, "the other six tasks embed nothing"
    # Fig. 4's path (test rows only) hits the same entry, and the rows are the right ones
    t = ts[TASKS[3]]
    got = embed_rows(enc, list(t.test["id"]), list(t.test["input"]), t)
    assert enc.calls == n_pools
    np.testing.assert_allclose(got, ToyImage().embed(list(t.test["input"]), progress=False), rtol=1e-6)
    np.testing.assert_allclose(first.encoders["toy"].train,
                               ToyImage().embed(list(ts[TASKS[0]].train["input"]), progress=False), rtol=1e-6)


def test_embed_rows_refuses_rows_that_are_not_the_pools():
    t = get_task(TASKS[0], **SMALL)
    enc = ToyImage()
    ids, inputs = list(t.test["id"]), list(t.test["input"])
    with pytest.raises(DataError, match="differ from its shared pool"):
        embed_rows(enc, ids, [np.zeros_like(inputs[0])] + inputs[1:], t)
    with pytest.raises(DataError, match="not in its shared pool"):
        embed_rows(enc, ids[:1] + ["synthtest-960000-999999"], inputs[:2], t)
    assert enc.calls == 0


def test_recipe_errors_are_data_errors():
    with pytest.raises(DataError, match="n_test_per_class must be >= 1"):
        get_task(TASKS[0], **{**SMALL, "n_test_per_class": 0})
    with pytest.raises(DataError, match=r"pool_prevalence must lie in \(0, 0.5\]"):
        get_task(TASKS[0], **SMALL, pool_prevalence=0.6)
    with pytest.raises(DataError, match="findings of its shared pools"):
        S.synthcxr_task("edema", "synthcxr-edema", **SMALL)
    assert S.pool_size(100, 0.25) == 400 and S.pool_size(5, 0.3) == 17


def test_a_lower_pool_prevalence_makes_a_larger_pool_with_the_same_positives():
    t = get_task(TASKS[1], **SMALL, pool_prevalence=0.125)
    fam = _family(t.test["id"].iloc[0])
    assert len(t.shared_pools[fam]) == 8 * SMALL["n_test_per_class"]
    assert t.test["label"].value_counts().to_dict() == {0: 5, 1: 5}
    assert t.shared_pool_keys[fam] != get_task(TASKS[1], **SMALL).shared_pool_keys[fam]
