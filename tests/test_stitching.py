"""semalign.stitching on synthetic encoders whose relation is known."""

from __future__ import annotations

import numpy as np
import pytest

from semalign.align import Translator
from semalign.stitching import (
    BASELINES,
    COLUMNS,
    Embeddings,
    EncodedTask,
    aligned_methods,
    auroc,
    decision_scores,
    fit_decoder,
    stitch_grid,
)

ALIGN_METHODS = ("affine", "linear", "l-ortho", "ortho", "ridge")


def make_task(k=3, dims=(10, 14, 8), n_train=240, n_test=150, pool=120, seed=0, noise=0.05):
    """Encoders = random rotations/projections of one latent z that carries the class."""
    rng = np.random.default_rng(seed)
    d_latent = 8
    centers = rng.normal(size=(k, d_latent)) * 1.2

    def sample(n):
        y = rng.integers(0, k, n)
        return centers[y] + rng.normal(size=(n, d_latent)), y

    z_tr, y_tr = sample(n_train)
    z_te, y_te = sample(n_test)
    z_an, _ = sample(pool)
    encoders, domains = {}, {}
    for i, d in enumerate(dims):
        m = rng.normal(size=(d_latent, d))
        off = rng.normal(size=d) * 3
        enc = lambda z: (z @ m + off + noise * rng.normal(size=(len(z), d))).astype(np.float32)  # noqa: E731
        name = f"enc{i}"
        encoders[name] = Embeddings(enc(z_tr), enc(z_te), enc(z_an))
        domains[name] = "general" if i == 0 else ("medical" if i == 1 else "medical (stand-in)")
    classes = [f"c{j}" for j in range(k)]
    return EncodedTask(
        name="toy", modality="text", encoders=encoders, domains=domains,
        y_train=np.array(classes)[y_tr], y_test=np.array(classes)[y_te], classes=classes,
    )  # fmt: skip


@pytest.fixture(scope="module")
def task():
    return make_task()


@pytest.fixture(scope="module")
def grid(task):
    return stitch_grid(task, n_anchors=[5, 40], runs=2, seed=1, progress=False, steps=30)


def test_default_methods_are_the_registered_ones_without_baselines():
    assert aligned_methods() == ALIGN_METHODS  # built-ins only here; registrations: test_align_registry
    assert BASELINES == ("naive", "upper_bound")


def test_columns_and_rows(task, grid):
    assert list(grid.columns) == list(COLUMNS)
    assert list(dict.fromkeys(grid.method)) == ["upper_bound", "naive", *ALIGN_METHODS]
    n_enc = len(task.encoders)
    pairs = n_enc * (n_enc - 1)
    assert len(grid) == n_enc + pairs + len(ALIGN_METHODS) * 2 * 2 * pairs
    ub = grid[grid.method == "upper_bound"]
    assert (ub.source == ub.target).all() and (ub.n_anchors == 0).all() and len(ub) == n_enc
    nv = grid[grid.method == "naive"]
    assert (nv.source != nv.target).all() and (nv.run == 0).all() and (nv.n_anchors == 0).all()
    aligned = grid[grid.method.isin(ALIGN_METHODS)]
    assert (aligned.source != aligned.target).all()
    assert set(aligned.n_anchors) == {5, 40} and set(aligned.run) == {0, 1}
    assert grid.auroc.between(0, 1).all()
    assert grid.attrs["modalities"] == {"toy": "text"}
    row = grid[(grid.source == "enc1") & (grid.target == "enc2")].iloc[0]
    assert row.source_domain == "medical" and row.target_domain == "medical (stand-in)"


def test_cells_equal_a_translator_per_cell(task, grid):
    """The shared-SVD / shared-Gram fast path gives what Translator.fit/transform gives."""
    perm = np.random.default_rng([1, 1]).permutation(task.pool_size)[:40]
    for s, t in [("enc0", "enc1"), ("enc1", "enc2"), ("enc2", "enc0")]:
        dec = fit_decoder(task.encoders[t].train, task.y_train)
        for method in ALIGN_METHODS:
            tr = Translator(method, seed=1 + 1, steps=30).fit(
                task.encoders[s].anchors[perm], task.encoders[t].anchors[perm]
            )
            expected = auroc(task.y_test, decision_scores(dec, tr.transform(task.encoders[s].test)), dec.classes_)
            got = grid.query("source == @s and target == @t and method == @method and n_anchors == 40 and run == 1")
            assert len(got) == 1
            assert got.auroc.iloc[0] == pytest.approx(expected, abs=2e-3), method


