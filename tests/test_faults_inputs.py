"""Bad input to the encoders, the data loaders and align (issue #9, item 7): each case gives one
clear error (a :class:`semalign.errors.SemalignError`) that says what to do, or a correct result.

Every test here failed on the code before the fix (a traceback, a silent default, a hub error
for a local path, or NaN returned).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from semalign.cli import main
from semalign.data import DataError, get_task, load_dataset
from semalign.data import manifests as M
from semalign.encoders import Encoder, EncoderError, encoder_specs, get_encoder, register_encoder, resolve_device
from semalign.encoders import base as enc_base
from semalign.errors import SemalignError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("SEMALIGN_DATA", "SEMALIGN_MIMIC_CXR", "SEMALIGN_RSNA", "SEMALIGN_VINDR_CXR", "SEMALIGN_IU_XRAY",
                "SEMALIGN_ENCODERS", "SEMALIGN_MODELS_DIR", "SEMALIGN_OPENI_REPORTS"):
        monkeypatch.delenv(var, raising=False)
    yield
    enc_base._USER_SPECS.clear()


# ============================================================================ data: folders for files
def _rsna_copy(root: Path, n: int = 40) -> Path:
    """A fake RSNA copy (made-up ids) with the manifest's columns."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"patientId": f"fake-{i:04d}", "x": None, "y": None, "width": None, "height": None,
             "Target": int(i % 2)} for i in range(n)]
    pd.DataFrame(rows).to_csv(root / "stage_2_train_labels.csv", index=False)
    (root / "stage_2_train_images").mkdir()
    for r in rows:
        (root / "stage_2_train_images" / f"{r['patientId']}.dcm").write_bytes(b"")
    return root


