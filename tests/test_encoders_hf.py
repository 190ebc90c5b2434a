"""The ``hf`` kind on tiny random models of every family the paper uses (BERT, RoBERTa, MPNet,
Llama, ViT, DINOv2, CLIP), built here and saved with ``save_pretrained``, then loaded through
the same code path a hub id takes (registry entry, local folder, SEMALIGN_MODELS_DIR/<org>/<name>)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
T = pytest.importorskip("transformers")

from semalign.encoders import EncoderError, get_encoder, register_encoder  # noqa: E402
from semalign.encoders import base as enc_base  # noqa: E402
from semalign.encoders.hf import pool  # noqa: E402

WORDS = ("the a heart is normal size no pleural effusion pneumothorax lungs are clear mild "
         "cardiomegaly , . spine degenerative opacity of and with small left right base").split()
SHORT = "the heart is normal ."
LONG = " ".join(["no pleural effusion , the lungs are clear and the heart size is normal ."] * 3)


def _small(**kw):
    return dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, **kw)


def _bert(d):
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (d / "vocab.txt").write_text("\n".join(special + WORDS) + "\n")
    tok = T.BertTokenizer(str(d / "vocab.txt"))
    torch.manual_seed(0)
    T.BertModel(T.BertConfig(vocab_size=len(special) + len(WORDS), max_position_embeddings=128,
                             **_small())).save_pretrained(d)
    tok.save_pretrained(d)


def _roberta(d):
    toks = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + ["Ġ" + w for w in WORDS] + WORDS \
        + list("abcdefghijklmnopqrstuvwxyz.,Ġ")
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(dict.fromkeys(toks))}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = T.RobertaTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    torch.manual_seed(0)
    T.RobertaModel(T.RobertaConfig(vocab_size=len(tok), max_position_embeddings=300, pad_token_id=1,
                                   **_small()), add_pooling_layer=False).save_pretrained(d)
    tok.save_pretrained(d)


def _mpnet(d):
    special = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", "<mask>"]
    (d / "vocab.txt").write_text("\n".join(special + WORDS) + "\n")
    tok = T.MPNetTokenizer(str(d / "vocab.txt"))
    torch.manual_seed(0)
    T.MPNetModel(T.MPNetConfig(vocab_size=len(special) + len(WORDS), max_position_embeddings=130,
                               pad_token_id=1, **_small()), add_pooling_layer=False).save_pretrained(d)
    tok.save_pretrained(d)


def _llama(d):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>"] + WORDS)}
    wl = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = T.PreTrainedTokenizerFast(tokenizer_object=wl, unk_token="<unk>", bos_token="<s>",
                                    eos_token="</s>")  # no pad token, like Llama-2
    torch.manual_seed(0)
    T.LlamaModel(T.LlamaConfig(vocab_size=len(vocab), max_position_embeddings=128,
                               num_key_value_heads=2, **_small())).save_pretrained(d)
    tok.save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["LlamaForCausalLM"]
    (d / "config.json").write_text(json.dumps(cfg))


def _vit(d):
    torch.manual_seed(0)
    T.ViTModel(T.ViTConfig(image_size=32, patch_size=8, **_small()), add_pooling_layer=False).save_pretrained(d)
    T.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(d)


def _dinov2(d):
    torch.manual_seed(0)
    T.Dinov2Model(T.Dinov2Config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, mlp_ratio=2)).save_pretrained(d)
    T.BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
                        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(d)


def _clip(d):
    toks = ["<|startoftext|>", "<|endoftext|>"] + [w + "</w>" for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz.,") \
        + [c + "</w>" for c in "abcdefghijklmnopqrstuvwxyz.,"]
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(dict.fromkeys(toks))}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = T.CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    torch.manual_seed(0)
    cfg = T.CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=37, max_position_embeddings=77,
                         eos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                         bos_token_id=tok.convert_tokens_to_ids("<|startoftext|>"), pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=37),
        projection_dim=24)
    T.CLIPModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    T.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d)


BUILDERS = {"bert": _bert, "roberta": _roberta, "mpnet": _mpnet, "llama": _llama, "vit": _vit,
            "dinov2": _dinov2, "clip": _clip}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """``tiny[family] -> folder`` (models dir layout: <root>/tiny-org/<family>)."""
    root = tmp_path_factory.mktemp("tiny-models")
    out = {}
    for fam, build in BUILDERS.items():
        d = root / "tiny-org" / fam
        d.mkdir(parents=True)
        build(d)
        out[fam] = d
    out["_root"] = root
    return out


@pytest.fixture(autouse=True)
def _forget_user_specs():
    yield
    enc_base._USER_SPECS.clear()


TEXT_FAMILIES = ["bert", "roberta", "mpnet", "llama"]


@pytest.mark.parametrize("fam", TEXT_FAMILIES)
def test_text_family_via_registry_entry(tiny, fam):
    register_encoder(f"tiny-{fam}", {"kind": "hf", "id": str(tiny[fam]), "modality": "text",
                                     "domain": "general", "pooling": "mean", "dim": 32})
    enc = get_encoder(f"tiny-{fam}", device="cpu")
    assert (enc.name, enc.modality, enc.dim, enc.pooling) == (f"tiny-{fam}", "text", 32, "mean")
    emb = enc.embed([SHORT, LONG, "mild cardiomegaly ."], progress=False)
    assert emb.shape == (3, 32) and emb.dtype == np.float32 and np.isfinite(emb).all()
    # rows are not all the same: the model saw different inputs
    assert np.abs(emb[0] - emb[1]).max() > 1e-4


def _manual_mean(folder, text, model_cls=None):
    tok = T.AutoTokenizer.from_pretrained(folder)
    model = (model_cls or T.AutoModel).from_pretrained(folder).eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    enc = tok([text], return_tensors="pt")
    enc.pop("token_type_ids", None) if model.config.model_type != "bert" else None
    with torch.no_grad():
        h = model(**enc).last_hidden_state[0]
    return h.mean(0).numpy()


@pytest.mark.parametrize("fam", TEXT_FAMILIES)
def test_masked_mean_equals_hand_computed_mean(tiny, fam):
    enc = get_encoder(str(tiny[fam]), device="cpu", pooling="mean")
    got = enc.embed([SHORT], progress=False)[0]
    np.testing.assert_allclose(got, _manual_mean(tiny[fam], SHORT), atol=1e-5)


@pytest.mark.parametrize("fam,pooling", [(f, "mean") for f in TEXT_FAMILIES]
                         + [("llama", "last-token"), ("bert", "cls"), ("clip", "clip")])
def test_text_alone_equals_text_beside_a_longer_one(tiny, fam, pooling):
    kw = {"modality": "text"} if fam == "clip" else {}
    enc = get_encoder(str(tiny[fam]), device="cpu", pooling=pooling, **kw)
    alone = enc.embed([SHORT], progress=False)
    both = enc.embed([LONG, SHORT], progress=False)
    assert enc.processor(LONG)["input_ids"].__len__() > 3 * len(enc.processor(SHORT)["input_ids"])
    np.testing.assert_allclose(alone[0], both[1], atol=1e-5)


def test_last_token_is_the_last_real_token_for_left_and_right_padding():
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])

    class Out:
        last_hidden_state = h

    np.testing.assert_array_equal(pool(Out, right, "last-token")[0], h[0, 1])
    np.testing.assert_array_equal(pool(Out, left, "last-token")[0], h[0, 3])
    np.testing.assert_array_equal(pool(Out, right, "last-token")[1], h[1, 3])


def test_llama_last_token_matches_hand_computation(tiny):
    enc = get_encoder(str(tiny["llama"]), device="cpu", pooling="last-token")
    model = T.AutoModel.from_pretrained(tiny["llama"]).eval()
    tok = T.AutoTokenizer.from_pretrained(tiny["llama"])
    with torch.no_grad():
        ref = model(**tok([SHORT], return_tensors="pt")).last_hidden_state[0, -1].numpy()
    np.testing.assert_allclose(enc.embed([SHORT], progress=False)[0], ref, atol=1e-5)
    assert enc.processor.padding_side == "right" and enc.processor.pad_token is not None


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(40 + 4 * i, 48), dtype=np.uint8) for i in range(n)]


@pytest.mark.parametrize("fam", ["vit", "dinov2"])
def test_vision_cls_pooling(tiny, fam):
    enc = get_encoder(str(tiny[fam]), device="cpu")
    assert enc.modality == "image" and enc.pooling == "cls" and enc.dim == 32
    imgs = _images()
    emb = enc.embed(imgs, batch_size=2, progress=False)
    proc = T.AutoImageProcessor.from_pretrained(tiny[fam])
    model = T.AutoModel.from_pretrained(tiny[fam]).eval()
    rgb = [np.repeat(im[..., None], 3, axis=2) for im in imgs]
    with torch.no_grad():
        ref = model(pixel_values=proc(images=rgb, return_tensors="pt")["pixel_values"]).last_hidden_state[:, 0]
    np.testing.assert_allclose(emb, ref.numpy(), atol=1e-5)
    if fam == "dinov2":  # DINOv2's pooler output is the same LayerNorm'ed CLS token
        with torch.no_grad():
            po = model(pixel_values=proc(images=rgb, return_tensors="pt")["pixel_values"]).pooler_output
        np.testing.assert_allclose(emb, po.numpy(), atol=1e-5)


def test_clip_towers_give_projected_features(tiny):
    img = get_encoder(str(tiny["clip"]), device="cpu", modality="image")
    txt = get_encoder(str(tiny["clip"]), device="cpu", modality="text")
    assert img.dim == txt.dim == 24 and img.pooling == txt.pooling == "clip"
    model = T.CLIPModel.from_pretrained(tiny["clip"]).eval()
    proc_t = T.AutoTokenizer.from_pretrained(tiny["clip"])
    with torch.no_grad():
        out = model.get_text_features(**proc_t([SHORT], return_tensors="pt"))
    ref = out if torch.is_tensor(out) else out.pooler_output
    np.testing.assert_allclose(txt.embed([SHORT], progress=False), ref.numpy(), atol=1e-5)
    assert img.embed(_images(2), progress=False).shape == (2, 24)
    with pytest.raises(EncoderError, match="tower"):
        get_encoder(str(tiny["clip"]), device="cpu")


def test_models_dir_resolves_org_name_like_a_hub_id(tiny, monkeypatch):
    monkeypatch.setenv("SEMALIGN_MODELS_DIR", str(tiny["_root"]))
    enc = get_encoder("tiny-org/bert", device="cpu")
    assert enc.local and enc.source == str(tiny["bert"])
    assert enc.embed([SHORT], progress=False).shape == (1, 32)


def test_yaml_registry_via_env(tiny, tmp_path, monkeypatch):
    y = tmp_path / "mine.yml"
    y.write_text(f"encoders:\n  my-bert:\n    kind: hf\n    id: {tiny['bert']}\n    modality: text\n"
                 f"    domain: medical\n    pooling: cls\n")
    monkeypatch.setenv("SEMALIGN_ENCODERS", str(y))
    from semalign.encoders import list_encoders

    assert "my-bert" in list_encoders(modality="text", domain="medical")
    enc = get_encoder("my-bert", device="cpu")
    assert (enc.domain, enc.pooling) == ("medical", "cls")


def test_fingerprint_tracks_weights_pooling_and_length(tiny, tmp_path):
    import shutil

    a = get_encoder(str(tiny["bert"]), device="cpu")
    b = get_encoder(str(tiny["bert"]), device="cpu", pooling="cls")
    c = get_encoder(str(tiny["bert"]), device="cpu", max_length=16)
    assert a.fingerprint() != b.fingerprint() != c.fingerprint()
    assert a.fingerprint() == get_encoder(str(tiny["bert"]), device="cpu").fingerprint()
    # same folder content elsewhere: same weights hash; a changed weight: another one
    copy = tmp_path / "bert-copy"
    shutil.copytree(tiny["bert"], copy)
    assert get_encoder(str(copy), device="cpu").fingerprint()["weights_sha256"] == a.fingerprint()["weights_sha256"]
    m = T.BertModel.from_pretrained(copy)
    with torch.no_grad():
        m.embeddings.word_embeddings.weight[5, 0] += 1.0
    m.save_pretrained(copy)
    assert get_encoder(str(copy), device="cpu").fingerprint()["weights_sha256"] != a.fingerprint()["weights_sha256"]


def _assert_raised_from_none(err):
    """The EncoderError is the whole story: no hub-client exception chained under it."""
    import traceback

    assert err.__suppress_context__ is True and err.__cause__ is None
    tb = "".join(traceback.format_exception(err))
    assert "During handling of the above exception" not in tb
    assert "direct cause of the following exception" not in tb
    assert tb.count("Traceback (most recent call last)") == 1


def test_missing_hub_model_gives_one_clear_error(monkeypatch, tmp_path):
    hub_id = "nobody-here/no-such-model"
    monkeypatch.delenv("SEMALIGN_MODELS_DIR", raising=False)
    with pytest.raises(EncoderError) as e:
        get_encoder(hub_id, device="cpu")
    msg = str(e.value)
    first = msg.splitlines()[0]
    assert f"hub id {hub_id!r}" in first and "not on this machine" in first
    # where to get it
    assert f"where to get it: https://huggingface.co/{hub_id}" in msg
    assert f"`hf download {hub_id} --local-dir $SEMALIGN_MODELS_DIR/{hub_id}`" in msg
    # which environment variables to set, and their current state
    assert "set SEMALIGN_MODELS_DIR (now: SEMALIGN_MODELS_DIR is not set)" in msg
    assert "unset HF_HUB_OFFLINE" in msg and "HF_HOME" in msg
    assert "get_encoder('/path/to/model')" in msg
    # not gated: no licence advice that would send the user the wrong way
    assert "gated" not in msg.lower() and "hf auth login" not in msg
    assert "underlying error: OSError" in msg
    _assert_raised_from_none(e.value)

    # with SEMALIGN_MODELS_DIR set, the message names the folder it looked for
    monkeypatch.setenv("SEMALIGN_MODELS_DIR", str(tmp_path))
    with pytest.raises(EncoderError) as e:
        get_encoder(hub_id, device="cpu")
    assert f"SEMALIGN_MODELS_DIR={tmp_path} has no {tmp_path / hub_id} folder" in str(e.value)
    _assert_raised_from_none(e.value)


GATED_OSERROR = ("tiny-hub/gated-bert is a gated repository. Make sure to request access at "
                 "https://huggingface.co/tiny-hub/gated-bert and pass a token having permission to "
                 "this repo either by logging in with `hf auth login` or by passing `token=<your_token>`.")
UNAUTHORIZED_OSERROR = "401 Client Error: Unauthorized for url: https://huggingface.co/tiny-hub/gated-bert/resolve/main/model.safetensors"


@pytest.mark.parametrize("stage", ["config", "weights"])
@pytest.mark.parametrize("text", [GATED_OSERROR, UNAUTHORIZED_OSERROR], ids=["gated", "401"])
def test_gated_model_error_says_accept_licence_and_log_in(tiny, fake_hub, monkeypatch, stage, text):
    """The hub refuses a gated model (transformers re-raises it as OSError): the message says so,
    and how to get access, instead of blaming the network."""
    _put_snapshot(fake_hub, "tiny-hub/gated-bert", SHA_A, tiny["bert"])

    def refuse(*args, **kwargs):
        raise OSError(text)

    target = T.AutoConfig if stage == "config" else T.AutoModel
    monkeypatch.setattr(target, "from_pretrained", refuse)
    with pytest.raises(EncoderError) as e:
        get_encoder("tiny-hub/gated-bert", device="cpu")  # a bare hub id: no `gated:` in its spec
    msg = str(e.value)
    first = msg.splitlines()[0]
    assert "'tiny-hub/gated-bert'" in first and "gated" in first and "refused access" in first
    assert "could not be reached" not in msg
    assert "https://huggingface.co/tiny-hub/gated-bert" in msg
    assert "accept its licence" in msg
    assert "`hf auth login`" in msg and "HF_TOKEN" in msg
    _assert_raised_from_none(e.value)


def test_gated_registry_model_says_licence_and_token(monkeypatch, tmp_path):
    monkeypatch.setenv("SEMALIGN_MODELS_DIR", str(tmp_path))
    with pytest.raises(EncoderError) as e:
        get_encoder("llama-2-7b", device="cpu")
    msg = str(e.value)
    assert "meta-llama/Llama-2-7b-hf" in msg and "HF_TOKEN" in msg and str(tmp_path) in msg
    assert "gated model" in msg.splitlines()[0] and "accept its licence" in msg
    _assert_raised_from_none(e.value)


def test_registry_dim_mismatch_is_reported(tiny):
    register_encoder("wrong-dim", {"kind": "hf", "id": str(tiny["bert"]), "modality": "text",
                                   "domain": "general", "dim": 999})
    with pytest.raises(EncoderError, match="dim 999"):
        get_encoder("wrong-dim", device="cpu")


def test_cpu_outputs_are_deterministic_across_calls_and_batch_sizes(tiny):
    enc = get_encoder(str(tiny["bert"]), device="cpu")
    texts = [SHORT, LONG, "mild cardiomegaly .", "no pleural effusion ."]
    a = enc.embed(texts, batch_size=4, progress=False)
    assert np.array_equal(a, enc.embed(texts, batch_size=4, progress=False))  # bit for bit
    np.testing.assert_allclose(a, enc.embed(texts, batch_size=1, progress=False), atol=1e-5)


# --------------------------------------------------------------------------------------------
# hub models: the fingerprint names the commit the files came from
# --------------------------------------------------------------------------------------------
SHA_A, SHA_B = "a1" * 20, "b2" * 20


def _put_snapshot(hub_cache, repo_id, ref, src):
    """Lay ``src``'s files out like the hub cache does: blobs/<hash>, snapshots/<ref>/<file> as
    relative symlinks to the blobs, refs/main holding ``ref``."""
    import hashlib
    import os
    import shutil

    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ref
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        if not blob.exists():
            shutil.copyfile(f, blob)
        link = snap / f.relative_to(src)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(ref)
    return snap


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """An offline hub cache in tmp_path; the hub client reads its cache path at import, so the
    constant is patched as well as the environment variable."""
    import huggingface_hub.constants as hub_constants

    hub_cache = tmp_path / "hub"
    hub_cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("SEMALIGN_MODELS_DIR", raising=False)
    return hub_cache


def test_hub_model_fingerprint_holds_the_loaded_commit(tiny, fake_hub, tmp_path):
    from semalign.cache import cache_key

    _put_snapshot(fake_hub, "tiny-hub/bert", SHA_A, tiny["bert"])
    register_encoder("tiny-hub-bert", {"kind": "hf", "id": "tiny-hub/bert", "modality": "text",
                                       "domain": "general", "pooling": "mean"})
    a = get_encoder("tiny-hub-bert", device="cpu")
    assert not a.local and a.source == "tiny-hub/bert"
    fa = a.fingerprint()
    assert fa["revision"] == SHA_A, f"fingerprint says revision {fa.get('revision')!r}, loaded {SHA_A}"
    np.testing.assert_allclose(a.embed([SHORT], progress=False)[0], _manual_mean(tiny["bert"], SHORT), atol=1e-5)

    # the hub moves `main` to a new commit with other weights: another fingerprint, another key
    newer = tmp_path / "bert-newer"
    newer.mkdir()
    for f in tiny["bert"].iterdir():
        (newer / f.name).write_bytes(f.read_bytes())
    m = T.BertModel.from_pretrained(newer)
    with torch.no_grad():
        m.embeddings.word_embeddings.weight[5, 0] += 1.0
    m.save_pretrained(newer)
    _put_snapshot(fake_hub, "tiny-hub/bert", SHA_B, newer)
    b = get_encoder("tiny-hub-bert", device="cpu")  # also by bare hub id: the same spec
    fb = get_encoder("tiny-hub/bert", device="cpu").fingerprint()
    assert b.fingerprint()["revision"] == fb["revision"] == SHA_B
    ids = ["r1", "r2"]
    assert cache_key(fa, "ds@1", ids) != cache_key(b.fingerprint(), "ds@1", ids)
    # and the files it loaded are that commit's: the model is the newer one
    np.testing.assert_allclose(b.embed([SHORT], progress=False)[0], _manual_mean(newer, SHORT), atol=1e-5)
    assert not np.allclose(a.embed([SHORT], progress=False), b.embed([SHORT], progress=False))


def test_hub_model_without_a_commit_name_is_identified_by_its_weights(tiny, fake_hub, tmp_path):
    # a snapshot folder that is not named by a commit hash: fall back to hashing the weights
    _put_snapshot(fake_hub, "tiny-hub/bert", "not-a-commit", tiny["bert"])
    enc = get_encoder("tiny-hub/bert", device="cpu")
    fp = enc.fingerprint()
    assert "revision" not in fp
    assert fp["weights_sha256"] == get_encoder(str(tiny["bert"]), device="cpu").fingerprint()["weights_sha256"]
    # and with neither commit nor folder known: the loaded tensors are hashed
    enc.commit = enc.snapshot = None
    enc._weights_sha256 = None
    h1 = enc.fingerprint()["weights_sha256"]
    with torch.no_grad():
        enc.model.embeddings.word_embeddings.weight[5, 0] += 1.0
    enc._weights_sha256 = None
    assert enc.fingerprint()["weights_sha256"] != h1


# --------------------------------------------------------------------------------------------
# dtype: what the model is loaded in is what the fingerprint says
# --------------------------------------------------------------------------------------------
# transformers' from_pretrained takes `dtype=` from 4.56.0 on (4.55.4 raises "BertModel.__init__()
# got an unexpected keyword argument 'dtype'"); hf.build passes dtype=, so that is the floor.
FIRST_TRANSFORMERS_WITH_DTYPE_KWARG = (4, 56)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_loaded_dtype_agrees_with_the_fingerprint(tiny, dtype):
    enc = get_encoder(str(tiny["bert"]), device="cpu", dtype=dtype)
    dtypes = {p.dtype for p in enc.model.parameters()}
    assert dtypes == {getattr(torch, dtype)}
    assert enc.fingerprint()["dtype"] == enc.dtype == dtype
    emb = enc.embed([SHORT, LONG], progress=False)
    assert emb.dtype == np.float32 and np.isfinite(emb).all()


def test_pyproject_transformers_floor_accepts_the_dtype_kwarg(repo_root):
    import re
    import tomllib

    pyproject = repo_root / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(r"transformers\b", d)]
    floor = re.search(r">=\s*([0-9][0-9.]*)", spec)
    assert floor, f"transformers has no >= floor in pyproject: {spec!r}"
    got = tuple(int(x) for x in floor.group(1).split(".")[:2])
    assert got >= FIRST_TRANSFORMERS_WITH_DTYPE_KWARG, (
        f"pyproject allows {spec!r}, but from_pretrained(dtype=...) needs transformers >= "
        f"{'.'.join(map(str, FIRST_TRANSFORMERS_WITH_DTYPE_KWARG))}")
    installed = tuple(int(x) for x in re.findall(r"\d+", T.__version__)[:2])
    assert installed >= FIRST_TRANSFORMERS_WITH_DTYPE_KWARG


def test_bfloat16_on_cpu_via_the_registry_is_float32_and_close_to_fp32(tiny):
    register_encoder("tiny-bert-bf16", {"kind": "hf", "id": str(tiny["bert"]), "modality": "text",
                                        "domain": "general", "pooling": "mean", "dim": 32,
                                        "dtype": "bfloat16"})
    bf = get_encoder("tiny-bert-bf16", device="cpu")
    assert bf.dtype == "bfloat16" and {p.dtype for p in bf.model.parameters()} == {torch.bfloat16}
    fp = get_encoder("tiny-bert-bf16", device="cpu", dtype="float32")
    assert {p.dtype for p in fp.model.parameters()} == {torch.float32}
    texts = [SHORT, LONG, "mild cardiomegaly ."]
    a, b = bf.embed(texts, progress=False), fp.embed(texts, progress=False)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (3, 32)
    assert np.isfinite(a).all()
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99, cos
    assert not np.array_equal(a, b)  # it really ran in bf16
    assert bf.fingerprint() != fp.fingerprint() and bf.fingerprint()["dtype"] == "bfloat16"


# --------------------------------------------------------------------------------------------
# sentence-transformers folders: pooling / normalisation / max length read from the folder
# --------------------------------------------------------------------------------------------
def _make_st_folder(d, bert, pooling="cls", normalize=True, max_seq_length=None):
    """``bert``'s files + a sentence-transformers layout (Transformer -> Pooling [-> Normalize])."""
    import shutil

    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(bert, d)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (d / "2_Normalize").mkdir()
    (d / "modules.json").write_text(json.dumps(modules))
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False}))
    if max_seq_length:
        (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                 "do_lower_case": False}))
    return d


