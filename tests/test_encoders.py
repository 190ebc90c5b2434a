"""Registry and embedding engine: lookup, errors, lazy kind modules, batching order, OOM back-off."""

from __future__ import annotations

import math
import sys
import textwrap

import numpy as np
import pytest

from semalign.encoders import (DOMAINS, Encoder, EncoderError, encoder_specs, get_encoder, list_encoders,
                               register_encoder, register_kind, resolve_device)
from semalign.encoders import base as enc_base


@pytest.fixture(autouse=True)
def _forget_user_specs():
    yield
    enc_base._USER_SPECS.clear()


class CountingEncoder(Encoder):
    """Text -> [len, first char code, ...]: deterministic, and records every batch it sees."""

    def __init__(self, *a, oom_above=None, **kw):
        super().__init__(*a, **kw)
        self.batches: list[list] = []
        self.oom_above = oom_above

    def _embed_batch(self, batch):
        if self.oom_above is not None and len(batch) > self.oom_above:
            import torch

            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.batches.append(list(batch))
        return np.array([[len(t), ord(t[0]) if t else 0] for t in batch], dtype=np.float32)


@register_kind("counting-test")
def _build_counting(spec, device):
    return CountingEncoder.from_spec(spec, device=device)


def _enc(device="cpu", dtype=None, **kw):
    spec = {"kind": "counting-test", "modality": "text", "domain": "general", "dim": 2}
    spec.update(kw)
    register_encoder("counting", spec)
    return get_encoder("counting", device=device, dtype=dtype)


def test_every_shipped_registry_file_loads_and_names_are_unique():
    specs = encoder_specs()
    for name in ["minilm-l6", "mpnet-base", "wordllama-256", "efficientnet-lite0", "mobilenet-v2",
                 "vit-s16", "dinov2-base", "rad-dino", "roberta-base", "llama-2-7b", "biolord-2023",
                 "meditron-7b", "clip-vit-b32-image", "clip-vit-b32-text"]:
        assert name in specs, name
    for name, s in specs.items():
        assert s.get("modality") in ("text", "image"), name
        assert s.get("domain") in DOMAINS, name
        assert "kind" in s
        assert s.get("module") or s["kind"] in enc_base.BUILTIN_KIND_MODULES, name


def test_paper_entries_carry_hub_id_licence_access_and_pooling():
    specs = encoder_specs()
    for name in ["vit-s16", "dinov2-base", "rad-dino", "roberta-base", "llama-2-7b", "biolord-2023",
                 "meditron-7b", "clip-vit-b32-image", "clip-vit-b32-text"]:
        s = specs[name]
        assert "/" in s["id"] and s.get("revision") and s.get("licence") and s.get("access"), name
        assert s["pooling"] in ("cls", "mean", "last-token", "clip"), name
    assert specs["rad-dino"]["domain"] == specs["biolord-2023"]["domain"] == "medical"
    assert specs["llama-2-7b"]["gated"] is True


def test_list_encoders_filters():
    text = list_encoders(modality="text")
    assert "minilm-l6" in text and "mobilenet-v2" not in text
    assert set(list_encoders(domain="medical")) >= {"rad-dino", "biolord-2023", "meditron-7b"}


def test_unknown_name_lists_known_and_says_how_to_add():
    with pytest.raises(EncoderError) as e:
        get_encoder("not-an-encoder")
    msg = str(e.value)
    assert "minilm-l6" in msg and "SEMALIGN_ENCODERS" in msg and "register_encoder" in msg


def test_hub_id_registered_twice_is_ambiguous():
    with pytest.raises(EncoderError, match="clip-vit-b32-image, clip-vit-b32-text"):
        get_encoder("openai/clip-vit-base-patch32")


def test_kind_module_is_imported_lazily_only_when_built(tmp_path, monkeypatch):
    mod = tmp_path / "lazy_kind_mod.py"
    mod.write_text(textwrap.dedent("""
        import numpy as np
        from semalign.encoders import Encoder, register_kind
        class Z(Encoder):
            def _embed_batch(self, batch):
                return np.zeros((len(batch), self.dim))
        @register_kind("lazy-kind")
        def build(spec, device):
            return Z.from_spec(spec, device=device)
    """))
    y = tmp_path / "reg.yml"
    y.write_text("module: lazy_kind_mod\nencoders:\n  lazy-one: {kind: lazy-kind, modality: text, "
                 "domain: general, dim: 3}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SEMALIGN_ENCODERS", str(y))
    assert "lazy-one" in list_encoders()
    assert "lazy_kind_mod" not in sys.modules
    enc = get_encoder("lazy-one", device="cpu")
    assert "lazy_kind_mod" in sys.modules
    assert enc.embed(["a", "b"], progress=False).shape == (2, 3)


def test_missing_kind_module_is_a_clear_error():
    register_encoder("broken", {"kind": "nope-kind", "module": "no_such_module_xyz", "modality": "text",
                                "domain": "general", "dim": 2})
    with pytest.raises(EncoderError, match="no_such_module_xyz"):
        get_encoder("broken")


