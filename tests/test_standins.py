"""Medical stand-in encoders: registry entries, fits on training pools only, cached fits."""

from __future__ import annotations

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
    path = next((S.cache_dir() / "standins").glob("synthcxr-cnn-*.npz"))
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