def _hidden(folder, text, max_length=None):
    tok = T.AutoTokenizer.from_pretrained(folder)
    model = T.AutoModel.from_pretrained(folder).eval()
    enc = tok([text], return_tensors="pt", truncation=max_length is not None, max_length=max_length)
    with torch.no_grad():
        return model(**enc).last_hidden_state[0].numpy()  # (tokens, hidden): one text, no padding


def test_sentence_transformers_folder_sets_pooling_and_normalisation(tiny, tmp_path):
    d = _make_st_folder(tmp_path / "st", tiny["bert"], pooling="cls", normalize=True)
    spec = {"kind": "hf", "id": str(d), "modality": "text", "domain": "general"}  # no pooling
    register_encoder("tiny-st", spec)
    enc = get_encoder("tiny-st", device="cpu")
    assert (enc.pooling, enc.normalize) == ("cls", True)
    texts = [SHORT, LONG]
    cls = enc.embed(texts, progress=False)  # batched: SHORT is padded
    for row, t in zip(cls, texts):
        ref = _hidden(d, t)[0]
        np.testing.assert_allclose(row, ref / np.linalg.norm(ref), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(cls, axis=1), 1.0, atol=1e-5)

    # flip the folder to mean pooling without Normalize: masked mean, not normalised
    _make_st_folder(d, tiny["bert"], pooling="mean", normalize=False)
    enc = get_encoder("tiny-st", device="cpu")
    assert (enc.pooling, enc.normalize) == ("mean", False)
    mean = enc.embed(texts, progress=False)
    for row, t in zip(mean, texts):
        np.testing.assert_allclose(row, _hidden(d, t).mean(0), atol=1e-5)
    assert np.abs(np.linalg.norm(mean, axis=1) - 1.0).max() > 1e-2
    assert not np.allclose(mean, cls, atol=1e-3)

    # the spec's own fields win over the folder's
    register_encoder("tiny-st-cls", dict(spec, pooling="cls", normalize=True))
    enc = get_encoder("tiny-st-cls", device="cpu")
    assert (enc.pooling, enc.normalize) == ("cls", True)
    np.testing.assert_allclose(enc.embed(texts, progress=False), cls, atol=1e-5)