def test_alignment_beats_naive_and_nears_upper_bound(grid):
    ub = grid[grid.method == "upper_bound"].auroc.mean()
    naive = grid[grid.method == "naive"].auroc.mean()
    for method in ("linear", "ortho", "l-ortho"):
        got = grid[(grid.method == method) & (grid.n_anchors == 40)].auroc.mean()
        assert got > naive + 0.1, (method, got, naive)
        assert got > ub - 0.1, (method, got, ub)


def test_seeded_and_runs_differ(task, grid):
    again = stitch_grid(task, n_anchors=[5, 40], runs=2, seed=1, progress=False, steps=30)
    assert again.equals(grid)
    a = grid[(grid.method == "ortho") & (grid.n_anchors == 5)]
    assert not np.allclose(a[a.run == 0].auroc.values, a[a.run == 1].auroc.values)


def test_methods_subset_and_baselines_off(task):
    g = stitch_grid(task, methods=["ortho"], n_anchors=[10], runs=1, progress=False, baselines=False)
    assert set(g.method) == {"ortho"} and len(g) == 6
    g = stitch_grid(task, methods=["naive", "upper_bound"], n_anchors=[10], runs=1, progress=False, baselines=False)
    assert set(g.method) == {"naive", "upper_bound"}


def test_grid_errors(task):
    with pytest.raises(ValueError, match="asked for 3000 anchors but the pool holds 120: lower n_anchors or enlarge the pool"):
        stitch_grid(task, n_anchors=[10, 3000], progress=False)
    with pytest.raises(ValueError, match=r"unknown methods \['procrustes'\]: choose from the registered"):
        stitch_grid(task, methods=["procrustes"], progress=False)
    with pytest.raises(ValueError, match=">= 2"):
        stitch_grid(task, n_anchors=[1], progress=False)


def test_auroc_by_hand():
    y = np.array(["a", "b", "a", "b"])
    assert auroc(y, np.array([0.1, 0.9, 0.2, 0.3]), ["a", "b"]) == 1.0
    assert auroc(y, np.array([0.9, 0.1, 0.2, 0.3]), ["a", "b"]) == 0.25
    y3 = np.array([0, 1, 2, 0, 1, 2])
    s = np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3], [0, 1, 0], [1, 0, 0], [2, 0, 1]], float)
    # class 0: positives {0,3}: scores 3,0 vs negatives 0,0,1,2 -> (4 + 0.5*0 + ... ) by hand
    # pairs (pos, neg): 3 beats all 4; 0 ties 0,0 (0.5 each) and loses to 1,2 -> (4 + 1) / 8
    c0 = (4 + 1) / 8
    # class 1: positives {1,4}: scores 3,0; negatives 0,0,1,0 -> 3 beats 4; 0 ties three 0s -> (4 + 1.5) / 8
    c1 = (4 + 1.5) / 8
    # class 2: positives {2,5}: scores 3,1; negatives 0,0,0,0 -> all 8 won
    c2 = 1.0
    assert auroc(y3, s, [0, 1, 2]) == pytest.approx((c0 + c1 + c2) / 3)


def test_default_decoder_is_the_papers_linear_kernel_svm(task):
    from sklearn.svm import SVC

    emb = next(iter(task.encoders.values()))
    dec = fit_decoder(emb.train, task.y_train)
    assert isinstance(dec, SVC) and dec.kernel == "linear", "the paper: an SVM with a linear kernel"
    scores = decision_scores(dec, emb.test)
    assert scores.shape == (len(task.y_test), len(task.classes)), "one-vs-rest-shaped scores for AUROC"


def test_decoder_options(task):
    x, y = task.encoders["enc0"].train, task.y_train
    for kw in ({"decoder": "svc"}, {"scale": True}):
        dec = fit_decoder(x, y, **kw)
        s = decision_scores(dec, task.encoders["enc0"].test)
        assert s.shape == (len(task.y_test), 3)
        assert auroc(task.y_test, s, dec.classes_) > 0.7
    with pytest.raises(ValueError, match="decoder must be"):
        fit_decoder(x, y, decoder="mlp")


