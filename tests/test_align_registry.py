"""The method registry of semalign.align and its batched fast path (issue 10).

A user adds a method with one call and it works in Translator and stitch_grid without editing
any other module. Equalities between fit_pairs and a Translator per cell are *same machine,
same bits*: both paths perform the same float operations in the same order.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semalign import align
from semalign.align import (
    SOURCE_SVD,
    Method,
    MethodRegistrationError,
    Share,
    Translator,
    UnknownMethodError,
    fit_pairs,
    register_method,
)
from semalign.errors import SemalignError
from semalign.stitching import aligned_methods, stitch_grid

from test_stitching import make_task

BUILTINS = ("naive", "affine", "linear", "l-ortho", "ortho", "ridge")  # ridge: GCV penalty, beyond the paper
LAMBDA = 2.0


@pytest.fixture
def registry():
    """Methods registered inside a test are removed after it, whatever happens."""
    before = align.methods()
    yield
    for name in align.methods():
        if name not in before:
            align.unregister_method(name)
    assert align.methods() == before


def ridge_state(x, y, *, shared, **_):
    """Ridge regression x R, R = (xᵀx + λI)⁻¹ xᵀy with a fixed λ, from the source's shared SVD
    (a user's method, registered as "ridge-2"; the built-in "ridge" chooses λ by GCV)."""
    s = shared.s
    return {"R": shared.vh.mT @ ((s / (s**2 + LAMBDA))[:, None] * (shared.u.mT @ shared.reduce(y)))}


@pytest.fixture
def ridge(registry):
    register_method("ridge-2", ridge_state, inverse="pinv", share=SOURCE_SVD)
    return "ridge-2"


def ref_ridge(xa, ya, x):
    """numpy float64 reference: standardise (ddof=1), ridge, de-normalise."""
    mx, sx, my, sy = xa.mean(0), xa.std(0, ddof=1), ya.mean(0), ya.std(0, ddof=1)
    xs, ys = (xa - mx) / sx, (ya - my) / sy
    r = np.linalg.solve(xs.T @ xs + LAMBDA * np.eye(xs.shape[1]), xs.T @ ys)
    return ((x - mx) / sx) @ r * sy + my


def test_methods_lists_builtins_in_order_and_follows_registrations(ridge):
    assert align.methods()[:len(BUILTINS)] == BUILTINS
    assert align.methods() == (*BUILTINS, "ridge-2")
    assert align.METHODS == align.methods() and "ridge-2" in align.METHODS and len(align.METHODS) == len(BUILTINS) + 1
    assert aligned_methods() == ("affine", "linear", "l-ortho", "ortho", "ridge", "ridge-2")
    xa = np.random.default_rng(5).normal(size=(20, 3))
    fitted = Translator("ridge-2").fit(xa, xa[:, :2])
    align.unregister_method("ridge-2")
    assert align.methods() == BUILTINS and "ridge-2" not in align.METHODS
    assert fitted.transform(xa).shape == (20, 2)  # a fitted translator holds its Method
    with pytest.raises(UnknownMethodError):
        Translator("ridge-2")


def test_registered_ridge_round_trips_in_translator(ridge):
    rng = np.random.default_rng(0)
    xa = rng.normal(size=(80, 6)) * [1, 2, 3, 0.5, 1, 4] + 3.0
    ya = np.hstack([xa @ rng.normal(size=(6, 6)), rng.normal(size=(80, 3))]) - 1.0  # d1=6 < d2=9
    x = rng.normal(size=(5, 6))
    t = Translator("ridge-2").fit(xa, ya)
    assert t.R_.shape == (6, 9) and t.method_.share is SOURCE_SVD
    y_hat = t.transform(x)
    np.testing.assert_allclose(y_hat, ref_ridge(xa, ya, x), atol=1e-10)
    np.testing.assert_allclose(t.inverse_transform(y_hat), x, atol=1e-9)  # pinv: exact when d1 <= d2
    # torch in, torch out
    out = t.transform(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor) and np.allclose(out.numpy(), y_hat)


def test_registered_ridge_appears_in_stitch_grid(ridge):
    task = make_task()
    grid = stitch_grid(task, n_anchors=[10, 40], runs=2, seed=1, progress=False, steps=5)
    pairs = len(task.encoders) * (len(task.encoders) - 1)
    rows = grid[grid.method == "ridge-2"]
    assert len(rows) == pairs * 2 * 2 and set(rows.n_anchors) == {10, 40} and set(rows.run) == {0, 1}
    assert rows.auroc.between(0, 1).all()
    # explicitly named, with baselines
    only = stitch_grid(task, ["naive", "ridge-2", "upper_bound"], [40], runs=1, progress=False)
    assert set(only.method) == {"naive", "ridge-2", "upper_bound"}
    # a ridge cell is what a Translator("ridge") per cell gives
    from semalign.stitching import auroc, decision_scores, fit_decoder

    perm = np.random.default_rng([0, 0]).permutation(task.pool_size)[:40]
    dec = fit_decoder(task.encoders["enc1"].train, task.y_train)
    tr = Translator("ridge-2").fit(task.encoders["enc0"].anchors[perm], task.encoders["enc1"].anchors[perm])
    expected = auroc(task.y_test, decision_scores(dec, tr.transform(task.encoders["enc0"].test)), dec.classes_)
    got = only.query("source == 'enc0' and target == 'enc1' and method == 'ridge-2'").auroc
    assert got.tolist() == [expected]


def test_unknown_methods_say_which_are_registered(ridge):
    for call in (lambda: Translator("procrustes"), lambda: align.get_method("procrustes"),
                 lambda: list(fit_pairs({"a": np.eye(3), "b": np.eye(3)}, ["procrustes"]))):
        with pytest.raises(UnknownMethodError, match=r"registered methods .*'ortho', 'ridge', 'ridge-2'.*got 'procrustes'") as err:
            call()
        assert isinstance(err.value, SemalignError) and isinstance(err.value, ValueError)
    with pytest.raises(UnknownMethodError, match=r"unknown methods \['procrustes'\].*'ridge-2'.*register_method"):
        stitch_grid(make_task(), methods=["procrustes"], progress=False)


def test_registration_errors(registry):
    register_method(Method("mine", ridge_state, share=SOURCE_SVD))
    with pytest.raises(MethodRegistrationError, match="already registered.*replace=True"):
        register_method("mine", ridge_state)
    replaced = register_method("mine", ridge_state, share=SOURCE_SVD, summary="v2", replace=True)
    assert align.get_method("mine") is replaced and align.methods()[-1] == "mine"
    for bad in (lambda: register_method("ortho", ridge_state),
                lambda: align.unregister_method("linear"),
                lambda: register_method("x", ridge_state, inverse="inverse"),
                lambda: register_method("", ridge_state),
                lambda: register_method("x", "not callable"),
                lambda: register_method("x", ridge_state, share="svd")):
        with pytest.raises(MethodRegistrationError):
            bad()
    with pytest.raises(UnknownMethodError):
        align.unregister_method("never-registered")
    assert align.methods() == (*BUILTINS, "mine")


def test_decorator_form_and_malformed_state(registry):
    @register_method("half", inverse="transpose")
    def half_state(x, y, **_):
        """Scaled identity (not orthogonal: only for this test)."""
        return {"R": 0.5 * torch.eye(x.shape[1], y.shape[1], dtype=x.dtype)}

    assert callable(half_state) and align.get_method("half").summary.startswith("Scaled identity")
    rng = np.random.default_rng(1)
    xa, ya = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
    assert np.allclose(Translator("half", std_scaling=False).fit(xa, ya).transform(xa), xa / 2)

    register_method("wrong-shape", lambda x, y, **_: {"R": torch.zeros(y.shape[1], x.shape[1] + 1)})
    t = Translator("wrong-shape")
    with pytest.raises(MethodRegistrationError, match=r"'wrong-shape'.*'R': \(4, 4\).*got \{'R': \(4, 5\)\}"):
        t.fit(xa, ya)
    assert not hasattr(t, "state_")  # a failed fit leaves the translator unfitted
    register_method("not-a-dict", lambda x, y, **_: torch.eye(x.shape[1], y.shape[1]))
    with pytest.raises(MethodRegistrationError, match=r"'not-a-dict'.*got Tensor"):
        Translator("not-a-dict").fit(xa, ya)


def test_custom_inverse(registry):
    scale = align.Inverse(prepare=lambda state: {"k": state["R"][0, 0]}, apply=lambda inv, y, d1: y[:, :d1] / inv["k"])
    register_method("times3", lambda x, y, **_: {"R": 3.0 * torch.eye(x.shape[1], y.shape[1], dtype=x.dtype)},
                    inverse=scale)
    rng = np.random.default_rng(2)
    xa, ya, x = rng.normal(size=(10, 3)), rng.normal(size=(10, 5)), rng.normal(size=(4, 3))
    t = Translator("times3").fit(xa, ya)
    np.testing.assert_allclose(t.inverse_transform(t.transform(x)), x, atol=1e-12)


def test_shared_state_computed_once_per_source_and_per_pair(registry):
    calls = {"source": 0, "pair": 0}

    def source(x, *, centred):
        calls["source"] += 1
        return x.mT @ x

    def pair(gram, y, *, centred):
        calls["pair"] += 1
        return gram.trace()

    counted = Share("counted", source, pair)
    for name in ("a-uses-share", "b-uses-share"):
        register_method(name, lambda x, y, *, shared, **_: {"R": shared * torch.eye(x.shape[1], y.shape[1], dtype=x.dtype)},
                        inverse="pinv", share=counted)
    rng = np.random.default_rng(3)
    anchors = {k: rng.normal(size=(12, d)) for k, d in (("p", 3), ("q", 4), ("r", 5))}
    cells = list(fit_pairs(anchors, ["a-uses-share", "ortho", "b-uses-share"]))
    assert [(c.source, c.target, c.method) for c in cells[:3]] == [
        ("p", "q", "a-uses-share"), ("p", "q", "ortho"), ("p", "q", "b-uses-share")]
    assert len(cells) == 6 * 3
    assert calls == {"source": 3, "pair": 6}  # not 12 and 12: once per source, once per pair
    # and stitch_grid: once per source and anchor draw
    calls.update(source=0, pair=0)
    task = make_task()
    stitch_grid(task, ["a-uses-share", "b-uses-share"], [10, 20], runs=2, progress=False, baselines=False)
    assert calls == {"source": 3 * 4, "pair": 6 * 4}


@pytest.mark.parametrize("std_scaling", [True, False])
def test_fit_pairs_equals_a_translator_per_cell(std_scaling):
    """Same machine, same bits: every fitted tensor and output equals a Translator's fit."""
    rng = np.random.default_rng(4)
    n = 30
    anchors = {"f32": rng.normal(size=(n, 7)).astype(np.float32), "f64": rng.normal(size=(n, 40)) * 3 + 1,
               "t32": torch.from_numpy(rng.normal(size=(n, 5)).astype(np.float32))}
    x_new = {k: (v.numpy() if isinstance(v, torch.Tensor) else v)[:4] for k, v in anchors.items()}
    kw = dict(std_scaling=std_scaling, seed=7, lr=1e-2, steps=15)
    cells = list(fit_pairs(anchors, BUILTINS, **kw))
    assert len(cells) == 6 * len(BUILTINS)
    for s, t, method, got in cells:
        ref = Translator(method, **kw).fit(anchors[s], anchors[t])
        assert got.dtype_ == ref.dtype_ and got.n_anchors_ == n and repr(got) == repr(ref)
        for attr in ("state_", "scaling_x_", "scaling_y_"):
            a, b = getattr(got, attr), getattr(ref, attr)
            assert (a is None) == (b is None) and (a is None or (a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)))
        assert np.array_equal(got.transform(x_new[s]), ref.transform(x_new[s]))
        y = ref.transform(x_new[s])
        assert np.array_equal(got.inverse_transform(y), ref.inverse_transform(y))