def test_sentence_transformers_max_seq_length_truncates(tiny, tmp_path):
    d = _make_st_folder(tmp_path / "st", tiny["bert"], pooling="mean", normalize=False,
                        max_seq_length=8)
    enc = get_encoder(str(d), device="cpu")  # a bare folder: everything from the folder
    assert (enc.pooling, enc.normalize, enc.max_length) == ("mean", False, 8)
    np.testing.assert_allclose(enc.embed([LONG], progress=False)[0],
                               _hidden(d, LONG, max_length=8).mean(0), atol=1e-5)
    assert not np.allclose(enc.embed([LONG], progress=False)[0], _hidden(d, LONG).mean(0), atol=1e-3)


def test_sentence_transformers_defaults_for_a_hub_model(tiny, fake_hub, tmp_path):
    # a hub snapshot (not a local folder) carrying the sentence-transformers configs
    d = _make_st_folder(tmp_path / "st", tiny["bert"], pooling="cls", normalize=True)
    _put_snapshot(fake_hub, "tiny-hub/st-bert", SHA_A, d)
    enc = get_encoder("tiny-hub/st-bert", device="cpu")
    assert not enc.local and enc.commit == SHA_A
    assert (enc.pooling, enc.normalize) == ("cls", True)
    ref = _hidden(d, SHORT)[0]
    np.testing.assert_allclose(enc.embed([SHORT], progress=False)[0], ref / np.linalg.norm(ref), atol=1e-5)
    # and a hub model without them keeps the family defaults
    _put_snapshot(fake_hub, "tiny-hub/plain-bert", SHA_B, tiny["bert"])
    plain = get_encoder("tiny-hub/plain-bert", device="cpu")
    assert (plain.pooling, plain.normalize) == ("mean", False)