def test_sorted_batches_restore_input_order():
    enc = _enc()
    texts = ["bb", "a", "dddd", "ccc", "", "eeeee"]
    out = enc.embed(texts, batch_size=2, progress=False)
    np.testing.assert_array_equal(out[:, 0], [len(t) for t in texts])
    # longest first, and each batch holds similar lengths
    assert [len(t) for b in enc.batches for t in b] == [5, 4, 3, 2, 1, 0]
    assert out.dtype == np.float32 and out.shape == (6, 2)


def test_oom_halves_batch_size_and_finishes():
    enc = _enc()
    enc.oom_above = 3
    texts = [f"t{i}" * (i + 1) for i in range(10)]
    out = enc.embed(texts, batch_size=16, progress=False)
    np.testing.assert_array_equal(out[:, 0], [len(t) for t in texts])
    assert max(len(b) for b in enc.batches) <= 3 and enc.last_batch_size == 2


def test_oom_at_batch_size_one_is_raised():
    enc = _enc()
    enc.oom_above = 0
    with pytest.raises(Exception, match="out of memory"):
        enc.embed(["a"], batch_size=4, progress=False)


def test_other_errors_are_not_swallowed():
    class Bad(Encoder):
        def _embed_batch(self, batch):
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        Bad("bad", "text", "general", 2).embed(["a", "b"], progress=False)


def test_wrong_batch_shape_is_reported():
    class Wrong(Encoder):
        def _embed_batch(self, batch):
            return np.zeros((len(batch), 3))

    with pytest.raises(EncoderError, match="expected"):
        Wrong("w", "text", "general", 2).embed(["a"], progress=False)


@pytest.mark.parametrize("bad", ["one string", [1, 2], None])
def test_text_input_validation(bad):
    enc = _enc()
    with pytest.raises((EncoderError, TypeError)):
        enc.embed(bad, progress=False)


def test_empty_input_gives_empty_matrix():
    assert _enc().embed([], progress=False).shape == (0, 2)


def test_bad_modality_or_domain_rejected():
    with pytest.raises(EncoderError, match="domain"):
        CountingEncoder("x", "text", "astrology", 2)
    with pytest.raises(EncoderError, match="modality"):
        CountingEncoder("x", "audio", "general", 2)


