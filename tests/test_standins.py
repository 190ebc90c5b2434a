"""Medical stand-in encoders: registry entries, fits on training pools only, cached fits."""

from __future__ import annotations

import re

import numpy as np
import pytest

from semalign.encoders import encoder_specs, get_encoder
from semalign.encoders import standins as S

NAMES = ("standin-text-mesh", "standin-text-tfidf", "standin-vision-synthcxr")


def test_registry_marks_them_as_stand_ins():
    specs = encoder_specs()
    for n in NAMES:
        assert specs[n]["domain"] == "medical (stand-in)"
        assert specs[n]["description"].startswith("Stand-in (not a real medical model)")
    assert {specs[n]["modality"] for n in NAMES} == {"text", "image"}


@pytest.mark.slow  # two CNN fits: a few seconds alone, much more on a shared machine
def test_cnn_fit_is_cached_and_a_damaged_cache_is_refitted():
    d1 = S.fit_synthcxr_cnn(n_train=16, epochs=1, width=4)
    path = next((S.fits_dir()).glob("synthcxr-cnn-*.npz"))
    mtime = path.stat().st_mtime_ns
    d2 = S.fit_synthcxr_cnn(n_train=16, epochs=1, width=4)
    assert path.stat().st_mtime_ns == mtime and S._digest(d1) == S._digest(d2)
    path.write_bytes(path.read_bytes()[:100])  # truncated: must not be used
    d3 = S.fit_synthcxr_cnn(n_train=16, epochs=1, width=4)
    assert S._digest(d3) == S._digest(d1)  # refitted, same seed -> same weights


def test_cnn_encoder_embeds_arrays_and_files(tmp_path):
    from PIL import Image

    from semalign.data.synthcxr import generate

    enc = get_encoder("standin-vision-synthcxr", device="cpu", n_train=16, epochs=1, width=4)
    assert enc.dim == 32 and enc.domain == "medical (stand-in)"
    b = generate(3, seed=123, size=128)
    p = tmp_path / "x.png"
    Image.fromarray(b.images[0]).save(p)
    e = enc.embed([b.images[0], b.images[1], str(p)], progress=False)
    assert e.shape == (3, 32) and e.dtype == np.float32 and np.isfinite(e).all()
    np.testing.assert_allclose(e[0], e[2], atol=1e-5)
    assert "weights_sha256" in enc.fingerprint()


# --------------------------------------------------------------------------------------------
# what the text fits consume: a small fake Open-i archive (unique texts that name their id)
# --------------------------------------------------------------------------------------------
_MESH = {"Normal": "normal", "Cardiomegaly": "Cardiomegaly/mild", "Opacity": "Opacity/lung/base",
         "Granuloma": "Calcified Granuloma", "Spine degenerative": "Spine/degenerative", None: "Atelectasis/left"}
_ID = re.compile(r"\bCXR\d+\b")


@pytest.fixture
def fake_openi(monkeypatch):
    """openi.parse_reports -> 1,000 fake reports (150 per class + 250 unlabelled); each text
    contains its own id, so the texts a fitter consumes name the reports it used."""
    import pandas as pd

    from semalign.data import openi

    labels = [c for c in openi.CLASSES for _ in range(150)] + [None] * 250
    rng = np.random.default_rng(7)
    rows = []
    for k, c in enumerate(labels):
        w = rng.choice(["hilar", "apical", "basilar", "pleural", "vascular", "bony", "hazy", "stable"], 3)
        rows.append({"id": f"CXR{k + 1}", "findings": f"Report CXR{k + 1}: {w[0]} {w[1]} markings.",
                     "impression": f"Findings {w[2]} {k % 11} seen.", "mesh_major": [_MESH[c]], "image_ids": []})
    df = pd.DataFrame(rows)
    monkeypatch.setattr(openi, "parse_reports", lambda *a, **k: df.copy())
    return df


