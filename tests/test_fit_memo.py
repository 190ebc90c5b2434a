"""The fit memo of align.fit_pairs (tasks sharing an anchor pool fit each map once) and the
align thread count setting."""

import numpy as np
import pytest
import torch

from semalign import align
from semalign.align import fit_pairs


@pytest.fixture(autouse=True)
def fresh_memo():
    align.clear_fit_memo()
    yield
    align.clear_fit_memo()


def _anchors(seed=0, n=40):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(n, 12)).astype(np.float32), "b": rng.normal(size=(n, 9)).astype(np.float32)}


def _out(cells, x):
    return {(s, t, m): tr.transform(x[s]) for s, t, m, tr in cells}


def test_same_anchors_again_are_not_refitted_and_give_the_same_maps():
    anchors = _anchors()
    x = {k: v[:5] for k, v in anchors.items()}
    first = list(fit_pairs(anchors, ["affine", "ortho", "linear"], steps=20))
    misses = align._FIT_MEMO.misses
    assert align._FIT_MEMO.hits == 0 and misses == 6
    # a copy of the same values (another task's embedding of the same pool) hits
    again = list(fit_pairs({k: v.copy() for k, v in anchors.items()}, ["affine", "ortho", "linear"], steps=20))
    assert align._FIT_MEMO.hits == 6 and align._FIT_MEMO.misses == misses
    want, got = _out(first, x), _out(again, x)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    # the hit is its own object: refitting it leaves the memo's translator alone
    s, t, m, tr = again[0]
    tr.fit(anchors[t], anchors[s])
    third = list(fit_pairs(anchors, [m], [(s, t)], steps=20))
    np.testing.assert_array_equal(third[0].translator.transform(x[s]), want[(s, t, m)])


@pytest.mark.parametrize("change", ["values", "seed", "steps", "std_scaling"])
def test_anything_that_changes_the_fit_misses(change):
    anchors = _anchors()
    kw = dict(steps=20, seed=0, std_scaling=True)
    list(fit_pairs(anchors, ["affine"], **kw))
    if change == "values":
        anchors = {k: v.copy() for k, v in anchors.items()}
        anchors["a"][3, 2] += 1e-3
    else:
        kw[change] = {"seed": 1, "steps": 21, "std_scaling": False}[change]
    before = align._FIT_MEMO.misses
    list(fit_pairs(anchors, ["affine"], **kw))
    assert align._FIT_MEMO.misses == before + 2 and align._FIT_MEMO.hits == 0


def test_registered_methods_are_never_memoised():
    def mine(x, y, *, centred, seed, lr, steps, shared):
        return {"R": torch.zeros(x.shape[1], y.shape[1], dtype=x.dtype)}

    align.register_method("memo-test-zero", mine, inverse="pinv")
    try:
        anchors = _anchors()
        list(fit_pairs(anchors, ["memo-test-zero"]))
        list(fit_pairs(anchors, ["memo-test-zero"]))
        assert align._FIT_MEMO.hits == 0 and not align._FIT_MEMO.entries
    finally:
        align.unregister_method("memo-test-zero")


def test_the_memo_stays_within_its_budget(monkeypatch):
    monkeypatch.setenv("SEMALIGN_FIT_MEMO_MB", "0")
    list(fit_pairs(_anchors(), ["ortho"]))
    assert not align._FIT_MEMO.entries and align._FIT_MEMO.bytes == 0
    one = 12 * 9 * 4 + 2 * (12 + 9) * 4   # R plus the two scalings' mean and std, float32
    monkeypatch.setenv("SEMALIGN_FIT_MEMO_MB", str(1.5 * one / 2**20))
    list(fit_pairs(_anchors(), ["ortho"], [("a", "b")]))
    list(fit_pairs(_anchors(1), ["ortho"], [("a", "b")]))
    assert len(align._FIT_MEMO.entries) == 1 and align._FIT_MEMO.bytes <= 1.5 * one
    monkeypatch.setenv("SEMALIGN_FIT_MEMO_MB", "lots")
    with pytest.raises(ValueError, match="SEMALIGN_FIT_MEMO_MB"):
        list(fit_pairs(_anchors(2), ["ortho"]))


def test_align_threads_default_and_a_bad_setting(monkeypatch):
    x = torch.zeros(2, 2)
    monkeypatch.delenv("SEMALIGN_ALIGN_THREADS", raising=False)
    assert align.align_threads(x).threads == torch.get_num_threads()
    monkeypatch.setenv("SEMALIGN_ALIGN_THREADS", "1")
    assert align.align_threads(x).threads == 1
    monkeypatch.setenv("SEMALIGN_ALIGN_THREADS", "two")
    with pytest.raises(ValueError, match="whole number"):
        align.align_threads(x)


def test_another_thread_count_is_another_fit(monkeypatch):
    if torch.get_num_threads() < 2:
        pytest.skip("one torch thread: no other thread count to compare")
    anchors = _anchors()
    monkeypatch.setenv("SEMALIGN_ALIGN_THREADS", "1")
    list(fit_pairs(anchors, ["ortho"]))
    monkeypatch.setenv("SEMALIGN_ALIGN_THREADS", "2")
    list(fit_pairs(anchors, ["ortho"]))
    assert align._FIT_MEMO.hits == 0 and align._FIT_MEMO.misses == 4
