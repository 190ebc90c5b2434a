"""The Meditron analog: a static token table continued on Open-i training reports
(semalign/encoders/adapted_static.py). Fast tests use a tiny table and a tiny word tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semalign.encoders import encoder_specs, get_encoder
from semalign.encoders import adapted_static as A
from semalign.encoders import base as B
from semalign.encoders import standins as S

NAME = "standin-text-wordllama-openi"
TOPICS = [("hilar", "vascular", "prominence"), ("apical", "pleural", "thickening"),
          ("basilar", "streaky", "atelectasis"), ("aortic", "tortuous", "calcification"),
          ("bony", "thoracic", "curvature"), ("hazy", "lower", "infiltrate")]
WORDS = sorted({w for t in TOPICS for w in t} | {"report", "seen", "stable", "markings", "unused", "never"})


@pytest.fixture
def tiny_base(tmp_path, monkeypatch):
    """A registry entry ``tiny-wordllama`` of the wordllama kind: a 32 x 8 random table and a
    word-level tokenizer (one id per word of WORDS, [UNK] = 0, punctuation split off)."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{w: k + 1 for k, w in enumerate(WORDS)}, ".": len(WORDS) + 1, ":": len(WORDS) + 2}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tok.json"))
    table = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float16)
    save_file({"embedding.weight": table}, str(tmp_path / "table.safetensors"))
    monkeypatch.setattr(B, "_USER_SPECS", {})
    B.register_encoder("tiny-wordllama", {"kind": "wordllama", "modality": "text", "domain": "general", "dim": 8,
                                          "weights": str(tmp_path / "table.safetensors"),
                                          "tokenizer": str(tmp_path / "tok.json")})
    return {"table": table.astype(np.float32), "vocab": vocab}