# --------------------------------------------------------------------------------------------
# RAD-DINO: its own image processor (size, mean/std) from the model folder, CLS pooling
# --------------------------------------------------------------------------------------------
RAD_CROP, RAD_PATCH = 56, 8
RAD_MEAN, RAD_STD = [0.2, 0.5, 0.7], [0.1, 0.3, 0.6]  # unlike ImageNet's, and per channel


def _rad_dino_like(d):
    torch.manual_seed(0)
    T.Dinov2Model(T.Dinov2Config(image_size=RAD_CROP, patch_size=RAD_PATCH, hidden_size=32,
                                 num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2)).save_pretrained(d)
    T.BitImageProcessor(size={"shortest_edge": RAD_CROP}, crop_size={"height": RAD_CROP, "width": RAD_CROP},
                        image_mean=RAD_MEAN, image_std=RAD_STD, do_convert_rgb=True).save_pretrained(d)


def test_rad_dino_uses_its_own_processor_size_and_normalisation(tmp_path):
    from semalign.encoders import encoder_specs

    d = tmp_path / "rad-dino-like"
    d.mkdir()
    _rad_dino_like(d)
    # the registry's rad-dino entry, pointed at the tiny folder
    spec = {k: v for k, v in encoder_specs()["rad-dino"].items() if k not in ("name", "_source")}
    spec.update(id=str(d), dim=32)
    register_encoder("tiny-rad-dino", spec)
    enc = get_encoder("tiny-rad-dino", device="cpu")
    assert enc.pooling == "cls" == encoder_specs()["rad-dino"]["pooling"]

    seen = []
    enc.model.register_forward_hook(lambda m, args, kwargs, out: seen.append((kwargs["pixel_values"], out)),
                                    with_kwargs=True)
    grey = np.full((70, 90), 200, dtype=np.uint8)             # constant, wider than tall
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(30, 100), dtype=np.uint8)  # smaller than the crop: upscaled
    emb = enc.embed([grey, small], batch_size=2, progress=False)
    (pix, out), = seen
    assert tuple(pix.shape) == (2, 3, RAD_CROP, RAD_CROP)
    # the folder's mean/std, channel by channel (not ImageNet's): (200/255 - mean) / std
    for c in range(3):
        np.testing.assert_allclose(pix[0, c].numpy(), (200 / 255 - RAD_MEAN[c]) / RAD_STD[c], atol=1e-3)
    # the patch grid follows the size: CLS + (56/8)^2 tokens
    assert out.last_hidden_state.shape[1] == 1 + (RAD_CROP // RAD_PATCH) ** 2
    # CLS pooling: the first token, which for DINOv2 is also the pooler output
    np.testing.assert_allclose(emb, out.last_hidden_state[:, 0].float().numpy(), atol=1e-6)
    np.testing.assert_allclose(emb, out.pooler_output.float().numpy(), atol=1e-6)
    # and the cache key records that processor, so another size or mean/std is another key
    pre = enc.fingerprint()["preprocessing"]
    assert pre["crop_size"] == {"height": RAD_CROP, "width": RAD_CROP}
    assert pre["image_mean"] == RAD_MEAN and pre["image_std"] == RAD_STD


def test_registry_preprocessing_text_is_not_in_the_cache_key(tiny):
    # the registry's `preprocessing:` describes; the key records the tokenizer settings used
    base = {"kind": "hf", "id": str(tiny["bert"]), "modality": "text", "domain": "general", "pooling": "mean"}
    register_encoder("desc-a", dict(base, preprocessing="own tokenizer, max 16 tokens"))
    register_encoder("desc-b", dict(base, preprocessing="reworded description"))
    fa = get_encoder("desc-a", device="cpu").fingerprint()
    fb = get_encoder("desc-b", device="cpu").fingerprint()
    fa.pop("name"), fb.pop("name")
    assert fa == fb and fa["preprocessing"]["max_length"] == 128
