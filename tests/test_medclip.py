"""MedCLIP loader: a checkpoint generated here in MedCLIP's key layout (tiny Swin + tiny BERT
built locally), since the real one is not reachable. The reference forward below is written
from MedCLIP's modeling_medclip.py / MedCLIPFeatureExtractor, independently of the loader."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from semalign.encoders import EncoderError, get_encoder, list_encoders, register_encoder  # noqa: E402
from semalign.encoders import medclip as mc  # noqa: E402

PROJ = 12
WORDS = ["heart", "size", "is", "normal", "mild", "cardiomegaly", "the", "lungs", "are", "clear",
         "no", "focal", "consolidation", "right", "lower", "lobe", "pneumonia", "."]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Tiny hub parts saved with save_pretrained, and a MedCLIP-layout checkpoint built from them."""
    from transformers import BertConfig, BertModel, BertTokenizerFast, SwinConfig, SwinModel

    root = tmp_path_factory.mktemp("medclip-parts")
    torch.manual_seed(0)
    vcfg = SwinConfig(image_size=32, patch_size=4, num_channels=3, embed_dim=8, depths=[1, 2],
                      num_heads=[1, 2], window_size=4)
    swin = SwinModel(vcfg, add_pooling_layer=True).eval()
    vdir = root / "swin"
    swin.save_pretrained(vdir)

    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    tcfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=3,
                      num_attention_heads=2, intermediate_size=24, max_position_embeddings=64)
    bert = BertModel(tcfg, add_pooling_layer=True).eval()
    tdir = root / "bert"
    bert.save_pretrained(tdir)
    tok.save_pretrained(tdir)

    w_img = torch.randn(PROJ, swin.num_features)
    w_txt = torch.randn(PROJ, tcfg.hidden_size)
    sd = {f"vision_model.model.{k}": v.clone() for k, v in swin.state_dict().items()}
    # buffers the 2022 transformers persisted (2-D relative_position_index, position_ids)
    for name, buf in swin.named_buffers():
        if name.endswith("relative_position_index"):
            n = int(round(buf.numel() ** 0.5))
            sd[f"vision_model.model.{name}"] = buf.clone().reshape(n, n)
    sd["vision_model.projection_head.weight"] = w_img
    sd.update({f"text_model.model.{k}": v.clone() for k, v in bert.state_dict().items()})
    sd["text_model.model.embeddings.position_ids"] = torch.arange(64).expand(1, -1).clone()
    sd["text_model.projection_head.weight"] = w_txt
    sd["logit_scale"] = torch.tensor(np.log(1 / 0.07), dtype=torch.float32)
    ckpt_dir = root / "medclip-vit"
    ckpt_dir.mkdir()
    torch.save(sd, ckpt_dir / "pytorch_model.bin")
    return dict(root=root, vdir=vdir, tdir=tdir, swin=swin, bert=bert, tok=tok, sd=sd,
                w_img=w_img, w_txt=w_txt, ckpt=ckpt_dir / "pytorch_model.bin", ckpt_dir=ckpt_dir)


def _spec(parts, modality, **kw):
    s = dict(kind="medclip", module="semalign.encoders.medclip", modality=modality, domain="medical",
             weights=str(parts["ckpt"]), vision_config=str(parts["vdir"]),
             text_config=str(parts["tdir"]), tokenizer=str(parts["tdir"]), proj_dim=PROJ)
    s.update(kw)
    return s


def _images(n=5, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(40, 30), (20, 20), (32, 32), (25, 60), (64, 48)]
    return [rng.integers(0, 256, size=shapes[i % len(shapes)], dtype=np.uint8) for i in range(n)]


# ---- reference, transcribed from MedCLIP (numpy canvas instead of PIL paste) ----------------
def _ref_pixels(img, size=32):
    from PIL import Image

    h, w = img.shape
    side = max(size, h, w)
    canvas = np.zeros((side, side), np.uint8)
    top, left = int((side - h) / 2), int((side - w) / 2)
    canvas[top:top + h, left:left + w] = img
    pil = Image.fromarray(canvas).resize((size, size), Image.BICUBIC)
    x = np.asarray(pil, np.float64) / 255.0
    return ((x - 0.5862785803043838) / 0.27950088968644304)[None]  # (1, size, size)


