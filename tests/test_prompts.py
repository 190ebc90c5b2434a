"""The zero-shot prompt file: package data, validated, reproducible draw."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from semalign.zeroshot import (
    FINDINGS,
    MIN_POSITIVE,
    N_NEGATIVE,
    PromptError,
    expand_structure,
    finding_of_task,
    load_prompts,
    prompts_for_task,
    sample_prompts,
)

PROMPT_FILE = Path(__file__).resolve().parents[1] / "semalign" / "prompts" / "zeroshot.yml"


@pytest.fixture
def doc():
    return yaml.safe_load(PROMPT_FILE.read_text())


def _write(tmp_path, doc) -> str:
    p = tmp_path / "prompts.yml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(p)


def test_every_task_covered_with_counts():
    prompts = load_prompts()
    assert set(prompts) == set(FINDINGS)
    for f, ps in prompts.items():
        assert len(ps.positive) >= MIN_POSITIVE, f
        assert len(ps.negative) == N_NEGATIVE, f


def test_no_duplicates_anywhere():
    prompts = load_prompts()
    every = [" ".join(p.lower().split()) for ps in prompts.values()
             for p in ps.positive + ps.negative]
    assert len(every) == len(set(every))


def test_positives_are_the_seeded_draw_of_the_structure(doc):
    # The stored prompts are data; this re-derives them from structure + seed.
    for f, entry in doc["tasks"].items():
        pos = entry["positive"]
        assert pos == sample_prompts(entry["structure"], len(pos), doc["seed"]), f
        assert len(expand_structure(entry["structure"])) > len(pos)  # a real draw, not all


def test_paper_example_negative_present():
    assert "The heart appears at a normal size and shape." in load_prompts()["cardiomegaly"].negative


def test_provenance_is_stated(doc):
    text = doc["provenance"].lower()
    assert "medclip" in text and "written" in text


def test_sample_prompts_depends_on_seed():
    s = {"severity": ["", "mild", "severe"], "subtype": ["a", "b", "c"], "location": ["x", "y"]}
    a, b = sample_prompts(s, 5, 0), sample_prompts(s, 5, 1)
    assert a == sample_prompts(s, 5, 0) and a != b
    assert len(set(a)) == 5
    with pytest.raises(PromptError, match="only makes 18"):
        sample_prompts(s, 19, 0)


def test_expand_structure_joins_without_double_spaces():
    out = expand_structure({"severity": ["", "mild"], "subtype": ["effusion"], "location": [""]})
    assert out == ["effusion", "mild effusion"]


@pytest.mark.parametrize("task,finding", [
    ("synthcxr-pneumonia", "pneumonia"), ("rsna-pneumonia", "pneumonia"),
    ("synthcxr-vindr-aortic-enlargement", "aortic-enlargement"),
    ("vindr-Lung Opacity", "lung-opacity"), ("pulmonary_fibrosis", "pulmonary-fibrosis"),
])
def test_task_names_map_to_findings(task, finding):
    assert finding_of_task(task) == finding
    assert prompts_for_task(task).finding == finding


def test_unknown_task_is_refused():
    with pytest.raises(KeyError, match="covers pneumonia"):
        finding_of_task("synthcxr-effusion")


def test_missing_task_refused(tmp_path, doc):
    del doc["tasks"]["tuberculosis"]
    with pytest.raises(PromptError, match="tuberculosis"):
        load_prompts(_write(tmp_path, doc))


def test_too_few_negatives_refused(tmp_path, doc):
    doc["tasks"]["cardiomegaly"]["negative"].pop()
    with pytest.raises(PromptError, match="cardiomegaly: 9 negative"):
        load_prompts(_write(tmp_path, doc))


def test_too_few_positives_refused(tmp_path, doc):
    pos = doc["tasks"]["pneumonia"]["positive"]
    doc["tasks"]["pneumonia"]["positive"] = pos[:MIN_POSITIVE - 1]
    with pytest.raises(PromptError, match="pneumonia: 9 positive"):
        load_prompts(_write(tmp_path, doc))


def test_duplicate_refused(tmp_path, doc):
    # the same sentence as a negative of two tasks (case and spacing ignored)
    doc["tasks"]["lung-opacity"]["negative"][0] = doc["tasks"]["pneumonia"]["negative"][0].upper()
    with pytest.raises(PromptError, match="duplicates"):
        load_prompts(_write(tmp_path, doc))


def test_positive_outside_structure_refused(tmp_path, doc):
    doc["tasks"]["cardiomegaly"]["positive"][0] = "big heart"
    with pytest.raises(PromptError, match="not made by its structure"):
        load_prompts(_write(tmp_path, doc))


def test_positive_not_the_seeded_draw_refused(tmp_path, doc):
    doc["seed"] = 1
    with pytest.raises(PromptError, match="seeded draw"):
        load_prompts(_write(tmp_path, doc))


def test_missing_provenance_refused(tmp_path, doc):
    doc["provenance"] = ""
    with pytest.raises(PromptError, match="provenance"):
        load_prompts(_write(tmp_path, doc))