def test_folder_where_a_pinned_label_file_should_be(tmp_path, monkeypatch, capsys):
    # the manifest pins stage_2_train_labels.csv's sha256: hashing a folder was a traceback
    root = _rsna_copy(tmp_path / "rsna")
    label = root / "stage_2_train_labels.csv"
    label.unlink()
    label.mkdir()
    (label / "stage_2_train_labels.csv").write_text("unpacked in place\n")
    monkeypatch.setenv("SEMALIGN_RSNA", str(root))
    r = M.check("rsna-pneumonia")
    st = next(s for s in r["files"] if s.path == "stage_2_train_labels.csv")
    assert st.status == "not a file" and str(label) in st.detail and "folder" in st.detail
    assert r["state"] == "damaged" and str(label) in r["next_step"] and "move" in r["next_step"]
    with pytest.raises(DataError, match=r"stage_2_train_labels.csv: not a file .*is a folder"):
        get_task("rsna-pneumonia", n_test_per_class=5)
    assert main(["data", "check", "rsna-pneumonia"]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "not a file" in out and str(label) in out


def test_folder_where_an_unpinned_file_should_be_is_not_present(tmp_path, monkeypatch):
    # a file without sha256 and columns used to be reported "present" when it was a folder
    m = M.get_manifest("rsna-pneumonia")
    spec = next(f for f in m["files"] if f["path"] == "stage_2_train_labels.csv")
    monkeypatch.setitem(spec, "sha256", None)
    monkeypatch.delitem(spec, "columns", raising=False)
    root = _rsna_copy(tmp_path / "rsna")
    (root / "stage_2_train_labels.csv").unlink()
    (root / "stage_2_train_labels.csv").mkdir()
    st = M.check_file(m, root, spec)
    assert st.status == "not a file" and str(root / "stage_2_train_labels.csv") in st.detail


def test_label_reader_names_a_folder(tmp_path):
    p = tmp_path / "labels.csv"
    p.mkdir()
    with pytest.raises(DataError, match=rf"{p}.* is a folder.*expects a file"):
        M.check_columns(p, ["a"], "rsna-pneumonia")


def test_dataset_path_that_is_a_file(tmp_path, monkeypatch):
    root = _rsna_copy(tmp_path / "rsna")
    monkeypatch.setenv("SEMALIGN_RSNA", str(root / "stage_2_train_labels.csv"))
    r = M.check("rsna-pneumonia")
    assert r["state"] == "damaged" and "$SEMALIGN_RSNA" in r["next_step"] and "is a file" in r["next_step"]
    with pytest.raises(DataError, match=r"SEMALIGN_RSNA points at .*which is a file"):
        get_task("rsna-pneumonia", n_test_per_class=5)


def test_openi_archive_that_is_a_folder(tmp_path, monkeypatch):
    folder = tmp_path / "NLMCXR_reports.tgz"
    folder.mkdir()
    monkeypatch.setenv("SEMALIGN_OPENI_REPORTS", str(folder))
    with pytest.raises(DataError, match=r"is a folder .*SEMALIGN_OPENI_REPORTS at the NLMCXR_reports.tgz file"):
        load_dataset("openi-reports")
    r = M.check("openi-reports-offline")
    assert r["state"] == "damaged" and r["files"][0].status == "not a file"


def test_mimic_reports_zip_that_is_a_folder(tmp_path):
    from semalign.data.sources.mimic import _open_reports

    (tmp_path / "mimic-cxr-reports.zip").mkdir()
    with pytest.raises(DataError, match=r"mimic-cxr-reports.zip is a folder, not the zip"):
        _open_reports(tmp_path)


def test_malformed_manifest_is_one_data_error(tmp_path, monkeypatch, repo_root):
    folder = tmp_path / "manifests"
    shutil.copytree(repo_root / "data_manifests", folder)
    monkeypatch.setenv("SEMALIGN_MANIFESTS", str(folder))
    (folder / "rsna-pneumonia.yml").write_text("name: [unclosed\n")
    with pytest.raises(DataError, match=r"invalid manifest .*rsna-pneumonia.yml.*YAML"):
        M.manifests()
    (folder / "rsna-pneumonia.yml").write_text("- a list\n- not a manifest\n")
    with pytest.raises(DataError, match=r"rsna-pneumonia.yml: holds a list, not a mapping"):
        M.manifests()


# ============================================================================ SEMALIGN_ENCODERS
@pytest.mark.parametrize("content,problem", [
    ("encoders: {x: [\n", r"is not valid YAML \(line \d+, column \d+"),
    ("- a\n- b\n", r"holds a list, not a mapping"),
    ("just a string\n", r"holds a str, not a mapping"),
    ("encoders: [a, b]\n", r"`encoders:` must map names to specs \(got a list\)"),
    ("encoders: {mine: 3}\n", r"entry 'mine' must be a mapping with a `kind:`"),
    ("encoders: {mine: {modality: text}}\n", r"entry 'mine' must be a mapping with a `kind:`"),
    ("module: [a, b]\nencoders: {}\n", r"`module:` must be a Python module name"),
    (b"encoders: {caf\xe9: {kind: hf}}\n", r"is not UTF-8 text"),
])
def test_malformed_semalign_encoders_file(tmp_path, monkeypatch, content, problem):
    p = tmp_path / "mine.yml"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.setenv("SEMALIGN_ENCODERS", str(p))
    with pytest.raises(EncoderError, match=rf"SEMALIGN_ENCODERS file {p}.*{problem}") as e:
        encoder_specs()
    assert "SEMALIGN_ENCODERS" in str(e.value).split(str(p), 1)[1]  # says where to fix it
    assert isinstance(e.value, SemalignError)


def test_semalign_encoders_naming_a_missing_file_or_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEMALIGN_ENCODERS", str(tmp_path / "nope.yml"))
    with pytest.raises(EncoderError, match=r"SEMALIGN_ENCODERS names .*nope.yml, which does not exist"):
        encoder_specs()
    monkeypatch.setenv("SEMALIGN_ENCODERS", str(tmp_path))
    with pytest.raises(EncoderError, match=r"SEMALIGN_ENCODERS names .*which is not a file"):
        encoder_specs()
    # the command line: one line, exit status 2
    assert main(["encoders"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SEMALIGN_ENCODERS" in err and "Traceback" not in err


def test_a_good_semalign_encoders_file_still_works(tmp_path, monkeypatch):
    p = tmp_path / "mine.yml"
    p.write_text("encoders:\n  my-encoder: {kind: hf, id: org/model, modality: text, domain: general}\n")
    monkeypatch.setenv("SEMALIGN_ENCODERS", f"{p}{os.pathsep}")
    assert encoder_specs()["my-encoder"]["id"] == "org/model"


# ============================================================================ --device / --batch-size
class _Echo(Encoder):
    def _embed_batch(self, batch):
        return np.array([[len(t), 1.0] for t in batch], dtype=np.float32)


@enc_base.register_kind("faults-echo")
def _build_echo(spec, device):
    return _Echo.from_spec(spec, device=device)


def _echo(name="echo", **kw):
    register_encoder(name, {"kind": "faults-echo", "modality": "text", "domain": "general", "dim": 2, **kw})
    return get_encoder(name, device="cpu")


@pytest.mark.parametrize("bad", ["nonsense", "gpu", "cuda:", "cuda:x", "cuda0", "", "cpu:0:1", None, 3])
def test_invalid_device_is_refused(bad):
    with pytest.raises(EncoderError, match=r"device .* is not valid: use auto, cpu, cuda, cuda:N .* or mps"):
        resolve_device(bad)
    register_encoder("echo", {"kind": "faults-echo", "modality": "text", "domain": "general", "dim": 2})
    with pytest.raises(EncoderError, match=r"is not valid"):
        get_encoder("echo", device=bad)


def test_valid_devices_still_resolve():
    assert resolve_device("cpu") == "cpu" and resolve_device("CPU") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("mps") == "mps"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")


def test_explicit_gpu_that_is_absent_is_one_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    register_encoder("echo", {"kind": "faults-echo", "modality": "text", "domain": "general", "dim": 2})
    with pytest.raises(EncoderError, match=r"'cuda:0': CUDA is not available here.*--device cpu"):
        get_encoder("echo", device="cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(EncoderError, match=r"'cuda:5': this machine has 2 CUDA device"):
        get_encoder("echo", device="cuda:5")


@pytest.mark.parametrize("args,problem", [
    (["--device", "nonsense"], r"argument --device: device 'nonsense' is not valid"),
    (["--batch-size", "0"], r"argument --batch-size: must be a positive whole number .*got '0'"),
    (["--batch-size", "-4"], r"argument --batch-size: must be a positive whole number .*got '-4'"),
    (["--batch-size", "many"], r"argument --batch-size: must be a positive whole number .*got 'many'"),
])
def test_embed_cli_refuses_bad_device_and_batch_size(capsys, args, problem):
    with pytest.raises(SystemExit) as e:
        main(["embed", "minilm-l6", "openi-reports", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert re.search(problem, err), err


def test_embed_cli_accepts_good_device_and_batch_size():
    from semalign.cli import build_parser

    a = build_parser().parse_args(["embed", "minilm-l6", "openi-reports", "--device", "CUDA:1", "--batch-size", "8"])
    assert (a.device, a.batch_size) == ("cuda:1", 8)
    a = build_parser().parse_args(["embed", "minilm-l6", "openi-reports"])
    assert (a.device, a.batch_size) == ("auto", None)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "8", True])
def test_embed_refuses_a_batch_size_that_is_not_a_positive_int(bad):
    enc = _echo()
    with pytest.raises(EncoderError, match=r"batch_size=...\) must be a positive whole number"):
        enc.embed(["a", "bb"], batch_size=bad, progress=False)
    with pytest.raises(EncoderError, match=r"batch_size must be a positive whole number"):
        _Echo("echo", "text", "general", 2, batch_size=bad)


def test_good_batch_sizes_still_work():
    enc = _echo(batch_size=3)
    assert enc.batch_size == 3
    out = enc.embed(["a", "bbb", "cc"], batch_size=1, progress=False)
    assert out[:, 0].tolist() == [1.0, 3.0, 2.0]


# ============================================================================ names that escape
@pytest.mark.parametrize("name", ["..", ".", "../x", "a/../../b", "a/b", "x\\y", "", "..*", "../", "bad\x00name"])
def test_registry_names_that_would_escape_their_folder_are_refused(tmp_path, monkeypatch, name):
    spec = {"kind": "faults-echo", "modality": "text", "domain": "general", "dim": 2}
    with pytest.raises(EncoderError, match=r"is not allowed"):
        register_encoder(name, spec)
    p = tmp_path / "mine.yml"
    p.write_text(json.dumps({"encoders": {name: spec}}))  # JSON is YAML
    monkeypatch.setenv("SEMALIGN_ENCODERS", str(p))
    with pytest.raises(EncoderError, match=r"SEMALIGN_ENCODERS file .*entry .* is not allowed"):
        encoder_specs()


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/../b", "/abs", "~user", "..*", ""])
def test_encoder_objects_refuse_escaping_names(name):
    # whatever built it (a kind builder given a spec with that name, a custom subclass)
    with pytest.raises(EncoderError, match=r"encoder name .* is not allowed"):
        _Echo(name, "text", "general", 2)
    with pytest.raises(EncoderError, match=r"encoder name .* is not allowed"):
        _build_echo({"name": name, "kind": "faults-echo", "modality": "text", "domain": "general", "dim": 2}, "cpu")


def test_cache_entry_of_an_allowed_name_stays_in_the_cache(tmp_path):
    from semalign.cache import embed_cached, embeddings_dir

    for name in ("org/model", "plain-name", "v1.2_x"):
        enc = _Echo(name, "text", "general", 2)
        embed_cached(enc, ["a", "bb"], ["i1", "i2"], "faults@1", progress=False)
    inside = [p.resolve() for p in embeddings_dir().glob("*/*/embeddings.npy")]
    assert len(inside) == 3
    assert all(embeddings_dir().resolve() in p.parents for p in inside)


def test_models_dir_lookup_never_leaves_models_dir(tmp_path, monkeypatch):
    from semalign.encoders.hf import resolve_source

    (tmp_path / "models").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "config.json").write_text("{}")
    (tmp_path / "a" / "cwd").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "cwd")
    monkeypatch.setenv("SEMALIGN_MODELS_DIR", str(tmp_path / "models"))
    # ../outside is not beside the cwd; before the fix it was found as models/../outside
    with pytest.raises(EncoderError, match=r"does not exist \(no such folder\)"):
        resolve_source({"name": "esc", "kind": "hf", "id": "../outside"})
    # a real hub id under the models dir still resolves
    (tmp_path / "models" / "org" / "m").mkdir(parents=True)
    (tmp_path / "models" / "org" / "m" / "config.json").write_text("{}")
    assert resolve_source({"name": "ok", "kind": "hf", "id": "org/m"}) == (str(tmp_path / "models" / "org" / "m"), True)


# ============================================================================ embed /etc
def test_folder_without_config_json_says_so_before_any_hub_logic(tmp_path, monkeypatch, capsys):
    import semalign.encoders.hf as hf

    def no_hub(*a, **k):  # the hub must never be asked about a local path
        raise AssertionError("hub consulted for a local path")

    monkeypatch.setattr(hf, "hub_snapshot", no_hub)
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(EncoderError, match=r"is a folder but holds no config.json \(not a saved model\)"):
        get_encoder(str(folder), device="cpu")
    assert main(["embed", str(folder), "openi-reports"]) == 2
    err = capsys.readouterr().err
    assert "holds no config.json" in err and "hub" not in err.split("(not a saved model)")[0]
    assert "could not be reached" not in err and "huggingface.co" not in err


@pytest.mark.parametrize("raw", ["/no/such/model/folder", "./no-such-folder", "../no-such-folder", "~/no-such-semalign-model"])
def test_path_like_string_that_does_not_exist_is_no_such_folder(tmp_path, monkeypatch, raw):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EncoderError, match=r"no such folder") as e:
        get_encoder(raw, device="cpu")
    assert "huggingface.co" not in str(e.value) and "could not be reached" not in str(e.value)


def test_file_given_as_a_model_folder(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"")
    with pytest.raises(EncoderError, match=r"is a file, not a model folder"):
        get_encoder(str(f), device="cpu")


def test_dot_dot_as_an_encoder_is_a_folder_question_not_a_cache_path(tmp_path, monkeypatch):
    (tmp_path / "child").mkdir()
    monkeypatch.chdir(tmp_path / "child")
    with pytest.raises(EncoderError, match=r"\.\. is a folder but holds no config.json"):
        get_encoder("..", device="cpu")


def test_relative_hub_id_like_folder_without_config_is_left_to_the_hub(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)  # e.g. a partial download beside a notebook
    monkeypatch.chdir(tmp_path)
    spec = enc_base.resolve_spec("org/name")
    assert spec["_source"] == "hub id" and spec["id"] == "org/name"


# a saved (tiny, random) BERT: local model folders given as paths must keep working
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    torch = pytest.importorskip("torch")
    T = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("local-model") / "tiny-bert"
    d.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "heart", "is", "normal", "."]
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = T.BertTokenizer(str(d / "vocab.txt"))
    torch.manual_seed(0)
    T.BertModel(T.BertConfig(vocab_size=len(words), max_position_embeddings=32, hidden_size=16,
                             num_hidden_layers=1, num_attention_heads=2, intermediate_size=20)).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_local_model_folder_given_as_a_path_still_works(tiny_bert, tmp_path, monkeypatch):
    ref = get_encoder(str(tiny_bert), device="cpu")
    assert ref.local and ref.name == "tiny-bert"
    x = ref.embed(["the heart is normal ."], progress=False)
    assert x.shape == (1, 16) and np.isfinite(x).all()
    (tiny_bert / "sub").mkdir(exist_ok=True)
    # a path through "..": named after the folder it resolves to, never ".."
    via_dotdot = get_encoder(str(tiny_bert / "sub" / ".."), device="cpu")
    assert via_dotdot.name == "tiny-bert"
    monkeypatch.chdir(tiny_bert.parent)
    rel = get_encoder("./tiny-bert", device="cpu")
    assert rel.name == "tiny-bert"
    np.testing.assert_array_equal(rel.embed(["the heart is normal ."], progress=False), x)