def _ref_image_embed(parts, imgs):
    from transformers import SwinModel

    swin = SwinModel.from_pretrained(parts["vdir"]).eval()
    pix = torch.tensor(np.stack([_ref_pixels(i) for i in imgs]), dtype=torch.float32)
    pix = pix.repeat((1, 3, 1, 1))  # MedCLIPVisionModelViT.forward
    with torch.no_grad():
        e = swin(pix)["pooler_output"] @ parts["w_img"].T
    return (e / e.norm(dim=-1, keepdim=True)).numpy()


def _ref_text_embed(parts, texts, padded_batch=False):
    """MedCLIPTextModel.forward: stack hidden_states[1], [2], [-1]; permute; mean(2).mean(1)."""
    from transformers import BertModel

    bert = BertModel.from_pretrained(parts["tdir"], output_hidden_states=True).eval()
    tok = parts["tok"]
    batches = [texts] if padded_batch else [[t] for t in texts]
    out = []
    with torch.no_grad():
        for b in batches:
            enc = tok(b, truncation=True, padding=True, max_length=77, return_tensors="pt")
            o = bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            hs = o["hidden_states"]
            last = torch.stack([hs[1], hs[2], hs[-1]])
            e = last.permute(1, 0, 2, 3).mean(2).mean(1) @ parts["w_txt"].T
            out.append(e / e.norm(dim=-1, keepdim=True))
    return torch.cat(out).numpy()


# ---- key mapping ----------------------------------------------------------------------------
def _model(parts, towers=("vision", "text")):
    return mc.MedCLIP(mc.load_config(str(parts["vdir"]), "swin"),
                      mc.load_config(str(parts["tdir"]), "bert"), proj_dim=PROJ, towers=towers)


def test_every_key_mapped(parts):
    model = _model(parts)
    mapped = mc.map_medclip_state_dict(parts["sd"], model)
    assert set(mapped) == set(model.state_dict())
    n_derived = sum(k.endswith(("relative_position_index", "position_ids")) for k in parts["sd"])
    assert n_derived >= 3  # the test checkpoint does carry the legacy buffers
    assert len(mapped) == len(parts["sd"]) - n_derived


def test_missing_key_refused(parts):
    sd = dict(parts["sd"])
    del sd["text_model.projection_head.weight"]
    del sd["vision_model.model.layernorm.bias"]
    with pytest.raises(mc.MedCLIPCheckpointError, match=r"2 missing: .*text_model.projection_head.weight"):
        mc.map_medclip_state_dict(sd, _model(parts))


def test_extra_key_refused(parts):
    sd = dict(parts["sd"])
    sd["classifier.weight"] = torch.zeros(2, 2)
    sd["vision_model.model.head.weight"] = torch.zeros(2, 2)
    with pytest.raises(mc.MedCLIPCheckpointError, match=r"2 unexpected: classifier.weight"):
        mc.map_medclip_state_dict(sd, _model(parts))


def test_wrong_shape_refused(parts):
    sd = dict(parts["sd"])
    sd["vision_model.projection_head.weight"] = torch.zeros(PROJ + 1, 16)
    with pytest.raises(mc.MedCLIPCheckpointError, match="wrong shape"):
        mc.map_medclip_state_dict(sd, _model(parts))


def test_wrong_derived_buffer_refused(parts):
    sd = dict(parts["sd"])
    sd["text_model.model.embeddings.position_ids"] = torch.zeros(1, 64, dtype=torch.long)
    with pytest.raises(mc.MedCLIPCheckpointError, match="buffers that differ"):
        mc.map_medclip_state_dict(sd, _model(parts))


def test_resnet_checkpoint_named(parts):
    sd = {"vision_model.model.conv1.weight": torch.zeros(1), "logit_scale": torch.zeros(())}
    with pytest.raises(mc.MedCLIPCheckpointError, match="ResNet50"):
        mc.map_medclip_state_dict(sd, _model(parts))


def test_meta_tower_checks_keys_without_memory(parts):
    model = _model(parts, towers=("vision",))
    assert all(p.is_meta for p in model.text.parameters())
    sd = dict(parts["sd"])
    del sd["text_model.model.encoder.layer.0.output.dense.weight"]
    with pytest.raises(mc.MedCLIPCheckpointError, match="missing"):
        mc.map_medclip_state_dict(sd, model)


