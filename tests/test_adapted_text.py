"""The domain-adapted text stand-in (kind ``adapted-text``): contrastive fine-tuning on tiny
BERT models built here, the cached save_pretrained folder, and what the fit may consume."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
T = pytest.importorskip("transformers")

from semalign.encoders import encoder_specs, get_encoder  # noqa: E402
from semalign.encoders import adapted_text as A  # noqa: E402
from semalign.encoders import standins as S  # noqa: E402
from semalign.encoders.hf import pool  # noqa: E402

NAME = "standin-text-minilm-openi"
TOPICS = ("heart", "lungs", "spine", "pleural", "hilar", "bony", "aorta", "diaphragm")
WORDS = (*TOPICS, "the", "is", "are", "enlarged", "clear", "stable", "seen", "mild", "no", "report", "findings",
         "impression", "of", "with", "and", ".", ":")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on one thread: on a shared machine, thread hand-offs cost more than the maths."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny(tmp_path):
    """A tiny random BERT (2 layers, 32 dims) + WordPiece tokenizer saved with save_pretrained."""
    d = tmp_path / "tiny-bert"
    d.mkdir()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (d / "vocab.txt").write_text("\n".join(special + list(WORDS)) + "\n")
    torch.manual_seed(0)
    T.BertModel(T.BertConfig(vocab_size=len(special) + len(WORDS), hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)).save_pretrained(d)
    T.BertTokenizer(str(d / "vocab.txt")).save_pretrained(d)
    return d


def _pairs(n: int = 24):
    """Findings and impressions that share one topic word: a contrastive fit can learn them."""
    f = [f"the {TOPICS[k % 8]} is {('enlarged', 'clear', 'stable')[k % 3]} with {TOPICS[(k * 3 + 1) % 8]} seen ."
         for k in range(n)]
    im = [f"{TOPICS[k % 8]} {('mild', 'no', 'stable')[k % 3]} ." for k in range(n)]
    return f, im, [f"P{k}" for k in range(n)]


def _recipe(base, **kw):
    return A.Recipe(**{"base": str(base), "steps": 4, "batch": 8, "max_length": 32, "lr": 1e-3,
                       "frozen_layers": 0, **kw})


def _spec_recipe(base, **kw):
    return {**encoder_specs()[NAME]["recipe"], **_recipe(base, **kw).params()}


# --------------------------------------------------------------------------------------------
# registry entry and recipe
# --------------------------------------------------------------------------------------------
def test_registry_entry_is_a_stand_in_with_its_recipe():
    s = encoder_specs()[NAME]
    assert s["domain"] == "medical (stand-in)" and s["modality"] == "text" and s["dim"] == 384
    assert s["offline"] is True and s["module"] == "semalign.encoders.adapted_text"
    assert s["description"].startswith("Stand-in (not a real medical model)")
    assert {"base", "data", "objective", "steps", "seed", "batch", "max_length", "lr"} <= set(s["recipe"])
    r = A.Recipe.from_mapping(s["recipe"])  # every shown number is the one the fit uses
    assert {k: s["recipe"][k] for k in r.params()} == r.params() and r.base == "minilm-l6"


@pytest.mark.parametrize("bad, msg", [({"step": 3}, "unknown key"), ({"steps": 2.5}, "steps must be a whole number"),
                                      ({"batch": 1}, "batch=1 is out of range"), ({"lr": "fast"}, "lr must be a number"),
                                      ({"warmup": 1.0}, "warmup"), ({"base": ""}, "base must be a non-empty string")])
def test_a_bad_recipe_is_one_clear_error(bad, msg):
    with pytest.raises(A.EncoderError, match=msg):
        A.Recipe.from_mapping(bad)


def test_contrastive_loss_has_the_infonce_value_and_masks_duplicates():
    n, t = 4, 0.5
    a = torch.eye(n)
    none = torch.zeros(n, n, dtype=torch.bool)
    want = -math.log(math.exp(1 / t) / (math.exp(1 / t) + n - 1))
    assert A.contrastive_loss(a, a, none, t).item() == pytest.approx(want, rel=1e-6)
    # rows 0 and 1 share a text: neither is the other's negative (rows 2, 3 keep n - 1 negatives)
    same = A._duplicates(["x", "x", "y", "z"], ["p", "q", "r", "s"])
    assert same[0, 1] and same[1, 0] and same.sum() == n + 2
    got = A.contrastive_loss(a, a, same, t).item()
    two = -math.log(math.exp(1 / t) / (math.exp(1 / t) + n - 2))
    assert got == pytest.approx((2 * two + 2 * want) / 4, rel=1e-6)


# --------------------------------------------------------------------------------------------
# fitting on a tiny model
# --------------------------------------------------------------------------------------------
def test_loss_decreases_and_the_saved_folder_embeds_as_the_fitted_model(tiny, tmp_path):
    f, im, ids = _pairs()
    model, tok, losses = A.train_contrastive(tiny, f, im, _recipe(tiny, steps=40, warmup=0.1), progress=False)
    assert len(losses) == 40 and np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    folder = tmp_path / "fitted"
    A.save_fitted(model, tok, folder, base=tiny, key={"k": 1}, fit_ids=ids, losses=losses)
    assert A.read_manifest(folder, {"k": 1})["fit_ids"] == ids
    assert not list(tmp_path.glob(".fitted.tmp-*"))  # the temporary folder was renamed into place
    # the folder loads through the hf kind like any local model folder, and embeds as the model did
    enc = get_encoder(str(folder), device="cpu", pooling="mean", normalize=True)
    texts = [f[0], im[3], "the heart is clear ."]
    with torch.inference_mode():
        x = tok(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
        want = torch.nn.functional.normalize(pool(model(**x), x["attention_mask"], "mean"), dim=-1).numpy()
    np.testing.assert_allclose(enc.embed(texts, progress=False), want, atol=1e-5)
    # and it moved: the base embeds otherwise
    base = get_encoder(str(tiny), device="cpu", pooling="mean", normalize=True)
    assert not np.allclose(base.embed(texts, progress=False), want, atol=1e-3)


def test_frozen_layers_stay_as_the_base(tiny):
    f, im, _ = _pairs()
    model, _, _ = A.train_contrastive(tiny, f, im, _recipe(tiny, frozen_layers=1), progress=False)
    base = T.AutoModel.from_pretrained(tiny)
    b, m = base.state_dict(), model.state_dict()
    changed = {k for k in b if not torch.equal(b[k], m[k])}
    assert changed and all(k.startswith("encoder.layer.1.") for k in changed)
    with pytest.raises(A.EncoderError, match="frozen_layers=3, but the base has 2 layers"):
        A.train_contrastive(tiny, f, im, _recipe(tiny, frozen_layers=3), progress=False)


def test_fit_is_cached_by_its_recipe_and_a_damaged_folder_is_refitted(tiny, monkeypatch):
    calls = []
    real = A.train_contrastive
    monkeypatch.setattr(A, "train_contrastive", lambda *a, **k: calls.append(1) or real(*a, **k))
    pairs = _pairs()
    r = _recipe(tiny)
    fit = A.fit_adapted_text(r, pairs=pairs, progress=False)
    assert fit.folder.parent == A.standins.fits_dir() and fit.folder.name.startswith("adapted-text-")
    assert fit.fit_ids == set(pairs[2]) and len(fit.losses) == r.steps
    assert A.fit_adapted_text(r, pairs=pairs).folder == fit.folder and len(calls) == 1  # served from the cache
    # a recipe change, or other pairs, is another fit in another folder
    other = A.fit_adapted_text(_recipe(tiny, seed=1), pairs=pairs)
    fewer = A.fit_adapted_text(r, pairs=tuple(x[:-1] for x in pairs))
    assert len({fit.folder, other.folder, fewer.folder}) == 3 and len(calls) == 3
    # damaged weights, a missing manifest (a partial folder) or a stale temporary folder: refitted
    w = fit.folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-16] + b"\0" * 16)
    assert A.read_manifest(fit.folder) is None
    again = A.fit_adapted_text(r, pairs=pairs)
    assert len(calls) == 4 and A.read_manifest(again.folder) is not None
    (fit.folder / A.MANIFEST).unlink()
    stale = fit.folder.parent / f".{fit.folder.name}.tmp-1-dead"
    stale.mkdir()
    A.fit_adapted_text(r, pairs=pairs)
    assert len(calls) == 5 and not stale.exists() and A.read_manifest(fit.folder) is not None


# --------------------------------------------------------------------------------------------
# what the fit consumes: a fake Open-i archive whose texts name their report
# --------------------------------------------------------------------------------------------
_ID = re.compile(r"\bCXR\d+\b")
_MESH = {"Normal": "normal", "Cardiomegaly": "Cardiomegaly/mild", "Opacity": "Opacity/lung/base",
         "Granuloma": "Calcified Granuloma", "Spine degenerative": "Spine/degenerative", None: "Atelectasis/left"}


@pytest.fixture
def fake_openi(monkeypatch):
    """openi.parse_reports -> 800 fake reports (120 per class + 200 unlabelled). Every 10th
    report's impression only names a class (empty once stripped), every 13th has no findings."""
    import pandas as pd

    from semalign.data import openi

    labels = [c for c in openi.CLASSES for _ in range(120)] + [None] * 200
    rows = []
    for k, c in enumerate(labels):
        i = f"CXR{k + 1}"
        findings = "" if k % 13 == 0 else f"Report {i}: the {TOPICS[k % 8]} is clear. Heart size is normal."
        imp = "No cardiomegaly." if k % 10 == 0 else f"Findings {i}: {TOPICS[(k + 3) % 8]} stable."
        rows.append({"id": i, "findings": findings, "impression": imp, "mesh_major": [_MESH[c]], "image_ids": []})
    df = pd.DataFrame(rows)
    monkeypatch.setattr(openi, "parse_reports", lambda *a, **k: df.copy())
    return df