def _pairs(n: int = 48, seed: int = 0):
    """Findings and impressions that share a topic (words 0-1 vs word 2 of TOPICS[k])."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(len(TOPICS), size=n)
    f = [f"{TOPICS[t][0]} {TOPICS[t][1]} markings {rng.choice(['seen', 'stable'])}." for t in topic]
    im = [f"{TOPICS[t][2]} {rng.choice(['seen', 'stable'])}." for t in topic]
    return f, im, [f"R{k}" for k in range(n)]


def _recipe(**kw) -> dict:
    return {"base": "tiny-wordllama", "epochs": 2, "batch": 8, "lr": 0.05, "temperature": 0.05, "pull": 0.01,
            "seed": 0, **kw}


def _count_fits(monkeypatch) -> list:
    calls: list = []
    real = A.train_table
    monkeypatch.setattr(A, "train_table", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_registry_entry_is_a_stand_in_with_a_readable_recipe():
    s = encoder_specs()[NAME]
    assert (s["kind"], s["modality"], s["domain"], s["dim"], s["offline"]) == \
        ("adapted-static", "text", "medical (stand-in)", 256, True)
    assert s["description"].startswith("Stand-in (not a real medical model)")
    assert {"base", "data", "objective", "epochs", "batch", "lr", "temperature", "seed"} <= set(s["recipe"])
    assert all(len(str(v)) <= 100 for v in s["recipe"].values())
    r = A.Recipe.from_mapping(s["recipe"])  # the registry recipe is a valid one
    assert (r.base, r.temperature) == ("wordllama-256", 0.05)


@pytest.mark.parametrize("bad, match", [({"epoch": 3}, "unknown key"), ({"lr": "fast"}, "lr must be a float"),
                                        ({"batch": 1}, "batch=1 is out of range"),
                                        ({"epochs": 2.5}, "epochs must be a int"), ({"pull": -1}, "pull")])
def test_bad_recipes_are_refused(bad, match):
    with pytest.raises(B.EncoderError, match=match):
        A.Recipe.from_mapping(bad)


def test_training_lowers_the_loss_moves_only_seen_rows_and_the_pull_holds_them(tiny_base):
    table, vocab = tiny_base["table"], tiny_base["vocab"]
    enc = get_encoder("tiny-wordllama", device="cpu")
    f, im, _ = _pairs()
    tf, ti = enc.token_ids(f), enc.token_ids(im)
    recipe = A.Recipe.from_mapping(_recipe(epochs=30))
    new, losses, rows = A.train_table(table, tf, ti, recipe)
    assert len(losses) == 30 * 6
    assert np.mean(losses[-6:]) < 0.5 * np.mean(losses[:6])  # the objective is learned
    seen = sorted({i for ids in (*tf, *ti) for i in ids})
    assert rows.tolist() == seen and vocab["unused"] not in seen and vocab["[UNK]"] not in seen
    untouched = np.setdiff1d(np.arange(len(table)), rows)
    assert np.array_equal(new[untouched], table[untouched])  # bit for bit
    assert np.abs(new[rows] - table[rows]).max() > 1e-2
    held, _, _ = A.train_table(table, tf, ti, A.Recipe.from_mapping(_recipe(epochs=30, pull=100.0)))
    free, _, _ = A.train_table(table, tf, ti, A.Recipe.from_mapping(_recipe(epochs=30, pull=0.0)))
    assert np.linalg.norm(held - table) < 0.5 * np.linalg.norm(free - table)
    again, losses2, _ = A.train_table(table, tf, ti, recipe)  # seeded: a rerun is the same fit
    np.testing.assert_allclose(again, new, atol=1e-5)
    np.testing.assert_allclose(losses2, losses, atol=1e-4)


def test_a_pair_without_tokens_is_refused(tiny_base):
    with pytest.raises(B.EncoderError, match="has no tokens"):
        A.train_table(tiny_base["table"], [[1, 2], []], [[3], [4]], A.Recipe())


def test_saved_folder_reloads_like_a_wordllama_model_and_embeds_identically(tiny_base, monkeypatch):
    from safetensors.numpy import load_file

    from semalign._io import sha256_file

    fits = _count_fits(monkeypatch)
    f, im, ids = _pairs()
    monkeypatch.setattr(A, "report_pairs", lambda seed=0, pool_params=None: (f, im, ids))
    enc = get_encoder(NAME, device="cpu", dim=8, recipe=_recipe())
    folder = enc.fit.folder
    assert folder.parent == S.fits_dir() and folder.name.startswith("adapted-static-")
    assert sorted(p.name for p in folder.iterdir()) == ["embedding.safetensors", "semalign-fit.json", "tokenizer.json"]
    assert enc.fit_ids == set(ids) and fits == [1] and enc.dim == 8
    assert enc.fingerprint()["weights_sha256"] == sha256_file(folder / "embedding.safetensors")
    texts = ["hilar vascular markings.", "apical thickening seen", "never unused"]
    e = enc.embed(texts, progress=False)
    # by hand from the saved table: mean of the token rows, L2-normalised
    table = load_file(str(folder / "embedding.safetensors"))["embedding.weight"]
    for t, row in zip(texts, e):
        m = table[enc.token_ids([t])[0]].mean(axis=0)
        np.testing.assert_allclose(row, m / np.linalg.norm(m), atol=1e-6)
    # the folder is a plain wordllama-kind model
    B.register_encoder("reloaded", {"kind": "wordllama", "weights": str(folder / "embedding.safetensors"),
                                    "tokenizer": str(folder / "tokenizer.json"), "modality": "text", "dim": 8})
    np.testing.assert_array_equal(get_encoder("reloaded", device="cpu").embed(texts, progress=False), e)
    # served from the cache: no refit, same numbers, same fingerprint
    enc2 = get_encoder(NAME, device="cpu", dim=8, recipe=_recipe())
    assert fits == [1] and enc2.fingerprint() == enc.fingerprint()
    np.testing.assert_array_equal(enc2.embed(texts, progress=False), e)
    base = get_encoder("tiny-wordllama", device="cpu")
    assert not np.allclose(base.embed(texts, progress=False), e, atol=1e-3)
    man = json.loads((folder / "semalign-fit.json").read_text())
    assert man["fit_ids"] == ids and len(man["losses"]) == 2 * 6 and man["kind"] == "adapted-static"


def test_a_recipe_change_makes_a_new_folder_and_new_cache_keys(tiny_base, monkeypatch):
    f, im, ids = _pairs()
    monkeypatch.setattr(A, "report_pairs", lambda seed=0, pool_params=None: (f, im, ids))
    a = get_encoder(NAME, device="cpu", dim=8, recipe=_recipe())
    b = get_encoder(NAME, device="cpu", dim=8, recipe=_recipe(temperature=0.1))
    c = get_encoder(NAME, device="cpu", dim=8, recipe={**_recipe(), "data": "other words"})  # descriptive only
    assert a.fit.folder != b.fit.folder and a.fit.folder == c.fit.folder
    assert a.fingerprint()["weights_sha256"] != b.fingerprint()["weights_sha256"]
    assert a.fingerprint() != b.fingerprint()
    # other pairs (another pool): another folder too
    monkeypatch.setattr(A, "report_pairs", lambda seed=0, pool_params=None: (f[:-1], im[:-1], ids[:-1]))
    assert get_encoder(NAME, device="cpu", dim=8, recipe=_recipe()).fit.folder != a.fit.folder


@pytest.mark.parametrize("damage", ["truncate weights", "drop manifest", "edit tokenizer"])
def test_a_damaged_or_partial_folder_is_refitted(tiny_base, monkeypatch, damage):
    fits = _count_fits(monkeypatch)
    pairs = _pairs()
    fit = A.fit_adapted_static(A.Recipe.from_mapping(_recipe()), pairs=pairs)
    good = (fit.folder / "embedding.safetensors").read_bytes()
    if damage == "truncate weights":
        (fit.folder / "embedding.safetensors").write_bytes(good[:100])
    elif damage == "drop manifest":  # as a fit killed before its last write would leave it
        (fit.folder / "semalign-fit.json").unlink()
    else:
        (fit.folder / "tokenizer.json").write_text("{}")
    stale = fit.folder.parent / f".{fit.folder.name}.tmp-1-dead"  # a killed fit's temp folder
    stale.mkdir()
    again = A.fit_adapted_static(A.Recipe.from_mapping(_recipe()), pairs=pairs)
    assert fits == [1, 1] and again.folder == fit.folder and not stale.exists()
    assert (again.folder / "embedding.safetensors").read_bytes() == good  # same seed -> same table
    assert A.read_manifest(again.folder, again.key) is not None


# --------------------------------------------------------------------------------------------
# leakage: a small fake Open-i archive in the tiny vocabulary
# --------------------------------------------------------------------------------------------
@pytest.fixture
def fake_openi(monkeypatch, tiny_base):
    """openi.parse_reports -> 1,000 fake reports (150 per class + 250 unlabelled)."""
    import pandas as pd

    from semalign.data import openi

    mesh = {"Normal": "normal", "Cardiomegaly": "Cardiomegaly/mild", "Opacity": "Opacity/lung/base",
            "Granuloma": "Calcified Granuloma", "Spine degenerative": "Spine/degenerative", None: "Atelectasis/left"}
    labels = [c for c in openi.CLASSES for _ in range(150)] + [None] * 250
    rng = np.random.default_rng(7)
    rows = []
    for k, c in enumerate(labels):
        t = TOPICS[rng.integers(len(TOPICS))]
        rows.append({"id": f"CXR{k + 1}", "findings": f"{t[0]} {t[1]} markings {rng.choice(['seen', 'stable'])}.",
                     "impression": "" if k % 10 == 3 else f"{t[2]} stable.", "mesh_major": [mesh[c]],
                     "image_ids": []})
    df = pd.DataFrame(rows)
    monkeypatch.setattr(openi, "parse_reports", lambda *a, **k: df.copy())
    return df


def test_fit_uses_the_training_pool_only_and_leakage_is_refused(fake_openi):
    from semalign.data import get_task

    enc = get_encoder(NAME, device="cpu", dim=8, recipe=_recipe(epochs=1))
    default = get_task("openi-5class")
    pool = set(default.anchors["id"]) - set(default.test["id"])
    no_impression = set(fake_openi["id"][fake_openi["impression"] == ""])
    assert enc.fit_ids == pool - no_impression  # reports with an empty section skipped
    S.check_disjoint(enc, default.test["id"])  # disjoint by construction
    # an overridden recipe whose test reports were in the default pool: refused, clearly
    task = get_task("openi-5class", seed=1, n_test_per_class=40)
    assert enc.fit_ids & set(task.test["id"])
    with pytest.raises(S.FitOverlapError,
                       match=rf"{NAME} \(medical stand-in\) was fitted on \d+ of the 200 test ids.*for_task"):
        S.check_disjoint(enc, task.test["id"])
    # for_task refits it on that task's own pool; pool_params does the same by hand
    fixed = S.for_task({NAME: enc}, task)[NAME]
    assert not fixed.fit_ids & set(task.test["id"])
    assert {k: fixed.pool_params[k] for k in ("seed", "n_test_per_class")} == {"seed": 1, "n_test_per_class": 40}
    S.check_disjoint(fixed, task.test["id"])
    by_hand = get_encoder(NAME, device="cpu", dim=8, recipe=_recipe(epochs=1),
                          pool_params={"seed": 1, "n_test_per_class": 40})
    assert by_hand.fit_ids == fixed.fit_ids and by_hand.fit.folder == fixed.fit.folder != enc.fit.folder


@pytest.mark.slow
def test_the_real_stand_in_differs_from_wordllama_on_the_test_reports(book_fits):
    from semalign.data import get_task

    task = get_task("openi-5class")
    enc, base = get_encoder(NAME, device="cpu"), get_encoder("wordllama-256", device="cpu")
    S.check_disjoint(enc, task.test["id"])
    assert len(enc.fit_ids) > 2000 and enc.fit.key["recipe"]["base"] == "wordllama-256"
    texts = list(task.test["input"])
    e, e0 = enc.embed(texts, progress=False), base.embed(texts, progress=False)
    assert e.shape == e0.shape == (len(texts), 256) and np.isfinite(e).all()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    cos = np.sum(e * e0, axis=1)
    assert cos.min() < 0.999  # adapted: the test reports embed differently ...
    assert np.median(cos) > 0.5  # ... by a table continued from wordllama's, not a new one
    trained = np.flatnonzero(np.any(enc.table != base.table, axis=1))
    assert 1000 < len(trained) < 32000 // 4  # only the rows of tokens in the pool's reports moved