# ---- forward equals the reference -----------------------------------------------------------
def test_image_embeddings_equal_reference(parts):
    enc = get_encoder_from_spec(parts, "image")
    imgs = _images()
    got = enc.embed(imgs, batch_size=2, progress=False)
    np.testing.assert_allclose(got, _ref_image_embed(parts, imgs), atol=1e-5)
    assert got.shape == (len(imgs), PROJ)
    assert enc.model.text is None  # the text tower was only checked (meta), then dropped
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_text_embeddings_equal_reference(parts):
    enc = get_encoder_from_spec(parts, "text")
    texts = ["the heart size is normal", "mild cardiomegaly", "no focal consolidation .",
             "pneumonia right lower lobe", "the lungs are clear"]
    got = enc.embed(texts, batch_size=3, progress=False)  # batched + padded, masked pooling
    np.testing.assert_allclose(got, _ref_text_embed(parts, texts), atol=1e-5)


def test_text_padded_pooling_reproduces_medclip_batch(parts):
    enc = get_encoder_from_spec(parts, "text", text_pooling="medclip-padded")
    texts = ["mild cardiomegaly", "no focal consolidation in the right lower lobe"]
    got = enc.embed(texts, batch_size=8, progress=False)
    np.testing.assert_allclose(got, _ref_text_embed(parts, texts, padded_batch=True), atol=1e-5)
    # and it differs from the unpadded (masked) embedding for the short prompt
    masked = _ref_text_embed(parts, texts)
    assert np.abs(got[0] - masked[0]).max() > 1e-4


def test_loader_accepts_zip_and_folder(parts, tmp_path):
    z = tmp_path / "medclip-vit-pretrained.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(parts["ckpt"], "medclip-vit/pytorch_model.bin")
    imgs = _images(2)
    want = _ref_image_embed(parts, imgs)
    for w in (z, parts["ckpt_dir"]):
        enc = get_encoder_from_spec(parts, "image", weights=str(w))
        np.testing.assert_allclose(enc.embed(imgs, progress=False), want, atol=1e-5)


def get_encoder_from_spec(parts, modality, **kw):
    name = f"test-medclip-{modality}"
    register_encoder(name, _spec(parts, modality, **kw))
    return get_encoder(name, device="cpu")


# ---- registry and missing weights -----------------------------------------------------------
def test_registry_lists_medclip():
    names = list_encoders()
    assert "medclip-vit-image" in names and "medclip-vit-text" in names


def test_no_weights_gives_one_clear_error(monkeypatch):
    monkeypatch.delenv(mc.WEIGHTS_ENV, raising=False)
    for name in ("medclip-vit-image", "medclip-vit-text"):
        with pytest.raises(EncoderError) as e:
            get_encoder(name, device="cpu")
        msg = str(e.value)
        assert mc.WEIGHTS_ENV in msg and mc.WEIGHTS_URL in msg and "RyanWangZf/MedCLIP" in msg


def test_weights_path_that_does_not_exist(monkeypatch, tmp_path):
    monkeypatch.setenv(mc.WEIGHTS_ENV, str(tmp_path / "nope.bin"))
    with pytest.raises(EncoderError, match="does not exist"):
        get_encoder("medclip-vit-image", device="cpu")


def test_registry_image_config_is_swin_tiny():
    """The inline vision config in the registry is Swin-tiny: transformers' SwinConfig defaults
    (what microsoft/swin-tiny-patch4-window7-224 ships), 768-d pooled output."""
    from transformers import SwinConfig

    from semalign.encoders import encoder_specs

    spec = encoder_specs()["medclip-vit-image"]
    cfg = mc.load_config(spec["vision_config"], "swin")
    default = SwinConfig()
    for k in ("image_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size",
              "mlp_ratio", "layer_norm_eps"):
        assert list(np.atleast_1d(getattr(cfg, k))) == list(np.atleast_1d(getattr(default, k))), k
    assert int(cfg.embed_dim * 2 ** (len(cfg.depths) - 1)) == 768


def test_preprocess_matches_reference():
    for img in _images():
        np.testing.assert_allclose(mc.preprocess_image(img, size=32), _ref_pixels(img), atol=1e-6)