@pytest.fixture
def spy(monkeypatch):
    """The report ids named in every text a fit trains on."""
    seen: set[str] = set()
    real = A.train_contrastive

    def record(base, findings, impressions, *a, **k):
        for t in (*findings, *impressions):
            seen.update(_ID.findall(t))
        return real(base, findings, impressions, *a, **k)

    monkeypatch.setattr(A, "train_contrastive", record)
    return seen


def test_report_pairs_are_the_training_pool_with_both_sections(fake_openi):
    from semalign.data import get_task

    task = get_task("openi-5class", n_test_per_class=40)
    f, im, ids = A.report_pairs(pool_params={"n_test_per_class": 40})
    pool = set(task.anchors["id"]) - set(task.test["id"])
    skipped = {i for i in pool if int(i[3:]) % 10 == 1 or int(i[3:]) % 13 == 1}  # k = number - 1
    assert set(ids) == pool - skipped and skipped and not set(ids) & set(task.test["id"])
    assert all("normal" not in t.lower() for t in f) and all(_ID.findall(t) == [i] for t, i in zip(f, ids))
    assert [int(i[3:]) for i in ids] == sorted(int(i[3:]) for i in ids)
    with pytest.raises(A.EncoderError, match="unknown openi-5class recipe parameter"):
        A.report_pairs(pool_params={"n_tests": 3})