def _fake_accelerators(monkeypatch, cuda=False, bf16=False, mps=False):
    """Pretend this machine has (or lacks) CUDA with/without bf16 and MPS. Only the
    availability checks are patched: no tensor goes to a device."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda,bf16,mps,device,dtype", [
    (True, True, False, "cuda", "bfloat16"),
    (True, False, False, "cuda", "float16"),     # an older GPU: fp16
    (True, True, True, "cuda", "bfloat16"),      # CUDA is preferred to MPS
    (False, False, True, "mps", "float16"),
    (False, True, False, "cpu", "float32"),      # no GPU: fp32, whatever bf16 says
])
def test_device_auto_order_and_default_dtype(monkeypatch, cuda, bf16, mps, device, dtype):
    _fake_accelerators(monkeypatch, cuda=cuda, bf16=bf16, mps=mps)
    assert resolve_device("auto") == device
    assert enc_base.default_dtype(device) == dtype
    # get_encoder wires both: the encoder is built for that device in that dtype
    enc = _enc(device="auto")
    assert (enc.device, enc.dtype) == (device, dtype)
    assert enc.fingerprint()["dtype"] == dtype
    # an explicit dtype (argument, then spec) wins over the device default
    assert _enc(device="auto", dtype="float32").dtype == "float32"
    assert _enc(device="auto", dtype="float16").dtype == "float16"
    register_encoder("counting-bf16", {"kind": "counting-test", "modality": "text",
                                       "domain": "general", "dim": 2, "dtype": "bfloat16"})
    assert get_encoder("counting-bf16", device="auto").dtype == "bfloat16"  # the spec's dtype
    # an explicit device is passed through, whatever is available
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_default_dtype_for_explicit_gpu_devices(monkeypatch):
    _fake_accelerators(monkeypatch, cuda=True, bf16=True)
    assert enc_base.default_dtype("cuda:1") == "bfloat16"
    _fake_accelerators(monkeypatch, cuda=True, bf16=False)
    assert enc_base.default_dtype("cuda:0") == "float16"
    assert enc_base.default_dtype("mps") == "float16" and enc_base.default_dtype("cpu") == "float32"
    assert _enc(device="cpu").dtype == "float32"  # CPU even with a GPU around: fp32


def test_device_auto_without_an_mps_backend_is_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delattr(torch.backends, "mps")  # torch builds without the MPS backend
    assert resolve_device("auto") == "cpu"


def test_fingerprint_holds_what_changes_numbers():
    fp = _enc(pooling="mean", revision="abc").fingerprint()
    assert fp["pooling"] == "mean" and fp["revision"] == "abc" and fp["dtype"] == "float32"
    assert _enc(pooling="cls").fingerprint() != fp


def test_cli_list_prints_every_encoder(capsys):
    from semalign.encoders import cli_list

    assert cli_list(None) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_encoders())


# --------------------------------------------------------------------------------------------
# preprocessing: every shipped entry records it, and the record agrees with the spec and code
# --------------------------------------------------------------------------------------------
PAPER_REGISTRY_FILES = ("registry.yml", "registry_medclip.yml")
PATCH_SIZES = (8, 14, 16, 32)


def _shipped_specs():
    from pathlib import Path

    specs = {n: s for n, s in encoder_specs().items() if Path(s["_source"]).name in PAPER_REGISTRY_FILES}
    assert len(specs) >= 16, sorted(specs)
    return specs


def _expected_image_side(spec):
    """The input side the code feeds the model, where the spec or the code fixes it."""
    import inspect

    if spec["kind"] == "cnn":
        from semalign.encoders import cnn

        return int(spec.get("crop", inspect.signature(cnn.preprocess).parameters["crop"].default))
    if spec["kind"] == "medclip":
        return int((spec.get("vision_config") or {}).get("image_size", 224))
    return None  # hf: the model folder's own processor decides (checked via tokens_per_input)


def test_every_registry_entry_records_its_preprocessing():
    import re

    for name, s in _shipped_specs().items():
        pre = s.get("preprocessing")
        assert isinstance(pre, str) and pre.strip(), f"{name}: no preprocessing recorded"
        pre_l = pre.lower()
        if s["modality"] == "text":
            assert "tokenizer" in pre_l and " px" not in pre_l, (name, pre)
            said = [int(x) for x in re.findall(r"max (\d+) tokens", pre)]
            if s.get("max_length"):
                assert said == [int(s["max_length"])], f"{name}: says {said}, max_length {s['max_length']}"
            else:
                assert not said and "not truncated" in pre_l, (name, pre)
        else:
            assert "tokenizer" not in pre_l and "max_length" not in s, (name, pre)
            sides = [int(x) for x in re.findall(r"(\d+) px", pre)]
            assert len(sides) == 1, f"{name}: one input size ('N px') expected in {pre!r}"
            side = sides[0]
            assert "grey" in pre_l, f"{name}: say how grey images are handled: {pre!r}"
            expected = _expected_image_side(s)
            if expected is not None:
                assert side == expected, f"{name}: says {side} px, the code uses {expected}"
            if s.get("tokens_per_input"):
                # tokens = 1 (CLS) + (side / patch)^2 for a square input
                grid = math.isqrt(int(s["tokens_per_input"]) - 1)
                assert grid * grid == int(s["tokens_per_input"]) - 1, name
                assert side % grid == 0 and side // grid in PATCH_SIZES, (
                    f"{name}: {side} px does not give {s['tokens_per_input']} tokens")
        if s["kind"] == "hf":
            # the hf kind uses the model folder's own tokenizer / image processor
            assert pre_l.startswith("own ") and ("tokenizer" in pre_l or "processor" in pre_l), (name, pre)
        if s["kind"] == "cnn":
            from semalign.encoders import cnn

            assert "imagenet mean/std" in pre_l and cnn.IMAGENET_MEAN == (0.485, 0.456, 0.406), name
        if s["kind"] == "medclip" and s["modality"] == "image":
            from semalign.encoders import medclip

            mean, std = (float(x) for x in re.search(r"mean ([0-9.]+) / std ([0-9.]+)", pre).groups())
            assert abs(mean - medclip.IMG_MEAN) < 1e-3 and abs(std - medclip.IMG_STD) < 1e-3, name


def test_preprocessing_sizes_match_the_registry_comments():
    specs = _shipped_specs()
    assert "518 px" in specs["rad-dino"]["preprocessing"] and "RAD-DINO" in specs["rad-dino"]["preprocessing"]
    assert "224 px" in specs["dinov2-base"]["preprocessing"]
    assert specs["rad-dino"]["pooling"] == specs["dinov2-base"]["pooling"] == "cls"


def test_cli_list_shows_each_encoders_preprocessing(capsys):
    from semalign.encoders import cli_list

    assert cli_list(None) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "preprocessing"
    rows = {line.split()[0]: line for line in lines[1:]}
    for name, s in encoder_specs().items():
        assert name in rows, name
        if s.get("preprocessing"):
            assert rows[name].rstrip().endswith(" ".join(s["preprocessing"].split())), name


def test_cli_embed_fills_the_cache(monkeypatch, capsys):
    import types
    from types import SimpleNamespace

    import pandas as pd

    import semalign.data
    from semalign.cache import list_entries
    from semalign.encoders import cli

    df = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "yy", "zzz"], "split": "train"})
    monkeypatch.setattr(semalign.data, "load_dataset", lambda name: df, raising=False)
    _enc()
    assert cli(SimpleNamespace(encoder="counting", dataset="toy-ds", device="cpu", batch_size=2)) == 0
    assert "3 x 2 embeddings" in capsys.readouterr().out
    (entry,) = list_entries()
    assert entry["complete"] and entry["dataset"].startswith("toy-ds@") and entry["n"] == 3
    assert cli(SimpleNamespace(encoder="nope", dataset="toy-ds", device="cpu", batch_size=None)) == 2