@pytest.fixture
def spy_fit(monkeypatch):
    """Every text document a TfidfVectorizer is fitted on or transforms, recorded as ids."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    seen: set[str] = set()
    fit, transform = TfidfVectorizer.fit, TfidfVectorizer.transform

    def record(docs):
        for d in docs:
            seen.update(_ID.findall(d))

    def spy(self, raw_documents, y=None):
        record(raw_documents)
        return fit(self, raw_documents, y)

    def spy_t(self, raw_documents):
        record(raw_documents)
        return transform(self, raw_documents)

    monkeypatch.setattr(TfidfVectorizer, "fit", spy)
    monkeypatch.setattr(TfidfVectorizer, "transform", spy_t)
    return seen


def _small(name: str) -> dict:
    return {"dim": 8, "epochs": 3} if name == "standin-text-mesh" else {"dim": 8}


@pytest.mark.parametrize("name", ["standin-text-tfidf", "standin-text-mesh"])
def test_text_fit_consumes_no_test_report_of_an_overridden_task(fake_openi, spy_fit, name):
    from semalign.data import get_task

    task = get_task("openi-5class", seed=1, n_test_per_class=40)
    test = set(task.test["id"])
    enc = get_encoder(name, device="cpu", pool_params={"seed": 1, "n_test_per_class": 40}, **_small(name))
    assert spy_fit and not spy_fit & test  # the fitter itself never saw a test report
    assert spy_fit == enc.fit_ids == set(task.anchors["id"]) - test
    S.check_disjoint(enc, task.test["id"])
    # the default fit has seen most of this task's test reports: refused, and for_task repairs it
    default = get_encoder(name, device="cpu", **_small(name))
    assert default.fit_ids & test
    with pytest.raises(S.FitOverlapError, match=rf"{name} .*fitted on \d+ of the {len(test)} test ids.*for_task"):
        S.check_disjoint(default, task.test["id"])
    fixed = S.for_task({name: default}, task)[name]
    assert fixed.fit_ids == enc.fit_ids and not fixed.fit_ids & test
    assert fixed.fingerprint()["weights_sha256"] == enc.fingerprint()["weights_sha256"]


def test_check_disjoint_passes_on_the_default_task_and_raises_on_overlap(fake_openi):
    from semalign.data import get_task

    enc = get_encoder("standin-text-tfidf", device="cpu", dim=8)
    task = get_task("openi-5class")
    S.check_disjoint(enc, task.test["id"])  # the default recipe: disjoint by construction
    assert enc.fit_ids == set(task.anchors["id"]) - set(task.test["id"])
    leak = sorted(enc.fit_ids)[:3]
    with pytest.raises(S.FitOverlapError) as e:
        S.check_disjoint(enc, [*task.test["id"][:5], *leak], what="evaluation")
    msg = str(e.value)
    assert "standin-text-tfidf" in msg and "3 of the 8 evaluation ids" in msg and leak[0] in msg
    assert "default openi-5class recipe" in msg
    S.check_disjoint(S.Encoder("plain", "text", "general", 4), leak)  # not a stand-in: no-op
    fake = S.Encoder("fake", "text", "medical (stand-in)", 4)
    with pytest.raises(S.FitOverlapError, match="does not expose `fit_ids`"):
        S.check_disjoint(fake, leak)


def test_cache_key_follows_the_pool_and_a_stale_fit_is_refitted(fake_openi):
    legacy = S._fit_path("tfidf-svd", {"dim": 8, "max_features": 5000, "seed": 0})  # the historical key
    d0 = S.fit_tfidf_svd(dim=8)
    assert legacy.is_file() and d0["fit_ids"].tolist() == S.openi_training_pool()[2]
    files = lambda: set((S.fits_dir()).glob("tfidf-svd-*.npz"))  # noqa: E731
    # same pool (only the decoder's training subset changes): same fit, same file
    d1 = S.fit_tfidf_svd(dim=8, pool_params={"n_train_per_class": 50})
    assert files() == {legacy} and S._digest(d1) == S._digest(d0)
    # another pool: another key, its own ids
    d2 = S.fit_tfidf_svd(dim=8, pool_params={"seed": 1})
    assert len(files()) == 2 and set(d2["fit_ids"].tolist()) != set(d0["fit_ids"].tolist())
    with pytest.raises(S.EncoderError, match="unknown openi-5class recipe parameter"):
        S.fit_tfidf_svd(dim=8, pool_params={"n_tests": 3})
    # a cached fit whose stored ids are not the pool asked for (or that stores none) is never served
    stale = {k: v for k, v in d2.items()}
    S._save_npz(legacy, stale)
    assert S.fit_tfidf_svd(dim=8)["fit_ids"].tolist() == d0["fit_ids"].tolist()
    S._save_npz(legacy, {k: v for k, v in d0.items() if k != "fit_ids"})
    assert "fit_ids" in S.fit_tfidf_svd(dim=8)


def test_cnn_stand_in_exposes_its_training_ids():
    ids = S.cnn_train_ids(16)
    assert len(set(ids)) == 16 and ids[0] == f"synth-{S.TRAIN_SEED}-000000"
    enc = S.SynthCxrCnnEncoder("c", "image", "medical (stand-in)", 32, fit=_cnn_fit(4), width=4, fit_ids=frozenset(ids))
    S.check_disjoint(enc, ["synthcxr-pneumonia-test-1-000000"])
    with pytest.raises(S.FitOverlapError, match="outside its training set"):
        S.check_disjoint(enc, ids[:2])


def _cnn_fit(width: int) -> dict:
    feat, _ = S._cnn(width)
    return {f"feat.{k}": v.detach().numpy() for k, v in feat.state_dict().items()}


@pytest.mark.slow
def test_real_default_fit_is_disjoint_from_the_default_test_set_only():
    from semalign.data import get_task

    enc = get_encoder("standin-text-tfidf", device="cpu")
    S.check_disjoint(enc, get_task("openi-5class").test["id"])
    with pytest.raises(S.FitOverlapError, match="for_task"):
        S.check_disjoint(enc, get_task("openi-5class", seed=1).test["id"])


@pytest.mark.slow
def test_text_stand_ins_fit_on_the_training_pool_only():
    from semalign.data import get_task

    texts, heads, ids = S.openi_training_pool()
    test = set(get_task("openi-5class").test["id"])
    assert not test & set(ids) and len(ids) > 3000
    assert sum("cardiomegaly" in h for h in heads) > 100
    for n in ("standin-text-tfidf", "standin-text-mesh"):
        enc = get_encoder(n, device="cpu")
        e = enc.embed(["Heart size is enlarged.", "Lungs are clear."], progress=False)
        assert e.shape == (2, enc.dim) and np.isfinite(e).all()
        assert not np.allclose(e[0], e[1])