def test_stand_in_fits_on_the_training_pool_and_is_refitted_or_refused_on_leakage(fake_openi, spy, tiny):
    from semalign.data import get_task

    small = {"n_test_per_class": 40}
    kw = dict(device="cpu", max_length=32, dim=32, recipe=_spec_recipe(tiny), pool_params=small)
    enc = get_encoder(NAME, **kw)
    task = get_task("openi-5class", **small)
    test = set(task.test["id"])
    assert spy and not spy & test and spy == enc.fit_ids == set(A.report_pairs(pool_params=small)[2])
    S.check_disjoint(enc, task.test["id"])
    # another recipe's test reports are in this pool: refused with the clear error ...
    other = get_task("openi-5class", seed=1, **small)
    assert enc.fit_ids & set(other.test["id"])
    with pytest.raises(S.FitOverlapError, match=rf"{NAME} .*fitted on \d+ of the 200 test ids.*for_task"):
        S.check_disjoint(enc, other.test["id"])
    # ... and for_task refits it on that task's own pool, which check_disjoint then accepts
    spy.clear()
    fixed = S.for_task({NAME: enc}, other)[NAME]
    assert isinstance(fixed, A.AdaptedTextEncoder) and fixed.pool_params["seed"] == 1
    assert spy and not spy & set(other.test["id"]) and fixed.fit_ids == spy
    S.check_disjoint(fixed, other.test["id"])
    assert fixed.fingerprint()["fit"] != enc.fingerprint()["fit"]
    assert S.for_task({NAME: fixed}, other)[NAME] is fixed  # nothing to refit


