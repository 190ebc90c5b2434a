"""The one registration mechanism of semalign.data: what tasks declare (dataset, finding,
positive class, publishable), a new source added without editing any shared module, and the
frames and cache keys of every task equal to the code before the registry (run from
``$SEMALIGN_BASELINE``, a checkout of commit 266eea1, in a subprocess). That comparison is a
migration check, run by hand when the data layer changes (``git worktree add /tmp/base 266eea1;
SEMALIGN_BASELINE=/tmp/base pytest -m slow tests/test_data_registry.py``); without the variable
it is skipped, so the suite never depends on a folder outside the clone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import semalign.data.sources as sources
from semalign.cli import main
from semalign.data import DataError, Task, get_task, list_tasks, load_dataset, registry, task_spec
from semalign.data import manifests as M
from semalign.vocab import ZEROSHOT_FINDINGS, Domain, Modality

BASELINE = Path(os.environ.get("SEMALIGN_BASELINE") or "/nonexistent-semalign-baseline")
SYNTH = ["synthcxr-pneumonia", *(f"synthcxr-vindr-{f.key}" for f in ZEROSHOT_FINDINGS[1:])]
VINDR = [f"vindr-{f.key}" for f in ZEROSHOT_FINDINGS[1:]]


# ------------------------------------------------------------------ what tasks declare
def test_every_task_names_its_manifest_and_publishability():
    ms = M.manifests()
    for name in list_tasks():
        spec = task_spec(name)
        assert spec.dataset in ms, name
        assert spec.publishable == (ms[spec.dataset]["access"] != "credentialed"), name
    assert not task_spec("mimic-5x200").publishable and not any(task_spec(v).publishable for v in VINDR)
    assert task_spec("openi-5class").publishable and task_spec("rsna-pneumonia").publishable
    assert all(task_spec(s).publishable for s in SYNTH)


def test_finding_tasks_declare_their_finding_and_positive_class():
    want = {"synthcxr-pneumonia": "pneumonia", "rsna-pneumonia": "pneumonia",
            **{s: s.removeprefix("synthcxr-vindr-") for s in SYNTH[1:]}, **{v: v.removeprefix("vindr-") for v in VINDR}}
    for name, key in want.items():
        spec = task_spec(name)
        assert spec.finding is not None and spec.finding.key == key and spec.positive == 1, name
        assert spec.modality is Modality.IMAGE
    for name in ("openi-5class", "mimic-5x200"):
        assert task_spec(name).finding is None and task_spec(name).positive is None
        assert task_spec(name).modality is Modality.TEXT


def test_get_task_stamps_the_declared_fields():
    t = get_task("synthcxr-vindr-cardiomegaly", n_train_per_class=3, n_test_per_class=2, n_pool=4, size=64)
    assert t.dataset == "synthcxr" and t.finding.key == "cardiomegaly" and t.positive == 1 and t.publishable
    assert t.modality is Modality.IMAGE and t.modality == "image" and t.positive in t.classes


def test_synthcxr_pool_rows_share_one_key_across_tasks():
    kw = {"n_train_per_class": 3, "n_test_per_class": 2, "n_pool": 4, "size": 64}
    a, b = get_task("synthcxr-pneumonia", **kw), get_task("synthcxr-vindr-tuberculosis", **kw)
    assert a.shared_pool_keys == b.shared_pool_keys
    keys = a.shared_pool_keys
    assert keys["synthpool-3-"] == "synthcxr-pool@size=64,v=2", "the natural anchor pool keeps its key"
    assert keys["synthtest-960000-"].startswith("synthcxr-test-pool@")
    assert keys["synthtrain-970000-"].startswith("synthcxr-train-pool@")
    fam = lambda df: {i.rstrip("0123456789") for i in df["id"]}  # noqa: E731
    assert fam(a.test) == {"synthtest-960000-"} and fam(a.train) == {"synthtrain-970000-"}
    assert fam(a.anchors) == {"synthtrain-970000-", "synthpool-3-"}, "anchors: train pool + natural pool"
    assert set(a.shared_pools) == set(keys) and all(a.shared_pools[f] is b.shared_pools[f] for f in keys)


def test_unknown_parameter_is_one_data_error():
    with pytest.raises(DataError, match=r"task 'openi-5class' has no parameter\(s\) \['n_pool'\]; it takes: "
                                        r"n_test_per_class, n_train_per_class, seed"):
        get_task("openi-5class", n_pool=3)
    with pytest.raises(DataError, match=r"dataset 'synthcxr' has no parameter\(s\) \['path'\]"):
        load_dataset("synthcxr", path="x")


def test_vindr_columns_are_the_vocabulary_findings():
    from semalign.data.sources.vindr import VINDR6

    assert VINDR6 == {"aortic-enlargement": "Aortic enlargement", "cardiomegaly": "Cardiomegaly",
                      "lung-opacity": "Lung Opacity", "pleural-thickening": "Pleural thickening",
                      "pulmonary-fibrosis": "Pulmonary fibrosis", "tuberculosis": "Tuberculosis"}


# ------------------------------------------------------------------ zero-shot reads the finding
def test_finding_of_task_reads_the_registered_finding_not_the_name():
    from semalign.vocab import finding
    from semalign.zeroshot import FINDINGS, finding_of_task

    assert FINDINGS == ("pneumonia", "aortic-enlargement", "cardiomegaly", "lung-opacity", "pleural-thickening",
                        "pulmonary-fibrosis", "tuberculosis")
    # a Task's own finding wins, whatever its name says
    odd = Task("cardiomegaly-lookalike", "image", [0, 1], *[None] * 3, "k", finding=finding("tuberculosis"))
    assert finding_of_task(odd) == "tuberculosis"
    assert finding_of_task("synthcxr-vindr-pleural-thickening") == "pleural-thickening"
    with pytest.raises(KeyError, match="covers pneumonia"):
        finding_of_task("openi-5class")  # registered, but about no single finding
    with pytest.raises(KeyError, match="covers pneumonia"):
        finding_of_task("my-cardiomegaly")  # a name ending in a finding is not enough


# ------------------------------------------------------------------ registration rules
@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish after it."""
    for table in ("_DATASETS", "_TASKS", "_PAIRS"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    monkeypatch.setattr(M, "_BUNDLED_CHECKS", dict(M._BUNDLED_CHECKS))


def test_a_name_claimed_by_two_modules_is_refused(scratch_registry):
    def build() -> Task:
        raise AssertionError("never built")

    build.__module__ = "someone.else"
    with pytest.raises(DataError, match="registered twice: by semalign.data.sources.openi and by someone.else"):
        registry.task("openi-5class", dataset="openi-reports-offline", modality="text")(build)


def test_a_builder_disagreeing_with_its_declaration_is_refused(scratch_registry):
    @registry.task("toy-wrong", dataset="synthcxr", modality=Modality.IMAGE)
    def build() -> Task:
        return Task("toy-wrong", "text", [0, 1], *[None] * 3, "k")

    with pytest.raises(DataError, match="registered as 'toy-wrong'"):
        get_task("toy-wrong")


# ------------------------------------------------------------------ a new source, nothing shared edited
TOY_MANIFEST = {
    "name": "toy-notes", "title": "Toy notes (generated in a test)", "version": "1", "homepage": "https://example.org",
    "sources": [{"name": "generated", "url": "tests/test_data_registry.py"}], "licence": "MIT", "access": "generated",
    "access_steps": "nothing to download", "files": [], "labels": {"columns": {"label": "absent / present"}},
    "splits": {"note": "seeded"}, "recipes": {"toy-cardiomegaly": {"description": "balanced binary", "task": "toy-cardiomegaly"}},
}
TOY_SOURCE = '''
"""A toy text source: notes that do or do not mention an enlarged heart."""
import numpy as np
import pandas as pd

from semalign.data.registry import Task, dataset, recipe_key, task
from semalign.vocab import Modality


@dataset("toy-notes")
def load(n: int = 20, seed: int = 0) -> pd.DataFrame:
    y = np.random.default_rng(seed).integers(0, 2, n)
    return pd.DataFrame({"id": [f"toy{i}" for i in range(n)], "split": "train",
                         "text": ["the heart is enlarged" if v else "clear lungs" for v in y],
                         "label": np.where(y == 1, "present", "absent")})


@task("toy-cardiomegaly", dataset="toy-notes", modality=Modality.TEXT, finding="cardiomegaly", positive="present")
def build(n: int = 20, seed: int = 0) -> Task:
    df = load(n, seed).rename(columns={"text": "input"})
    test, train = df.iloc[: n // 2], df.iloc[n // 2:]
    recipe = {"n": n, "seed": seed, "version": 1}
    return Task("toy-cardiomegaly", Modality.TEXT, ["absent", "present"], train[["id", "input", "label"]],
                test[["id", "input", "label"]], train[["id", "input"]], recipe_key("toy-cardiomegaly", recipe),
                "toy notes", recipe)
'''


def test_a_new_offline_task_is_a_manifest_plus_one_source_module(tmp_path, monkeypatch, capsys, repo_root,
                                                                 scratch_registry):
    # 1. the manifest, beside the shipped ones
    folder = tmp_path / "manifests"
    shutil.copytree(repo_root / "data_manifests", folder)
    (folder / "toy-notes.yml").write_text(yaml.safe_dump(TOY_MANIFEST))
    monkeypatch.setenv("SEMALIGN_MANIFESTS", str(folder))
    # 2. the source module, dropped into the sources package (here: a second folder of it)
    mods = tmp_path / "more_sources"
    mods.mkdir()
    (mods / "toy_notes.py").write_text(textwrap.dedent(TOY_SOURCE))
    monkeypatch.setattr(sources, "__path__", [*sources.__path__, str(mods)])
    monkeypatch.delitem(sys.modules, "semalign.data.sources.toy_notes", raising=False)
    registry.discover()
    try:
        t = get_task("toy-cardiomegaly", n=10)
        assert (t.dataset, t.finding.key, t.positive, t.publishable) == ("toy-notes", "cardiomegaly", "present", True)
        assert len(t.test) == 5 and t.modality == "text"
        assert list(load_dataset("toy-notes", n=4).columns) == ["id", "split", "text", "label"]
        from semalign.zeroshot import finding_of_task

        assert finding_of_task("toy-cardiomegaly") == "cardiomegaly"
        assert main(["data", "ls"]) == 0
        assert any(line.split()[:2] == ["toy-notes", "generated"] for line in capsys.readouterr().out.splitlines())
        assert main(["data", "check", "toy-notes"]) == 0 and "toy-notes  [generated]  READY" in capsys.readouterr().out
    finally:
        sys.modules.pop("semalign.data.sources.toy_notes", None)


# ------------------------------------------------------------------ the old code gives the same frames and keys
DIGEST = r'''
import hashlib, json, sys
import numpy as np
from semalign.data import get_pairs, get_task, load_dataset


def col(values):
    h = hashlib.sha256()
    for v in values:
        if isinstance(v, np.ndarray):
            h.update(f"nd{v.shape}{v.dtype}".encode()); h.update(np.ascontiguousarray(v).tobytes())
        else:
            h.update(repr(v).encode())
        h.update(b"\0")
    return h.hexdigest()


def frame(df):
    return {"columns": [str(c) for c in df.columns], **{str(c): col(df[c].tolist()) for c in df.columns}}


out = {}
for kind, name, params in json.loads(sys.argv[1]):
    label = f"{kind} {name} {json.dumps(params, sort_keys=True)}"
    if kind == "task":
        t = get_task(name, **params)
        out[label] = {"name": t.name, "modality": str(t.modality), "classes": [str(c) for c in t.classes],
                      "dataset_key": t.dataset_key, "description": t.description,
                      "recipe": json.dumps(t.recipe, sort_keys=True, default=str),
                      **{p: frame(getattr(t, p)) for p in ("train", "test", "anchors")}}
    else:
        df = (get_pairs if kind == "pairs" else load_dataset)(name, **params)
        out[label] = {"dataset_key": df.attrs.get("dataset_key"), **frame(df)}
print(json.dumps(out))
'''


def _digests(cases: list, old: bool, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if old:
        env["PYTHONPATH"] = str(BASELINE)
    return subprocess.Popen([sys.executable, "-c", DIGEST, json.dumps(cases)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _same_as_baseline(cases: list, tmp_path: Path) -> None:
    procs = [_digests(cases, old, tmp_path) for old in (True, False)]
    (old, err_old), (new, err_new) = (p.communicate(timeout=900) for p in procs)
    assert procs[0].returncode == 0, err_old[-2000:]
    assert procs[1].returncode == 0, err_new[-2000:]
    old, new = json.loads(old), json.loads(new)
    assert new.keys() == old.keys()
    for label in old:
        assert new[label] == old[label], label


needs_baseline = pytest.mark.skipif(not (BASELINE / "semalign" / "data").is_dir(),
                                    reason=f"no pre-registry code at {BASELINE} (set SEMALIGN_BASELINE)")


@pytest.mark.slow
@needs_baseline
def test_offline_frames_and_keys_equal_the_old_code(tmp_path):
    """The Open-i task (recipe defaults and an override), the pairs and the offline datasets:
    same ids, order, inputs, labels and dataset_key as the old code. (The SynthCXR tasks were
    redesigned since, issue 11: they draw from shared pools; tests/test_data_synthcxr_pools.py.)"""
    cases = [["task", "openi-5class", {}], ["task", "openi-5class", {"seed": 1, "n_train_per_class": None}]]
    cases += [["pairs", "synthcxr-pairs", {"n": n}] for n in (600, 800)] + [["pairs", "synthcxr-pairs", {"n": 8, "seed": 2, "size": 64}]]
    cases += [["dataset", "openi-reports", {}], ["dataset", "synthcxr", {"n": 12, "seed": 1, "size": 64}]]
    _same_as_baseline(cases, tmp_path)


@pytest.mark.slow
@needs_baseline
def test_local_copy_recipes_equal_the_old_code_on_fake_copies(tmp_path, monkeypatch):
    from test_data import fake_mimic, fake_rsna, fake_vindr  # the fake-copy builders of tests/test_data.py

    folder = tmp_path / "manifests"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data_manifests", folder)
    rsna = yaml.safe_load((folder / "rsna-pneumonia.yml").read_text())
    for f in rsna["files"]:
        f["sha256"] = None  # the fake labels are made up: unpin them for both codes
    (folder / "rsna-pneumonia.yml").write_text(yaml.safe_dump(rsna))
    monkeypatch.setenv("SEMALIGN_MANIFESTS", str(folder))
    monkeypatch.setenv("SEMALIGN_MIMIC_CXR", str(fake_mimic(tmp_path / "mimic")))
    monkeypatch.setenv("SEMALIGN_RSNA", str(fake_rsna(tmp_path / "rsna", images=True)))
    monkeypatch.setenv("SEMALIGN_VINDR_CXR", str(fake_vindr(tmp_path / "vindr", images=True)))
    cases = [["task", "mimic-5x200", {"n_per_class": 10, "n_train_per_class": 20, "n_anchors": 50}],
             ["task", "rsna-pneumonia", {"n_test_per_class": 40, "n_train_per_class": 30, "n_anchors": 50}],
             *(["task", v, {"n_train_per_class": 20, "n_anchors": 50}] for v in VINDR),
             ["pairs", "mimic-cxr-pairs", {"n": 20}],
             *(["dataset", d, {}] for d in ("mimic-cxr", "rsna-pneumonia", "vindr-cxr"))]
    _same_as_baseline(cases, tmp_path)


# ------------------------------------------------------------------ the vocabulary at the encoder registry
def test_encoder_modality_and_domain_are_parsed_with_the_vocabulary(tmp_path, monkeypatch):
    from semalign.encoders import DOMAINS, MODALITIES, Encoder, EncoderError, encoder_specs

    assert MODALITIES == ("text", "image") and DOMAINS == ("general", "medical", "medical (stand-in)", "multimodal")
    e = Encoder("x", "vision", "Medical (stand-in)", 4)
    assert e.modality is Modality.IMAGE and e.domain is Domain.MEDICAL_STANDIN
    assert e.fingerprint()["modality"] == "image" and "modality='image'" in repr(e)
    with pytest.raises(EncoderError, match=r"encoder 'x': unknown domain 'clinical'"):
        Encoder("x", "text", "clinical", 4)
    with pytest.raises(EncoderError, match=r"encoder 'x': unknown modality 'audio'"):
        Encoder("x", "audio", "general", 4)
    bad = tmp_path / "mine.yml"
    bad.write_text("encoders:\n  mine: {kind: hf, id: a/b, modality: text, domain: medicine}\n")
    monkeypatch.setenv("SEMALIGN_ENCODERS", str(bad))
    with pytest.raises(EncoderError, match=r"mine.yml: entry 'mine': unknown domain 'medicine'"):
        encoder_specs()