def test_binary_task():
    t = make_task(k=2)
    g = stitch_grid(t, methods=["ortho"], n_anchors=[30], runs=1, progress=False)
    assert g.auroc.between(0, 1).all() and len(g) == 3 + 6 + 6


def test_validation():
    e = Embeddings(np.zeros((4, 3)), np.zeros((2, 3)), np.zeros((5, 3)))
    assert e.dim == 3
    with pytest.raises(ValueError, match="share one dimension"):
        Embeddings(np.zeros((4, 3)), np.zeros((2, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="2-D"):
        Embeddings(np.zeros(4), np.zeros((2, 4)), np.zeros((5, 3)))
    f = Embeddings(np.zeros((4, 2)), np.zeros((2, 2)), np.zeros((6, 2)))
    kw = dict(name="t", modality="text", y_train=[0, 1, 0, 1], y_test=[0, 1], classes=[0, 1])
    with pytest.raises(ValueError, match="no domain"):
        EncodedTask(encoders={"a": e}, domains={}, **kw)
    with pytest.raises(ValueError, match="domains must be one of"):
        EncodedTask(encoders={"a": e}, domains={"a": "clinical"}, **kw)
    with pytest.raises(ValueError, match="anchor pools"):
        EncodedTask(encoders={"a": e, "b": f}, domains={"a": "general", "b": "general"}, **kw)
    with pytest.raises(ValueError, match="y_train has 3 labels"):
        EncodedTask(encoders={"a": e}, domains={"a": "general"}, **{**kw, "y_train": [0, 1, 0]})


# ------------------------------------------------------------------ anchors=, pairs=, decoders=
def test_anchor_hook_none_is_the_papers_draw(task, grid):
    """anchors=None keeps the seeded draw; the "random" strategy is that very draw."""
    from semalign import anchors

    kw = dict(n_anchors=[5, 40], runs=2, seed=1, progress=False, steps=30)
    assert stitch_grid(task, anchors=None, **kw).equals(grid)
    assert stitch_grid(task, anchors="random", **kw).equals(grid)
    assert stitch_grid(task, anchors=anchors.random, **kw).equals(grid)


def test_anchor_hook_chooses_in_each_source_space(task):
    """A callable sees the SOURCE's pool; every target of that source is fitted on its rows."""
    seen = []

    def by_first_feature(pool, n, *, seed, run, labels):
        seen.append((pool.shape[1], n, seed, run, labels))
        return np.argsort(pool[:, 0], kind="stable")[:n]

    g = stitch_grid(task, ["ortho"], [12], runs=2, seed=3, progress=False, baselines=False, anchors=by_first_feature)
    dims = {k: e.dim for k, e in task.encoders.items()}
    assert sorted(seen) == sorted((d, 12, 3, r, None) for d in dims.values() for r in range(2))
    for s, t in [("enc0", "enc1"), ("enc2", "enc0")]:
        rows = by_first_feature(task.encoders[s].anchors, 12, seed=3, run=1, labels=None)
        tr = Translator("ortho", seed=3 + 1).fit(task.encoders[s].anchors[rows], task.encoders[t].anchors[rows])
        dec = fit_decoder(task.encoders[t].train, task.y_train)
        expected = auroc(task.y_test, decision_scores(dec, tr.transform(task.encoders[s].test)), dec.classes_)
        got = g.query("source == @s and target == @t and run == 1").auroc
        assert got.tolist() == [pytest.approx(expected, abs=1e-12)]


def _isometric_task(seed=0, d=6, pool=60):
    """enc1 = enc0 · Q exactly (Q orthogonal), so ortho without scaling recovers Q from any
    d or more anchors in general position, and the stitched AUROC is the target's upper bound."""
    t = make_task(dims=(d, d), pool=pool, seed=seed, noise=0.0)
    q, _ = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(d, d)))
    e0 = t.encoders["enc0"]
    t.encoders["enc1"] = Embeddings(e0.train @ q, e0.test @ q, e0.anchors @ q)
    # labels of the pool rows: a class-stratified draw needs them
    t.y_anchors = np.random.default_rng(seed).choice(t.classes, size=pool)
    return t