# ============================================================================ align: NaN / inf / overflow
def _anchors(n=40, d1=6, d2=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d1)), rng.normal(size=(n, d2))


def test_nan_and_inf_inputs_are_one_clear_semalign_error():
    from semalign.align import NonFiniteError, Translator

    x, y = _anchors()
    bad = x.copy()
    bad[[2, 7], 1] = np.nan
    bad[7, 3] = np.inf
    with pytest.raises(NonFiniteError, match=r"x_anchors .*contains 3 NaN/inf values \(first rows \[2, 7\]\)") as e:
        Translator("ortho").fit(bad, y)
    assert isinstance(e.value, SemalignError) and isinstance(e.value, ValueError)
    with pytest.raises(NonFiniteError, match=r"y_anchors .*contains 5 NaN/inf values \(first rows \[5\]\)"):
        Translator("linear").fit(x, np.where(np.arange(40)[:, None] == 5, -np.inf, y))
    t = Translator("linear").fit(x, y)
    with pytest.raises(NonFiniteError, match=r"^x .*contains 6 NaN/inf values \(first rows \[0\]\)"):
        t.transform(np.where(np.arange(40)[:, None] == 0, np.nan, x))
    with pytest.raises(NonFiniteError, match=r"^y .*contains 10 NaN/inf"):
        t.inverse_transform(np.full((2, 5), np.nan))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_values_beyond_float32_are_named_as_a_conversion_problem():
    from semalign.align import NonFiniteError, Translator

    x, y = _anchors()
    with pytest.raises(NonFiniteError, match=r"after conversion to float32.*pass float64"):
        Translator("ortho").fit((x * 1e300).astype(np.longdouble), y)