def test_encoder_fingerprint_follows_the_recipe(fake_openi, tiny):
    kw = dict(device="cpu", max_length=32, dim=32)
    a = get_encoder(NAME, recipe=_spec_recipe(tiny), **kw)
    b = get_encoder(NAME, recipe=_spec_recipe(tiny, seed=1), **kw)
    assert isinstance(a, A.AdaptedTextEncoder) and a.domain == "medical (stand-in)" and a.dim == 32
    fa, fb = a.fingerprint(), b.fingerprint()
    assert fa["recipe"]["seed"] == 0 and fb["recipe"]["seed"] == 1 and fa["kind"] == "adapted-text"
    assert fa["fit"] != fb["fit"] and fa["weights_sha256"] != fb["weights_sha256"]
    again = get_encoder(NAME, recipe=_spec_recipe(tiny), **kw)
    assert again.fingerprint() == fa and again.source == a.source  # same recipe and pairs: the cached fit


# --------------------------------------------------------------------------------------------
# the real stand-in (minilm-l6 fine-tuned on the Open-i training reports; a few CPU minutes)
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_stand_in_embeds_the_test_reports_unlike_its_base(capsys, book_fits):
    import time

    from semalign.data import get_task
    from semalign.encoders.tasks import encode_task
    from semalign.stitching import stitch_grid

    t0, c0 = time.perf_counter(), time.process_time()
    enc = get_encoder(NAME, device="cpu")
    fit_wall, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    base = get_encoder("minilm-l6", device="cpu")
    task = get_task("openi-5class")
    S.check_disjoint(enc, task.test["id"])
    assert len(enc.fit_ids) > 2000 and np.mean(enc.fit.losses[-10:]) < np.mean(enc.fit.losses[:10])
    x = list(task.test["input"])
    e, b = enc.embed(x, progress=False), base.embed(x, progress=False)
    assert e.shape == (len(x), 384) and np.isfinite(e).all()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    cos = np.sum(e * b, axis=1)
    assert np.median(cos) < 0.999  # fine-tuned: not the base's embeddings
    # measured, not asserted: the upper bound of each on openi-5class
    grid = stitch_grid(encode_task(task, {"minilm-l6": base, NAME: enc}, anchor_pool=50), methods=["upper_bound"],
                       progress=False)
    ub = grid.groupby("source")["auroc"].mean()  # one upper bound per encoder (mean over its rows)
    assert set(ub.index) == {"minilm-l6", NAME} and ub.between(0, 1).all()
    with capsys.disabled():
        print(f"\n[adapted-text] fitted or loaded (book_fits) in {fit_wall:.0f} s wall / {fit_cpu:.0f} s CPU; median cos to minilm-l6 "
              f"{np.median(cos):.3f}; upper bound AUROC minilm-l6 {ub['minilm-l6']:.4f}, {NAME} {ub[NAME]:.4f}")