@pytest.mark.parametrize("strategy", ["random", "kmeans", "farthest", "stratified"])
def test_every_strategy_recovers_a_hidden_isometry(strategy):
    t = _isometric_task()
    g = stitch_grid(t, ["ortho"], [10, 30], runs=2, progress=False, std_scaling=False, anchors=strategy)
    ub = g[g.method == "upper_bound"].set_index("target").auroc
    st = g[g.method == "ortho"]
    assert len(st) == 2 * 2 * 2
    np.testing.assert_allclose(st.auroc.to_numpy(), ub[st.target].to_numpy(), atol=1e-9)


def test_anchor_hook_errors():
    from semalign.anchors import AnchorError

    t = make_task()
    with pytest.raises(AnchorError, match="needs labels="):  # no y_anchors: stratified refuses, never fakes
        stitch_grid(t, ["ortho"], [10], runs=1, progress=False, anchors="stratified")
    with pytest.raises(AnchorError, match="unknown anchor strategy 'coreset'"):
        stitch_grid(t, ["ortho"], [10], runs=1, progress=False, anchors="coreset")
    for bad in (lambda p, n, **_: np.zeros(n, int), lambda p, n, **_: np.arange(n) + len(p) - 1,
                lambda p, n, **_: np.arange(n - 1), lambda p, n, **_: np.arange(n) * 1.0):
        with pytest.raises(AnchorError, match=r"must return 10 distinct integer row indices in \[0, 120\)"):
            stitch_grid(t, ["ortho"], [10], runs=1, progress=False, anchors=bad)
    with pytest.raises(ValueError, match="y_anchors must hold one label per anchor-pool row"):
        EncodedTask(name="t", modality="text", encoders=t.encoders, domains=t.domains, y_train=t.y_train,
                    y_test=t.y_test, classes=t.classes, y_anchors=np.zeros(3))


def test_pairs_and_reused_decoders(task, grid):
    g = stitch_grid(task, ["ortho"], [40], runs=1, seed=1, progress=False, pairs=[("enc0", "enc2"), ("enc1", "enc2")])
    assert set(zip(g.source, g.target)) == {("enc0", "enc2"), ("enc1", "enc2"), ("enc0", "enc0"), ("enc1", "enc1"),
                                             ("enc2", "enc2")}
    assert set(g[g.method == "naive"].source) == {"enc0", "enc1"}
    # the same cells as the full grid
    full = grid.query("method == 'ortho' and n_anchors == 40 and run == 0").set_index(["source", "target"]).auroc
    part = g[g.method == "ortho"].set_index(["source", "target"]).auroc
    np.testing.assert_array_equal(part.to_numpy(), full[part.index].to_numpy())
    decoders = {}
    kw = dict(n_anchors=[5, 40], runs=2, seed=1, progress=False, steps=30)
    assert stitch_grid(task, decoders=decoders, **kw).equals(grid)
    assert set(decoders) == set(task.encoders)
    assert stitch_grid(task, decoders=decoders, **kw).equals(grid)  # reused
    for bad in ([("enc0", "nope")], [("enc1", "enc1")], []):
        with pytest.raises(ValueError, match="pairs must name distinct encoders"):
            stitch_grid(task, ["ortho"], [10], progress=False, pairs=bad)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_decision_scores_are_the_decoders_own(n_classes):
    """The primal route (x·wᵀ + b, ovo → ovr) is sklearn's decision_function up to rounding."""
    rng = np.random.default_rng(n_classes)
    x = rng.normal(size=(120, 16)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), 120 // n_classes + 1)[:120]
    x[:, 0] += y  # learnable, with support vectors of every class
    test = rng.normal(size=(40, 16)).astype(np.float32) * 2
    dec = fit_decoder(x, y)
    want = dec.decision_function(test)
    got = decision_scores(dec, test)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert not np.array_equal(decision_scores(dec, test + 1), got)
    # refitted on other labels: the kept weights are recomputed, not reused
    dec.fit(x, (y + 1) % n_classes)
    np.testing.assert_allclose(decision_scores(dec, test), dec.decision_function(test), rtol=1e-9, atol=1e-9)
    # other decoders are scored by their own decision_function
    for other in (fit_decoder(x, y, scale=True), fit_decoder(x, y, decoder="linearsvc")):
        np.testing.assert_array_equal(decision_scores(other, test), other.decision_function(test))