@pytest.mark.parametrize("method,std_scaling,scale,dtype,advice", [
    ("linear", True, 1e200, np.float64, "rescale the embeddings"),      # variance overflows
    ("ortho", True, 1e200, np.float64, "rescale the embeddings"),
    ("affine", False, 1e200, np.float64, "std_scaling=True"),           # Gram matrix overflows
    ("ortho", False, 1e200, np.float64, "std_scaling=True"),            # xᵀy overflows
    ("ortho", False, 1e37, np.float32, "float64"),
    ("affine", False, 1e37, np.float32, "float64"),
])
def test_overflow_in_fit_is_one_clear_error_never_a_nan_map(method, std_scaling, scale, dtype, advice):
    from semalign.align import NonFiniteError, NotFittedError, Translator

    x, y = _anchors()
    xa, ya = (x * scale).astype(dtype), (y * scale).astype(dtype)
    assert np.isfinite(xa).all() and np.isfinite(ya).all()
    t = Translator(method, std_scaling=std_scaling)
    with pytest.raises(NonFiniteError, match=r"\.fit: .*NaN/inf although the inputs are finite") as e:
        t.fit(xa, ya)
    assert advice in str(e.value) and "largest |x_anchors|" in str(e.value)
    with pytest.raises(NotFittedError):  # a failed fit leaves nothing half-fitted behind
        t.transform(x.astype(dtype))