def test_fit_pairs_arguments_checked_at_the_call():
    good = {"a": np.ones((5, 2)) + np.arange(5)[:, None], "b": np.arange(15.0).reshape(5, 3) ** 2}
    with pytest.raises(align.ShapeError, match=r"same number of rows N.*anchors\['a'\] \(5, 2\).*anchors\['c'\] \(4, 2\)"):
        fit_pairs({**good, "c": np.ones((4, 2))}, ["ortho"])
    with pytest.raises(align.ShapeError, match=r"pairs name encoders \['z'\]"):
        fit_pairs(good, ["ortho"], pairs=[("a", "z")])
    with pytest.raises(ValueError, match="steps"):
        fit_pairs(good, ["affine"], steps=-1)
    one = list(fit_pairs(good, ["linear"], pairs=[("b", "a")]))
    assert [(c.source, c.target) for c in one] == [("b", "a")] and one[0].translator.dim_x_ == 3


def test_registered_ridge_reaches_fig3_and_table1_without_other_edits(ridge):
    """The issue's promise: one registration, and the method is in the grid, drawn in Fig. 3 (with
    a colour of its own) and shown in Table 1 — no other module edited."""
    import json

    from semalign.report import fig3, table1
    from semalign.report.style import METHOD_COLOURS, method_palette

    task = make_task()
    grid = fig3.compute(task, ["ortho", "ridge-2"], [10, 40], runs=1)
    spec = json.dumps(fig3.chart(grid).to_dict())
    assert '"ridge-2"' in spec
    names, colours = method_palette(grid.method)
    assert "ridge-2" in names and colours[names.index("ridge-2")] not in METHOD_COLOURS.values()
    t1 = table1.aggregate(grid.assign(source_domain="general", target_domain="general"), method="ridge-2",
                          modalities={task.name: "text"})
    assert not t1.empty and t1.notna().any().any()