@pytest.mark.parametrize("dtype,scale,boost", [(np.float64, 1e150, 1e170), (np.float32, 1e18, 1e25)])
@pytest.mark.parametrize("method", ["linear", "ortho", "affine", "l-ortho"])
def test_overflow_in_transform_is_one_clear_error(method, dtype, scale, boost):
    from semalign.align import NonFiniteError, Translator

    x, y = _anchors()
    # the map multiplies by the target's std over the source's (~scale): inputs ~boost land
    # ~boost·scale, beyond the dtype's range (1e320 > 1.8e308; 1e43 > 3.4e38)
    t = Translator(method).fit(x.astype(dtype), (y * scale).astype(dtype))
    assert np.isfinite(t.transform(x.astype(dtype))).all()
    with pytest.raises(NonFiniteError, match=r"\.transform: the output .* holds NaN/inf.*largest \|x\|"):
        t.transform((x[:3] * boost).astype(dtype))
    back = Translator(method).fit((x * scale).astype(dtype), y.astype(dtype))
    assert np.isfinite(back.inverse_transform(y.astype(dtype))).all()
    with pytest.raises(NonFiniteError, match=r"\.inverse_transform: the output .* holds NaN/inf.*largest \|y\|"):
        back.inverse_transform((y[:3] * boost).astype(dtype))


def test_overflow_in_transform_without_scaling():
    from semalign.align import NonFiniteError, Translator

    x, y = _anchors()
    t = Translator("ortho", std_scaling=False).fit(x, y)  # R orthogonal: |x R| = |x| per row
    with pytest.raises(NonFiniteError, match=r"refit with std_scaling=True"):
        t.transform(np.full((2, 6), 1.7e308))


def test_large_but_representable_inputs_still_give_a_result():
    from semalign.align import METHODS, Translator

    x, y = _anchors()
    for m in METHODS:  # 1e100 is far from float64's limits once standardised
        out = Translator(m).fit(x * 1e100, y * 1e100).transform(x * 1e100)
        assert out.shape == (40, 5) and np.isfinite(out).all()
